//! Prometheus metrics: what esproxy counts and how it is served. Owns the metric names, their
//! labels and the rule that keeps every label bounded (only configured sensor names, fixed
//! method/route/reason sets, configured peers). It records; it never decides anything about a
//! request, and nothing here can fail or slow one.
//!
//! Everything is recorded whether or not the metrics listener is configured
//! (`esProxyMetricsPort`); [`service`] only serves the registry, on its own listener, at
//! `/metrics` (and `/healthz` for liveness probes).

use crate::bulk::BulkStats;
use crate::proxy::Snapshot;
use crate::tee::Tee;
use crate::upstream::Pool;
use arc_swap::{ArcSwap, ArcSwapOption};
use async_trait::async_trait;
use http::Method;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The label used for every sensor name that is not configured (and for unauthenticated
/// requests), so an attacker cannot create label values.
pub const UNKNOWN_SENSOR: &str = "unknown";

/// Every collector, in one registry of our own (never the process-wide default one, so a
/// dependency's metrics cannot collide with ours).
struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    in_flight: IntGauge,
    denials: IntCounterVec,
    received_bytes: IntCounterVec,
    sent_bytes: IntCounterVec,
    upstream_sent_bytes: IntCounter,
    bulk_requests: IntCounterVec,
    bulk_docs: IntCounterVec,
    bulk_gzip: IntCounterVec,
    upstream_latency: HistogramVec,
    upstream_errors: IntCounterVec,
    timeout_resends: IntCounterVec,
    upstream_healthy: IntGaugeVec,
    upstream_members: IntGaugeVec,
    resolve_failures: IntCounterVec,
    tee_healthy: IntGaugeVec,
    tee_mirrored: IntCounter,
    tee_dropped: IntCounterVec,
    reloads: IntCounterVec,
    reload_timestamp: IntGauge,
    restart_required: IntGauge,
    sensors: IntGauge,
    connections_open: IntGauge,
    connections_unauthenticated: IntGauge,
    connections_refused: IntCounterVec,
    connections_evicted: IntCounter,
    tls_handshake_failures: IntCounter,
    connection_deadlines: IntCounterVec,
    sigv4_refreshes: IntCounterVec,
    sigv4_unsigned: IntCounterVec,
    sigv4_expiry: IntGaugeVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The proxy's running per-request settings (the same snapshot, not a copy): the sensors
/// configured there are the only sensor label values besides [`UNKNOWN_SENSOR`].
static SNAPSHOT: ArcSwapOption<ArcSwap<Snapshot>> = ArcSwapOption::const_empty();

fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    // Only a duplicate name can fail here: a programming error caught by the unit tests.
    r.register(Box::new(c.clone()))
        .expect("metric names are unique");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    register(r, c)
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let latency_buckets =
            exponential_buckets(0.001, 2.0, 18).expect("valid buckets (1 ms … 131 s)");
        Metrics {
            requests: counter_vec(
                &r,
                "esproxy_requests_total",
                "Requests answered, by sensor, method, route class and status",
                &["sensor", "method", "route", "status"],
            ),
            in_flight: register(
                &r,
                IntGauge::new(
                    "esproxy_requests_in_flight",
                    "Requests being handled now",
                )
                .expect("valid metric"),
            ),
            denials: counter_vec(
                &r,
                "esproxy_denials_total",
                "Requests refused by esproxy, by sensor (unknown before authentication) and reason",
                &["sensor", "reason"],
            ),
            received_bytes: counter_vec(
                &r,
                "esproxy_received_bytes_total",
                "Request body bytes received from sensors (as sent, compressed or not)",
                &["sensor"],
            ),
            sent_bytes: counter_vec(
                &r,
                "esproxy_sent_bytes_total",
                "Response body bytes sent to sensors",
                &["sensor"],
            ),
            upstream_sent_bytes: register(
                &r,
                IntCounter::new(
                    "esproxy_upstream_sent_bytes_total",
                    "Request body bytes forwarded to Elasticsearch",
                )
                .expect("valid metric"),
            ),
            bulk_requests: counter_vec(
                &r,
                "esproxy_bulk_requests_total",
                "_bulk requests whose body was read to the end (accepted) or cut at a bad line (rejected)",
                &["sensor", "result"],
            ),
            bulk_docs: counter_vec(
                &r,
                "esproxy_bulk_documents_total",
                "Bulk documents: accepted = forwarded in a bulk that passed; rejected = every \
                 document of a bulk that was cut (the bad one included)",
                &["sensor", "result"],
            ),
            bulk_gzip: counter_vec(
                &r,
                "esproxy_bulk_gzip_total",
                "Gzip bulks by inflater: whole = held and inflated by libdeflate, fallback = held \
                 then streamed through zlib-ng, streamed = zlib-ng as it arrived",
                &["path"],
            ),
            upstream_latency: register(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "esproxy_upstream_response_seconds",
                        "Time from choosing an Elasticsearch peer to its response header \
                         (includes streaming the request body)",
                    )
                    .buckets(latency_buckets),
                    &["peer"],
                )
                .expect("valid metric"),
            ),
            upstream_errors: counter_vec(
                &r,
                "esproxy_upstream_errors_total",
                "Failed exchanges with an Elasticsearch peer, by kind (connect, timeout = \
                 silent for esProxyUpstreamTimeout, proxy = any other)",
                &["peer", "kind"],
            ),
            timeout_resends: counter_vec(
                &r,
                "esproxy_upstream_timeout_resends_total",
                "Requests sent again to another peer because one went silent: bulk = a held \
                 bulk whose actions all name an _id, read = a GET or allowed search",
                &["request"],
            ),
            upstream_healthy: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "esproxy_upstream_healthy",
                        "1 when the peer passes its health checks, else 0",
                    ),
                    &["peer"],
                )
                .expect("valid metric"),
            ),
            upstream_members: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "esproxy_upstream_members",
                        "Addresses a configured ES name resolves to now (each is a pool member), \
                         by cluster (es, tee) and name",
                    ),
                    &["cluster", "name"],
                )
                .expect("valid metric"),
            ),
            resolve_failures: counter_vec(
                &r,
                "esproxy_upstream_resolve_failures_total",
                "Lookups of a configured ES host name that failed (its last addresses are kept)",
                &["cluster", "name"],
            ),
            tee_healthy: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "esproxy_tee_healthy",
                        "1 when the tee peer passes its health checks, else 0",
                    ),
                    &["peer"],
                )
                .expect("valid metric"),
            ),
            tee_mirrored: register(
                &r,
                IntCounter::new(
                    "esproxy_tee_mirrored_total",
                    "Requests mirrored completely to the tee cluster",
                )
                .expect("valid metric"),
            ),
            tee_dropped: counter_vec(
                &r,
                "esproxy_tee_dropped_total",
                "Requests whose mirror was dropped, by reason",
                &["reason"],
            ),
            reloads: counter_vec(
                &r,
                "esproxy_config_reloads_total",
                "Configuration reloads (SIGHUP), by result (ok, error)",
                &["result"],
            ),
            reload_timestamp: register(
                &r,
                IntGauge::new(
                    "esproxy_config_last_reload_success_timestamp_seconds",
                    "Unix time the running per-request settings were loaded",
                )
                .expect("valid metric"),
            ),
            restart_required: register(
                &r,
                IntGauge::new(
                    "esproxy_config_restart_required",
                    "1 when the config file changes settings that only a restart applies",
                )
                .expect("valid metric"),
            ),
            sensors: register(
                &r,
                IntGauge::new("esproxy_sensors", "Configured sensors").expect("valid metric"),
            ),
            connections_open: register(
                &r,
                IntGauge::new(
                    "esproxy_connections_open",
                    "Sensor listener connections open now",
                )
                .expect("valid metric"),
            ),
            connections_unauthenticated: register(
                &r,
                IntGauge::new(
                    "esproxy_connections_unauthenticated",
                    "Open connections with no authenticated request yet",
                )
                .expect("valid metric"),
            ),
            connections_refused: counter_vec(
                &r,
                "esproxy_connections_refused_total",
                "Connections closed at once because a cap was reached, by cap (max_connections, \
                 per_client, unauthenticated)",
                &["cap"],
            ),
            connections_evicted: register(
                &r,
                IntCounter::new(
                    "esproxy_connections_evicted_total",
                    "Unauthenticated connections closed to make room for a newer one",
                )
                .expect("valid metric"),
            ),
            tls_handshake_failures: register(
                &r,
                IntCounter::new(
                    "esproxy_tls_handshake_failures_total",
                    "TLS handshakes on the sensor listener that failed (not timed out)",
                )
                .expect("valid metric"),
            ),
            connection_deadlines: counter_vec(
                &r,
                "esproxy_connection_deadlines_total",
                "Connections or requests ended by a deadline (first_byte, tls_handshake, head, \
                 keepalive_idle, body_idle)",
                &["deadline"],
            ),
            sigv4_refreshes: counter_vec(
                &r,
                "esproxy_sigv4_key_refreshes_total",
                "SigV4 key fetches, by cluster (es, tee) and result (ok, error)",
                &["cluster", "result"],
            ),
            sigv4_unsigned: counter_vec(
                &r,
                "esproxy_sigv4_unsigned_total",
                "Requests not sent because no unexpired SigV4 keys were available, by cluster",
                &["cluster"],
            ),
            sigv4_expiry: register(
                &r,
                IntGaugeVec::new(
                    prometheus::Opts::new(
                        "esproxy_sigv4_keys_expiry_timestamp_seconds",
                        "Unix time the cached SigV4 keys expire (0: no expiry), by cluster",
                    ),
                    &["cluster"],
                )
                .expect("valid metric"),
            ),
            registry: r,
        }
    }
}

