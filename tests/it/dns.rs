//! Names that move (issue #14): host names in `elasticsearch=` and `[tee]` are resolved in the
//! background (`esProxyDnsInterval`), every address is a pool member, and a name that does not
//! resolve is not fatal. esproxy runs in a private mount namespace whose `/etc/hosts` the test
//! rewrites (harness::HostsFile); osmem-server listens on 127.0.0.2 and 127.0.0.3.

use crate::bulk_stream::lean_sessions_template;
use crate::harness::{
    free_port, osmem_at, post_bulk, request, temp_file, HostsFile, Proxy, Relay, RelayMode,
};
use crate::pool::{bulk, ids, load, ok_bulk, ALL, AUTH, INDEX};
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A port free on both 127.0.0.2 and 127.0.0.3 (one URL, two addresses).
fn shared_port() -> u16 {
    loop {
        let a = TcpListener::bind("127.0.0.2:0").unwrap();
        let port = a.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.3", port)).is_ok() {
            return port;
        }
    }
}

fn at(ip: &str, port: u16) -> SocketAddr {
    format!("{ip}:{port}").parse().unwrap()
}

/// The fleet layout naming `es.test`, with a metrics listener.
fn ini(port: u16, interval: u64, metrics: u16) -> String {
    crate::fleet_ini(
        &format!("http://es.test:{port}"),
        &format!(
            "esProxyDnsInterval={interval}\nesProxyMetricsPort={metrics}\n\
             esProxyHealthCheckInterval=2\nesProxyHealthCheckTimeout=1"
        ),
    )
}

