//! Bounded inflate of a gzip request body (SPEC §5): exactly one gzip member, its CRC32 and
//! length checked at the member's end, nothing after it, and the inflated size capped both in
//! total and per received chunk (the gzip-bomb guard that also bounds memory). Owns only
//! "bytes in → inflated bytes out"; it never looks at lines.
//!
//! Two inflaters give the same verdicts:
//! - [`Inflater`]: streaming zlib-ng (flate2), chunk by chunk as the body arrives; every body
//!   can take this path, and every refusal is worded by it.
//! - [`inflate_whole`]: libdeflate (the `libdeflater` crate) on a body held whole, into one
//!   buffer sized by the trailer's ISIZE. libdeflate inflates capture's bulks about 1.35x faster
//!   than zlib-ng, but it needs the whole input and output in memory and reports neither where
//!   the member ended nor why it failed. So it only answers "these are the bytes" when zlib-ng
//!   would give the same bytes: the header has no FHCRC (libdeflate skips that check), ISIZE is
//!   within both caps (so no received chunk can have inflated past `max_chunk_inflated`),
//!   the buffers fit the process-wide [`Grant`] budget, libdeflate checked the CRC32 and the
//!   length, and the 4 bytes of ISIZE occur nowhere in the body before its last 4 (libdeflate
//!   read a matching ISIZE right after the deflate stream, so the stream ends exactly 8 bytes
//!   before the body does: no second member, no trailing bytes). In every other case it
//!   answers [`Whole::Fallback`] and the caller runs the held chunks through [`Inflater`],
//!   which words the refusal exactly as before. One difference remains and cannot be detected
//!   without decoding the stream: libdeflate also decodes a few Huffman encodings zlib refuses
//!   (a one-codeword precode, the unused half of a one-codeword code, HLIT/HDIST counts past
//!   286/30). No encoder writes them, and a stream using them still needs a matching CRC32.
//!   Inflated bodies: what goes upstream is the bytes every line check passed. Bodies stored
//!   and forwarded compressed (lax): ES's own zlib inflater refuses such a stream whole, so it
//!   cannot read lines other than the ones checked here.
//!
//! Whole-body output buffers ([`OutBuf`]) are recycled: libdeflate writes into an initialised
//! slice, and zeroing a fresh megabyte for it costs about as much as 2% of inflating and
//! checking that megabyte (it also evicts the cache lines libdeflate is about to write). A
//! buffer given back is kept for the next inflate when it is at most [`SPARE_MAX_BYTES`] and
//! fewer than [`SPARE_BUFFERS`] are kept: at most 8 MiB of idle buffers, outside the inflate
//! budget (they belong to no request), sized for capture's bulks (`dbBulkSize` defaults to
//! 1 MB). No pooling crate fits buffers that travel inside a [`bytes::Bytes`] and come back
//! when its last copy drops, so this is a vector under a mutex taken twice per gzip bulk.

use crate::policy::Limits;
use crate::reject::Reject;
use flate2::{Decompress, FlushDecompress, Status};
use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Bytes currently held by whole-body inflates in this process (compressed bodies waiting for
/// their end, and their inflated output until it is dropped), against `esProxyInflateBudget`.
static WHOLE_USED: AtomicUsize = AtomicUsize::new(0);

/// A share of the whole-body inflate budget, given back when dropped. Reservations never wait:
/// a request that gets none takes the streaming path.
#[derive(Debug)]
pub struct Grant {
    used: &'static AtomicUsize,
    cap: usize,
    n: usize,
}

impl Grant {
    /// `n` bytes of the process-wide budget of `cap` bytes, if that many are free.
    pub fn process(cap: usize, n: usize) -> Option<Grant> {
        Grant::take(&WHOLE_USED, cap, n)
    }

    /// `n` bytes of the budget counted in `used` (tests use their own counter).
    pub fn take(used: &'static AtomicUsize, cap: usize, n: usize) -> Option<Grant> {
        used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
            u.checked_add(n).filter(|&t| t <= cap)
        })
        .ok()?;
        Some(Grant { used, cap, n })
    }

    /// `n` more bytes of the same budget.
    pub fn more(&self, n: usize) -> Option<Grant> {
        Grant::take(self.used, self.cap, n)
    }

    /// `n` more bytes of the same budget, counted even past its cap: memory already in use
    /// (a held body's output inflated without room), so that later bodies stream instead.
    pub fn force(&self, n: usize) -> Grant {
        self.used.fetch_add(n, Ordering::AcqRel);
        Grant {
            used: self.used,
            cap: self.cap,
            n,
        }
    }

    /// Bytes currently taken from the process-wide budget.
    pub fn process_used() -> usize {
        WHOLE_USED.load(Ordering::Acquire)
    }
}

