//! A stalled Elasticsearch node (issue #17): a node that accepts and reads requests but never
//! answers (long GC pause, wedged JVM) is cut off after `esProxyUpstreamTimeout`, marked down at
//! once, and what is safe to send again goes to another node; what is not gets a 504. A node
//! that is only slow is never cut off.

use crate::bulk_stream::lean_sessions_template;
use crate::harness::{action_line, basic, free_port, gzip, session_doc, Osmem, Proxy};
use crate::ops::{sample, scrape};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INDEX: &str = "arkime_sessions3-260819";
const AUTH: &str = "toronto01:secret1";

/// A node that accepts connections and reads whatever is sent, but never writes a byte.
struct Mute {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Mute {
    fn start() -> Mute {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let stop3 = stop2.clone();
                        std::thread::spawn(move || {
                            c.set_nonblocking(false).unwrap();
                            c.set_read_timeout(Some(Duration::from_millis(200)))
                                .unwrap();
                            let mut buf = [0u8; 16 << 10];
                            while !stop3.load(Ordering::Relaxed) {
                                match c.read(&mut buf) {
                                    Ok(0) => return,
                                    Ok(_) => {}
                                    // The read timeout only lets the loop see `stop`.
                                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                                    Err(_) => return,
                                }
                            }
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Mute { addr, stop }
    }
}

impl Drop for Mute {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A relay to `target` that holds each chunk of the answer for `delay` before passing it on:
/// a slow but healthy node.
fn delaying_relay(target: SocketAddr, delay: Duration) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut client) = c else { return };
            let Ok(mut server) = TcpStream::connect(target) else {
                continue;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c2, &mut s2);
                let _ = s2.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    match server.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            std::thread::sleep(delay);
                            if client.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    addr
}

/// A proxy over `urls` with health checks every `interval` s (each at most `timeout` s), a
/// metrics listener (whose address is returned) and `extra` keys.
fn start_proxy(urls: &str, interval: u64, timeout: u64, extra: &str) -> (Proxy, SocketAddr) {
    let metrics = free_port();
    let ini = crate::fleet_ini(
        urls,
        &format!(
            "esProxyHealthCheckInterval={interval}\nesProxyHealthCheckTimeout={timeout}\n\
             esProxyMetricsPort={metrics}\n{extra}"
        ),
    );
    let p = Proxy::start(&ini, "default");
    (p, format!("127.0.0.1:{metrics}").parse().unwrap())
}

/// Capture-like random ids (`YYMMDD-` and 24 characters of base64url).
fn capture_id(seed: u64) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut id = String::from("260819-");
    for _ in 0..24 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        id.push(B64[(x % 64) as usize] as char);
    }
    id
}

/// A gzip bulk of `docs` sessions with capture-like ids, and those ids.
fn bulk(seed: u64, docs: usize) -> (Vec<u8>, Vec<String>) {
    let mut b = String::new();
    let mut ids = Vec::new();
    for i in 0..docs {
        let id = capture_id(seed * 1000 + i as u64);
        b.push_str(&action_line(INDEX, &id));
        b.push('\n');
        b.push_str(&session_doc("toronto01", i));
        b.push('\n');
        ids.push(id);
    }
    (gzip(b.as_bytes()), ids)
}

/// osmem-server takes seconds to create an index (4.2 s measured for the first bulk, 0.2 s for
/// the next): tests with short timeouts create it first, with one document straight to the
/// node, whose id is returned.
fn warm_index(es: &Osmem) -> Vec<String> {
    let (gz, ids) = bulk(999, 1);
    let r = crate::harness::post_bulk(es.addr, None, &gz, true);
    assert_eq!(r.status, 200, "{}", r.text());
    ids
}

