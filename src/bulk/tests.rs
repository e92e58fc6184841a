//! The bulk validator's tests: whole bulks of capture's shapes and hostile ones, chunked at
//! every boundary, plain and gzip, against the rules in the module docs.

use super::*;
use crate::policy::{Limits, Prefix};
use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;
use std::io::Write;

const SENSOR: &str = "toronto01";
/// The exact action line capture writes (note the spaces).
const ACTION: &str =
    r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-XyFr4-nVi-Pfro7SVr4ix4J5"}}"#;
/// What strict mode sends upstream for it (`create.rs`): same length, first writer wins.
const CREATE: &str =
    r#"{"create":{"_index":"arkime_sessions3-260819", "_id":"260819-XyFr4-nVi-Pfro7SVr4ix4J5"}}"#;
const DOC_2102: &str = include_str!("testdata/session-2102.json");

fn strict() -> Policy {
    Policy::default()
}

fn lax() -> Policy {
    Policy {
        strict: false,
        ..Policy::default()
    }
}

/// Arkime's own test configuration: `prefix=tests`, esProxy.js rules.
fn arkime_tests_lax() -> Policy {
    Policy {
        prefix: Prefix::new(Some("tests")),
        strict: false,
        ..Policy::default()
    }
}

fn doc(node: &str) -> String {
    DOC_2102
        .trim_end()
        .replace(r#""node":"toronto01""#, &format!(r#""node":"{node}""#))
}

fn pair(node: &str) -> String {
    format!("{ACTION}\n{}\n", doc(node))
}

/// What goes upstream for `body` under `p`: strict mode sends capture's session `index`
/// lines (random ids) as `create`, lax mode everything as it is.
fn sent(p: &Policy, body: &[u8]) -> Vec<u8> {
    if !p.strict {
        return body.to_vec();
    }
    let (from, to) = (ACTION.as_bytes(), CREATE.as_bytes());
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        if body[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(body[i]);
            i += 1;
        }
    }
    out
}

/// [`sent`] in strict mode, for strings.
fn strict_sent(body: &str) -> Vec<u8> {
    sent(&strict(), body.as_bytes())
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn plain(p: &Policy, body: &str) -> Result<Bytes, Reject> {
    validate_all(p, SENSOR, BodyEncoding::Identity, body.as_bytes())
}

fn bad_line(r: Result<Bytes, Reject>) -> u64 {
    match r {
        Err(Reject::BadBulk { line, .. }) => line,
        other => panic!("expected BadBulk, got {other:?}"),
    }
}

/// Feeds `chunks` in order (the last with eos); returns the verdict and all bytes released.
fn run(p: &Policy, enc: BodyEncoding, chunks: &[&[u8]]) -> (Result<(), Reject>, Vec<u8>) {
    feed_all(BulkValidator::new(p, SENSOR, enc), chunks)
}

/// The same with a given validator.
fn feed_all(mut v: BulkValidator, chunks: &[&[u8]]) -> (Result<(), Reject>, Vec<u8>) {
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        match v.feed(Bytes::copy_from_slice(c), i + 1 == chunks.len()) {
            Ok(b) => out.extend_from_slice(&b),
            Err(e) => return (Err(e), out),
        }
    }
    (Ok(()), out)
}

/// A budget counter of the test's own (parallel tests share the process-wide one).
fn budget() -> &'static std::sync::atomic::AtomicUsize {
    Box::leak(Box::new(std::sync::atomic::AtomicUsize::new(0)))
}

/// A gzip validator held for whole-body inflate (`len`: the compressed size it holds), within
/// a budget of `cap` bytes counted in `used`.
fn whole_validator(
    p: &Policy,
    used: &'static std::sync::atomic::AtomicUsize,
    cap: usize,
    len: usize,
) -> BulkValidator {
    let grant = super::gzip::Grant::take(used, cap, len).expect("room for the body");
    let v = BulkValidator::new(p, SENSOR, BodyEncoding::Gzip).inflate_whole(grant);
    assert!(v.holds_whole());
    v
}

fn split_at<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut parts = Vec::new();
    let mut at = 0;
    for c in cuts {
        parts.push(&body[at..c]);
        at = c;
    }
    parts.push(&body[at..]);
    parts
}

// ---- realistic capture traffic ----

#[test]
fn capture_session_bulk_passes_strict_and_goes_upstream_as_creates_of_the_same_length() {
    let body = pair(SENSOR).repeat(50);
    let out = plain(&strict(), &body).unwrap();
    assert_eq!(out, strict_sent(&body));
    assert_eq!(out.len(), body.len());
    assert_eq!(
        out.windows(CREATE.len())
            .filter(|w| *w == CREATE.as_bytes())
            .count(),
        50
    );
    assert!(!out.windows(10).any(|w| w == b"{\"index\":{"));
}

#[test]
fn lax_mode_forwards_capture_session_bulks_as_sent() {
    let body = pair(SENSOR).repeat(5);
    assert_eq!(plain(&lax(), &body).unwrap(), body.as_bytes());
    let g = gz(body.as_bytes());
    assert_eq!(
        validate_all(&lax(), SENSOR, BodyEncoding::Gzip, &g).unwrap(),
        body.as_bytes()
    );
}

#[test]
fn capture_session_bulk_gzip_is_forwarded_inflated_as_creates() {
    let body = pair(SENSOR).repeat(50);
    let out = validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &gz(body.as_bytes())).unwrap();
    assert_eq!(out, strict_sent(&body));
}

