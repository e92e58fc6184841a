//! The action-line fast path: capture writes every session action line in one exact shape,
//! `{"index":{"_index":"I", "_id": "D"}}`; reading that shape byte for byte, without building a
//! tree, saves a tenth of the proxy's time on bulks. Any other bytes — other spacing, escapes,
//! more keys — are not this reader's to judge: it answers `None` and the caller parses the line
//! with [`super::parse_strict`], which reaches the same verdict on this shape (`bulk::action`'s
//! tests and proptest hold the two paths to that).

/// Capture's exact `index` action line, `{"index":{"_index":"I", "_id": "D"}}`, with `I` and
/// `D` plain printable ASCII (no escapes): `Some((I, D))`; anything else `None`.
pub fn capture_index_line(line: &[u8]) -> Option<(&str, &str)> {
    // One DEL search and one UTF-8 conversion for the whole line rather than one per string
    // (short strings pay the call overheads, and this runs on every action line). Outside its
    // two strings the shape is fixed ASCII, so DEL anywhere means DEL in a string.
    if memchr::memchr(0x7f, line).is_some() {
        return None;
    }
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix(r#"{"index":{"_index":""#)?;
    let (index, rest) = plain_string(rest)?;
    let rest = rest.strip_prefix(r#"", "_id": ""#)?;
    let (id, rest) = plain_string(rest)?;
    (rest == r#""}}"#).then_some((index, id))
}

/// The text before the first `"` of `s` if it is printable ASCII other than `\` (so the JSON
/// string needs no decoding; the caller has ruled out DEL), and the rest from that `"` on.
fn plain_string(s: &str) -> Option<(&str, &str)> {
    // The first `"`, `\\`, control or non-ASCII byte must be the closing quote (a vector search,
    // not a byte loop: this runs on every action line).
    let end = crate::simd::string_stop(s.as_bytes(), 0);
    if s.as_bytes().get(end) != Some(&b'"') {
        return None;
    }
    // `end` is at an ASCII byte, so on a character boundary.
    Some(s.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_action_line_takes_the_fast_path_and_other_shapes_do_not() {
        let ok = r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-XyFr4"}}"#;
        assert_eq!(
            capture_index_line(ok.as_bytes()),
            Some(("arkime_sessions3-260819", "260819-XyFr4"))
        );
        for other in [
            r#"{"index":{"_index":"arkime_sessions3-260819","_id":"260819-XyFr4"}}"#,
            r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-Xy\u0046r4"}}"#,
            r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-XyFr4"}} "#,
            r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-é"}}"#,
            r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "a", "_id": "b"}}"#,
        ] {
            assert_eq!(capture_index_line(other.as_bytes()), None, "{other}");
        }
    }

    #[test]
    fn only_printable_ascii_other_than_backslash_takes_the_fast_path_at_any_offset() {
        for b in 0..=255u8 {
            for at in 0..20 {
                let mut id = b"260819-XyFr4-nVi-Pfro7SVr4".to_vec();
                id[at] = b;
                let mut line =
                    br#"{"index":{"_index":"arkime_sessions3-260819", "_id": ""#.to_vec();
                line.extend_from_slice(&id);
                line.extend_from_slice(br#""}}"#);
                let plain = (0x20..0x7f).contains(&b) && b != b'\\' && b != b'"';
                let got = capture_index_line(&line);
                assert_eq!(got.is_some(), plain, "byte {b:#x} at {at}");
                if let Some((_, got_id)) = got {
                    assert_eq!(got_id.as_bytes(), &id[..]);
                }
            }
        }
    }
}
