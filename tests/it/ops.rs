//! Operations (issue #6): the metrics listener counts allowed, denied and bulk traffic; SIGHUP
//! swaps sensors and passwords without disturbing a bulk in flight, and keeps the running
//! settings when the new file is bad; SIGTERM lets an in-flight bulk finish and exits as soon as
//! it is done, never later than the grace period.

use crate::harness::{action_line, basic, free_port, read_response, session_doc, sid, temp_file};
use crate::harness::{Osmem, Proxy, Response};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const INDEX: &str = "arkime_sessions3-260819";

/// `[default]` with the given listener, metrics port, grace period and toronto01's password.
fn ops_ini(es: &str, port: u16, metrics: u16, grace: u64, pass: &str) -> String {
    format!(
        "[default]\nelasticsearch={es}\nesProxyPort={port}\nesProxyHost=127.0.0.1\n\
         esProxyMetricsPort={metrics}\nesProxyGracePeriod={grace}\n\
         [esproxy-sensors]\ntoronto01=pass:{pass};ip:127.0.0.1\ntoronto011=pass:secret2;ip:127.0.0.1\n"
    )
}

struct Running {
    proxy: Proxy,
    config: std::path::PathBuf,
    port: u16,
    metrics: SocketAddr,
}

impl Running {
    /// Replaces the config file with `text`, sends SIGHUP and waits until the reload counter
    /// for `result` (`ok` or `error`) reaches `count`; the metrics text at that point.
    fn reload(&self, text: &str, result: &str, count: f64) -> String {
        rewrite(&self.config, text);
        signal(&self.proxy, "HUP");
        wait_sample(
            self.metrics,
            "esproxy_config_reloads_total",
            &[("result", result)],
            count,
        )
    }
}

fn start(es: &Osmem, grace: u64) -> Running {
    let (port, mport) = (free_port(), free_port());
    let config = temp_file(
        "esproxy.ini",
        &ops_ini(&es.url(), port, mport, grace, "secret1"),
    );
    let proxy = Proxy::start_with(config.clone(), "default", port);
    let metrics: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    wait_listening(metrics);
    Running {
        proxy,
        config,
        port,
        metrics,
    }
}

