//! Test harness: starts the real `esproxy` binary and real `osmem-server` upstreams on free
//! loopback ports, and speaks raw HTTP/1.1 to them (so framing tricks can be sent as-is).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod pki;
mod recorder;

pub use pki::{test_pki, tls_terminator};
pub use recorder::{Recorded, Recorder};

/// Path of the osmem-server binary: `OSMEM_SERVER_BIN`, else the one the PyPI package ships.
pub fn osmem_bin() -> String {
    if let Ok(p) = std::env::var("OSMEM_SERVER_BIN") {
        return p;
    }
    let out = Command::new("python3")
        .args([
            "-c",
            "import osmem_server; print(osmem_server.resolve_binary())",
        ])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "osmem-server is not installed (pip install osmem-server==0.1.6): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A running osmem-server (killed on drop).
pub struct Osmem {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: SocketAddr,
}

impl Osmem {
    /// Starts one on a port it picks itself (it reports the URL on its first stdout line).
    pub fn start() -> Osmem {
        let mut child = Command::new(osmem_bin())
            .args(["-addr", "127.0.0.1:0", "-no-stdin-watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start osmem-server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("osmem banner");
        let url = v["url"].as_str().unwrap();
        let addr = url.trim_start_matches("http://").parse().unwrap();
        Osmem { child, addr }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A request straight to the upstream (no proxy).
    pub fn req(&self, method: &str, path: &str, body: &[u8]) -> Response {
        request(
            self.addr,
            method,
            path,
            &[("Content-Type", "application/json")],
            body,
        )
    }

    /// Refreshes and counts documents matching `query` (a JSON query object) in `index`.
    pub fn count(&self, index: &str, query: &str) -> u64 {
        self.req("POST", "/_refresh", b"");
        let r = self.req(
            "POST",
            &format!("/{index}/_count"),
            format!("{{\"query\":{query}}}").as_bytes(),
        );
        if r.status == 404 {
            return 0;
        }
        assert_eq!(r.status, 200, "count {index}: {}", r.text());
        r.json()["count"].as_u64().unwrap()
    }

    /// Ids of every document in `index`, paged by `_id` with `search_after`: a single search
    /// stops at 10,000 hits (ES's result window), and a fast load run stores more than that.
    pub fn ids(&self, index: &str) -> Vec<String> {
        const PAGE: usize = 5000;
        self.req("POST", "/_refresh", b"");
        let mut ids: Vec<String> = Vec::new();
        loop {
            let after = match ids.last() {
                Some(last) => format!(",\"search_after\":[{}]", serde_json::json!(last)),
                None => String::new(),
            };
            let body = format!(
                "{{\"size\":{PAGE},\"_source\":false,\"sort\":[{{\"_id\":\"asc\"}}]{after}}}"
            );
            let r = self.req("POST", &format!("/{index}/_search"), body.as_bytes());
            if r.status == 404 {
                return vec![];
            }
            assert_eq!(r.status, 200, "ids of {index}: {}", r.text());
            let page: Vec<String> = r.json()["hits"]["hits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| h["_id"].as_str().unwrap().to_string())
                .collect();
            let done = page.len() < PAGE;
            ids.extend(page);
            if done {
                break;
            }
        }
        ids.sort();
        ids
    }
}

impl Drop for Osmem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A free loopback port (bound then released; the proxy binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes `text` to a fresh file under the temp dir and returns its path.
pub fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "esproxy-it-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A running esproxy (killed on drop).
pub struct Proxy {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: SocketAddr,
}

impl Proxy {
    /// Starts esproxy with `ini`, in which `{PORT}` is replaced by a free port, and `-n node`.
    pub fn start(ini: &str, node: &str) -> Proxy {
        assert!(
            ini.contains("{PORT}"),
            "test config must set esProxyPort={{PORT}}"
        );
        let port = free_port();
        let text = ini.replace("{PORT}", &port.to_string());
        let config = temp_file("esproxy.ini", &text);
        Self::start_with(config, node, port)
    }

    /// Starts esproxy with an existing config file listening on `port`.
    pub fn start_with(config: PathBuf, node: &str, port: u16) -> Proxy {
        Self::start_with_args(config, node, port, &[])
    }

    /// Like [`Proxy::start_with`], with extra command-line arguments (e.g. `-u`).
    pub fn start_with_args(config: PathBuf, node: &str, port: u16, extra: &[&str]) -> Proxy {
        let stderr = if std::env::var("ESPROXY_TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        Self::spawn(config, node, port, extra, stderr)
    }

    /// Starts esproxy with `ini` (`{PORT}` replaced) writing its log to the returned file.
    pub fn start_logged(ini: &str, node: &str) -> (Proxy, PathBuf) {
        let port = free_port();
        let config = temp_file("esproxy.ini", &ini.replace("{PORT}", &port.to_string()));
        let log = config.with_file_name("esproxy.log");
        let file = std::fs::File::create(&log).unwrap();
        (Self::spawn(config, node, port, &[], Stdio::from(file)), log)
    }

    /// Starts esproxy with `ini` (`{PORT}` replaced) in a private mount namespace whose
    /// `/etc/hosts` is `names` ([`HostsFile`]); its log goes to the returned file.
    pub fn start_resolving(ini: &str, node: &str, names: &HostsFile) -> (Proxy, PathBuf) {
        let port = free_port();
        let config = temp_file("esproxy.ini", &ini.replace("{PORT}", &port.to_string()));
        let log = config.with_file_name("esproxy.log");
        let mut cmd = names.command(&config, &["-n", node]);
        cmd.env("RUST_LOG", "info,pingora_core=warn,pingora_proxy=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        let child = cmd.spawn().expect("start esproxy under unshare");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut p = Proxy { child, addr };
        p.wait_ready();
        (p, log)
    }

    fn spawn(config: PathBuf, node: &str, port: u16, extra: &[&str], stderr: Stdio) -> Proxy {
        let child = Command::new(env!("CARGO_BIN_EXE_esproxy"))
            .arg("-c")
            .arg(&config)
            .args(["-n", node])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start esproxy");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut p = Proxy { child, addr };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("esproxy exited early: {status}");
            }
            if TcpStream::connect(self.addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("esproxy did not start listening on {}", self.addr);
    }

    /// A request with Basic credentials `user:pass`.
    pub fn req(&self, user_pass: &str, method: &str, path: &str, body: &[u8]) -> Response {
        let auth = basic(user_pass);
        request(
            self.addr,
            method,
            path,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            body,
        )
    }

    /// `POST /_bulk` of a gzip body (`gz`, already compressed) with `authorization` as the
    /// whole `Authorization` value, as capture sends it.
    pub fn gzip_bulk(&self, authorization: &str, gz: &[u8]) -> Response {
        post_bulk(self.addr, Some(authorization), gz, true)
    }

    /// A request with arbitrary extra headers.
    pub fn req_h(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(self.addr, method, path, headers, body)
    }

    /// Sends `raw` bytes as they are and reads one response.
    pub fn raw(&self, raw: &[u8]) -> Response {
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(raw).unwrap();
        read_response(&mut BufReader::new(s))
    }

    /// The process id (for signals and memory readings).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit; its status, or None if still running.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `Basic base64(user:pass)`
pub fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// One HTTP response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// Body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request with `Content-Length` framing on a new connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_waiting(addr, method, path, headers, body, Duration::from_secs(60))
}

/// [`request`], waiting up to `wait` for each read of the answer.
pub fn request_waiting(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    wait: Duration,
) -> Response {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    // The server may answer and close before reading a refused body; that is fine.
    let _ = s.write_all(body);
    read_response(&mut BufReader::new(s))
}

/// POSTs a `_bulk` as capture does: JSON, with the sensor's `Authorization` value (none when
/// writing straight to a node), and `Content-Encoding: gzip` when `gzip`.
pub fn post_bulk(
    addr: SocketAddr,
    authorization: Option<&str>,
    body: &[u8],
    gzip: bool,
) -> Response {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = authorization {
        headers.insert(0, ("Authorization", a));
    }
    if gzip {
        headers.push(("Content-Encoding", "gzip"));
    }
    request(addr, "POST", "/_bulk", &headers, body)
}

/// Reads one response (Content-Length, chunked, or until close).
pub fn read_response<R: Read>(r: &mut BufReader<R>) -> Response {
    let mut line = String::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("status line");
        assert!(!line.is_empty(), "connection closed before a response");
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap();
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if (100..200).contains(&status) {
            continue;
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let mut body = Vec::new();
        if let Some(n) = get("content-length") {
            let n: usize = n.parse().unwrap();
            body.resize(n, 0);
            r.read_exact(&mut body).unwrap();
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            loop {
                let mut size = String::new();
                r.read_line(&mut size).unwrap();
                let n = usize::from_str_radix(size.trim().split(';').next().unwrap(), 16).unwrap();
                let mut chunk = vec![0; n + 2];
                r.read_exact(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        } else {
            let _ = r.read_to_end(&mut body);
        }
        return Response {
            status,
            headers,
            body,
        };
    }
}

/// A session id of capture's random form in the daily index `260819`: `260819-` and 24
/// base64url characters, `tag` then `n` zero-padded (`tag` at most 23 characters).
pub fn sid(tag: &str, n: usize) -> String {
    let width = 24 - tag.len();
    format!("260819-{tag}{n:0width$}")
}

/// A capture-shaped session document for `node` (about 2 KB, the shape of arkime-traffic.md §4).
pub fn session_doc(node: &str, n: usize) -> String {
    format!(
        concat!(
            r#"{{"packetRange":{{"gte":1787140352477,"lte":1787140353455}},"firstPacket":1787140352477,"#,
            r#""lastPacket":1787140353455,"length":978,"ipProtocol":6,"ethertype":2048,"#,
            r#""tcpflags":{{"syn":1,"syn-ack":1,"ack":2,"psh":0,"fin":2,"rst":0,"urg":0}},"#,
            r#""srcPayload8":"474554202f204854","dstPayload8":"485454502f312e31","@timestamp":1787140800000,"#,
            r#""source":{{"ip":"10.0.108.93","port":{port},"bytes":3439,"packets":3,"mac":["02:50:00:61:db:e8"]}},"#,
            r#""destination":{{"ip":"200.160.76.72","port":80,"bytes":74,"packets":1,"#,
            r#""as":{{"full":"AS22548 Núcleo de Inf. e Coord. do Ponto BR - NIC.BR"}}}},"#,
            r#""network":{{"packets":4,"bytes":3513,"community_id":"1:WV2W480BQrE5XBzFp0oS3uzCEK4="}},"#,
            r#""totDataBytes":3249,"segmentCnt":1,"node":"{node}","packetPos":[-42468,33456471984,2845,1530,599],"#,
            r#""fileId":[42468],"http":{{"hostCnt":1,"host":["example.com"],"uriCnt":1,"#,
            r#""uri":["example.com/wp-admin/admin-ajax.php?n={n}"],"useragent":["Mozilla/5.0 (Windows NT 10.0; Win64; x64) \"q\" \\ \u00e9"]}},"#,
            r#""protocolCnt":2,"protocol":["http","tcp"]}}"#
        ),
        node = node,
        n = n,
        port = 1024 + n % 60000
    )
}

/// The action line capture writes (exact spacing) for session `id` in `index`.
pub fn action_line(index: &str, id: &str) -> String {
    format!(r#"{{"index":{{"_index":"{index}", "_id": "{id}"}}}}"#)
}

/// What strict mode sends upstream for a bulk of capture's lines: each session `index` under a
/// random-form id (`<S>-` and 24 base64url characters) becomes a `create` of the same length
/// (`{"create":{"_index":"I", "_id":"D"}}`); everything else is unchanged.
pub fn as_created(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    for line in body.split_inclusive('\n') {
        let parts = line
            .strip_prefix(r#"{"index":{"_index":""#)
            .and_then(|r| r.split_once(r#"", "_id": ""#))
            .and_then(|(index, r)| Some((index, r.strip_suffix("\"}}\n")?)));
        let random = |id: &str| {
            id.split_once('-').is_some_and(|(_, r)| {
                r.len() == 24
                    && r.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
        };
        match parts {
            Some((index, id)) if random(id) => {
                out.push_str(&format!(
                    "{{\"create\":{{\"_index\":\"{index}\", \"_id\":\"{id}\"}}}}\n"
                ));
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// gzip of `data` (capture's level 6).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Starts an osmem-server on a given address (to bring a killed node back on its port).
pub fn osmem_at(addr: SocketAddr) -> Osmem {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut child = Command::new(osmem_bin())
            .args(["-addr", &addr.to_string(), "-no-stdin-watch"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start osmem-server");
        let mut line = String::new();
        let _ = BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
        if line.contains("url") {
            return Osmem { child, addr };
        }
        // The port may still be in TIME_WAIT from the killed process: try again.
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            Instant::now() < deadline,
            "osmem-server could not bind {addr}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Kills an osmem-server at once (SIGKILL), as a crashed node.
pub fn kill_osmem(es: &mut Osmem) {
    let _ = es.child.kill();
    let _ = es.child.wait();
}

/// What a [`Relay`] does with each connection.
#[derive(Clone, Copy, Debug)]
pub enum RelayMode {
    /// Forwards both ways.
    Forward,
    /// Accepts and never reads nor answers.
    BlackHole,
    /// Forwards, but reads the request side at about `bytes_per_sec`.
    Slow(usize),
}

/// A test-only TCP relay in front of an upstream: it can be "killed" (listener closed, every
/// connection cut) and brought back on the same port, while the upstream keeps its data.
pub struct Relay {
    /// The address clients connect to.
    pub addr: SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    /// A relay on a free port (or `at`) to `target`.
    pub fn start(at: Option<SocketAddr>, target: SocketAddr, mode: RelayMode) -> Relay {
        use std::sync::atomic::AtomicBool;
        use std::sync::{Arc, Mutex};
        let bind = at.unwrap_or_else(|| "127.0.0.1:0".parse().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(bind) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "relay bind {bind}: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        };
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let (client, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).unwrap();
                conns2.lock().unwrap().push(client.try_clone().unwrap());
                if let RelayMode::BlackHole = mode {
                    continue;
                }
                let Ok(server) = TcpStream::connect(target) else {
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                };
                conns2.lock().unwrap().push(server.try_clone().unwrap());
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let rate = match mode {
                    RelayMode::Slow(r) => Some(r),
                    _ => None,
                };
                std::thread::spawn(move || pipe(client, server, rate));
                std::thread::spawn(move || pipe(s2, c2, None));
            }
        });
        Relay {
            addr,
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// Closes the listener and cuts every connection (a node that died).
    pub fn kill(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, rate: Option<usize>) {
    let mut buf = vec![0u8; rate.map_or(64 << 10, |r| (r / 20).max(1))];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                if rate.is_some() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

/// The names esproxy resolves in a test: a hosts file (and a resolv.conf pointing at a dead
/// loopback resolver, so no query leaves the machine) bind-mounted over `/etc/hosts` and
/// `/etc/resolv.conf` in a private mount namespace (`unshare --mount`) for the esproxy child
/// only. Needs root and util-linux `unshare`; without them the test fails saying so.
pub struct HostsFile {
    /// The hosts file, rewritten in place (same inode, so the bind mount sees every change).
    pub path: PathBuf,
    resolv: PathBuf,
}

impl HostsFile {
    /// A hosts file with `entries` (`"127.0.0.2 es.test"` lines).
    pub fn new(entries: &str) -> HostsFile {
        let ok = Command::new("unshare")
            .args(["--mount", "sh", "-c", "mount --bind /dev/null /dev/null"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "name-resolution tests run esproxy in a private mount namespace with its own \
             /etc/hosts: they need root and util-linux `unshare` (`unshare --mount` failed)"
        );
        let path = temp_file("hosts", "");
        let resolv = path.with_file_name("resolv.conf");
        std::fs::write(
            &resolv,
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        let h = HostsFile { path, resolv };
        h.set(entries);
        h
    }

    /// Rewrites the file in place (truncate and write, never rename).
    pub fn set(&self, entries: &str) {
        let text = format!("127.0.0.1 localhost\n{entries}\n");
        std::fs::write(&self.path, text).unwrap();
    }

    /// `esproxy -c config ARGS` inside the namespace.
    pub fn command(&self, config: &std::path::Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "sh",
            "-c",
            r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@""#,
            "sh",
        ])
        .arg(&self.path)
        .arg(&self.resolv)
        .arg(env!("CARGO_BIN_EXE_esproxy"))
        .arg("-c")
        .arg(config)
        .args(args);
        cmd
    }
}
