//! The Pingora glue: `impl ProxyHttp` calls the decision modules in data-path order
//! (client_ip → auth → allowlist → upstream → header rewrite → bulk validator per chunk) and turns
//! a `Reject` into the response the sensor gets. No parsing and no policy of its own.

use crate::allowlist::{self, BodyRule, Route};
use crate::auth::{self, Sensors};
use crate::bulk::gzip::Inflater;
use crate::bulk::{BodyEncoding, BulkValidator};
use crate::client_ip::{self, XffConfig};
use crate::connection::{self, Ticket};
use crate::framing;
use crate::metrics;
use crate::policy::{Limits, Policy};
use crate::reject::Reject;
use crate::replay::{self, Held, Replayer};
use crate::tee::{Slot as TeeSlot, Tee};
use crate::upstream::Pool;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use log::{info, warn};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

/// The part of the configuration every request reads, swapped atomically on reload: a request
/// keeps the snapshot it started with.
pub struct Snapshot {
    /// Prefix, strictness, limits.
    pub policy: Policy,
    /// Known sensors.
    pub sensors: Sensors,
    /// Forwarding-header trust.
    pub xff: XffConfig,
    /// Log every request, not only denials.
    pub access_log: bool,
}

/// The proxy application.
pub struct EsProxy {
    /// Current per-request settings.
    pub snapshot: Arc<ArcSwap<Snapshot>>,
    /// The ES peers.
    pub pool: Arc<Pool>,
    /// The `[tee]` mirror, if configured.
    pub tee: Option<Arc<Tee>>,
    /// Re-sends held bulks ES refused with 429/503 or lost (src/replay.rs).
    pub replayer: Arc<Replayer>,
}

/// Per-request state.
#[derive(Default)]
pub struct Ctx {
    snap: Option<Arc<Snapshot>>,
    client: Option<IpAddr>,
    sensor: Option<String>,
    route: Option<Route>,
    /// Set for a gzip `_bulk`: we forward the inflated, validated bytes.
    inflated_bulk: bool,
    validator: Option<BulkValidator>,
    /// The refusal that ended this request, if any (logged once, answered by `fail_to_proxy`).
    reject: Option<Reject>,
    /// Peer used by the current attempt and peers that failed to connect.
    peer: Option<usize>,
    failed: Vec<usize>,
    /// In-flight count and upstream latency clock (metrics only).
    obs: metrics::RequestObs,
    /// When the request arrived (the replay budget counts from here).
    started: Option<Instant>,
    /// This request's mirror to the tee.
    tee: TeeSlot,
    /// A bulk's validated body, held for replay, and its upstream header as first sent.
    held: Option<Held>,
    upstream_head: Option<RequestHeader>,
    /// ES answered a held bulk with 429/503: `fail_to_proxy` replays it.
    backpressure: bool,
    /// The failed attempt was made good by a replay (logged by the replayer, not as an error).
    replayed: bool,
    /// The connection gate's ticket (src/connection/): told when the request authenticated.
    conn: Option<Ticket>,
}

const PROXY_ERROR_502: &[u8] = br#"{"error":"esproxy: no Elasticsearch node could be reached"}"#;