impl Drop for Grant {
    fn drop(&mut self) {
        self.used.fetch_sub(self.n, Ordering::AcqRel);
    }
}

/// What [`inflate_whole`] made of a body.
#[derive(Debug)]
pub enum Whole {
    /// The inflated body, exactly what [`Inflater`] would have produced, and the budget its
    /// buffer takes (keep it as long as the buffer lives).
    Inflated(OutBuf, Grant),
    /// Not decided here: run the body through [`Inflater`] (the reason is for tests and logs).
    Fallback(&'static str),
}

/// FHCRC: the header carries a CRC16, which zlib checks and libdeflate skips.
const FHCRC: u8 = 0x02;
/// Fixed header (10) and trailer (8) of a gzip member.
const MIN_MEMBER: usize = 18;

/// Inflates a whole gzip `body` with libdeflate when the answer is sure to be the one
/// [`Inflater`] would give (module docs); `held` is the budget grant of the caller, which the
/// output buffer's grant is drawn from.
pub fn inflate_whole(body: &[u8], limits: &Limits, held: &Grant) -> Whole {
    let len = body.len();
    if len < MIN_MEMBER || body[..3] != [0x1f, 0x8b, 8] {
        return Whole::Fallback("not a gzip member");
    }
    if body[3] & FHCRC != 0 {
        return Whole::Fallback("header CRC");
    }
    let isize_bytes: [u8; 4] = [body[len - 4], body[len - 3], body[len - 2], body[len - 1]];
    let size = u32::from_le_bytes(isize_bytes) as usize;
    if size as u64 > limits.max_inflated || size > limits.max_chunk_inflated {
        return Whole::Fallback("ISIZE over a cap");
    }
    let Some(grant) = held.more(size) else {
        return Whole::Fallback("budget taken");
    };
    // Read only after libdeflate wrote all `size` bytes (`n == size` below): a spare's old
    // bytes never leave this function.
    let mut out = SPARES.out_buf(size);
    let inflated = DECOMPRESSOR.with_borrow_mut(|d| d.gzip_decompress(body, &mut out));
    match inflated {
        Ok(n) if n == size => {}
        _ => return Whole::Fallback("libdeflate refused"),
    }
    // libdeflate found this ISIZE right after the deflate stream, which it reads no further
    // than 8 bytes before the end: if the first occurrence is the last 4 bytes, the member
    // ends exactly at the end of the body.
    if memchr::memmem::find(body, &isize_bytes) != Some(len - 4) {
        return Whole::Fallback("ISIZE bytes inside the body");
    }
    Whole::Inflated(out, grant)
}

thread_local! {
    /// libdeflate's decompressor holds no state between calls: one per thread, not one
    /// allocation per body.
    static DECOMPRESSOR: RefCell<libdeflater::Decompressor> =
        RefCell::new(libdeflater::Decompressor::new());
}

/// Spare output buffers kept at most (module docs).
pub const SPARE_BUFFERS: usize = 2;
/// Largest output buffer kept as a spare (module docs).
pub const SPARE_MAX_BYTES: usize = 4 << 20;

/// Output buffers given back, for the next whole-body inflate (module docs).
#[derive(Debug, Default)]
pub struct Spares(Mutex<Vec<Vec<u8>>>);

/// The process's spares.
static SPARES: Spares = Spares::new();

impl Spares {
    /// No spare yet.
    pub const fn new() -> Spares {
        Spares(Mutex::new(Vec::new()))
    }

    /// How many spare buffers are kept now.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is kept now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A buffer of `len` bytes that goes back to these spares when dropped. Its content is
    /// unspecified (a spare's old bytes; only bytes past its old length are zeroed): the caller
    /// uses it only once every byte was written.
    pub fn out_buf(&'static self, len: usize) -> OutBuf {
        let spare = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut v = spare.unwrap_or_default();
        v.resize(len, 0);
        OutBuf { v, home: self }
    }

