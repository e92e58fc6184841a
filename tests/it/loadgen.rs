//! The load-test bodies (`benches/support/bulkgen.rs`, used by `benches/bulk.rs` and
//! `examples/gen_bulk.rs` for `loadtest/`) are legit capture traffic: strict validation accepts
//! every byte of them, and esproxy stores every document they carry. If the rules ever change
//! under them, this fails here rather than as non-2xx noise in a load test.

#[path = "../../benches/support/bulkgen.rs"]
mod bulkgen;

use crate::fleet_ini;
use crate::harness::{as_created, basic, post_bulk, Osmem, Proxy};
use esproxy::bulk::{validate_all, BodyEncoding};
use esproxy::policy::Policy;

const NODE: &str = "toronto01";

#[test]
fn every_loadtest_body_kind_passes_strict_validation_whole() {
    let strict = Policy::default();
    let bodies = [
        ("capture", bulkgen::capture_bulk(NODE, 256 * 1024, 1)),
        (
            "escaped",
            bulkgen::escaped_strings_bulk(NODE, 256 * 1024, 2),
        ),
        ("deep", bulkgen::deep_nesting_bulk(NODE, 256 * 1024, 60, 3)),
        ("small", bulkgen::small_docs_bulk(NODE, 256 * 1024, 4)),
    ];
    // Every byte goes upstream, session `index` lines as `create` (same length).
    let upstream = |body: &[u8]| as_created(std::str::from_utf8(body).unwrap()).into_bytes();
    for (name, body) in &bodies {
        let out = validate_all(&strict, NODE, BodyEncoding::Identity, body)
            .unwrap_or_else(|e| panic!("{name} body refused: {e:?}"));
        assert_eq!(out.as_ref(), upstream(body).as_slice(), "{name}");
        assert_eq!(out.len(), body.len(), "{name}");
    }
    let plain = &bodies[0].1;
    let out = validate_all(&strict, NODE, BodyEncoding::Gzip, &bulkgen::gzip(plain))
        .expect("gzip capture body accepted");
    assert_eq!(out.as_ref(), upstream(plain).as_slice());
}

#[test]
fn capture_documents_are_one_and_a_half_to_two_and_a_half_kilobytes() {
    let body = bulkgen::capture_bulk(NODE, 512 * 1024, 7);
    let text = String::from_utf8(body).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len() % 2, 0);
    for pair in lines.chunks(2) {
        assert!(
            pair[0].starts_with(r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-"#)
        );
        assert!(
            (1500..=2500).contains(&pair[1].len()),
            "doc of {} bytes",
            pair[1].len()
        );
    }
}

#[test]
fn esproxy_stores_every_document_of_a_loadtest_bulk_plain_and_gzip() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let auth = basic("toronto01:secret1");
    let plain = bulkgen::capture_bulk(NODE, 300 * 1024, 11);
    let docs = plain.iter().filter(|&&b| b == b'\n').count() as u64 / 2;
    let r = post_bulk(p.addr, Some(&auth), &plain, false);
    assert_eq!(r.status, 200, "{}", r.text());
    let second = bulkgen::capture_bulk(NODE, 300 * 1024, 12);
    let docs2 = second.iter().filter(|&&b| b == b'\n').count() as u64 / 2;
    let gz = bulkgen::gzip(&second);
    let r = p.gzip_bulk(&auth, &gz);
    assert_eq!(r.status, 200, "{}", r.text());
    let stored = es.count(
        "arkime_sessions3-260819",
        r#"{"term":{"node":"toronto01"}}"#,
    );
    // Ids are 24 random characters per document: the two bulks never collide.
    assert_eq!(stored, docs + docs2);
}
