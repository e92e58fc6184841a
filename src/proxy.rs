//! The Pingora glue: `impl ProxyHttp` calls the decision modules in data-path order
//! (client_ip → auth → allowlist → upstream → header rewrite → bulk validator per chunk) and turns
//! a `Reject` into the response the sensor gets. No parsing and no policy of its own.

use crate::allowlist::{self, BodyRule, Route};
use crate::auth::{self, Sensors};
use crate::bulk::{BodyEncoding, BulkValidator};
use crate::client_ip::{self, XffConfig};
use crate::framing;
use crate::metrics;
use crate::policy::Policy;
use crate::reject::Reject;
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
                ctx.inflated_bulk = matches!(encoding, Encoding::Gzip);
                ctx.validator = Some(BulkValidator::new(&snap.policy, &sensor, enc));
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
                    Encoding::Gzip => gunzip_small(&raw, limits.max_small_body)?,
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

    /// Logs a refusal once, with who, from where, what and why.
    fn log_denial(&self, session: &Session, ctx: &Ctx, r: &Reject) {
        metrics::denial(r.label());
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

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        ctx.snap = Some(self.snapshot.load_full());
        match self.admit(session, ctx).await {
            Ok(()) => Ok(false),
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
        _session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let route = ctx.route.as_ref().expect("admitted request has a route");
        let idx = ctx.peer.expect("peer chosen");
        // The canonical target that was validated, never the raw one.
        up.set_raw_path(route.forward.as_bytes())?;
        // The sensor's credentials never go upstream; ours replace them.
        up.remove_header(&http::header::AUTHORIZATION);
        up.remove_header(&http::header::PROXY_AUTHORIZATION);
        if let Some(a) = self.pool.authorization(idx) {
            up.insert_header(http::header::AUTHORIZATION, a)?;
        }
        up.insert_header(http::header::HOST, self.pool.host_header(idx))?;
        // Our own X-Forwarded-For, never the raw one.
        if let Some(snap) = &ctx.snap {
            up.remove_header(snap.xff.header_name());
        }
        up.remove_header("X-Forwarded-For");
        if let Some(ip) = ctx.client {
            up.insert_header("X-Forwarded-For", ip.to_string())?;
        }
        up.remove_header(&http::header::EXPECT);
        if ctx.inflated_bulk {
            // We forward the inflated, validated lines: the size changes, so chunked framing.
            up.remove_header(&http::header::CONTENT_ENCODING);
            up.remove_header(&http::header::CONTENT_LENGTH);
        }
        Ok(())
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
                Ok(())
            }
            Err(r) => {
                metrics::bulk_rejected(ctx.sensor.as_deref(), v.stats());
                self.log_denial(session, ctx, &r);
                let status = r.response().status;
                ctx.reject = Some(r);
                ctx.validator = None;
                Error::e_explain(ErrorType::HTTPStatus(status), "request body refused")
            }
        }
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = if session.response_written().is_some() {
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
        // Our own refusals are already logged once, with their reason.
        ctx.reject.is_some()
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
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

/// Inflates a small gzip body (one member, bounded output) for inspection only; the original
/// compressed bytes are what goes upstream.
fn gunzip_small(raw: &[u8], limit: usize) -> Result<Vec<u8>, Reject> {
    use std::io::Read;
    let mut d = flate2::bufread::GzDecoder::new(raw);
    let mut out = Vec::new();
    (&mut d)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Reject::BadEncoding(format!("gzip: {e}")))?;
    if out.len() > limit {
        return Err(Reject::TooLarge(format!(
            "inflated body over esProxyMaxSmallBody {limit}"
        )));
    }
    // The decoder stops at the member's end (CRC and length checked); nothing may follow it.
    if !d.into_inner().is_empty() {
        return Err(Reject::BadEncoding(
            "gzip: data after the end of the member".into(),
        ));
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

    #[test]
    fn gunzip_small_round_trips_and_refuses_trailing_garbage() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"{\"a\":1}").unwrap();
        let mut gz = e.finish().unwrap();
        assert_eq!(gunzip_small(&gz, 1024).unwrap(), b"{\"a\":1}");
        gz.push(0);
        assert!(gunzip_small(&gz, 1024).is_err());
    }

    #[test]
    fn gunzip_small_refuses_truncated_and_oversized() {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&[b' '; 10_000]).unwrap();
        let gz = e.finish().unwrap();
        assert!(matches!(gunzip_small(&gz, 100), Err(Reject::TooLarge(_))));
        assert!(gunzip_small(&gz[..gz.len() - 4], 100_000).is_err());
    }
}
