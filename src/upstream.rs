//! The Elasticsearch peer pool: which ES node a request goes to, how we talk to it (http/https,
//! CA trust, client certificate, SNI) and which credentials we send. Never looks at a request.
//!
//! # Names and members
//! Each URL of `elasticsearch=` (or `[tee]`) is a *name* with its own facts: scheme, host
//! (TLS verifies it and sends it as SNI), `Host` header, credentials. Every address a name
//! resolves to, A and AAAA, is a *member*: an `Arc` with a stable id, its own health and its own
//! connection template. [`Resolve`] resolves every host name again every `esProxyDnsInterval`
//! (30 s), and at once (at most once a second) after a member failed to connect or while a
//! request waits for a member: new addresses
//! join, vanished ones are drained, i.e. no new request picks them while a request already on
//! one keeps its `Arc` to the end. A failed lookup keeps the last answer (a DNS hiccup must not
//! empty the pool) and is counted. IP literals are never resolved. We use the system resolver
//! (`getaddrinfo`: `/etc/hosts`, nsswitch, the search list, as every other program on the
//! host), which reports no TTL, so the interval is the bound on how long a moved name is
//! followed late; a failed connect shortens it.
//!
//! A name that does not resolve at start-up is a warning (naming the key and the host), not an
//! error: until it resolves, requests get our 502 and bulks wait for a member within their
//! replay budget ([`Pool::select_or_wait`]).
//!
//! Round robin over healthy members; a member that refuses a connection is marked down at once
//! (passive check) and [`HealthCheck`] probes every member (active check) to bring it back.
//! With `esProxySigV4` the pool's [`Signer`] takes the place of our `Authorization` (health
//! checks are signed too). The PEM files the cluster's TLS names are loaded by `upstream/pem.rs`.
//!
//! # Why not `pingora-load-balancing`
//! Its `Backends` + `ServiceDiscovery` + `LoadBalancer` (0.9) would give discovery, health
//! checks, selection and an update frequency, but does not fit three decisions this pool owns:
//! - identity: a `Backend` is its `SocketAddr` and weight (`ext` is ignored by `Eq`/`Hash`), so
//!   two URLs on one address (two names, or one name with two credentials or SNI names behind
//!   one load balancer) collapse into one backend that can carry only one `Host`/SNI/credential;
//!   our member is (name, address).
//! - passive marking: a backend's health (`Health`) is crate-private and only its active check
//!   flips it; the only public lever, `set_enable`, is a manual switch no health check ever
//!   resets. A refused connect or a silent node (#17) must take a member out at once and a
//!   passed check must bring it back.
//! - signed probes: health checks of a SigV4 cluster must be signed per probe; that needs our
//!   own `HealthCheck` impl anyway, the same code as here.
//!
//! What is left (a list swapped under a lock, a round-robin counter, a loop calling
//! `getaddrinfo`) is smaller than the adapter code would be.

use crate::config::{EsUrl, Upstream};
use crate::sigv4::Signer;
use async_trait::async_trait;
use log::{info, warn};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::CertKey;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

mod pem;

pub use pem::load_ca_bundle;
pub(crate) use pem::load_cert_key;

/// Why the upstream settings could not be turned into a pool. Names the file or URL to fix.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// An https URL without a host name: Pingora would skip every certificate check.
    #[error("elasticsearch URL {url}: https needs a host name for SNI and certificate checks")]
    EmptySni {
        /// The URL as configured (without credentials).
        url: String,
    },
    /// A certificate or key file could not be read or holds nothing usable.
    #[error("{setting} = {path}: {reason}")]
    TlsFile {
        /// The config key (`caTrustFile`, `esClientCert`, `esClientKey`).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A `Host` or credential value that cannot be an HTTP header value (a control character).
    #[error("elasticsearch URL {url}: its {header} value is not a valid HTTP header value (control character or non-visible byte); fix the URL or the credential setting")]
    HeaderValue {
        /// The URL as configured (without credentials).
        url: String,
        /// `Host` or `Authorization`.
        header: &'static str,
    },
}

