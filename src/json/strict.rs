//! The reference strict JSON parser (SPEC §5): RFC 8259 only (valid UTF-8, no byte-order mark,
//! no comments, nothing after the value), duplicate keys rejected at every level (compared after
//! unescaping, so `"no\u0064e"` duplicates `node`), and nesting bounded. It builds a
//! `serde_json::Value` for the rules that need the whole tree, and is the reference the one-pass
//! scanner and the action-line fast path are tested and fuzzed against.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::cell::Cell;
use std::fmt;

/// The most nesting any reader admits, whatever the configured limit: serde_json's own default
/// recursion limit (127 levels), which the scanner keeps too so the readers agree.
const MAX_NESTING: usize = 127;

/// Why a JSON text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// Not RFC 8259 JSON (serde_json's message, which carries line and column).
    #[error("invalid JSON: {0}")]
    Syntax(String),
    /// The same key twice in one object.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// Nested deeper than allowed.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
}

/// Parses `bytes` as one strict JSON value, nested at most `max_depth` arrays/objects deep (and
/// never more than 127, serde_json's own limit).
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let raised = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // The seed bounds nesting itself (so its refusal is typed); serde_json's own limit would
    // otherwise fire first, as an untyped message, at the 128th level.
    de.disable_recursion_limit();
    let seed = StrictSeed {
        depth: 0,
        max_depth: max_depth.min(MAX_NESTING),
        raised: &raised,
    };
    let typed = |e: serde_json::Error| {
        raised
            .take()
            .unwrap_or_else(|| JsonError::Syntax(e.to_string()))
    };
    let v = seed.deserialize(&mut de).map_err(typed)?;
    de.end().map_err(typed)?;
    Ok(v)
}

/// The visitor that builds the value. serde_json's errors carry only text, so the refusals this
/// seed raises itself are also recorded, typed, in `raised`.
#[derive(Clone, Copy)]
struct StrictSeed<'a> {
    depth: usize,
    max_depth: usize,
    raised: &'a Cell<Option<JsonError>>,
}

impl StrictSeed<'_> {
    /// Records `why` and returns the error that makes serde_json stop.
    fn refuse<E: de::Error>(self, why: JsonError) -> E {
        let e = E::custom(&why);
        self.raised.set(Some(why));
        e
    }

    fn deeper<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= self.max_depth {
            return Err(self.refuse(JsonError::TooDeep(self.max_depth)));
        }
        Ok(StrictSeed {
            depth: self.depth + 1,
            ..self
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            if out.contains_key(&k) {
                return Err(self.refuse(JsonError::DuplicateKey(k)));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_object_parses() {
        let v = parse_strict(br#"{"a":1,"b":[true,null,"x"]}"#, 8).unwrap();
        assert_eq!(v["b"][2], "x");
    }

    #[test]
    fn duplicate_key_is_rejected() {
        assert_eq!(
            parse_strict(br#"{"node":"a","node":"b"}"#, 8),
            Err(JsonError::DuplicateKey("node".into()))
        );
    }

    #[test]
    fn escaped_duplicate_key_is_rejected_after_unescaping() {
        assert_eq!(
            parse_strict(br#"{"node":"a","no\u0064e":"b"}"#, 8),
            Err(JsonError::DuplicateKey("node".into()))
        );
    }

    #[test]
    fn nested_duplicate_key_is_rejected() {
        assert!(matches!(
            parse_strict(br#"{"a":{"x":1,"x":2}}"#, 8),
            Err(JsonError::DuplicateKey(_))
        ));
    }

    #[test]
    fn trailing_garbage_comments_and_bom_are_rejected() {
        assert!(parse_strict(b"{} x", 8).is_err());
        assert!(parse_strict(b"{}/* c */", 8).is_err());
        assert!(parse_strict(b"\xEF\xBB\xBF{}", 8).is_err());
        assert!(parse_strict(b"{\"a\":1,}", 8).is_err());
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        assert!(parse_strict(b"{\"a\":\"\xff\"}", 8).is_err());
    }

    #[test]
    fn depth_limit_is_enforced() {
        assert!(parse_strict(b"[[[1]]]", 3).is_ok());
        assert_eq!(parse_strict(b"[[[[1]]]]", 3), Err(JsonError::TooDeep(3)));
    }

    #[test]
    fn nesting_is_capped_at_serde_jsons_limit_with_a_typed_error() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_strict(nested(127).as_bytes(), 1000).is_ok());
        assert_eq!(
            parse_strict(nested(128).as_bytes(), 1000),
            Err(JsonError::TooDeep(127))
        );
        // A string that reads like one of our refusals is still only a syntax error.
        assert!(matches!(
            parse_strict(br#"{"a":1} "duplicate key""#, 8),
            Err(JsonError::Syntax(_))
        ));
    }
}