    fn give_back(&self, v: Vec<u8>) {
        if v.capacity() == 0 || v.capacity() > SPARE_MAX_BYTES {
            return;
        }
        let mut spare = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_BUFFERS {
            spare.push(v);
        }
    }
}

/// The output buffer of a whole-body inflate: its bytes are the inflated body, and it goes back
/// to its spares when dropped (module docs).
#[derive(Debug)]
pub struct OutBuf {
    v: Vec<u8>,
    home: &'static Spares,
}

impl std::ops::Deref for OutBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.v
    }
}

impl std::ops::DerefMut for OutBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.v
    }
}

impl AsRef<[u8]> for OutBuf {
    fn as_ref(&self) -> &[u8] {
        &self.v
    }
}

impl Drop for OutBuf {
    fn drop(&mut self) {
        self.home.give_back(std::mem::take(&mut self.v));
    }
}

/// Output space added per inflate call; the buffer grows geometrically beyond that.
const STEP: usize = 64 * 1024;

/// Inflates one gzip member across chunks.
#[derive(Debug)]
pub struct Inflater {
    z: Decompress,
    /// The member ended and zlib verified its trailer (CRC32 and ISIZE).
    done: bool,
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// A fresh inflater expecting a gzip header.
    pub fn new() -> Inflater {
        Inflater {
            // 15 = full window; new_gzip expects the gzip wrapper only (no zlib, no raw).
            z: Decompress::new_gzip(15),
            done: false,
        }
    }

    /// Whether the member has ended with a good trailer.
    pub fn finished(&self) -> bool {
        self.done
    }

    /// Total inflated bytes so far.
    pub fn total_out(&self) -> u64 {
        self.z.total_out()
    }