/// Labels sensors by the names configured in `snapshot` (the proxy's, swapped on reload), at
/// start-up.
pub fn watch_snapshot(snapshot: Arc<ArcSwap<Snapshot>>) {
    SNAPSHOT.store(Some(snapshot));
}

/// Records a configuration of `sensors` sensors taking effect (at start-up and after each
/// successful reload). Names dropped by a reload keep the series they already have; new
/// requests can no longer use them.
pub fn config_loaded(sensors: usize) {
    METRICS.sensors.set(sensors as i64);
    METRICS.reload_timestamp.set(unix_now());
}

/// The sensor label for `name`: the name when it is configured, else [`UNKNOWN_SENSOR`].
pub fn sensor_label(name: Option<&str>) -> &str {
    match name {
        Some(n)
            if SNAPSHOT
                .load()
                .as_ref()
                .is_some_and(|s| s.load().sensors.get(n).is_some()) =>
        {
            n
        }
        _ => UNKNOWN_SENSOR,
    }
}

fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// The status label, written into `buf` (no allocation: this runs once per request).
fn status_label(status: u16, buf: &mut [u8; 3]) -> &str {
    if (100..600).contains(&status) {
        *buf = [
            b'0' + (status / 100) as u8,
            b'0' + (status / 10 % 10) as u8,
            b'0' + (status % 10) as u8,
        ];
        std::str::from_utf8(buf).unwrap_or("none")
    } else {
        // 0: nothing was written (the sensor went away, or the response could not be sent).
        "none"
    }
}

