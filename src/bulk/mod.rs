//! Streaming validation of `POST /_bulk` bodies (SPEC §5): as chunks arrive, only complete,
//! validated lines go upstream — an action line always together with its source line — and the
//! first bad line aborts the request. Memory per request is bounded by the longest allowed line
//! (twice, for a held pair) plus one chunk; the body is never buffered whole, except a gzip
//! body of known, bounded size held for whole-body inflate within `esProxyInflateBudget`
//! ([`BulkValidator::inflate_whole`]).
//!
//! This module owns the bulk verdict only. No I/O, no Pingora: the proxy feeds chunks to a
//! [`BulkValidator`] and forwards what it returns; turning a [`Reject`] into a response is
//! `reject.rs`'s job.
//!
//! Layout, one decision per file:
//! - `framer.rs`: NDJSON line and unit boundaries across chunks (bytes only);
//! - [`crate::json::scan`] (not here): the one-pass strict JSON scanner for document lines;
//! - [`action`]: action lines (operation, index kind, rotation suffix, `_id`);
//! - [`session_id`]: which session `_id` the sensor may write (capture's random form or its
//!   own consistent id; 512 bytes at most);
//! - [`create`]: the bytes of a strict session `index` under a random-form id, sent as
//!   `create` (first writer wins; the gzip, framing, replay and tee consequences are in its
//!   docs);
//! - [`doc`]: source lines in strict mode (`node` is the sensor, no `_` keys, …);
//! - [`gzip`]: bounded inflate of one gzip member, streaming (zlib-ng) or of a body held whole
//!   (libdeflate, with the same verdicts);
//! - `validator.rs`: the per-request state machine tying them together.

pub mod action;
pub mod create;
pub mod doc;
mod framer;
pub mod gzip;
pub mod session_id;
mod validator;

pub use validator::BulkValidator;

use crate::policy::Policy;
use crate::reject::Reject;
use bytes::Bytes;

/// How the request body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEncoding {
    /// No `Content-Encoding`.
    Identity,
    /// `Content-Encoding: gzip`: the validator inflates and returns plain bytes, so the proxy
    /// forwards them without `Content-Encoding`; or, with
    /// [`BulkValidator::forward_original`], returns the body as received once all of it
    /// checked out.
    Gzip,
}

/// Counters for one bulk request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkStats {
    /// Complete lines seen (inflated body), blank ones included.
    pub lines: u64,
    /// Action lines accepted.
    pub actions: u64,
    /// Of those, lines without an `_id` (ES picks one: a re-send would index a second copy).
    pub actions_without_id: u64,
    /// Source lines accepted.
    pub docs: u64,
    /// Body bytes received (as sent, compressed or not).
    pub bytes_in: u64,
    /// Bytes released upstream (inflated for gzip).
    pub bytes_out: u64,
    /// Which inflater a gzip body went through.
    pub inflate: InflatePath,
}

/// Which inflater a gzip body went through (`gzip.rs`), for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InflatePath {
    /// Not gzip.
    #[default]
    None,
    /// Streamed through zlib-ng as it arrived (no Content-Length, too large, no room).
    Streamed,
    /// Held whole and inflated by libdeflate (or refused before its end).
    Whole,
    /// Held whole, then streamed through zlib-ng at its end (libdeflate could not vouch for
    /// its answer, or no room for the output).
    Fallback,
}

impl InflatePath {
    /// The metric label, if gzip.
    pub fn label(self) -> Option<&'static str> {
        match self {
            InflatePath::None => None,
            InflatePath::Streamed => Some("streamed"),
            InflatePath::Whole => Some("whole"),
            InflatePath::Fallback => Some("fallback"),
        }
    }
}

/// Whole-body convenience (tests, fuzzing, benches): feeds `body` as one chunk with `eos`.
pub fn validate_all(
    policy: &Policy,
    sensor: &str,
    encoding: BodyEncoding,
    body: &[u8],
) -> Result<Bytes, Reject> {
    BulkValidator::new(policy, sensor, encoding).feed(Bytes::copy_from_slice(body), true)
}

#[cfg(test)]
mod tests;