/// What `sensors` sensors got for `per_sensor` bulks each: (ok, took, ids) per bulk.
fn run_sensors(
    p: &Proxy,
    sensors: u64,
    per_sensor: u64,
    docs: usize,
) -> Vec<(bool, Duration, Vec<String>)> {
    let addr = p.addr;
    let threads: Vec<_> = (0..sensors)
        .map(|s| {
            std::thread::spawn(move || {
                let auth = basic(AUTH);
                (0..per_sensor)
                    .map(|n| {
                        let (gz, ids) = bulk(s * 100 + n, docs);
                        let start = Instant::now();
                        let r = crate::harness::post_bulk(addr, Some(&auth), &gz, true);
                        let ok = r.status == 200 && r.json()["errors"] == false;
                        if !ok {
                            eprintln!("bulk {s}/{n}: {} {}", r.status, r.text());
                        }
                        (ok, start.elapsed(), ids)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect()
}

#[test]
fn node_that_never_answers_costs_one_timeout_and_loses_or_doubles_no_bulk() {
    let a = Osmem::start();
    lean_sessions_template(&a);
    let mute = Mute::start();
    // The default esProxyUpstreamTimeout (30 s); the mute node first, so early bulks reach it.
    let (p, maddr) = start_proxy(&format!("http://{},{}", mute.addr, a.url()), 2, 1, "");
    let results = run_sensors(&p, 3, 10, 20);
    let sent: BTreeSet<String> = results.iter().flat_map(|r| r.2.clone()).collect();
    let acked = results.iter().filter(|r| r.0).count();
    let slowest = results.iter().map(|r| r.1).max().unwrap();
    let stored = a.ids(INDEX);
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    let t = scrape(maddr);
    let timeouts = sample(&t, "esproxy_upstream_errors_total", &[("kind", "timeout")]);
    let resent = sample(
        &t,
        "esproxy_upstream_timeout_resends_total",
        &[("request", "bulk")],
    );
    eprintln!(
        "stalled node: {} bulks, {acked} acknowledged, slowest {:.1} s, {} documents sent, \
         {} stored on the live node ({} distinct), {timeouts} timeouts, {resent} bulks re-sent",
        results.len(),
        slowest.as_secs_f64(),
        sent.len(),
        stored.len(),
        unique.len()
    );
    assert_eq!(results.len(), 30);
    assert_eq!(acked, 30, "every bulk acknowledged (200, errors: false)");
    assert!(
        slowest < Duration::from_secs(35),
        "slowest bulk {slowest:?}"
    );
    assert_eq!(stored.len(), 600, "no document lost or doubled");
    assert_eq!(
        unique, sent,
        "the live node holds exactly the documents sent"
    );
    assert!(
        timeouts >= 1.0 && resent >= 1.0,
        "the mute node was used:\n{t}"
    );
    assert_eq!(timeouts, resent, "each timed-out bulk was re-sent once");
}

#[test]
fn slow_but_healthy_node_is_never_cut_off_nor_sent_a_bulk_twice() {
    let a = Osmem::start();
    lean_sessions_template(&a);
    let mut sent = warm_index(&a);
    let slow = delaying_relay(a.addr, Duration::from_secs(3));
    // Every answer is held 3 s; the timeout is 8 s.
    let (p, maddr) = start_proxy(
        &format!("http://{slow}"),
        10,
        5,
        "esProxyUpstreamTimeout=8\n",
    );
    let results = run_sensors(&p, 3, 2, 20);
    sent.extend(results.iter().flat_map(|r| r.2.clone()));
    let sent: BTreeSet<String> = sent.into_iter().collect();
    let stored = a.ids(INDEX);
    let t = scrape(maddr);
    let timeouts = sample(&t, "esproxy_upstream_errors_total", &[("kind", "timeout")]);
    let resent = sample(&t, "esproxy_upstream_timeout_resends_total", &[]);
    let replays = results.iter().map(|r| r.1).max().unwrap();
    eprintln!(
        "slow node: {} bulks, {} acknowledged, slowest {:.1} s, {} stored, {timeouts} timeouts, \
         {resent} re-sends",
        results.len(),
        results.iter().filter(|r| r.0).count(),
        replays.as_secs_f64(),
        stored.len()
    );
    assert!(results.iter().all(|r| r.0), "every bulk acknowledged");
    assert!(
        results.iter().all(|r| r.1 >= Duration::from_secs(3)),
        "the delay was real"
    );
    assert_eq!(
        (timeouts, resent),
        (0.0, 0.0),
        "no timeout, no re-send:\n{t}"
    );
    assert_eq!(stored.len(), sent.len());
    assert_eq!(stored.into_iter().collect::<BTreeSet<_>>(), sent);
}

#[test]
fn silent_node_gets_a_504_for_a_bulk_without_ids_and_a_resend_for_a_read() {
    let a = Osmem::start();
    lean_sessions_template(&a);
    warm_index(&a);
    let mute = Mute::start();
    // Slow health checks: only the passive mark-down takes the mute node out.
    let urls = format!("http://{},{}", mute.addr, a.url());
    let (p, maddr) = start_proxy(&urls, 60, 1, "esProxyUpstreamTimeout=3\n");
    // Round robin starts at the mute node: an id-less bulk (autoGenerateId=true) goes there.
    let body = format!(
        "{{\"index\":{{\"_index\":\"{INDEX}\"}}}}\n{}\n",
        session_doc("toronto01", 1)
    );
    let start = Instant::now();
    let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
    let took = start.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.json()["error"].as_str().unwrap().contains("esproxy"));
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "{took:?}"
    );
    assert_eq!(
        a.count(INDEX, r#"{"match_all":{}}"#),
        1,
        "not sent again (1: warm_index)"
    );

    // The node was marked down at once: the next bulk goes to the live node without waiting.
    let r = p.req(AUTH, "POST", "/_bulk", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let t = scrape(maddr);
    assert_eq!(
        sample(&t, "esproxy_upstream_timeout_resends_total", &[]),
        0.0
    );
    assert_eq!(
        sample(&t, "esproxy_upstream_errors_total", &[("kind", "timeout")]),
        1.0
    );

    // A read that meets the silent node is sent to the other one. Put it back in rotation
    // first: only a passed health check would, so start a new proxy.
    drop(p);
    let (p, maddr2) = start_proxy(&urls, 60, 1, "esProxyUpstreamTimeout=3\n");
    let r = p.req(AUTH, "GET", "/_cluster/health", b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let t = scrape(maddr2);
    assert_eq!(
        sample(
            &t,
            "esproxy_upstream_timeout_resends_total",
            &[("request", "read")]
        ),
        1.0,
        "{t}"
    );
}
