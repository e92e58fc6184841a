//! First writer wins: the bytes of a strict-mode session `index` that goes to Elasticsearch as
//! `create` (issue #11, arkime-traffic.md §4/§7).
//!
//! Owns one decision: what goes upstream in place of an action line that `action.rs` marked
//! [`super::action::Action::as_create`]. Capture's random and sequential ids (`<S>-` and 24
//! base64url characters) name no node, so the proxy cannot tell whose they are; a compromised
//! sensor that learnt another sensor's session id could `index` its own document under it and
//! the victim's session would be gone (its `node` check passes: the new document names the
//! attacker). Capture never writes a session twice under the same id (each save draws a new id),
//! so `create` changes nothing for it, and ES refuses a `create` of an existing id with a
//! per-item `409` while the rest of the bulk is applied: the first writer of an id keeps it. The
//! sensor's own consistent ids (`<S>-<node>-<fileNum>-<pos>`) stay `index`, because re-importing
//! a pcap file rewrites the same ids and no other sensor can write them. Lax mode forwards every
//! line as sent (esProxy.js).
//!
//! The line: `{"create":{"_index":I,"_id":D}}` with `I` and `D` as JSON strings, padded with
//! spaces after the comma to the original line's length when it was longer. Strict mode admits
//! only `_index` and `_id` in the metadata, so nothing is lost. For capture's exact bytes,
//! `{"index":{"_index":"I", "_id": "D"}}`, that is `{"create":{"_index":"I", "_id":"D"}}`: the
//! same length, and the validator overwrites it in place. Only a compact spelling capture never
//! sends (no space to give up) grows, by one byte per line; the upstream request of a strict bulk
//! is therefore always framed chunked (`upstream_head`), whatever the spelling.
//!
//! What follows from it, decided here and documented in the README:
//! - gzip: compressed bytes cannot be rewritten, so a strict gzip bulk goes upstream as the
//!   inflated, validated body (`body_plan`), not stored and forwarded compressed. Re-compressing
//!   would cost more CPU than the whole check: zlib deflates a capture-like bulk (compression
//!   ratio 6-7) in about twice the time it inflates it at level 1 and 4.6 times at capture's
//!   level 6, so about 2.5 and 5.5 ms per MB on top of the 2.6 ms that inflating and checking
//!   take (1.4 ms for a plain MB, `loadtest/RESULTS.md`). Sending the inflated body costs none,
//!   only 4-7 times the bytes on the link to ES, which then skips its own inflate.
//! - Replays (`replay`): a held bulk re-sent after a timeout or a broken connection, when ES had
//!   already applied it, gets `409` for the items already there. The documents are there either
//!   way; ES's answer (`errors: true`, `version_conflict_engine_exception`) is relayed as it is,
//!   with status 200, and capture, which only looks at the status, carries on.
//! - The tee mirrors what goes upstream, so it receives the same `create` lines.
//! - What stays open: a sensor can still take an id first (a `create` before its owner's), so
//!   predictable ids can be squatted. Random ids are not predictable; `autoGenerateId=sequential`
//!   ids are, once one of them is known (a per-thread counter), so such a sensor could make a
//!   victim's next sessions fail with 409 (lost, not overwritten). Consistent ids of another
//!   configured sensor are refused outright (`session_id`).

use crate::json::{self, action_line};
use serde_json::Value;
use std::borrow::Cow;

/// The `create` line to send instead of the validated strict `index` action line `line`
/// (without its `\n`): at least as long as `line` whenever `line` has a byte of whitespace or
/// escaping to spare, one byte longer otherwise. `None` if `line` is not an `index` action with
/// string `_index` and `_id` (the validator admitted it as one, so never in practice).
pub fn line(line: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    line_into(line, action_line::capture_index_line(line), &mut out).then_some(out)
}

/// [`line`] appended to `out` (the validator keeps every pending rewrite in one buffer, with
/// no allocation per line), given capture's exact shape read from `line` already
/// (`bulk::action::capture_shape`), so each action line is read once. `false` (and `out`
/// unchanged) where [`line`] says `None`.
pub fn line_into(line: &[u8], shape: Option<(&str, &str)>, out: &mut Vec<u8>) -> bool {
    if let Some((index, id)) = shape {
        // Printable ASCII without `"` or `\\`: serde_json writes it as it is.
        build(index, id, line.len(), out);
        return true;
    }
    let Ok(Value::Object(top)) = json::parse_strict(line, 2) else {
        return false;
    };
    let Some(Value::Object(meta)) = top.get("index") else {
        return false;
    };
    match (meta.get("_index"), meta.get("_id")) {
        (Some(Value::String(index)), Some(Value::String(id))) => {
            build(&escaped(index), &escaped(id), line.len(), out);
            true
        }
        _ => false,
    }
}

