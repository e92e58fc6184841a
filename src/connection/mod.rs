//! Connection limits: this module owns one decision, *whether a connection may open, and how
//! long it may stay open without making progress* before and between requests. It never looks
//! inside a request (that is `proxy` and the modules it calls); it only counts connections,
//! bounds the time to the first byte, to a complete request head and between keep-alive
//! requests, and hands the request body's idle timeout to the request.
//!
//! [`Gate`] wraps the HTTP application on the sensor listener:
//! 1. a new connection takes a slot under `esProxyMaxConnections` ([`caps`]) or is closed at once;
//! 2. with `esProxyProxyProtocol`, the PROXY header names the client;
//! 3. the client address takes an unauthenticated slot (per client, unless exempt, and overall;
//!    the oldest waiting connection is evicted when the pool is full);
//! 4. the first byte must come within `esProxyFirstByteTimeout` and the whole head within
//!    `esProxyHeadTimeout` of the connection opening; we read it ([`head`]) into a buffer that
//!    grows with what was sent, so before its head a connection holds little more than its socket.
//!    On a TLS listener the TLS handshake is ours too, after steps 1-3: the ClientHello's first
//!    byte is the connection's first byte, and the handshake and the head that follows it share
//!    the head deadline (Pingora alone would give a handshake 60 s, and spend it before any cap
//!    was checked);
//! 5. Pingora gets the connection with the head replayed, and the request carries a [`Ticket`]:
//!    once it authenticates, the unauthenticated slot is given back and the body's idle timeout
//!    (`esProxyBodyIdleTimeout`) set;
//! 6. between keep-alive requests the next first byte must come within `esProxyKeepAliveTimeout`,
//!    then the head within `esProxyHeadTimeout`. While the connection is still unauthenticated
//!    (its requests were refused), we read that head as in step 4, evictable. Once a request
//!    authenticated, Pingora reads the next heads itself, and [`Prefixed`] fails its reads once
//!    a deadline passed ([`head::HeadProgress`]; the proxy marks the head parsed in
//!    `on_connection_reuse`). Same bounds, without a second read of every head, a copy of it,
//!    or a timer registration per request (one lazily moved timer per connection; issue #16).
//!
//! Every refusal, eviction and deadline is counted (metrics) and logged at a bounded rate.
//!
//! What a connection holds before its head (heap profile of the release build, 1,000 silent
//! connections): about 8.8 KB is Pingora's accept task, whose future keeps room for a TLS
//! handshake even on a plain listener; 1.46 KB its socket's write buffer (Pingora's default);
//! 1.3 KB this gate's future (the TLS handshake is boxed for that reason, and only while it
//! lasts); the head buffer starts at 512 bytes once a byte came. Anything smaller would mean
//! replacing Pingora's accept loop.
//!
//! What a refusal costs: the kernel's accept and close of the socket (unavoidable short of a
//! socket filter in the kernel) and, without more, a task spawned per connection to run steps
//! 1-3. On a plain listener without PROXY protocol the socket peer is the client, so the
//! per-client cap is also checked in Pingora's accept loop ([`AcceptFilter`], Pingora's
//! connection filter): a flood from one address past its cap is closed there, without a task
//! (a future of several kilobytes copied into each), a wake-up of another worker or Pingora's
//! per-connection set-up. Measured on the release build (2 shared cores, 20,000 connections
//! from one address): about 28 µs of esproxy CPU per refused connection through the gate, about
//! 22 µs through the filter; the rest is the kernel's accept, close and TCP teardown. With PROXY
//! protocol the client is only known after its header, so refusals stay in the gate.

pub mod caps;
pub mod head;
pub mod ratelog;

use crate::metrics;
use crate::proxy_protocol;
use crate::rate_limited_warn;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use caps::{Caps, Slot, Unauthenticated};
use head::{end_of_head, HeadProgress, Prefixed};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::listeners::tls::{Acceptor, TlsSettings};
use pingora::listeners::ConnectionFilter;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use ratelog::RateLog;
use std::any::Any;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::{timeout_at, Instant};