#[test]
fn strict_own_consistent_ids_stay_index_and_other_spellings_keep_their_meaning() {
    let own = r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-toronto01-42468-33456471984"}}"#;
    let compact =
        r#"{"index":{"_id":"260819-XyFr4-nVi-Pfro7SVr4ix4J5","_index":"arkime_sessions3-260819"}}"#;
    let spaced = r#"{ "index" : { "_index" : "arkime_sessions3-260819" , "_id" : "260819-XyFr4-nVi-Pfro7SVr4ix4J5" } }"#;
    let d = doc(SENSOR);
    let body = format!("{own}\n{d}\n{compact}\n{d}\n{spaced}\n{d}\n{ACTION}\n{d}\n");
    // Split inside every unit, so rewrites land in the carried-over buffer too.
    let cuts: Vec<usize> = (1..8).map(|k| k * body.len() / 8).collect();
    for enc in [BodyEncoding::Identity, BodyEncoding::Gzip] {
        let sent_body = match enc {
            BodyEncoding::Identity => body.as_bytes().to_vec(),
            BodyEncoding::Gzip => gz(body.as_bytes()),
        };
        let (r, out) = run(&strict(), enc, &split_at(&sent_body, &cuts));
        r.unwrap();
        // One byte more: the compact line has nothing to give up for "create".
        assert_eq!(out.len(), body.len() + 1);
        let lines: Vec<serde_json::Value> = out
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect();
        let id = "260819-XyFr4-nVi-Pfro7SVr4ix4J5";
        let idx = "arkime_sessions3-260819";
        assert_eq!(
            lines[0],
            serde_json::json!({"index": {"_index": idx, "_id": "260819-toronto01-42468-33456471984"}})
        );
        for l in [&lines[2], &lines[4], &lines[6]] {
            assert_eq!(
                l,
                &serde_json::json!({"create": {"_index": idx, "_id": id}})
            );
        }
        for l in [&lines[1], &lines[3], &lines[5], &lines[7]] {
            assert_eq!(l["node"], SENSOR);
        }
    }
}

#[test]
fn rewrites_happen_in_place_when_the_chunk_is_not_shared() {
    let body = pair(SENSOR).repeat(3).into_bytes();
    let at = body.as_ptr();
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Identity);
    let out = v.feed(Bytes::from(body), true).unwrap();
    assert_eq!(out.as_ptr(), at, "copied");
    assert_eq!(out, strict_sent(&pair(SENSOR).repeat(3)));
}

#[test]
fn stored_gzip_bulk_is_released_as_received_only_at_the_end() {
    let body = pair(SENSOR).repeat(20);
    let g = gz(body.as_bytes());
    let mut v = BulkValidator::new(&lax(), SENSOR, BodyEncoding::Gzip).forward_original();
    let mut out = Vec::new();
    let parts = split_at(&g, &[g.len() / 3, 2 * g.len() / 3]);
    for (i, c) in parts.iter().enumerate() {
        let eos = i + 1 == parts.len();
        let b = v.feed(Bytes::copy_from_slice(c), eos).unwrap();
        assert!(eos || b.is_empty(), "released before the end");
        out.extend_from_slice(&b);
    }
    assert_eq!(out, g, "not the received bytes");
    assert_eq!(v.stats().docs, 20);
    assert_eq!(v.stats().bytes_out, g.len() as u64);
}

#[test]
fn store_and_forward_is_off_in_strict_mode() {
    // Compressed bytes cannot carry the `create` lines: strict streams them inflated.
    let body = pair(SENSOR).repeat(3);
    let g = gz(body.as_bytes());
    let v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Gzip).forward_original();
    let (r, out) = feed_all(v, &[&g]);
    r.unwrap();
    assert_eq!(out, strict_sent(&body));
}

#[test]
fn stored_gzip_bulk_with_a_bad_line_releases_nothing() {
    let evil = "{\"index\":{\"_index\":\"evil\"}}\n{}\n";
    let body = format!("{}{evil}{}", pair(SENSOR), pair(SENSOR));
    let g = gz(body.as_bytes());
    for cut in [1, g.len() / 2, g.len() - 1] {
        let v = BulkValidator::new(&lax(), SENSOR, BodyEncoding::Gzip).forward_original();
        let (r, out) = feed_all(v, &split_at(&g, &[cut]));
        assert_eq!(bad_line(r.map(|()| Bytes::new())), 3);
        assert!(
            out.is_empty(),
            "released {} bytes of a refused body",
            out.len()
        );
    }
    // A corrupt trailer is only known at the very end: still nothing released.
    let mut crc = gz(pair(SENSOR).repeat(3).as_bytes());
    let n = crc.len();
    crc[n - 6] ^= 0x40;
    let v = BulkValidator::new(&lax(), SENSOR, BodyEncoding::Gzip).forward_original();
    let (r, out) = feed_all(v, &[&crc]);
    assert!(matches!(r, Err(Reject::BadEncoding(_))));
    assert!(out.is_empty());
}

#[test]
fn store_and_forward_does_not_apply_to_identity_bodies() {
    let body = pair(SENSOR).repeat(3);
    let v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Identity).forward_original();
    let (r, out) = feed_all(v, &split_at(body.as_bytes(), &[body.len() / 2]));
    assert!(r.is_ok());
    assert_eq!(out, strict_sent(&body));
}