/// One finished request, as `logging` sees it.
pub struct Finished<'a> {
    /// The authenticated sensor (None when refused before authentication).
    pub sensor: Option<&'a str>,
    /// Request method.
    pub method: &'a Method,
    /// `RouteClass::label`, None when refused before classification.
    pub route: Option<&'static str>,
    /// Status sent to the sensor (0: none).
    pub status: u16,
    /// Request body bytes read from the sensor.
    pub received: usize,
    /// Response body bytes sent to the sensor.
    pub sent: usize,
    /// Request body bytes forwarded upstream, if the request went upstream.
    pub upstream_sent: Option<usize>,
}

/// One configured sensor's labelled per-request series, looked up on its first request and
/// kept with the sensor set they belong to (a reload builds a new set, so new ones), so a known
/// sensor's request does not hash its labels again (issue #16). Bounded like the labels: one per
/// configured sensor, and in it one per method label, route label and status label seen.
#[derive(Default)]
pub struct SensorSeries {
    /// `esproxy_request_body_bytes_total` and `esproxy_response_body_bytes_total`.
    bytes: OnceLock<(IntCounter, IntCounter)>,
    /// `esproxy_requests_total`, by (method label, route label, status or 0 for "none").
    requests: Mutex<Vec<(RequestKey, IntCounter)>>,
}

