//! The per-request `_bulk` state machine (SPEC §5): feeds received chunks through the optional
//! inflater and the framer, checks each complete line (action or source, strict or lax) and
//! releases only finished, validated units. Owns the order of lines and the limits on sizes; the
//! line checks themselves live in `action.rs` and `doc.rs`, the byte bookkeeping in `framer.rs`,
//! the bytes of a line sent as `create` in `create.rs` (this file puts them in place when the
//! unit is released: over the line itself when the length is the same, capture's case).
//!
//! A gzip body of known, bounded size may be held whole and inflated at its end by
//! [`gzip::inflate_whole`] ([`BulkValidator::inflate_whole`]): the same checks on the same lines
//! in the same order, so the same verdict, and when that inflater cannot vouch for its answer,
//! the held chunks go through the streaming path exactly as they were received.

use super::action::{self, IndexNames, Op, Target};
use super::create;
use super::doc::{self, DocRule};
use super::framer::Framer;
use super::gzip::{self, Grant, Inflater, Whole};
use super::{BodyEncoding, BulkStats, InflatePath};
use crate::json::scan::Scanner;
use crate::policy::{Limits, Policy};
use crate::reject::Reject;
use bytes::{Bytes, BytesMut};

/// What the next line must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// An action line (lax: or a blank line, which is skipped).
    Action,
    /// The source line of the preceding action: checked against the rule in strict mode,
    /// passed through unchecked (`None`) in lax mode.
    Source(Option<DocRule>),
}

/// Line-level state: everything but the byte buffers, so it can borrow them freely.
#[derive(Debug)]
struct Lines {
    strict: bool,
    sensor: Box<[u8]>,
    names: IndexNames,
    limits: Limits,
    expect: Expect,
    /// Lines seen so far (1-based number of the last complete line).
    line_no: u64,
    /// Line number of the action waiting for its source line.
    action_line: u64,
    framer: Framer,
    scanner: Scanner,
    stats: BulkStats,
    /// Lines of the working buffer (or chunk) that go upstream as other bytes, in order.
    rewrites: Vec<Rewrite>,
    /// The replacement bytes of the pending `rewrites`, one after the other (one buffer, not
    /// an allocation per line).
    rewrite_bytes: Vec<u8>,
}

/// An action line sent as `create` (`create.rs`): `start..end` (without the `\n`) of the buffer
/// the line was read from, and what to send instead: `rewrite_bytes[from..to]`.
#[derive(Debug)]
struct Rewrite {
    start: usize,
    end: usize,
    from: usize,
    to: usize,
}

/// Validates one `_bulk` request body as it streams in; see [`BulkValidator::feed`].
#[derive(Debug)]
pub struct BulkValidator {
    lines: Lines,
    /// Bytes received but not released: a held unit and/or an unterminated line (plain), or
    /// inflated bytes (gzip). Empty on the zero-copy path.
    work: Vec<u8>,
    gzip: Option<Inflater>,
    /// The first refusal; every later call repeats it.
    failed: Option<Reject>,
    /// End of stream was processed.
    finished: bool,
    /// Store and forward (gzip bodies of known, bounded size): the compressed chunks as
    /// received, released whole, unchanged, only once every inflated line checked out.
    original: Option<Vec<Bytes>>,
    /// Whole-body inflate (gzip bodies of known, bounded size): the compressed chunks as
    /// received and the budget they take, inflated at the end of the stream.
    whole: Option<HeldWhole>,
}

/// A gzip body held for [`gzip::inflate_whole`].
#[derive(Debug)]
struct HeldWhole {
    chunks: Vec<Bytes>,
    grant: Grant,
}