/// The value of one metric line starting with `prefix`, if present.
fn metric(metrics: u16, prefix: &str) -> Option<f64> {
    let r = request(at("127.0.0.1", metrics), "GET", "/metrics", &[], b"");
    r.text()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn members(metrics: u16, port: u16) -> Option<f64> {
    metric(
        metrics,
        &format!("esproxy_upstream_members{{cluster=\"es\",name=\"http://es.test:{port}\"}}"),
    )
}

#[test]
fn a_name_that_appears_after_start_is_used_within_the_interval() {
    let names = HostsFile::new("");
    let port = shared_port();
    let es = osmem_at(at("127.0.0.2", port));
    lean_sessions_template(&es);
    let mport = free_port();
    let interval = 5;
    let (p, log) = Proxy::start_resolving(&ini(port, interval, mport), "default", &names);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("elasticsearch: cannot resolve es.test:{port}")),
        "{text}"
    );
    // Not resolved yet: a read gets our own 502, at once; the name counts as failing.
    let r = p.req(AUTH, "GET", "/", b"");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("esproxy"));
    assert_eq!(members(mport, port), Some(0.0));
    assert!(
        metric(
            mport,
            "esproxy_upstream_resolve_failures_total{cluster=\"es\""
        )
        .unwrap()
            >= 1.0
    );
    // A bulk sent now waits for the name within its replay budget.
    let addr = p.addr;
    let waiting = std::thread::spawn(move || {
        let (body, _) = bulk("late0", 2);
        let auth = crate::harness::basic(AUTH);
        let r = post_bulk(addr, Some(&auth), body.as_bytes(), false);
        (Instant::now(), r)
    });
    std::thread::sleep(Duration::from_millis(500));
    names.set("127.0.0.2 es.test");
    let moved = Instant::now();
    let (acked_at, r) = waiting.join().unwrap();
    assert!(ok_bulk(&r), "{} {}", r.status, r.text());
    let waited = acked_at.duration_since(moved);
    // A bulk sent after the change goes straight through.
    let (body, _) = bulk("late1", 2);
    assert!(ok_bulk(&p.req(AUTH, "POST", "/_bulk", body.as_bytes())));
    assert_eq!(es.count(INDEX, ALL), 4);
    assert_eq!(members(mport, port), Some(1.0));
    eprintln!("dns late name: held bulk acknowledged {waited:?} after the hosts change");
    assert!(
        waited < Duration::from_secs(interval),
        "the new name was used only after {waited:?} (esProxyDnsInterval={interval})"
    );
    // With no request waiting, a second address is found by the periodic lookup alone.
    let second = osmem_at(at("127.0.0.3", port));
    lean_sessions_template(&second);
    names.set("127.0.0.2 es.test\n127.0.0.3 es.test");
    let changed = Instant::now();
    while members(mport, port) != Some(2.0) {
        assert!(
            changed.elapsed() < Duration::from_secs(interval + 5),
            "the second address did not join within esProxyDnsInterval={interval}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let joined = changed.elapsed();
    eprintln!("dns late name: a second address joined {joined:?} after the hosts change");
    for i in 0..4 {
        let (body, _) = bulk(&format!("late2-{i}"), 1);
        assert!(ok_bulk(&p.req(AUTH, "POST", "/_bulk", body.as_bytes())));
    }
    assert!(second.count(INDEX, ALL) >= 1);
}

#[test]
fn a_name_with_two_addresses_spreads_bulks_over_both() {
    let port = shared_port();
    let a = osmem_at(at("127.0.0.2", port));
    let b = osmem_at(at("127.0.0.3", port));
    lean_sessions_template(&a);
    lean_sessions_template(&b);
    let names = HostsFile::new("127.0.0.2 es.test\n127.0.0.3 es.test");
    let mport = free_port();
    let (p, _log) = Proxy::start_resolving(&ini(port, 30, mport), "default", &names);
    assert_eq!(members(mport, port), Some(2.0));
    for i in 0..20 {
        let (body, _) = bulk(&format!("two{i}"), 1);
        let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
        assert!(ok_bulk(&r), "{}", r.text());
    }
    let (on_a, on_b) = (a.count(INDEX, ALL), b.count(INDEX, ALL));
    eprintln!("dns two addresses: 20 bulks, {on_a} on 127.0.0.2, {on_b} on 127.0.0.3");
    assert_eq!(on_a + on_b, 20);
    assert!(on_a >= 5 && on_b >= 5, "{on_a} / {on_b}");
}

#[test]
fn a_name_moving_while_its_old_node_dies_loses_no_acknowledged_bulk() {
    let port = shared_port();
    // The old node dies behind a relay on 127.0.0.2 (listener closed, connections cut) while
    // its data stays readable, so every acknowledged document can be found.
    let old = crate::harness::Osmem::start();
    lean_sessions_template(&old);
    let mut relay = Relay::start(Some(at("127.0.0.2", port)), old.addr, RelayMode::Forward);
    let new = osmem_at(at("127.0.0.3", port));
    lean_sessions_template(&new);
    let names = HostsFile::new("127.0.0.2 es.test");
    let interval = 10;
    let (p, log) = Proxy::start_resolving(&ini(port, interval, free_port()), "default", &names);
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Vec::new()));
    let run = load(
        &p,
        3,
        20,
        Duration::from_millis(20),
        stop.clone(),
        acks.clone(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    relay.kill();
    let killed = Instant::now();
    // A fresh bulk sent into the gap (old address dead, name not moved yet) waits, too.
    let addr = p.addr;
    let gap = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        let (body, ids) = bulk("gap", 5);
        let auth = crate::harness::basic(AUTH);
        let r = post_bulk(addr, Some(&auth), body.as_bytes(), false);
        (r, ids)
    });
    // DNS lags the node's death a little, as a real record's TTL would.
    std::thread::sleep(Duration::from_millis(300));
    names.set("127.0.0.3 es.test");
    let moved = Instant::now();
    std::thread::sleep(Duration::from_millis(3000));
    stop.store(true, Ordering::Relaxed);
    let (sent, acked, acked_ids, bad) = run.join().unwrap();
    let (gap_answer, gap_ids) = gap.join().unwrap();
    let (on_old, on_new) = (ids(&old), ids(&new));
    let found: BTreeSet<String> = on_old.union(&on_new).cloned().collect();
    // The first acknowledged bulk stored on the new node: how long after the move.
    let first_new = acks
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, ids)| ids.iter().all(|i| on_new.contains(i)))
        .map(|(_, done, _)| *done)
        .min();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!(
        "dns move: bulks sent {sent}, acknowledged {acked}; documents acknowledged {}, found {} \
         (old node {}, new node {}); first bulk on the new node {:?} after the kill, {:?} after \
         the hosts change",
        acked_ids.len(),
        acked_ids.intersection(&found).count(),
        on_old.len(),
        on_new.len(),
        first_new.map(|t| t.saturating_duration_since(killed)),
        first_new.map(|t| t.saturating_duration_since(moved)),
    );
    assert!(
        bad.is_empty(),
        "errors reached the sensor: {bad:?}\n{log_text}"
    );
    assert_eq!(sent, acked);
    assert!(
        ok_bulk(&gap_answer),
        "bulk sent into the gap: {} {}",
        gap_answer.status,
        gap_answer.text()
    );
    assert!(gap_ids.iter().all(|i| on_new.contains(i)));
    let missing: Vec<_> = acked_ids.difference(&found).take(5).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not stored: {missing:?}"
    );
    assert!(
        !on_new.is_empty(),
        "nothing reached the new address\n{log_text}"
    );
    assert!(
        first_new
            .is_some_and(|t| t.saturating_duration_since(moved) < Duration::from_secs(interval)),
        "the new address was used late\n{log_text}"
    );
}

