//! Source lines of a `_bulk` body in strict mode (SPEC §5, arkime-traffic.md §4/§7): what a
//! document written after a given action must look like. Owns the document rules (one strict
//! JSON object; sessions docs carry the sensor's own `node`, unescaped, and no `_` metadata or
//! escaped keys; field updates are `{"doc": {…}}`); the JSON itself is judged by `json::scan`,
//! and which rule applies is decided by `action.rs`.

use crate::json::scan::{Kind, Scanner};

/// Which document rule a source line must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocRule {
    /// A sessions document (`index`/`create` into sessions).
    Session,
    /// A field definition (`index` into fields): any strict JSON object.
    FieldsIndex,
    /// A field update (`update` into fields): `{"doc": {…}}` and nothing else.
    FieldsUpdate,
}

/// Checks one source line (without its `\n`) against `rule`. `sensor` is the authenticated
/// node name, compared with the raw bytes of `node` (capture never escapes it). The error is a short
/// reason for the log.
pub fn check(
    scanner: &mut Scanner,
    line: &[u8],
    rule: DocRule,
    sensor: &[u8],
    max_depth: usize,
) -> Result<(), String> {
    let target: Option<&[u8]> = match rule {
        DocRule::Session => Some(b"node"),
        DocRule::FieldsIndex => None,
        DocRule::FieldsUpdate => Some(b"doc"),
    };
    let sum = scanner
        .scan(line, max_depth, target)
        .map_err(|e| format!("document: {e}"))?;
    if sum.top != Kind::Object {
        return Err("document is not a JSON object".into());
    }
    match rule {
        DocRule::Session => {
            if sum.underscore_key {
                return Err("document has a top-level key starting with _".into());
            }
            // arkime-traffic.md §7: capture writes keys as fixed ASCII names and its own node
            // name as plain bytes, never escaped. (Keys are still compared after unescaping,
            // so the duplicate and `_` checks hold whatever this rule says.)
            if sum.escaped_key {
                return Err("document has an escaped key".into());
            }
            match sum.target {
                None => Err("document has no node field".into()),
                Some((Kind::String, Some(node))) if node.escaped => {
                    Err("document node is escaped".into())
                }
                Some((Kind::String, Some(node))) if node.raw == sensor => Ok(()),
                Some((Kind::String, _)) => Err("document node is not the sensor's".into()),
                Some(_) => Err("document node is not a string".into()),
            }
        }
        DocRule::FieldsIndex => Ok(()),
        DocRule::FieldsUpdate => match sum.target {
            Some((Kind::Object, _)) if sum.top_keys == 1 => Ok(()),
            _ => Err("field update is not {\"doc\": {…}}".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(line: &str) -> Result<(), String> {
        check(
            &mut Scanner::new(),
            line.as_bytes(),
            DocRule::Session,
            b"toronto01",
            64,
        )
    }

    fn rule(r: DocRule, line: &str) -> Result<(), String> {
        check(&mut Scanner::new(), line.as_bytes(), r, b"toronto01", 64)
    }

    #[test]
    fn session_doc_with_own_node_is_accepted() {
        assert!(session(r#"{"a":1,"node":"toronto01","b":{"node":"x"}}"#).is_ok());
    }

    #[test]
    fn session_doc_node_must_be_exactly_the_sensor() {
        assert!(session(r#"{"node":"toronto011"}"#).is_err());
        assert!(session(r#"{"node":"toronto0"}"#).is_err());
        assert!(session(r#"{"node":"TORONTO01"}"#).is_err());
        assert!(session(r#"{"node":"toronto01 "}"#).is_err());
    }

    #[test]
    fn nested_node_does_not_count() {
        assert!(session(r#"{"x":{"node":"toronto01"}}"#)
            .unwrap_err()
            .contains("no node"));
        assert!(session(r#"{"x":[{"node":"toronto01"}]}"#).is_err());
    }

    #[test]
    fn escaped_keys_and_an_escaped_node_are_refused_as_capture_never_writes_them() {
        // arkime-traffic.md §7: no escaped keys, node is the sensor's exact bytes.
        assert!(session(r#"{"node":"toronto\u00301"}"#)
            .unwrap_err()
            .contains("escaped"));
        assert!(session(r#"{"no\u0064e":"toronto01"}"#)
            .unwrap_err()
            .contains("escaped key"));
        assert!(session(r#"{"node":"toronto01","x":{"\u0061":1}}"#)
            .unwrap_err()
            .contains("escaped key"));
        assert!(session(r#"{"node":"toronto01","x":[{"a\/b":1}]}"#).is_err());
        // Escapes in values are what capture writes.
        assert!(session(r#"{"node":"toronto01","x":"a\/b\u0001"}"#).is_ok());
    }

    #[test]
    fn node_keys_are_still_compared_after_unescaping() {
        assert!(session(r#"{"no\u0064e":"toronto01","node":"toronto01"}"#).is_err());
        assert!(session(r#"{"node":"evil","no\u0064e":"toronto01"}"#).is_err());
    }

    #[test]
    fn session_node_must_be_a_string() {
        for l in [
            r#"{"node":["toronto01"]}"#,
            r#"{"node":null}"#,
            r#"{"node":{"x":"toronto01"}}"#,
            r#"{"node":1}"#,
        ] {
            assert!(session(l).unwrap_err().contains("not a string"), "{l}");
        }
    }

    #[test]
    fn session_doc_refuses_metadata_keys() {
        assert!(session(r#"{"node":"toronto01","_id":"x"}"#).is_err());
        assert!(session(r#"{"node":"toronto01","\u005fsource":"x"}"#).is_err());
        // Only top-level keys are metadata.
        assert!(session(r#"{"node":"toronto01","x":{"_id":"x"}}"#).is_ok());
    }

    #[test]
    fn session_doc_must_be_one_strict_object() {
        for l in [
            r#"["node","toronto01"]"#,
            r#""toronto01""#,
            r#"{"node":"toronto01"} {}"#,
            r#"{"node":"toronto01",}"#,
            "\u{feff}{\"node\":\"toronto01\"}",
            r#"{"node":"toronto01"}//"#,
        ] {
            assert!(session(l).is_err(), "{l}");
        }
    }

    #[test]
    fn fields_index_doc_is_any_strict_object() {
        let def = r#"{"friendlyName": "URI", "group": "http", "help": "URIs for request", "dbField2": "http.uri", "type": "termfield", "category": ["url","host"]}"#;
        assert!(rule(DocRule::FieldsIndex, def).is_ok());
        assert!(rule(DocRule::FieldsIndex, "[]").is_err());
        assert!(rule(DocRule::FieldsIndex, r#"{"a":1,"a":2}"#).is_err());
    }

    #[test]
    fn fields_update_is_exactly_one_doc_object() {
        assert!(rule(
            DocRule::FieldsUpdate,
            r#"{"doc": {"aliases":["http.uri"]}}"#
        )
        .is_ok());
        for bad in [
            r#"{"doc": {"aliases":[]}, "doc_as_upsert": true}"#,
            r#"{"script": {"source":"ctx._source.x=1"}}"#,
            r#"{"doc": ["x"]}"#,
            r#"{}"#,
            r#"{"upsert":{}, "doc": {}}"#,
        ] {
            assert!(rule(DocRule::FieldsUpdate, bad).is_err(), "{bad}");
        }
    }
}
