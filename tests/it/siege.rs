//! The hostile-connection load test (issue #13), with the default deadlines and caps: about
//! 18,000 hostile connections from 127.0.0.2 and up (4,000 slow heads, 2,000 silent, 12,000
//! flood from one address, 200 stalled authenticated bulks from a second sensor) while a legit
//! sensor at 127.0.0.1 keeps sending. Loopback only, bounded in count and time (about a minute).
//!
//! It asserts every legit request succeeds, ≥ 99 % of slow heads and silent connections are
//! closed by esproxy within 30 s of opening, ≥ 99 % of stalled bodies ended within 45 s of their
//! last byte (nothing of them stored), the flood refused and counted, and esproxy's peak RSS
//! (VmHWM) ≤ 128 MB. The legit GET p99 < 100 ms is judged when the sensor alone, measured just
//! before (after a warm-up, ~170 GETs), shows a quiet machine (p99 < 25 ms); the figures (with
//! that baseline, the load average and both processes' CPU) are printed either way. GET latency
//! is taken over the GETs that did not start while one of the sensor's own bulks was in flight:
//! the Elasticsearch stand-in answers nothing while it indexes a bulk (see where the figures are
//! computed).
//!
//! `#[ignore]`d so it never runs beside the other integration tests (it would disturb their
//! timing): `scripts/test.sh` runs it on its own afterwards with
//! `cargo test --test it siege -- --ignored --nocapture`.

use crate::bulk_stream::lean_sessions_template;
use crate::harness::{action_line, basic, free_port, request, session_doc, sid, temp_file};
use crate::harness::{Osmem, Proxy};
use crate::ops::{sample, scrape};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const INDEX: &str = "arkime_sessions3-260819";
/// The attack: connections of each kind, opened evenly over `RAMP_TICKS` × 100 ms.
const FLOOD: u32 = 12_000;
const SLOW: u32 = 4_000;
const SILENT: u32 = 2_000;
const STALLED: usize = 200;
const RAMP_TICKS: u32 = 200;
/// The legit sensor's first requests (first upstream connections, first bulk into a new index)
/// are left out of every figure.
const WARM_UP: Duration = Duration::from_secs(3);
/// Then the legit sensor alone, for side-by-side figures: about 240 GETs, so its p99 is the third
/// slowest, not one outlier.
const BASELINE: Duration = Duration::from_secs(12);
/// Below this GET p99 with the legit sensor alone, the machine is quiet enough to judge the
/// 100 ms target under siege.
const QUIET_BASELINE_P99: Duration = Duration::from_millis(25);
/// How long a hostile client waits to be closed before giving up (the figures say how many did).
const GIVE_UP: Duration = Duration::from_secs(50);

/// Raises this process's open-file limit (children inherit it) to at least `want`, with
/// util-linux `prlimit`: the soft limit up to the hard one, or both where allowed (root in CI).
/// At its peak the siege holds about 8,000 sockets in this process and as many in esproxy.
fn raise_nofile(want: u64) {
    let read = || -> (u64, u64) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let f: Vec<&str> = line.split_whitespace().collect();
        (f[3].parse().unwrap(), f[4].parse().unwrap())
    };
    let (soft, hard) = read();
    if soft >= want {
        return;
    }
    let pid = std::process::id().to_string();
    for target in [format!("{hard}:{hard}"), format!("{want}:{want}")] {
        let ok = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={target}")])
            .status()
            .is_ok_and(|s| s.success());
        if ok && read().0 >= want {
            return;
        }
    }
    panic!(
        "the siege needs {want} open files; the limit is {:?} and prlimit could not raise it",
        read()
    );
}

async fn connect_from(src: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(IpAddr::V4(src), 0))?;
    sock.connect(to).await
}

/// Reads until the peer closes (or fails); Some(time from `since`) unless `give_up` passes.
async fn closed_within(s: &mut TcpStream, since: Instant, give_up: Duration) -> Option<Duration> {
    let mut buf = [0u8; 512];
    let read_all = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return since.elapsed(),
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(give_up.saturating_sub(since.elapsed()), read_all)
        .await
        .ok()
}

