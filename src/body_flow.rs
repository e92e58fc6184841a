//! A request's body on its way upstream, after admission. One type, [`BodyFlow`], that the
//! proxy's hooks delegate to: it is the one place a chunk the sensor sent becomes what goes
//! upstream (through the bulk validator, when the request has one, which counts the bulk as
//! accepted or refused), is held for replay and is mirrored to the tee; and it keeps what a
//! held bulk's replay needs (the upstream head as first sent, whether ES pushed back, whether
//! the replay answered). Which bulks are replayed is `replay`'s decision; no I/O here.

use crate::bulk::BulkValidator;
use crate::metrics;
use crate::reject::Reject;
use crate::replay::{self, Held, Replayer};
use crate::tee::{Slot as TeeSlot, Tee};
use crate::upstream_head::BodyChange;
use bytes::Bytes;
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Instant;

/// The body state of one request (see the module docs).
#[derive(Default)]
pub struct BodyFlow {
    /// `Some` for a `_bulk` until it is refused.
    validator: Option<Box<BulkValidator>>,
    /// A `_bulk`: its validated body is held for replay.
    bulk: bool,
    /// How what goes upstream differs from what the sensor sent (its framing headers follow).
    change: BodyChange,
    /// The sensor's Content-Length: what is held for replay is at least that unless inflated
    /// (a re-framed body's upstream head has no length to decide by).
    declared: Option<u64>,
    /// The validated body of the current attempt, held for replay.
    held: Option<Held>,
    /// The upstream header of the bulk as first sent (a replay sends it again). Boxed: only
    /// bulks keep one, and every request's state is moved with Pingora's request future (a
    /// header inline would double the size of that state).
    head: Option<Box<RequestHeader>>,
    /// This request's mirror to the tee.
    tee: TeeSlot,
    /// ES answered the held bulk with 429/503.
    backpressure: bool,
    /// A replay answered the sensor (logged by the replayer, not as an error).
    replayed: bool,
}

impl BodyFlow {
    /// A `_bulk` streamed through `validator`; `change` says how what goes upstream differs
    /// from what the sensor sent, `declared` is the sensor's Content-Length.
    pub fn bulk(
        validator: Box<BulkValidator>,
        change: BodyChange,
        declared: Option<u64>,
    ) -> BodyFlow {
        BodyFlow {
            validator: Some(validator),
            bulk: true,
            change,
            declared,
            ..BodyFlow::default()
        }
    }

    /// How what goes upstream differs from what the sensor sent.
    pub fn change(&self) -> BodyChange {
        self.change
    }

    /// The fewest bytes that go upstream as far as the heads tell (`up` is the upstream head):
    /// its Content-Length for a body forwarded as received, the sensor's for one whose lines
    /// change (they only grow, and `up` has none left), nothing for an inflated one.
    pub fn upstream_len_at_least(&self, up: &RequestHeader) -> Option<u64> {
        match self.change {
            BodyChange::None => crate::framing::content_length(&up.headers),
            BodyChange::Lines => self.declared,
            BodyChange::Inflated => None,
        }
    }

    /// A `_bulk` (never re-sent by Pingora: a failed attempt is replayed from the held body).
    pub fn is_bulk(&self) -> bool {
        self.bulk
    }

    /// A replay answered the sensor.
    pub fn was_replayed(&self) -> bool {
        self.replayed
    }

    /// A new upstream attempt with header `up`: a bulk starts holding its validated body again
    /// and keeps the header; the tee mirror starts once, with the first attempt's header.
    pub fn start_attempt(
        &mut self,
        up: &RequestHeader,
        replayer: &Replayer,
        tee: Option<&Arc<Tee>>,
        has_body: bool,
    ) {
        if self.bulk {
            match self.held.as_mut() {
                Some(h) => h.reset(),
                // A bulk declared too large to hold is not held at all (not even its first
                // megabytes).
                None => self.held = replayer.hold(self.upstream_len_at_least(up)),
            }
            self.head = Some(Box::new(up.clone()));
        }
        self.tee.new_attempt();
        if let (Some(tee), true) = (tee, self.tee.is_idle()) {
            self.tee = tee.start(up, has_body);
        }
    }

