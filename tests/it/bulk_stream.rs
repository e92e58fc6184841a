//! `_bulk` through the proxy (SPEC §5): valid bulks land whole; a refused bulk leaves nothing
//! upstream from after its first bad line; bodies stream (memory bounded by the line limit).

use crate::fleet_ini;
use crate::harness::{action_line, gzip, session_doc, sid, Osmem, Proxy};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

const INDEX: &str = "arkime_sessions3-260819";

fn bulk(node: &str, from: usize, to: usize) -> String {
    let mut b = String::new();
    for i in from..to {
        b.push_str(&action_line(INDEX, &sid("doc", i)));
        b.push('\n');
        b.push_str(&session_doc(node, i));
        b.push('\n');
    }
    b
}

/// osmem indexes fast when it need not map every field (see the brief): map only node/rootId.
pub fn lean_sessions_template(es: &Osmem) {
    let r = es.req(
        "PUT",
        "/_template/arkime_sessions3_template",
        br#"{"index_patterns":["arkime_sessions3-*"],"mappings":{"dynamic":false,"properties":{"node":{"type":"keyword"},"rootId":{"type":"keyword"}}}}"#,
    );
    assert!(r.status < 300, "template: {}", r.text());
}

#[test]
fn valid_plain_and_gzip_bulks_land_whole() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");

    let r = p.req(
        "toronto01:secret1",
        "POST",
        "/_bulk",
        bulk("toronto01", 0, 300).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false);

    let gz = gzip(bulk("toronto01", 300, 600).as_bytes());
    let r = p.gzip_bulk(&crate::harness::basic("toronto01:secret1"), &gz);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false);

    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 600);
}

/// A gzip bulk whose `Content-Length` is over the store-and-forward bound goes upstream
/// inflated, so its length header must go and the body must be framed chunked: lax mode (the
/// sensor's bytes otherwise unchanged) with `esProxyMaxLine=8K`, which puts the bound at 4 KB.
#[test]
fn lax_gzip_bulk_too_large_to_hold_lands_whole_inflated() {
    let es = Osmem::start();
    let p = Proxy::start(
        &fleet_ini(&es.url(), "esProxyStrict=false\nesProxyMaxLine=8K"),
        "default",
    );
    let body = bulk("toronto01", 0, 400);
    let gz = gzip(body.as_bytes());
    assert!(gz.len() > 4096, "{} bytes: under the bound", gz.len());
    let r = p.gzip_bulk(&crate::harness::basic("toronto01:secret1"), &gz);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false, "{}", r.text());
    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 400);
}

#[test]
fn foreign_node_document_refuses_the_bulk_and_nothing_after_it_lands() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    // toronto01 tries to write one session in toronto011's name in the middle of a bulk.
    let mut body = bulk("toronto01", 0, 50);
    body.push_str(&action_line(INDEX, &sid("evil", 0)));
    body.push('\n');
    body.push_str(&session_doc("toronto011", 50));
    body.push('\n');
    body.push_str(&bulk("toronto01", 51, 100));

    let r = p.req("toronto01:secret1", "POST", "/_bulk", body.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), "Not authorized for API");

    let ids = es.ids(INDEX);
    assert!(
        !ids.contains(&sid("evil", 0)),
        "the bad document never reached ES"
    );
    for i in 51..100 {
        assert!(
            !ids.contains(&sid("doc", i)),
            "doc {i} came after the bad line"
        );
    }
    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto011"}}"#), 0);
}