impl EsProxy {
    /// Runs every check that needs only the request head (and, for small inspected bodies, the
    /// buffered body). `Ok` means forward.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> Result<(), Reject> {
        let snap = ctx.snap.clone().expect("snapshot set");
        if let Some(h1) = session.as_downstream().as_http1() {
            framing::check_head(
                &h1.get_headers_raw_bytes(),
                snap.policy.limits.max_header_bytes,
            )?;
        }
        let req = session.req_header();

        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_canonical())
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let xff_lines: Vec<&[u8]> = if snap.xff.enabled() {
            req.headers
                .get_all(snap.xff.header_name())
                .iter()
                .map(|v| v.as_bytes())
                .collect()
        } else {
            Vec::new()
        };
        let client = client_ip::resolve(&snap.xff, peer, &xff_lines)?;
        ctx.client = Some(client);

        let creds: Vec<&[u8]> = req
            .headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        // A verified TLS client certificate (esProxyClientCA) can stand in for the password.
        let cert = crate::tls::client_cert(session).map(|c| c.names.as_slice());
        let sensor = auth::authenticate_with_cert(&snap.sensors, &creds, client, cert)?;
        ctx.sensor = Some(sensor.clone());

        let target = std::str::from_utf8(req.raw_path())
            .map_err(|_| Reject::BadPath("request target is not UTF-8".into()))?;
        let route = allowlist::classify(&snap.policy, &sensor, &req.method, target)?;

        let has_body = request_has_body(req);
        let expects_continue = req
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let content_length = content_length(req);
        let encoding = content_encoding(req)?;
        let limits = &snap.policy.limits;

        match &route.body {
            BodyRule::Empty => {
                if snap.policy.strict && has_body {
                    return Err(Reject::BadBody("a body on a route that takes none".into()));
                }
            }
            BodyRule::Unchecked => {}
            BodyRule::Bulk => {
                if content_length.is_some_and(|n| n > limits.max_body) {
                    return Err(Reject::TooLarge(format!(
                        "Content-Length {} over esProxyMaxBody {}",
                        content_length.unwrap_or(0),
                        limits.max_body
                    )));
                }
                let enc = match encoding {
                    Encoding::Identity => BodyEncoding::Identity,
                    Encoding::Gzip => BodyEncoding::Gzip,
                };
                let validator = BulkValidator::new(&snap.policy, &sensor, enc);
                // A gzip bulk of known, modest size (capture's are a few hundred KB) goes
                // upstream as it came, once all of it checked out: a sixth of the bytes to
                // forward. Others stream their validated lines inflated.
                let hold_max = GZIP_STORE_AND_FORWARD_MAX.min(limits.max_line as u64 / 2);
                let store_and_forward =
                    enc == BodyEncoding::Gzip && content_length.is_some_and(|n| n <= hold_max);
                ctx.inflated_bulk = enc == BodyEncoding::Gzip && !store_and_forward;
                ctx.validator = Some(if store_and_forward {
                    validator.forward_original()
                } else {
                    validator
                });
            }
            BodyRule::Json(rule) => {
                if content_length.is_some_and(|n| n > limits.max_small_body as u64) {
                    return Err(Reject::TooLarge(format!(
                        "Content-Length {} over esProxyMaxSmallBody {}",
                        content_length.unwrap_or(0),
                        limits.max_small_body
                    )));
                }
                if expects_continue {
                    let _ = session.write_continue_response().await;
                }
                let raw = read_small_body(session, limits.max_small_body).await?;
                let body = match encoding {
                    Encoding::Identity => raw,
                    Encoding::Gzip => gunzip_small(&raw, limits)?,
                };
                allowlist::check_body(&snap.policy, &sensor, rule, &body)?;
            }
        }
        if expects_continue && !matches!(route.body, BodyRule::Json(_)) {
            // We drop `Expect` upstream, so the 100 is ours to send, and only once admitted.
            let _ = session.write_continue_response().await;
        }
        ctx.route = Some(route);
        Ok(())
    }

    /// A new upstream attempt: bulks start holding their validated body (for replay) and keep
    /// the header as sent; the tee mirror starts once, with this header.
    fn start_attempt(&self, session: &Session, up: &RequestHeader, ctx: &mut Ctx) {
        if is_bulk(ctx) {
            match ctx.held.as_mut() {
                Some(h) => h.reset(),
                None => ctx.held = self.replayer.hold(content_length(up)),
            }
            ctx.upstream_head = Some(up.clone());
        }
        ctx.tee.new_attempt();
        if let (Some(tee), true) = (&self.tee, ctx.tee.is_idle()) {
            ctx.tee = tee.start(up, request_has_body(session.req_header()));
        }
    }

    /// Re-sends a bulk whose attempt failed (ES back-pressure, or the connection to ES broke)
    /// from its held, validated body. `Some(status)` when an answer was written to the sensor.
    async fn replay_bulk(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> Option<u16> {
        let upstream_broke = matches!(e.esource(), ErrorSource::Upstream)
            && !matches!(e.etype(), ErrorType::HTTPStatus(_));
        if !(ctx.backpressure || upstream_broke) || ctx.reject.is_some() {
            return None;
        }
        let head = ctx.upstream_head.clone()?;
        let deadline = ctx.started.unwrap_or_else(Instant::now) + replay::BUDGET;
        // The rest of the body the sensor is still sending: validate and hold it too.
        while !ctx.held.as_ref()?.is_complete() {
            if !ctx.held.as_ref()?.is_holding() {
                return None;
            }
            let read = tokio::time::timeout_at(deadline.into(), session.read_request_body());
            let chunk = read.await.ok()?.ok()?;
            let eos = chunk.is_none() || session.is_body_done();
            let out = match ctx.validator.as_mut() {
                None => chunk,
                Some(v) => match v.feed(chunk.unwrap_or_default(), eos) {
                    Ok(out) => Some(out),
                    Err(r) => {
                        self.log_denial(session, ctx, &r);
                        ctx.tee.abort();
                        ctx.held = None;
                        ctx.validator = None;
                        let code = self.respond_reject(session, &r).await.unwrap_or(0);
                        ctx.reject = Some(r);
                        return Some(code);
                    }
                },
            };
            after_validation(ctx, out.as_ref(), eos);
        }
        let held = ctx.held.as_ref()?;
        let answer = self.replayer.run(&head, held, ctx.peer, deadline).await?;
        ctx.replayed = true;
        Some(respond_answer(session, answer).await)
    }

    /// Logs a refusal once, with who, from where, what and why.
    fn log_denial(&self, session: &Session, ctx: &Ctx, r: &Reject) {
        metrics::denial(ctx.sensor.as_deref(), r.label());
        let req = session.req_header();
        warn!(
            "denied sensor={} ip={} method={} path={} reason={} detail={}",
            sanitize(ctx.sensor.as_deref().unwrap_or("-").as_bytes()),
            ctx.client.map_or("-".to_string(), |ip| ip.to_string()),
            req.method,
            sanitize(req.raw_path()),
            r.label(),
            sanitize(r.to_string().as_bytes()),
        );
    }

    /// Writes the refusal response (never carrying Elasticsearch's headers).
    async fn respond_reject(&self, session: &mut Session, r: &Reject) -> Result<u16> {
        let resp = r.response();
        let mut h = ResponseHeader::build(resp.status, Some(4))?;
        if resp.www_authenticate {
            h.insert_header("WWW-Authenticate", "Basic")?;
        }
        h.insert_header("Content-Type", "text/plain; charset=utf-8")?;
        h.insert_header("Content-Length", resp.body.len().to_string())?;
        // Never drain a possibly huge refused body to reuse the connection: close it.
        session.set_keepalive(None);
        session.write_response_header(Box::new(h), false).await?;
        session
            .write_response_body(Some(Bytes::from_static(resp.body)), true)
            .await?;
        Ok(resp.status)
    }
}

