//! The upstream pool (SPEC §6): round robin over real osmem-server nodes, failover with no bulk
//! lost when a node dies mid-run, recovery when it comes back, re-sending what ES refused with
//! back-pressure or lost on a stale keep-alive connection, all-down 502, and TLS to ES with a test
//! CA and an encrypted client key.

use crate::bulk_stream::lean_sessions_template;
use crate::harness::{
    action_line, as_created, gzip, kill_osmem, osmem_at, session_doc, sid, temp_file, test_pki,
    tls_terminator, Osmem, Proxy, Recorded, Recorder, Relay, RelayMode,
};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const INDEX: &str = "arkime_sessions3-260819";
pub(crate) const AUTH: &str = "toronto01:secret1";
pub(crate) const ALL: &str = r#"{"match_all":{}}"#;

/// The fleet layout with fast health checks.
fn ini(urls: &str, extra: &str) -> String {
    crate::fleet_ini(
        urls,
        &format!("esProxyHealthCheckInterval=2\nesProxyHealthCheckTimeout=1\n{extra}"),
    )
}

/// A bulk of `docs` session documents with ids `260819-TAG-000N` (24 characters after the date).
pub(crate) fn bulk(tag: &str, docs: usize) -> (String, Vec<String>) {
    let mut b = String::new();
    let mut ids = Vec::new();
    for i in 0..docs {
        let id = sid(&format!("{tag}-"), i);
        b.push_str(&action_line(INDEX, &id));
        b.push('\n');
        b.push_str(&session_doc("toronto01", i));
        b.push('\n');
        ids.push(id);
    }
    (b, ids)
}

/// The POSTs a recording upstream received (health probes left out).
fn posts(es: &Recorder) -> Vec<Recorded> {
    es.requests()
        .into_iter()
        .filter(|s| s.head[0].starts_with("POST"))
        .collect()
}

pub(crate) fn ok_bulk(r: &crate::harness::Response) -> bool {
    r.status == 200 && r.json()["errors"] == false
}

#[test]
fn round_robin_spreads_bulks_over_every_node() {
    let a = Osmem::start();
    let b = Osmem::start();
    lean_sessions_template(&a);
    lean_sessions_template(&b);
    let urls = format!("{},{}", a.url(), b.url());
    let p = Proxy::start(&crate::fleet_ini(&urls, ""), "default");
    for i in 0..10 {
        let (body, _) = bulk(&format!("rr{i}"), 1);
        let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
        assert!(ok_bulk(&r), "{}", r.text());
    }
    assert_eq!((a.count(INDEX, ALL), b.count(INDEX, ALL)), (5, 5));
}

#[test]
fn every_node_down_is_a_short_json_502() {
    let dead = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{}",
        crate::harness::free_port(),
        crate::harness::free_port()
    );
    let p = Proxy::start(&ini(&dead, ""), "default");
    let (body, _) = bulk("down", 1);
    let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.json()["error"].as_str().unwrap().contains("esproxy"));
    assert!(r.header("x-elastic-product").is_none());
}

#[test]
fn connect_failure_is_retried_on_another_node_before_the_sensor_sees_it() {
    let b = Osmem::start();
    let dead = format!("http://127.0.0.1:{}", crate::harness::free_port());
    let p = Proxy::start(&ini(&format!("{dead},{}", b.url()), ""), "default");
    for i in 0..4 {
        let (body, _) = bulk(&format!("cf{i}"), 1);
        let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
        assert!(ok_bulk(&r), "{}", r.text());
    }
    assert_eq!(b.count(INDEX, ALL), 4);
}

/// Each acknowledged bulk: when it was sent, when it was answered, its document ids.
pub(crate) type AckLog = Arc<Mutex<Vec<(Instant, Instant, Vec<String>)>>>;
/// Bulks sent, acknowledged, acknowledged ids, unclean answers.
pub(crate) type LoadResult = (usize, usize, BTreeSet<String>, Vec<String>);

