//! Reading a request head before Pingora does: [`end_of_head`] finds where a head ends in the
//! bytes read so far (bytes only, no parsing), and [`Prefixed`] is the connection handed to
//! Pingora, which first replays those bytes and then reads the socket. So the total head
//! deadline holds for the whole head (Pingora's own timeout restarts with every read), and
//! nothing larger than the bytes a client actually sent is allocated until the head is complete.
//!
//! On an authenticated kept-alive connection Pingora reads the next head itself (no copy, no
//! extra read, no timer of ours while the head comes in one read): [`Prefixed`] then watches the
//! reads ([`HeadProgress`]) and fails them once the head has taken longer than the head timeout
//! since its first byte, until the proxy says the head was parsed.

use async_trait::async_trait;
use bytes::Bytes;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::SslDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where the head in `buf` ends (the index just past its empty line), if it is complete. Empty
/// lines before the request line are skipped as HTTP/1.1 allows; a bare LF ends a line as well as
/// CRLF does (the same tolerance as Pingora's parser, so both agree on where the head ends).
pub fn end_of_head(buf: &[u8]) -> Option<usize> {
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let mut from = start;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]).map(|i| from + i) {
        // A line feed right after the previous one (optionally with a CR between): empty line.
        let prev = if i >= 1 && buf[i - 1] == b'\r' {
            i - 1
        } else {
            i
        };
        if prev > start && buf[prev - 1] == b'\n' {
            return Some(i + 1);
        }
        from = i + 1;
    }
    None
}

/// Where the head of a kept-alive connection's next request is, as Pingora reads it: shared by
/// the connection's [`Prefixed`] (which sees its first byte) and the request's ticket (the proxy
/// says when the head was parsed).
#[derive(Debug, Default)]
pub struct HeadProgress(AtomicU8);

/// No head being watched (parsed, or the connection's first request, which we read ourselves).
const PARSED: u8 = 0;
/// Between requests: no byte of the next head yet, by `esProxyKeepAliveTimeout`.
const IDLE: u8 = 1;
/// The head's first byte came; it must be complete `esProxyHeadTimeout` after it.
const READING: u8 = 2;

impl HeadProgress {
    /// The head was parsed: its deadline no longer applies.
    pub fn parsed(&self) {
        self.0.store(PARSED, Ordering::Relaxed);
    }
}

/// The deadlines of a kept-alive connection's heads that Pingora reads itself.
#[derive(Debug)]
struct HeadWatch {
    progress: Arc<HeadProgress>,
    head: Duration,
    /// The deadline of the current state: the next head's first byte (IDLE), or its end
    /// (READING).
    by: Instant,
    /// One timer for the connection's life, created the first time a read has to wait. It is
    /// moved only when it fires before `by` (deadlines move later with every request, so that is
    /// at most once per keep-alive period) or when `by` is earlier than it (a head that has to
    /// wait for more bytes): a request whose head comes while the connection waits costs no
    /// timer registration.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl HeadWatch {
    /// Whether `by` has passed; otherwise the task is woken when it does.
    fn passed(&mut self, cx: &mut Context<'_>) -> bool {
        let by = self.by;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(by)));
        if sleep.deadline() > by {
            sleep.as_mut().reset(by);
        }
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            if sleep.deadline() >= by {
                return true;
            }
            // Fired for an earlier request's deadline: wait for this one.
            sleep.as_mut().reset(by);
        }
    }
}

/// A connection whose first bytes were already read by us: reads return `prefix` first, then
/// the socket's bytes. With a deadline set, reads from the socket fail once it passes (used when
/// a head too large for us to hold is handed to Pingora unfinished); with a head watch, once a
/// kept-alive request's head has taken longer than the head timeout. Everything else is the
/// wrapped connection's.
#[derive(Debug)]
pub struct Prefixed {
    prefix: Bytes,
    inner: Stream,
    deadline: Option<Pin<Box<Sleep>>>,
    watch: Option<HeadWatch>,
}

impl Prefixed {
    /// Wraps `inner` with nothing to replay.
    pub fn new(inner: Stream) -> Prefixed {
        Prefixed {
            prefix: Bytes::new(),
            inner,
            deadline: None,
            watch: None,
        }
    }