/// One configured URL: the facts every address of its name shares.
struct Target {
    /// `scheme://host:port` (no credentials): logs and metric labels.
    name: String,
    url: EsUrl,
    /// The host is an IP literal: its one address never changes.
    literal: Option<IpAddr>,
    host_header: String,
    /// `host_header` and our credentials as header values, built once per configuration so a
    /// request only clones them (issue #16).
    host_value: http::HeaderValue,
    authorization: Option<http::HeaderValue>,
    /// Connection settings (timeouts, CA, verification, client certificate) for its members.
    options: pingora::upstreams::peer::PeerOptions,
    client_cert: Option<Arc<CertKey>>,
    /// Lookups of this name that failed (metrics).
    resolve_failures: AtomicU64,
    /// Whether the last lookup failed (to log a change once, not every interval).
    failing: AtomicBool,
    /// Its latency series, kept once first used.
    latency: crate::metrics::PeerSeries,
}

/// One address of one name: what a request is sent to. Cloned as an `Arc` into the request
/// that uses it, so a member drained from the pool stays valid for that request.
pub struct Member {
    id: u64,
    target: Arc<Target>,
    addr: SocketAddr,
    /// The name, and the address when the name is not an IP literal (logs, health gauge).
    label: String,
    template: HttpPeer,
    healthy: AtomicBool,
    /// Consecutive failed health checks.
    failed_checks: AtomicU32,
}

impl Member {
    fn new(id: u64, target: Arc<Target>, addr: SocketAddr) -> Member {
        let mut peer = HttpPeer::new(addr, target.url.https, target.url.host.clone());
        peer.options = target.options.clone();
        peer.client_cert_key = target.client_cert.clone();
        let label = if target.literal.is_some() {
            target.name.clone()
        } else {
            format!("{} ({addr})", target.name)
        };
        Member {
            id,
            target,
            addr,
            label,
            template: peer,
            healthy: AtomicBool::new(true),
            failed_checks: AtomicU32::new(0),
        }
    }

    /// Stable id within its pool (to exclude a member that failed for a request).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The configured URL (`scheme://host:port`, no credentials): a bounded metric label.
    pub fn name(&self) -> &str {
        &self.target.name
    }

    /// The latency series of [`Member::name`] (metrics).
    pub fn latency_series(&self) -> &crate::metrics::PeerSeries {
        &self.target.latency
    }

    /// The URL and, for a host name, the address (logs, health gauge).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The address connected to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A connection template (for requests we send ourselves: tee, replay).
    pub fn peer(&self) -> HttpPeer {
        self.template.clone()
    }

    /// Whether the member is currently considered healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The `Host` header for this member: its name, never its address.
    pub fn host_header(&self) -> &str {
        &self.target.host_header
    }

    /// The `Authorization` value to send to this member, if any.
    pub fn authorization(&self) -> Option<&http::HeaderValue> {
        self.target.authorization.as_ref()
    }
}

/// Failed health checks in a row before a member is marked down (one slow answer from a busy
/// node must not take it out of the pool; a refused connect still marks it down at once).
const FAILS_TO_MARK_DOWN: u32 = 2;
/// Least time between two lookups of the same pool triggered by failures.
const MIN_RESOLVE_GAP: Duration = Duration::from_secs(1);
/// Longest one lookup may take before it counts as failed.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The pool of ES members from one `elasticsearch=` list.
pub struct Pool {
    /// `es` or `tee`: metric label and the key named in warnings.
    cluster: &'static str,
    targets: Vec<Arc<Target>>,
    /// Current members, target by target, addresses sorted: swapped whole on a change.
    members: RwLock<Arc<Vec<Arc<Member>>>>,
    next_id: AtomicU64,
    next: AtomicUsize,
    /// Bumped on every membership change; waiters watch it.
    generation: watch::Sender<u64>,
    /// A member failed: resolve again soon.
    resolve_now: Notify,
    /// Serialises refreshes (the background loop and the start-up lookup).
    refreshing: Mutex<()>,
    dns_interval: Duration,
    health_path: String,
    health_interval: Duration,
    health_timeout: Duration,
    signer: Option<Arc<Signer>>,
    /// Start-up lookups that failed: printed by the caller as warnings.
    warnings: Vec<String>,
}

/// A member chosen for one attempt.
pub struct Chosen {
    /// The member (to mark it down or exclude it on retry).
    pub member: Arc<Member>,
    /// The connection to open.
    pub peer: Box<HttpPeer>,
}

