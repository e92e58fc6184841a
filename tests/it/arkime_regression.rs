//! Arkime's own esProxy regression checks (`tests/esProxy.t` in the Arkime repository), re-stated
//! here against esproxy configured like Arkime's test config (`[esproxy] prefix=tests`, sensor
//! `test=pass:test;ip:127.0.0.1,::1`, `-n esproxy`) with `esProxyStrict=false`, the esProxy.js
//! compatibility mode. Every check of that file appears below, in its order.

use crate::arkime_test_ini;
use crate::harness::{basic, Osmem, Proxy, Response};

const NA: &str = "Not authorized for API";

struct Env {
    _es: Osmem,
    p: Proxy,
}

impl Env {
    fn start() -> Env {
        let es = Osmem::start();
        // What Arkime's test run has in ES before esProxy.t runs.
        let r = es.req(
            "PUT",
            "/_template/tests_sessions3_template",
            br#"{"index_patterns":["tests_sessions3-*"],"mappings":{"_meta":{"molochDbVersion":86}}}"#,
        );
        assert!(r.status < 300, "{}", r.text());
        for (path, doc) in [
            (
                "/tests_stats/_doc/test",
                r#"{"nodeName":"test","hostname":"test","currentTime":1}"#,
            ),
            (
                "/tests_files/_doc/test-1",
                r#"{"node":"test","num":1,"name":"/tmp/a.pcap","first":0,"locked":0}"#,
            ),
            (
                "/tests_fields/_doc/ip",
                r#"{"friendlyName":"All IP fields","group":"general"}"#,
            ),
            (
                "/tests_sessions3-2024/_doc/240101-abc",
                r#"{"node":"test","rootId":"240101-abc"}"#,
            ),
        ] {
            let r = es.req("PUT", path, doc.as_bytes());
            assert!(r.status < 300, "{}", r.text());
        }
        let p = Proxy::start(&arkime_test_ini(&es.url(), false), "esproxy");
        Env { _es: es, p }
    }
    fn get(&self, user: &str, path: &str) -> Response {
        self.p.req(user, "GET", path, b"")
    }
    fn post(&self, path: &str, ctype: &str, body: &str) -> Response {
        self.p.req_h(
            "POST",
            path,
            &[
                ("Authorization", &basic("test:test")),
                ("Content-Type", ctype),
            ],
            body.as_bytes(),
        )
    }
    fn json(&self, path: &str, body: &str) -> Response {
        self.post(path, "application/json", body)
    }
    fn bulk(&self, body: &str) -> Response {
        self.post("/_bulk", "application/x-ndjson", body)
    }
    fn raw_status(&self, method: &str, path: &str) -> u16 {
        let raw = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
            basic("test:test")
        );
        self.p.raw(raw.as_bytes()).status
    }
}

fn refused(r: &Response, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    assert_eq!(r.text(), NA, "{what}");
}

#[test]
fn arkime_esproxy_t_auth_and_basic_allowlist() {
    let e = Env::start();
    assert_eq!(e.p.req_h("GET", "/", &[], b"").status, 401);
    assert_eq!(e.get("test:wrong", "/").status, 401);
    assert_eq!(e.get("test:test", "/").status, 200);
    for name in ["__proto__", "constructor", "toString", "hasOwnProperty"] {
        let r = e.get(
            &format!("{name}:anything"),
            "/tests_users/_doc/formtestuser",
        );
        assert_eq!(r.status, 401, "sensor '{name}' is not authenticated");
    }
    for m in ["GET", "POST", "PUT", "DELETE"] {
        refused(
            &e.p.req("test:test", m, "/_search", b""),
            &format!("{m} /_search"),
        );
    }
    refused(
        &e.get("test:test", "/_template/sessions3_template"),
        "template without prefix",
    );
    refused(
        &e.get("test:test", "/_template/arkime_sessions3_template"),
        "template of another prefix",
    );
    assert_eq!(
        e.get("test:test", "/_template/tests_sessions3_template")
            .status,
        200
    );
}