/// One configured upstream URL's `esproxy_upstream_response_seconds` series, looked up on its
/// first answer and kept with the URL's pool entry, so an answer does not hash its label again
/// (issue #16). One per configured URL, like the label.
#[derive(Default)]
pub struct PeerSeries(OnceLock<Histogram>);

impl std::fmt::Debug for PeerSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerSeries")
    }
}

/// The labels of `esproxy_requests_total` besides the sensor: method, route, status (0: "none").
type RequestKey = (&'static str, &'static str, u16);

impl std::fmt::Debug for SensorSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SensorSeries")
    }
}

/// Records one finished request (called once per request, from `logging`).
pub fn request_finished(f: &Finished) {
    let m = &*METRICS;
    let snap = SNAPSHOT.load();
    let current = snap.as_ref().map(|s| s.load());
    let known = f
        .sensor
        .and_then(|n| Some((n, current.as_ref()?.sensors.series(n)?)));
    let Some((name, series)) = known else {
        return request_finished_by_labels(f, UNKNOWN_SENSOR);
    };
    let (received, sent) = series.bytes.get_or_init(|| {
        (
            m.received_bytes.with_label_values(&[name]),
            m.sent_bytes.with_label_values(&[name]),
        )
    });
    received.inc_by(f.received as u64);
    sent.inc_by(f.sent as u64);
    let method = method_label(f.method);
    let route = f.route.unwrap_or("none");
    let status = if (100..600).contains(&f.status) {
        f.status
    } else {
        0
    };
    let mut requests = series.requests.lock().unwrap_or_else(|p| p.into_inner());
    match requests.iter().find(|(k, _)| *k == (method, route, status)) {
        Some((_, c)) => c.inc(),
        None => {
            let c = m.requests.with_label_values(&[
                name,
                method,
                route,
                status_label(status, &mut [0; 3]),
            ]);
            c.inc();
            requests.push(((method, route, status), c));
        }
    }
    drop(requests);
    if let Some(n) = f.upstream_sent {
        m.upstream_sent_bytes.inc_by(n as u64);
    }
}

/// [`request_finished`] for a request without a configured sensor: every label looked up.
fn request_finished_by_labels(f: &Finished, sensor: &str) {
    let m = &*METRICS;
    m.requests
        .with_label_values(&[
            sensor,
            method_label(f.method),
            f.route.unwrap_or("none"),
            status_label(f.status, &mut [0; 3]),
        ])
        .inc();
    m.received_bytes
        .with_label_values(&[sensor])
        .inc_by(f.received as u64);
    m.sent_bytes
        .with_label_values(&[sensor])
        .inc_by(f.sent as u64);
    if let Some(n) = f.upstream_sent {
        m.upstream_sent_bytes.inc_by(n as u64);
    }
}

/// Records one refusal by its `Reject::label`, for the authenticated sensor if any.
pub fn denial(sensor: Option<&str>, reason: &'static str) {
    let s = sensor_label(sensor);
    METRICS.denials.with_label_values(&[s, reason]).inc();
}

/// Records a `_bulk` body that was validated to its end.
pub fn bulk_accepted(sensor: Option<&str>, stats: &BulkStats) {
    let s = sensor_label(sensor);
    bulk_gzip(stats);
    METRICS
        .bulk_requests
        .with_label_values(&[s, "accepted"])
        .inc();
    METRICS
        .bulk_docs
        .with_label_values(&[s, "accepted"])
        .inc_by(stats.docs);
}

