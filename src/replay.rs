//! Replay of bulks Elasticsearch did not take: owns *which* failed bulks the proxy sends again
//! itself instead of handing an error to a sensor that would drop the data (capture treats every
//! HTTP error status as final, arkime-traffic.md §1), how much validated body is held for that,
//! and for how long it keeps trying.
//!
//! A `_bulk`'s validated bytes (exactly what went upstream) are held, as reference-counted chunks
//! shared with the upstream write and the tee, up to [`MAX_HELD_PER_REQUEST`] per request and
//! [`MAX_HELD_TOTAL`] over all requests; a bulk that does not fit is simply not replayable.
//! When ES answers `429`/`503`, or the connection to ES breaks after the request was sent, the
//! held body is sent again, to any healthy peer, with backoff. Back-pressure is waited out until
//! ES answers something else or [`BUDGET`] (counted from the moment the request arrived) runs
//! out; broken connections get each peer once and two short backoffs (failover, not waiting for
//! a dead cluster), except that a pool following DNS starts that count again whenever its
//! members change and, with none left to try, waits within the budget for its names to move. Then ES's last answer is relayed, or our 502 if there was none.
//!
//! Why replaying a bulk is safe: capture itself resends the very same body when a connection
//! drops before the answer (arkime-traffic.md §1), so a replay never does anything the sensor
//! would not have done; `index`/`delete` actions with ids are idempotent and `create` reports a
//! per-item conflict that capture ignores. A 429/503 answer means ES refused the request. In
//! strict mode session lines under random ids go as `create` (`bulk::create`), so a re-send of
//! a bulk ES had already applied answers `409` for those items: the documents are there, and
//! ES's answer is relayed as it is (capture reads only the status).
//!
//! A request to a SigV4 cluster is always sent this way ([`Replayer::send_signed`]): its whole
//! validated body is held first, because the signature covers the body's hash.
//!
//! A node that goes silent (no byte for `esProxyUpstreamTimeout`: a long GC pause, a wedged
//! JVM behind a live socket) is different: ES may be indexing the bulk right now. Re-sending
//! is then safe only when a second copy cannot appear, so [`after_timeout`] decides: a held
//! bulk whose every action names an `_id` is re-sent (indexing the same id twice leaves one
//! document), as are requests that cannot change anything (GET/HEAD and the allowed
//! searches). A bulk with an action without `_id` (capture's `autoGenerateId=true`) or one too
//! large to hold gets a 504 instead: a re-send could double its documents.
//!
//! Never looks at the body's content and makes no policy decision.

use crate::allowlist::{BodyRule, JsonRule, Route};
use crate::bulk::BulkStats;
use crate::upstream::{Member, Pool};
use bytes::{Bytes, BytesMut};
use log::{info, warn};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::{Error, ErrorSource, ErrorType};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most validated bytes one request holds for replay. Capture's bulks are about 1 MB raw
/// (`dbBulkSize`, 200-300 KB gzip); larger ones stream without a replay copy, so streaming's
/// memory bound (a line plus a chunk per request) holds for them.
pub const MAX_HELD_PER_REQUEST: usize = 8 << 20;
/// Most validated bytes held for replay over all requests at once.
pub const MAX_HELD_TOTAL: usize = 64 << 20;
/// How long after a request arrived the proxy may still be retrying it. Capture gives a request
/// 120 s in total (`CURLOPT_TIMEOUT`), then counts it as a transport failure; 60 s leaves the
/// slow upload before and the final attempt's own work after well inside that.
pub const BUDGET: Duration = Duration::from_secs(60);
/// A 429/503 is replayed only while at least this much of [`BUDGET`] is left.
pub const MIN_LEFT: Duration = Duration::from_secs(5);
/// Largest ES answer to a replayed bulk that we buffer to relay (a full bulk's answer is far less).
pub const MAX_RESPONSE: usize = 32 << 20;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Whether an upstream failure is our own timeout towards ES (`esProxyUpstreamTimeout`): ES sent
/// or took no byte for that long.
pub fn is_timeout(e: &Error) -> bool {
    matches!(e.esource(), ErrorSource::Upstream)
        && matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout
        )
}

/// What to do with a request whose ES node went silent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterTimeout {
    /// Send it again to another node (held bulk with ids, or a request that changes nothing).
    Resend,
    /// Answer 504: a re-send could apply it twice, or its body is not held. The reason is for
    /// the log line.
    GatewayTimeout(&'static str),
}