/// Sends bulks from `threads` sensors until `stop`; returns (bulks sent, bulks acknowledged,
/// ids of acknowledged bulks, statuses that were not a clean 200).
pub(crate) fn load(
    p: &Proxy,
    threads: usize,
    docs: usize,
    pause: Duration,
    stop: Arc<AtomicBool>,
    sent_after: AckLog,
) -> std::thread::JoinHandle<LoadResult> {
    let addr = p.addr;
    std::thread::spawn(move || {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let stop = stop.clone();
                let log = sent_after.clone();
                std::thread::spawn(move || {
                    let (mut sent, mut acked, mut ids, mut bad) =
                        (0, 0, BTreeSet::new(), Vec::new());
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let (body, these) = bulk(&format!("t{t}b{n}"), docs);
                        n += 1;
                        let gz = gzip(body.as_bytes());
                        let auth = crate::harness::basic(AUTH);
                        let start = Instant::now();
                        let r = crate::harness::post_bulk(addr, Some(&auth), &gz, true);
                        sent += 1;
                        if ok_bulk(&r) {
                            acked += 1;
                            log.lock()
                                .unwrap()
                                .push((start, Instant::now(), these.clone()));
                            ids.extend(these);
                        } else {
                            bad.push(format!("{} {}", r.status, r.text()));
                        }
                        std::thread::sleep(pause);
                    }
                    (sent, acked, ids, bad)
                })
            })
            .collect();
        let mut total = (0, 0, BTreeSet::new(), Vec::new());
        for h in handles {
            let (s, a, i, b) = h.join().unwrap();
            total.0 += s;
            total.1 += a;
            total.2.extend(i);
            total.3.extend(b);
        }
        total
    })
}

pub(crate) fn ids(es: &Osmem) -> BTreeSet<String> {
    es.ids(INDEX).into_iter().collect()
}

/// The node "dies" behind a relay (listener closed, every connection cut mid-request) while
/// its data stays readable, so every acknowledged document can be accounted for.
#[test]
fn node_dying_mid_run_loses_no_bulk_and_traffic_returns_when_it_is_back() {
    let a = Osmem::start();
    let b = Osmem::start();
    lean_sessions_template(&a);
    lean_sessions_template(&b);
    let mut ra = Relay::start(None, a.addr, RelayMode::Forward);
    let rb = Relay::start(None, b.addr, RelayMode::Forward);
    let p = Proxy::start(
        &ini(&format!("http://{},http://{}", ra.addr, rb.addr), ""),
        "default",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = load(&p, 3, 40, Duration::from_millis(20), stop.clone(), log);
    std::thread::sleep(Duration::from_millis(1500));
    ra.kill();
    std::thread::sleep(Duration::from_millis(2500));
    let a_before_return = a.count(INDEX, ALL);
    let ra2 = Relay::start(Some(ra.addr), a.addr, RelayMode::Forward);
    std::thread::sleep(Duration::from_millis(4500));
    stop.store(true, Ordering::Relaxed);
    let (sent, acked, acked_ids, bad) = run.join().unwrap();
    let (on_a, on_b) = (ids(&a), ids(&b));
    let found: BTreeSet<String> = on_a.union(&on_b).cloned().collect();
    eprintln!(
        "pool load run (node cut and restored): bulks sent {sent}, acknowledged {acked}, \
         documents acknowledged {}, found {} (node a {}, node b {})",
        acked_ids.len(),
        acked_ids.intersection(&found).count(),
        on_a.len(),
        on_b.len()
    );
    assert!(bad.is_empty(), "errors reached the sensor: {bad:?}");
    assert_eq!(sent, acked);
    let missing: Vec<_> = acked_ids.difference(&found).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        a.count(INDEX, ALL) > a_before_return,
        "no traffic reached the node after it came back"
    );
    drop(ra2);
}