/// Counts which inflater a gzip bulk read to its end went through.
fn bulk_gzip(stats: &BulkStats) {
    if let Some(path) = stats.inflate.label() {
        METRICS.bulk_gzip.with_label_values(&[path]).inc();
    }
}

/// Records a `_bulk` body cut at a bad line: its documents so far and the bad one are rejected.
pub fn bulk_rejected(sensor: Option<&str>, stats: &BulkStats) {
    let s = sensor_label(sensor);
    bulk_gzip(stats);
    METRICS
        .bulk_requests
        .with_label_values(&[s, "rejected"])
        .inc();
    METRICS
        .bulk_docs
        .with_label_values(&[s, "rejected"])
        .inc_by(stats.docs + 1);
}

/// Counts a request sent again after a peer went silent; `request` is `bulk` or `read`.
pub fn timeout_resend(request: &'static str) {
    METRICS.timeout_resends.with_label_values(&[request]).inc();
}

/// Records a failed exchange with `peer` (`Pool::name`); `kind` is `connect`, `timeout` or
/// `proxy`.
pub fn upstream_error(peer: &str, kind: &'static str) {
    METRICS
        .upstream_errors
        .with_label_values(&[peer, kind])
        .inc();
}

/// Moves the open-connections gauge by `delta`.
pub fn connections_open(delta: i64) {
    METRICS.connections_open.add(delta);
}

/// Moves the unauthenticated-connections gauge by `delta`.
pub fn connections_unauthenticated(delta: i64) {
    METRICS.connections_unauthenticated.add(delta);
}

/// Counts a connection refused by the cap `cap` (a `connection::caps::Refusal` label).
pub fn connection_refused(cap: &'static str) {
    METRICS.connections_refused.with_label_values(&[cap]).inc();
}

/// Counts an unauthenticated connection evicted for a newer one.
pub fn connection_evicted() {
    METRICS.connections_evicted.inc();
}

/// Counts a failed TLS handshake on the sensor listener.
pub fn tls_handshake_failed() {
    METRICS.tls_handshake_failures.inc();
}

/// Counts a connection or request ended by the deadline `which` (fixed set).
pub fn connection_deadline(which: &'static str) {
    METRICS
        .connection_deadlines
        .with_label_values(&[which])
        .inc();
}

/// Records the result of a configuration reload.
pub fn config_reload(ok: bool) {
    METRICS
        .reloads
        .with_label_values(&[if ok { "ok" } else { "error" }])
        .inc();
}

