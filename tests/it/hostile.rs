//! Hostile framing and limits (SPEC §5, §8): ambiguous framing, oversized heads and bodies, long
//! lines, gzip bombs and `Expect: 100-continue`. After every refusal the upstream holds nothing
//! the request carried past its last valid line.

use crate::fleet_ini;
use crate::harness::{action_line, basic, gzip, read_response, session_doc, sid, Osmem, Proxy};
use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const INDEX: &str = "arkime_sessions3-260819";

fn pairs(node: &str, n: usize) -> String {
    let mut b = String::new();
    for i in 0..n {
        b.push_str(&action_line(INDEX, &sid("h", i)));
        b.push('\n');
        b.push_str(&session_doc(node, i));
        b.push('\n');
    }
    b
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

#[test]
fn content_length_with_transfer_encoding_is_refused_and_nothing_lands() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let body = pairs("toronto01", 3);
    let raw = format!(
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        basic("toronto01:secret1"),
        body.len(),
        body.len()
    );
    let r = p.raw(raw.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(es.ids(INDEX).len(), 0);
}

#[test]
fn several_content_lengths_are_refused() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let body = pairs("toronto01", 1);
    let raw = format!(
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {n}\r\nContent-Length: {n}\r\n\r\n{body}",
        basic("toronto01:secret1"),
        n = body.len()
    );
    assert_eq!(p.raw(raw.as_bytes()).status, 400);
    assert_eq!(es.ids(INDEX).len(), 0);
}

#[test]
fn oversized_head_gets_431() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), "esProxyMaxHeaderSize=4K"), "default");
    let pad = "a".repeat(8 * 1024);
    let r = p.req_h(
        "GET",
        "/_cluster/health",
        &[
            ("Authorization", &basic("toronto01:secret1")),
            ("X-Pad", &pad),
        ],
        b"",
    );
    assert_eq!(r.status, 431);
}

#[test]
fn content_length_over_the_body_limit_gets_413_before_the_body_is_read() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), "esProxyMaxBody=64K"), "default");
    let mut s = connect(&p);
    // Announce 10 MB but send only the head: the answer must come without the body.
    write!(
        s,
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 10000000\r\n\r\n",
        basic("toronto01:secret1")
    )
    .unwrap();
    let r = read_response(&mut BufReader::new(s));
    assert_eq!(r.status, 413);
    assert_eq!(es.ids(INDEX).len(), 0);
}

#[test]
fn chunked_body_over_the_limit_is_cut_and_nothing_after_the_limit_lands() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), "esProxyMaxBody=64K"), "default");
    let body = pairs("toronto01", 200); // ~400 KB
    let mut s = connect(&p);
    write!(
        s,
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        basic("toronto01:secret1")
    )
    .unwrap();
    for piece in body.as_bytes().chunks(8192) {
        if write!(s, "{:x}\r\n", piece.len()).is_err()
            || s.write_all(piece).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let r = read_response(&mut BufReader::new(s));
    assert_eq!(r.status, 413);
    // Under 64 KiB of it could have been forwarded, and it never completed: ES stored nothing.
    assert_eq!(es.ids(INDEX).len(), 0);
}

#[test]
fn line_over_the_limit_is_refused_never_truncated() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), "esProxyMaxLine=1K"), "default");
    let mut body = pairs("toronto01", 2);
    body.push_str(&action_line(INDEX, &sid("long", 0)));
    body.push('\n');
    body.push_str(&format!(
        r#"{{"node":"toronto01","pad":"{}"}}"#,
        "x".repeat(4096)
    ));
    body.push('\n');
    body.push_str(&pairs("toronto01", 2));
    let r = p.req("toronto01:secret1", "POST", "/_bulk", body.as_bytes());
    assert_eq!(r.status, 413);
    assert_eq!(es.ids(INDEX).len(), 0);
}

#[test]
fn gzip_bomb_is_cut_at_the_inflated_limit() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), "esProxyMaxInflated=1M"), "default");
    // 4 MB of valid, highly repetitive pairs inflating past the 1 MB limit.
    let mut body = String::new();
    let doc = r#"{"node":"toronto01","a":1}"#;
    let mut i = 0;
    while body.len() < 4 << 20 {
        body.push_str(&action_line(INDEX, &sid("b", i)));
        body.push('\n');
        body.push_str(doc);
        body.push('\n');
        i += 1;
    }
    let gz = gzip(body.as_bytes());
    assert!(gz.len() < 1 << 20, "compressed {} bytes", gz.len());
    let r = p.req_h(
        "POST",
        "/_bulk",
        &[
            ("Authorization", &basic("toronto01:secret1")),
            ("Content-Encoding", "gzip"),
        ],
        &gz,
    );
    assert_eq!(r.status, 413);
    assert_eq!(es.ids(INDEX).len(), 0);
}

#[test]
fn unsupported_content_encoding_is_refused() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let r = p.req_h(
        "POST",
        "/_bulk",
        &[
            ("Authorization", &basic("toronto01:secret1")),
            ("Content-Encoding", "br"),
        ],
        pairs("toronto01", 1).as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(es.ids(INDEX).len(), 0);
}

fn expect_continue(p: &Proxy, path: &str, body: &[u8]) -> (Option<u16>, TcpStream) {
    let mut s = connect(p);
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        basic("toronto01:secret1"),
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 12];
    s.read_exact(&mut first).unwrap();
    let status = std::str::from_utf8(&first[9..12]).unwrap().parse().ok();
    (status, s)
}

#[test]
fn expect_continue_is_answered_once_admitted_and_the_bulk_lands() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let body = pairs("toronto01", 5);
    let (status, mut s) = expect_continue(&p, "/_bulk", body.as_bytes());
    assert_eq!(status, Some(100));
    // Rest of the 100 response head, then the body.
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
    }
    s.write_all(body.as_bytes()).unwrap();
    let resp = read_response(&mut r);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(es.ids(INDEX).len(), 5);
}

#[test]
fn expect_continue_on_a_refused_route_gets_the_refusal_not_100() {
    let es = Osmem::start();
    let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
    let (status, _s) = expect_continue(&p, "/arkime_users/_doc/admin", b"{}");
    assert_eq!(status, Some(400));
}