impl Pool {
    /// Builds the pool for `cluster` (`es` or `tee`): loads CA bundle and client certificate
    /// once, and resolves every host name; a name that does not resolve yet is a warning
    /// ([`Pool::warnings`]), not an error.
    pub fn new(up: &Upstream, cluster: &'static str) -> Result<Pool, UpstreamError> {
        let mut pool = Pool::new_unresolved(up, cluster)?;
        // Start-up: a blocking lookup is fine (nothing is served yet).
        let answers: Vec<_> = pool
            .targets
            .iter()
            .map(|t| lookup_blocking(t).map_err(|e| (t.clone(), e)))
            .collect();
        for a in &answers {
            if let Err((t, reason)) = a {
                t.resolve_failures.fetch_add(1, Ordering::Relaxed);
                t.failing.store(true, Ordering::Relaxed);
                pool.warnings.push(format!(
                    "{}: cannot resolve {} ({reason}); starting without it, resolving again every {} s",
                    pool.key(),
                    t.url.authority(),
                    pool.dns_interval.as_secs()
                ));
            }
        }
        let answers = answers.into_iter().map(Result::ok).collect::<Vec<_>>();
        pool.apply(&answers);
        Ok(pool)
    }

    /// The pool with its names but no member yet.
    fn new_unresolved(up: &Upstream, cluster: &'static str) -> Result<Pool, UpstreamError> {
        let ca = match &up.tls.ca_trust_file {
            Some(p) => Some(load_ca_bundle(p)?),
            None => None,
        };
        let client_cert = match (&up.tls.client_cert, &up.tls.client_key) {
            (Some(c), Some(k)) => Some(Arc::new(load_cert_key(
                c,
                k,
                up.tls.client_key_pass.as_deref(),
            )?)),
            _ => None,
        };
        let mut targets = Vec::with_capacity(up.urls.len());
        for url in &up.urls {
            // An empty SNI makes Pingora skip every certificate check: always name the host.
            if url.https && url.host.trim().is_empty() {
                return Err(UpstreamError::EmptySni {
                    url: format!("https://{}", url.authority()),
                });
            }
            let mut options = pingora::upstreams::peer::PeerOptions::new();
            options.verify_cert = !up.tls.insecure;
            options.verify_hostname = !up.tls.insecure;
            options.connection_timeout = Some(Duration::from_secs(5));
            options.total_connection_timeout = Some(Duration::from_secs(10));
            options.idle_timeout = Some(Duration::from_secs(60));
            // A node that goes silent (GC pause, wedged JVM) must not hold a request until the
            // sensor gives up: Pingora applies these to every read and write of the exchange.
            options.read_timeout = Some(up.timeout);
            options.write_timeout = Some(up.timeout);
            if let Some(ca) = &ca {
                options.ca = Some(ca.clone());
            }
            let bad = |header| UpstreamError::HeaderValue {
                url: format!(
                    "{}://{}",
                    if url.https { "https" } else { "http" },
                    url.authority()
                ),
                header,
            };
            let host_value =
                http::HeaderValue::from_str(&url.authority()).map_err(|_| bad("Host"))?;
            let authorization = up
                .authorization_for(url)
                .map(|a| http::HeaderValue::from_str(a).map_err(|_| bad("Authorization")))
                .transpose()?;
            targets.push(Arc::new(Target {
                name: format!(
                    "{}://{}",
                    if url.https { "https" } else { "http" },
                    url.authority()
                ),
                literal: url.host.parse().ok(),
                url: url.clone(),
                host_header: url.authority(),
                host_value,
                authorization,
                options,
                client_cert: client_cert.clone(),
                resolve_failures: AtomicU64::new(0),
                failing: AtomicBool::new(false),
                latency: Default::default(),
            }));
        }
        Ok(Pool {
            cluster,
            targets,
            members: RwLock::new(Arc::new(Vec::new())),
            next_id: AtomicU64::new(0),
            next: AtomicUsize::new(0),
            generation: watch::Sender::new(0),
            resolve_now: Notify::new(),
            refreshing: Mutex::new(()),
            dns_interval: up.dns_interval,
            health_path: up.health.path.clone(),
            health_interval: up.health.interval,
            health_timeout: up.health.timeout,
            signer: up.sigv4.as_ref().map(|s| Signer::new(s, cluster)),
            warnings: Vec::new(),
        })
    }