#[test]
fn capture_fields_bulk_with_index_update_delete_passes_strict() {
    let body = concat!(
        r#"{"index": {"_index": "arkime_fields", "_id": "dbTimestamp"}}"#,
        "\n",
        r#"{"friendlyName": "DB Timestamp", "group": "general", "help": "Timestamp when the session was written to the database", "dbField2": "@timestamp", "type": "seconds", "type2": "date"}"#,
        "\n",
        r#"{"index": {"_index": "arkime_fields", "_id": "mac.src"}}"#,
        "\n",
        r#"{"friendlyName": "Src MAC", "group": "general", "help": "Source ethernet mac addresses set for session", "dbField2": "source.mac", "type": "lotermfield", "category": "mac", "transform": "dash2Colon"}"#,
        "\n",
        r#"{"update": {"_index": "arkime_fields", "_id": "http.uri"}}"#,
        "\n",
        r#"{"doc": {"aliases":["http.uri.tokens"]}}"#,
        "\n",
        r#"{"delete": {"_index": "arkime_fields", "_id": "old.field"}}"#,
        "\n",
    );
    assert_eq!(plain(&strict(), body).unwrap(), body.as_bytes());
    let gzipped = gz(body.as_bytes());
    assert_eq!(
        validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &gzipped).unwrap(),
        body.as_bytes()
    );
}

#[test]
fn capture_trace_session_bulk_prefix_passes_strict() {
    // First pair shape of capture-trace.txt #10 (real ids contain '_' and '-').
    let d = doc(SENSOR);
    let body = format!(
        "{{\"index\":{{\"_index\":\"arkime_sessions3-261122\", \"_id\": \"261122-WWSi0G31l_1FZa0sRBOKafQW\"}}}}\n{d}\n"
    );
    assert!(plain(&strict(), &body).is_ok());
}

// ---- Arkime's own esProxy regression cases (lax mode, prefix tests_) ----

#[test]
fn arkime_regression_bodies_pass_or_fail_as_in_esproxy() {
    let p = arkime_tests_lax();
    let ok = |b: &str| plain(&p, b).is_ok();
    assert!(ok(
        "{\"index\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n"
    ));
    assert!(!ok(
        "{\"index\":{\"_index\":\"evil_sessions2_hack\"}}\n{\"field\":\"value\"}\n"
    ));
    assert!(!ok(
        "{\"index\":{\"_index\":\"other_sessions3-2024\"}}\n{\"field\":\"value\"}\n"
    ));
    assert!(!ok(
        "{\"index\":{\"_index\":\"tests_sessions3evil\"}}\n{\"field\":\"value\"}\n"
    ));
    assert!(ok(
        "{\"delete\":{\"_index\":\"tests_fields\",\"_id\":\"x\"}}\n"
    ));
    // After a delete (no source line) the next line is an action again and is checked.
    assert!(ok(concat!(
        "{\"delete\":{\"_index\":\"tests_fields\",\"_id\":\"x\"}}\n",
        "{\"index\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n"
    )));
    assert!(!ok(concat!(
        "{\"delete\":{\"_index\":\"tests_fields\",\"_id\":\"x\"}}\n",
        "{\"index\":{\"_index\":\"evil_sessions3-2024\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n"
    )));
    assert!(!ok(
        "{\"delete\":{\"_index\":\"evil_fields_hack\",\"_id\":\"x\"}}\n"
    ));
    assert!(!ok(
        "{\"create\":{\"_index\":\"tests_fields\",\"_id\":\"x\"}}\n{}\n"
    ));
    assert!(!ok(
        "{\"update\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"1\"}}\n{\"doc\":{}}\n"
    ));
    assert!(!ok("not valid json\n"));
    assert!(!ok(concat!(
        "{\"index\":{\"_index\":\"tests_sessions3-2024\"},\"create\":{\"_index\":\"tests_sessions3-2024\"}}\n",
        "{}\n"
    )));
}

// ---- source lines ----

#[test]
fn doc_without_node_is_refused_strict_but_passes_lax() {
    let body = format!("{ACTION}\n{{\"field\":\"value\"}}\n");
    assert_eq!(bad_line(plain(&strict(), &body)), 2);
    assert!(plain(&lax(), &body).is_ok());
}

#[test]
fn doc_of_another_sensor_is_refused_in_strict_mode() {
    let body = format!("{}{}", pair(SENSOR), pair("toronto011"));
    assert_eq!(bad_line(plain(&strict(), &body)), 4);
    assert!(plain(&lax(), &body).is_ok());
}