/// A real osmem-server process is killed (SIGKILL) mid-run and a new one started on its port.
#[test]
fn killed_node_never_shows_the_sensor_an_error_and_a_restarted_one_gets_traffic_again() {
    let mut a = Osmem::start();
    let b = Osmem::start();
    lean_sessions_template(&a);
    lean_sessions_template(&b);
    let p = Proxy::start(&ini(&format!("{},{}", a.url(), b.url()), ""), "default");
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let run = load(
        &p,
        3,
        40,
        Duration::from_millis(20),
        stop.clone(),
        log.clone(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    kill_osmem(&mut a);
    let killed = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let restarted = Instant::now();
    let a2 = osmem_at(a.addr);
    lean_sessions_template(&a2);
    std::thread::sleep(Duration::from_millis(4500));
    stop.store(true, Ordering::Relaxed);
    let (sent, acked, _, bad) = run.join().unwrap();
    let on_b = ids(&b);
    let on_a2 = a2.count(INDEX, ALL);
    // Bulks sent while the node was dead can only be on the survivor.
    let while_dead: Vec<Vec<String>> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, e, _)| *s > killed && *e < restarted)
        .map(|(_, _, i)| i.clone())
        .collect();
    eprintln!(
        "pool load run (process killed and restarted): bulks sent {sent}, acknowledged {acked}, \
         {} sent while the node was dead, documents on the survivor {}, on the restarted node {on_a2}",
        while_dead.len(),
        on_b.len()
    );
    assert!(bad.is_empty(), "errors reached the sensor: {bad:?}");
    assert_eq!(sent, acked);
    assert!(!while_dead.is_empty());
    for bulk_ids in &while_dead {
        for id in bulk_ids {
            assert!(
                on_b.contains(id),
                "{id} acknowledged while a node was dead but not stored"
            );
        }
    }
    assert!(on_a2 > 0, "no traffic reached the restarted node");
}

#[test]
fn back_pressure_from_es_is_waited_out_with_the_held_body() {
    let es = Recorder::start_with(
        &[
            (429, r#"{"error":"es_rejected_execution_exception"}"#),
            (503, r#"{"error":"unavailable"}"#),
        ],
        false,
    );
    let p = Proxy::start(&ini(&format!("http://{}", es.addr), ""), "default");
    // A capture-sized gzip bulk: ~1 MB raw, held (strict: inflated, session lines as
    // `create`) and re-sent whole.
    let (body, _) = bulk("bp", 400);
    let gz = gzip(body.as_bytes());
    let r = p.gzip_bulk(&crate::harness::basic(AUTH), &gz);
    assert!(ok_bulk(&r), "{} {}", r.status, r.text());
    let seen = posts(&es);
    let summary: Vec<(bool, usize, &str)> = seen
        .iter()
        .map(|s| (s.complete, s.body.len(), s.head[0].as_str()))
        .collect();
    assert_eq!(seen.len(), 3, "sent three times: {summary:?}");
    let validated = as_created(&body);
    for s in &seen {
        assert!(
            s.complete && s.body == validated.as_bytes() && s.header("content-encoding").is_none(),
            "each send is the whole validated body ({} bytes): {summary:?}",
            validated.len()
        );
    }
}

#[test]
fn strict_gzip_bulks_go_up_inflated_with_their_session_lines_as_create() {
    let es = Recorder::start();
    let p = Proxy::start(
        &ini(&format!("http://{}", es.addr), "esProxyMaxLine=8K"),
        "default",
    );
    let (small, _) = bulk("small", 5);
    let (large, _) = bulk("large", 400);
    for b in [&small, &large] {
        let r = p.gzip_bulk(&crate::harness::basic(AUTH), &gzip(b.as_bytes()));
        assert!(ok_bulk(&r), "{} {}", r.status, r.text());
    }
    let seen = posts(&es);
    assert_eq!(seen.len(), 2);
    for (s, b) in seen.iter().zip([&small, &large]) {
        assert!(s.complete && s.body == as_created(b).as_bytes());
        assert_eq!(s.header("content-encoding"), None);
        assert_eq!(s.header("transfer-encoding"), Some("chunked"));
    }
}

#[test]
fn lax_gzip_bulks_go_up_as_received_within_the_hold_size_and_inflated_above_it() {
    let es = Recorder::start();
    // esProxyMaxLine=8K: gzip bodies up to 4 KiB are held, then forwarded compressed.
    let p = Proxy::start(
        &ini(
            &format!("http://{}", es.addr),
            "esProxyStrict=false\nesProxyMaxLine=8K",
        ),
        "default",
    );
    let (small, _) = bulk("small", 5);
    let (large, _) = bulk("large", 400);
    let (gs, gl) = (gzip(small.as_bytes()), gzip(large.as_bytes()));
    assert!(
        gs.len() < 4096 && gl.len() > 4096,
        "{} {}",
        gs.len(),
        gl.len()
    );
    for g in [&gs, &gl] {
        let r = p.gzip_bulk(&crate::harness::basic(AUTH), g);
        assert!(ok_bulk(&r), "{} {}", r.status, r.text());
    }
    let seen = posts(&es);
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0].complete && seen[0].body == gs,
        "small body not as received"
    );
    assert_eq!(seen[0].header("content-encoding"), Some("gzip"));
    assert!(
        seen[1].complete && seen[1].body == large.as_bytes(),
        "large body not inflated"
    );
    assert_eq!(seen[1].header("content-encoding"), None);
}