/// Decides [`AfterTimeout`] for a request on `route` with `method`. For a bulk, `held` is its
/// held body and `stats` the validator's counts once the whole body was read.
pub fn after_timeout(
    method: &http::Method,
    route: &Route,
    held: Option<&Held>,
    stats: Option<&BulkStats>,
) -> AfterTimeout {
    match &route.body {
        BodyRule::Bulk => match (held, stats) {
            (Some(h), Some(s)) if h.is_complete() => {
                if s.actions_without_id == 0 {
                    AfterTimeout::Resend
                } else {
                    AfterTimeout::GatewayTimeout(
                        "a bulk action without _id: a re-send could index it twice",
                    )
                }
            }
            _ => AfterTimeout::GatewayTimeout("the bulk body is too large to hold for a re-send"),
        },
        _ if matches!(*method, http::Method::GET | http::Method::HEAD) => AfterTimeout::Resend,
        BodyRule::Json(
            JsonRule::FilesSearch
            | JsonRule::SessionSearch { .. }
            | JsonRule::StatsSearch
            | JsonRule::FieldsSearch
            | JsonRule::LookupsSearch
            | JsonRule::UsersCount,
        ) => AfterTimeout::Resend,
        _ => AfterTimeout::GatewayTimeout("the request may change data: not sent twice"),
    }
}

/// The global cap on held bytes; reservations never wait.
#[derive(Debug)]
pub struct HoldBudget {
    used: AtomicUsize,
    cap: usize,
}

impl HoldBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: usize) -> Arc<HoldBudget> {
        Arc::new(HoldBudget {
            used: AtomicUsize::new(0),
            cap,
        })
    }

    /// Bytes currently held.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    fn try_take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|&t| t <= self.cap)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// When the replay budget of a request that arrived at `started` runs out.
pub fn deadline(started: Instant) -> Instant {
    started + BUDGET
}

/// Whether ES's `status` for a held bulk is back-pressure worth waiting out: 429/503, with at
/// least [`MIN_LEFT`] of the budget of a request that arrived at `started` still to go.
pub fn worth_waiting_out(status: u16, started: Instant) -> bool {
    Replayer::is_backpressure(status) && started.elapsed() + MIN_LEFT < BUDGET
}

/// Whether a failed attempt of a held bulk is sent again: ES answered back-pressure
/// (`backpressure`), or the connection to ES broke (an upstream error that is not a status).
pub fn after_failure(backpressure: bool, e: &pingora::Error) -> bool {
    use pingora::{ErrorSource, ErrorType};
    backpressure
        || (matches!(e.esource(), ErrorSource::Upstream)
            && !matches!(e.etype(), ErrorType::HTTPStatus(_)))
}

/// One request's held validated body.
#[derive(Debug)]
pub struct Held {
    chunks: Vec<Bytes>,
    len: usize,
    complete: bool,
    gave_up: bool,
    per_request: usize,
    budget: Arc<HoldBudget>,
}

impl Held {
    /// An empty hold drawing on `budget`, at most `per_request` bytes.
    pub fn new(budget: Arc<HoldBudget>, per_request: usize) -> Held {
        Held {
            chunks: Vec::new(),
            len: 0,
            complete: false,
            gave_up: false,
            per_request,
            budget,
        }
    }

    /// Keeps a validated chunk (a reference, not a copy). Over a cap, lets go of everything:
    /// this request is then not replayable.
    pub fn push(&mut self, b: &Bytes) {
        if self.gave_up || b.is_empty() {
            return;
        }
        if self.len + b.len() > self.per_request || !self.budget.try_take(b.len()) {
            self.give_up();
            return;
        }
        self.len += b.len();
        self.chunks.push(b.clone());
    }

    /// The body is complete (the validator passed its end).
    pub fn finish(&mut self) {
        self.complete = true;
    }

    /// The held chunks, in order.
    pub fn chunks(&self) -> &[Bytes] {
        &self.chunks
    }

    /// Starts over (a new attempt replays the body from its first byte).
    pub fn reset(&mut self) {
        self.budget.give_back(self.len);
        self.chunks.clear();
        self.len = 0;
        self.complete = false;
        self.gave_up = false;
    }

    /// Stops holding (over a cap, or the request was refused).
    pub fn give_up(&mut self) {
        self.budget.give_back(self.len);
        self.chunks = Vec::new();
        self.len = 0;
        self.gave_up = true;
    }

    /// Every byte of the validated body is held.
    pub fn is_complete(&self) -> bool {
        self.complete && !self.gave_up
    }

    /// Still holding (maybe not yet complete).
    pub fn is_holding(&self) -> bool {
        !self.gave_up
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget.give_back(self.len);
    }
}

