//! Sensor authentication (SPEC §2), the allowlist's answers (SPEC §4) and what goes upstream.

use crate::harness::{basic, Osmem, Proxy, Recorder};
use crate::{arkime_test_ini, fleet_ini};

#[test]
fn auth_failures_get_401_with_basic_challenge_and_good_credentials_reach_es() {
    let es = Osmem::start();
    let p = Proxy::start(&arkime_test_ini(&es.url(), true), "esproxy");

    let none = p.req_h("GET", "/", &[], b"");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Basic"));
    assert!(none.body.is_empty());

    for creds in [
        "test:wrong",
        "nobody:test",
        "__proto__:x",
        "constructor:x",
        "iponly:x",
    ] {
        let r = p.req(creds, "GET", "/", b"");
        assert_eq!(r.status, 401, "{creds}");
        assert_eq!(r.header("www-authenticate"), Some("Basic"), "{creds}");
    }

    let two = p.req_h(
        "GET",
        "/",
        &[
            ("Authorization", &basic("test:test")),
            ("Authorization", &basic("test:test")),
        ],
        b"",
    );
    assert_eq!(two.status, 401, "two Authorization headers are refused");

    let ok = p.req("test:test", "GET", "/", b"");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json()["version"]["distribution"], "opensearch");
}

#[test]
fn unlisted_api_gets_400_not_authorized_without_es_headers() {
    let es = Osmem::start();
    let p = Proxy::start(&arkime_test_ini(&es.url(), true), "esproxy");
    for (m, path) in [
        ("GET", "/_search"),
        ("POST", "/_search"),
        ("PUT", "/_search"),
        ("DELETE", "/_search"),
        ("GET", "/_template/arkime_sessions3_template"),
        ("POST", "/tests_users/_doc/admin"),
        ("GET", "/_cat/health%3fz/../../_search"),
    ] {
        let r = p.req("test:test", m, path, b"");
        assert_eq!(r.status, 400, "{m} {path}");
        assert_eq!(r.text(), "Not authorized for API", "{m} {path}");
        assert!(r.header("x-elastic-product").is_none());
    }
}

#[test]
fn upstream_status_body_and_content_type_pass_through_unchanged() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let direct = es.req("GET", "/arkime_stats/_doc/toronto01", b"");
    let via = p.req(
        "toronto01:secret1",
        "GET",
        "/arkime_stats/_doc/toronto01",
        b"",
    );
    assert_eq!(direct.status, 404);
    assert_eq!(via.status, 404, "ES's real status, not esProxy.js's 200");
    assert_eq!(via.body, direct.body);
    assert_eq!(via.header("content-type"), direct.header("content-type"));
}

#[test]
fn sensor_credentials_never_go_upstream_and_ours_replace_them() {
    let rec = Recorder::start();
    let p = Proxy::start(
        &fleet_ini(
            &format!("http://{}", rec.addr),
            "elasticsearchBasicAuth=admin:s3cret",
        ),
        "default",
    );
    let r = p.req_h(
        "GET",
        "/_cluster/health",
        &[
            ("Authorization", &basic("toronto01:secret1")),
            ("X-Forwarded-For", "198.51.100.7"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let head = rec
        .requests()
        .iter()
        .map(|r| r.head.join("\n").to_ascii_lowercase())
        // Health probes carry no X-Forwarded-For; the proxied request does.
        .find(|h| h.contains("x-forwarded-for"))
        .expect("the request reached the upstream");
    assert!(
        head.contains(&format!("authorization: {}", basic("admin:s3cret")).to_ascii_lowercase()),
        "{head}"
    );
    assert!(
        !head.contains(&basic("toronto01:secret1").to_ascii_lowercase()),
        "{head}"
    );
    assert!(
        head.contains("x-forwarded-for: 127.0.0.1"),
        "our own XFF, not the sensor's: {head}"
    );
    assert!(!head.contains("198.51.100.7"), "{head}");
}

#[test]
fn node_scoped_routes_refuse_sibling_sensor_names() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    // toronto01 must never reach toronto011's documents.
    for path in [
        "/arkime_stats/_doc/toronto011",
        "/arkime_files/_doc/toronto011-1",
        "/arkime_sequence/_doc/fn-toronto011",
    ] {
        let r = p.req("toronto01:secret1", "GET", path, b"");
        assert_eq!(r.status, 400, "{path}");
    }
    let r = p.req(
        "toronto01:secret1",
        "POST",
        "/arkime_dstats/_doc/toronto011-5-5",
        br#"{"nodeName":"toronto011","interval":5}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(es.count("arkime_dstats", r#"{"match_all":{}}"#), 0);
}