/// Appends `{"create":{"_index":I,<pad>"_id":D}}` padded to `len` bytes when it is shorter,
/// from the texts of `I` and `D` as they go between quotes (already escaped).
fn build(index: &str, id: &str, len: usize, out: &mut Vec<u8>) {
    const HEAD: &str = r#"{"create":{"_index":"#;
    const MID: &str = r#""_id":"#;
    let bare = HEAD.len() + index.len() + 3 + MID.len() + id.len() + 4;
    out.reserve(bare.max(len));
    out.extend_from_slice(HEAD.as_bytes());
    out.push(b'"');
    out.extend_from_slice(index.as_bytes());
    out.extend_from_slice(b"\",");
    out.resize(out.len() + len.saturating_sub(bare), b' ');
    out.extend_from_slice(MID.as_bytes());
    out.push(b'"');
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\"}}");
}

/// The text of `s` between the quotes of a JSON string, as serde_json writes it. Capture's
/// names and ids need no escape, so they are used as they are (no serializer, no allocation
/// on each line).
fn escaped(s: &str) -> Cow<'_, str> {
    let b = s.as_bytes();
    // A vector search for `"`, `\\` and control bytes (it also stops at non-ASCII bytes,
    // which need no escape).
    let mut i = crate::simd::string_stop(b, 0);
    while b.get(i).is_some_and(|&c| c >= 0x80) {
        i = crate::simd::string_stop(b, i + 1);
    }
    if i == b.len() {
        return Cow::Borrowed(s);
    }
    let q = serde_json::to_string(s).unwrap_or_else(|_| String::from("\"\""));
    Cow::Owned(q[1..q.len() - 1].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ID: &str = "260819-XyFr4-nVi-Pfro7SVr4ix4J5";

    fn meaning(line: &[u8]) -> Value {
        serde_json::from_slice(line).unwrap()
    }

    fn want(index: &str, id: &str) -> Value {
        json!({"create": {"_index": index, "_id": id}})
    }

    #[test]
    fn capture_line_becomes_a_create_of_the_same_length() {
        let orig = format!(r#"{{"index":{{"_index":"arkime_sessions3-260819", "_id": "{ID}"}}}}"#);
        let out = line(orig.as_bytes()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(r#"{{"create":{{"_index":"arkime_sessions3-260819", "_id":"{ID}"}}}}"#)
        );
    }

    #[test]
    fn other_spellings_keep_index_and_id_and_their_length_when_they_can() {
        let idx = "arkime_sessions3-260819";
        for (orig, grows) in [
            // Compact: nothing to give up for the longer operation name.
            (
                format!(r#"{{"index":{{"_index":"{idx}","_id":"{ID}"}}}}"#),
                true,
            ),
            (
                format!(r#"{{"index":{{"_id":"{ID}","_index":"{idx}"}}}}"#),
                true,
            ),
            (
                format!(r#"{{ "index" : {{ "_id" : "{ID}" , "_index" : "{idx}" }} }}"#),
                false,
            ),
            (
                format!(r#"{{"index":{{"_index":"arkime_sessions3-26081\u0039","_id":"{ID}"}}}}"#),
                false,
            ),
            (
                format!("{{\"index\":{{\"_index\":\"{idx}\",\t\"_id\":\"{ID}\"}}}}\t"),
                false,
            ),
        ] {
            let out = line(orig.as_bytes()).unwrap();
            assert_eq!(meaning(&out), want(idx, ID), "{orig}");
            if grows {
                assert_eq!(out.len(), orig.len() + 1, "{orig}");
            } else {
                assert_eq!(out.len(), orig.len(), "{orig}");
            }
            assert!(!out.contains(&b'\n'));
        }
    }

    #[test]
    fn names_are_written_exactly_as_serde_json_writes_them() {
        for c in (0..=0x7f)
            .map(char::from)
            .chain(['\u{e9}', '\u{2028}', '\u{1F600}'])
        {
            for at in 0..40 {
                // Every offset: inside and past the first 16-byte vector, and in the tail.
                let s = format!("{}{c}b\u{e9}{c}", "x".repeat(at));
                let want = serde_json::to_string(&s).unwrap();
                assert_eq!(format!("\"{}\"", escaped(&s)), want, "{c:?} at {at}");
                let s = format!("{}\u{e9}{c}{}", "x".repeat(at), "y".repeat(20));
                let want = serde_json::to_string(&s).unwrap();
                assert_eq!(format!("\"{}\"", escaped(&s)), want, "{c:?} at {at}");
            }
        }
    }

    #[test]
    fn escapes_in_index_and_id_survive() {
        let orig = br#"{"index":{"_index":"a\"b","_id":"x\\y\u00e9"}}"#;
        let out = line(orig).unwrap();
        assert_eq!(meaning(&out), want("a\"b", "x\\y\u{e9}"));
    }

    #[test]
    fn anything_but_an_index_with_string_index_and_id_gives_none() {
        for l in [
            r#"{"create":{"_index":"a","_id":"b"}}"#,
            r#"{"index":{"_index":"a"}}"#,
            r#"{"index":{"_index":"a","_id":1}}"#,
            r#"{"index":"a"}"#,
            "not json",
        ] {
            assert_eq!(line(l.as_bytes()), None, "{l}");
        }
    }
}