/// ES's answer to a replayed request, buffered whole.
#[derive(Debug)]
pub struct Answer {
    /// Status and headers as ES sent them.
    pub header: ResponseHeader,
    /// The whole body.
    pub body: Bytes,
    /// How many sends it took (the first replay is 1).
    pub attempts: u32,
}

/// Why one send failed.
#[derive(Debug)]
enum SendError {
    Connect(String),
    /// The peer went silent for its read/write timeout.
    Timeout(String),
    Exchange(String),
}

/// Sends held bulks again with backoff, within the time budget.
pub struct Replayer {
    pool: Arc<Pool>,
    connector: Connector,
    budget: Arc<HoldBudget>,
}

impl Replayer {
    /// A replayer over the primary pool, with the default global hold cap.
    pub fn new(pool: Arc<Pool>) -> Replayer {
        Replayer {
            pool,
            connector: Connector::new(None),
            budget: HoldBudget::new(MAX_HELD_TOTAL),
        }
    }

    /// A fresh hold for one request, unless its declared length already exceeds the cap.
    pub fn hold(&self, declared_len: Option<u64>) -> Option<Held> {
        if declared_len.is_some_and(|n| n > MAX_HELD_PER_REQUEST as u64) {
            return None;
        }
        Some(Held::new(self.budget.clone(), MAX_HELD_PER_REQUEST))
    }

    /// Whether ES's answer is back-pressure worth waiting out.
    pub fn is_backpressure(status: u16) -> bool {
        matches!(status, 429 | 503)
    }

    /// Sends `body` (complete) with `head` (the upstream request as first sent) until ES
    /// answers other than 429/503 or `deadline` passes. `avoid` is the peer that just failed.
    /// A peer that goes silent ends it unless `resend_after_timeout` ([`after_timeout`] allows
    /// a second copy). Returns ES's last answer, or `None` when no answer came at all.
    pub async fn run(
        &self,
        head: &RequestHeader,
        body: &Held,
        avoid: Option<u64>,
        deadline: Instant,
        resend_after_timeout: bool,
    ) -> Option<Answer> {
        self.send_until(head, body, avoid, deadline, true, resend_after_timeout)
            .await
    }

    /// Sends a request whose whole body is held (SigV4 signs the body's hash, so nothing is
    /// streamed), signed anew for each attempt, with the same failover and back-pressure
    /// handling as a replay (`resend_after_timeout` as for [`Replayer::run`]). Returns ES's last
    /// answer, or `None` when none came.
    pub async fn send_signed(
        &self,
        head: &RequestHeader,
        body: &Held,
        deadline: Instant,
        resend_after_timeout: bool,
    ) -> Option<Answer> {
        self.send_until(head, body, None, deadline, false, resend_after_timeout)
            .await
    }

