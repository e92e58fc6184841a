//! The Pingora glue: `impl ProxyHttp` calls the decision modules in data-path order and turns
//! a `Reject` into the response the sensor gets. No parsing and no policy of its own: each hook
//! below hands its decision to the module that owns it. The per-request state the hooks share
//! is in `proxy/ctx.rs`; the requests we send ourselves (a held bulk's replay, a SigV4 request)
//! and the answer to any other failure are in `proxy/sent_by_us.rs`.
//!
//! Phases, in the order Pingora runs them for one request:
//!
//! ```text
//! new_ctx                  the config snapshot and the start time (the replay budget's clock)
//! on_connection_reuse      the connection gate's ticket (connection); the head is parsed
//! request_filter           framing::check_head → client_ip → auth (with the connection's
//!                          memo) → allowlist::classify →
//!                          framing::HeadFacts::body_head → body_plan (small bodies:
//!                          body_read::small, SmallBody::check); a refusal is logged once and
//!                          answered here; admitted: Ticket::admitted (slot back, body idle
//!                          timeout), upstream_head::drop_name_case. SigV4:
//!                          forward_signed (body_read::whole_to_sign, Replayer::send_signed)
//!                          answers here
//! upstream_peer            upstream::Pool::select (skipping peers that failed to connect;
//!                          a bulk: Pool::select_or_wait, for a host name to resolve or move)
//! fail_to_connect          Pool::mark_down; retry::after_connect_failure
//! upstream_request_filter  canonical target; upstream_head::rewrite; Pool::prepare_header;
//!                          BodyFlow::start_attempt (replay hold, tee mirror)
//! request_body_filter      BodyFlow::feed per chunk (bulk validator, hold, tee)
//! upstream_response_filter latency metrics
//! response_filter          BodyFlow::pushed_back: ES back-pressure on a held bulk fails the
//!                          attempt so that fail_to_proxy replays it
//! error_while_proxy        a silent peer (replay::is_timeout): Pool::mark_down and
//!                          retry::after_timeout; else retry::after_proxy_error
//! fail_to_proxy            an idle body (connection) becomes a refusal; then replay
//!                          (body_read::rest_of_bulk, BodyFlow, Replayer; after a timeout only
//!                          what BodyFlow::after_timeout allows), else the refusal (reject),
//!                          else respond::failure (reject::Failure)
//! logging                  BodyFlow::finish (tee); metrics; logline::access
//! ```

mod ctx;
mod sent_by_us;

pub use ctx::{in_flight, Ctx, Snapshot};

use crate::allowlist;
use crate::auth;
use crate::body_flow::BodyFlow;
use crate::body_plan::{self, Plan};
use crate::body_read;
use crate::client_ip;
use crate::connection::{self, Ticket};
use crate::framing::{self, BodyHead};
use crate::logline;
use crate::metrics;
use crate::reject::Reject;
use crate::replay::{self, Replayer};
use crate::respond;
use crate::retry;
use crate::tee::Tee;
use crate::upstream::{Member, Pool};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

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

impl EsProxy {
    /// Runs every check that needs only the request head (and, for small inspected bodies, the
    /// buffered body). `Ok` means forward.
    async fn admit(&self, session: &mut Session, ctx: &mut Ctx) -> Result<(), Reject> {
        let snap = ctx.snap.clone();
        let facts = match session.as_downstream().as_http1() {
            Some(h1) => Some(framing::check_head(
                &h1.get_headers_raw_bytes(),
                &h1.req_header().headers,
                snap.policy.limits.max_header_bytes,
            )?),
            None => None,
        };
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip().to_canonical())
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let req = session.req_header();
        let client = client_ip::resolve_headers(&snap.xff, peer, &req.headers)?;
        ctx.client = Some(client);
        // A verified TLS client certificate (esProxyClientCA) can stand in for the password.
        let cert = crate::tls::client_cert(session).map(|c| c.names.as_slice());
        let memo = ctx.conn.as_ref().map(Ticket::auth_memo);
        let sensor =
            auth::authenticate_request_memo(&snap.sensors, &req.headers, client, cert, memo)?;
        ctx.sensor = Some(sensor.clone());