#[test]
fn escaped_duplicate_node_is_refused_in_strict_mode() {
    let d = doc(SENSOR).replacen('{', r#"{"no\u0064e":"evil","#, 1);
    assert_eq!(bad_line(plain(&strict(), &format!("{ACTION}\n{d}\n"))), 2);
}

#[test]
fn create_on_sessions_is_checked_like_index() {
    let create = ACTION.replace("\"index\"", "\"create\"");
    assert!(plain(&strict(), &format!("{create}\n{}\n", doc(SENSOR))).is_ok());
    assert!(plain(&strict(), &format!("{create}\n{}\n", doc("x"))).is_err());
}

#[test]
fn strict_fields_sources_must_be_objects_and_updates_doc_only() {
    let idx = r#"{"index":{"_index":"arkime_fields","_id":"a"}}"#;
    let upd = r#"{"update":{"_index":"arkime_fields","_id":"a"}}"#;
    assert!(plain(&strict(), &format!("{idx}\n[1]\n")).is_err());
    assert!(plain(&strict(), &format!("{idx}\n{{\"a\":1,\"a\":1}}\n")).is_err());
    assert!(plain(&strict(), &format!("{upd}\n{{\"script\":\"x\"}}\n")).is_err());
    assert!(plain(&strict(), &format!("{upd}\n{{\"doc\":{{}}}}\n")).is_ok());
    assert!(plain(&lax(), &format!("{upd}\n{{\"script\":\"x\"}}\n")).is_ok());
}

// ---- line structure ----

#[test]
fn blank_lines_are_errors_in_strict_and_skipped_in_lax() {
    for body in [
        format!("\n{}", pair(SENSOR)),
        format!("{}\n{}", pair(SENSOR), pair(SENSOR)),
        format!("{} \t\n", pair(SENSOR)),
    ] {
        assert!(plain(&strict(), &body).is_err());
        // Lax forwards them as they are (ES skips them too).
        assert_eq!(plain(&lax(), &body).unwrap(), body.as_bytes());
    }
    // Strict: an action must be directly followed by its source line.
    assert_eq!(
        bad_line(plain(&strict(), &format!("{ACTION}\n\n{}\n", doc(SENSOR)))),
        2
    );
}

#[test]
fn lax_passes_the_line_after_an_action_unchecked_whatever_it_is() {
    // Even a line that looks like an action is a source line there (as ES pairs them).
    let body = format!(
        "{ACTION}\n{{\"delete\":{{\"_index\":\"evil\"}}}}\n{}",
        pair("x")
    );
    assert!(plain(&lax(), &body).is_ok());
    // A blank line after an action is its (empty) source, so the doc becomes an action.
    let body = format!("{ACTION}\n\n{}\n", doc(SENSOR));
    assert_eq!(bad_line(plain(&lax(), &body)), 3);
    let body = format!("{ACTION}\nnot json at all\n");
    assert!(plain(&lax(), &body).is_ok());
}

#[test]
fn carriage_return_at_line_end_is_an_error_in_strict_mode_only() {
    let crlf = pair(SENSOR).replace('\n', "\r\n");
    assert_eq!(bad_line(plain(&strict(), &crlf)), 1);
    assert!(plain(&lax(), &crlf).is_ok());
    let cr_doc = format!("{ACTION}\n{}\r\n", doc(SENSOR));
    assert_eq!(bad_line(plain(&strict(), &cr_doc)), 2);
}

#[test]
fn missing_final_newline_is_refused_strict_and_validated_lax() {
    let body = pair(SENSOR);
    let cut = &body[..body.len() - 1];
    assert_eq!(bad_line(plain(&strict(), cut)), 2);
    assert_eq!(plain(&lax(), cut).unwrap(), cut.as_bytes());
    // Lax still validates that last line when it is an action.
    let tail = format!("{}{{\"index\":{{\"_index\":\"evil\"}}}}", pair(SENSOR));
    assert_eq!(bad_line(plain(&lax(), &tail)), 3);
}

#[test]
fn action_without_source_at_end_is_refused_in_both_modes() {
    for p in [strict(), lax()] {
        assert_eq!(
            bad_line(plain(&p, &format!("{}{ACTION}\n", pair(SENSOR)))),
            3
        );
    }
    assert_eq!(
        bad_line(plain(&lax(), &format!("{}{ACTION}", pair(SENSOR)))),
        3
    );
}

#[test]
fn empty_body_releases_nothing() {
    assert_eq!(plain(&strict(), "").unwrap(), "");
    assert_eq!(
        validate_all(&lax(), SENSOR, BodyEncoding::Identity, b"").unwrap(),
        ""
    );
}

#[test]
fn error_line_numbers_count_every_line() {
    let body = format!("{}{}{ACTION}\n{{}}\n", pair(SENSOR), pair(SENSOR));
    assert_eq!(bad_line(plain(&strict(), &body)), 6);
    let gzipped = gz(body.as_bytes());
    assert_eq!(
        bad_line(validate_all(
            &strict(),
            SENSOR,
            BodyEncoding::Gzip,
            &gzipped
        )),
        6
    );
}

// ---- streaming ----

#[test]
fn action_is_released_only_with_its_source_line() {
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Identity);
    let a = format!("{ACTION}\n");
    assert_eq!(v.feed(Bytes::from(a.clone()), false).unwrap(), "");
    let d = format!("{}\n", doc(SENSOR));
    let (d1, d2) = d.split_at(1000);
    assert_eq!(v.feed(Bytes::from(d1.to_string()), false).unwrap(), "");
    let out = v.feed(Bytes::from(d2.to_string()), true).unwrap();
    assert_eq!(out, strict_sent(&format!("{a}{d}")));
}

#[test]
fn bad_source_line_never_leaves_an_orphan_action_upstream() {
    let body = format!("{}{ACTION}\n{}\n", pair(SENSOR), doc("evil"));
    let good = pair(SENSOR);
    // Cut right after the second action line.
    let cut = good.len() + ACTION.len() + 1;
    let (r, out) = run(
        &strict(),
        BodyEncoding::Identity,
        &[&body.as_bytes()[..cut], &body.as_bytes()[cut..]],
    );
    assert!(r.is_err());
    assert_eq!(out, strict_sent(&good));
}

#[test]
fn released_bytes_are_a_slice_of_the_chunk_when_nothing_is_carried() {
    // Lax: nothing is rewritten (strict rewrites in place, see above).
    let body = Bytes::from(pair(SENSOR).repeat(3));
    let mut v = BulkValidator::new(&lax(), SENSOR, BodyEncoding::Identity);
    let out = v.feed(body.clone(), false).unwrap();
    assert_eq!(out.len(), body.len());
    assert_eq!(out.as_ptr(), body.as_ptr(), "no copy");
    // With a partial line at the end, the released prefix is still a slice.
    let more = Bytes::from(format!("{}{ACTION}\n{{\"node", pair(SENSOR)));
    let mut v = BulkValidator::new(&lax(), SENSOR, BodyEncoding::Identity);
    let out = v.feed(more.clone(), false).unwrap();
    assert_eq!(out.as_ptr(), more.as_ptr());
    assert_eq!(out.len(), pair(SENSOR).len());
}

