//! Strict mode (issue #3, SPEC §4 loose spots and §5): a hijacked sensor can touch nothing but
//! its own data. Each hostile request is refused, ES holds nothing it carried past its last
//! valid line, and every refusal is logged exactly once.

use crate::fleet_ini;
use crate::harness::{action_line, session_doc, sid, Osmem, Proxy};

const INDEX: &str = "arkime_sessions3-260819";
const GOOD_BEFORE: usize = 3;

/// Valid pairs (ids `260819-b…`), then `bad` (one or two raw lines), then valid pairs
/// (ids `260819-a…`).
fn sandwich(bad: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for i in 0..GOOD_BEFORE {
        body.extend_from_slice(action_line(INDEX, &sid("b", i)).as_bytes());
        body.push(b'\n');
        body.extend_from_slice(session_doc("toronto01", i).as_bytes());
        body.push(b'\n');
    }
    body.extend_from_slice(bad);
    for i in 0..3 {
        body.extend_from_slice(action_line(INDEX, &sid("a", i)).as_bytes());
        body.push(b'\n');
        body.extend_from_slice(session_doc("toronto01", i).as_bytes());
        body.push(b'\n');
    }
    body
}

fn evil_pair(doc: &[u8]) -> Vec<u8> {
    let mut v = action_line(INDEX, &sid("evil", 0)).into_bytes();
    v.push(b'\n');
    v.extend_from_slice(doc);
    v.push(b'\n');
    v
}

fn evil_action(action: &str) -> Vec<u8> {
    format!("{action}\n{{\"node\":\"toronto01\",\"n\":1}}\n").into_bytes()
}