/// Inflated bytes released upstream together with the budget their buffer takes: the grant is
/// given back when the last copy of the bytes (the upstream write, a replay hold) is dropped.
struct Budgeted {
    bytes: Bytes,
    _grants: (Grant, Grant),
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl BulkValidator {
    /// A validator for one request from `sensor`, whose body arrives with `encoding`.
    pub fn new(policy: &Policy, sensor: &str, encoding: BodyEncoding) -> BulkValidator {
        BulkValidator {
            lines: Lines {
                strict: policy.strict,
                sensor: sensor.as_bytes().into(),
                names: IndexNames::new(policy, sensor),
                limits: policy.limits.clone(),
                expect: Expect::Action,
                line_no: 0,
                action_line: 0,
                framer: Framer::new(),
                scanner: Scanner::new(),
                stats: BulkStats {
                    inflate: match encoding {
                        BodyEncoding::Identity => InflatePath::None,
                        BodyEncoding::Gzip => InflatePath::Streamed,
                    },
                    ..BulkStats::default()
                },
                rewrites: Vec::new(),
                rewrite_bytes: Vec::new(),
            },
            work: Vec::new(),
            gzip: match encoding {
                BodyEncoding::Identity => None,
                BodyEncoding::Gzip => Some(Inflater::new()),
            },
            failed: None,
            finished: false,
            original: None,
            whole: None,
        }
    }

    /// Whole-body inflate for a gzip body whose compressed size `grant` covers (the caller
    /// knows the size from Content-Length and bounds it): nothing is released before the end
    /// of the stream, then the whole body is inflated at once ([`gzip::inflate_whole`]),
    /// checked, and released inflated (with [`BulkValidator::forward_original`]: as received).
    /// No effect on an identity body.
    pub fn inflate_whole(mut self, grant: Grant) -> BulkValidator {
        if self.gzip.is_some() {
            self.whole = Some(HeldWhole {
                chunks: Vec::new(),
                grant,
            });
            self.lines.stats.inflate = InflatePath::Whole;
        }
        self
    }

    /// Whether the body is held for whole-body inflate.
    pub fn holds_whole(&self) -> bool {
        self.whole.is_some()
    }

    /// Store and forward for a gzip body: the body is still inflated and every line checked as
    /// it arrives, but what `feed` releases is the body exactly as received (compressed), all of
    /// it at the end of the stream and nothing before. ES gets a sixth of the bytes to read and
    /// no byte of a bad body. The caller bounds the body's size (it is held whole); no effect
    /// on an identity body, nor in strict mode, where lines may go upstream as other bytes
    /// (`create.rs`) and compressed bytes cannot be rewritten.
    pub fn forward_original(mut self) -> BulkValidator {
        if self.gzip.is_some() && !self.lines.strict {
            self.original = Some(Vec::new());
        }
        self
    }

    /// Feed the next received body chunk (may be empty); `eos` is true on the last call (which
    /// may carry the last bytes or none). Returns the bytes to forward upstream now: only
    /// complete, validated lines, an action always together with its source line (for gzip:
    /// the inflated lines, the last unit only at end of stream, once the member's trailer
    /// checked out and nothing followed it). After an
    /// `Err` nothing more is forwarded: every later call returns the same error.
    pub fn feed(&mut self, chunk: Bytes, eos: bool) -> Result<Bytes, Reject> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.finished {
            if chunk.is_empty() {
                return Ok(Bytes::new());
            }
            return Err(self.fail(Reject::BadEncoding("data after end of body".into())));
        }
        if let Some(held) = self.original.as_mut() {
            if !chunk.is_empty() {
                held.push(chunk.clone());
            }
        }
        match self.feed_inner(chunk, eos) {
            Ok(out) => {
                self.lines.stats.bytes_out += out.len() as u64;
                self.finished = eos;
                Ok(out)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Counters for metrics and logs.
    pub fn stats(&self) -> &BulkStats {
        &self.lines.stats
    }

    fn fail(&mut self, e: Reject) -> Reject {
        self.failed = Some(e.clone());
        // Nothing held will ever be released; give the memory back now.
        self.work = Vec::new();
        self.lines.rewrites = Vec::new();
        self.lines.rewrite_bytes = Vec::new();
        if self.original.is_some() {
            self.original = Some(Vec::new());
        }
        self.whole = None;
        e
    }

    fn feed_inner(&mut self, chunk: Bytes, eos: bool) -> Result<Bytes, Reject> {
        self.lines.stats.bytes_in += chunk.len() as u64;
        if self.lines.stats.bytes_in > self.lines.limits.max_body {
            return Err(Reject::TooLarge(format!(
                "bulk body over {} bytes",
                self.lines.limits.max_body
            )));
        }
        if let Some(held) = self.whole.as_mut() {
            if !chunk.is_empty() {
                held.chunks.push(chunk);
            }
            if !eos {
                return Ok(Bytes::new());
            }
            return match self.whole.take() {
                Some(held) => self.finish_whole(held),
                None => Ok(Bytes::new()),
            };
        }
        self.feed_stream(chunk, eos)
    }

    /// The end of a body held for whole-body inflate: inflated at once and checked, or, when
    /// [`gzip::inflate_whole`] cannot vouch for its answer, fed chunk by chunk to the streaming
    /// path as received (same verdict, same words), all released now.
    fn finish_whole(&mut self, held: HeldWhole) -> Result<Bytes, Reject> {
        let HeldWhole { chunks, grant } = held;
        let body = concat(chunks.clone());
        match gzip::inflate_whole(&body, &self.lines.limits, &grant) {
            Whole::Inflated(mut buf, out_grant) => {
                drop(body);
                self.lines.process(&buf)?;
                self.lines.finish(&buf)?;
                let n = self.lines.framer.releasable(false);
                debug_assert_eq!(n, buf.len(), "every line of a finished body is released");
                self.lines.framer.consume(n);
                if let Some(original) = self.original.take() {
                    // Store and forward: every line checked out; the body goes as received.
                    self.original = Some(Vec::new());
                    return Ok(concat(original));
                }
                // The buffer is ours alone: capture's rewrites go in place, and the buffer goes
                // back to the spares once the last copy of the bytes is dropped.
                let in_place = self.lines.rewrite_in_place(&mut buf[..n]);
                let mut head = Bytes::from_owner(buf);
                head.truncate(n);
                let bytes = if in_place {
                    head
                } else {
                    self.lines.rewritten(head)
                };
                Ok(Bytes::from_owner(Budgeted {
                    bytes,
                    _grants: (grant, out_grant),
                }))
            }
            Whole::Fallback(_) => {
                drop(body);
                self.lines.stats.inflate = InflatePath::Fallback;
                let last = chunks.len().saturating_sub(1);
                let mut out = Vec::with_capacity(chunks.len().max(1));
                if chunks.is_empty() {
                    out.push(self.feed_stream(Bytes::new(), true)?);
                }
                for (i, c) in chunks.into_iter().enumerate() {
                    out.push(self.feed_stream(c, i == last)?);
                }
                // The output is held whole like the fast path's: counted in the budget (past
                // its cap if need be) until dropped, so that later bodies stream meanwhile.
                let bytes = concat(out);
                let counted = grant.force(bytes.len());
                Ok(Bytes::from_owner(Budgeted {
                    bytes,
                    _grants: (grant, counted),
                }))
            }
        }
    }

    /// One received chunk through the streaming path (inflated if gzip, lines checked).
    fn feed_stream(&mut self, chunk: Bytes, eos: bool) -> Result<Bytes, Reject> {
        match &mut self.gzip {
            None if self.work.is_empty() => return self.feed_zero_copy(chunk, eos),
            None => self.work.extend_from_slice(&chunk),
            Some(gz) => gz.inflate(&chunk, &mut self.work, &self.lines.limits)?,
        }
        self.lines.process(&self.work)?;
        if eos {
            if self.gzip.as_ref().is_some_and(|g| !g.finished()) {
                return Err(Reject::BadEncoding(
                    "gzip body ends before its member does".into(),
                ));
            }
            self.lines.finish(&self.work)?;
        }
        // A gzip body's last unit waits for the end of the stream: by then the member's
        // trailer (CRC32, length) has checked out and nothing followed it.
        let hold_last = self.gzip.is_some() && !eos;
        let n = self.lines.framer.releasable(hold_last);
        if let Some(held) = self.original.as_mut() {
            // Store and forward: the checked lines are not sent (the buffer is reused); the
            // received bytes go instead, all at once at the end.
            self.work.drain(..n);
            self.lines.framer.consume(n);
            return Ok(if eos {
                concat(std::mem::take(held))
            } else {
                Bytes::new()
            });
        }
        Ok(self.release(n))
    }

    /// Plain body, nothing carried over: lines are checked in the chunk itself and the
    /// released bytes are a slice of it; only the unfinished tail is copied.
    fn feed_zero_copy(&mut self, chunk: Bytes, eos: bool) -> Result<Bytes, Reject> {
        self.lines.process(&chunk)?;
        if eos {
            self.lines.finish(&chunk)?;
        }
        let n = self.lines.framer.releasable(false);
        if n < chunk.len() {
            self.work.extend_from_slice(&chunk[n..]);
        }
        self.lines.framer.consume(n);
        let mut head = chunk;
        head.truncate(n);
        Ok(self.lines.rewritten(head))
    }

    /// Hands the first `n` bytes of the working buffer upstream without copying them; the
    /// (small) unreleased tail moves to a fresh buffer sized for the next chunk.
    fn release(&mut self, n: usize) -> Bytes {
        if n == 0 {
            return Bytes::new();
        }
        let rest = self.work.len() - n;
        // Room for what the next chunk will bring (plain: the zero-copy path needs none when
        // nothing is carried; gzip: about this chunk's inflated size), within reason.
        let hint = if self.gzip.is_none() && rest == 0 {
            0
        } else {
            rest + self.work.len().min(1 << 20)
        };
        let mut next = Vec::with_capacity(hint);
        next.extend_from_slice(&self.work[n..]);
        self.work.truncate(n);
        let head = std::mem::replace(&mut self.work, next);
        self.lines.framer.consume(n);
        self.lines.rewritten(Bytes::from(head))
    }
}

impl Lines {
    fn bad(&self, line: u64, reason: impl Into<String>) -> Reject {
        Reject::BadBulk {
            line,
            reason: reason.into(),
        }
    }

    /// Checks every complete line of `buf` not seen yet, then the length of the unterminated
    /// rest (a line over the limit is refused as soon as it is known to be one).
    fn process(&mut self, buf: &[u8]) -> Result<(), Reject> {
        while let Some((start, nl)) = self.framer.next_line(buf) {
            self.line(&buf[start..nl], start, nl + 1)?;
        }
        let partial = self.framer.partial_len(buf);
        if partial > self.limits.max_line {
            return Err(self.too_long(self.line_no + 1));
        }
        Ok(())
    }

    /// End of stream: the unterminated last line (strict: refused; lax: checked as a line) and
    /// an action still waiting for its source line (refused in both modes).
    fn finish(&mut self, buf: &[u8]) -> Result<(), Reject> {
        if let Some((start, end)) = self.framer.take_partial(buf) {
            if self.strict {
                return Err(self.bad(self.line_no + 1, "last line has no newline"));
            }
            self.line(&buf[start..end], start, end)?;
        }
        if let Expect::Source(_) = self.expect {
            return Err(self.bad(self.action_line, "action without its source line"));
        }
        Ok(())
    }

    /// `head`, the first bytes of the buffer being released, with the rewrites that fall in it
    /// applied; the rest move to where they are once `head` is consumed. Units are released
    /// whole, so no rewritten line straddles the end of `head`.
    fn rewritten(&mut self, head: Bytes) -> Bytes {
        let n = head.len();
        let split = self.rewrites.partition_point(|r| r.start < n);
        let out = if split == 0 {
            head
        } else {
            apply(head, &self.rewrites[..split], &self.rewrite_bytes)
        };
        self.rewrites.drain(..split);
        // The bytes of the rewrites still pending move to the front of their buffer.
        let keep = self
            .rewrites
            .first()
            .map_or(self.rewrite_bytes.len(), |r| r.from);
        self.rewrite_bytes.drain(..keep);
        for r in &mut self.rewrites {
            r.start -= n;
            r.end -= n;
            r.from -= keep;
            r.to -= keep;
        }
        out
    }

    /// Applies every pending rewrite to `buf`, the whole released body, when each keeps its
    /// line's length (capture's lines); otherwise changes nothing and answers false (then
    /// [`Lines::rewritten`] builds the body anew).
    fn rewrite_in_place(&mut self, buf: &mut [u8]) -> bool {
        let fits = self
            .rewrites
            .iter()
            .all(|r| r.to - r.from == r.end - r.start && r.end <= buf.len());
        if !fits {
            return false;
        }
        for r in &self.rewrites {
            buf[r.start..r.end].copy_from_slice(&self.rewrite_bytes[r.from..r.to]);
        }
        self.rewrites.clear();
        self.rewrite_bytes.clear();
        true
    }

    fn too_long(&self, line: u64) -> Reject {
        Reject::TooLarge(format!(
            "bulk line {line} longer than {} bytes",
            self.limits.max_line
        ))
    }

    /// One complete line (without `\n`) spanning `start..end` of the working buffer (`end`
    /// includes the `\n` when there is one).
    fn line(&mut self, line: &[u8], start: usize, end: usize) -> Result<(), Reject> {
        self.line_no += 1;
        self.stats.lines += 1;
        let no = self.line_no;
        if line.len() > self.limits.max_line {
            return Err(self.too_long(no));
        }
        match self.expect {
            Expect::Action => {
                self.framer.begin_unit(start);
                if is_blank(line) {
                    if self.strict {
                        return Err(self.bad(no, "blank line"));
                    }
                    // esProxy.js and ES both skip a blank line where an action is expected.
                    self.framer.end_unit(end);
                    return Ok(());
                }
                if self.strict && line.last() == Some(&b'\r') {
                    return Err(self.bad(no, "line ends with CR"));
                }
                let shape = action::capture_shape(line);
                let a = action::check_read(
                    line,
                    shape,
                    &self.names,
                    self.strict,
                    self.limits.max_depth,
                )
                .map_err(|r| self.bad(no, r))?;
                if a.as_create {
                    let from = self.rewrite_bytes.len();
                    if !create::line_into(line, shape, &mut self.rewrite_bytes) {
                        return Err(self.bad(no, "action line cannot be sent as create"));
                    }
                    let to = self.rewrite_bytes.len();
                    let end = start + line.len();
                    self.rewrites.push(Rewrite {
                        start,
                        end,
                        from,
                        to,
                    });
                }
                self.stats.actions += 1;
                self.stats.actions_without_id += u64::from(!a.with_id);
                if a.has_source() {
                    let rule = match (a.target, a.op) {
                        (Target::Sessions, _) => DocRule::Session,
                        (Target::Fields, Op::Update) => DocRule::FieldsUpdate,
                        (Target::Fields, _) => DocRule::FieldsIndex,
                    };
                    self.action_line = no;
                    self.expect = Expect::Source(self.strict.then_some(rule));
                } else {
                    self.framer.end_unit(end);
                }
            }
            Expect::Source(rule) => {
                // Lax: the line after an action is its source, whatever it is (as ES pairs them).
                if let Some(rule) = rule {
                    if is_blank(line) {
                        return Err(self.bad(no, "blank line"));
                    }
                    if line.last() == Some(&b'\r') {
                        return Err(self.bad(no, "line ends with CR"));
                    }
                    doc::check(
                        &mut self.scanner,
                        line,
                        rule,
                        &self.sensor,
                        self.limits.max_depth,
                    )
                    .map_err(|r| self.bad(no, r))?;
                }
                self.stats.docs += 1;
                self.expect = Expect::Action;
                self.framer.end_unit(end);
            }
        }
        Ok(())
    }
}

/// The chunks as one buffer (one copy, none for a single chunk).
fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().unwrap_or_default(),
        _ => {
            let mut all = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
            for c in &chunks {
                all.extend_from_slice(c);
            }
            Bytes::from(all)
        }
    }
}

/// Empty or only JSON whitespace (what ES itself skips where it expects an action).
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r'))
}

/// `head` with the rewrites `now` (all inside it, in order) applied, their bytes taken from
/// `bytes`.
fn apply(head: Bytes, now: &[Rewrite], bytes: &[u8]) -> Bytes {
    if now.iter().all(|r| r.to - r.from == r.end - r.start) {
        // Capture's lines: overwrite in place (the buffer is ours alone but for a copy when
        // Pingora still shares the chunk).
        let mut m = head
            .try_into_mut()
            .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
        for r in now {
            m[r.start..r.end].copy_from_slice(&bytes[r.from..r.to]);
        }
        return m.freeze();
    }
    let grown: usize = now
        .iter()
        .map(|r| (r.to - r.from).saturating_sub(r.end - r.start))
        .sum();
    let mut out = Vec::with_capacity(head.len() + grown);
    let mut at = 0;
    for r in now {
        out.extend_from_slice(&head[at..r.start]);
        out.extend_from_slice(&bytes[r.from..r.to]);
        at = r.end;
    }
    out.extend_from_slice(&head[at..]);
    Bytes::from(out)
}