        let route = allowlist::classify_raw(&snap.policy, &sensor, &req.method, req.raw_path())?;
        let head = match facts {
            Some(f) => f.body_head()?,
            None => BodyHead::read(&req.headers)?,
        };
        ctx.has_body = head.has_body;
        match body_plan::plan(&snap.policy, &sensor, &route, &head)? {
            Plan::Stream => {}
            Plan::Bulk { validator, change } => {
                ctx.body = BodyFlow::bulk(validator, change, head.length)
            }
            Plan::Small(mut body) => {
                let keep = self.pool.signer().is_some();
                let limits = &snap.policy.limits;
                // Boxed, as every await below that most requests skip: Pingora moves this
                // hook's whole future per request, so a rare path must not make it large.
                ctx.small_body = Box::pin(body_read::small(
                    session,
                    &mut body,
                    limits,
                    head.expects_continue,
                    keep,
                ))
                .await?;
                body.check(&snap.policy, &sensor)?;
            }
        }
        if head.expects_continue && !matches!(route.body, allowlist::BodyRule::Json(_)) {
            // We drop `Expect` upstream, so the 100 is ours to send, and only once admitted.
            let _ = Box::pin(session.write_continue_response()).await;
        }
        ctx.route = Some(route);
        Ok(())
    }

    /// The upstream head for `member` (`None`: the first configured name, for a request the
    /// replayer sends and prepares again per member): the canonical target that was validated (never the
    /// raw one), only allowlisted sensor headers and our X-Forwarded-For, our credentials in
    /// place of the sensor's.
    fn upstream_head(
        &self,
        up: &mut RequestHeader,
        ctx: &Ctx,
        member: Option<&Member>,
    ) -> Result<()> {
        let Some(route) = ctx.route.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "no admitted route");
        };
        // The canonical target is mostly the one received, which Pingora's copy already
        // carries: rebuilding its Uri for the same bytes costs ~1.3k instructions (#16).
        if up.raw_path() != route.forward.as_bytes() {
            up.set_raw_path(route.forward.as_bytes())?;
        }
        crate::upstream_head::rewrite(up, ctx.client, ctx.body.change())?;
        match member {
            Some(m) => self.pool.prepare_header(m, up),
            None => self.pool.prepare_header_default(up),
        }
    }

    /// Member `m` failed (`why`, for the pool's log; `kind`, for the metrics): out of the pool
    /// until a health check brings it back, and not tried again by this request.
    fn peer_failed(&self, ctx: &mut Ctx, m: &Member, why: &str, kind: &'static str) {
        self.pool.mark_down(m, why);
        metrics::upstream_error(m.name(), kind);
        ctx.failed.push(m.id());
    }

    /// Refuses the request: counted and logged once, answered, and remembered (so that no
    /// later hook logs or answers it again). The status written, or 0.
    async fn refuse(&self, session: &mut Session, ctx: &mut Ctx, r: Reject) -> u16 {
        self.log_denial(session, ctx, &r);
        let code = respond::refusal(session, &r).await.unwrap_or(0);
        ctx.reject = Some(r);
        code
    }

    fn log_denial(&self, session: &Session, ctx: &Ctx, r: &Reject) {
        metrics::denial(ctx.sensor.as_deref(), r.label());
        logline::denial(ctx.sensor.as_deref(), ctx.client, session.req_header(), r);
    }
}