/// Whether the file on disk asks for changes that only a restart applies.
pub fn restart_required(yes: bool) {
    METRICS.restart_required.set(i64::from(yes));
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Per-request measurements, kept in the proxy's `Ctx`.
#[derive(Debug, Default)]
pub struct RequestObs {
    upstream_start: Option<Instant>,
}

impl RequestObs {
    /// For a new request.
    pub fn start() -> RequestObs {
        RequestObs::default()
    }

    /// A peer was chosen for an attempt (the latency clock starts).
    pub fn upstream_started(&mut self) {
        self.upstream_start = Some(Instant::now());
    }

    /// The response header of `peer` (the URL label; `series`, its kept series) arrived:
    /// records the latency once per attempt.
    pub fn upstream_responded(&mut self, peer: &str, series: &PeerSeries) {
        if let Some(t) = self.upstream_start.take() {
            series
                .0
                .get_or_init(|| METRICS.upstream_latency.with_label_values(&[peer]))
                .observe(t.elapsed().as_secs_f64());
        }
    }
}

/// One gauge per current member: drained members disappear (the label set stays that of the
/// pool as resolved now).
fn set_health(gauge: &IntGaugeVec, pool: &Pool) {
    gauge.reset();
    for m in pool.snapshot().iter() {
        gauge
            .with_label_values(&[m.label()])
            .set(i64::from(m.is_healthy()));
    }
}

/// Resolved members and failed lookups per configured name.
fn export_resolution(m: &Metrics, pool: &Pool) {
    let c = pool.cluster();
    for (name, n) in pool.members_per_name() {
        m.upstream_members
            .with_label_values(&[c, &name])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    for (name, n) in pool.resolve_failures() {
        raise(&m.resolve_failures.with_label_values(&[c, &name]), n);
    }
}

/// Raises a counter to `to` (never lowers it): counts kept elsewhere (the tee's) are exported at
/// scrape time.
fn raise(c: &IntCounter, to: u64) {
    let now = c.get();
    if to > now {
        c.inc_by(to - now);
    }
}

fn export_tee(m: &Metrics, tee: &Tee) {
    set_health(&m.tee_healthy, &tee.pool());
    let s = &tee.stats;
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    raise(&m.tee_mirrored, get(&s.completed));
    for (reason, n) in [
        ("unhealthy", get(&s.dropped_down)),
        ("busy", get(&s.dropped_busy)),
        ("full", get(&s.dropped_full)),
        ("error", get(&s.failed)),
        ("cut", get(&s.aborted)),
    ] {
        raise(&m.tee_dropped.with_label_values(&[reason]), n);
    }
}

fn export_sigv4(m: &Metrics, pool: &Pool) {
    let Some(signer) = pool.signer() else { return };
    let keys = signer.keys();
    let (c, s) = (keys.cluster(), &keys.stats);
    let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    raise(
        &m.sigv4_refreshes.with_label_values(&[c, "ok"]),
        get(&s.refreshed),
    );
    raise(
        &m.sigv4_refreshes.with_label_values(&[c, "error"]),
        get(&s.refresh_failures),
    );
    raise(&m.sigv4_unsigned.with_label_values(&[c]), get(&s.unsigned));
    m.sigv4_expiry
        .with_label_values(&[c])
        .set(i64::try_from(get(&s.expires_unix)).unwrap_or(i64::MAX));
}

/// The text exposition of every metric (peer health, tee and SigV4 key counts refreshed first).
pub fn render(pool: Option<&Pool>, tee: Option<&Tee>) -> Vec<u8> {
    let m = &*METRICS;
    // The count is the proxy's; metrics only read it.
    m.in_flight.set(crate::proxy::in_flight() as i64);
    if let Some(pool) = pool {
        set_health(&m.upstream_healthy, pool);
        export_resolution(m, pool);
        export_sigv4(m, pool);
    }
    if let Some(tee) = tee {
        export_tee(m, tee);
        export_resolution(m, &tee.pool());
        export_sigv4(m, &tee.pool());
    }
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed metrics; an empty page is the fallback.
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    out
}

/// The HTTP app of the metrics listener.
pub struct MetricsApp {
    pool: Arc<Pool>,
    tee: Option<Arc<Tee>>,
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, ctype, body) = match path.as_str() {
            "/metrics" => (
                200,
                prometheus::TEXT_FORMAT,
                render(Some(&self.pool), self.tee.as_deref()),
            ),
            "/healthz" => (200, "text/plain", b"ok\n".to_vec()),
            _ => (404, "text/plain", b"see /metrics\n".to_vec()),
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, ctype)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .unwrap_or_default()
    }
}

