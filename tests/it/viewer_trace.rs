//! The sensor viewer's traffic (arkime-traffic.md §3, issue #11), replayed from
//! `tests/data/viewer-requests.txt` with its query strings: strict mode forwards every request
//! a real 6.7.1 sensor viewer sent, and both modes refuse the two it must not get (the
//! `primary-viewer` cron check, harmless to refuse, and the session `doc` update after pcap
//! scrubbing, which could rewrite any node's session).

use crate::fleet_ini;
use crate::harness::{Proxy, Recorder};

const TRACE: &str = include_str!("../data/viewer-requests.txt");

/// (allowed, method, target, body) of each request in the file.
fn requests() -> Vec<(bool, &'static str, &'static str, &'static str)> {
    TRACE
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let verdict = parts.next().unwrap();
            assert!(verdict == "allow" || verdict == "refuse", "{l}");
            let method = parts.next().unwrap();
            let target = parts.next().expect("a target");
            (
                verdict == "allow",
                method,
                target,
                parts.next().unwrap_or(""),
            )
        })
        .collect()
}

fn replay(strict: bool) {
    let es = Recorder::start();
    let extra = format!("esProxyStrict={strict}");
    let p = Proxy::start(
        &fleet_ini(&format!("http://{}", es.addr), &extra),
        "default",
    );
    let reqs = requests();
    assert!(reqs.len() >= 35, "the whole of §3");
    for (allowed, method, target, body) in reqs {
        let forwarded = || {
            es.requests()
                .iter()
                .filter(|r| r.head[0] != "GET / HTTP/1.1")
                .count()
        };
        let before = forwarded();
        let r = p.req("toronto01:secret1", method, target, body.as_bytes());
        let want = if allowed { 200 } else { 400 };
        assert_eq!(
            r.status,
            want,
            "strict={strict} {method} {target}: {}",
            r.text()
        );
        // `GET /` cannot be told apart from the pool's health probes; its 200 is the
        // recorder's answer.
        if target != "/" {
            let sent = forwarded() - before;
            assert_eq!(
                sent,
                usize::from(allowed),
                "strict={strict} {method} {target}"
            );
        }
    }
}

#[test]
fn every_sensor_viewer_request_passes_in_strict_mode_and_the_refused_two_do_not() {
    replay(true);
}

#[test]
fn the_sensor_viewer_replay_also_passes_in_lax_mode() {
    replay(false);
}