/// The deadlines and caps (config keys in `config`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// `esProxyFirstByteTimeout`: from accept to the first byte.
    pub first_byte: Duration,
    /// `esProxyHeadTimeout`: from accept (or a keep-alive request's first byte) to the end of
    /// the head.
    pub head: Duration,
    /// `esProxyKeepAliveTimeout`: idle time allowed between requests.
    pub keepalive: Duration,
    /// `esProxyBodyIdleTimeout`: longest wait for the next body byte.
    pub body_idle: Duration,
    /// Largest head we buffer ourselves (`esProxyMaxHeaderSize`); a longer one is handed to
    /// Pingora unfinished, still under the head deadline, and refused there with 431.
    pub max_head_bytes: usize,
    /// The connection caps.
    pub caps: caps::Limits,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            first_byte: Duration::from_secs(10),
            head: Duration::from_secs(20),
            keepalive: Duration::from_secs(60),
            body_idle: Duration::from_secs(30),
            max_head_bytes: 16 * 1024,
            caps: caps::Limits {
                max_connections: 10_000,
                max_unauthenticated: 4096,
                per_client: 64,
                exempt: Default::default(),
            },
        }
    }
}

/// What a request learns about its connection (delivered through Pingora's per-connection user
/// context): it gives the unauthenticated slot back once the request authenticated, and carries
/// the connection's authentication memo (`auth::Memo`) from one request to the next.
#[derive(Clone)]
pub struct Ticket(Arc<TicketInner>);

struct TicketInner {
    unauth: Mutex<Option<Counted>>,
    body_idle: Duration,
    /// The connection's last positive authentication (`auth` decides what it may answer).
    auth: crate::auth::Memo,
    /// The head Pingora reads on a kept-alive connection (bounded by the connection's reads).
    head: Arc<HeadProgress>,
}

impl Ticket {
    /// The ticket in a connection context handed over by Pingora, if it is ours.
    pub fn from_context(ctx: Box<dyn Any + Send + Sync>) -> Option<Ticket> {
        ctx.downcast::<Ticket>().ok().map(|t| *t)
    }

    /// The request authenticated: the connection is no longer capped as unauthenticated (and
    /// can no longer be evicted).
    pub fn authenticated(&self) {
        let released = self
            .0
            .unauth
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(released);
    }

    /// The request was admitted: [`Ticket::authenticated`], and its body may now go only
    /// `esProxyBodyIdleTimeout` without a byte (a read timeout ends the request and cuts the
    /// upstream request).
    pub fn admitted(&self, session: &mut pingora::proxy::Session) {
        self.authenticated();
        session.set_read_timeout(Some(self.body_idle()));
    }

    /// How long the request body may go without a byte.
    pub fn body_idle(&self) -> Duration {
        self.0.body_idle
    }

    /// The request's head was parsed (Pingora calls `on_connection_reuse` right after): a
    /// kept-alive request's head deadline no longer applies.
    pub fn head_parsed(&self) {
        self.0.head.parsed();
    }

    /// The connection's authentication memo (held here, one per connection; `auth` owns it).
    pub fn auth_memo(&self) -> &crate::auth::Memo {
        &self.0.auth
    }

    fn waiting_slot(&self) -> Option<Arc<Slot>> {
        let u = self.0.unauth.lock().unwrap_or_else(|e| e.into_inner());
        u.as_ref().map(|c| c.0.slot().clone())
    }
}

/// An unauthenticated slot, mirrored in the gauge.
struct Counted(Unauthenticated);

impl Counted {
    fn new(u: Unauthenticated) -> Counted {
        metrics::connections_unauthenticated(1);
        Counted(u)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        metrics::connections_unauthenticated(-1);
    }
}

/// An open connection, mirrored in the gauge.
struct OpenGauge;

impl OpenGauge {
    fn new() -> OpenGauge {
        metrics::connections_open(1);
        OpenGauge
    }
}

impl Drop for OpenGauge {
    fn drop(&mut self) {
        metrics::connections_open(-1);
    }
}

/// Why we stopped waiting for a head.
enum Ended {
    /// The client closed (or the socket failed): nothing to count.
    Closed,
    /// A deadline passed (metric label).
    Deadline(&'static str),
    /// Evicted for a newer connection.
    Evicted,
    /// The TLS handshake failed (logged at a bounded rate; the client's fault or a scanner's).
    Handshake(Box<pingora::Error>),
    /// The server is shutting down.
    Shutdown,
}

static REFUSED_LOG: RateLog = RateLog::new();
static DEADLINE_LOG: RateLog = RateLog::new();
static EVICTED_LOG: RateLog = RateLog::new();
static PROXY_HEADER_LOG: RateLog = RateLog::new();
static HANDSHAKE_LOG: RateLog = RateLog::new();

/// The per-client cap checked in Pingora's accept loop, before a task exists for the connection
/// (plain listeners without PROXY protocol, where the socket peer is the client).
#[derive(Clone)]
pub struct AcceptFilter {
    caps: Arc<Caps>,
}

impl std::fmt::Debug for AcceptFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcceptFilter")
    }
}

