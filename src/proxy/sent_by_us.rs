//! The requests the proxy sends itself rather than through Pingora, and the answer to a
//! failure: a held bulk replayed after its attempt failed (`fail_to_proxy`), a SigV4 request
//! held whole and signed for each attempt (`request_filter`), and [`respond::failure`] for
//! anything else that went wrong. Glue like the hooks: the decisions are `body_read`'s,
//! `body_flow`'s, `replay`'s and `reject`'s.

use super::{Ctx, EsProxy};
use crate::body_read::{self, Rest};
use crate::connection::{self, Ticket};
use crate::logline;
use crate::metrics;
use crate::reject::{Failure, Reject};
use crate::replay::{self, AfterTimeout};
use crate::respond;
use pingora::prelude::*;
use pingora::proxy::Session;

impl EsProxy {
    /// Re-sends a bulk whose attempt failed (ES back-pressure, or the connection to ES broke)
    /// from its held, validated body. `Some(status)` when an answer was written to the sensor.
    pub(super) async fn replay_bulk(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Ctx,
    ) -> Option<u16> {
        if ctx.reject.is_some() || !ctx.body.replays_after(e) {
            return None;
        }
        let deadline = replay::deadline(ctx.started);
        let idle = ctx.conn.as_ref().map(Ticket::body_idle);
        let sensor = ctx.sensor.clone();
        let rest = body_read::rest_of_bulk;
        match rest(
            session,
            &mut ctx.body,
            sensor.as_deref(),
            &mut ctx.last_body,
            idle,
            deadline,
        )
        .await
        {
            Rest::Complete => {}
            Rest::Unheld => return None,
            Rest::Idle => {
                // The same 408 as when Pingora's own body read times out.
                connection::body_idle_passed(ctx.sensor.as_deref(), ctx.client);
                ctx.body.refused();
                let r = Reject::BodyTimeout(
                    "no body byte within esProxyBodyIdleTimeout (replay)".into(),
                );
                ctx.reject = Some(r.clone());
                return Some(respond::refusal(session, &r).await.unwrap_or(0));
            }
            Rest::Refused(r) => return Some(self.refuse(session, ctx, r).await),
        }
        let method = &session.req_header().method;
        let resend = |ctx: &Ctx| {
            let route = ctx.route.as_ref();
            route.is_some_and(|r| ctx.body.after_timeout(method, r) == AfterTimeout::Resend)
        };
        if ctx.timed_out {
            if !resend(ctx) {
                return None;
            }
            metrics::timeout_resend("bulk");
        }
        let resend_after_timeout = resend(ctx);
        let (head, held) = ctx.body.replayable()?;
        let answer = self
            .replayer
            .run(
                head,
                held,
                ctx.peer.as_ref().map(|m| m.id()),
                deadline,
                resend_after_timeout,
            )
            .await?;
        ctx.body.mark_replayed();
        Some(respond::replayed(session, answer).await)
    }

    /// A request to a SigV4 cluster: its whole body is read, validated, mirrored and held
    /// (`body_read::whole_to_sign`), then the replayer sends it, signed for each attempt, and
    /// ES's answer is relayed. Always answered here (`Ok(true)`).
    pub(super) async fn forward_signed(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> Result<bool> {
        let mut up = session.req_header().clone();
        self.upstream_head(&mut up, ctx, None)?;
        ctx.body.start_mirror(&up, self.tee.as_ref(), ctx.has_body);
        let max = self.pool.signer().map_or(0, |s| s.max_body());
        let deadline = replay::deadline(ctx.started);
        let small = std::mem::take(&mut ctx.small_body);
        let declared = ctx.body.upstream_len_at_least(&up);
        let sensor = ctx.sensor.clone();
        let whole = body_read::whole_to_sign;
        let held = match whole(
            session,
            &mut ctx.body,
            sensor.as_deref(),
            small,
            ctx.has_body,
            declared,
            max,
            deadline,
        )
        .await?
        {
            Ok(held) => held,
            Err(r) => {
                self.log_denial(session, ctx, &r);
                respond::refusal(session, &r).await?;
                ctx.reject = Some(r);
                return Ok(true);
            }
        };
        let resend_after_timeout = ctx.route.as_ref().is_some_and(|r| {
            let method = &session.req_header().method;
            ctx.body.after_timeout_of(method, r, &held) == AfterTimeout::Resend
        });
        let sent = self
            .replayer
            .send_signed(&up, &held, deadline, resend_after_timeout);
        match sent.await {
            Some(a) => {
                respond::replayed(session, a).await;
            }
            None => {
                let why = format_args!("no answer to a signed request");
                logline::upstream("error", ctx.sensor.as_deref(), session.req_header(), why);
                respond::bad_gateway(session).await;
            }
        }
        Ok(true)
    }

    /// Answers a failure that is not one of our refusals.
    pub(super) async fn respond_failure(&self, session: &mut Session, e: &Error, ctx: &Ctx) -> u16 {
        let failure = Failure::of(e);
        if let (Failure::UpstreamBroke, Some(m)) = (&failure, &ctx.peer) {
            metrics::upstream_error(m.name(), "proxy");
        }
        let method = &session.req_header().method;
        let why = ctx.body.not_resent_because(method, ctx.route.as_ref());
        respond::failure(session, e, failure, ctx.sensor.as_deref(), why).await
    }
}