fn hostile_bulks() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("foreign node", evil_pair(br#"{"node":"toronto011","a":1}"#)),
        (
            "escaped duplicate node",
            evil_pair(br#"{"node":"toronto01","no\u0064e":"toronto011"}"#),
        ),
        (
            "escaped node key naming another sensor",
            evil_pair(br#"{"no\u0064e":"toronto011"}"#),
        ),
        (
            "nested node only",
            evil_pair(br#"{"x":{"node":"toronto01"}}"#),
        ),
        (
            "duplicate node",
            evil_pair(br#"{"node":"toronto01","node":"toronto011"}"#),
        ),
        (
            "metadata key in source",
            evil_pair(br#"{"node":"toronto01","_routing":"x"}"#),
        ),
        ("not an object", evil_pair(br#"["node","toronto01"]"#)),
        ("node not a string", evil_pair(br#"{"node":["toronto01"]}"#)),
        ("malformed", evil_pair(br#"{"node":"toronto01""#)),
        ("trailing garbage", evil_pair(br#"{"node":"toronto01"} x"#)),
        ("trailing comma", evil_pair(br#"{"node":"toronto01",}"#)),
        ("comment", evil_pair(br#"{"node":"toronto01"}/*c*/"#)),
        ("carriage return", evil_pair(b"{\"node\":\"toronto01\"}\r")),
        (
            "byte-order mark",
            evil_pair(b"\xEF\xBB\xBF{\"node\":\"toronto01\"}"),
        ),
        (
            "invalid UTF-8",
            evil_pair(b"{\"node\":\"toronto01\",\"a\":\"\xff\"}"),
        ),
        ("blank line", b"\n".to_vec()),
        (
            "extra metadata",
            evil_action(
                r#"{"index":{"_index":"arkime_sessions3-260819","_id":"260819-e","pipeline":"p"}}"#,
            ),
        ),
        (
            "routing metadata",
            evil_action(r#"{"index":{"_index":"arkime_sessions3-260819","routing":"x"}}"#),
        ),
        (
            "not a rotation",
            evil_action(r#"{"index":{"_index":"arkime_sessions3-261399","_id":"261399-e"}}"#),
        ),
        (
            "id from another rotation",
            evil_action(r#"{"index":{"_index":"arkime_sessions3-260819","_id":"250101-e"}}"#),
        ),
        (
            "users index",
            evil_action(r#"{"index":{"_index":"arkime_users","_id":"admin"}}"#),
        ),
        (
            "wildcard index",
            evil_action(r#"{"index":{"_index":"arkime_sessions3-*","_id":"260819-e"}}"#),
        ),
        (
            "duplicate _index",
            evil_action(
                r#"{"index":{"_index":"arkime_sessions3-260819","_index":"arkime_users"}}"#,
            ),
        ),
        (
            "update on sessions",
            format!(
                "{}\n{{\"doc\":{{\"node\":\"toronto01\"}}}}\n",
                r#"{"update":{"_index":"arkime_sessions3-260819","_id":"260819-b0"}}"#
            )
            .into_bytes(),
        ),
        (
            "delete on sessions",
            b"{\"delete\":{\"_index\":\"arkime_sessions3-260819\",\"_id\":\"260819-b0\"}}\n"
                .to_vec(),
        ),
        (
            "script on fields",
            format!(
                "{}\n{}\n",
                r#"{"update":{"_index":"arkime_fields","_id":"ip"}}"#,
                r#"{"script":{"source":"ctx.op='delete'"}}"#
            )
            .into_bytes(),
        ),
        (
            "two operations",
            evil_action(
                r#"{"index":{"_index":"arkime_sessions3-260819"},"delete":{"_index":"arkime_fields"}}"#,
            ),
        ),
    ]
}

/// The proxy's log holds exactly `cases` denial lines: every refusal is logged once.
fn assert_denied_once_each(log: &std::path::Path, cases: usize) {
    let denials = std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" denied "))
        .count();
    assert_eq!(denials, cases, "every refusal is logged exactly once");
}

#[test]
fn hostile_bulks_are_refused_and_nothing_after_the_bad_line_lands() {
    let es = Osmem::start();
    let (p, log) = Proxy::start_logged(&fleet_ini(&es.url(), ""), "default");
    let cases = hostile_bulks();
    for (what, bad) in &cases {
        let r = p.req("toronto01:secret1", "POST", "/_bulk", &sandwich(bad));
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(r.text(), "Not authorized for API", "{what}");
        let ids = es.ids(INDEX);
        assert!(
            ids.iter().all(|id| id.starts_with("260819-b")),
            "{what}: ES holds {ids:?}"
        );
    }
    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto011"}}"#), 0);
    assert_eq!(es.count("arkime_users", r#"{"match_all":{}}"#), 0);
    assert_eq!(es.count("arkime_fields", r#"{"match_all":{}}"#), 0);
    assert_denied_once_each(&log, cases.len());
}

#[test]
fn hostile_single_requests_are_refused_and_store_nothing() {
    let es = Osmem::start();
    let (p, log) = Proxy::start_logged(&fleet_ini(&es.url(), ""), "default");
    let cases: &[(&str, &str, &str)] = &[
        (
            "POST",
            "/arkime_stats/_doc/toronto01",
            r#"{"nodeName":"toronto011","hostname":"h"}"#,
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto01?pipeline=x",
            r#"{"nodeName":"toronto01"}"#,
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto01?version_type=force&version=5",
            r#"{"nodeName":"toronto01"}"#,
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto01?filter_path=_id",
            r#"{"nodeName":"toronto01"}"#,
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto011",
            r#"{"nodeName":"toronto011"}"#,
        ),
        (
            "POST",
            "/arkime_dstats/_doc/toronto01-5-5",
            r#"{"nodeName":"toronto011","interval":5}"#,
        ),
        (
            "POST",
            "/arkime_dstats/_doc/toronto01-1440-5",
            r#"{"nodeName":"toronto01","interval":5}"#,
        ),
        (
            "POST",
            "/arkime_dstats/_doc/toronto01-5-7",
            r#"{"nodeName":"toronto01","interval":7}"#,
        ),
        (
            "POST",
            "/arkime_files/_doc/toronto01-5?routing=x",
            r#"{"node":"toronto01","num":5}"#,
        ),
        (
            "POST",
            "/arkime_files/_doc/toronto01-5",
            r#"{"node":"toronto011","num":5}"#,
        ),
        (
            "POST",
            "/arkime_files/_doc/toronto011-5",
            r#"{"node":"toronto011","num":5}"#,
        ),
        (
            "POST",
            "/arkime_files/_update/toronto01-5",
            r#"{"doc":{"node":"toronto011"}}"#,
        ),
        (
            "POST",
            "/arkime_files/_update/toronto01-5",
            r#"{"script":{"source":"ctx.op='delete'"}}"#,
        ),
        ("POST", "/arkime_sequence/_doc/fn-toronto01", r#"{"a":1}"#),
        ("POST", "/arkime_sequence/_doc/fn-toronto011", "{}"),
        ("POST", "/arkime_fields/_doc/ip", r#"{"friendlyName":"x"}"#),
        (
            "POST",
            "/tagger,arkime_sessions3-*/_delete_by_query",
            r#"{"query":{"match_all":{}}}"#,
        ),
        ("POST", "/tagger/_doc/x", "{}"),
        (
            "POST",
            "/arkime_files/_search",
            r#"{"query":{"bool":{"filter":[{"terms":{"node":["toronto01","toronto011"]}}]}},"size":500}"#,
        ),
        (
            "POST",
            "/arkime_files/_search",
            r#"{"query":{"bool":{"filter":[{"terms":{"node":["toronto01"]}}]}},"aggs":{"a":{"terms":{"field":"node"}}}}"#,
        ),
        (
            "POST",
            "/arkime_sessions3-260819/_search",
            r#"{"query":{"ids":{"values":["260819-b0"]}},"aggs":{"g":{"global":{}}}}"#,
        ),
        (
            "POST",
            "/arkime_sessions3-260819,arkime_users/_search",
            r#"{"query":{"ids":{"values":["260819-b0"]}}}"#,
        ),
        (
            "POST",
            "/arkime_sessions3-260819/_search",
            r#"{"query":{"ids":{"values":["a","b"]}}}"#,
        ),
        (
            "POST",
            "/arkime_sessions3-260819/_update/260819-b0",
            r#"{"script":{"source":"ctx.op='delete'"}}"#,
        ),
        (
            "POST",
            "/arkime_sessions3-260819/_update/260819-b0",
            r#"{"script":{"source":"ctx._source.node='toronto011'"}}"#,
        ),
        (
            "POST",
            "/arkime_sessions3-260819/_update/260819-b0",
            r#"{"doc":{"node":"toronto011"}}"#,
        ),
        ("GET", "/arkime_files/_search?q=node%3A%22toronto011%22", ""),
        ("GET", "/arkime_users/_search", ""),
        ("GET", "/%2e%2e/_search", ""),
        (
            "GET",
            "/arkime_stats/_doc/toronto01%2F..%2F..%2F_search",
            "",
        ),
        ("GET", "/arkime_stats/_doc//toronto01", ""),
        ("GET", "/arkime_stats/_doc/toronto01;x", ""),
        ("DELETE", "/arkime_files/_doc/toronto011-1", ""),
        ("DELETE", "/arkime_sessions3-260819", ""),
        (
            "PUT",
            "/arkime_stats/_doc/toronto01",
            r#"{"nodeName":"toronto01"}"#,
        ),
        ("POST", "/_bulk?pipeline=x", ""),
        ("POST", "/_bulk?routing=x", ""),
        ("POST", "/_snapshot/x/_restore", "{}"),
        (
            "POST",
            "/arkime_users/_update/admin",
            r#"{"doc":{"roles":["superAdmin"]}}"#,
        ),
    ];
    for (m, path, body) in cases {
        let r = p.req("toronto01:secret1", m, path, body.as_bytes());
        assert_eq!(r.status, 400, "{m} {path}: {}", r.text());
        assert_eq!(r.text(), "Not authorized for API", "{m} {path}");
    }
    for index in [
        "arkime_stats",
        "arkime_dstats",
        "arkime_files",
        "arkime_sequence",
        "arkime_fields",
        "arkime_users",
    ] {
        assert_eq!(es.count(index, r#"{"match_all":{}}"#), 0, "{index}");
    }
    assert_denied_once_each(&log, cases.len());
}

#[test]
fn the_same_requests_in_the_sensors_own_name_pass() {
    // The counterpart of the hostile tables: what a real capture sends is admitted.
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let ok: &[(&str, &str, &str)] = &[
        (
            "POST",
            "/arkime_stats/_doc/toronto01?version_type=external&version=3",
            r#"{"ver": "6.7.0","nodeName": "toronto01","hostname": "h","interval": 1}"#,
        ),
        (
            "POST",
            "/arkime_dstats/_doc/toronto01-5-5",
            r#"{"ver": "6.7.0","nodeName": "toronto01","hostname": "h","interval": 5}"#,
        ),
        (
            "POST",
            "/arkime_files/_doc/toronto01-5?refresh=true",
            r#"{"num":5, "name":"/data/toronto01-260819-00000005.pcap", "first":1, "node":"toronto01", "locked":0}"#,
        ),
        (
            "POST",
            "/arkime_files/_update/toronto01-5",
            r#"{"doc": {"filesize": 10, "packets": 1}}"#,
        ),
        ("POST", "/arkime_sequence/_doc/fn-toronto01", "{}"),
    ];
    for (m, path, body) in ok {
        let r = p.req("toronto01:secret1", m, path, body.as_bytes());
        assert!(r.status < 300, "{m} {path}: {} {}", r.status, r.text());
    }
    let r = p.req("toronto01:secret1", "POST", "/_bulk", &sandwich(b""));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(es.ids(INDEX).len(), 6);
}