    /// The connection waits for its next request, which Pingora reads itself: its first byte
    /// must come within `keepalive` (else reads fail with `TimedOut` and `keepalive_idle` is
    /// counted), the head must be complete `head` after that byte (else `head` is counted),
    /// until `progress` says it was parsed.
    pub fn await_next_head(
        &mut self,
        progress: &Arc<HeadProgress>,
        keepalive: Duration,
        head: Duration,
    ) {
        let by = Instant::now() + keepalive;
        match &mut self.watch {
            Some(w) => w.by = by,
            None => {
                self.watch = Some(HeadWatch {
                    progress: progress.clone(),
                    head,
                    by,
                    sleep: None,
                })
            }
        }
        progress.0.store(IDLE, Ordering::Relaxed);
    }

    /// Bytes to replay before the socket's (the head read so far), replacing any left.
    pub fn set_prefix(&mut self, prefix: Bytes) {
        self.prefix = prefix;
    }

    /// Reads from the socket fail with `TimedOut` after `after` (None: no deadline).
    pub fn set_deadline(&mut self, after: Option<Duration>) {
        self.deadline = after.map(|d| Box::pin(tokio::time::sleep(d)));
    }

    /// Takes back a connection handed to Pingora (it gives back the `Stream` we gave it).
    pub fn recover(stream: Stream) -> Prefixed {
        if stream.as_any().is::<Prefixed>() {
            match stream.into_any().downcast::<Prefixed>() {
                Ok(p) => *p,
                Err(_) => unreachable!("type checked just above"),
            }
        } else {
            Prefixed::new(stream)
        }
    }

    /// The wrapped connection.
    pub fn inner(&self) -> &Stream {
        &self.inner
    }

    /// The wrapped connection, mutably (the PROXY protocol reader sets its peer address).
    pub fn inner_mut(&mut self) -> &mut Stream {
        &mut self.inner
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        if let Some(d) = this.deadline.as_mut() {
            if d.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(head_deadline_passed()));
            }
        }
        let Some(w) = this.watch.as_mut() else {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        };
        let state = w.progress.0.load(Ordering::Relaxed);
        if state == PARSED {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if r.is_pending() {
            if !w.passed(cx) {
                return r;
            }
            w.progress.parsed();
            let peer = super::peer_ip(&this.inner);
            if state == IDLE {
                // Pingora closes quietly on a failed read before any byte, as after its own
                // keep-alive timeout.
                super::ended(super::Ended::Deadline("keepalive_idle"), peer);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "keep-alive idle deadline passed",
                )));
            }
            super::deadline("head", peer);
            return Poll::Ready(Err(head_deadline_passed()));
        }
        if state == IDLE && buf.filled().len() > before {
            // The head's first byte: its own deadline starts.
            w.by = Instant::now() + w.head;
            w.progress.0.store(READING, Ordering::Relaxed);
        }
        r
    }
}

fn head_deadline_passed() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "request head deadline passed")
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for Prefixed {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(self.inner.as_mut()).await
    }
}

impl UniqueID for Prefixed {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Prefixed {
    fn get_ssl(&self) -> Option<&pingora::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl GetTimingDigest for Prefixed {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Prefixed {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Prefixed {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[async_trait]
impl Peek for Prefixed {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        // Peeking past replayed bytes is not supported (nothing of ours peeks: no h2c).
        if !self.prefix.is_empty() {
            return Ok(false);
        }
        self.inner.try_peek(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_ends_at_the_empty_line() {
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY";
        assert_eq!(end_of_head(req), Some(req.len() - 4));
    }

    #[test]
    fn incomplete_heads_have_no_end() {
        for partial in [
            &b""[..],
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert_eq!(end_of_head(partial), None, "{partial:?}");
        }
    }

    #[test]
    fn bare_line_feeds_end_a_head_as_pingora_accepts_them() {
        assert_eq!(end_of_head(b"GET / HTTP/1.1\nHost: x\n\nrest"), Some(24));
        assert_eq!(end_of_head(b"GET / HTTP/1.1\nHost: x\n\r\nrest"), Some(25));
    }

    #[test]
    fn leading_empty_lines_do_not_end_the_head() {
        assert_eq!(end_of_head(b"\r\n\r\n"), None);
        let req = b"\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(end_of_head(req), Some(req.len()));
    }

    #[test]
    fn any_split_finds_the_same_end() {
        let req = b"POST /_bulk HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let end = end_of_head(req).unwrap();
        for cut in 0..req.len() {
            let got = end_of_head(&req[..cut]);
            assert_eq!(got, (cut >= end).then_some(end), "cut at {cut}");
        }
    }
}
