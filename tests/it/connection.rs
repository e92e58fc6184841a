//! Connection limits (issue #13): deadlines to the first byte, for the whole head, between
//! keep-alive requests and between body bytes; caps on unauthenticated connections per client
//! and overall (the oldest waiting one evicted so a sensor always gets in). Short deadlines here;
//! the load test with the defaults is `siege.rs`.

use crate::harness::{
    action_line, basic, free_port, read_response, session_doc, sid, Osmem, Proxy,
};
use crate::ops::{sample, scrape};
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const INDEX: &str = "arkime_sessions3-260819";

/// A fleet config with a metrics listener and `extra` settings; returns it and the metrics
/// address.
fn ini(es: &Osmem, extra: &str) -> (String, SocketAddr) {
    let m = free_port();
    (
        format!(
            "[default]\nelasticsearch={}\nesProxyPort={{PORT}}\nesProxyHost=127.0.0.1\n\
             esProxyMetricsPort={m}\n{extra}\n\
             [esproxy-sensors]\ntoronto01=pass:secret1;ip:127.0.0.1\n",
            es.url()
        ),
        format!("127.0.0.1:{m}").parse().unwrap(),
    )
}

fn connect(p: &Proxy) -> TcpStream {
    let s = TcpStream::connect(p.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until esproxy closes the connection; how long that took from `since`, and the bytes.
fn until_closed(s: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (since.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn metric(addr: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(&scrape(addr), name, labels)
}

#[test]
fn silent_connection_is_closed_at_the_first_byte_deadline() {
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyFirstByteTimeout=1");
    let p = Proxy::start(&text, "default");
    let t = Instant::now();
    let mut s = connect(&p);
    let (took, got) = until_closed(&mut s, t);
    assert!(got.is_empty(), "no answer to a silent connection");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?}"
    );
    let n = metric(
        m,
        "esproxy_connection_deadlines_total",
        &[("deadline", "first_byte")],
    );
    assert!(n >= 1.0, "first_byte deadline counted: {n}");
}

#[test]
fn slow_head_is_closed_at_the_head_deadline_though_bytes_keep_coming() {
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyFirstByteTimeout=1\nesProxyHeadTimeout=2");
    let p = Proxy::start(&text, "default");
    let t = Instant::now();
    let mut s = connect(&p);
    s.write_all(b"GET /_cluster/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    trickle_until_closed(&mut s, t, m);
}

#[test]
fn slow_head_on_a_kept_alive_authenticated_connection_is_closed_at_the_head_deadline() {
    // After a request authenticated, Pingora reads the next heads itself (src/connection/head.rs
    // `HeadProgress`): the head deadline still runs from the head's first byte.
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyHeadTimeout=2\nesProxyKeepAliveTimeout=30");
    let p = Proxy::start(&text, "default");
    let mut s = connect(&p);
    for _ in 0..2 {
        assert_eq!(keepalive_get(&mut s), 200);
    }
    // Idle well under the keep-alive timeout, then a head that never completes.
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    s.write_all(b"GET /_cluster/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    trickle_until_closed(&mut s, t, m);
}

/// Sends one header line every 200 ms after an unfinished head until esproxy closes the
/// connection, which must be at the 2 s head deadline from `t`, counted.
fn trickle_until_closed(s: &mut TcpStream, t: Instant, m: SocketAddr) {
    // One header line every 200 ms: each read makes progress, the whole head never completes.
    let mut closed_at = None;
    for i in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes())
            .is_err()
        {
            closed_at = Some(t.elapsed());
            break;
        }
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let eof = matches!(s.read(&mut b), Ok(0));
        s.set_nonblocking(false).unwrap();
        if eof {
            closed_at = Some(t.elapsed());
            break;
        }
    }
    let took = closed_at.expect("closed while still sending");
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        metric(
            m,
            "esproxy_connection_deadlines_total",
            &[("deadline", "head")]
        ) >= 1.0
    );
}

fn keepalive_get(s: &mut TcpStream) -> u16 {
    write!(
        s,
        "GET /_cluster/health HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        basic("toronto01:secret1")
    )
    .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    read_response(&mut r).status
}

#[test]
fn keepalive_requests_are_served_and_an_idle_connection_closed_after_the_timeout() {
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyKeepAliveTimeout=2");
    let p = Proxy::start(&text, "default");
    let mut s = connect(&p);
    // 1 s apart, 4 s in all: each request's idle deadline counts from the one before it, not
    // from an earlier one (one timer per connection is moved lazily, src/connection/head.rs).
    for _ in 0..5 {
        assert_eq!(keepalive_get(&mut s), 200);
        std::thread::sleep(Duration::from_millis(1000));
    }
    let t = Instant::now();
    let (took, got) = until_closed(&mut s, t);
    assert!(got.is_empty());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert!(
        metric(
            m,
            "esproxy_connection_deadlines_total",
            &[("deadline", "keepalive_idle")]
        ) >= 1.0
    );
}

#[test]
fn idle_body_is_ended_with_408_and_the_cut_bulk_never_lands() {
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyBodyIdleTimeout=2");
    let p = Proxy::start(&text, "default");
    let mut s = connect(&p);
    write!(
        s,
        "POST /_bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
        basic("toronto01:secret1")
    )
    .unwrap();
    for i in 0..3 {
        let pair = format!(
            "{}\n{}\n",
            action_line(INDEX, &sid("idle", i)),
            session_doc("toronto01", i)
        );
        write!(s, "{:x}\r\n{pair}\r\n", pair.len()).unwrap();
    }
    let t = Instant::now();
    let r = read_response(&mut BufReader::new(s.try_clone().unwrap()));
    let took = t.elapsed();
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // The upstream request was cut without its end: nothing of it is stored.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(es.ids(INDEX).len(), 0);
    assert!(
        metric(
            m,
            "esproxy_connection_deadlines_total",
            &[("deadline", "body_idle")]
        ) >= 1.0
    );
}

#[test]
fn per_client_cap_refuses_more_unauthenticated_connections_from_one_address() {
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyMaxUnauthenticatedPerClient=2");
    let p = Proxy::start(&text, "default");
    // Let the harness's readiness probe connection be gone.
    std::thread::sleep(Duration::from_millis(300));
    let _a = connect(&p);
    let _b = connect(&p);
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let mut c = connect(&p);
    let (took, _) = until_closed(&mut c, t);
    assert!(took < Duration::from_secs(5), "refused at once: {took:?}");
    assert!(
        metric(
            m,
            "esproxy_connections_refused_total",
            &[("cap", "per_client")]
        ) >= 1.0
    );
    assert_eq!(
        metric(m, "esproxy_connections_unauthenticated", &[]),
        2.0,
        "the two held connections"
    );
}

#[test]
fn exempt_address_is_not_capped_per_client() {
    let es = Osmem::start();
    let (text, _) = ini(
        &es,
        "esProxyMaxUnauthenticatedPerClient=1\nesProxyConnLimitExempt=127.0.0.0/8",
    );
    let p = Proxy::start(&text, "default");
    let held: Vec<_> = (0..4).map(|_| connect(&p)).collect();
    std::thread::sleep(Duration::from_millis(300));
    // Still open: a read would block (times out) rather than see EOF.
    for mut s in held {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut b = [0u8; 1];
        assert!(s.read(&mut b).is_err(), "held connection is still open");
    }
}

#[test]
fn full_unauthenticated_pool_evicts_the_oldest_and_a_sensor_still_gets_through() {
    let es = Osmem::start();
    let (text, m) = ini(&es, "esProxyMaxUnauthenticated=3");
    let p = Proxy::start(&text, "default");
    std::thread::sleep(Duration::from_millis(300));
    let mut oldest = connect(&p);
    std::thread::sleep(Duration::from_millis(50));
    let _others: Vec<_> = (0..2).map(|_| connect(&p)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let r = p.req("toronto01:secret1", "GET", "/_cluster/health", b"");
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let (took, _) = until_closed(&mut oldest, t);
    assert!(took < Duration::from_secs(5), "oldest evicted: {took:?}");
    assert!(metric(m, "esproxy_connections_evicted_total", &[]) >= 1.0);
}

#[test]
fn proxy_protocol_source_is_the_client_the_per_client_cap_counts() {
    let es = Osmem::start();
    let (text, m) = ini(
        &es,
        "esProxyProxyProtocol=true\nesProxyMaxUnauthenticatedPerClient=1",
    );
    let p = Proxy::start(&text, "default");
    let relayed = |src: &str| {
        let mut s = connect(&p);
        write!(s, "PROXY TCP4 {src} 192.0.2.1 40000 7200\r\n").unwrap();
        s
    };
    // Two clients behind one balancer (all from 127.0.0.1): each has its own budget.
    let _a = relayed("198.51.100.1");
    let _b = relayed("198.51.100.2");
    std::thread::sleep(Duration::from_millis(300));
    let mut again = relayed("198.51.100.1");
    let t = Instant::now();
    let (took, _) = until_closed(&mut again, t);
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(
        metric(
            m,
            "esproxy_connections_refused_total",
            &[("cap", "per_client")]
        ),
        1.0
    );
}

/// TLS: the handshake is under the same deadlines as a plain head (Pingora alone allows it
/// 60 s). A client that sends its ClientHello, reads the server's flight and never finishes is
/// closed at the head deadline; a silent one at the first-byte deadline; a prompt one is served.
#[test]
fn tls_handshake_stalled_midway_is_closed_at_the_head_deadline() {
    use crate::tls::{client_config, ini as tls_ini, pki, tls_get};
    let es = Osmem::start();
    let pki = pki();
    let m = free_port();
    let extra = format!("esProxyMetricsPort={m}\nesProxyFirstByteTimeout=1\nesProxyHeadTimeout=3");
    let p = Proxy::start(&tls_ini(&es.url(), &pki, &extra), "default");
    let m: SocketAddr = format!("127.0.0.1:{m}").parse().unwrap();

    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(client_config(&pki, None), name).unwrap();
    let t = Instant::now();
    let mut s = connect(&p);
    client.write_tls(&mut s).unwrap(); // the ClientHello
    let (took, got) = until_closed(&mut s, t);
    assert!(!got.is_empty(), "the server's handshake flight came back");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(8),
        "stalled handshake closed at the 3 s head deadline: {took:?}"
    );
    let n = metric(
        m,
        "esproxy_connection_deadlines_total",
        &[("deadline", "tls_handshake")],
    );
    assert_eq!(n, 1.0, "tls_handshake deadline counted");

    let t = Instant::now();
    let (took, got) = until_closed(&mut connect(&p), t);
    assert!(got.is_empty());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "silent TLS connection closed at the 1 s first-byte deadline: {took:?}"
    );
    let n = metric(
        m,
        "esproxy_connection_deadlines_total",
        &[("deadline", "first_byte")],
    );
    assert_eq!(n, 1.0, "first_byte deadline counted");

    let r = tls_get(
        &p,
        client_config(&pki, None),
        Some("toronto01:secret1"),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200, "a prompt TLS client is served");
}