/// Connect, then nothing.
async fn silent(src: Ipv4Addr, to: SocketAddr) -> Option<Duration> {
    let t = Instant::now();
    let mut s = connect_from(src, to).await.ok()?;
    closed_within(&mut s, t, GIVE_UP).await
}

/// A partial head, then one more header line every 5 s.
async fn slow_head(src: Ipv4Addr, to: SocketAddr) -> Option<Duration> {
    let t = Instant::now();
    let mut s = connect_from(src, to).await.ok()?;
    if s.write_all(b"GET /_cluster/health HTTP/1.1\r\nHost: siege\r\n")
        .await
        .is_err()
    {
        return Some(t.elapsed());
    }
    let mut buf = [0u8; 512];
    let mut i = 0u32;
    while t.elapsed() < GIVE_UP {
        tokio::select! {
            r = s.read(&mut buf) => {
                if matches!(r, Ok(0) | Err(_)) {
                    return Some(t.elapsed());
                }
            }
            _ = tokio::time::sleep(Duration::from_secs(5)) => {
                i += 1;
                if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                    return Some(t.elapsed());
                }
            }
        }
    }
    None
}

/// Connect and hold until closed; `true` when esproxy closed it within a second (refused).
async fn flood(src: Ipv4Addr, to: SocketAddr) -> bool {
    let t = Instant::now();
    let Ok(mut s) = connect_from(src, to).await else {
        return true;
    };
    closed_within(&mut s, t, GIVE_UP)
        .await
        .is_some_and(|d| d < Duration::from_secs(1))
}