#[async_trait]
impl ProxyHttp for EsProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            obs: metrics::RequestObs::start(),
            ..Ctx::default()
        }
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
        conn: Box<dyn std::any::Any + Send + Sync>,
    ) {
        ctx.conn = Ticket::from_context(conn);
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.started = Some(Instant::now());
        ctx.snap = Some(self.snapshot.load_full());
        match self.admit(session, ctx).await {
            Ok(()) => {
                // Authenticated: the connection leaves the unauthenticated caps, and its body
                // may idle only so long (a read timeout ends the request and cuts upstream).
                if let Some(t) = &ctx.conn {
                    t.authenticated();
                    session.set_read_timeout(Some(t.body_idle()));
                }
                Ok(false)
            }
            Err(r) => {
                self.log_denial(session, ctx, &r);
                self.respond_reject(session, &r).await?;
                ctx.reject = Some(r);
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        match self.pool.select(&ctx.failed) {
            Some(chosen) => {
                ctx.peer = Some(chosen.index);
                ctx.obs.upstream_started();
                Ok(chosen.peer)
            }
            None => Error::e_explain(
                ErrorType::ConnectNoRoute,
                "no Elasticsearch peer left to try",
            ),
        }
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(i) = ctx.peer.take() {
            self.pool.mark_down(i);
            metrics::upstream_error(self.pool.name(i), "connect");
            ctx.failed.push(i);
        }
        // Nothing of the request has been sent yet, so another peer is always safe to try.
        if ctx.failed.len() < self.pool.len() {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let route = ctx.route.as_ref().expect("admitted request has a route");
        let idx = ctx.peer.expect("peer chosen");
        // The canonical target that was validated, never the raw one.
        up.set_raw_path(route.forward.as_bytes())?;
        // Only allowlisted headers of the sensor's, and our X-Forwarded-For.
        crate::upstream_head::rewrite(up, ctx.client, ctx.inflated_bulk)?;
        // The sensor's credentials never go upstream; ours replace them.
        self.pool.prepare_header(idx, up)?;
        self.start_attempt(session, up, ctx);
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        // ES back-pressure on a bulk we hold (the rest of its body is read and held by
        // `fail_to_proxy`): re-send it ourselves rather than hand the sensor a status it would
        // drop the bulk on.
        if Replayer::is_backpressure(resp.status.as_u16())
            && !ctx.backpressure
            && ctx.held.as_ref().is_some_and(Held::is_holding)
            && ctx
                .started
                .is_some_and(|t| t.elapsed() + replay::MIN_LEFT < replay::BUDGET)
        {
            ctx.backpressure = true;
            return Error::e_explain(
                ErrorType::Custom("es back-pressure"),
                "Elasticsearch answered 429/503 to a held bulk",
            );
        }
        Ok(())
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut Ctx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        // Pingora never re-sends a bulk (its retry buffer keeps only 64 KiB of raw body, and the
        // validator would run twice): `fail_to_proxy` replays it from the held body. Anything
        // else is re-sent only when the failure proves ES never took it (ReusedOnly: a pooled
        // keep-alive connection ES had closed, no byte of answer) and the whole body is in the
        // retry buffer.
        if is_bulk(ctx) || ctx.reject.is_some() || session.as_ref().retry_buffer_truncated() {
            e.set_retry(false);
        } else if matches!(e.retry, RetryType::ReusedOnly) {
            e.retry.decide_reuse(client_reused);
        } else if !session.req_header().method.is_idempotent() {
            // Any other failure may have reached ES: never re-send a write.
            e.set_retry(false);
        }
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(i) = ctx.peer {
            ctx.obs.upstream_responded(self.pool.name(i));
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(v) = ctx.validator.as_mut() else {
            after_validation(ctx, body.as_ref(), end_of_stream);
            return Ok(());
        };
        let chunk = body.take().unwrap_or_default();
        match v.feed(chunk, end_of_stream) {
            Ok(out) => {
                // `None` before the end would tell Pingora the body is over; an empty chunk at
                // the end would write a second chunked terminator.
                *body = match (out.is_empty(), end_of_stream) {
                    (true, true) => None,
                    (true, false) => Some(Bytes::new()),
                    (false, _) => Some(out),
                };
                if end_of_stream {
                    metrics::bulk_accepted(ctx.sensor.as_deref(), v.stats());
                }
                after_validation(ctx, body.as_ref(), end_of_stream);
                Ok(())
            }
            Err(r) => {
                metrics::bulk_rejected(ctx.sensor.as_deref(), v.stats());
                self.log_denial(session, ctx, &r);
                let status = r.response().status;
                ctx.reject = Some(r);
                ctx.validator = None;
                ctx.tee.abort();
                ctx.held = None;
                Error::e_explain(ErrorType::HTTPStatus(status), "request body refused")
            }
        }
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        if ctx.reject.is_none()
            && connection::body_idle_timed_out(e, ctx.sensor.as_deref(), ctx.client)
        {
            ctx.reject = Some(Reject::BodyTimeout(e.to_string()));
        }
        let replayed = if session.response_written().is_none() {
            self.replay_bulk(session, e, ctx).await
        } else {
            None
        };
        let code = if let Some(code) = replayed {
            code
        } else if session.response_written().is_some() {
            0
        } else if let Some(r) = ctx.reject.clone() {
            self.respond_reject(session, &r).await.unwrap_or(0)
        } else {
            match e.etype() {
                ErrorType::HTTPStatus(c) => {
                    let _ = session.respond_error(*c).await;
                    *c
                }
                _ => match e.esource() {
                    ErrorSource::Upstream => {
                        if let Some(i) = ctx.peer {
                            metrics::upstream_error(self.pool.name(i), "proxy");
                        }
                        warn!(
                            "upstream error sensor={} path={}: {}",
                            ctx.sensor.as_deref().unwrap_or("-"),
                            sanitize(session.req_header().raw_path()),
                            e
                        );
                        respond_502(session).await
                    }
                    ErrorSource::Downstream => match e.etype() {
                        ErrorType::WriteError
                        | ErrorType::ReadError
                        | ErrorType::ConnectionClosed => 0,
                        _ => {
                            let _ = session.respond_error(400).await;
                            400
                        }
                    },
                    _ => {
                        if matches!(e.etype(), ErrorType::ConnectNoRoute) {
                            warn!("no Elasticsearch peer reachable: {e}");
                            respond_502(session).await
                        } else {
                            let _ = session.respond_error(500).await;
                            500
                        }
                    }
                },
            }
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _error: &Error) -> bool {
        // Our own refusals are already logged once, with their reason; a replayed bulk by the
        // replayer.
        ctx.reject.is_some() || ctx.replayed
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // A mirror that did not get the end of the body is cut off, never completed.
        ctx.tee.finish();
        metrics::request_finished(&metrics::Finished {
            sensor: ctx.sensor.as_deref(),
            method: &session.req_header().method,
            route: ctx.route.as_ref().map(|r| r.class.label()),
            status: session.response_written().map_or(0, |r| r.status.as_u16()),
            received: session.body_bytes_read(),
            sent: session.body_bytes_sent(),
            upstream_sent: session.upstream_body_bytes_sent(),
        });
        let Some(snap) = &ctx.snap else { return };
        if !snap.access_log {
            return;
        }
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        info!(
            "access sensor={} ip={} method={} path={} status={} route={}{}",
            sanitize(ctx.sensor.as_deref().unwrap_or("-").as_bytes()),
            ctx.client.map_or("-".to_string(), |ip| ip.to_string()),
            session.req_header().method,
            sanitize(session.req_header().raw_path()),
            status,
            ctx.route.as_ref().map_or("-", |r| r.class.label()),
            e.map_or(String::new(), |e| format!(" error={:?}", e.etype())),
        );
    }
}

fn is_bulk(ctx: &Ctx) -> bool {
    ctx.route
        .as_ref()
        .is_some_and(|r| matches!(r.body, BodyRule::Bulk))
}

/// Validated bytes (or a body that needs no validation) go to the replay hold and the tee.
fn after_validation(ctx: &mut Ctx, out: Option<&Bytes>, eos: bool) {
    if let Some(h) = ctx.held.as_mut() {
        if let Some(b) = out {
            h.push(b);
        }
        if eos {
            h.finish();
        }
    }
    ctx.tee.feed(out, eos);
}

/// Relays ES's answer to a replayed bulk (buffered whole, so framed by length).
async fn respond_answer(session: &mut Session, a: replay::Answer) -> u16 {
    let status = a.header.status.as_u16();
    let write = async {
        let mut h = a.header;
        for name in [
            http::header::TRANSFER_ENCODING,
            http::header::CONNECTION,
            http::header::CONTENT_LENGTH,
        ] {
            h.remove_header(&name);
        }
        h.remove_header("Keep-Alive");
        h.insert_header(http::header::CONTENT_LENGTH, a.body.len().to_string())?;
        session.set_keepalive(None);
        session.write_response_header(Box::new(h), false).await?;
        session.write_response_body(Some(a.body), true).await
    };
    match write.await {
        Ok(()) => status,
        Err(_) => 0,
    }
}

async fn respond_502(session: &mut Session) -> u16 {
    let write = async {
        let mut h = ResponseHeader::build(502, Some(3))?;
        h.insert_header("Content-Type", "application/json")?;
        h.insert_header("Content-Length", PROXY_ERROR_502.len().to_string())?;
        session.set_keepalive(None);
        session.write_response_header(Box::new(h), false).await?;
        session
            .write_response_body(Some(Bytes::from_static(PROXY_ERROR_502)), true)
            .await
    };
    match write.await {
        Ok(()) => 502,
        Err(_) => 0,
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Identity,
    Gzip,
}

/// `Content-Encoding`: none or exactly `gzip` (SPEC §5).
fn content_encoding(req: &RequestHeader) -> Result<Encoding, Reject> {
    let mut values = req.headers.get_all(http::header::CONTENT_ENCODING).iter();
    let enc = match (values.next(), values.next()) {
        (None, _) => Encoding::Identity,
        (Some(v), None) => {
            let v = v.as_bytes().trim_ascii();
            if v.eq_ignore_ascii_case(b"gzip") {
                Encoding::Gzip
            } else if v.eq_ignore_ascii_case(b"identity") {
                Encoding::Identity
            } else {
                return Err(Reject::BadEncoding(sanitize(v)));
            }
        }
        _ => {
            return Err(Reject::BadEncoding(
                "several Content-Encoding headers".into(),
            ))
        }
    };
    Ok(enc)
}

fn content_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
        .and_then(|s| s.trim().parse().ok())
}

/// Gzip bulks up to this Content-Length (and up to half of `esProxyMaxLine`) are held whole
/// (compressed) and forwarded unchanged once every inflated line checked out: such a request
/// holds at most this on top of what any bulk holds (one unfinished line).
const GZIP_STORE_AND_FORWARD_MAX: u64 = 4 * 1024 * 1024;

fn request_has_body(req: &RequestHeader) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || content_length(req).unwrap_or(0) > 0
}

/// Reads a small body whole, keeping Pingora's retry buffer so it is replayed upstream.
async fn read_small_body(session: &mut Session, limit: usize) -> Result<Vec<u8>, Reject> {
    session.enable_retry_buffering();
    let mut buf = BytesMut::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if buf.len() + chunk.len() > limit {
                    return Err(Reject::TooLarge(format!(
                        "body over esProxyMaxSmallBody {limit}"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Err(Reject::BadBody(format!("reading body: {e}"))),
        }
    }
    Ok(buf.to_vec())
}

/// Inflates a small gzip body (one member, output bounded by `esProxyMaxSmallBody`) for
/// inspection only; the original compressed bytes are what goes upstream.
fn gunzip_small(raw: &[u8], limits: &Limits) -> Result<Vec<u8>, Reject> {
    let small = Limits {
        max_inflated: limits.max_small_body as u64,
        max_chunk_inflated: limits.max_small_body,
        ..limits.clone()
    };
    let mut inflater = Inflater::new();
    let mut out = Vec::new();
    inflater.inflate(raw, &mut out, &small)?;
    if !inflater.finished() {
        return Err(Reject::BadEncoding("gzip: truncated".into()));
    }
    Ok(out)
}

/// Makes attacker-controlled text safe for one log line: control characters and non-ASCII
/// escaped, long values cut.
pub fn sanitize(raw: &[u8]) -> String {
    const MAX: usize = 256;
    let mut s = String::with_capacity(raw.len().min(MAX) + 8);
    for (i, &b) in raw.iter().enumerate() {
        if i >= MAX {
            s.push('…');
            break;
        }
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_escapes_control_characters_and_cuts() {
        assert_eq!(sanitize(b"a\nb\x1b"), "a\\x0ab\\x1b");
        assert!(sanitize(&[b'a'; 1000]).len() < 300);
    }

    fn small_limits(max_small_body: usize) -> Limits {
        Limits {
            max_small_body,
            ..Limits::default()
        }
    }

    #[test]
    fn gunzip_small_round_trips_and_refuses_trailing_garbage() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"{\"a\":1}").unwrap();
        let mut gz = e.finish().unwrap();
        let limits = small_limits(1024);
        assert_eq!(gunzip_small(&gz, &limits).unwrap(), b"{\"a\":1}");
        gz.push(0);
        assert!(gunzip_small(&gz, &limits).is_err());
    }

    #[test]
    fn gunzip_small_refuses_truncated_and_oversized() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&[b' '; 10_000]).unwrap();
        let gz = e.finish().unwrap();
        assert!(matches!(
            gunzip_small(&gz, &small_limits(1024)),
            Err(Reject::TooLarge(_))
        ));
        assert!(gunzip_small(&gz[..gz.len() - 4], &small_limits(65536)).is_err());
    }
}