    /// The config key this pool comes from, for messages.
    fn key(&self) -> &'static str {
        if self.cluster == "tee" {
            "[tee] elasticsearch"
        } else {
            "elasticsearch"
        }
    }

    /// Start-up lookups that failed, one message each (key, host, resolver's answer).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `es` or `tee`.
    pub fn cluster(&self) -> &'static str {
        self.cluster
    }

    /// The SigV4 signer, when every request to this cluster must be signed.
    pub fn signer(&self) -> Option<&Arc<Signer>> {
        self.signer.as_ref()
    }

    /// Sets read and write timeouts on every member (used for the tee, whose connections must
    /// never hang on a black-holed node).
    pub fn set_io_timeout(&mut self, t: Duration) {
        // Members share their target: new targets, then the same members (ids, addresses,
        // health) rebuilt on them.
        let old_targets = std::mem::take(&mut self.targets);
        for old in &old_targets {
            let mut options = old.options.clone();
            options.read_timeout = Some(t);
            options.write_timeout = Some(t);
            self.targets.push(Arc::new(Target {
                name: old.name.clone(),
                url: old.url.clone(),
                literal: old.literal,
                host_header: old.host_header.clone(),
                host_value: old.host_value.clone(),
                authorization: old.authorization.clone(),
                options,
                client_cert: old.client_cert.clone(),
                resolve_failures: AtomicU64::new(old.resolve_failures.load(Ordering::Relaxed)),
                failing: AtomicBool::new(old.failing.load(Ordering::Relaxed)),
                latency: Default::default(),
            }));
        }
        let rebuilt = self
            .snapshot()
            .iter()
            .filter_map(|m| {
                let i = old_targets.iter().position(|t| Arc::ptr_eq(t, &m.target))?;
                let new = Member::new(m.id, self.targets[i].clone(), m.addr);
                new.healthy.store(m.is_healthy(), Ordering::Relaxed);
                Some(Arc::new(new))
            })
            .collect();
        *self.members.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rebuilt);
    }

    /// The current members.
    pub fn snapshot(&self) -> Arc<Vec<Arc<Member>>> {
        self.members
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts the first name's `Host` and our credentials on an upstream request (a request we
    /// send ourselves re-prepares it for the member it goes to).
    pub fn prepare_header_default(&self, req: &mut RequestHeader) -> pingora::Result<()> {
        let t = &self.targets[0];
        self.prepare_with(t.authorization.as_ref(), &t.host_value, req)
    }

    /// Puts this member's `Host` and our credentials for it on an upstream request, in place of
    /// whatever the sensor sent.
    pub fn prepare_header(&self, m: &Member, req: &mut RequestHeader) -> pingora::Result<()> {
        self.prepare_with(m.authorization(), &m.target.host_value, req)
    }

    fn prepare_with(
        &self,
        authorization: Option<&http::HeaderValue>,
        host: &http::HeaderValue,
        req: &mut RequestHeader,
    ) -> pingora::Result<()> {
        req.remove_header(&http::header::PROXY_AUTHORIZATION);
        // A signed cluster gets no Authorization of ours: the signature replaces it. Inserting
        // replaces every value the head had under that name.
        match authorization.filter(|_| self.signer.is_none()) {
            Some(a) => req.insert_header(http::header::AUTHORIZATION, a.clone())?,
            None => drop(req.remove_header(&http::header::AUTHORIZATION)),
        }
        req.insert_header(http::header::HOST, host.clone())
    }

    /// Number of members now.
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// True when the pool has no member now (no name resolved yet).
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// Whether a current member is not in `exclude`.
    pub fn untried(&self, exclude: &[u64]) -> bool {
        self.snapshot().iter().any(|m| !exclude.contains(&m.id))
    }

    /// Whether membership can change at run time (some name is not an IP literal).
    pub fn follows_dns(&self) -> bool {
        self.targets.iter().any(|t| t.literal.is_none())
    }

    /// Next member in round-robin order, skipping `exclude` (members that already failed for
    /// this request) and, while any is left, unhealthy ones. When every remaining member is
    /// marked down we still try one: a health check can lag behind a node's recovery, and a
    /// refused connect costs little compared with failing a sensor's bulk.
    pub fn select(&self, exclude: &[u64]) -> Option<Chosen> {
        let members = self.snapshot();
        let n = members.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|i| &members[(start + i) % n])
            .filter(|m| !exclude.contains(&m.id));
        let mut fallback = None;
        for m in candidates {
            if m.is_healthy() {
                return Some(chosen(m));
            }
            fallback.get_or_insert(m);
        }
        fallback.map(chosen)
    }

    /// [`Pool::select`], but when no member is left to try and names may still move, waits
    /// (until `deadline`) for the membership to change: a name that resolves late, or moves
    /// away from a dead address. While it waits, the names are looked up again every
    /// `MIN_RESOLVE_GAP` rather than every `esProxyDnsInterval`: a request is waiting.
    pub async fn select_or_wait(&self, exclude: &[u64], deadline: Instant) -> Option<Chosen> {
        let mut changes = self.generation.subscribe();
        loop {
            if let Some(c) = self.select(exclude) {
                return Some(c);
            }
            if !self.follows_dns() || Instant::now() >= deadline {
                return None;
            }
            self.resolve_now.notify_one();
            let tick = deadline.min(Instant::now() + MIN_RESOLVE_GAP);
            if let Ok(Err(_)) = tokio::time::timeout_at(tick.into(), changes.changed()).await {
                return None;
            }
        }
    }

    /// The membership generation (bumped on every change).
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Waits until the membership changes or `deadline` passes; true if it changed.
    pub async fn wait_change(&self, seen: u64, deadline: Instant) -> bool {
        let mut changes = self.generation.subscribe();
        if *changes.borrow_and_update() != seen {
            return true;
        }
        self.resolve_now.notify_one();
        matches!(
            tokio::time::timeout_at(deadline.into(), changes.changed()).await,
            Ok(Ok(()))
        )
    }

    /// Marks a member down at once (a failed connect, or no byte for the upstream timeout);
    /// only a passed health check brings it back. Its name is resolved again soon: the node
    /// may have moved. `why` is for the log line.
    pub fn mark_down(&self, m: &Member, why: &str) {
        if m.healthy.swap(false, Ordering::Relaxed) {
            warn!("upstream {} marked down ({why})", m.label);
        }
        if m.target.literal.is_none() {
            self.resolve_now.notify_one();
        }
    }

    /// Resolved members per name (metrics): `(name, members)`.
    pub fn members_per_name(&self) -> Vec<(String, usize)> {
        let members = self.snapshot();
        self.targets
            .iter()
            .map(|t| {
                let n = members.iter().filter(|m| Arc::ptr_eq(&m.target, t)).count();
                (t.name.clone(), n)
            })
            .collect()
    }

    /// Failed lookups per name so far (metrics): `(name, failures)`.
    pub fn resolve_failures(&self) -> Vec<(String, u64)> {
        self.targets
            .iter()
            .map(|t| (t.name.clone(), t.resolve_failures.load(Ordering::Relaxed)))
            .collect()
    }

    /// Resolves every host name once more and applies the answers (a failed lookup keeps
    /// that name's members).
    pub async fn refresh(&self) {
        let mut answers = Vec::with_capacity(self.targets.len());
        for t in &self.targets {
            let answer = lookup(t).await;
            let was_failing = t.failing.swap(answer.is_err(), Ordering::Relaxed);
            match &answer {
                Err(e) => {
                    t.resolve_failures.fetch_add(1, Ordering::Relaxed);
                    if !was_failing {
                        warn!(
                            "{}: cannot resolve {} ({e}); keeping its last addresses",
                            self.key(),
                            t.url.authority()
                        );
                    }
                }
                Ok(a) if was_failing => info!(
                    "{}: {} resolves again ({} address(es))",
                    self.key(),
                    t.url.authority(),
                    a.len()
                ),
                Ok(_) => {}
            }
            answers.push(answer.ok());
        }
        self.apply(&answers);
    }

    /// Makes the members match `answers` (one per target; `None` keeps that target's members):
    /// members whose address is still there keep their identity and health.
    fn apply(&self, answers: &[Option<Vec<SocketAddr>>]) {
        let _one = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let mut new = Vec::with_capacity(old.len());
        for (t, answer) in self.targets.iter().zip(answers) {
            let kept = old.iter().filter(|m| Arc::ptr_eq(&m.target, t));
            match answer {
                None => new.extend(kept.cloned()),
                Some(addrs) => {
                    let mut addrs = addrs.clone();
                    addrs.sort();
                    addrs.dedup();
                    for a in addrs {
                        match old
                            .iter()
                            .find(|m| Arc::ptr_eq(&m.target, t) && m.addr == a)
                        {
                            Some(m) => new.push(m.clone()),
                            None => {
                                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                                let m = Arc::new(Member::new(id, t.clone(), a));
                                if t.literal.is_none() && !old.is_empty() {
                                    info!("upstream {} joins the pool", m.label);
                                }
                                new.push(m);
                            }
                        }
                    }
                    for m in kept.filter(|m| !new.iter().any(|n| n.id == m.id)) {
                        info!("upstream {} left DNS: drained", m.label);
                    }
                }
            }
        }
        let same = old.len() == new.len() && old.iter().zip(&new).all(|(a, b)| a.id == b.id);
        if !same {
            *self.members.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Probes every member once (GET health path, any status below 500 is healthy). A member is
    /// marked down after `FAILS_TO_MARK_DOWN` failures in a row, and up after one success.
    pub async fn check_all(&self, connector: &Connector) {
        for m in self.snapshot().iter() {
            let passed = tokio::time::timeout(self.health_timeout, self.probe(connector, m))
                .await
                .unwrap_or(false);
            let ok = if passed {
                m.failed_checks.store(0, Ordering::Relaxed);
                true
            } else {
                let n = m.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
                // A member already down (refused connect) stays down on its first failed check.
                n < FAILS_TO_MARK_DOWN && m.healthy.load(Ordering::Relaxed)
            };
            let was = m.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                if ok {
                    info!("upstream {} is healthy again", m.label);
                } else {
                    warn!("upstream {} failed its health check", m.label);
                }
            }
        }
    }

    async fn probe(&self, connector: &Connector, m: &Member) -> bool {
        let Ok((mut session, _)) = connector.get_http_session(&m.template).await else {
            return false;
        };
        let Ok(mut req) = RequestHeader::build("GET", self.health_path.as_bytes(), None) else {
            return false;
        };
        let _ = req.insert_header(http::header::HOST, m.target.host_value.clone());
        match &self.signer {
            Some(signer) => {
                if let Err(e) = signer.sign(&mut req, &[]).await {
                    warn!("health check of {}: {e}", m.label);
                    return false;
                }
            }
            None => {
                if let Some(a) = m.authorization() {
                    let _ = req.insert_header(http::header::AUTHORIZATION, a.clone());
                }
            }
        }
        if session.write_request_header(Box::new(req)).await.is_err()
            || session.finish_request_body().await.is_err()
            || session.read_response_header().await.is_err()
        {
            return false;
        }
        let ok = session
            .response_header()
            .is_some_and(|h| h.status.as_u16() < 500);
        while let Ok(Some(_)) = session.read_response_body().await {}
        ok
    }
}