#[test]
fn after_a_refusal_nothing_more_is_released() {
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Identity);
    let e = v.feed(Bytes::from("garbage\n"), false).unwrap_err();
    assert_eq!(v.feed(Bytes::from(pair(SENSOR)), false), Err(e.clone()));
    assert_eq!(v.feed(Bytes::new(), true), Err(e));
}

#[test]
fn eos_may_come_with_an_empty_chunk() {
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Identity);
    let body = pair(SENSOR);
    assert_eq!(
        v.feed(Bytes::from(body.clone()), false).unwrap(),
        strict_sent(&body)
    );
    assert_eq!(v.feed(Bytes::new(), true).unwrap(), "");
    // Nothing may follow the end.
    assert_eq!(v.feed(Bytes::new(), true).unwrap(), "");
    assert!(v.feed(Bytes::from("x"), true).is_err());
}

#[test]
fn stats_count_lines_actions_docs_and_bytes() {
    let body = format!(
        "{}{}",
        pair(SENSOR),
        "{\"delete\":{\"_index\":\"arkime_fields\",\"_id\":\"a\"}}\n"
    );
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Gzip);
    let gzipped = gz(body.as_bytes());
    let out = v.feed(Bytes::from(gzipped.clone()), true).unwrap();
    assert_eq!(
        v.stats(),
        &BulkStats {
            lines: 3,
            actions: 2,
            actions_without_id: 0,
            docs: 1,
            bytes_in: gzipped.len() as u64,
            bytes_out: out.len() as u64,
            inflate: InflatePath::Streamed,
        }
    );
    assert_eq!(out.len(), body.len());
}

#[test]
fn validator_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<BulkValidator>();
}

// ---- limits ----

fn small_limits(p: Policy) -> Policy {
    Policy {
        limits: Limits {
            max_line: 4096,
            max_body: 100_000,
            max_inflated: 200_000,
            max_chunk_inflated: 50_000,
            ..Limits::default()
        },
        ..p
    }
}

#[test]
fn a_line_over_max_line_is_refused_before_its_newline_arrives() {
    let p = small_limits(strict());
    let mut v = BulkValidator::new(&p, SENSOR, BodyEncoding::Identity);
    assert!(v.feed(Bytes::from(pair(SENSOR)), false).is_ok());
    assert!(v.feed(Bytes::from(vec![b'x'; 4096]), false).is_ok());
    assert!(matches!(
        v.feed(Bytes::from_static(b"x"), false),
        Err(Reject::TooLarge(_))
    ));
    // Exactly max_line is fine.
    let line = format!(
        "{{\"node\":\"{SENSOR}\",\"p\":\"{}\"}}",
        "a".repeat(4096 - 27)
    );
    assert_eq!(line.len(), 4096);
    assert!(plain(&p, &format!("{ACTION}\n{line}\n")).is_ok());
    let line = format!(
        "{{\"node\":\"{SENSOR}\",\"p\":\"{}\"}}",
        "a".repeat(4097 - 27)
    );
    assert!(matches!(
        plain(&p, &format!("{ACTION}\n{line}\n")),
        Err(Reject::TooLarge(_))
    ));
}

#[test]
fn body_over_max_body_is_refused() {
    let p = small_limits(lax());
    let body = pair(SENSOR).repeat(60);
    assert!(body.len() > 100_000);
    assert!(matches!(plain(&p, &body), Err(Reject::TooLarge(_))));
    let (r, out) = run(
        &p,
        BodyEncoding::Identity,
        &split_at(body.as_bytes(), &[50_000]),
    );
    assert!(matches!(r, Err(Reject::TooLarge(_))));
    assert!(out.len() <= 50_000);
}

// ---- gzip ----

#[test]
fn truncated_gzip_is_bad_encoding_and_its_last_unit_is_never_released() {
    let body = pair(SENSOR).repeat(3);
    let g = gz(body.as_bytes());
    for cut in [0, 1, 10, g.len() / 2, g.len() - 8, g.len() - 1] {
        let (r, out) = run(&strict(), BodyEncoding::Gzip, &[&g[..cut]]);
        assert!(matches!(r, Err(Reject::BadEncoding(_))), "cut {cut}: {r:?}");
        assert!(out.len() < body.len());
    }
}

#[test]
fn gzip_last_unit_waits_for_the_trailer_and_end_of_stream() {
    let body = pair(SENSOR).repeat(3);
    let g = gz(body.as_bytes());
    let (head, trailer) = g.split_at(g.len() - 8);
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Gzip);
    let first = v.feed(Bytes::copy_from_slice(head), false).unwrap();
    assert_eq!(first, strict_sent(&pair(SENSOR).repeat(2)));
    let rest = v.feed(Bytes::copy_from_slice(trailer), true).unwrap();
    assert_eq!(rest, strict_sent(&pair(SENSOR)));
    // A good trailer without end of stream still holds the last unit: garbage may follow.
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Gzip);
    assert_eq!(
        v.feed(Bytes::from(g.clone()), false).unwrap(),
        strict_sent(&pair(SENSOR).repeat(2))
    );
    assert!(matches!(
        v.feed(Bytes::from_static(b"\0"), true),
        Err(Reject::BadEncoding(_))
    ));
    let mut v = BulkValidator::new(&strict(), SENSOR, BodyEncoding::Gzip);
    assert_eq!(
        v.feed(Bytes::from(g), false).unwrap(),
        strict_sent(&pair(SENSOR).repeat(2))
    );
    assert_eq!(
        v.feed(Bytes::new(), true).unwrap(),
        strict_sent(&pair(SENSOR))
    );
}

