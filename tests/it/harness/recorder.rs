//! A recording HTTP/1.1 upstream for tests that check exactly what esproxy sends upstream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

/// A recording HTTP/1.1 upstream: answers every request `200 {}` and keeps each request's head
/// and de-chunked body, with whether the body was complete.
pub struct Recorder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Requests seen, in arrival order of their first byte.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
}

/// One request a [`Recorder`] saw.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Request line and headers (names lower-cased).
    pub head: Vec<String>,
    /// The body bytes (de-chunked).
    pub body: Vec<u8>,
    /// The body ended properly (terminating chunk or full Content-Length).
    pub complete: bool,
}

impl Recorded {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = format!("{}:", name.to_ascii_lowercase());
        self.head
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with(&name))
            .map(|h| h[name.len()..].trim())
    }
}

impl Recorder {
    /// Starts one on a free port.
    pub fn start() -> Recorder {
        Recorder::start_with(&[], false)
    }

    /// Starts one that gives `answers` (status, body) to its first requests (health probes
    /// `GET /` excepted), then `200` with an
    /// empty bulk answer. With `drop_reused`, the second request on any connection is read
    /// whole and the connection closed without an answer (ES closing an idle keep-alive
    /// connection just as the proxy reused it).
    pub fn start_with(answers: &[(u16, &str)], drop_reused: bool) -> Recorder {
        use std::sync::{Arc, Mutex};
        let answers: Arc<Mutex<std::collections::VecDeque<(u16, String)>>> = Arc::new(Mutex::new(
            answers.iter().map(|(s, b)| (*s, b.to_string())).collect(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let seen = seen2.clone();
                let answers = answers.clone();
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().unwrap();
                    let mut r = BufReader::new(conn);
                    let mut on_conn = 0;
                    loop {
                        on_conn += 1;
                        // The slot is taken when the request's first byte is here, not while
                        // waiting for it: an idle pooled connection must not hold a place in
                        // the order ahead of a request that arrives first on another one.
                        if !matches!(r.fill_buf(), Ok(b) if !b.is_empty()) {
                            return;
                        }
                        let slot = {
                            let mut s = seen.lock().unwrap();
                            s.push(Recorded::default());
                            s.len() - 1
                        };
                        if !record_one(&mut r, &seen, slot) {
                            return;
                        }
                        if drop_reused && on_conn == 2 {
                            let _ = w.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                        // Health probes (`GET /`) always get a plain 200.
                        let probe = seen.lock().unwrap()[slot]
                            .head
                            .first()
                            .is_some_and(|l| l.starts_with("GET / "));
                        let scripted = if probe {
                            None
                        } else {
                            answers.lock().unwrap().pop_front()
                        };
                        let (status, body) = scripted.unwrap_or((
                            200,
                            r#"{"took":1,"errors":false,"items":[]}"#.to_string(),
                        ));
                        let _ = w.write_all(
                            format!(
                                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                    }
                });
            }
        });
        Recorder { addr, seen }
    }

    /// Requests whose head arrived.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.head.is_empty())
            .cloned()
            .collect()
    }
}

/// Reads one request into `seen[slot]`; false when the connection ended.
fn record_one(
    r: &mut BufReader<TcpStream>,
    seen: &std::sync::Mutex<Vec<Recorded>>,
    slot: usize,
) -> bool {
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        head.push(line);
    }
    seen.lock().unwrap()[slot].head = head.clone();
    let rec = Recorded {
        head,
        ..Default::default()
    };
    let chunked = rec
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"));
    let len: usize = rec
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if chunked {
        loop {
            let mut size = String::new();
            if r.read_line(&mut size).unwrap_or(0) == 0 {
                return false;
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return false;
            };
            let mut chunk = vec![0; n + 2];
            if r.read_exact(&mut chunk).is_err() {
                return false;
            }
            if n == 0 {
                break;
            }
            seen.lock().unwrap()[slot]
                .body
                .extend_from_slice(&chunk[..n]);
        }
    } else {
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return false;
        }
        seen.lock().unwrap()[slot].body = body;
    }
    seen.lock().unwrap()[slot].complete = true;
    true
}
