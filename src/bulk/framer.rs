//! NDJSON framing across chunks (SPEC §5): where complete lines are in the working buffer,
//! which prefix of it is made of finished units (a lone line or an action with its source line)
//! and may go upstream, and what must be held back. Bytes and offsets only: it never looks
//! inside a line, and it owns no buffer (the validator passes the bytes in).
//!
//! Offsets are relative to the start of the caller's working buffer; after the caller hands the
//! first `n` bytes upstream it calls [`Framer::consume`] so the offsets follow the buffer.

/// Line and unit boundaries in the working buffer.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Framer {
    /// Start of the next line not yet handed out.
    line_start: usize,
    /// No `\n` exists in `line_start..search_from`: the next search resumes here, so a long
    /// line arriving in many chunks is searched once, not once per chunk.
    search_from: usize,
    /// Start of the unit being built (an action waiting for its source line).
    unit_start: usize,
    /// End (after the `\n`) of the last finished unit: everything before is validated.
    done_end: usize,
    /// Start of the last finished unit (a gzip body holds it back until end of stream).
    last_unit_start: usize,
}

impl Framer {
    /// A framer at the start of a body.
    pub fn new() -> Framer {
        Framer::default()
    }

    /// The next complete line of `buf` as `(start, end)`, `end` being the index of its `\n`.
    pub fn next_line(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        match memchr::memchr(b'\n', &buf[self.search_from..]) {
            Some(k) => {
                let nl = self.search_from + k;
                let start = self.line_start;
                self.line_start = nl + 1;
                self.search_from = nl + 1;
                Some((start, nl))
            }
            None => {
                self.search_from = buf.len();
                None
            }
        }
    }

    /// Takes the unterminated rest of `buf` (the body's last line, at end of stream) as a line
    /// `(start, end)`; `None` if there is none.
    pub fn take_partial(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        if self.line_start >= buf.len() {
            return None;
        }
        let start = self.line_start;
        self.line_start = buf.len();
        self.search_from = buf.len();
        Some((start, buf.len()))
    }

    /// Length of the unterminated line at the end of `buf`.
    pub fn partial_len(&self, buf: &[u8]) -> usize {
        buf.len() - self.line_start
    }

    /// A unit begins at `start` (a line that may need a partner).
    pub fn begin_unit(&mut self, start: usize) {
        self.unit_start = start;
    }

    /// The unit begun last is finished; `end` is just past its last byte (its `\n`).
    pub fn end_unit(&mut self, end: usize) {
        self.last_unit_start = self.unit_start;
        self.done_end = end;
    }

    /// How many leading bytes may go upstream: every finished unit, or all but the last one
    /// when `hold_last` (a gzip body before end of stream).
    pub fn releasable(&self, hold_last: bool) -> usize {
        if hold_last {
            self.last_unit_start
        } else {
            self.done_end
        }
    }

    /// The caller dropped the first `n` bytes (`n <= releasable(..)`) from its buffer.
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.done_end && n <= self.line_start);
        self.line_start -= n;
        self.search_from -= n;
        self.done_end -= n;
        // Units before `n` are gone; a held or open unit starts at or after `n`.
        self.unit_start = self.unit_start.max(n) - n;
        self.last_unit_start = self.last_unit_start.max(n) - n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_across_buffer_growth_without_rescanning() {
        let mut f = Framer::new();
        let mut buf = b"abc".to_vec();
        assert_eq!(f.next_line(&buf), None);
        assert_eq!(f.partial_len(&buf), 3);
        buf.extend_from_slice(b"de\nfg");
        assert_eq!(f.next_line(&buf), Some((0, 5)));
        assert_eq!(f.next_line(&buf), None);
        assert_eq!(f.partial_len(&buf), 2);
        assert_eq!(f.take_partial(&buf), Some((6, 8)));
        assert_eq!(f.take_partial(&buf), None);
    }

    #[test]
    fn only_finished_units_are_releasable() {
        let mut f = Framer::new();
        let buf = b"A\nS\nA\n";
        let (s, e) = f.next_line(buf).unwrap();
        f.begin_unit(s);
        let (_, e2) = f.next_line(buf).unwrap();
        assert_eq!(f.releasable(false), 0, "action alone is held");
        f.end_unit(e2 + 1);
        assert_eq!(f.releasable(false), 4);
        assert_eq!(e, 1);
        let (s3, _) = f.next_line(buf).unwrap();
        f.begin_unit(s3);
        assert_eq!(f.releasable(false), 4);
        // Holding the last unit back releases nothing yet.
        assert_eq!(f.releasable(true), 0);
    }

    #[test]
    fn consume_shifts_offsets_with_the_buffer() {
        let mut f = Framer::new();
        let mut buf = b"A\nS\nA\npart".to_vec();
        let (s, _) = f.next_line(&buf).unwrap();
        f.begin_unit(s);
        let (_, e) = f.next_line(&buf).unwrap();
        f.end_unit(e + 1);
        let (s, _) = f.next_line(&buf).unwrap();
        f.begin_unit(s);
        assert_eq!(f.next_line(&buf), None);
        let n = f.releasable(false);
        buf.drain(..n);
        f.consume(n);
        assert_eq!(f.releasable(false), 0);
        assert_eq!(f.partial_len(&buf), 4);
        buf.extend_from_slice(b"S\n");
        let (s, e) = f.next_line(&buf).unwrap();
        assert_eq!(&buf[s..e], b"partS");
        f.end_unit(e + 1);
        assert_eq!(f.releasable(false), buf.len());
        assert_eq!(f.releasable(true), 0, "the held unit starts at 0");
    }
}