#[test]
fn check_config_passes_when_a_name_does_not_resolve() {
    let names = HostsFile::new("");
    let config = temp_file(
        "esproxy.ini",
        &format!(
            "{}[tee]\nelasticsearch=http://tee.test:9200\n",
            crate::fleet_ini("http://es.test:9200", "").replace("{PORT}", &free_port().to_string())
        ),
    );
    let out = names
        .command(&config, &["-n", "default", "--check-config"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));
    assert!(
        err.contains("elasticsearch: cannot resolve es.test:9200"),
        "{err}"
    );
    assert!(
        err.contains("[tee] elasticsearch: cannot resolve tee.test:9200"),
        "{err}"
    );
}

#[test]
fn a_tee_name_that_appears_after_start_gets_the_mirrors() {
    let names = HostsFile::new("");
    let primary = crate::harness::Osmem::start();
    lean_sessions_template(&primary);
    let port = shared_port();
    let tee = osmem_at(at("127.0.0.3", port));
    lean_sessions_template(&tee);
    let mport = free_port();
    let ini = format!(
        "{}[tee]\nelasticsearch=http://tee.test:{port}\n",
        crate::fleet_ini(
            &primary.url(),
            &format!("esProxyDnsInterval=1\nesProxyMetricsPort={mport}")
        )
    );
    let (p, log) = Proxy::start_resolving(&ini, "default", &names);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!(
            "[tee] elasticsearch: cannot resolve tee.test:{port}"
        )),
        "{text}"
    );
    // The primary is not held up by a tee that does not resolve; the mirror counts as dropped.
    let (body, _) = bulk("teelate0", 1);
    assert!(ok_bulk(&p.req(AUTH, "POST", "/_bulk", body.as_bytes())));
    assert!(metric(mport, "esproxy_tee_dropped_total{reason=\"unhealthy\"}").unwrap() >= 1.0);
    let tee_members =
        format!("esproxy_upstream_members{{cluster=\"tee\",name=\"http://tee.test:{port}\"}}");
    assert_eq!(metric(mport, &tee_members), Some(0.0));
    names.set("127.0.0.3 tee.test");
    let changed = Instant::now();
    while metric(mport, &tee_members) != Some(1.0) {
        assert!(
            changed.elapsed() < Duration::from_secs(6),
            "the tee name was not resolved within esProxyDnsInterval=1 (and slack)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for i in 1..4 {
        let (body, _) = bulk(&format!("teelate{i}"), 1);
        assert!(ok_bulk(&p.req(AUTH, "POST", "/_bulk", body.as_bytes())));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while tee.count(INDEX, ALL) < 3 {
        assert!(Instant::now() < deadline, "the tee did not get the mirrors");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(primary.count(INDEX, ALL), 4);
}
