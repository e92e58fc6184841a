//! Who the client is, end to end (SPEC §3, issue #4): direct connections, one and two proxies
//! with X-Forwarded-For, spoofed and garbage entries, and PROXY protocol v1/v2 on raw sockets.
//! The sensor `lbonly` may only come from 192.0.2.10, an address the test can present only
//! through a trusted balancer (the test's own 127.0.0.1 peer, or a PROXY header).

use crate::harness::{basic, read_response, Osmem, Proxy, Recorder, Response};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv6Addr, TcpStream};
use std::time::Duration;

/// `[xff]` trusting the test (127.0.0.1) as the balancer and 198.51.100.0/24 as further hops.
fn ini(es: &str, extra: &str, xff_internal: &str) -> String {
    format!(
        "[default]\nelasticsearch={es}\nesProxyPort={{PORT}}\nesProxyHost=127.0.0.1\n{extra}\n\
         [xff]\nenabled=true\ninternalProxies={xff_internal}\ntrustedProxies=198.51.100.0/24\n\
         [esproxy-sensors]\nlbonly=pass:p1;ip:192.0.2.10\nlocal=pass:p2;ip:127.0.0.1\n\
         v6only=pass:p3;ip:2001:db8::/32\n"
    )
}

fn get(p: &Proxy, creds: &str, xff: &[&str]) -> u16 {
    let auth = basic(creds);
    let mut h = vec![("Authorization", auth.as_str())];
    for x in xff {
        h.push(("X-Forwarded-For", x));
    }
    p.req_h("GET", "/", &h, b"").status
}

#[test]
fn direct_connection_is_the_socket_peer() {
    let es = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), "", "127.0.0.1"), "default");
    assert_eq!(get(&p, "local:p2", &[]), 200);
    assert_eq!(
        get(&p, "lbonly:p1", &[]),
        401,
        "127.0.0.1 is not 192.0.2.10"
    );
}

#[test]
fn xff_through_one_and_two_trusted_proxies_names_the_sensor() {
    let es = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), "", "127.0.0.1"), "default");
    // balancer (peer) ← sensor
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10"]), 200);
    assert_eq!(get(&p, "local:p2", &["192.0.2.10"]), 401);
    // balancer ← trusted hop ← sensor, on one line and split over two lines
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10, 198.51.100.7"]), 200);
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10", "198.51.100.7"]), 200);
    // IPv6 with brackets and port, port on v4, mapped v4
    assert_eq!(get(&p, "v6only:p3", &["[2001:db8::7]:4711"]), 200);
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10:5555"]), 200);
    assert_eq!(get(&p, "lbonly:p1", &["::ffff:192.0.2.10"]), 200);
    // all entries are proxies → the leftmost
    assert_eq!(get(&p, "local:p2", &["127.0.0.1, 198.51.100.7"]), 200);
}

#[test]
fn spoofed_leftmost_entries_do_not_get_in() {
    let es = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), "", "127.0.0.1"), "default");
    // The sensor at 203.0.113.5 claims to be 192.0.2.10; our balancer appended the truth.
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10, 203.0.113.5"]), 401);
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10", "203.0.113.5"]), 401);
    // An untrusted hop in the middle stops the walk there.
    assert_eq!(
        get(&p, "lbonly:p1", &["192.0.2.10, 203.0.113.5, 198.51.100.7"]),
        401
    );
}

#[test]
fn garbage_entries_refused_only_where_the_walk_reaches_them() {
    let es = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), "", "127.0.0.1"), "default");
    // Left of the client: never parsed, harmless.
    assert_eq!(get(&p, "lbonly:p1", &["garbage, unknown, 192.0.2.10"]), 200);
    // Reached by the walk: 400.
    for bad in [
        "192.0.2.10, garbage",
        "sensor.example",
        "192.0.2.10, ",
        "[2001:db8::1",
    ] {
        assert_eq!(get(&p, "lbonly:p1", &[bad]), 400, "{bad}");
    }
    let huge = vec!["198.51.100.7"; 40].join(",");
    assert_eq!(get(&p, "lbonly:p1", &[&huge]), 400, "too many entries");
}