#[test]
fn non_bulk_back_pressure_is_relayed_unchanged() {
    let es = Recorder::start_with(&[(429, r#"{"error":"busy"}"#)], false);
    let p = Proxy::start(&ini(&format!("http://{}", es.addr), ""), "default");
    let r = p.req(AUTH, "GET", "/_cluster/health", b"");
    assert_eq!(r.status, 429);
    let health = es
        .requests()
        .iter()
        .filter(|s| s.head[0].starts_with("GET /_cluster/health"))
        .count();
    assert_eq!(health, 1, "not re-sent");
}

#[test]
fn stale_keep_alive_connection_is_retried_for_bulks_and_small_requests() {
    let es = Recorder::start_with(&[], true);
    let p = Proxy::start(&ini(&format!("http://{}", es.addr), ""), "default");
    let (body, _) = bulk("ka", 3);
    // First request opens the pooled connection; the second is read and then dropped by the
    // upstream without an answer, and must be sent again rather than fail.
    for i in 0..2 {
        let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
        assert!(ok_bulk(&r), "bulk {i}: {} {}", r.status, r.text());
    }
    for i in 0..2 {
        let r = p.req(AUTH, "GET", "/_cluster/health", b"");
        assert_eq!(r.status, 200, "get {i}: {}", r.text());
    }
}

#[test]
fn tls_upstream_with_test_ca_and_encrypted_client_key() {
    let es = Osmem::start();
    let pki = test_pki();
    let tls = tls_terminator(&pki, es.addr);
    let ca = temp_file("ca.pem", &pki.ca);
    let cert = temp_file("client.pem", &pki.client_cert);
    let key = temp_file("client.key", &pki.client_key_encrypted);
    let extra = format!(
        "caTrustFile={}\nesClientCert={}\nesClientKey={}\nesClientKeyPass={}\n",
        ca.display(),
        cert.display(),
        key.display(),
        pki.client_key_pass
    );
    let p = Proxy::start(&ini(&format!("https://{tls}"), &extra), "default");
    let (body, _) = bulk("tls", 5);
    let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
    assert!(ok_bulk(&r), "{} {}", r.status, r.text());
    assert_eq!(es.count(INDEX, ALL), 5);

    // Without the client certificate the terminator refuses: 502, never plaintext.
    let no_cert = format!("caTrustFile={}\n", ca.display());
    let p = Proxy::start(&ini(&format!("https://{tls}"), &no_cert), "default");
    let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
    assert_eq!(r.status, 502, "{}", r.text());

    // A CA that did not sign the server's certificate: verification fails, 502.
    let other = test_pki();
    let other_ca = temp_file("other-ca.pem", &other.ca);
    let wrong_ca = format!(
        "caTrustFile={}\nesClientCert={}\nesClientKey={}\nesClientKeyPass={}\n",
        other_ca.display(),
        cert.display(),
        key.display(),
        pki.client_key_pass
    );
    let p = Proxy::start(&ini(&format!("https://{tls}"), &wrong_ca), "default");
    let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(es.count(INDEX, ALL), 5);
}