#[test]
fn corrupt_gzip_is_bad_encoding() {
    let body = pair(SENSOR).repeat(3);
    let mut crc = gz(body.as_bytes());
    let n = crc.len();
    crc[n - 6] ^= 0x40;
    let (r, out) = run(&strict(), BodyEncoding::Gzip, &[&crc]);
    assert!(matches!(r, Err(Reject::BadEncoding(_))));
    assert!(out.is_empty());
    let mut mid = gz(body.as_bytes());
    mid[n / 2] ^= 0xFF;
    assert!(validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &mid).is_err());
    assert!(matches!(
        validate_all(&strict(), SENSOR, BodyEncoding::Gzip, body.as_bytes()),
        Err(Reject::BadEncoding(_))
    ));
}

#[test]
fn trailing_garbage_or_second_member_is_bad_encoding() {
    let body = pair(SENSOR);
    let mut junk = gz(body.as_bytes());
    junk.extend_from_slice(b"\n");
    assert!(matches!(
        validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &junk),
        Err(Reject::BadEncoding(_))
    ));
    let mut two = gz(body.as_bytes());
    two.extend(gz(body.as_bytes()));
    assert!(matches!(
        validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &two),
        Err(Reject::BadEncoding(_))
    ));
    // Also when the extra bytes arrive in a later chunk.
    let (r, _) = run(
        &strict(),
        BodyEncoding::Gzip,
        &[&gz(body.as_bytes()), &gz(body.as_bytes())],
    );
    assert!(matches!(r, Err(Reject::BadEncoding(_))));
}

#[test]
fn gzip_bomb_is_refused_without_inflating_it_all() {
    // 40 MB of blanks (~40 KB compressed) in one chunk: over the default 16 MB per-chunk cap.
    let p = Policy::default();
    let mut e = GzEncoder::new(Vec::new(), Compression::new(9));
    let line = vec![b' '; 1 << 20];
    for _ in 0..40 {
        e.write_all(&line).unwrap();
    }
    let bomb = e.finish().unwrap();
    let t = std::time::Instant::now();
    let r = validate_all(&p, SENSOR, BodyEncoding::Gzip, &bomb);
    assert!(matches!(r, Err(Reject::TooLarge(_))), "{r:?}");
    assert!(t.elapsed().as_secs() < 10);
}

#[test]
fn inflated_total_over_max_inflated_is_refused() {
    let p = small_limits(lax());
    let body = pair(SENSOR).repeat(100);
    assert!(body.len() > 200_000);
    let g = gz(body.as_bytes());
    let parts: Vec<&[u8]> = g.chunks(2000).collect();
    let (r, _) = run(&p, BodyEncoding::Gzip, &parts);
    assert!(matches!(r, Err(Reject::TooLarge(_))), "{r:?}");
}

// ---- properties ----

/// Pieces of a body: valid units, invalid ones and framing oddities, in both modes.
fn piece() -> impl Strategy<Value = String> {
    let small = |n: &str| format!("{ACTION}\n{{\"node\":\"{n}\",\"a\":1}}\n");
    prop_oneof![
        4 => Just(small(SENSOR)),
        2 => Just(pair(SENSOR)),
        1 => Just("{\"delete\":{\"_index\":\"arkime_fields\",\"_id\":\"x\"}}\n".to_string()),
        1 => Just("{\"update\":{\"_index\":\"arkime_fields\",\"_id\":\"x\"}}\n{\"doc\":{}}\n".to_string()),
        1 => Just(small("other")),
        1 => Just(format!("{ACTION}\n{{\"a\":1}}\n")),
        1 => Just("\n".to_string()),
        1 => Just(" \r\n".to_string()),
        1 => Just(format!("{ACTION}\r\n{{\"node\":\"{SENSOR}\"}}\n")),
        1 => Just("{\"index\":{\"_index\":\"evil_sessions3-260819\"}}\n{}\n".to_string()),
        1 => Just("not json\n".to_string()),
        1 => Just(format!("{ACTION}\n")),
    ]
}

fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec(piece(), 0..6), any::<bool>()).prop_map(|(ps, chop)| {
        let mut b = ps.concat().into_bytes();
        if chop {
            b.pop();
        }
        b
    })
}

fn policies() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(strict()), Just(lax())]
}

/// The released bytes are a prefix of the (inflated) body made of whole units that
/// validate on their own.
fn check_released(p: &Policy, body: &[u8], out: &[u8]) -> Result<(), TestCaseError> {
    prop_assert!(
        body.starts_with(out),
        "released bytes are not a body prefix"
    );
    if out.len() < body.len() {
        prop_assert!(
            out.is_empty() || out.ends_with(b"\n"),
            "released a partial line"
        );
    }
    prop_assert!(
        validate_all(p, SENSOR, BodyEncoding::Identity, out).is_ok(),
        "released bytes do not validate alone"
    );
    Ok(())
}

/// 0: intact; 1: last byte cut; 2: a byte after the member; 3: CRC flipped.
fn damages() -> impl Strategy<Value = u8> {
    prop_oneof![3 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8), 1 => Just(3u8)]
}