/// An authenticated chunked bulk that sends a pair, one more pair 10 s later, then stalls.
/// Some(time from its last byte to being ended by esproxy).
async fn stalled_bulk(src: Ipv4Addr, to: SocketAddr, n: usize) -> Option<Duration> {
    let mut s = connect_from(src, to).await.ok()?;
    let head = format!(
        "POST /_bulk HTTP/1.1\r\nHost: siege\r\nAuthorization: {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        basic("capture02:secret3")
    );
    s.write_all(head.as_bytes()).await.ok()?;
    let mut last = Instant::now();
    for k in 0..2 {
        if k > 0 {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        let pair = format!(
            "{}\n{}\n",
            action_line(INDEX, &sid("stalled", n * 2 + k)),
            session_doc("capture02", n)
        );
        let chunk = format!("{:x}\r\n{pair}\r\n", pair.len());
        if s.write_all(chunk.as_bytes()).await.is_err() {
            return Some(last.elapsed());
        }
        last = Instant::now();
    }
    closed_within(&mut s, last, Duration::from_secs(60)).await
}

/// The `k`-th bulk of `n` session pairs (ids of its own).
fn pairs(node: &str, n: usize, k: usize) -> String {
    let mut b = String::new();
    for i in 0..n {
        b.push_str(&action_line(INDEX, &sid("legit", k * n + i)));
        b.push('\n');
        b.push_str(&session_doc(node, i));
        b.push('\n');
    }
    b
}

/// Share of `xs` that is `Some(d)` with `d <= limit`.
fn share_within(xs: &[Option<Duration>], limit: Duration) -> f64 {
    xs.iter().filter(|d| d.is_some_and(|d| d <= limit)).count() as f64 / xs.len() as f64
}

fn p(xs: &mut [Duration], q: f64) -> Duration {
    xs.sort();
    xs[((xs.len() as f64 * q).ceil() as usize).clamp(1, xs.len()) - 1]
}

fn vm_kb(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The 1, 5 and 15-minute load averages (other work on the machine skews the latency figures).
fn loadavg() -> String {
    let l = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// CPU seconds (user + system) the process has used (`/proc/PID/stat`, 100 ticks a second).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after_name.split_whitespace().collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

#[test]
#[ignore = "load test: run alone (scripts/test.sh runs it after the suite)"]
fn siege_of_hostile_connections_leaves_the_legit_sensor_served_and_memory_bounded() {
    raise_nofile(16_384);
    let es = Osmem::start();
    let (port, mport) = (free_port(), free_port());
    let ini = format!(
        "[default]\nelasticsearch={}\nesProxyPort={port}\nesProxyHost=127.0.0.1\n\
         esProxyMetricsPort={mport}\n\
         [esproxy-sensors]\ntoronto01=pass:secret1;ip:127.0.0.1\n\
         capture02=pass:secret3;ip:127.0.0.0/8\n",
        es.url()
    );
    lean_sessions_template(&es);
    let proxy = Proxy::start_with(temp_file("esproxy.ini", &ini), "default", port);
    let to = proxy.addr;
    let metrics: SocketAddr = format!("127.0.0.1:{mport}").parse().unwrap();
    let rss_start = vm_kb(proxy.pid(), "VmRSS:");
    let load_before = loadavg();
    let cpu_start = cpu_secs(proxy.pid());
    let own_cpu_start = cpu_secs(std::process::id());

    // The legit sensor: a GET every 50 ms and a ~1 MB bulk every second, a new connection each
    // (two threads, so a slow bulk never delays the GETs being timed).
    // Each bulk carries new session ids, as capture's do (a repeated id is a create conflict).
    let stop = Arc::new(AtomicBool::new(false));
    let legit =
        |every: Duration, method: &'static str, path: &'static str, body: fn(usize) -> String| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let auth = basic("toronto01:secret1");
                let h = [
                    ("Authorization", auth.as_str()),
                    ("Content-Type", "application/json"),
                ];
                let (mut times, mut failures) = (Vec::new(), Vec::new());
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    let b = body(k);
                    k += 1;
                    let t = Instant::now();
                    let r = request(to, method, path, &h, b.as_bytes());
                    times.push((t, t.elapsed()));
                    if r.status != 200 || r.text().contains("\"errors\":true") {
                        let text: String = r.text().chars().take(300).collect();
                        failures.push(format!("{method} {path}: {} {text}", r.status));
                    }
                    std::thread::sleep(every.saturating_sub(t.elapsed()));
                }
                (times, failures)
            })
        };
    let gets = legit(Duration::from_millis(50), "GET", "/_cluster/health", |_| {
        String::new()
    });
    let bulks = legit(Duration::from_secs(1), "POST", "/_bulk", |k| {
        pairs("toronto01", 1700, k)
    });

    // Sample esproxy's RSS while the siege runs.
    let pid = proxy.pid();
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(vm_kb(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(200));
            }
            peak
        })
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let warmed = Instant::now() + WARM_UP;
    std::thread::sleep(WARM_UP + BASELINE);
    let started = Instant::now();
    let (slow, quiet, refused_fast, stalled) = rt.block_on(async move {
        let stalled: Vec<_> = (0..STALLED)
            .map(|n| {
                tokio::spawn(stalled_bulk(
                    Ipv4Addr::new(127, 0, 3, 1 + (n / 50) as u8),
                    to,
                    n,
                ))
            })
            .collect();
        let mut slow = Vec::new();
        let mut quiet = Vec::new();
        let mut flooding = Vec::new();
        // Opened over RAMP_TICKS × 100 ms: the flood from 127.0.0.2, slow heads from 100
        // addresses, silent ones from 50.
        for tick in 0..RAMP_TICKS {
            for _ in 0..FLOOD / RAMP_TICKS {
                flooding.push(tokio::spawn(flood(Ipv4Addr::new(127, 0, 0, 2), to)));
            }
            for k in 0..SLOW / RAMP_TICKS {
                let n = tick * SLOW / RAMP_TICKS + k;
                let src = Ipv4Addr::new(127, 0, 1, 1 + (n % 100) as u8);
                slow.push(tokio::spawn(slow_head(src, to)));
            }
            for k in 0..SILENT / RAMP_TICKS {
                let n = tick * SILENT / RAMP_TICKS + k;
                let src = Ipv4Addr::new(127, 0, 2, 1 + (n % 50) as u8);
                quiet.push(tokio::spawn(silent(src, to)));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut out = (Vec::new(), Vec::new(), 0usize, Vec::new());
        for h in slow {
            out.0.push(h.await.unwrap());
        }
        for h in quiet {
            out.1.push(h.await.unwrap());
        }
        for h in flooding {
            out.2 += h.await.unwrap() as usize;
        }
        for h in stalled {
            out.3.push(h.await.unwrap());
        }
        out
    });
    let siege_time = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (gets, mut failures) = gets.join().unwrap();
    let (bulks, bulk_failures) = bulks.join().unwrap();
    failures.extend(bulk_failures);
    // osmem, the Elasticsearch stand-in, serves nothing else while it indexes a bulk: a GET that
    // arrives during the legit sensor's own 1 MB bulk waits for it (under a millisecond alone,
    // the rest of the bulk's 100-500 ms behind one), which a real cluster does not do and which
    // says nothing about esproxy. Those GETs must succeed too, but they are reported apart: the
    // latency figures are of the GETs that did not start while a bulk of the sensor was in
    // flight. Only the start counts: a GET that esproxy itself held up long enough to run into
    // the next bulk stays in the figures (judging by overlap would drop exactly the slow ones).
    let bulk_spans: Vec<(Instant, Instant)> = bulks.iter().map(|(t, d)| (*t, *t + *d)).collect();
    let clear =
        |(t, _): &(Instant, Duration)| !bulk_spans.iter().any(|(b0, b1)| *b0 <= *t && *t < *b1);
    let during = |xs: &[(Instant, Duration)], siege: bool, clear_only: bool| -> Vec<Duration> {
        xs.iter()
            .filter(|s| s.0 >= warmed && (s.0 >= started) == siege && (!clear_only || clear(s)))
            .map(|(_, d)| *d)
            .collect()
    };
    // When the slowest GETs under siege started (seconds into the siege): ties them to a phase
    // (the ramp, the first-byte or head deadlines, the stalled bulks' end).
    let mut slowest: Vec<(Duration, f64)> = gets
        .iter()
        .filter(|s| s.0 >= started && clear(s))
        .map(|(t, d)| (*d, (*t - started).as_secs_f64()))
        .collect();
    slowest.sort_by_key(|s| std::cmp::Reverse(s.0));
    slowest.truncate(8);
    let all_gets = during(&gets, true, false);
    let gets_in_bulks = all_gets.len() - during(&gets, true, true).len();
    let mut all_gets = all_gets;
    let (mut base_gets, mut gets) = (during(&gets, false, true), during(&gets, true, true));
    let mut bulks = during(&bulks, true, false);
    let rss_peak_sampled = sampler.join().unwrap();
    let hwm = vm_kb(pid, "VmHWM:");
    let cpu = cpu_secs(pid) - cpu_start;
    let own_cpu = cpu_secs(std::process::id()) - own_cpu_start;
    let text = scrape(metrics);
    let m = |name: &str, labels: &[(&str, &str)]| sample(&text, name, labels);

    let slow_ok = share_within(&slow, Duration::from_secs(30));
    let quiet_ok = share_within(&quiet, Duration::from_secs(30));
    let stalled_ok = share_within(&stalled, Duration::from_secs(45));
    let (base_p50, base_p99) = (p(&mut base_gets, 0.50), p(&mut base_gets, 0.99));
    let (p50, p90, p99, max) = (
        p(&mut gets, 0.50),
        p(&mut gets, 0.90),
        p(&mut gets, 0.99),
        p(&mut gets, 1.0),
    );
    println!(
        "siege figures ({:.0} s):\n\
         legit alone first: {} GETs clear of the sensor's bulks (p50 {:?}, p99 {:?})\n\
         legit under siege: {} GETs clear of the sensor's bulks (p50 {:?}, p90 {:?}, p99 {:?}, \
         max {:?}); all {} GETs p99 {:?} ({} started during a bulk); {} bulks (p50 {:?}, max {:?}); \
         {} failures {:?}\n\
         slow heads closed within 30 s: {:.2} % of {}\n\
         silent closed within 30 s: {:.2} % of {}\n\
         flood closed within 1 s (refused): {} of {FLOOD}\n\
         stalled bulks ended within 45 s of their last byte: {:.2} % of {}\n\
         slowest GETs under siege (time, s into the siege): {:.0?}\n\
         esproxy RSS: start {} KB, sampled peak {} KB, VmHWM {} KB; CPU {:.1} s (the test's \
         clients: {:.1} s)\n\
         load average before {}, after {}\n\
         metrics: refused per_client {}, unauthenticated {}, max_connections {}; evicted {}; \
         deadlines first_byte {}, head {}, body_idle {}",
        siege_time.as_secs_f64(),
        base_gets.len(),
        base_p50,
        base_p99,
        gets.len(),
        p50,
        p90,
        p99,
        max,
        all_gets.len(),
        p(&mut all_gets, 0.99),
        gets_in_bulks,
        bulks.len(),
        p(&mut bulks, 0.5),
        p(&mut bulks, 1.0),
        failures.len(),
        &failures[..failures.len().min(5)],
        slow_ok * 100.0,
        slow.len(),
        quiet_ok * 100.0,
        quiet.len(),
        refused_fast,
        stalled_ok * 100.0,
        stalled.len(),
        slowest,
        rss_start,
        rss_peak_sampled,
        hwm,
        cpu,
        own_cpu,
        load_before.trim(),
        loadavg().trim(),
        m(
            "esproxy_connections_refused_total",
            &[("cap", "per_client")]
        ),
        m(
            "esproxy_connections_refused_total",
            &[("cap", "unauthenticated")]
        ),
        m(
            "esproxy_connections_refused_total",
            &[("cap", "max_connections")]
        ),
        m("esproxy_connections_evicted_total", &[]),
        m(
            "esproxy_connection_deadlines_total",
            &[("deadline", "first_byte")]
        ),
        m(
            "esproxy_connection_deadlines_total",
            &[("deadline", "head")]
        ),
        m(
            "esproxy_connection_deadlines_total",
            &[("deadline", "body_idle")]
        ),
    );

    assert!(failures.is_empty(), "legit requests failed: {failures:?}");
    // The latency target is a speed figure: judged only when the legit sensor alone was fast on
    // this machine just before (a quiet machine, as in CI); on a loaded one it is reported only.
    if base_p99 < QUIET_BASELINE_P99 {
        assert!(
            p99 < Duration::from_millis(100),
            "legit GET p99 {p99:?} under siege (alone: {base_p99:?})"
        );
    } else {
        println!(
            "GET p99 target (100 ms) not judged: the legit sensor alone had p99 {base_p99:?} \
             here (a loaded machine)"
        );
    }
    assert!(slow_ok >= 0.99, "slow heads closed within 30 s: {slow_ok}");
    assert!(quiet_ok >= 0.99, "silent closed within 30 s: {quiet_ok}");
    assert!(
        stalled_ok >= 0.99,
        "stalled bodies ended within 45 s: {stalled_ok}"
    );
    assert!(hwm <= 128 * 1024, "esproxy peak RSS {hwm} KB");
    assert!(
        m(
            "esproxy_connections_refused_total",
            &[("cap", "per_client")]
        ) >= 10_000.0,
        "the flood from one address is refused and counted"
    );
    // The stalled bulks never completed: Elasticsearch stored none of them.
    let stored = es.ids(INDEX);
    assert!(!stored.iter().any(|id| id.contains("stalled")));
    assert!(stored.iter().any(|id| id.contains("legit")));
}
