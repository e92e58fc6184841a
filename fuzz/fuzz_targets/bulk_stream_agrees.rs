//! Properties of the streaming bulk validator on arbitrary bodies:
//! 1. any split into chunks gives the same verdict and the same emitted bytes as one chunk;
//! 2. it agrees with a reference parse by serde_json (`json::parse_strict`): a body with a line
//!    serde refuses is refused, and an accepted body is emitted whole, every line strict JSON,
//!    every session document's top-level `node` the sensor's, each line as sent or (a session
//!    `index`) the same action as `create`, at most one byte longer.
#![no_main]

use bytes::Bytes;
use esproxy::bulk::{validate_all, BodyEncoding, BulkValidator};
use esproxy::json::parse_strict;
use esproxy::policy::Policy;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SENSOR: &str = "toronto01";

fn streamed(policy: &Policy, body: &[u8], seed: u8) -> Result<Vec<u8>, ()> {
    let mut v = BulkValidator::new(policy, SENSOR, BodyEncoding::Identity);
    let mut out = Vec::new();
    let mut rest = body;
    let mut step = (seed as usize % 13) + 1;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        let (a, b) = rest.split_at(n);
        rest = b;
        step = (step * 7 + 3) % 61 + 1;
        out.extend_from_slice(&v.feed(Bytes::copy_from_slice(a), false).map_err(|_| ())?);
    }
    out.extend_from_slice(&v.feed(Bytes::new(), true).map_err(|_| ())?);
    Ok(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, body)) = data.split_first() else { return };
    let mut policy = Policy::default();
    policy.strict = seed & 0x80 == 0;
    policy.limits.max_depth = 16;

    let whole = validate_all(&policy, SENSOR, BodyEncoding::Identity, body)
        .map(|b| b.to_vec())
        .map_err(|_| ());
    assert_eq!(streamed(&policy, body, seed), whole, "chunking changed the verdict or bytes");

    if !policy.strict {
        return;
    }
    // Reference checks with serde_json, strict mode.
    let text_lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    let complete = &text_lines[..text_lines.len() - 1];
    let serde_refuses_a_line = complete
        .iter()
        .any(|l| parse_strict(l, policy.limits.max_depth).is_err());
    match whole {
        Err(()) => {}
        Ok(out) => {
            assert!(!serde_refuses_a_line, "accepted a line serde_json refuses");
            let out_lines: Vec<&[u8]> = out.split(|&b| b == b'\n').collect();
            assert_eq!(out_lines.len(), text_lines.len(), "strict accepts whole bodies only");
            for (o, l) in out_lines.iter().zip(&text_lines) {
                if o == l {
                    continue;
                }
                let (o, l) = (
                    parse_strict(o, policy.limits.max_depth).unwrap(),
                    parse_strict(l, policy.limits.max_depth).unwrap(),
                );
                assert_eq!(o.get("create"), l.get("index"), "only index becomes create");
                assert!(o.get("create").is_some());
            }
            assert!(out.len() <= body.len() + complete.len(), "grew more than a byte a line");
            let mut expect_doc_for_sessions: Option<bool> = None;
            for l in complete {
                let v = parse_strict(l, policy.limits.max_depth).unwrap();
                match expect_doc_for_sessions.take() {
                    Some(true) => {
                        assert_eq!(
                            v.get("node"),
                            Some(&Value::String(SENSOR.into())),
                            "session doc node"
                        );
                    }
                    Some(false) => {}
                    None => {
                        let (op, meta) = v.as_object().unwrap().iter().next().unwrap();
                        let index = meta["_index"].as_str().unwrap();
                        if op != "delete" {
                            // Default prefix: sessions indices are `arkime_sessions3-…` and
                            // `sessions2-…` (old prefix empty); everything else accepted is fields.
                            expect_doc_for_sessions = Some(
                                index.starts_with("arkime_sessions3-")
                                    || index.starts_with("sessions2-"),
                            );
                        }
                    }
                }
            }
            assert!(expect_doc_for_sessions.is_none(), "action without its source line");
        }
    }
});
