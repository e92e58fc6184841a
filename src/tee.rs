//! The tee: a background mirror of every admitted request to a second cluster (SPEC §7). Owns
//! what the mirror gets (exactly the validated bytes the primary got, with the tee's own
//! credentials), when a mirror is given up, and the bounds that keep it from ever touching the
//! primary's latency or answer.
//!
//! Each mirrored request is one task of ours talking to a tee peer through Pingora's
//! [`Connector`]. The primary hands it chunks with `try_send` only and never awaits it. A mirror
//! is dropped (and counted) when no tee peer is healthy, when [`MAX_MIRRORS`] are already in
//! flight, or when its queue (bounded in messages and in bytes) is full because the tee is slow or
//! black-holed. The tee body is always chunked and only an explicit end-of-body message writes
//! the terminating chunk, so a request cut by validation (or by anything else) reaches the tee as
//! an incomplete request, which ES discards.

use crate::config::Upstream;
use crate::upstream::{Member, Pool, UpstreamError};
use bytes::Bytes;
use log::{debug, warn};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::protocols::http::client::HttpSession;
use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

/// Mirrors in flight at once; a request beyond that is not mirrored.
pub const MAX_MIRRORS: usize = 64;
/// Messages queued per mirror.
pub const QUEUE_MESSAGES: usize = 32;
/// Bytes queued per mirror (validated chunks can be inflated gzip, up to 16 MB each).
pub const QUEUE_BYTES: usize = 8 << 20;
/// Read/write timeout on tee connections (a black-holed tee must not keep a permit forever).
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a mirror may take in total.
pub const MAX_MIRROR_TIME: Duration = Duration::from_secs(300);

/// What the tee did, since start.
#[derive(Debug, Default)]
pub struct TeeStats {
    /// Mirrors started.
    pub started: AtomicU64,
    /// Mirrors the tee answered (any status).
    pub completed: AtomicU64,
    /// Not mirrored: no healthy tee peer.
    pub dropped_down: AtomicU64,
    /// Not mirrored: [`MAX_MIRRORS`] already in flight.
    pub dropped_busy: AtomicU64,
    /// Given up: the queue was full (tee slow or black-holed).
    pub dropped_full: AtomicU64,
    /// Given up: connecting, writing or reading failed or timed out.
    pub failed: AtomicU64,
    /// Given up because the primary request was refused or failed before its body ended.
    pub aborted: AtomicU64,
}

impl TeeStats {
    /// All mirrors that did not complete for a reason other than the primary's own failure.
    pub fn dropped(&self) -> u64 {
        self.dropped_down.load(Ordering::Relaxed)
            + self.dropped_busy.load(Ordering::Relaxed)
            + self.dropped_full.load(Ordering::Relaxed)
            + self.failed.load(Ordering::Relaxed)
    }
}

/// The tee cluster and its bounds.
pub struct Tee {
    pool: Arc<Pool>,
    connector: Connector,
    permits: Arc<Semaphore>,
    /// Counters.
    pub stats: TeeStats,
}

enum Msg {
    Chunk(Bytes),
    End,
}

/// One request's mirror, kept in the request's context.
#[derive(Default)]
pub enum Slot {
    /// Not started yet.
    #[default]
    Idle,
    /// Streaming to the tee.
    Running(Mirror),
    /// Ended, dropped or not wanted: never restarted for this request.
    Done,
}

/// A running mirror: the sending side.
pub struct Mirror {
    tee: Arc<Tee>,
    tx: mpsc::Sender<Msg>,
    queued: Arc<AtomicUsize>,
    join: JoinHandle<()>,
    /// Body bytes already handed to the tee.
    sent: u64,
    /// Body bytes seen in the current attempt (a retry replays from byte 0).
    seen: u64,
    ended: bool,
}

impl Tee {
    /// A tee over `pool` (its own peers, credentials and TLS).
    pub fn new(pool: Arc<Pool>) -> Arc<Tee> {
        Arc::new(Tee {
            pool,
            connector: Connector::new(None),
            permits: Arc::new(Semaphore::new(MAX_MIRRORS)),
            stats: TeeStats::default(),
        })
    }