    /// Starts the tee mirror only (a signed request is held whole by the caller and sent by
    /// the replayer, so there is no Pingora attempt and no replay hold here).
    pub fn start_mirror(&mut self, up: &RequestHeader, tee: Option<&Arc<Tee>>, has_body: bool) {
        if let (Some(tee), true) = (tee, self.tee.is_idle()) {
            self.tee = tee.start(up, has_body);
        }
    }

    /// Takes one chunk the sensor sent (`None`: no bytes; `eos`: the body is over) and returns
    /// what goes upstream for it. `None` is returned only at the end (before it, Pingora would
    /// read `None` as the end of the body; an empty chunk at the end would write a second
    /// chunked terminator). A refusal is counted (`metrics::bulk_rejected`), the mirror cut
    /// and the hold dropped, whichever hook was reading.
    pub fn feed(
        &mut self,
        sensor: Option<&str>,
        chunk: Option<Bytes>,
        eos: bool,
    ) -> Result<Option<Bytes>, Reject> {
        let out = match self.validator.as_mut() {
            None => chunk,
            Some(v) => match v.feed(chunk.unwrap_or_default(), eos) {
                Ok(out) => {
                    if eos {
                        metrics::bulk_accepted(sensor, v.stats());
                    }
                    match (out.is_empty(), eos) {
                        (true, true) => None,
                        (true, false) => Some(Bytes::new()),
                        (false, _) => Some(out),
                    }
                }
                Err(r) => {
                    metrics::bulk_rejected(sensor, v.stats());
                    self.refused();
                    return Err(r);
                }
            },
        };
        if let Some(h) = self.held.as_mut() {
            if let Some(b) = &out {
                h.push(b);
            }
            if eos {
                h.finish();
            }
        }
        self.tee.feed(out.as_ref(), eos);
        Ok(out)
    }

    /// The request was refused: nothing more goes upstream, to the tee or to a replay.
    pub fn refused(&mut self) {
        self.validator = None;
        self.tee.abort();
        self.held = None;
    }

    /// ES answered this attempt with `status`: `true` if it is back-pressure on a held bulk
    /// worth waiting out (then the attempt is failed and replayed, not relayed).
    pub fn pushed_back(&mut self, status: u16, started: Instant) -> bool {
        if !self.backpressure
            && self.held.as_ref().is_some_and(Held::is_holding)
            && replay::worth_waiting_out(status, started)
        {
            self.backpressure = true;
            return true;
        }
        false
    }

    /// Whether the attempt that failed with `e` is replayed from the held body.
    pub fn replays_after(&self, e: &pingora::Error) -> bool {
        self.head.is_some() && replay::after_failure(self.backpressure, e)
    }

    /// Whether this request, on `route` with `method`, may be sent again after its ES node went
    /// silent (`replay::after_timeout`, given the held body and the validator's counts).
    pub fn after_timeout(
        &self,
        method: &http::Method,
        route: &crate::allowlist::Route,
    ) -> replay::AfterTimeout {
        replay::after_timeout(
            method,
            route,
            self.held.as_ref(),
            self.validator.as_deref().map(BulkValidator::stats),
        )
    }

    /// Whether Pingora may send this request again after its ES node went silent: never a bulk
    /// (a held bulk is replayed by us), else as [`BodyFlow::after_timeout`] decides.
    pub fn pingora_resends_after_timeout(
        &self,
        method: &http::Method,
        route: Option<&crate::allowlist::Route>,
    ) -> bool {
        !self.bulk
            && route.is_some_and(|r| self.after_timeout(method, r) == replay::AfterTimeout::Resend)
    }