#[test]
fn xff_from_a_peer_that_is_not_an_internal_proxy_is_ignored() {
    let es = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), "", "192.0.2.200"), "default");
    assert_eq!(get(&p, "lbonly:p1", &["192.0.2.10"]), 401);
    assert_eq!(
        get(&p, "local:p2", &["192.0.2.10"]),
        200,
        "peer is the client"
    );
    assert_eq!(
        get(&p, "local:p2", &["garbage"]),
        200,
        "header not even read"
    );
}

#[test]
fn upstream_gets_the_resolved_client_as_its_only_forwarded_for() {
    let rec = Recorder::start();
    let p = Proxy::start(
        &ini(&format!("http://{}", rec.addr), "", "127.0.0.1"),
        "default",
    );
    let auth = basic("lbonly:p1");
    let r = p.req_h(
        "GET",
        "/_cluster/health",
        &[
            ("Authorization", &auth),
            ("X-Forwarded-For", "garbage, 192.0.2.10, 198.51.100.7"),
        ],
        b"",
    );
    assert_eq!(r.status, 200);
    let seen = rec.requests();
    let req = seen
        .iter()
        .find(|r| r.head[0].starts_with("GET /_cluster/health"))
        .expect("request reached upstream");
    let xff: Vec<String> = req
        .head
        .iter()
        .map(|l| l.to_ascii_lowercase())
        .filter(|l| l.starts_with("x-forwarded-for:"))
        .collect();
    assert_eq!(xff, vec!["x-forwarded-for: 192.0.2.10"], "{:?}", req.head);
}

// ---- PROXY protocol -------------------------------------------------------------------------

const V2_SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";

fn v2_header(cmd: u8, fam: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = V2_SIG.to_vec();
    b.push(0x20 | cmd);
    b.push(fam);
    b.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// v2 PROXY TCP4 from `src` (port 40000) to 127.0.0.1:7200.
pub fn v2_tcp4(src: [u8; 4]) -> Vec<u8> {
    let mut p = src.to_vec();
    p.extend_from_slice(&[127, 0, 0, 1]);
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&7200u16.to_be_bytes());
    v2_header(1, 0x11, &p)
}

fn v2_tcp6(src: Ipv6Addr) -> Vec<u8> {
    let mut p = src.octets().to_vec();
    p.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    p.extend_from_slice(&40000u16.to_be_bytes());
    p.extend_from_slice(&7200u16.to_be_bytes());
    v2_header(1, 0x21, &p)
}

fn get_req(creds: &str, close: bool) -> String {
    format!(
        "GET / HTTP/1.1\r\nHost: esproxy\r\nAuthorization: {}\r\n{}\r\n",
        basic(creds),
        if close { "Connection: close\r\n" } else { "" }
    )
}

/// Sends `header` then one request on a fresh connection; `None` when the proxy closed the
/// connection without an answer.
fn with_header(p: &Proxy, header: &[u8], creds: &str) -> Option<u16> {
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut data = header.to_vec();
    data.extend_from_slice(get_req(creds, true).as_bytes());
    // The proxy may close before taking everything; that is one of the expected outcomes.
    let _ = s.write_all(&data);
    status_or_close(s)
}

fn status_or_close(s: TcpStream) -> Option<u16> {
    let mut r = BufReader::new(s);
    let mut first = String::new();
    match r.read_line(&mut first) {
        Ok(0) | Err(_) => None,
        Ok(_) => first.split_whitespace().nth(1).and_then(|c| c.parse().ok()),
    }
}

fn pp_ini(es: &str) -> String {
    ini(es, "esProxyProxyProtocol=true", "127.0.0.1")
}

#[test]
fn proxy_v1_and_v2_give_the_balancers_client_address() {
    let es = Osmem::start();
    let p = Proxy::start(&pp_ini(&es.url()), "default");
    let v1 = b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 7200\r\n";
    assert_eq!(with_header(&p, v1, "lbonly:p1"), Some(200));
    assert_eq!(with_header(&p, v1, "local:p2"), Some(401));
    let v1_other = b"PROXY TCP4 203.0.113.5 127.0.0.1 40000 7200\r\n";
    assert_eq!(with_header(&p, v1_other, "lbonly:p1"), Some(401));
    let v1_v6 = b"PROXY TCP6 2001:db8::10 ::1 40000 7200\r\n";
    assert_eq!(with_header(&p, v1_v6, "v6only:p3"), Some(200));

    assert_eq!(
        with_header(&p, &v2_tcp4([192, 0, 2, 10]), "lbonly:p1"),
        Some(200)
    );
    assert_eq!(
        with_header(&p, &v2_tcp4([203, 0, 113, 5]), "lbonly:p1"),
        Some(401)
    );
    let v6: Ipv6Addr = "2001:db8::10".parse().unwrap();
    assert_eq!(with_header(&p, &v2_tcp6(v6), "v6only:p3"), Some(200));
}