    /// The tee from `[tee]`, if configured: its own pool (hosts resolved, certificates loaded,
    /// read/write timeouts so a black-holed node cannot hold a mirror forever).
    pub fn from_config(up: Option<&Upstream>) -> Result<Option<Arc<Tee>>, UpstreamError> {
        let Some(up) = up else { return Ok(None) };
        let mut pool = Pool::new(up, "tee")?;
        pool.set_io_timeout(IO_TIMEOUT);
        Ok(Some(Tee::new(Arc::new(pool))))
    }

    /// The tee's peers (for its health checks).
    pub fn pool(&self) -> Arc<Pool> {
        self.pool.clone()
    }

    /// Mirrors in flight now.
    pub fn in_flight(&self) -> usize {
        MAX_MIRRORS - self.permits.available_permits()
    }

    /// Starts mirroring one request whose upstream header is `head` (as sent to the primary).
    /// Never waits: returns [`Slot::Done`] when the mirror is dropped.
    pub fn start(self: &Arc<Self>, head: &RequestHeader, has_body: bool) -> Slot {
        let Some(chosen) = self.pool.select(&[]) else {
            // The tee's names do not resolve (yet): nothing to mirror to.
            self.count_drop(&self.stats.dropped_down, "no tee address resolved");
            return Slot::Done;
        };
        let member = chosen.member;
        if !member.is_healthy() {
            self.count_drop(&self.stats.dropped_down, "no healthy tee peer");
            return Slot::Done;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.count_drop(&self.stats.dropped_busy, "too many mirrors in flight");
            return Slot::Done;
        };
        let mut req = head.clone();
        if self.pool.prepare_header(&member, &mut req).is_err() {
            return Slot::Done;
        }
        // Always chunked: only our explicit end writes the terminator. (A signed tee holds the
        // whole body first and sends it by length.)
        req.remove_header(&http::header::CONTENT_LENGTH);
        req.remove_header(&http::header::TRANSFER_ENCODING);
        if has_body
            && self.pool.signer().is_none()
            && req
                .insert_header(http::header::TRANSFER_ENCODING, "chunked")
                .is_err()
        {
            return Slot::Done;
        }
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
        let queued = Arc::new(AtomicUsize::new(0));
        let join = tokio::spawn(self.clone().run(member, req, rx, queued.clone(), permit));
        Slot::Running(Mirror {
            tee: self.clone(),
            tx,
            queued,
            join,
            sent: 0,
            seen: 0,
            ended: false,
        })
    }

    fn count_drop(&self, counter: &AtomicU64, why: &str) {
        let n = counter.fetch_add(1, Ordering::Relaxed) + 1;
        // One line per 1000 drops of a kind, so a dead tee cannot flood the log.
        if n % 1000 == 1 {
            warn!("tee: request not mirrored ({why}); {n} so far for this reason");
        } else {
            debug!("tee: request not mirrored ({why})");
        }
    }

