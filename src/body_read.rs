//! Reading a request body ourselves, outside Pingora's streaming: one decision, *how long and
//! how much* we wait for a body that must be whole before anything (more) goes upstream.
//!
//! - [`small`]: a body the allowlist inspects whole (`body_plan::SmallBody`), bounded by
//!   `esProxyMaxSmallBody` as it arrives; Pingora's retry buffer keeps it for the upstream write.
//! - [`rest_of_bulk`]: the part of a held bulk the sensor is still sending while a replay waits
//!   for it, through [`BodyFlow`] (validated and held like the rest); it ends at
//!   `esProxyBodyIdleTimeout` after the last byte (the same 408 as Pingora's own body read) or
//!   at the replay budget's deadline.
//! - [`whole_to_sign`]: a SigV4 request's body, held whole because the signature covers its
//!   hash, bounded by `esProxySigV4MaxBody` (413 above) and by the replay budget.
//!
//! What the bytes mean is decided elsewhere (`body_plan`, `bulk` through `body_flow`); which
//! refusal becomes which answer is `reject`'s.

use crate::body_flow::BodyFlow;
use crate::body_plan::SmallBody;
use crate::policy::Limits;
use crate::reject::Reject;
use crate::replay::{Held, HoldBudget};
use bytes::Bytes;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};
use std::time::{Duration, Instant};

/// Reads a small inspected body whole into `body` (refused past the limit). `keep`: the chunks
/// are also returned as received (a signed request sends them itself); else an empty list.
pub async fn small(
    session: &mut Session,
    body: &mut SmallBody,
    limits: &Limits,
    expects_continue: bool,
    keep: bool,
) -> Result<Vec<Bytes>, Reject> {
    if expects_continue {
        let _ = session.write_continue_response().await;
    }
    // Pingora's retry buffer keeps the body, so it is what goes upstream.
    session.enable_retry_buffering();
    let mut kept = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                body.push(&chunk, limits)?;
                if keep {
                    kept.push(chunk);
                }
                // Known complete (its Content-Length read): another read would only answer
                // `None`, through a timer of its own.
                if session.is_body_done() {
                    return Ok(kept);
                }
            }
            Ok(None) => return Ok(kept),
            Err(e) => return Err(Reject::BadBody(format!("reading body: {e}"))),
        }
    }
}

/// How reading the rest of a held bulk ended.
pub enum Rest {
    /// The whole body is held: the replay may go ahead.
    Complete,
    /// Not replayable: the body is not held (too large), the sensor went away, or the deadline
    /// passed.
    Unheld,
    /// No byte within `esProxyBodyIdleTimeout` of the last one.
    Idle,
    /// A chunk was refused (already counted and the hold dropped by [`BodyFlow::feed`]).
    Refused(Reject),
}

/// Reads what is left of a held bulk's body into `flow`. `last_body` is when the sensor last
/// sent body bytes (updated here); `body_idle` is the connection's `esProxyBodyIdleTimeout`
/// (none without the connection gate).
pub async fn rest_of_bulk(
    session: &mut Session,
    flow: &mut BodyFlow,
    sensor: Option<&str>,
    last_body: &mut Instant,
    body_idle: Option<Duration>,
    deadline: Instant,
) -> Rest {
    loop {
        match flow.awaits_more() {
            None => return Rest::Unheld,
            Some(false) => return Rest::Complete,
            Some(true) => {}
        }
        let idle_at = body_idle.map(|d| *last_body + d);
        let until = idle_at.map_or(deadline, |i| i.min(deadline));
        let read = tokio::time::timeout_at(until.into(), session.read_request_body()).await;
        let chunk = match read {
            Ok(Ok(chunk)) => chunk,
            Err(_) if idle_at.is_some_and(|i| i <= deadline) => return Rest::Idle,
            Ok(Err(e)) if crate::connection::is_body_idle(&e) => return Rest::Idle,
            _ => return Rest::Unheld,
        };
        *last_body = Instant::now();
        let eos = chunk.is_none() || session.is_body_done();
        if let Err(r) = flow.feed(sensor, chunk, eos) {
            return Rest::Refused(r);
        }
    }
}

/// Reads a signed request's whole body through `flow` (validated, mirrored) into a hold of at
/// most `max` bytes. `small`: a small body already read by [`small`] (checked then); `declared`:
/// the fewest bytes that go upstream (`BodyFlow::upstream_len_at_least`). `Ok(Err(_))`: refused (the flow is marked refused);
/// `Err(_)`: the body could not be read by `deadline`.
#[allow(clippy::too_many_arguments)]
pub async fn whole_to_sign(
    session: &mut Session,
    flow: &mut BodyFlow,
    sensor: Option<&str>,
    small: Vec<Bytes>,
    has_body: bool,
    declared: Option<u64>,
    max: usize,
    deadline: Instant,
) -> pingora::Result<Result<Held, Reject>> {
    let mut held = Held::new(HoldBudget::new(usize::MAX), max);
    let too_large = || Reject::TooLarge(format!("body over esProxySigV4MaxBody {max}"));
    let mut refused = None;
    if !small.is_empty() {
        let n = small.len();
        for (i, c) in small.into_iter().enumerate() {
            if let Ok(Some(out)) = flow.feed(sensor, Some(c), i + 1 == n) {
                held.push(&out);
            }
        }
    } else if !has_body {
        let _ = flow.feed(sensor, None, true);
    } else if declared.is_some_and(|n| n > max as u64) {
        refused = Some(too_large());
    } else {
        loop {
            let read = tokio::time::timeout_at(deadline.into(), session.read_request_body());
            let Ok(Ok(chunk)) = read.await else {
                flow.refused();
                return Error::e_explain(ErrorType::ReadError, "reading a body to sign");
            };
            let eos = chunk.is_none() || session.is_body_done();
            match flow.feed(sensor, chunk, eos) {
                Ok(out) => {
                    if let Some(b) = out {
                        held.push(&b);
                    }
                    if !held.is_holding() {
                        refused = Some(too_large());
                    }
                }
                Err(r) => refused = Some(r),
            }
            if eos || refused.is_some() {
                break;
            }
        }
    }
    if let Some(r) = refused {
        flow.refused();
        return Ok(Err(r));
    }
    held.finish();
    Ok(Ok(held))
}
