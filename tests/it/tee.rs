//! The tee (SPEC §7): the mirror gets exactly the validated requests, with the tee's own
//! credentials; a refused request never reaches it complete; and a tee that is down,
//! black-holed or slow changes neither the primary's answers nor its latency.

use crate::bulk_stream::lean_sessions_template;
use crate::harness::{
    action_line, as_created, basic, free_port, gzip, session_doc, sid, Osmem, Proxy, Recorded,
    Recorder, Relay, RelayMode, Response,
};
use std::time::{Duration, Instant};

const INDEX: &str = "arkime_sessions3-260819";
const AUTH: &str = "toronto01:secret1";

fn ini(primary: &str, tee: Option<&str>) -> String {
    let tee = tee.map_or(String::new(), |t| {
        format!("[tee]\nelasticsearch={t}\nelasticsearchAPIKey=teekey\n")
    });
    format!(
        "[default]\nelasticsearch={primary}\nelasticsearchAPIKey=primarykey\nesProxyPort={{PORT}}\n\
         esProxyHost=127.0.0.1\n{tee}\
         [esproxy-sensors]\ntoronto01=pass:secret1;ip:127.0.0.1\ntoronto011=pass:secret2;ip:127.0.0.1\n"
    )
}

fn bulk(tag: &str, node: &str, from: usize, to: usize) -> String {
    let mut b = String::new();
    for i in from..to {
        b.push_str(&action_line(INDEX, &sid(tag, i)));
        b.push('\n');
        b.push_str(&session_doc(node, i));
        b.push('\n');
    }
    b
}

/// Toronto01's bulk with one document in toronto011's name in the middle.
fn refused_bulk() -> String {
    let mut b = bulk("ok", "toronto01", 0, 50);
    b.push_str(&action_line(INDEX, &sid("evil", 0)));
    b.push('\n');
    b.push_str(&session_doc("toronto011", 50));
    b.push('\n');
    b.push_str(&bulk("after", "toronto01", 51, 100));
    b
}

fn gzip_bulk(p: &Proxy, body: &str) -> Response {
    p.gzip_bulk(&basic(AUTH), &gzip(body.as_bytes()))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn tee_gets_exactly_the_validated_requests_with_its_own_credentials() {
    let es = Osmem::start();
    let tee = Recorder::start();
    let p = Proxy::start(
        &ini(&es.url(), Some(&format!("http://{}", tee.addr))),
        "default",
    );

    let plain = bulk("plain", "toronto01", 0, 20);
    let r = p.req(AUTH, "POST", "/_bulk", plain.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let zipped = bulk("gz", "toronto01", 0, 300);
    let r = gzip_bulk(&p, &zipped);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = p.req(AUTH, "POST", "/_bulk", refused_bulk().as_bytes());
    assert_eq!(r.status, 400);
    let r = p.req(AUTH, "GET", "/_cluster/health", b"");
    assert_eq!(r.status, 200);

    // Three mirrors end; the refused one never does (its head reaches the tee only if the
    // mirror had connected before validation cut it).
    // The tee's own health probes (`GET /`) are not mirrors.
    let mirrors = || -> Vec<Recorded> {
        tee.requests()
            .into_iter()
            .filter(|s| s.head[0] != "GET / HTTP/1.1")
            .collect()
    };
    wait_for("three complete mirrors", || {
        mirrors().iter().filter(|s| s.complete).count() >= 3
    });
    std::thread::sleep(Duration::from_millis(300));
    let seen = mirrors();
    assert!(seen.len() <= 4, "{seen:#?}");
    for s in &seen {
        assert_eq!(s.header("authorization"), Some("ApiKey teekey"), "{s:?}");
    }
    let complete: Vec<&Recorded> = seen.iter().filter(|s| s.complete).collect();
    assert_eq!(complete.len(), 3, "{seen:#?}");
    let bodies: Vec<&[u8]> = complete.iter().map(|s| s.body.as_slice()).collect();
    // What the primary got (strict: session `index` lines as `create`, gzip inflated).
    assert!(
        bodies.contains(&as_created(&plain).as_bytes()),
        "plain bulk as forwarded"
    );
    assert!(
        bodies.contains(&as_created(&zipped).as_bytes()),
        "gzip bulk as forwarded: validated and inflated"
    );
    assert!(bodies.contains(&&b""[..]), "the bodiless GET");
    if let Some(cut) = seen.iter().find(|s| !s.complete) {
        assert!(cut.head[0].starts_with("POST /_bulk "), "{cut:?}");
        let text = String::from_utf8_lossy(&cut.body);
        assert!(!text.contains("evil") && !text.contains("toronto011"));
        assert!(
            as_created(&refused_bulk())
                .as_bytes()
                .starts_with(&cut.body),
            "only validated lines, in order"
        );
    }
}

#[test]
fn tee_cluster_stores_what_the_primary_stores() {
    let es = Osmem::start();
    let t = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), Some(&t.url())), "default");
    for i in 0..5 {
        let r = gzip_bulk(&p, &bulk(&format!("b{i}-"), "toronto01", 0, 40));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        p.req(AUTH, "POST", "/_bulk", refused_bulk().as_bytes())
            .status,
        400
    );
    let primary = es.ids(INDEX);
    assert_eq!(primary.len(), 200);
    wait_for("the tee to catch up", || t.ids(INDEX).len() >= 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.ids(INDEX), primary);
}