#[test]
fn proxy_local_and_unknown_keep_the_socket_address() {
    let es = Osmem::start();
    let p = Proxy::start(&pp_ini(&es.url()), "default");
    let local = v2_header(0, 0x00, &[]);
    assert_eq!(with_header(&p, &local, "local:p2"), Some(200));
    assert_eq!(with_header(&p, &local, "lbonly:p1"), Some(401));
    assert_eq!(with_header(&p, b"PROXY UNKNOWN\r\n", "local:p2"), Some(200));
}

#[test]
fn proxy_header_then_xff_from_the_balancers_client_chain() {
    let es = Osmem::start();
    // The PROXY source is an internal proxy in turn (e.g. an L7 hop behind the L4 balancer).
    let p = Proxy::start(
        &ini(&es.url(), "esProxyProxyProtocol=true", "192.0.2.99"),
        "default",
    );
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&v2_tcp4([192, 0, 2, 99])).unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: esproxy\r\nAuthorization: {}\r\nX-Forwarded-For: 192.0.2.10\r\nConnection: close\r\n\r\n",
        basic("lbonly:p1")
    );
    s.write_all(req.as_bytes()).unwrap();
    assert_eq!(status_or_close(s), Some(200));
}

#[test]
fn proxy_header_is_read_once_and_keep_alive_requests_follow() {
    let es = Osmem::start();
    let p = Proxy::start(&pp_ini(&es.url()), "default");
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(&v2_tcp4([192, 0, 2, 10])).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    for _ in 0..3 {
        s.write_all(get_req("lbonly:p1", false).as_bytes()).unwrap();
        let resp: Response = read_response(&mut r);
        assert_eq!(resp.status, 200);
    }
}

#[test]
fn without_a_valid_header_the_connection_is_closed_unanswered() {
    let es = Osmem::start();
    let p = Proxy::start(&pp_ini(&es.url()), "default");
    let mut bad_v2 = v2_tcp4([192, 0, 2, 10]);
    bad_v2[12] = 0x31; // version 3
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no header", Vec::new()),
        ("garbage", b"HELLO THERE\r\n".to_vec()),
        (
            "v1 bad address",
            b"PROXY TCP4 192.0.2.999 127.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "v1 LF only",
            b"PROXY TCP4 192.0.2.10 127.0.0.1 1 2\n".to_vec(),
        ),
        ("v2 bad version", bad_v2),
        (
            "v2 UDP",
            v2_header(1, 0x12, &[192, 0, 2, 10, 127, 0, 0, 1, 0, 1, 0, 2]),
        ),
        ("v2 short block", v2_header(1, 0x11, &[192, 0, 2, 10])),
    ];
    for (what, header) in cases {
        assert_eq!(with_header(&p, &header, "local:p2"), None, "{what}");
    }
    // Truncated: half a header, then the client gives up.
    for half in [
        &v2_tcp4([192, 0, 2, 10])[..20],
        &b"PROXY TCP4 192.0.2.10"[..],
    ] {
        let mut s = TcpStream::connect(p.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(half).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        assert!(rest.is_empty(), "no answer to a truncated header");
    }
    // The listener is still fine afterwards.
    let v1 = b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 7200\r\n";
    assert_eq!(with_header(&p, v1, "lbonly:p1"), Some(200));
}

#[test]
fn when_off_a_proxy_header_is_just_a_bad_request() {
    let es = Osmem::start();
    let p = Proxy::start(&ini(&es.url(), "", "127.0.0.1"), "default");
    let v1 = b"PROXY TCP4 192.0.2.10 127.0.0.1 40000 7200\r\n";
    assert_eq!(with_header(&p, v1, "lbonly:p1"), Some(400));
    let got = with_header(&p, &v2_tcp4([192, 0, 2, 10]), "lbonly:p1");
    assert!(got.is_none() || got == Some(400), "{got:?}");
}
