//! Property: the one-pass document scanner and the serde_json-based strict reader
//! (`json::parse_strict`) agree on every input — accept/reject, and on what they see at the top
//! level (type, key count, `_` keys, the `node` value). Also: the SIMD searches the scanner
//! runs on (`simd::string_stop`, `simd::int_masks`) give the scalar loops' answers from every
//! offset.
#![no_main]

use esproxy::json::scan::{Kind, Scanner};
use esproxy::json::parse_strict;
use esproxy::simd::{int_masks, int_masks_scalar, string_stop, string_stop_scalar};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const DEPTH: usize = 16;

fuzz_target!(|line: &[u8]| {
    for from in 0..=line.len().min(64) {
        assert_eq!(
            string_stop(line, from),
            string_stop_scalar(line, from),
            "string search from {from}"
        );
        assert_eq!(
            int_masks(line, from),
            int_masks_scalar(line, from),
            "integer masks from {from}"
        );
    }
    let mut scanner = Scanner::new();
    let fast = scanner.scan(line, DEPTH, Some(b"node"));
    let reference = parse_strict(line, DEPTH);
    match (&fast, &reference) {
        (Ok(sum), Ok(v)) => {
            assert_eq!(sum.top, Kind::of(v), "top-level type");
            if let Value::Object(m) = v {
                assert_eq!(sum.top_keys, m.len(), "top-level key count");
                assert_eq!(
                    sum.underscore_key,
                    m.keys().any(|k| k.starts_with('_')),
                    "underscore key"
                );
                match (m.get("node"), sum.target) {
                    (None, None) => {}
                    (Some(Value::String(s)), Some((Kind::String, Some(raw)))) => {
                        let mut scratch = Vec::new();
                        assert!(raw.decodes_to(s.as_bytes(), &mut scratch), "node value");
                    }
                    (Some(Value::String(_)), other) => panic!("node: scanner saw {other:?}"),
                    (Some(_), Some((k, _))) => assert_ne!(k, Kind::String, "node kind"),
                    (Some(_), None) | (None, Some(_)) => panic!("node presence differs"),
                }
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "scanner {:?} vs serde {:?} on {:?}",
            fast.map(|s| s.top),
            reference.map(|_| ()),
            String::from_utf8_lossy(line)
        ),
    }
});