fn chosen(m: &Arc<Member>) -> Chosen {
    Chosen {
        member: m.clone(),
        peer: Box::new(m.template.clone()),
    }
}

/// Background service running the active health checks of one pool.
pub struct HealthCheck {
    pool: Arc<Pool>,
    connector: Connector,
}

impl HealthCheck {
    /// A health checker for `pool`.
    pub fn new(pool: Arc<Pool>) -> HealthCheck {
        HealthCheck {
            pool,
            connector: Connector::new(None),
        }
    }
}

#[async_trait]
impl BackgroundService for HealthCheck {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.pool.check_all(&self.connector).await;
            tokio::select! {
                _ = tokio::time::sleep(self.pool.health_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Background service resolving one pool's host names every `esProxyDnsInterval`, and soon
/// after a member failed (at most once per `MIN_RESOLVE_GAP`).
pub struct Resolve {
    pool: Arc<Pool>,
}

impl Resolve {
    /// The resolver loop for `pool`.
    pub fn new(pool: Arc<Pool>) -> Resolve {
        Resolve { pool }
    }
}

#[async_trait]
impl BackgroundService for Resolve {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !self.pool.follows_dns() {
            return;
        }
        loop {
            let started = Instant::now();
            self.pool.refresh().await;
            tokio::select! {
                _ = tokio::time::sleep(self.pool.dns_interval) => {}
                _ = self.pool.resolve_now.notified() => {
                    tokio::time::sleep(MIN_RESOLVE_GAP.saturating_sub(started.elapsed())).await;
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Every address (A and AAAA) of a target's name, from the system resolver; an IP literal is
/// its own answer.
async fn lookup(t: &Target) -> Result<Vec<SocketAddr>, String> {
    if let Some(ip) = t.literal {
        return Ok(vec![SocketAddr::new(ip, t.url.port)]);
    }
    let found = tokio::time::timeout(
        RESOLVE_TIMEOUT,
        tokio::net::lookup_host((t.url.host.as_str(), t.url.port)),
    )
    .await
    .map_err(|_| format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()))?
    .map_err(|e| e.to_string())?;
    some_address(found)
}

/// [`lookup`] without a runtime, for start-up (nothing is served yet).
fn lookup_blocking(t: &Target) -> Result<Vec<SocketAddr>, String> {
    if let Some(ip) = t.literal {
        return Ok(vec![SocketAddr::new(ip, t.url.port)]);
    }
    let found = (t.url.host.as_str(), t.url.port)
        .to_socket_addrs()
        .map_err(|e| e.to_string())?;
    some_address(found)
}

/// A lookup's answer, or an error when it holds no address.
fn some_address(found: impl Iterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let addrs: Vec<SocketAddr> = found.collect();
    if addrs.is_empty() {
        return Err("no address".into());
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_url_without_host_is_refused_rather_than_unverified() {
        let up = upstream(vec![EsUrl {
            https: true,
            host: String::new(),
            port: 9200,
            authorization: None,
        }]);
        let e = Pool::new(&up, "es").err().expect("refused").to_string();
        assert!(e.contains("SNI"), "{e}");
    }

    fn upstream(urls: Vec<EsUrl>) -> Upstream {
        Upstream {
            urls,
            authorization: Some("ApiKey k".into()),
            tls: Default::default(),
            health: crate::config::HealthCheck {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                path: "/".into(),
            },
            sigv4: None,
            timeout: crate::config::DEFAULT_UPSTREAM_TIMEOUT,
            dns_interval: crate::config::DEFAULT_DNS_INTERVAL,
        }
    }

    fn url(host: &str, port: u16) -> EsUrl {
        EsUrl {
            https: false,
            host: host.into(),
            port,
            authorization: None,
        }
    }

    #[test]
    fn a_credential_that_cannot_be_a_header_value_is_refused_at_load() {
        let mut up = upstream(vec![url("127.0.0.1", 9201)]);
        up.authorization = Some("ApiKey k\nX-Injected: 1".into());
        let e = Pool::new(&up, "es").err().expect("refused").to_string();
        assert!(
            e.contains("Authorization") && e.contains("127.0.0.1:9201"),
            "{e}"
        );
        up.authorization = Some("ApiKey k".into());
        assert!(Pool::new(&up, "es").is_ok());
    }

    fn ids(pool: &Pool) -> Vec<u64> {
        pool.snapshot().iter().map(|m| m.id()).collect()
    }

    #[test]
    fn round_robin_skips_down_peers_and_excluded_ones() {
        let up = upstream(vec![
            url("127.0.0.1", 9201),
            url("127.0.0.1", 9202),
            url("127.0.0.1", 9203),
        ]);
        let pool = Pool::new(&up, "es").unwrap();
        assert!(pool.warnings().is_empty() && !pool.follows_dns());
        let pick = |ex: &[u64]| pool.select(ex).unwrap().member;
        let picks: Vec<u64> = (0..6).map(|_| pick(&[]).id()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let one = pool.snapshot()[1].clone();
        pool.mark_down(&one, "test");
        let picks: Vec<u64> = (0..4).map(|_| pick(&[]).id()).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_ne!(pick(&[0]).id(), 0);
        // Every peer down: still try one rather than fail outright.
        for m in pool.snapshot().iter() {
            pool.mark_down(m, "test");
        }
        assert!(pool.select(&[]).is_some());
        assert!(pool.select(&[0, 1, 2]).is_none());
        assert!(!pool.untried(&[0, 1, 2]) && pool.untried(&[0, 1]));
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Authorization", "Basic c2Vuc29yOnB3")
            .unwrap();
        pool.prepare_header(&pool.snapshot()[2], &mut req).unwrap();
        assert_eq!(req.headers.get("authorization").unwrap(), "ApiKey k");
        assert_eq!(req.headers.get("host").unwrap(), "127.0.0.1:9203");
    }

    /// A pool over one host name whose lookups are given by the test (no resolver involved).
    fn named_pool() -> Pool {
        let mut up = upstream(vec![url("127.0.0.1", 9200)]);
        up.urls[0].host = "es.test".into();
        up.urls[0].https = true;
        let mut pool = Pool::new_unresolved(&up, "es").unwrap();
        pool.warnings.clear();
        pool
    }

    fn at(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 9200)
    }

    #[test]
    fn every_address_is_a_member_that_keeps_its_identity_and_name() {
        let pool = named_pool();
        assert!(pool.is_empty() && pool.follows_dns());
        assert!(pool.select(&[]).is_none());
        pool.apply(&[Some(vec![at("127.0.0.3"), at("127.0.0.2"), at("::1")])]);
        assert_eq!(pool.len(), 3);
        assert_eq!(
            pool.members_per_name(),
            [("https://es.test:9200".into(), 3)]
        );
        let m = pool.snapshot()[0].clone();
        // TLS verifies and sends the name; Host is the name; the label shows the address.
        assert_eq!(m.peer().sni, "es.test");
        assert_eq!(m.host_header(), "es.test:9200");
        assert_eq!(m.name(), "https://es.test:9200");
        assert_eq!(m.label(), "https://es.test:9200 (127.0.0.2:9200)");
        pool.mark_down(&m, "test");
        let g = pool.generation();
        // Same answer in another order: no change, health kept.
        pool.apply(&[Some(vec![at("::1"), at("127.0.0.2"), at("127.0.0.3")])]);
        assert_eq!(pool.generation(), g);
        assert!(!pool.snapshot()[0].is_healthy());
        // A failed lookup keeps the members.
        pool.apply(&[None]);
        assert_eq!(pool.len(), 3);
        // The name moves: the old members are drained, the new one joins healthy, and a
        // request still holding a drained member keeps a valid one.
        let before = ids(&pool);
        pool.apply(&[Some(vec![at("127.0.0.4")])]);
        assert!(pool.generation() > g);
        let after = ids(&pool);
        assert_eq!(after.len(), 1);
        assert!(!before.contains(&after[0]));
        assert!(pool.snapshot()[0].is_healthy());
        assert_eq!(m.addr(), at("127.0.0.2"));
        assert_eq!(pool.select(&before).unwrap().member.addr(), at("127.0.0.4"));
    }

    #[test]
    fn io_timeout_reaches_every_member_and_every_later_one() {
        let mut pool = Pool::new(&upstream(vec![url("127.0.0.1", 9201)]), "tee").unwrap();
        let t = Duration::from_secs(7);
        pool.set_io_timeout(t);
        let m = pool.snapshot()[0].clone();
        assert_eq!(m.id(), 0);
        assert_eq!(m.peer().options.read_timeout, Some(t));
        assert_eq!(m.peer().options.write_timeout, Some(t));
        let mut pool = named_pool();
        pool.set_io_timeout(t);
        pool.apply(&[Some(vec![at("127.0.0.2")])]);
        assert_eq!(pool.snapshot()[0].peer().options.read_timeout, Some(t));
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_member_that_joins() {
        let pool = Arc::new(named_pool());
        let deadline = Instant::now() + Duration::from_secs(30);
        let waiter = {
            let pool = pool.clone();
            tokio::spawn(async move { pool.select_or_wait(&[], deadline).await })
        };
        tokio::task::yield_now().await;
        pool.apply(&[Some(vec![at("127.0.0.2")])]);
        let got = waiter.await.unwrap().expect("a member");
        assert_eq!(got.member.addr(), at("127.0.0.2"));
        // Nothing left to try and nothing changes: gives up at the deadline.
        let id = got.member.id();
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(pool.select_or_wait(&[id], soon).await.is_none());
    }
}