#[test]
fn arkime_esproxy_t_bulk_rules() {
    let e = Env::start();
    let ok = |body: &str, what: &str| {
        let r = e.bulk(body);
        assert_eq!(r.status, 200, "{what}: {}", r.text());
    };
    ok(
        "{\"index\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n",
        "bulk with valid prefixed sessions3 index",
    );
    refused(&e.bulk("{\"index\":{\"_index\":\"evil_sessions2_hack\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n"),
        "bulk with substring-matching bad index rejected");
    refused(&e.bulk("{\"index\":{\"_index\":\"other_sessions3-2024\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n"),
        "bulk with wrong prefix rejected");
    ok(
        "{\"delete\":{\"_index\":\"tests_fields\",\"_id\":\"1\"}}\n",
        "bulk delete to fields index succeeds",
    );
    ok("{\"delete\":{\"_index\":\"tests_fields\",\"_id\":\"1\"}}\n{\"index\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"2\"}}\n{\"field\":\"value\"}\n",
        "bulk delete then index works correctly");
    refused(
        &e.bulk("{\"delete\":{\"_index\":\"evil_fields_hack\",\"_id\":\"1\"}}\n"),
        "bulk delete to bad index rejected",
    );
    ok(
        "{\"create\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"3\"}}\n{\"field\":\"value\"}\n",
        "bulk create to sessions3 index succeeds",
    );
    ok("{\"update\":{\"_index\":\"tests_fields\",\"_id\":\"1\"}}\n{\"doc\":{\"field\":\"value\"}}\n",
        "bulk update to fields index succeeds");
    refused(&e.bulk("{\"index\":{\"_index\":\"tests_sessions3evil\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n"),
        "bulk sessions index without dash rejected");
    refused(
        &e.bulk(
            "{\"create\":{\"_index\":\"tests_fields\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n",
        ),
        "bulk create to fields index rejected",
    );
    refused(&e.bulk("{\"update\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"1\"}}\n{\"doc\":{\"field\":\"value\"}}\n"),
        "bulk update to sessions index rejected");
    refused(
        &e.bulk("not valid json\n"),
        "bulk with invalid JSON rejected",
    );
    refused(&e.bulk("{\"index\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"1\"},\"create\":{\"_index\":\"tests_sessions3-2024\",\"_id\":\"2\"}}\n{\"field\":\"value\"}\n"),
        "bulk with multiple ops in one line rejected");
}