fn wait_listening(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(p: &Proxy, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &p.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{sig} failed");
}

pub(crate) fn scrape(addr: SocketAddr) -> String {
    let r = crate::harness::request(addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    r.text()
}

/// The value of the sample `name` whose labels include every `labels` pair (0 when absent).
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            (n == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// Polls the metrics until `name{labels}` reaches `at_least`.
fn wait_sample(addr: SocketAddr, name: &str, labels: &[(&str, &str)], at_least: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let t = scrape(addr);
        if sample(&t, name, labels) >= at_least {
            return t;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached {at_least}:\n{t}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pair(node: &str, i: usize) -> String {
    format!(
        "{}\n{}\n",
        action_line(INDEX, &sid("ops", i)),
        session_doc(node, i)
    )
}

/// A `_bulk` sent in chunked pieces, as slowly as the test likes.
struct SlowBulk {
    s: TcpStream,
}

impl SlowBulk {
    fn start(addr: SocketAddr, user_pass: &str) -> SlowBulk {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let head = format!(
            "POST /_bulk HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\
             Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n",
            basic(user_pass)
        );
        s.write_all(head.as_bytes()).unwrap();
        SlowBulk { s }
    }

    /// Sends one chunk; false once the proxy has closed the connection.
    fn send(&mut self, data: &str) -> bool {
        let mut c = format!("{:x}\r\n", data.len()).into_bytes();
        c.extend_from_slice(data.as_bytes());
        c.extend_from_slice(b"\r\n");
        self.s.write_all(&c).and_then(|_| self.s.flush()).is_ok()
    }

    /// Ends the body and reads the answer; None when the connection was cut instead.
    fn finish(mut self) -> Option<Response> {
        self.s.write_all(b"0\r\n\r\n").ok()?;
        let mut r = BufReader::new(self.s);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_response(&mut r))).ok()
    }
}

/// Sends `pieces` pairs for `node` from a thread, one every `gap`, after the first one (sent
/// before returning, so the request is in flight); the thread returns the response.
fn slow_bulk_in_thread(
    addr: SocketAddr,
    user_pass: &str,
    node: &str,
    pieces: usize,
    gap: Duration,
) -> std::thread::JoinHandle<Option<Response>> {
    let mut b = SlowBulk::start(addr, user_pass);
    assert!(b.send(&pair(node, 0)));
    let node = node.to_string();
    std::thread::spawn(move || {
        for i in 1..pieces {
            std::thread::sleep(gap);
            if !b.send(&pair(&node, i)) {
                return None;
            }
        }
        b.finish()
    })
}

fn rewrite(path: &Path, text: &str) {
    // Write then rename, as an operator's config management does: the reload never sees half a file.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn metrics_count_allowed_denied_and_bulk_traffic() {
    let es = Osmem::start();
    let run = start(&es, 10);
    let p = &run.proxy;

    assert_eq!(p.req("toronto01:secret1", "GET", "/", b"").status, 200);
    assert_eq!(p.req("toronto01:wrong", "GET", "/", b"").status, 401);
    assert_eq!(p.req("mallory:x", "GET", "/", b"").status, 401);
    let ok: String = (0..3).map(|i| pair("toronto01", i)).collect();
    let r = p.req("toronto01:secret1", "POST", "/_bulk", ok.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    // A document in toronto011's name cuts toronto01's bulk.
    let bad = format!("{}{}", pair("toronto01", 10), pair("toronto011", 11));
    let r = p.req("toronto01:secret1", "POST", "/_bulk", bad.as_bytes());
    assert_eq!(r.status, 400);

    // `logging` records a request just after its answer is sent, and the in-flight gauge drops
    // when the request's context is freed after that: wait for both.
    wait_sample(run.metrics, "esproxy_requests_total", &[], 5.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let t = loop {
        let t = scrape(run.metrics);
        if sample(&t, "esproxy_requests_in_flight", &[]) == 0.0 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let s = |name: &str, labels: &[(&str, &str)]| sample(&t, name, labels);
    let root_ok = [
        ("sensor", "toronto01"),
        ("method", "GET"),
        ("route", "root"),
        ("status", "200"),
    ];
    assert_eq!(s("esproxy_requests_total", &root_ok), 1.0, "{t}");
    assert_eq!(
        s(
            "esproxy_requests_total",
            &[("sensor", "unknown"), ("status", "401")]
        ),
        2.0,
        "{t}"
    );
    assert_eq!(
        s("esproxy_denials_total", &[("reason", "bad_password")]),
        1.0
    );
    assert_eq!(
        s("esproxy_denials_total", &[("reason", "unknown_sensor")]),
        1.0
    );
    assert_eq!(
        s(
            "esproxy_denials_total",
            &[("sensor", "toronto01"), ("reason", "bad_bulk")]
        ),
        1.0
    );
    let docs = |result| {
        s(
            "esproxy_bulk_documents_total",
            &[("sensor", "toronto01"), ("result", result)],
        )
    };
    assert_eq!(docs("accepted"), 3.0, "{t}");
    assert_eq!(docs("rejected"), 2.0, "{t}");
    assert!(s("esproxy_received_bytes_total", &[("sensor", "toronto01")]) > ok.len() as f64);
    assert!(s("esproxy_sent_bytes_total", &[("sensor", "toronto01")]) > 0.0);
    assert!(s("esproxy_upstream_sent_bytes_total", &[]) >= ok.len() as f64);
    let peer = format!("http://{}", es.addr);
    assert_eq!(s("esproxy_upstream_healthy", &[("peer", &peer)]), 1.0);
    assert!(
        s(
            "esproxy_upstream_response_seconds_count",
            &[("peer", &peer)]
        ) >= 2.0
    );
    assert_eq!(s("esproxy_requests_in_flight", &[]), 0.0);
    // Names that are not configured never become label values.
    assert!(!t.contains("mallory"), "{t}");
    assert_eq!(
        crate::harness::request(run.metrics, "GET", "/healthz", &[], b"").status,
        200
    );
}

#[test]
fn sighup_swaps_a_password_while_a_bulk_streams_and_keeps_it_on_a_bad_file() {
    let es = Osmem::start();
    let run = start(&es, 10);
    let p = &run.proxy;
    let es_url = es.url();

    let bulk = slow_bulk_in_thread(
        p.addr,
        "toronto01:secret1",
        "toronto01",
        10,
        Duration::from_millis(200),
    );
    // The bulk's head has been read (it is in flight) before the signal.
    wait_sample(run.metrics, "esproxy_requests_in_flight", &[], 1.0);
    run.reload(
        &ops_ini(&es_url, run.port, run.metrics.port(), 10, "rotated"),
        "ok",
        1.0,
    );
    assert!(
        !bulk.is_finished(),
        "the reload came after the bulk, not during it"
    );

    // The bulk that started under the old password finishes, all of it stored.
    let r = bulk.join().unwrap().expect("bulk answered");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false);
    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 10);
    // The next request needs the new password.
    assert_eq!(p.req("toronto01:secret1", "GET", "/", b"").status, 401);
    assert_eq!(p.req("toronto01:rotated", "GET", "/", b"").status, 200);

    // A broken file is refused and the running settings stay.
    let t = run.reload("[default]\nesProxyPort=not-a-port\n", "error", 1.0);
    assert_eq!(
        sample(&t, "esproxy_config_reloads_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(p.req("toronto01:rotated", "GET", "/", b"").status, 200);

    // A listener change is applied only by a restart: the proxy says so and keeps serving.
    let t = run.reload(
        &ops_ini(&es_url, free_port(), run.metrics.port(), 10, "rotated"),
        "ok",
        2.0,
    );
    assert_eq!(sample(&t, "esproxy_config_restart_required", &[]), 1.0);
    assert_eq!(p.req("toronto01:rotated", "GET", "/", b"").status, 200);
}

/// One GET on an open keep-alive connection; the status.
fn get_on(r: &mut BufReader<TcpStream>, addr: SocketAddr, user_pass: &str) -> u16 {
    let head = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\n\r\n",
        basic(user_pass)
    );
    r.get_mut().write_all(head.as_bytes()).unwrap();
    read_response(r).status
}

#[test]
fn sighup_password_change_applies_to_a_kept_alive_connection_at_once() {
    // A connection remembers its last successful authentication (src/auth.rs `Memo`); a reload
    // must not let it go on with the old password.
    let es = Osmem::start();
    let run = start(&es, 10);
    let p = &run.proxy;
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(get_on(&mut r, p.addr, "toronto01:secret1"), 200);
    assert_eq!(get_on(&mut r, p.addr, "toronto01:secret1"), 200);
    // Other bytes on the same connection are checked, not answered from the memo.
    assert_eq!(get_on(&mut r, p.addr, "toronto01:secret2"), 401);
    let mut r = BufReader::new(TcpStream::connect(p.addr).unwrap());
    assert_eq!(get_on(&mut r, p.addr, "toronto01:secret1"), 200);
    run.reload(
        &ops_ini(&es.url(), run.port, run.metrics.port(), 10, "rotated"),
        "ok",
        1.0,
    );
    assert_eq!(get_on(&mut r, p.addr, "toronto01:secret1"), 401);
    let mut r = BufReader::new(TcpStream::connect(p.addr).unwrap());
    assert_eq!(get_on(&mut r, p.addr, "toronto01:rotated"), 200);
    assert_eq!(get_on(&mut r, p.addr, "toronto01:rotated"), 200);
}

#[test]
fn sigterm_lets_an_inflight_bulk_finish_then_exits_before_the_grace_period() {
    let es = Osmem::start();
    let mut run = start(&es, 10);
    let addr = run.proxy.addr;

    let bulk = slow_bulk_in_thread(
        addr,
        "toronto01:secret1",
        "toronto01",
        8,
        Duration::from_millis(250),
    );
    // The bulk's head has been read (it is in flight) before the signal.
    wait_sample(run.metrics, "esproxy_requests_in_flight", &[], 1.0);
    let t0 = Instant::now();
    signal(&run.proxy, "TERM");

    // New connections are refused at once, while the bulk goes on.
    let deadline = Instant::now() + Duration::from_secs(2);
    while TcpStream::connect(addr).is_ok() {
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = bulk.join().unwrap().expect("in-flight bulk answered");
    let done = t0.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false);
    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 8);

    // Exits once nothing is in flight: soon after the bulk, well within the 10 s grace period.
    let status = run
        .proxy
        .wait_exit(Duration::from_secs(10).saturating_sub(t0.elapsed()))
        .expect("esproxy exited within the grace period");
    assert!(status.success(), "{status}");
    let exited = t0.elapsed();
    assert!(
        exited < done + Duration::from_secs(2),
        "exit {exited:?} long after the last request ({done:?})"
    );
}

#[test]
fn sigterm_cuts_a_bulk_that_outlasts_the_grace_period() {
    let es = Osmem::start();
    let mut run = start(&es, 1);
    let bulk = slow_bulk_in_thread(
        run.proxy.addr,
        "toronto01:secret1",
        "toronto01",
        12,
        Duration::from_millis(500),
    );
    // The bulk's head has been read (it is in flight) before the signal.
    wait_sample(run.metrics, "esproxy_requests_in_flight", &[], 1.0);
    let t0 = Instant::now();
    signal(&run.proxy, "TERM");
    let status = run
        .proxy
        .wait_exit(Duration::from_secs(4))
        .expect("esproxy exited after its 1 s grace period");
    assert!(status.success(), "{status}");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
    // The cut bulk never got an answer, and none of it was committed as a whole request.
    assert!(bulk.join().unwrap().is_none_or(|r| r.status != 200));
}

#[test]
fn sigterm_on_an_idle_proxy_exits_at_once() {
    let es = Osmem::start();
    let mut run = start(&es, 60);
    assert_eq!(
        run.proxy.req("toronto01:secret1", "GET", "/", b"").status,
        200
    );
    let t0 = Instant::now();
    signal(&run.proxy, "TERM");
    let status = run
        .proxy
        .wait_exit(Duration::from_secs(5))
        .expect("idle esproxy exits without waiting out its 60 s grace period");
    assert!(status.success(), "{status}");
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[test]
fn sigquit_upgrade_hands_the_listener_over_without_refusing_a_request() {
    let es = Osmem::start();
    let mut old = start(&es, 10);
    // The path esproxy derives from its listener (src/reload.rs `upgrade_socket`).
    let sock = format!("/tmp/esproxy-upgrade-127.0.0.1-{}.sock", old.port);
    let _ = std::fs::remove_file(&sock);
    let mut new = Proxy::start_with_args(old.config.clone(), "default", old.port, &["-u"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(&sock).exists() {
        assert!(
            Instant::now() < deadline,
            "new process never waited on {sock}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Sensors keep sending (new connection each time) across the whole handover.
    let addr = old.proxy.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let client = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let got = std::panic::catch_unwind(|| {
                    crate::harness::request(
                        addr,
                        "GET",
                        "/",
                        &[("Authorization", &basic("toronto01:secret1"))],
                        b"",
                    )
                    .status
                });
                match got {
                    Ok(200) => ok += 1,
                    other => failed.push(format!("{other:?}")),
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    signal(&old.proxy, "QUIT");
    let status = old
        .proxy
        .wait_exit(Duration::from_secs(12))
        .expect("old process exits after handing over its sockets");
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap();
    assert!(failed.is_empty(), "{} ok, failed: {failed:?}", ok);
    assert!(ok > 20, "only {ok} requests during the handover");
    // The new process serves the sensors and the metrics listener it inherited.
    assert!(new.wait_exit(Duration::ZERO).is_none());
    assert_eq!(new.req("toronto01:secret1", "GET", "/", b"").status, 200);
    let t = scrape(old.metrics);
    assert!(sample(&t, "esproxy_requests_total", &[("sensor", "toronto01")]) >= 1.0);
}

#[test]
fn metrics_count_tee_mirrors_and_cut_mirrors() {
    let es = Osmem::start();
    let tee = Osmem::start();
    let (port, mport) = (free_port(), free_port());
    let text = format!(
        "{}[tee]\nelasticsearch={}\n",
        ops_ini(&es.url(), port, mport, 10, "secret1"),
        tee.url()
    );
    let p = Proxy::start_with(temp_file("esproxy.ini", &text), "default", port);
    let metrics: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    wait_listening(metrics);

    let ok: String = (0..3).map(|i| pair("toronto01", i)).collect();
    let r = p.req("toronto01:secret1", "POST", "/_bulk", ok.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let t = wait_sample(metrics, "esproxy_tee_mirrored_total", &[], 1.0);
    assert_eq!(
        sample(&t, "esproxy_tee_healthy", &[("peer", &tee.url())]),
        1.0
    );
    assert_eq!(tee.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 3);

    // A bulk cut at a bad line is cut on the tee too, and counted as such.
    let bad = format!("{}{}", pair("toronto01", 10), pair("toronto011", 11));
    let r = p.req("toronto01:secret1", "POST", "/_bulk", bad.as_bytes());
    assert_eq!(r.status, 400);
    wait_sample(
        metrics,
        "esproxy_tee_dropped_total",
        &[("reason", "cut")],
        1.0,
    );
    assert_eq!(tee.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 3);
}

#[test]
fn metrics_show_a_dead_peer_as_unhealthy_with_connect_errors() {
    // Nothing listens on `dead` (bound then released).
    let dead = format!("127.0.0.1:{}", free_port());
    let (port, mport) = (free_port(), free_port());
    let text = ops_ini(&format!("http://{dead}"), port, mport, 10, "secret1");
    let p = Proxy::start_with(temp_file("esproxy.ini", &text), "default", port);
    let metrics: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    wait_listening(metrics);

    assert_eq!(p.req("toronto01:secret1", "GET", "/", b"").status, 502);
    let peer = format!("http://{dead}");
    let t = wait_sample(
        metrics,
        "esproxy_upstream_errors_total",
        &[("peer", &peer), ("kind", "connect")],
        1.0,
    );
    let series = format!("esproxy_upstream_healthy{{peer=\"{peer}\"}} 0");
    assert!(t.contains(&series), "{t}");
    let t = wait_sample(metrics, "esproxy_requests_total", &[("status", "502")], 1.0);
    assert_eq!(
        sample(&t, "esproxy_requests_total", &[("sensor", "toronto01")]),
        1.0
    );
}

/// An upstream that answers every `_bulk` with 429 as soon as its head arrives (before the body
/// is over) and says so on `pushed`; health probes get 200.
fn pushing_back_upstream(pushed: std::sync::mpsc::Sender<()>) -> SocketAddr {
    use std::io::{BufRead, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let pushed = pushed.clone();
            std::thread::spawn(move || {
                let mut w = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                let mut first = String::new();
                if r.read_line(&mut first).unwrap_or(0) == 0 {
                    return;
                }
                let mut line = String::new();
                while r.read_line(&mut line).unwrap_or(0) > 2 {
                    line.clear();
                }
                let (status, body) = if first.starts_with("POST /_bulk") {
                    (429, r#"{"error":"es_rejected_execution_exception"}"#)
                } else {
                    (200, "{}")
                };
                let _ = write!(
                    w,
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if status == 429 {
                    let _ = pushed.send(());
                }
                // Take whatever else comes, so the proxy is not reset mid-write.
                let _ = r.read_to_end(&mut Vec::new());
            });
        }
    });
    addr
}

#[test]
fn a_bulk_refused_while_its_replay_reads_the_rest_counts_as_rejected() {
    let (tx, pushed) = std::sync::mpsc::channel();
    let es = pushing_back_upstream(tx);
    let (port, mport) = (free_port(), free_port());
    let config = temp_file(
        "esproxy.ini",
        &ops_ini(&format!("http://{es}"), port, mport, 5, "secret1"),
    );
    let _proxy = Proxy::start_with(config, "default", port);
    let metrics: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    wait_listening(metrics);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let mut b = SlowBulk::start(addr, "toronto01:secret1");
    assert!(b.send(&pair("toronto01", 0)));
    pushed
        .recv_timeout(Duration::from_secs(20))
        .expect("the bulk never reached the upstream");
    // Give the proxy time to take the 429 as back-pressure: the rest of the body is then read
    // by the replay, not by the body filter.
    std::thread::sleep(Duration::from_millis(500));
    assert!(b.send(&pair("someone-else", 1)));
    let r = b.finish().expect("an answer");
    assert_eq!(r.status, 400, "{}", r.text());
    wait_sample(
        metrics,
        "esproxy_bulk_requests_total",
        &[("sensor", "toronto01"), ("result", "rejected")],
        1.0,
    );
}