/// Sends `n` gzip bulks alternately through a proxy without a tee and one whose tee is broken,
/// checks every answer, and returns the median latencies (baseline, with broken tee).
fn compare_latency(tee_url: &str, label: &str) -> (Duration, Duration) {
    let es = Osmem::start();
    lean_sessions_template(&es);
    let base = Proxy::start(&ini(&es.url(), None), "default");
    let teed = Proxy::start(&ini(&es.url(), Some(tee_url)), "default");
    let (mut lb, mut lt) = (Vec::new(), Vec::new());
    let n = 40;
    for i in 0..n {
        let mut pair = [(&base, &mut lb, "base"), (&teed, &mut lt, "teed")];
        // Alternate which goes first, so neither pays for the other's after-effects.
        if i % 2 == 1 {
            pair.reverse();
        }
        for (p, lat, tag) in pair {
            let body = bulk(&format!("{tag}{i}-"), "toronto01", 0, 40);
            let start = Instant::now();
            let r = gzip_bulk(p, &body);
            lat.push(start.elapsed());
            assert_eq!(r.status, 200, "{label}: {}", r.text());
            assert_eq!(r.json()["errors"], false, "{label}");
        }
    }
    assert_eq!(
        es.ids(INDEX).len(),
        2 * n * 40,
        "{label}: every document stored"
    );
    lb.sort();
    lt.sort();
    let (mb, mt) = (lb[n / 2], lt[n / 2]);
    eprintln!("tee {label}: median bulk latency without tee {mb:?}, with the tee {label} {mt:?}");
    (mb, mt)
}

/// A tee that held the primary up would cost it seconds (connect/read timeouts) per bulk; the
/// bound is loose so a busy shared machine's jitter never fails it, and still catches that.
fn assert_within_noise(label: &str, (base, teed): (Duration, Duration)) {
    assert!(
        teed <= base * 4 + Duration::from_millis(250),
        "{label}: {teed:?} against {base:?}"
    );
}

#[test]
fn tee_down_does_not_touch_the_primary() {
    let url = format!("http://127.0.0.1:{}", free_port());
    assert_within_noise("down", compare_latency(&url, "down"));
}

#[test]
fn tee_black_holed_does_not_touch_the_primary() {
    let hole = Relay::start(None, "127.0.0.1:9".parse().unwrap(), RelayMode::BlackHole);
    let url = format!("http://{}", hole.addr);
    assert_within_noise("black-holed", compare_latency(&url, "black-holed"));
}

#[test]
fn tee_slow_does_not_touch_the_primary() {
    let t = Osmem::start();
    let slow = Relay::start(None, t.addr, RelayMode::Slow(32 << 10));
    let url = format!("http://{}", slow.addr);
    assert_within_noise("slow", compare_latency(&url, "slow"));
}
