//! Bounded streaming inflate of a gzip request body (SPEC §5): exactly one gzip member, its
//! CRC32 and length checked by zlib at the member's end, nothing after it, and the inflated size
//! capped both in total and per received chunk (the gzip-bomb guard that also bounds memory).
//! Owns only "bytes in → inflated bytes out"; it never looks at lines.

use crate::policy::Limits;
use crate::reject::Reject;
use flate2::{Decompress, FlushDecompress, Status};

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
}
