//! The one strict JSON reader for every body or line the proxy inspects (SPEC §5): RFC 8259 only
//! (valid UTF-8, no byte-order mark, no comments, nothing after the value), duplicate keys
//! rejected at every level (compared after unescaping, so `"no\u0064e"` duplicates `node`), and
//! nesting bounded. It also serves as the reference the streaming bulk scanner is checked against.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

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

/// Parses `bytes` as one strict JSON value, nested at most `max_depth` arrays/objects deep.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = StrictSeed {
        depth: 0,
        max_depth,
    };
    let v = seed.deserialize(&mut de).map_err(map_err)?;
    de.end().map_err(map_err)?;
    Ok(v)
}

fn map_err(e: serde_json::Error) -> JsonError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("duplicate key ") {
        // Our own custom error, raised below; keep only the key.
        let key = rest.split(" at line").next().unwrap_or(rest);
        return JsonError::DuplicateKey(key.trim_matches('"').to_string());
    }
    if let Some(rest) = msg.strip_prefix("nesting deeper than ") {
        let n = rest.split(' ').next().unwrap_or("0").parse().unwrap_or(0);
        return JsonError::TooDeep(n);
    }
    if msg.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep(128);
    }
    JsonError::Syntax(msg)
}

#[derive(Clone, Copy)]
struct StrictSeed {
    depth: usize,
    max_depth: usize,
}

impl StrictSeed {
    fn deeper<E: de::Error>(self) -> Result<StrictSeed, E> {
        if self.depth >= self.max_depth {
            return Err(E::custom(format_args!(
                "nesting deeper than {} ",
                self.max_depth
            )));
        }
        Ok(StrictSeed {
            depth: self.depth + 1,
            max_depth: self.max_depth,
        })
    }
}

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictSeed {
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
                return Err(de::Error::custom(format_args!("duplicate key {k:?}")));
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
    fn accepts_plain_object() {
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
}