#[test]
fn refused_gzip_bulk_leaves_nothing_after_the_bad_line() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let mut body = bulk("toronto01", 0, 400);
    body.push_str("{\"index\":{\"_index\":\"arkime_users\"}}\n{\"userId\":\"admin\"}\n");
    body.push_str(&bulk("toronto01", 400, 800));
    let r = p.gzip_bulk(
        &crate::harness::basic("toronto01:secret1"),
        &gzip(body.as_bytes()),
    );
    assert_eq!(r.status, 400);
    assert_eq!(es.count("arkime_users", r#"{"match_all":{}}"#), 0);
    let ids = es.ids(INDEX);
    assert!(
        ids.iter().all(|id| *id < sid("doc", 400)),
        "{} docs",
        ids.len()
    );
    // A gzip bulk with a Content-Length is stored and forwarded: refused, none of it lands.
    assert_eq!(
        ids.len(),
        0,
        "{} docs of a refused gzip bulk landed",
        ids.len()
    );
}

#[test]
fn chunked_gzip_bulk_streams_its_validated_lines_inflated() {
    // Without a Content-Length the body cannot be held whole: its validated lines stream up
    // inflated, as before, and every document lands.
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let gz = gzip(bulk("toronto01", 0, 300).as_bytes());
    let mut head = format!(
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::harness::basic("toronto01:secret1")
    )
    .into_bytes();
    for piece in gz.chunks(7000) {
        head.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        head.extend_from_slice(piece);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"0\r\n\r\n");
    let r = p.raw(&head);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false);
    assert_eq!(es.ids(INDEX).len(), 300);
}