    /// Why a request whose ES node went silent was answered 504 rather than sent again (for
    /// the log line): [`BodyFlow::after_timeout`]'s reason, else the budget ran out.
    pub fn not_resent_because(
        &self,
        method: &http::Method,
        route: Option<&crate::allowlist::Route>,
    ) -> &'static str {
        match route.map(|r| self.after_timeout(method, r)) {
            Some(replay::AfterTimeout::GatewayTimeout(why)) => why,
            Some(replay::AfterTimeout::Resend) => "no other node answered within the budget",
            None => "no route",
        }
    }

    /// [`BodyFlow::after_timeout`] for a body held elsewhere (a signed request's).
    pub fn after_timeout_of(
        &self,
        method: &http::Method,
        route: &crate::allowlist::Route,
        held: &Held,
    ) -> replay::AfterTimeout {
        replay::after_timeout(
            method,
            route,
            Some(held),
            self.validator.as_deref().map(BulkValidator::stats),
        )
    }

    /// While a replay waits for the rest of the body: `Some(true)` when more of it must be
    /// read, `Some(false)` when all of it is held, `None` when it is not held (not replayable).
    pub fn awaits_more(&self) -> Option<bool> {
        let h = self.held.as_ref()?;
        if h.is_complete() {
            Some(false)
        } else if h.is_holding() {
            Some(true)
        } else {
            None
        }
    }

    /// The header and the complete held body to replay.
    pub fn replayable(&self) -> Option<(&RequestHeader, &Held)> {
        let held = self.held.as_ref().filter(|h| h.is_complete())?;
        Some((self.head.as_deref()?, held))
    }

    /// A replay answered the sensor.
    pub fn mark_replayed(&mut self) {
        self.replayed = true;
    }

    /// The request is over: a mirror that did not get the end of the body is cut off.
    pub fn finish(&mut self) {
        self.tee.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::BodyEncoding;
    use crate::policy::Policy;

    fn rejected_count(sensor: &str) -> u64 {
        let text = String::from_utf8(metrics::render(None, None)).unwrap();
        text.lines()
            .filter(|l| l.starts_with("esproxy_bulk_requests_total{"))
            .filter(|l| l.contains(r#"result="rejected""#) && l.contains(sensor))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
            .sum()
    }

    #[test]
    fn the_upstream_length_bound_follows_the_body_change() {
        let policy = Policy::default();
        let v = || {
            Box::new(BulkValidator::new(
                &policy,
                "toronto01",
                BodyEncoding::Identity,
            ))
        };
        let mut up = RequestHeader::build("POST", b"/_bulk", None).unwrap();
        up.insert_header("Content-Length", "100").unwrap();
        let as_sent = BodyFlow::bulk(v(), BodyChange::None, Some(100));
        assert_eq!(as_sent.upstream_len_at_least(&up), Some(100));
        // A re-framed head has no length left: the sensor's is the bound (lines only grow).
        up.remove_header(&http::header::CONTENT_LENGTH);
        let lines = BodyFlow::bulk(v(), BodyChange::Lines, Some(100));
        assert_eq!(lines.upstream_len_at_least(&up), Some(100));
        let inflated = BodyFlow::bulk(v(), BodyChange::Inflated, Some(100));
        assert_eq!(inflated.upstream_len_at_least(&up), None);
    }

    #[test]
    fn a_refused_chunk_is_counted_and_drops_the_hold_and_the_mirror() {
        let policy = Policy::default();
        let v = BulkValidator::new(&policy, "toronto01", BodyEncoding::Identity);
        let mut flow = BodyFlow::bulk(Box::new(v), BodyChange::Lines, None);
        let sensor = metrics::sensor_label(Some("toronto01"));
        let before = rejected_count(sensor);
        let bad = Bytes::from_static(b"{\"index\":{\"_index\":\"not_arkime\"}}\n{}\n");
        assert!(flow.feed(Some("toronto01"), Some(bad), true).is_err());
        assert!(rejected_count(sensor) > before, "bulk_rejected not counted");
        assert_eq!(flow.awaits_more(), None);
        assert!(flow.replayable().is_none());
    }
}