    async fn run(
        self: Arc<Self>,
        member: Arc<Member>,
        head: RequestHeader,
        rx: mpsc::Receiver<Msg>,
        queued: Arc<AtomicUsize>,
        _permit: OwnedSemaphorePermit,
    ) {
        let r =
            tokio::time::timeout(MAX_MIRROR_TIME, self.exchange(&member, head, rx, queued)).await;
        match r {
            Ok(Ok(true)) => {
                self.stats.completed.fetch_add(1, Ordering::Relaxed);
            }
            // The primary let go before the end: the tee saw an incomplete request.
            Ok(Ok(false)) => {
                self.stats.aborted.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => self.count_drop(&self.stats.failed, &e),
            Err(_) => self.count_drop(&self.stats.failed, "took too long"),
        }
    }

    /// Sends a held, signed request and reads the answer.
    async fn send_whole(
        &self,
        member: &Member,
        peer: &HttpPeer,
        head: RequestHeader,
        body: Vec<Bytes>,
    ) -> Result<bool, String> {
        let mut s = self.open(member, peer, head).await?;
        for b in body {
            s.write_request_body(b, false)
                .await
                .map_err(|err| failed("write to", member, err))?;
        }
        self.finish(s, member, peer).await
    }

    /// `Ok(true)`: answered; `Ok(false)`: the primary went away before the end of the body.
    async fn exchange(
        &self,
        member: &Member,
        head: RequestHeader,
        mut rx: mpsc::Receiver<Msg>,
        queued: Arc<AtomicUsize>,
    ) -> Result<bool, String> {
        let peer = member.peer();
        if let Some(signer) = self.pool.signer() {
            // SigV4 hashes the body: all of it before the head goes out.
            let Some(body) = collect(&mut rx, &queued, signer.max_body()).await? else {
                return Ok(false);
            };
            let mut head = head;
            signer
                .sign(&mut head, &body)
                .await
                .map_err(|err| format!("sign for {}: {err}", member.label()))?;
            return self.send_whole(member, &peer, head, body).await;
        }
        let mut s = self.open(member, &peer, head).await?;
        loop {
            match rx.recv().await {
                Some(Msg::Chunk(b)) => {
                    let n = b.len();
                    let w = s.write_request_body(b, false).await;
                    queued.fetch_sub(n, Ordering::AcqRel);
                    w.map_err(|err| failed("write to", member, err))?;
                }
                Some(Msg::End) => break,
                // Dropping the session closes the connection with no terminating chunk.
                None => return Ok(false),
            }
        }
        self.finish(s, member, &peer).await
    }

    /// Connects to `member` and writes the request head.
    async fn open(
        &self,
        member: &Member,
        peer: &HttpPeer,
        head: RequestHeader,
    ) -> Result<HttpSession, String> {
        let (mut s, _) = match self.connector.get_http_session(peer).await {
            Ok(s) => s,
            Err(err) => {
                // Passive check, as for the primary: later mirrors are dropped at once until the
                // tee's health check brings the peer back.
                self.pool.mark_down(member, "connect failed");
                return Err(failed("connect", member, err));
            }
        };
        s.write_request_header(Box::new(head))
            .await
            .map_err(|err| failed("write to", member, err))?;
        Ok(s)
    }

    /// Ends the request body, reads the whole answer (the tee's answer is not used), and keeps
    /// the connection for the next mirror when it can be reused.
    async fn finish(
        &self,
        mut s: HttpSession,
        member: &Member,
        peer: &HttpPeer,
    ) -> Result<bool, String> {
        s.finish_request_body()
            .await
            .map_err(|err| failed("write to", member, err))?;
        s.read_response_header()
            .await
            .map_err(|err| failed("read from", member, err))?;
        while s
            .read_response_body()
            .await
            .map_err(|err| failed("read from", member, err))?
            .is_some()
        {}
        if s.response_done() {
            self.connector
                .release_http_session(s, peer, peer.options.idle_timeout)
                .await;
        }
        Ok(true)
    }
}

/// The whole validated body from the primary, at most `max` bytes; `None` when the primary went
/// away before its end.
async fn collect(
    rx: &mut mpsc::Receiver<Msg>,
    queued: &AtomicUsize,
    max: usize,
) -> Result<Option<Vec<Bytes>>, String> {
    let mut body = Vec::new();
    let mut len = 0usize;
    loop {
        match rx.recv().await {
            Some(Msg::Chunk(b)) => {
                queued.fetch_sub(b.len(), Ordering::AcqRel);
                len += b.len();
                if len > max {
                    return Err(format!(
                        "body over esProxySigV4MaxBody {max}: not mirrored to a signed tee"
                    ));
                }
                body.push(b);
            }
            Some(Msg::End) => return Ok(Some(body)),
            None => return Ok(None),
        }
    }
}

/// Where the part of a chunk the tee has not had yet starts: the chunk covers body bytes
/// `start..start + len` of this attempt and the tee already has `0..sent` (a retry replays the
/// body from byte 0). `None` when the tee has all of it.
fn unsent_from(sent: u64, start: u64, len: usize) -> Option<usize> {
    (start + len as u64 > sent).then(|| sent.saturating_sub(start) as usize)
}

impl Slot {
    /// A new upstream attempt begins: its body is replayed from byte 0, and bytes the tee
    /// already got are not sent twice.
    pub fn new_attempt(&mut self) {
        if let Slot::Running(m) = self {
            m.seen = 0;
        }
    }