#[async_trait]
impl ProxyHttp for EsProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx::new(self.snapshot.load_full())
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut Ctx,
        conn: Box<dyn std::any::Any + Send + Sync>,
    ) {
        ctx.conn = Ticket::from_context(conn);
        if let Some(t) = &ctx.conn {
            // Pingora calls this right after parsing the head: its deadline is met.
            t.head_parsed();
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> Result<bool> {
        if let Err(r) = self.admit(session, ctx).await {
            self.log_denial(session, ctx, &r);
            Box::pin(respond::refusal(session, &r)).await?;
            ctx.reject = Some(r);
            return Ok(true);
        }
        if let Some(t) = &ctx.conn {
            t.admitted(session);
        }
        crate::upstream_head::drop_name_case(session.req_header_mut());
        // SigV4 hashes the body: it is sent whole, by us, not streamed by Pingora.
        if self.pool.signer().is_some() {
            return Box::pin(self.forward_signed(session, ctx)).await;
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        // A bulk waits (within its replay budget) for a name to resolve or move.
        let chosen = if ctx.body.is_bulk() {
            let deadline = replay::deadline(ctx.started);
            Box::pin(self.pool.select_or_wait(&ctx.failed, deadline)).await
        } else {
            self.pool.select(&ctx.failed)
        };
        match chosen {
            Some(chosen) => {
                ctx.peer = Some(chosen.member);
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
        if let Some(m) = ctx.peer.take() {
            self.peer_failed(ctx, &m, "connect failed", "connect");
        }
        let bulk_may_wait =
            ctx.body.is_bulk() && self.pool.follows_dns() && ctx.started.elapsed() < replay::BUDGET;
        retry::after_connect_failure(&mut e, self.pool.untried(&ctx.failed), bulk_may_wait);
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        let Some(member) = ctx.peer.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no peer");
        };
        self.upstream_head(up, ctx, Some(&member))?;
        ctx.body
            .start_attempt(up, &self.replayer, self.tee.as_ref(), ctx.has_body);
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
        if ctx.body.pushed_back(resp.status.as_u16(), ctx.started) {
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
        if replay::is_timeout(&e) {
            // The node went silent: out of the pool at once (a health check brings it back).
            ctx.timed_out = true;
            if let Some(m) = ctx.peer.clone() {
                self.peer_failed(ctx, &m, "went silent", "timeout");
            }
            let method = &session.req_header().method;
            let attempt = retry::AfterTimeout {
                resend: ctx.reject.is_none()
                    && session.response_written().is_none()
                    && ctx
                        .body
                        .pingora_resends_after_timeout(method, ctx.route.as_ref()),
                body_truncated: session.as_ref().retry_buffer_truncated(),
                peer_left: self.pool.untried(&ctx.failed),
                budget_left: ctx.started.elapsed() < replay::BUDGET,
            };
            if retry::after_timeout(&mut e, &attempt) {
                metrics::timeout_resend("read");
            }
            return e;
        }
        let attempt = retry::Attempt {
            never: ctx.body.is_bulk() || ctx.reject.is_some(),
            body_truncated: session.as_ref().retry_buffer_truncated(),
            client_reused,
            idempotent: session.req_header().method.is_idempotent(),
        };
        retry::after_proxy_error(&mut e, &attempt);
        e
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> Result<()> {
        if let Some(m) = &ctx.peer {
            ctx.obs.upstream_responded(m.name(), m.latency_series());
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
        ctx.last_body = Instant::now();
        match ctx
            .body
            .feed(ctx.sensor.as_deref(), body.take(), end_of_stream)
        {
            Ok(out) => {
                *body = out;
                Ok(())
            }
            Err(r) => {
                self.log_denial(session, ctx, &r);
                let status = r.response().status;
                ctx.reject = Some(r);
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
            respond::refusal(session, &r).await.unwrap_or(0)
        } else {
            self.respond_failure(session, e, ctx).await
        };
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &Ctx, _error: &Error) -> bool {
        // Our own refusals are already logged once, with their reason; a replayed bulk by the
        // replayer.
        ctx.reject.is_some() || ctx.body.was_replayed()
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        // A mirror that did not get the end of the body is cut off, never completed.
        ctx.body.finish();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        metrics::request_finished(&metrics::Finished {
            sensor: ctx.sensor.as_deref(),
            method: &session.req_header().method,
            route: ctx.route.as_ref().map(|r| r.class.label()),
            status,
            received: session.body_bytes_read(),
            sent: session.body_bytes_sent(),
            upstream_sent: session.upstream_body_bytes_sent(),
        });
        if ctx.snap.access_log {
            let route = ctx.route.as_ref().map(|r| r.class.label());
            let req = session.req_header();
            logline::access(ctx.sensor.as_deref(), ctx.client, req, status, route, e);
        }
    }
}