/// Gzip bulks with a Content-Length are held whole and inflated by libdeflate while
/// `esProxyInflateBudget` has room (64K here), streamed through zlib-ng at their end when it has
/// room for the compressed body only, and streamed as they arrive without a Content-Length or
/// room: every valid one lands whole, and a body with bytes after its gzip member is refused
/// on every path (`esproxy_bulk_gzip_total` says which path each took).
#[test]
fn gzip_bulks_land_the_same_held_whole_or_streamed_within_the_inflate_budget() {
    let es = Osmem::start();
    let m = crate::harness::free_port();
    let p = Proxy::start(
        &fleet_ini(
            &es.url(),
            &format!("esProxyMetricsPort={m}\nesProxyInflateBudget=64K"),
        ),
        "default",
    );
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{m}").parse().unwrap();
    let path = |name: &str| {
        crate::ops::sample(
            &crate::ops::scrape(metrics),
            "esproxy_bulk_gzip_total",
            &[("path", name)],
        )
    };
    let auth = crate::harness::basic("toronto01:secret1");
    let send = |gz: &[u8]| p.gzip_bulk(&auth, gz);

    // Small: body and output fit the budget.
    let small = gzip(bulk("toronto01", 0, 20).as_bytes());
    let r = send(&small);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(path("whole"), 1.0);
    // Inflates past the budget: held, then streamed through zlib-ng.
    let large_body = bulk("toronto01", 100, 400);
    assert!(large_body.len() > 64 << 10);
    let large = gzip(large_body.as_bytes());
    assert!(large.len() < 64 << 10, "compressed {} bytes", large.len());
    let r = send(&large);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(path("fallback"), 1.0);
    // Chunked: streamed as it arrives.
    let chunked = gzip(bulk("toronto01", 500, 600).as_bytes());
    let mut raw = format!(
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\
         Content-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for piece in chunked.chunks(3000) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = p.raw(&raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(path("streamed"), 1.0);
    assert_eq!(es.ids(INDEX).len(), 20 + 300 + 100);

    // The gzip trailer repeated after the member: libdeflate alone would take it (it stops at
    // the member's end); refused as before, nothing of it lands.
    let mut trailing = gzip(bulk("toronto01", 700, 710).as_bytes());
    let n = trailing.len();
    trailing.extend_from_within(n - 8..);
    let r = send(&trailing);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(path("fallback"), 2.0);
    // A second member: refused too.
    let mut second = gzip(bulk("toronto01", 800, 810).as_bytes());
    second.extend(gzip(bulk("toronto01", 810, 820).as_bytes()));
    let r = send(&second);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        es.ids(INDEX).len(),
        420,
        "nothing of a refused held bulk lands"
    );
}

/// Lax mode: a small gzip bulk is stored and forwarded as received; it is checked by
/// libdeflate on the whole body, and bytes after its member still refuse it whole.
#[test]
fn lax_stored_gzip_bulk_is_inflated_whole_and_forwarded_as_received() {
    let es = Osmem::start();
    let m = crate::harness::free_port();
    let p = Proxy::start(
        &fleet_ini(
            &es.url(),
            &format!("esProxyStrict=false\nesProxyMetricsPort={m}"),
        ),
        "default",
    );
    let metrics: std::net::SocketAddr = format!("127.0.0.1:{m}").parse().unwrap();
    let auth = crate::harness::basic("toronto01:secret1");
    let r = p.gzip_bulk(&auth, &gzip(bulk("toronto01", 0, 50).as_bytes()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"], false);
    let t = crate::ops::scrape(metrics);
    assert_eq!(
        crate::ops::sample(&t, "esproxy_bulk_gzip_total", &[("path", "whole")]),
        1.0
    );
    let mut trailing = gzip(bulk("toronto01", 100, 110).as_bytes());
    let n = trailing.len();
    trailing.extend_from_within(n - 8..);
    let r = p.gzip_bulk(&auth, &trailing);
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(es.ids(INDEX).len(), 50);
}

#[test]
fn corrupt_gzip_is_refused_and_nothing_lands() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let mut gz = gzip(bulk("toronto01", 0, 50).as_bytes());
    let n = gz.len();
    gz[n - 6] ^= 0xff; // CRC32 of the trailer
    let r = p.gzip_bulk(&crate::harness::basic("toronto01:secret1"), &gz);
    assert_eq!(r.status, 400);
    assert_eq!(
        es.ids(INDEX).len(),
        0,
        "a bulk whose CRC fails never completes upstream"
    );
}

#[test]
fn chunked_bulk_split_at_odd_places_is_validated_the_same() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let body = bulk("toronto01", 0, 40);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        crate::harness::basic("toronto01:secret1")
    )
    .unwrap();
    // Prime-sized pieces land mid-line, mid-key and mid-escape.
    for piece in body.as_bytes().chunks(997) {
        write!(s, "{:x}\r\n", piece.len()).unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let r = crate::harness::read_response(&mut BufReader::new(s));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(es.count(INDEX, r#"{"term":{"node":"toronto01"}}"#), 40);
}

/// Peak RSS (VmHWM) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// 16 sensors each stream a 16 MB bulk at once: a buffering proxy would need 256 MB; ours
/// holds a line and a chunk per request. Prints the peak for the issue note.
#[test]
fn sixteen_concurrent_16mb_bulks_stream_with_bounded_memory() {
    let es = Osmem::start();
    lean_sessions_template(&es);
    // osmem-server indexes one bulk at a time: the last of 16 such bulks waits minutes for the
    // 15 before it (measured: 18 s for the first, 11-16 s for each next), far beyond the
    // default esProxyUpstreamTimeout, which would rightly cut it off.
    let p = Proxy::start(
        &fleet_ini(&es.url(), "esProxyUpstreamTimeout=600"),
        "default",
    );
    let before = peak_rss_kib(p.pid());
    let mut one = String::new();
    let mut i = 0;
    while one.len() < 16 * 1024 * 1024 {
        one.push_str(&action_line(INDEX, &sid("big", i)));
        one.push('\n');
        one.push_str(&session_doc("toronto01", i));
        one.push('\n');
        i += 1;
    }
    let docs_per_bulk = i;
    let body = std::sync::Arc::new(one);
    let addr = p.addr;
    let handles: Vec<_> = (0..16)
        .map(|c| {
            let body = body.clone();
            std::thread::spawn(move || {
                // Each client gets its own ids so ES stores all of them.
                let b = body.replace("260819-big", &format!("260819-c{c:02}"));
                // As long as the proxy waits for ES (esProxyUpstreamTimeout above): the last
                // answers come minutes after the uploads when the machine is busy.
                let r = crate::harness::request_waiting(
                    addr,
                    "POST",
                    "/_bulk",
                    &[
                        ("Authorization", &crate::harness::basic("toronto01:secret1")),
                        ("Content-Type", "application/json"),
                    ],
                    b.as_bytes(),
                    Duration::from_secs(600),
                );
                assert_eq!(r.status, 200);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let peak = peak_rss_kib(p.pid());
    eprintln!(
        "16 x {} MB bulks ({} docs each): esproxy peak RSS {} MiB (before: {} MiB)",
        body.len() / (1024 * 1024),
        docs_per_bulk,
        peak / 1024,
        before / 1024
    );
    assert_eq!(
        es.count(INDEX, r#"{"term":{"node":"toronto01"}}"#),
        16 * docs_per_bulk as u64
    );
    // Far below the 256 MB a whole-body buffering proxy needs (the issue's criterion).
    assert!(peak < 96 * 1024, "peak RSS {} MiB", peak / 1024);
}