    /// Whether the mirror has been started (or decided against) for this request.
    pub fn is_idle(&self) -> bool {
        matches!(self, Slot::Idle)
    }

    /// Hands validated bytes to the mirror (`eos`: the validated body is complete). Drops the
    /// mirror when its queue is full.
    pub fn feed(&mut self, data: Option<&Bytes>, eos: bool) {
        let Slot::Running(m) = self else { return };
        if m.ended {
            return;
        }
        if let Some(b) = data.filter(|b| !b.is_empty()) {
            let start = m.seen;
            m.seen += b.len() as u64;
            if let Some(skip) = unsent_from(m.sent, start, b.len()) {
                let part = b.slice(skip..);
                let n = part.len();
                let fits = m.queued.fetch_add(n, Ordering::AcqRel) + n <= QUEUE_BYTES;
                if !fits || m.tx.try_send(Msg::Chunk(part)).is_err() {
                    if !fits {
                        m.queued.fetch_sub(n, Ordering::AcqRel);
                    }
                    let tee = m.tee.clone();
                    m.join.abort();
                    tee.count_drop(&tee.stats.dropped_full, "tee queue full");
                    *self = Slot::Done;
                    return;
                }
                m.sent = m.seen;
            }
        }
        if eos {
            if m.tx.try_send(Msg::End).is_err() {
                let tee = m.tee.clone();
                m.join.abort();
                tee.count_drop(&tee.stats.dropped_full, "tee queue full");
                *self = Slot::Done;
                return;
            }
            m.ended = true;
        }
    }

    /// The primary request was refused or failed: if the tee has not got the end of the body, cut
    /// its request off.
    pub fn abort(&mut self) {
        if let Slot::Running(m) = self {
            if !m.ended {
                m.join.abort();
                m.tee.stats.aborted.fetch_add(1, Ordering::Relaxed);
            }
        }
        *self = Slot::Done;
    }

    /// The request is over: a mirror that got its end keeps running in the background; any
    /// other is cut off.
    pub fn finish(&mut self) {
        match std::mem::take(self) {
            Slot::Running(m) if m.ended => *self = Slot::Done,
            Slot::Running(m) => {
                *self = Slot::Running(m);
                self.abort();
            }
            _ => *self = Slot::Done,
        }
    }
}

/// Why a mirror failed: what was being done, with which member, and Pingora's error.
fn failed(what: &str, member: &Member, err: Box<pingora::Error>) -> String {
    format!("{what} {}: {err}", member.label())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_body_reaches_the_tee_once() {
        // First attempt: 10 bytes went to the tee, then the attempt failed.
        assert_eq!(unsent_from(0, 0, 10), Some(0));
        // The retry replays bytes 0..6 and 6..14: only 10..14 are new.
        assert_eq!(unsent_from(10, 0, 6), None);
        assert_eq!(unsent_from(10, 6, 8), Some(4));
        assert_eq!(unsent_from(14, 14, 3), Some(0));
    }

    #[test]
    fn an_idle_or_done_slot_ignores_feeds_and_aborts() {
        let mut s = Slot::default();
        assert!(s.is_idle());
        s.feed(Some(&Bytes::from_static(b"x")), true);
        s.new_attempt();
        s.finish();
        assert!(matches!(s, Slot::Done));
        s.abort();
        assert!(matches!(s, Slot::Done));
    }

    #[test]
    fn dropped_counts_only_drops_not_the_primarys_own_failures() {
        let st = TeeStats::default();
        st.dropped_full.fetch_add(2, Ordering::Relaxed);
        st.failed.fetch_add(1, Ordering::Relaxed);
        st.aborted.fetch_add(5, Ordering::Relaxed);
        assert_eq!(st.dropped(), 3);
    }
}