/// The metrics listener: a Pingora service serving `/metrics` and `/healthz` on `addr`;
/// `pool` and `tee` are the clusters whose peer health (and mirror counts) it shows.
pub fn service(
    addr: SocketAddr,
    pool: Arc<Pool>,
    tee: Option<Arc<Tee>>,
) -> Service<HttpServer<MetricsApp>> {
    let mut svc = Service::new(
        "esproxy metrics".to_string(),
        HttpServer::new_app(MetricsApp { pool, tee }),
    );
    svc.add_tcp(&addr.to_string());
    svc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text() -> String {
        String::from_utf8(render(None, None)).unwrap()
    }

    /// A sensor set of one configured sensor, `toronto01`.
    fn toronto01_only() -> Arc<ArcSwap<Snapshot>> {
        let ini = "[default]\nelasticsearch=http://127.0.0.1:9200\n\
                   [esproxy-sensors]\ntoronto01=pass:x;ip:192.0.2.1\n";
        let (cfg, _) =
            crate::config::Config::from_str(ini, std::path::Path::new("t.ini"), None).unwrap();
        Arc::new(ArcSwap::from_pointee(crate::reload::snapshot(&cfg)))
    }

    #[test]
    fn every_metric_registers_without_a_name_clash() {
        let _ = &*METRICS;
        assert!(text().contains("esproxy_requests_in_flight"));
    }

    #[test]
    fn unconfigured_sensor_names_share_one_label() {
        watch_snapshot(toronto01_only());
        assert_eq!(sensor_label(Some("toronto01")), "toronto01");
        assert_eq!(sensor_label(Some("attacker-made-this-up")), UNKNOWN_SENSOR);
        assert_eq!(sensor_label(None), UNKNOWN_SENSOR);
    }

    #[test]
    fn a_known_sensor_counts_through_its_kept_series() {
        let snap = toronto01_only();
        watch_snapshot(snap.clone());
        let finish = |status| {
            request_finished(&Finished {
                sensor: Some("toronto01"),
                method: &Method::GET,
                route: Some("kept-series-test"),
                status,
                received: 3,
                sent: 4,
                upstream_sent: None,
            })
        };
        for status in [200, 200, 0, 700] {
            finish(status);
        }
        let t = text();
        let count = |status: &str| {
            t.lines()
                .find(|l| {
                    l.starts_with("esproxy_requests_total{")
                        && l.contains(r#"route="kept-series-test""#)
                        && l.contains(r#"sensor="toronto01""#)
                        && l.contains(&format!(r#"status="{status}""#))
                })
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        };
        assert_eq!(count("200"), Some(2), "{t}");
        assert_eq!(count("none"), Some(2), "{t}");
        // Statuses outside 100..600 share the one "none" entry: the kept list stays bounded.
        let kept = snap.load();
        let series = kept.sensors.series("toronto01").unwrap();
        let entries = series.requests.lock().unwrap();
        let ours = entries.iter().filter(|(k, _)| k.1 == "kept-series-test");
        assert_eq!(ours.count(), 2);
    }

    #[test]
    fn a_peer_answer_counts_in_its_kept_series_once_per_attempt() {
        let series = PeerSeries::default();
        let peer = "http://kept-series-test:9200";
        for _ in 0..3 {
            let mut obs = RequestObs::start();
            obs.upstream_started();
            obs.upstream_responded(peer, &series);
            // A second answer for the same attempt is not counted again.
            obs.upstream_responded(peer, &series);
        }
        // Answers before any attempt started are not counted either.
        RequestObs::start().upstream_responded(peer, &series);
        let t = text();
        let count = t
            .lines()
            .find(|l| {
                l.starts_with("esproxy_upstream_response_seconds_count{")
                    && l.contains(&format!(r#"peer="{peer}""#))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert_eq!(count, Some(3), "{t}");
    }

    #[test]
    fn methods_and_statuses_map_to_bounded_labels() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        let mut buf = [0; 3];
        assert_eq!(status_label(0, &mut buf), "none");
        assert_eq!(status_label(99, &mut buf), "none");
        assert_eq!(status_label(600, &mut buf), "none");
        assert_eq!(status_label(100, &mut buf), "100");
        assert_eq!(status_label(401, &mut buf), "401");
        assert_eq!(status_label(599, &mut buf), "599");
    }

    #[test]
    fn raise_never_lowers_and_never_double_counts() {
        let c = IntCounter::new("t", "t").unwrap();
        c.inc_by(5);
        raise(&c, 3);
        assert_eq!(c.get(), 5);
        raise(&c, 8);
        assert_eq!(c.get(), 8);
    }

    #[test]
    fn rejected_bulk_counts_the_bad_document_too() {
        let stats = BulkStats {
            docs: 3,
            ..BulkStats::default()
        };
        bulk_rejected(Some("no-such-sensor-for-this-test"), &stats);
        let t = text();
        assert!(
            t.contains(r#"esproxy_bulk_documents_total{result="rejected",sensor="unknown"}"#),
            "{t}"
        );
    }
}
