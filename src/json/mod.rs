//! Strict JSON reading (SPEC §5), one decision: "is this text strict RFC 8259 JSON, and what do
//! the checks need from it". Three readers share one definition of strict — valid UTF-8, no
//! byte-order mark, no comments, nothing after the value, duplicate keys refused at every level
//! after unescaping, nesting bounded — and each exists for a reason:
//! - [`parse_strict`] (`strict.rs`) builds a `serde_json::Value`: the reference, used where a
//!   rule needs the whole tree (the viewer's searches and updates, the general action line);
//! - [`scan`] checks a line in one pass without building a value and reports its top level: the
//!   hot path for bulk documents and the documents sensors write every few seconds;
//! - [`action_line`] reads capture's one exact action-line shape byte for byte and leaves every
//!   other shape to [`parse_strict`] (`bulk::action` decides what the line means).
//!
//! Tests and fuzzing hold the scanner and the fast path to the reference's verdicts.

pub mod action_line;
pub mod scan;
mod strict;

pub use strict::{parse_strict, JsonError};