/// The gzip of `body`, damaged as [`damages`] says.
fn damaged_gz(body: &[u8], damage: u8) -> Vec<u8> {
    let mut g = gz(body);
    match damage {
        1 => {
            g.pop();
        }
        2 => g.push(0),
        3 => {
            let n = g.len();
            g[n - 5] ^= 1;
        }
        _ => {}
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_split_of_a_plain_body_gives_the_same_verdict_and_bytes(
        p in policies(),
        body in body_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        empty_eos in any::<bool>(),
    ) {
        let whole = validate_all(&p, SENSOR, BodyEncoding::Identity, &body);
        let mut parts = split_at(&body, &cuts);
        if empty_eos {
            parts.push(&[]);
        }
        let (r, out) = run(&p, BodyEncoding::Identity, &parts);
        match (&whole, &r) {
            (Ok(w), Ok(())) => prop_assert_eq!(&w[..], &out[..]),
            // Same error, same line (limits are far away here).
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            _ => prop_assert!(false, "verdicts differ: {:?} vs {:?}", whole, r),
        }
        check_released(&p, &sent(&p, &body), &out)?;
    }

    #[test]
    fn any_split_of_a_gzip_body_gives_the_same_verdict_and_bytes(
        p in policies(),
        body in body_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        damage in damages(),
    ) {
        let g = damaged_gz(&body, damage);
        let whole = validate_all(&p, SENSOR, BodyEncoding::Gzip, &g);
        let (r, out) = run(&p, BodyEncoding::Gzip, &split_at(&g, &cuts));
        prop_assert_eq!(whole.is_ok(), r.is_ok(), "{:?} vs {:?}", whole, r);
        if let Ok(w) = &whole {
            prop_assert_eq!(&w[..], &out[..]);
        }
        if damage != 0 {
            // A damaged body never goes upstream whole: its last unit is held to the end.
            prop_assert!(r.is_err());
            prop_assert!(out.len() < body.len() || body.is_empty());
        }
        check_released(&p, &sent(&p, &body), &out)?;
    }

    #[test]
    fn a_stored_gzip_body_is_released_whole_or_not_at_all(
        p in policies(),
        body in body_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        damage in damages(),
    ) {
        let g = damaged_gz(&body, damage);
        // Same verdict as streaming the inflated lines; on success exactly the received
        // bytes, on refusal none.
        let whole = validate_all(&p, SENSOR, BodyEncoding::Gzip, &g);
        let v = BulkValidator::new(&p, SENSOR, BodyEncoding::Gzip).forward_original();
        let (r, out) = feed_all(v, &split_at(&g, &cuts));
        prop_assert_eq!(whole.is_ok(), r.is_ok(), "{:?} vs {:?}", whole, r);
        if r.is_ok() && p.strict {
            // Strict: no store and forward (the `create` lines), the inflated lines.
            prop_assert_eq!(&out[..], &sent(&p, &body)[..]);
        } else if r.is_ok() {
            prop_assert_eq!(&out[..], &g[..]);
        } else if p.strict {
            check_released(&p, &sent(&p, &body), &out)?;
        } else {
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn a_line_over_max_line_is_always_refused_never_truncated(
        p in policies(),
        before in prop::collection::vec(Just(format!("{ACTION}\n{{\"node\":\"{SENSOR}\"}}\n")), 0..4),
        extra in 1usize..300,
        as_source in any::<bool>(),
        newline in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        gzip in any::<bool>(),
    ) {
        let p = small_limits(p);
        let long = format!("{{\"node\":\"{SENSOR}\",\"p\":\"{}\"}}", "a".repeat(4096 + extra - 27));
        let head = format!("{}{}", before.concat(), if as_source { format!("{ACTION}\n") } else { String::new() });
        let mut body = format!("{head}{long}");
        if newline {
            body.push('\n');
            body.push_str(&format!("{ACTION}\n{{\"node\":\"{SENSOR}\"}}\n"));
        }
        let (enc, wire) = if gzip {
            (BodyEncoding::Gzip, gz(body.as_bytes()))
        } else {
            (BodyEncoding::Identity, body.clone().into_bytes())
        };
        let (r, out) = run(&p, enc, &split_at(&wire, &cuts));
        prop_assert!(matches!(r, Err(Reject::TooLarge(_))), "{:?}", r);
        // Nothing of the long line (nor an action waiting for it) went upstream.
        prop_assert!(out.len() <= before.concat().len());
        prop_assert!(sent(&p, body.as_bytes()).starts_with(&out));
    }
}

// ---- whole-body inflate (libdeflate) against streaming (zlib-ng) ----

#[test]
fn whole_body_inflate_releases_nothing_before_the_end_then_the_streamed_bytes() {
    let body = pair(SENSOR).repeat(200);
    let g = gz(body.as_bytes());
    let used = budget();
    let mut v = whole_validator(&strict(), used, 1 << 30, g.len());
    let (a, b) = g.split_at(g.len() / 2);
    assert!(v.feed(Bytes::copy_from_slice(a), false).unwrap().is_empty());
    let out = v.feed(Bytes::copy_from_slice(b), true).unwrap();
    assert_eq!(out, strict_sent(&body));
    assert_eq!(
        out,
        validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &g).unwrap()
    );
    // The compressed body and the inflated output are counted until the bytes are dropped.
    assert_eq!(
        used.load(std::sync::atomic::Ordering::Acquire),
        g.len() + body.len()
    );
    drop(v);
    assert_eq!(
        used.load(std::sync::atomic::Ordering::Acquire),
        g.len() + body.len()
    );
    drop(out);
    assert_eq!(used.load(std::sync::atomic::Ordering::Acquire), 0);
}

#[test]
fn whole_body_inflate_builds_anew_a_body_whose_create_lines_grow() {
    // No space to drop in the action line: its `create` is one byte longer, so the inflated
    // body cannot be rewritten in place.
    let compact = ACTION.replace(", \"_id\": ", ",\"_id\":");
    assert_eq!(compact.len() + 2, ACTION.len());
    let body = format!("{compact}\n{}\n", doc(SENSOR)).repeat(30) + &pair(SENSOR).repeat(30);
    let g = gz(body.as_bytes());
    let v = whole_validator(&strict(), budget(), 1 << 30, g.len());
    let (r, out) = feed_all(v, &[&g]);
    assert_eq!(r, Ok(()));
    let streamed = validate_all(&strict(), SENSOR, BodyEncoding::Gzip, &g).unwrap();
    assert!(out == streamed, "whole and streamed bodies differ");
    assert_eq!(out.len(), body.len() + 30);
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches("{\"create\":{").count(), 60);
    assert!(!text.contains("{\"index\":"));
}

#[test]
fn whole_body_inflate_without_room_for_the_output_streams_the_held_chunks() {
    let body = pair(SENSOR).repeat(50);
    let g = gz(body.as_bytes());
    let used = budget();
    // Room for the compressed body only: the held chunks go through zlib-ng.
    let mut v = whole_validator(&strict(), used, g.len(), g.len());
    let parts = split_at(&g, &[100, 200]);
    for part in &parts[..2] {
        assert!(v
            .feed(Bytes::copy_from_slice(part), false)
            .unwrap()
            .is_empty());
    }
    let out = v.feed(Bytes::copy_from_slice(parts[2]), true).unwrap();
    assert_eq!(out, strict_sent(&body));
    // Its output is counted past the cap while it lives: later bodies stream meanwhile.
    assert_eq!(
        used.load(std::sync::atomic::Ordering::Acquire),
        g.len() + body.len()
    );
    assert!(super::gzip::Grant::take(used, g.len(), 1).is_none());
    drop((v, out));
    assert_eq!(used.load(std::sync::atomic::Ordering::Acquire), 0);
}

#[test]
fn whole_body_inflate_refuses_what_streaming_refuses_with_the_same_words() {
    let good = pair(SENSOR).repeat(20);
    let bad_doc = format!(
        "{}{ACTION}\n{{\"node\":\"other01\"}}\n",
        pair(SENSOR).repeat(3)
    );
    let g = gz(good.as_bytes());
    let mut trailing = g.clone();
    trailing.extend_from_slice(&g[g.len() - 8..]);
    let mut second = g.clone();
    second.extend(gz(pair(SENSOR).as_bytes()));
    let mut crc = g.clone();
    let n = crc.len();
    crc[n - 7] ^= 4;
    let cases = [
        gz(bad_doc.as_bytes()),
        trailing,
        second,
        crc,
        g[..g.len() - 3].to_vec(),
    ];
    for (i, body) in cases.iter().enumerate() {
        for p in [strict(), lax()] {
            let streamed = validate_all(&p, SENSOR, BodyEncoding::Gzip, body);
            let v = whole_validator(&p, budget(), 1 << 30, body.len());
            let (r, _) = feed_all(v, &[body]);
            // Every case is refused in strict mode; lax accepts another node's document.
            assert!(streamed.is_err() || (i == 0 && !p.strict), "case {i}");
            assert_eq!(r.err(), streamed.err(), "case {i}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn whole_body_inflate_gives_the_streamed_verdict_and_bytes(
        p in policies(),
        body in body_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        damage in damages(),
        small in any::<bool>(),
        room in any::<bool>(),
    ) {
        let p = if small { small_limits(p) } else { p };
        let g = damaged_gz(&body, damage);
        let (streamed, streamed_out) = run(&p, BodyEncoding::Gzip, &split_at(&g, &cuts));
        let used = budget();
        let cap = if room { 1 << 30 } else { g.len() };
        let v = whole_validator(&p, used, cap, g.len());
        let (r, out) = feed_all(v, &split_at(&g, &cuts));
        prop_assert_eq!(&r, &streamed);
        if r.is_ok() {
            prop_assert_eq!(&out, &streamed_out);
        } else {
            // Held whole: a refused body releases nothing.
            prop_assert!(out.is_empty());
        }
        prop_assert_eq!(used.load(std::sync::atomic::Ordering::Acquire), 0);
    }

    #[test]
    fn a_stored_body_inflated_whole_gives_the_stored_verdict_and_bytes(
        p in policies(),
        body in body_strategy(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        damage in damages(),
        room in any::<bool>(),
    ) {
        let g = damaged_gz(&body, damage);
        let stored = BulkValidator::new(&p, SENSOR, BodyEncoding::Gzip).forward_original();
        let (expected, expected_out) = feed_all(stored, &split_at(&g, &cuts));
        let used = budget();
        let cap = if room { 1 << 30 } else { g.len() };
        let grant = super::gzip::Grant::take(used, cap, g.len()).unwrap();
        let v = BulkValidator::new(&p, SENSOR, BodyEncoding::Gzip)
            .forward_original()
            .inflate_whole(grant);
        let (r, out) = feed_all(v, &split_at(&g, &cuts));
        prop_assert_eq!(&r, &expected);
        if r.is_ok() {
            // Lax: the body as received; strict (never stored): the inflated lines.
            prop_assert_eq!(&out, &expected_out);
            if !p.strict {
                prop_assert_eq!(&out, &g);
            }
        } else {
            prop_assert!(out.is_empty());
        }
        prop_assert_eq!(used.load(std::sync::atomic::Ordering::Acquire), 0);
    }
}
