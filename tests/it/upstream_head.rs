//! The upstream request head (issue #18): of the sensor's headers only the allowlisted names
//! reach Elasticsearch and the tee; `Authorization` and `X-Forwarded-For` carry esproxy's values.

use crate::harness::{
    action_line, as_created, basic, gzip, session_doc, Proxy, Recorded, Recorder,
};
use std::time::{Duration, Instant};

/// What the sensor sends on every request besides its credentials: each header the issue names
/// as dangerous, an unknown `X-` header, and the allowlisted ones.
const SENSOR_HEADERS: &[(&str, &str)] = &[
    ("es-security-runas-user", "elastic"),
    ("opendistro_security_impersonate_as", "admin"),
    ("securitytenant", "global_tenant"),
    ("Forwarded", "for=198.51.100.1"),
    ("X-Real-IP", "198.51.100.2"),
    ("X-Forwarded-For", "198.51.100.3"),
    ("X-Forwarded-Host", "es.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Port", "443"),
    ("X-Forwarded-Server", "es.example"),
    ("X-Amz-Date", "20261204T000000Z"),
    ("X-Amz-Security-Token", "token"),
    ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
    ("Cookie", "security_authentication=stolen"),
    ("X-Elastic-Product-Origin", "kibana"),
    ("X-Unknown-Thing", "1"),
    ("Accept", "application/json"),
    ("Accept-Encoding", "identity"),
    ("User-Agent", "arkime"),
    ("X-Opaque-Id", "capture-42"),
    ("Content-Type", "application/json"),
];

/// Names that may arrive upstream (lower case): the sensor's allowlisted ones and esproxy's own.
const ALLOWED: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "accept",
    "accept-encoding",
    "user-agent",
    "x-opaque-id",
    "host",
    "authorization",
    "x-forwarded-for",
];

const AUTH: &str = "toronto01:secret1";
const INDEX: &str = "arkime_sessions3-260819";

fn ini(primary: &Recorder, tee: &Recorder, strict: bool) -> String {
    format!(
        "[default]\nelasticsearch=http://{}\nelasticsearchAPIKey=primarykey\nesProxyPort={{PORT}}\n\
         esProxyHost=127.0.0.1\nesProxyStrict={strict}\n\
         [tee]\nelasticsearch=http://{}\nelasticsearchAPIKey=teekey\n\
         [esproxy-sensors]\ntoronto01=pass:secret1;ip:127.0.0.1\n",
        primary.addr, tee.addr
    )
}

fn bulk_body() -> String {
    let mut b = String::new();
    for i in 0..3 {
        b.push_str(&action_line(INDEX, &format!("260819-hdrs{i:020}")));
        b.push('\n');
        b.push_str(&session_doc("toronto01", i));
        b.push('\n');
    }
    b
}

/// One request the sensor sends: method, path, extra headers, body.
type Sent = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
    Vec<u8>,
);

/// Health, bulk (plain and gzip), stats and search.
fn requests() -> Vec<Sent> {
    vec![
        ("GET", "/_cluster/health", vec![], vec![]),
        ("POST", "/_bulk", vec![], bulk_body().into_bytes()),
        (
            "POST",
            "/_bulk",
            vec![("Content-Encoding", "gzip")],
            gzip(bulk_body().as_bytes()),
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto01?version_type=external&version=7",
            vec![],
            br#"{"ver": "6.7.1","nodeName": "toronto01","hostname": "vm","interval": 1,"currentTime": 1}"#
                .to_vec(),
        ),
        (
            "POST",
            "/arkime_stats/_search?rest_total_hits_as_int=true",
            vec![],
            br#"{"query":{"match":{"hostname":"vm"}}}"#.to_vec(),
        ),
    ]
}

/// Requests other than the pool's health probes (`GET /`).
fn proxied(r: &Recorder) -> Vec<Recorded> {
    r.requests()
        .into_iter()
        .filter(|s| s.head[0] != "GET / HTTP/1.1")
        .collect()
}

fn names(s: &Recorded) -> Vec<String> {
    s.head[1..]
        .iter()
        .map(|h| h.split(':').next().unwrap().trim().to_ascii_lowercase())
        .collect()
}