    /// Inflates all of `input`, appending to `out`. Refuses bytes after the member's end,
    /// corrupt data, more than `limits.max_chunk_inflated` bytes from this one call, and more
    /// than `limits.max_inflated` bytes in total.
    pub fn inflate(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limits: &Limits,
    ) -> Result<(), Reject> {
        let start_out = self.z.total_out();
        loop {
            if self.done {
                if !input.is_empty() {
                    return Err(Reject::BadEncoding("data after the gzip member".into()));
                }
                return Ok(());
            }
            let produced = (self.z.total_out() - start_out) as usize;
            // Grow geometrically, but never past what the per-chunk cap still allows (+1 to
            // detect going over), so a bomb cannot make us allocate beyond it.
            let room_left = limits.max_chunk_inflated.saturating_add(1) - produced;
            if out.capacity() == out.len() {
                out.reserve_exact(out.len().max(STEP).min(room_left).max(1));
            }
            let spare = out.capacity() - out.len();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress_vec(input, out, FlushDecompress::None)
                .map_err(|e| Reject::BadEncoding(format!("corrupt gzip: {e}")))?;
            let consumed = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            input = &input[consumed..];
            if (self.z.total_out() - start_out) as usize > limits.max_chunk_inflated {
                return Err(Reject::TooLarge(format!(
                    "one chunk inflates to more than {} bytes",
                    limits.max_chunk_inflated
                )));
            }
            if self.z.total_out() > limits.max_inflated {
                return Err(Reject::TooLarge(format!(
                    "inflated body over {} bytes",
                    limits.max_inflated
                )));
            }
            match status {
                Status::StreamEnd => self.done = true,
                Status::Ok | Status::BufError => {
                    let out_full = made == spare;
                    if input.is_empty() && !out_full {
                        // Everything consumed and room left: zlib needs more input.
                        return Ok(());
                    }
                    if consumed == 0 && made == 0 && !out_full {
                        return Err(Reject::BadEncoding("gzip stream stalled".into()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn inflate_all(body: &[u8], limits: &Limits) -> Result<(Vec<u8>, bool), Reject> {
        let mut i = Inflater::new();
        let mut out = Vec::new();
        i.inflate(body, &mut out, limits)?;
        Ok((out, i.finished()))
    }

    #[test]
    fn one_member_inflates_and_finishes() {
        let data = b"{\"a\":1}\n".repeat(1000);
        let (out, done) = inflate_all(&gz(&data), &Limits::default()).unwrap();
        assert_eq!(out, data);
        assert!(done);
    }

    #[test]
    fn byte_by_byte_input_gives_the_same_output() {
        let data = b"hello gzip world\n".repeat(300);
        let body = gz(&data);
        let mut i = Inflater::new();
        let mut out = Vec::new();
        for b in &body {
            i.inflate(std::slice::from_ref(b), &mut out, &Limits::default())
                .unwrap();
        }
        assert_eq!(out, data);
        assert!(i.finished());
    }

    #[test]
    fn truncated_member_is_not_finished() {
        let body = gz(b"some data\n");
        let (_, done) = inflate_all(&body[..body.len() - 4], &Limits::default()).unwrap();
        assert!(!done);
    }

    #[test]
    fn bad_crc_is_bad_encoding() {
        let mut body = gz(b"some data\n");
        let n = body.len();
        body[n - 8] ^= 0xFF;
        assert!(matches!(
            inflate_all(&body, &Limits::default()),
            Err(Reject::BadEncoding(_))
        ));
    }

    #[test]
    fn bad_length_is_bad_encoding() {
        let mut body = gz(b"some data\n");
        let n = body.len();
        body[n - 1] ^= 0x01;
        assert!(matches!(
            inflate_all(&body, &Limits::default()),
            Err(Reject::BadEncoding(_))
        ));
    }

    #[test]
    fn second_member_or_trailing_garbage_is_bad_encoding() {
        let mut two = gz(b"a\n");
        two.extend(gz(b"b\n"));
        assert!(matches!(
            inflate_all(&two, &Limits::default()),
            Err(Reject::BadEncoding(_))
        ));
        let mut junk = gz(b"a\n");
        junk.push(0);
        assert!(matches!(
            inflate_all(&junk, &Limits::default()),
            Err(Reject::BadEncoding(_))
        ));
        // Also when the garbage comes in a later call.
        let mut i = Inflater::new();
        let mut out = Vec::new();
        i.inflate(&gz(b"a\n"), &mut out, &Limits::default())
            .unwrap();
        assert!(i.inflate(b"x", &mut out, &Limits::default()).is_err());
        assert!(i.inflate(b"", &mut out, &Limits::default()).is_ok());
    }

    #[test]
    fn not_gzip_is_bad_encoding() {
        assert!(matches!(
            inflate_all(b"{\"index\":{}}\n", &Limits::default()),
            Err(Reject::BadEncoding(_))
        ));
        // A zlib stream is not a gzip member.
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::new(6));
        z.write_all(b"abc").unwrap();
        assert!(inflate_all(&z.finish().unwrap(), &Limits::default()).is_err());
    }

    #[test]
    fn gzip_bomb_is_stopped_at_the_per_chunk_cap_without_allocating_past_it() {
        let body = gz(&vec![b'a'; 50 << 20]);
        assert!(body.len() < 100_000);
        let limits = Limits {
            max_chunk_inflated: 1 << 20,
            ..Limits::default()
        };
        let mut i = Inflater::new();
        let mut out = Vec::new();
        let r = i.inflate(&body, &mut out, &limits);
        assert!(matches!(r, Err(Reject::TooLarge(_))), "{r:?}");
        assert!(out.capacity() <= (1 << 21), "capacity {}", out.capacity());
    }

    #[test]
    fn total_inflated_size_is_capped() {
        let data = vec![b'a'; 300_000];
        let body = gz(&data);
        let limits = Limits {
            max_inflated: 200_000,
            ..Limits::default()
        };
        let mut i = Inflater::new();
        let mut out = Vec::new();
        let mut err = None;
        for c in body.chunks(1000) {
            if let Err(e) = i.inflate(c, &mut out, &limits) {
                err = Some(e);
                break;
            }
        }
        assert!(matches!(err, Some(Reject::TooLarge(_))));
    }

    /// A budget counter of the test's own (the process-wide one is shared by parallel tests).
    fn counter() -> &'static AtomicUsize {
        Box::leak(Box::new(AtomicUsize::new(0)))
    }

    fn held(n: usize) -> Grant {
        Grant::take(counter(), 1 << 30, n).unwrap()
    }

    /// The streaming verdict on a whole body: its bytes, or the refusal (unfinished member
    /// included, as the validator words it at the end of the stream).
    fn streamed(body: &[u8], limits: &Limits) -> Result<Vec<u8>, Reject> {
        let (out, done) = inflate_all(body, limits)?;
        if !done {
            return Err(Reject::BadEncoding("unfinished".into()));
        }
        Ok(out)
    }

    /// Whole-body inflate never answers differently from the streaming inflater: when it
    /// inflates, the streaming path gives the same bytes.
    fn agree(body: &[u8], limits: &Limits) -> Whole {
        let w = inflate_whole(body, limits, &held(body.len()));
        if let Whole::Inflated(out, _) = &w {
            assert_eq!(streamed(body, limits).as_deref().ok(), Some(&out[..]));
        }
        w
    }

    fn fallback(body: &[u8], limits: &Limits) -> &'static str {
        match agree(body, limits) {
            Whole::Fallback(why) => {
                assert!(streamed(body, limits).is_err() || why == "budget taken");
                why
            }
            Whole::Inflated(..) => panic!("inflated a body the streaming path refuses"),
        }
    }

    #[test]
    fn whole_body_inflate_gives_the_streamed_bytes() {
        let data = b"{\"index\":{}}\n{\"a\":1}\n".repeat(5000);
        let Whole::Inflated(out, grant) = agree(&gz(&data), &Limits::default()) else {
            panic!("a plain member falls back")
        };
        assert_eq!(&out[..], &data[..]);
        assert_eq!(grant.n, data.len());
    }

    #[test]
    fn whole_body_inflate_leaves_refusals_to_the_streaming_path() {
        let l = Limits::default();
        let data = b"some data to compress\n".repeat(100);
        let good = gz(&data);
        let n = good.len();
        let mut crc = good.clone();
        crc[n - 8] ^= 1;
        assert_eq!(fallback(&crc, &l), "libdeflate refused");
        // ISIZE that lies, smaller or larger.
        let mut small = good.clone();
        small[n - 4] ^= 1;
        assert_eq!(fallback(&small, &l), "libdeflate refused");
        let mut big = good.clone();
        big[n - 2] = 1;
        assert_eq!(fallback(&big, &l), "libdeflate refused");
        // A second member, a duplicate member, a copy of the trailer, one trailing byte.
        let mut two = good.clone();
        two.extend(gz(b"more\n"));
        fallback(&two, &l);
        let mut twice = good.clone();
        twice.extend(&good);
        assert_eq!(fallback(&twice, &l), "ISIZE bytes inside the body");
        let mut trailer_again = good.clone();
        trailer_again.extend_from_slice(&good[n - 8..]);
        assert_eq!(fallback(&trailer_again, &l), "ISIZE bytes inside the body");
        let mut junk = good.clone();
        junk.push(0);
        fallback(&junk, &l);
        // Truncated, not gzip.
        fallback(&good[..n - 1], &l);
        fallback(b"{\"index\":{}}\n", &l);
    }

    #[test]
    fn output_buffers_come_back_as_spares_within_both_bounds() {
        let spares: &'static Spares = Box::leak(Box::new(Spares::new()));
        let mut a = spares.out_buf(1000);
        a.fill(7);
        let b = spares.out_buf(10);
        assert!(spares.is_empty());
        drop(a);
        drop(b);
        assert_eq!(spares.len(), 2);
        // Taken again at another length: exactly that length, the old bytes kept only where
        // the caller overwrites them anyway.
        let c = spares.out_buf(2000);
        assert_eq!(c.len(), 2000);
        let d = spares.out_buf(5);
        assert_eq!(d.len(), 5);
        assert!(spares.is_empty());
        // Never more than SPARE_BUFFERS, never one over SPARE_MAX_BYTES.
        let e = spares.out_buf(1);
        drop((c, d, e));
        assert_eq!(spares.len(), SPARE_BUFFERS);
        let big = spares.out_buf(SPARE_MAX_BYTES + 1);
        let left = spares.len();
        drop(big);
        assert_eq!(spares.len(), left);
        let f = spares.out_buf(1);
        let g = spares.out_buf(1);
        assert!(spares.is_empty());
        drop((f, g));
        let (f, g) = (spares.out_buf(1), spares.out_buf(1));
        assert!(spares.is_empty());
        drop(spares.out_buf(SPARE_MAX_BYTES + 1));
        assert!(spares.is_empty());
        drop((f, g));
        assert_eq!(spares.len(), SPARE_BUFFERS);
    }

    #[test]
    fn a_reused_buffer_holds_only_the_new_body() {
        // Bodies inflated one after the other, bigger then smaller then bigger: each output
        // is exactly its own body (a spare's old bytes never show).
        for data in [
            b"first body, the longest of them all\n".repeat(3000),
            b"second\n".repeat(10),
            b"third body\n".repeat(2000),
        ] {
            let Whole::Inflated(out, _) = agree(&gz(&data), &Limits::default()) else {
                panic!("a plain member falls back")
            };
            assert_eq!(&out[..], &data[..]);
        }
    }

    #[test]
    fn a_header_crc_is_left_to_zlib_which_checks_it() {
        let mut body = gz(b"abc\n");
        // Set FHCRC and insert a wrong CRC16 after the 10-byte header.
        body[3] |= FHCRC;
        body.splice(10..10, [0u8, 0]);
        assert_eq!(fallback(&body, &Limits::default()), "header CRC");
    }

    #[test]
    fn isize_over_either_cap_falls_back_to_the_streaming_guard() {
        let data = vec![b'a'; 300_000];
        let body = gz(&data);
        let total = Limits {
            max_inflated: 200_000,
            ..Limits::default()
        };
        assert_eq!(fallback(&body, &total), "ISIZE over a cap");
        assert!(matches!(streamed(&body, &total), Err(Reject::TooLarge(_))));
        let chunk = Limits {
            max_chunk_inflated: 200_000,
            ..Limits::default()
        };
        assert_eq!(fallback(&body, &chunk), "ISIZE over a cap");
        assert!(matches!(streamed(&body, &chunk), Err(Reject::TooLarge(_))));
    }

    #[test]
    fn the_budget_bounds_whole_body_buffers_and_is_given_back_on_drop() {
        let used = counter();
        let data = vec![b'x'; 10_000];
        let body = gz(&data);
        let compressed = Grant::take(used, body.len() + 10_000, body.len()).unwrap();
        let Whole::Inflated(out, grant) = inflate_whole(&body, &Limits::default(), &compressed)
        else {
            panic!("fits the budget exactly")
        };
        assert_eq!(used.load(Ordering::Acquire), body.len() + 10_000);
        // No room for a second output buffer: fall back, take nothing.
        assert!(matches!(
            inflate_whole(&body, &Limits::default(), &compressed),
            Whole::Fallback("budget taken")
        ));
        drop((out, grant));
        assert_eq!(used.load(Ordering::Acquire), body.len());
        drop(compressed);
        assert_eq!(used.load(Ordering::Acquire), 0);
        assert!(Grant::take(used, 10, 11).is_none());
    }

    /// Some gzip member: data from a small alphabet (so it compresses into dynamic blocks)
    /// or raw bytes, at a random level.
    fn member() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            prop_oneof![
                proptest::collection::vec(
                    prop_oneof![Just(b'a'), Just(b'{'), Just(b'\n'), any::<u8>()],
                    0..8_000
                ),
                proptest::collection::vec(any::<u8>(), 0..3_000),
            ],
            0u32..10,
        )
            .prop_map(|(data, level)| {
                let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
                e.write_all(&data).unwrap();
                (data.clone(), e.finish().unwrap())
            })
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Both inflaters agree on valid members (and the whole-body one takes them).
        #[test]
        fn both_inflaters_agree_on_valid_members((data, body) in member()) {
            let l = Limits::default();
            match agree(&body, &l) {
                Whole::Inflated(out, _) => prop_assert_eq!(&out[..], &data[..]),
                // The ISIZE bytes may occur in the body by chance (an empty member always).
                Whole::Fallback(why) => prop_assert_eq!(why, "ISIZE bytes inside the body"),
            }
        }

        /// ... and on corrupted ones: a flipped byte, a cut, bytes appended.
        #[test]
        fn both_inflaters_agree_on_corrupted_members(
            (_, body) in member(),
            at in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            cut in any::<prop::sample::Index>(),
            tail in proptest::collection::vec(any::<u8>(), 0..12),
            how in 0u8..3,
        ) {
            let l = Limits::default();
            let mut bad = body.clone();
            match how {
                0 => { let i = at.index(bad.len()); bad[i] ^= flip; }
                1 => bad.truncate(cut.index(bad.len())),
                _ => { bad.extend_from_slice(&tail); bad.extend_from_slice(&body[body.len() - 8..]); }
            }
            // `agree` asserts the contract: inflated bytes are the streamed ones.
            agree(&bad, &l);
        }
    }
}