#[test]
fn arkime_esproxy_t_session_searches() {
    let e = Env::start();
    let path = "/tests_sessions3-2024/_search";
    let r = e.json(
        path,
        r#"{"size":1000,"_source":["rootId"],"query":{"term":{"rootId":"240101-abc"}}}"#,
    );
    assert_eq!(
        r.status,
        200,
        "sessions search by rootId allowed: {}",
        r.text()
    );
    let r = e.json(path, r#"{"size":1000,"_source":["rootId"],"query":{"bool":{"filter":[{"term":{"rootId":"240101-abc"}},{"term":{"tags":"corp"}}]}}}"#);
    assert_eq!(
        r.status,
        200,
        "sessions search by rootId filter allowed: {}",
        r.text()
    );
    refused(
        &e.json(
            path,
            r#"{"query":{"bool":{"filter":[{"term":{"node":"foo"}}]}}}"#,
        ),
        "sessions search by filter without rootId rejected",
    );
    refused(&e.json(path, r#"{"query":{"bool":{"filter":[{"term":{"rootId":"240101-abc"}}],"should":[{"term":{"node":"foo"}}]}}}"#),
        "sessions search with should next to rootId filter rejected");
    refused(
        &e.json(path, r#"{"query":{"term":{"node":"foo"}}}"#),
        "sessions search by other term rejected",
    );
    refused(
        &e.json(
            path,
            r#"{"query":{"term":{"rootId":"240101-abc"},"match_all":{}}}"#,
        ),
        "sessions search with extra query clause rejected",
    );
}

#[test]
fn arkime_esproxy_t_path_confusion() {
    let e = Env::start();
    assert_eq!(
        e.get("test:test", "/_cat/health%3fz/../../_search").status,
        400,
        "GET path confusion via %3f rejected"
    );
    assert_eq!(
        e.get("test:test", "/_cat/health%23z/../../_search").status,
        400,
        "GET path confusion via %23 rejected"
    );
    let r = e.post(
        "/tests_stats/_search%3f/../../_bulk",
        "application/x-ndjson",
        "{\"index\":{\"_index\":\"evil_index\",\"_id\":\"1\"}}\n{\"field\":\"value\"}\n",
    );
    assert_eq!(r.status, 400, "POST path confusion into _bulk rejected");
    let r = e.p.req(
        "test:test",
        "DELETE",
        "/tests_files/_doc/test-%3fz/../../../tests_sessions3-2024",
        b"",
    );
    assert_eq!(
        r.status, 400,
        "DELETE path confusion to a different index rejected"
    );
    assert_eq!(
        e.get("test:test", "/tagger%3f/../../tests_users/_search")
            .status,
        400,
        "GET /tagger path confusion via %3f rejected"
    );
    assert_eq!(
        e.get("test:test", "/tagger%23/../../tests_users/_search")
            .status,
        400,
        "GET /tagger path confusion via %23 rejected"
    );
    assert_eq!(
        e.json("/tagger%3f/../../tests_users/_count", "{}").status,
        400,
        "POST /tagger path confusion via %3f rejected"
    );
    assert_eq!(
        e.get(
            "test:test",
            "/tests_users/_doc/%3f/../../../_cluster/settings"
        )
        .status,
        400,
        "GET users doc path confusion into _cluster rejected"
    );
    assert_eq!(
        e.raw_status("GET", "/tests_files/_doc/test-1"),
        200,
        "raw socket own files doc allowed"
    );
    assert_eq!(
        e.raw_status(
            "DELETE",
            "/tests_files/_doc/test-5%3f\\..\\..\\..\\tests_esproxy_nosuchindex"
        ),
        400,
        "DELETE backslash path confusion rejected"
    );
}

#[test]
fn arkime_esproxy_t_capture_query_strings_and_node_scoping() {
    let e = Env::start();
    assert_eq!(
        e.get("test:test", "/_cat/health?format=json").status,
        200,
        "GET _cat/health with format query allowed"
    );
    assert_eq!(
        e.get("test:test", "/tests_fields/_search?size=3000").status,
        200,
        "GET fields _search with size query allowed"
    );
    assert_eq!(
        e.get(
            "test:test",
            "/_template/tests_sessions3_template?filter_path=**._meta"
        )
        .status,
        200,
        "GET sessions3 template with filter_path query allowed"
    );

    let r = e.get("test:test", "/tests_stats/_doc/test");
    assert_eq!(r.status, 200, "GET stats doc allowed");
    let stats = r.json();
    let version = stats["_version"].as_u64().unwrap() + 1;
    let r = e.json(
        &format!("/tests_stats/_doc/test?version_type=external&version={version}"),
        &stats["_source"].to_string(),
    );
    assert_eq!(
        r.status,
        200,
        "POST stats doc with version query allowed: {}",
        r.text()
    );

    let r = e.json(
        "/tests_sequence/_doc/fn-test?version_type=external&version=100",
        "{}",
    );
    assert!(
        [200, 201, 409].contains(&r.status),
        "POST sequence doc with version query allowed: {}",
        r.status
    );
    assert_ne!(
        r.text(),
        NA,
        "POST sequence doc with version query not rejected by guard"
    );

    let r = e.json(
        "/tests_files/_doc/test-99999?refresh=true",
        r#"{"node":"test","num":99999,"name":"/tmp/esProxy-query.pcap","first":0,"locked":0}"#,
    );
    assert!(
        [200, 201].contains(&r.status),
        "POST files doc with refresh query allowed: {}",
        r.status
    );
    let r = e.json(
        "/tests_files/_update/test-99999",
        r#"{"doc": {"filesize": 1234, "packets": 5}}"#,
    );
    assert_eq!(r.status, 200, "POST own files update allowed: {}", r.text());
    refused(
        &e.json(
            "/tests_files/_update/test2-99999",
            r#"{"doc": {"filesize": 1234}}"#,
        ),
        "POST files update for other node rejected",
    );
    refused(
        &e.json(
            "/tests_files/_update/test-99999",
            r#"{"doc": {"node": "test2"}}"#,
        ),
        "POST files update changing node rejected",
    );
    refused(
        &e.json(
            "/tests_files/_update/test-99999",
            r#"{"script": {"source": "ctx._source.node='test2'"}}"#,
        ),
        "POST files update with script rejected",
    );
    let r =
        e.p.req("test:test", "DELETE", "/tests_files/_doc/test-99999", b"");
    assert_eq!(r.status, 200, "DELETE files doc allowed");

    refused(
        &e.get("test:test", "/tests_files/_doc/test2-1"),
        "GET file doc for sibling node name (test2) rejected",
    );
    refused(
        &e.json(
            "/tests_files/_doc/test2-1",
            r#"{"node":"test2","name":"evil.pcap"}"#,
        ),
        "POST file doc replace for sibling node name (test2) rejected",
    );
    refused(
        &e.json(
            "/tests_dstats/_doc/test2-59-60",
            r#"{"node":"test2","interval":60}"#,
        ),
        "POST dstats doc for sibling node name (test2) rejected",
    );
    let r = e.json(
        "/tests_dstats/_doc/test-59-60?refresh=true",
        r#"{"node":"test","interval":60}"#,
    );
    assert!(
        [200, 201].contains(&r.status),
        "POST own dstats doc allowed: {}",
        r.status
    );
    refused(
        &e.get("test:test", "/tests_files/_doc/test-x-1"),
        "GET file doc for dash-joined sibling name (test-x) rejected",
    );
    refused(
        &e.json(
            "/tests_files/_doc/test-x-1",
            r#"{"node":"test-x","name":"evil.pcap"}"#,
        ),
        "POST file doc replace for dash-joined sibling name (test-x) rejected",
    );

    refused(
        &e.get("test:test", "/other_sessions3-2024/_doc/1"),
        "GET session doc under unrelated sessions3 prefix rejected",
    );
    refused(
        &e.get("test:test", "/other_sessions2-2024/_doc/1"),
        "GET session doc under unrelated sessions2 prefix rejected",
    );
    refused(
        &e.json(
            "/other_sessions3-2024/_update/1",
            r#"{"script":{"source":"ctx._source.marker='evil'"}}"#,
        ),
        "POST session update under unrelated sessions3 prefix rejected",
    );
    let r = e.get("test:test", "/tests_sessions3-2024/_doc/nonexistent-id");
    assert_ne!(
        r.text(),
        NA,
        "GET session doc under correct prefix is proxied to ES, not blocked by guard"
    );
}