fn check_mode(strict: bool) {
    let primary = Recorder::start();
    let tee = Recorder::start();
    let p = Proxy::start(&ini(&primary, &tee, strict), "default");
    let auth = basic(AUTH);
    let reqs = requests();
    for (method, path, extra, body) in &reqs {
        let mut headers: Vec<(&str, &str)> = vec![("Authorization", auth.as_str())];
        headers.extend_from_slice(SENSOR_HEADERS);
        headers.extend_from_slice(extra);
        let r = p.req_h(method, path, &headers, body);
        assert_eq!(
            r.status,
            200,
            "strict={strict} {method} {path}: {}",
            r.text()
        );
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while proxied(&tee).iter().filter(|s| s.complete).count() < reqs.len() {
        assert!(
            Instant::now() < deadline,
            "tee mirrors: {:#?}",
            proxied(&tee)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut lines: Vec<String> = reqs
        .iter()
        .map(|(m, path, _, _)| format!("{m} {path} HTTP/1.1"))
        .collect();
    lines.sort();
    for (who, rec, key) in [("primary", &primary, "primarykey"), ("tee", &tee, "teekey")] {
        // The tee's mirrors run in the background and may arrive in any order.
        let seen = proxied(rec);
        let mut got: Vec<String> = seen.iter().map(|s| s.head[0].clone()).collect();
        got.sort();
        assert_eq!(got, lines, "strict={strict} {who}: {seen:#?}");
        for s in &seen {
            let what = format!("strict={strict} {who} {}", s.head[0]);
            for n in names(s) {
                assert!(ALLOWED.contains(&n.as_str()), "{what}: {n} arrived: {s:?}");
            }
            assert_eq!(
                s.header("authorization"),
                Some(&*format!("ApiKey {key}")),
                "{what}"
            );
            let xff = names(s).iter().filter(|n| *n == "x-forwarded-for").count();
            assert_eq!(xff, 1, "{what}: {s:?}");
            assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"), "{what}");
            // The allowlisted ones did arrive, with the sensor's values.
            assert_eq!(s.header("x-opaque-id"), Some("capture-42"), "{what}");
            assert_eq!(s.header("user-agent"), Some("arkime"), "{what}");
            assert_eq!(s.header("accept"), Some("application/json"), "{what}");
            assert_eq!(s.header("accept-encoding"), Some("identity"), "{what}");
            assert_eq!(s.header("content-type"), Some("application/json"), "{what}");
        }
        let gz: Vec<&Recorded> = seen
            .iter()
            .filter(|s| s.header("content-encoding").is_some())
            .collect();
        if strict {
            // Strict: the gzip bulk went upstream inflated, its session `index` lines as
            // `create`, re-framed chunked like the plain one; nothing is labelled gzip.
            assert!(gz.is_empty(), "strict {who}: {gz:#?}");
            let bulks: Vec<&Recorded> = seen
                .iter()
                .filter(|s| s.head[0].starts_with("POST /_bulk"))
                .collect();
            assert_eq!(bulks.len(), 2, "{who}");
            for b in bulks {
                assert_eq!(b.body, as_created(&bulk_body()).as_bytes(), "{who}");
                assert_eq!(b.header("transfer-encoding"), Some("chunked"), "{who}");
                assert_eq!(b.header("content-length"), None, "{who}");
            }
        } else {
            // Lax: the gzip bulk went upstream compressed, labelled as such; nothing else is.
            assert_eq!(gz.len(), 1, "strict={strict} {who}: {seen:#?}");
            assert_eq!(gz[0].header("content-encoding"), Some("gzip"));
            assert_eq!(gz[0].body, gzip(bulk_body().as_bytes()));
        }
    }
    // The tee got the very bytes the primary got.
    let body_of = |rec: &Recorder, line: &str| -> Vec<Vec<u8>> {
        let mut b: Vec<Vec<u8>> = proxied(rec)
            .into_iter()
            .filter(|s| s.head[0] == line)
            .map(|s| s.body)
            .collect();
        b.sort();
        b
    };
    for line in &lines {
        assert_eq!(
            body_of(&primary, line),
            body_of(&tee, line),
            "strict={strict} {line}"
        );
    }
}

#[test]
fn only_allowlisted_headers_reach_es_and_the_tee_in_strict_mode() {
    check_mode(true);
}

#[test]
fn only_allowlisted_headers_reach_es_and_the_tee_in_lax_mode() {
    check_mode(false);
}

/// The target ES gets is the canonical one that was checked: re-encoded when the sensor's was
/// not canonical, the very bytes received when it was (esproxy then keeps Pingora's copy).
#[test]
fn es_gets_the_canonical_target_whether_or_not_the_sensor_sent_it() {
    let primary = Recorder::start();
    let tee = Recorder::start();
    let p = Proxy::start(&ini(&primary, &tee, true), "default");
    let auth = basic(AUTH);
    let stats = br#"{"ver": "6.7.1","nodeName": "toronto01","hostname": "vm","interval": 1,"currentTime": 1}"#;
    let cases: [(&str, &str, &[u8], &str); 4] = [
        (
            "GET",
            "/_cat/health?%66ormat=%6Ason",
            b"",
            "/_cat/health?format=json",
        ),
        (
            "GET",
            "/_cat/health?format=json",
            b"",
            "/_cat/health?format=json",
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto01?version_type=external&version=%37",
            stats,
            "/arkime_stats/_doc/toronto01?version_type=external&version=7",
        ),
        (
            "POST",
            "/arkime_stats/_doc/toronto01?version_type=external&version=8",
            stats,
            "/arkime_stats/_doc/toronto01?version_type=external&version=8",
        ),
    ];
    for (method, sent, body, _) in &cases {
        let r = p.req_h(method, sent, &[("Authorization", auth.as_str())], body);
        assert_eq!(r.status, 200, "{method} {sent}: {}", r.text());
    }
    let got: Vec<String> = proxied(&primary)
        .iter()
        .map(|s| s.head[0].clone())
        .collect();
    let want: Vec<String> = cases
        .iter()
        .map(|(m, _, _, canonical)| format!("{m} {canonical} HTTP/1.1"))
        .collect();
    assert_eq!(got, want);
}