    async fn send_until(
        &self,
        head: &RequestHeader,
        body: &Held,
        avoid: Option<u64>,
        deadline: Instant,
        replay: bool,
        resend_after_timeout: bool,
    ) -> Option<Answer> {
        debug_assert!(body.is_complete());
        let mut exclude: Vec<u64> = avoid.into_iter().filter(|_| self.pool.len() > 1).collect();
        let mut last: Option<Answer> = None;
        let mut attempts = 0u32;
        let mut backoff = FIRST_BACKOFF;
        let mut wait = Duration::ZERO;
        // Transport failures are for failing over to a live peer, not for waiting out a dead
        // (or misconfigured) cluster: each peer once, plus two short backoffs.
        // A pool whose names move (esProxyDnsInterval) starts that count again with every
        // change of its members, and waits for one within the budget when none is left.
        let mut transport_failures = 0usize;
        let mut max_transport_failures = self.pool.len() + 2;
        let what = if replay {
            "bulk replay"
        } else {
            "signed request"
        };
        let mut generation = self.pool.generation();
        let mut after_transport_failure = false;
        loop {
            let now = Instant::now();
            if now + wait >= deadline {
                break;
            }
            if after_transport_failure && self.pool.follows_dns() {
                // The failed node's name may have moved meanwhile: a new member ends the wait.
                let _ =
                    tokio::time::timeout(wait, self.pool.wait_change(generation, deadline)).await;
            } else {
                tokio::time::sleep(wait).await;
            }
            if self.pool.generation() != generation {
                generation = self.pool.generation();
                (transport_failures, max_transport_failures) = (0, self.pool.len() + 2);
                backoff = FIRST_BACKOFF;
            }
            after_transport_failure = false;
            let Some(chosen) = self.pool.select_or_wait(&exclude, deadline).await else {
                break;
            };
            let member = chosen.member;
            attempts += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let sent = tokio::time::timeout(remaining, self.send_once(&member, head, body)).await;
            match sent {
                Err(_) => break,
                Ok(Ok(mut a)) => {
                    a.attempts = attempts;
                    let status = a.header.status.as_u16();
                    if !Self::is_backpressure(status) {
                        if replay || attempts > 1 {
                            info!(
                                "{} to {} after {attempts} attempt(s): {status}",
                                if replay {
                                    "bulk replayed"
                                } else {
                                    "signed request sent"
                                },
                                member.label()
                            );
                        }
                        return Some(a);
                    }
                    // ES asked us to slow down: honour Retry-After when it fits the budget.
                    wait = retry_after(&a.header).unwrap_or(backoff).min(MAX_BACKOFF);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    exclude.clear();
                    last = Some(a);
                }
                Ok(Err(e)) => {
                    transport_failures += 1;
                    match e {
                        SendError::Connect(_) => self.pool.mark_down(&member, "connect failed"),
                        SendError::Timeout(_) => self.pool.mark_down(&member, "went silent"),
                        SendError::Exchange(_) => {}
                    }
                    // The silent node may still apply it: another copy only if that is safe.
                    if matches!(e, SendError::Timeout(_)) && !resend_after_timeout {
                        warn!(
                            "{what} to {} went silent; not sent again: {e}",
                            member.label()
                        );
                        break;
                    }
                    warn!("{what} to {} failed: {e}", member.label());
                    // Another peer at once the first time; then back off.
                    wait = if attempts == 1 && self.pool.len() > 1 {
                        Duration::ZERO
                    } else {
                        let w = backoff;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        w
                    };
                    exclude = if self.pool.len() > 1 {
                        vec![member.id()]
                    } else {
                        vec![]
                    };
                    after_transport_failure = true;
                    if transport_failures >= max_transport_failures
                        && !(self.pool.follows_dns()
                            && self.pool.wait_change(generation, deadline).await)
                    {
                        break;
                    }
                }
            }
        }
        warn!(
            "{} gave up after {attempts} attempt(s)",
            if replay {
                "bulk replay"
            } else {
                "signed request"
            }
        );
        last
    }

    async fn send_once(
        &self,
        member: &Member,
        head: &RequestHeader,
        body: &Held,
    ) -> Result<Answer, SendError> {
        let peer = member.peer();
        let (mut s, _reused) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| SendError::Connect(e.to_string()))?;
        // The same bound on a silent node as the proxied attempt had.
        s.set_read_timeout(peer.options.read_timeout);
        s.set_write_timeout(peer.options.write_timeout);
        let x = |e: Box<pingora::Error>| match e.etype() {
            ErrorType::ReadTimedout | ErrorType::WriteTimedout => SendError::Timeout(e.to_string()),
            _ => SendError::Exchange(e.to_string()),
        };
        let mut req = head.clone();
        self.pool.prepare_header(member, &mut req).map_err(x)?;
        req.remove_header(&http::header::TRANSFER_ENCODING);
        req.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
            .map_err(x)?;
        if let Some(signer) = self.pool.signer() {
            signer
                .sign(&mut req, &body.chunks)
                .await
                .map_err(|e| SendError::Exchange(e.to_string()))?;
        }
        s.write_request_header(Box::new(req)).await.map_err(x)?;
        for c in &body.chunks {
            s.write_request_body(c.clone(), false).await.map_err(x)?;
        }
        s.finish_request_body().await.map_err(x)?;
        s.read_response_header().await.map_err(x)?;
        let header = s
            .response_header()
            .cloned()
            .ok_or_else(|| SendError::Exchange("no response header".into()))?;
        let mut out = BytesMut::new();
        while let Some(b) = s.read_response_body().await.map_err(x)? {
            if out.len() + b.len() > MAX_RESPONSE {
                return Err(SendError::Exchange(format!(
                    "answer over {MAX_RESPONSE} bytes"
                )));
            }
            out.extend_from_slice(&b);
        }
        if s.response_done() {
            self.connector
                .release_http_session(s, &peer, peer.options.idle_timeout)
                .await;
        }
        Ok(Answer {
            header,
            body: out.freeze(),
            attempts: 0,
        })
    }
}