#[async_trait]
impl ConnectionFilter for AcceptFilter {
    async fn should_accept(&self, addr: Option<&std::net::SocketAddr>) -> bool {
        let Some(addr) = addr else { return true };
        let ip = addr.ip().to_canonical();
        if self.caps.client_at_cap(ip) {
            refused(caps::Refusal::PerClient, ip);
            return false;
        }
        true
    }
}

/// The sensor listener's connection gate around the HTTP application `A` (Pingora's proxy).
pub struct Gate<A> {
    inner: Arc<A>,
    settings: Settings,
    caps: Arc<Caps>,
    proxy_protocol: bool,
    tls: Option<Acceptor>,
}

impl<A> Gate<A> {
    /// `proxy_protocol`: read a PROXY header first. `tls`: the listener's TLS settings; the
    /// handshake is then done here, under the deadlines (the Pingora listener stays plain TCP).
    pub fn new(
        inner: A,
        settings: Settings,
        proxy_protocol: bool,
        tls: Option<TlsSettings>,
    ) -> Self {
        Gate {
            inner: Arc::new(inner),
            caps: Caps::new(settings.caps.clone()),
            settings,
            proxy_protocol,
            tls: tls.map(TlsSettings::build),
        }
    }

    /// The early per-client check for Pingora's accept loop, where the socket peer is the client
    /// (None with PROXY protocol: the client is named by the header, read later).
    pub fn accept_filter(&self) -> Option<AcceptFilter> {
        (!self.proxy_protocol).then(|| AcceptFilter {
            caps: self.caps.clone(),
        })
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Gate<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let opened = Instant::now();
        let _open = match self.caps.open() {
            Ok(o) => o,
            Err(r) => {
                refused(r, peer_ip(&stream));
                return None;
            }
        };
        let _gauge = OpenGauge::new();
        self.serve(stream, opened, shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Gate<A> {
    async fn serve(&self, stream: Stream, opened: Instant, shutdown: &ShutdownWatch) {
        let s = &self.settings;
        let mut conn = Prefixed::new(stream);
        let head_deadline = opened + s.head;
        if self.proxy_protocol {
            let read = proxy_protocol::read_header(conn.inner_mut());
            match timeout_at(head_deadline, read).await {
                Ok(Ok(h)) => proxy_protocol::apply(&mut **conn.inner_mut(), h),
                Ok(Err(e)) => {
                    rate_limited_warn!(
                        PROXY_HEADER_LOG,
                        "closing connection from {}: {e}",
                        show(peer_ip(conn.inner()))
                    );
                    return;
                }
                Err(_) => {
                    deadline("head", peer_ip(conn.inner()));
                    return;
                }
            }
        }
        let peer = peer_ip(conn.inner());
        let unauth = match self.caps.unauthenticated(peer) {
            Ok(u) => Counted::new(u),
            Err(r) => {
                refused(r, peer);
                return;
            }
        };
        let ticket = Ticket(Arc::new(TicketInner {
            unauth: Mutex::new(Some(unauth)),
            body_idle: s.body_idle,
            auth: Default::default(),
            head: Default::default(),
        }));
        let mut persistent: Option<HttpPersistentSettings> = None;
        let mut first_by = opened + s.first_byte;
        let mut head_by = Some(head_deadline);
        if let Some(acceptor) = &self.tls {
            let slot = ticket.waiting_slot();
            let shook = tls_handshake(
                acceptor,
                conn,
                first_by,
                head_deadline,
                slot.as_deref(),
                shutdown,
                peer,
            )
            .await;
            let Some(c) = shook else { return };
            conn = c;
            // The ClientHello was the first byte; the request head follows under the same deadline.
            first_by = head_deadline;
        }
        let mut kept_alive = false;
        loop {
            let slot = ticket.waiting_slot();
            // An authenticated connection between requests: Pingora reads the head (step 6).
            let pingora_reads = kept_alive && slot.is_none();
            if pingora_reads {
                conn.await_next_head(&ticket.0.head, s.keepalive, s.head);
            } else {
                if let Some(slot) = &slot {
                    slot.set_waiting(true);
                }
                let got = self
                    .read_head(&mut conn, first_by, head_by, slot.as_deref(), shutdown)
                    .await;
                if let Some(slot) = &slot {
                    slot.set_waiting(false);
                }
                drop(slot);
                let unfinished = match got {
                    Ok(unfinished) => unfinished,
                    Err(e) => return ended(e, peer),
                };
                if unfinished {
                    // Too long for us to hold: Pingora reads the rest, still within the deadline.
                    let left = head_by
                        .unwrap_or_else(|| Instant::now() + s.head)
                        .saturating_duration_since(Instant::now());
                    conn.set_deadline(Some(left));
                }
            }
            let mut session = ServerSession::new_http1(Box::new(conn));
            if let Some(p) = persistent.take() {
                p.apply_to_session(&mut session);
            }
            // Our deadlines bound a head Pingora reads (`Prefixed`): its own keep-alive timer
            // (0 = none) would be one more timer per request.
            let keepalive = if pingora_reads {
                0
            } else {
                s.keepalive.as_secs().max(1)
            };
            session.set_keepalive((!*shutdown.borrow()).then_some(keepalive));
            session.set_connection_user_context(Some(Box::new(ticket.clone())));
            let Some(reused) = self.inner.process_new_http(session, shutdown).await else {
                return;
            };
            let (stream, p) = reused.consume();
            persistent = p;
            conn = Prefixed::recover(stream);
            conn.set_deadline(None);
            first_by = Instant::now() + s.keepalive;
            head_by = None;
            kept_alive = true;
        }
    }

    /// Waits for the first byte by `first_by`, then reads until the head is complete (by
    /// `head_by`, or `esProxyHeadTimeout` after the first byte) and leaves what was read as the
    /// connection's prefix. `Ok(true)`: the head is longer than we hold; the prefix is its start.
    async fn read_head(
        &self,
        conn: &mut Prefixed,
        first_by: Instant,
        head_by: Option<Instant>,
        slot: Option<&Slot>,
        shutdown: &ShutdownWatch,
    ) -> Result<bool, Ended> {
        let first_label = if head_by.is_some() {
            "first_byte"
        } else {
            "keepalive_idle"
        };
        let first = first_byte(conn, first_by, first_label, slot, shutdown).await?;
        let head_by = head_by.unwrap_or_else(|| Instant::now() + self.settings.head);
        // Grows with what the client sent: a slow head costs its bytes, not a fixed buffer.
        let mut buf = BytesMut::with_capacity(512);
        buf.extend_from_slice(&[first]);
        let mut new_lf = first == b'\n';
        loop {
            if new_lf && end_of_head(&buf).is_some() {
                conn.set_prefix(buf.freeze());
                return Ok(false);
            }
            if buf.len() > self.settings.max_head_bytes {
                conn.set_prefix(buf.freeze());
                return Ok(true);
            }
            if buf.capacity() == buf.len() {
                buf.reserve(
                    buf.len()
                        .min(self.settings.max_head_bytes + 1 - buf.len())
                        .max(512),
                );
            }
            let before = buf.len();
            let n = watch(slot, shutdown, timeout_at(head_by, conn.read_buf(&mut buf))).await?;
            match n {
                Err(_) => return Err(Ended::Deadline("head")),
                Ok(Err(_)) | Ok(Ok(0)) => return Err(Ended::Closed),
                Ok(Ok(_)) => new_lf = memchr::memchr(b'\n', &buf[before..]).is_some(),
            }
        }
    }
}

/// The TLS handshake: its first byte by `first_by`, all of it by `head_by`, evictable while
/// it lasts (a client stalled mid-handshake is as unauthenticated as a silent one). Returns
/// the decrypted connection, ready for the head to be read, or None once it is closed (and
/// counted).
async fn tls_handshake(
    acceptor: &Acceptor,
    mut conn: Prefixed,
    first_by: Instant,
    head_by: Instant,
    slot: Option<&Slot>,
    shutdown: &ShutdownWatch,
    peer: IpAddr,
) -> Option<Prefixed> {
    let first = match first_byte(&mut conn, first_by, "first_byte", slot, shutdown).await {
        Ok(b) => b,
        Err(e) => {
            ended(e, peer);
            return None;
        }
    };
    conn.set_prefix(Bytes::copy_from_slice(&[first]));
    // Boxed: rustls' handshake state is large, and inline it would be part of every
    // connection's future, plain ones and those long past their handshake included.
    let mut shake = Box::pin(acceptor.tls_handshake(conn));
    let e = match watch(slot, shutdown, timeout_at(head_by, shake.as_mut())).await {
        Ok(Ok(Ok(tls))) => return Some(Prefixed::new(Box::new(tls))),
        Ok(Ok(Err(e))) => Ended::Handshake(e),
        Ok(Err(_)) => Ended::Deadline("tls_handshake"),
        Err(e) => e,
    };
    // Counted while the connection is still open (it closes when `shake` is dropped).
    ended(e, peer);
    None
}

/// Waits for the connection's next byte until `by` (`label`: the deadline's metric label).
async fn first_byte(
    conn: &mut Prefixed,
    by: Instant,
    label: &'static str,
    slot: Option<&Slot>,
    shutdown: &ShutdownWatch,
) -> Result<u8, Ended> {
    let mut one = [0u8; 1];
    match watch(slot, shutdown, timeout_at(by, conn.read(&mut one))).await? {
        Err(_) => Err(Ended::Deadline(label)),
        Ok(Err(_)) | Ok(Ok(0)) => Err(Ended::Closed),
        Ok(Ok(_)) => Ok(one[0]),
    }
}

/// Counts and logs (at a bounded rate) why a connection ended before or between requests.
fn ended(e: Ended, peer: IpAddr) {
    match e {
        // A keep-alive connection that goes quiet is normal: counted, not logged.
        Ended::Deadline(which @ "keepalive_idle") => metrics::connection_deadline(which),
        Ended::Deadline(which) => deadline(which, peer),
        Ended::Evicted => {
            metrics::connection_evicted();
            rate_limited_warn!(
                EVICTED_LOG,
                "connection from {} evicted: unauthenticated connections at \
                 esProxyMaxUnauthenticated/esProxyMaxConnections, it was the oldest waiting",
                show(peer)
            );
        }
        Ended::Handshake(e) => {
            metrics::tls_handshake_failed();
            rate_limited_warn!(
                HANDSHAKE_LOG,
                "TLS handshake with {} failed: {e}",
                show(peer)
            );
        }
        Ended::Closed | Ended::Shutdown => {}
    }
}

/// Runs `fut` unless the connection is evicted or the server shuts down first.
async fn watch<T>(
    slot: Option<&Slot>,
    shutdown: &ShutdownWatch,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, Ended> {
    let mut shutdown = shutdown.clone();
    let evicted = async {
        match slot {
            Some(s) => s.evicted().await,
            None => std::future::pending().await,
        }
    };
    let stopping = async {
        loop {
            if *shutdown.borrow_and_update() {
                return;
            }
            if shutdown.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        out = fut => Ok(out),
        _ = evicted => Err(Ended::Evicted),
        _ = stopping => Err(Ended::Shutdown),
    }
}

fn peer_ip(stream: &Stream) -> IpAddr {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

fn show(ip: IpAddr) -> String {
    if ip.is_unspecified() {
        "-".into()
    } else {
        ip.to_string()
    }
}

fn refused(r: caps::Refusal, ip: IpAddr) {
    metrics::connection_refused(r.label());
    rate_limited_warn!(
        REFUSED_LOG,
        "connection from {} refused: {} cap reached",
        show(ip),
        r.label()
    );
}

fn deadline(which: &'static str, ip: IpAddr) {
    metrics::connection_deadline(which);
    rate_limited_warn!(
        DEADLINE_LOG,
        "connection from {} closed: {which} deadline passed",
        show(ip)
    );
}

/// Whether a request failed because its body went idle past `esProxyBodyIdleTimeout` (counted
/// and logged here, at a bounded rate).
pub fn body_idle_timed_out(e: &pingora::Error, sensor: Option<&str>, ip: Option<IpAddr>) -> bool {
    let idle = is_body_idle(e);
    if idle {
        body_idle_passed(sensor, ip);
    }
    idle
}

/// Whether `e` is Pingora's downstream read timeout (the body read timeout we set).
pub fn is_body_idle(e: &pingora::Error) -> bool {
    matches!(e.etype(), pingora::ErrorType::ReadTimedout)
        && matches!(e.esource(), pingora::ErrorSource::Downstream)
}

/// Counts and logs (at a bounded rate) a body that went idle past `esProxyBodyIdleTimeout`.
pub fn body_idle_passed(sensor: Option<&str>, ip: Option<IpAddr>) {
    metrics::connection_deadline("body_idle");
    rate_limited_warn!(
        DEADLINE_LOG,
        "request body from sensor={} ip={} idle past esProxyBodyIdleTimeout: ended, \
         upstream request cut",
        sensor.unwrap_or("-"),
        ip.map_or("-".to_string(), |ip| ip.to_string())
    );
}