/// `Retry-After` in whole seconds, if ES sent one.
fn retry_after(h: &ResponseHeader) -> Option<Duration> {
    let v = h.headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect: {e}"),
            SendError::Timeout(e) => write!(f, "timeout: {e}"),
            SendError::Exchange(e) => write!(f, "{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_body_is_capped_per_request_and_lets_go_of_everything() {
        let budget = HoldBudget::new(1 << 20);
        let mut h = Held::new(budget.clone(), 10);
        h.push(&Bytes::from_static(b"123456"));
        assert_eq!(budget.used(), 6);
        h.push(&Bytes::from_static(b"78901"));
        h.finish();
        assert!(!h.is_complete() && !h.is_holding());
        assert_eq!(budget.used(), 0, "released at once");
    }

    #[test]
    fn global_budget_refuses_without_waiting_and_is_returned_on_drop() {
        let budget = HoldBudget::new(8);
        let mut a = Held::new(budget.clone(), 100);
        let mut b = Held::new(budget.clone(), 100);
        a.push(&Bytes::from_static(b"12345"));
        b.push(&Bytes::from_static(b"12345"));
        assert!(a.is_holding() && !b.is_holding());
        a.finish();
        assert!(a.is_complete());
        drop(a);
        assert_eq!(budget.used(), 0);
        let mut c = Held::new(budget.clone(), 100);
        c.push(&Bytes::from_static(b"12345678"));
        assert!(c.is_holding());
    }

    #[test]
    fn reset_starts_the_body_over() {
        let budget = HoldBudget::new(100);
        let mut h = Held::new(budget.clone(), 100);
        h.push(&Bytes::from_static(b"abc"));
        h.finish();
        h.reset();
        assert!(!h.is_complete() && h.is_holding() && h.is_empty());
        assert_eq!(budget.used(), 0);
    }

    fn route(class: crate::allowlist::RouteClass, body: BodyRule) -> Route {
        Route {
            class,
            forward: "/".into(),
            body,
        }
    }

    #[test]
    fn after_a_timeout_only_bulks_whose_actions_all_have_ids_are_sent_again() {
        use crate::allowlist::RouteClass;
        let bulk = route(RouteClass::Bulk, BodyRule::Bulk);
        let budget = HoldBudget::new(100);
        let mut held = Held::new(budget, 100);
        held.push(&Bytes::from_static(b"{}\n{}\n"));
        held.finish();
        let post = http::Method::POST;
        let with_ids = BulkStats {
            actions: 2,
            ..BulkStats::default()
        };
        let one_without = BulkStats {
            actions_without_id: 1,
            ..with_ids.clone()
        };
        assert_eq!(
            after_timeout(&post, &bulk, Some(&held), Some(&with_ids)),
            AfterTimeout::Resend
        );
        assert!(matches!(
            after_timeout(&post, &bulk, Some(&held), Some(&one_without)),
            AfterTimeout::GatewayTimeout(why) if why.contains("_id")
        ));
        // Not held whole (over a cap): nothing to send again.
        held.give_up();
        assert!(matches!(
            after_timeout(&post, &bulk, Some(&held), Some(&with_ids)),
            AfterTimeout::GatewayTimeout(_)
        ));
        assert!(matches!(
            after_timeout(&post, &bulk, None, None),
            AfterTimeout::GatewayTimeout(_)
        ));
    }

    #[test]
    fn after_a_timeout_reads_and_searches_are_sent_again_and_writes_are_not() {
        use crate::allowlist::RouteClass;
        let get = route(RouteClass::Health, BodyRule::Empty);
        assert_eq!(
            after_timeout(&http::Method::GET, &get, None, None),
            AfterTimeout::Resend
        );
        let search = route(
            RouteClass::Sessions,
            BodyRule::Json(JsonRule::SessionSearch { single_index: true }),
        );
        assert_eq!(
            after_timeout(&http::Method::POST, &search, None, None),
            AfterTimeout::Resend
        );
        for rule in [
            JsonRule::SessionUpdate,
            JsonRule::NodeStatsDoc,
            JsonRule::SequenceDoc,
        ] {
            let write = route(RouteClass::Sessions, BodyRule::Json(rule));
            assert!(matches!(
                after_timeout(&http::Method::POST, &write, None, None),
                AfterTimeout::GatewayTimeout(_)
            ));
        }
        let delete = route(RouteClass::Sessions, BodyRule::Empty);
        assert!(matches!(
            after_timeout(&http::Method::DELETE, &delete, None, None),
            AfterTimeout::GatewayTimeout(_)
        ));
    }

    #[test]
    fn only_429_and_503_are_back_pressure() {
        assert!(Replayer::is_backpressure(429) && Replayer::is_backpressure(503));
        for s in [200, 400, 413, 500, 502, 504] {
            assert!(!Replayer::is_backpressure(s), "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_are_read() {
        let mut h = ResponseHeader::build(429, None).unwrap();
        h.insert_header("Retry-After", " 3 ").unwrap();
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let h = ResponseHeader::build(429, None).unwrap();
        assert_eq!(retry_after(&h), None);
    }
}
