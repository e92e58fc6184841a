//! The one-pass strict JSON line scanner: the hot path of bulk validation (every session
//! document goes through it). It decides exactly what [`crate::json::parse_strict`] decides —
//! RFC 8259 only, valid UTF-8, duplicate keys rejected at every level after unescaping, nesting
//! bounded — without building a value, and reports the few facts the document checks need
//! about the top-level object (its keys, one chosen key's value).
//!
//! It owns only "is this line strict JSON and what is at its top level"; it knows nothing about
//! Arkime, indices or sensors (that is `doc.rs`), and nothing about framing (`framer.rs`).
//!
//! Agreement with serde_json (the reference behind `parse_strict`) is deliberate down to the
//! corners: lone or unpaired UTF-16 surrogate escapes are refused, raw control bytes inside
//! strings are refused, serde_json's own nesting limit (127 levels) applies, and a number whose
//! magnitude overflows `f64` is refused (serde_json's "number out of range"); the rare numbers
//! that come near that edge are handed to serde_json itself so the verdict is identical.

/// serde_json refuses a 128th level of nesting ("recursion limit exceeded"), whatever our limit.
const SERDE_MAX_DEPTH: usize = 127;

/// Duplicate keys: each object keeps a 256-bit Bloom mask of its key hashes, so a new key
/// usually proves itself new with one bit test. On a possible repeat, objects with at most this
/// many keys compare the key against their earlier ones at once; bigger objects are flagged and
/// sorted once when they close, so a crafted object with a million keys costs `n log n`, not
/// `n²`.
const LINEAR_KEYS: usize = 64;

/// Marks a key span that lives in the unescape buffer rather than in the line.
const SIDE_BIT: u32 = 1 << 31;

/// Lines at or above this size cannot be scanned (key spans are 31-bit); far above any limit.
const MAX_SCAN_LEN: usize = (SIDE_BIT - 1) as usize;

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{…}`
    Object,
    /// `[…]`
    Array,
    /// `"…"`
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

impl Kind {
    /// The kind of a parsed value (how the scanner's summary is compared with the reference
    /// parse in tests and fuzzing).
    pub fn of(v: &serde_json::Value) -> Kind {
        use serde_json::Value;
        match v {
            Value::Object(_) => Kind::Object,
            Value::Array(_) => Kind::Array,
            Value::String(_) => Kind::String,
            Value::Number(_) => Kind::Number,
            Value::Bool(_) => Kind::Bool,
            Value::Null => Kind::Null,
        }
    }
}

/// A string value as it appears in the line, between its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawStr<'a> {
    /// The bytes between the quotes, escapes not decoded.
    pub raw: &'a [u8],
    /// Whether `raw` contains at least one `\` escape.
    pub escaped: bool,
}

impl RawStr<'_> {
    /// Whether the decoded string equals `want`. `scratch` is reused to decode escaped strings
    /// (no allocation once it has grown).
    pub fn decodes_to(&self, want: &[u8], scratch: &mut Vec<u8>) -> bool {
        if !self.escaped {
            return self.raw == want;
        }
        scratch.clear();
        decode_into(self.raw, scratch);
        scratch.as_slice() == want
    }
}

/// What a successful scan found at the top level of the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary<'a> {
    /// The type of the top-level value.
    pub top: Kind,
    /// How many keys the top-level object has (0 when the top is not an object).
    pub top_keys: usize,
    /// Whether some top-level key starts with `_` (after unescaping).
    pub underscore_key: bool,
    /// Whether some key, at any depth, contains a `\` escape (capture never escapes keys).
    pub escaped_key: bool,
    /// The value of the top-level key the caller asked for, if present: its type and, for a
    /// string, its raw text.
    pub target: Option<(Kind, Option<RawStr<'a>>)>,
}

/// Why a line is not strict JSON. Positions are byte offsets into the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// The line is not valid UTF-8.
    #[error("invalid UTF-8")]
    Utf8,
    /// Not RFC 8259 JSON.
    #[error("invalid JSON at byte {1}: {0}")]
    Syntax(&'static str, usize),
    /// The same key twice in one object (compared after unescaping).
    #[error("duplicate key at byte {0}")]
    DuplicateKey(usize),
    /// Nested deeper than allowed.
    #[error("nesting deeper than {0}")]
    TooDeep(usize),
    /// A number whose magnitude does not fit an `f64`.
    #[error("number out of range at byte {0}")]
    NumberOutOfRange(usize),
    /// The line is too long to scan at all (over 2 GiB).
    #[error("line too long to scan")]
    TooLong,
}

/// One open array or object.
#[derive(Debug, Clone, Copy)]
struct Frame {
    is_object: bool,
    /// A big object saw a possible repeat: check all its keys when it closes.
    suspect: bool,
    /// Index in the key stack where this object's keys start.
    key_base: usize,
    /// Bloom mask of the object's key hashes (one bit per key).
    bloom: [u64; 4],
}

/// One key of an open object, for the duplicate check.
#[derive(Debug, Clone, Copy)]
struct Key {
    hash: u32,
    /// `[start, len]` of the key, in the line or (with [`SIDE_BIT`] on `len`) in `side`.
    span: [u32; 2],
}

/// A reusable scanner: it keeps its scratch buffers between lines so scanning allocates nothing
/// once they have grown to the largest line seen.
#[derive(Debug, Default)]
pub struct Scanner {
    frames: Vec<Frame>,
    /// Each key of every open object (one push per key).
    keys: Vec<Key>,
    /// Decoded text of keys that contain escapes.
    side: Vec<u8>,
    /// Index scratch for the sort-based duplicate check of big objects.
    order: Vec<u32>,
}

impl Scanner {
    /// A scanner with empty scratch buffers.
    pub fn new() -> Scanner {
        Scanner::default()
    }

    /// Checks that `line` is exactly one strict JSON value (surrounding JSON whitespace
    /// allowed), nested at most `max_depth` levels, and summarises its top level. `target` names
    /// a top-level key whose value the caller wants back (compared after unescaping).
    pub fn scan<'a>(
        &mut self,
        line: &'a [u8],
        max_depth: usize,
        target: Option<&[u8]>,
    ) -> Result<Summary<'a>, ScanError> {
        if line.len() >= MAX_SCAN_LEN {
            return Err(ScanError::TooLong);
        }
        // UTF-8 is checked where non-ASCII bytes can be valid, inside strings (`skip_string`);
        // anywhere else they are a syntax error. A refused line that is not UTF-8 at all is
        // refused as such, as it was when the whole line was checked first.
        match self.scan_utf8(line, max_depth, target) {
            Err(e) if e != ScanError::Utf8 && std::str::from_utf8(line).is_err() => {
                Err(ScanError::Utf8)
            }
            r => r,
        }
    }

    /// [`Scanner::scan`] once the line's length is known to fit: accepts only UTF-8 lines.
    fn scan_utf8<'a>(
        &mut self,
        line: &'a [u8],
        max_depth: usize,
        target: Option<&[u8]>,
    ) -> Result<Summary<'a>, ScanError> {
        self.frames.clear();
        self.keys.clear();
        self.side.clear();
        let max_depth = max_depth.min(SERDE_MAX_DEPTH);
        let s = line;
        let n = s.len();
        let mut sum = Summary {
            top: Kind::Null,
            top_keys: 0,
            underscore_key: false,
            escaped_key: false,
            target: None,
        };
        // Set while the next value must be noted: the top-level value itself (at the start),
        // then the value after a top-level key equal to `target`.
        let mut capture = true;
        let mut i = skip_ws(s, 0);
        // Whether the innermost open container is an object (kept here, not read back from
        // `frames`, on the path after every value).
        let mut obj = false;

        'value: loop {
            // A value starts at `i` (whitespace already skipped).
            let Some(&c) = s.get(i) else {
                return Err(ScanError::Syntax("expected a value", i));
            };
            match c {
                b'{' | b'[' => {
                    if self.frames.len() >= max_depth {
                        return Err(ScanError::TooDeep(max_depth));
                    }
                    let is_object = c == b'{';
                    let kind = if is_object { Kind::Object } else { Kind::Array };
                    if capture {
                        note(&mut sum, &mut capture, self.frames.is_empty(), kind, None);
                    }
                    self.frames.push(Frame {
                        is_object,
                        suspect: false,
                        key_base: self.keys.len(),
                        bloom: [0; 4],
                    });
                    obj = is_object;
                    i = skip_ws(s, i + 1);
                    let close = if is_object { b'}' } else { b']' };
                    if s.get(i) == Some(&close) {
                        i += 1;
                        self.frames.pop();
                        obj = self.in_object();
                    } else if is_object {
                        i = self.key(s, i, target, &mut sum, &mut capture)?;
                        continue 'value;
                    } else {
                        continue 'value;
                    }
                }
                b'"' => {
                    let (end, escaped) = skip_string(s, i + 1)?;
                    if capture {
                        let raw = RawStr {
                            raw: &s[i + 1..end],
                            escaped,
                        };
                        note(
                            &mut sum,
                            &mut capture,
                            self.frames.is_empty(),
                            Kind::String,
                            Some(raw),
                        );
                    }
                    i = end + 1;
                }
                b'-' | b'0'..=b'9' => {
                    i = number(s, i)?;
                    if capture {
                        note(
                            &mut sum,
                            &mut capture,
                            self.frames.is_empty(),
                            Kind::Number,
                            None,
                        );
                    }
                }
                b't' | b'f' | b'n' => {
                    let (word, kind): (&[u8], Kind) = match c {
                        b't' => (b"true", Kind::Bool),
                        b'f' => (b"false", Kind::Bool),
                        _ => (b"null", Kind::Null),
                    };
                    if !s[i..].starts_with(word) {
                        return Err(ScanError::Syntax("bad literal", i));
                    }
                    i += word.len();
                    if capture {
                        note(&mut sum, &mut capture, self.frames.is_empty(), kind, None);
                    }
                }
                // After `int_run`, which stops just after a comma, and after a key's colon.
                b' ' | b'\t' | b'\n' | b'\r' => {
                    i = skip_ws(s, i);
                    continue 'value;
                }
                _ => return Err(ScanError::Syntax("expected a value", i)),
            }

            // After a complete value: close containers or move to the next member.
            loop {
                i = skip_ws(s, i);
                if self.frames.is_empty() {
                    if i == n {
                        return Ok(sum);
                    }
                    return Err(ScanError::Syntax("trailing characters", i));
                }
                // A comma (most often), else the one closing bracket this container takes.
                let c = s.get(i).copied();
                if c == Some(b',') {
                    if obj {
                        i = self.key(s, i + 1, target, &mut sum, &mut capture)?;
                        continue 'value;
                    }
                    i = skip_ws(s, i + 1);
                    // A list of integers goes many elements at a time (whitespace after
                    // a comma it took is skipped at 'value).
                    if s.get(i).is_some_and(u8::is_ascii_digit) {
                        i = int_run(s, i);
                    }
                    continue 'value;
                }
                if c != Some(if obj { b'}' } else { b']' }) {
                    return Err(ScanError::Syntax("expected , or a closing bracket", i));
                }
                i += 1;
                if let Some(frame) = self.frames.pop() {
                    if obj {
                        self.close_object(s, frame, i)?;
                    }
                }
                obj = self.in_object();
            }
        }
    }

    /// Whether the innermost open container is an object (false at the top level).
    #[inline(always)]
    fn in_object(&self) -> bool {
        self.frames.last().is_some_and(|f| f.is_object)
    }

    /// Parses an object key at `i` (a string, after optional whitespace), records it for the
    /// duplicate check and the top-level summary, and consumes the `:`. Returns the index just
    /// after the colon (the value loop skips any whitespace before the value).
    #[inline(always)]
    fn key(
        &mut self,
        s: &[u8],
        i: usize,
        target: Option<&[u8]>,
        sum: &mut Summary<'_>,
        capture: &mut bool,
    ) -> Result<usize, ScanError> {
        // Compact JSON: the key's quote is right after the `,` or `{`.
        let mut i = i;
        if s.get(i) != Some(&b'"') {
            i = skip_ws(s, i);
            if s.get(i) != Some(&b'"') {
                return Err(ScanError::Syntax("expected a key", i));
            }
        }
        let (end, escaped) = skip_string(s, i + 1)?;
        sum.escaped_key |= escaped;
        let (span, h) = if escaped {
            let start = self.side.len();
            decode_into(&s[i + 1..end], &mut self.side);
            let span = [start as u32, (self.side.len() - start) as u32 | SIDE_BIT];
            (span, key_hash(self.key_bytes(s, span)))
        } else {
            let span = [(i + 1) as u32, (end - i - 1) as u32];
            (span, key_hash_in_line(s, i + 1, end))
        };
        let Some(frame) = self.frames.last_mut() else {
            unreachable!("a key is only parsed inside an object");
        };
        let (word, bit) = ((h >> 6) as usize & 3, 1u64 << (h & 63));
        let maybe_seen = frame.bloom[word] & bit != 0;
        frame.bloom[word] |= bit;
        let base = frame.key_base;
        if maybe_seen {
            if self.keys.len() - base < LINEAR_KEYS {
                for k in base..self.keys.len() {
                    let seen = self.keys[k];
                    if seen.hash == h && self.key_bytes(s, seen.span) == self.key_bytes(s, span) {
                        return Err(ScanError::DuplicateKey(i));
                    }
                }
            } else {
                frame.suspect = true;
            }
        }
        if self.frames.len() == 1 {
            let key = self.key_bytes(s, span);
            sum.top_keys += 1;
            sum.underscore_key |= key.first() == Some(&b'_');
            *capture = target == Some(key);
        }
        self.keys.push(Key { hash: h, span });
        // Compact JSON: the colon is right after the key.
        let mut j = end + 1;
        if s.get(j) != Some(&b':') {
            j = skip_ws(s, j);
            if s.get(j) != Some(&b':') {
                return Err(ScanError::Syntax("expected :", j));
            }
        }
        Ok(j + 1)
    }

    /// The decoded bytes of a recorded key.
    #[inline(always)]
    fn key_bytes<'s>(&'s self, line: &'s [u8], span: [u32; 2]) -> &'s [u8] {
        let start = span[0] as usize;
        if span[1] & SIDE_BIT != 0 {
            &self.side[start..start + (span[1] & !SIDE_BIT) as usize]
        } else {
            &line[start..start + span[1] as usize]
        }
    }

    /// Finishes an object: a big one that saw a possible repeat gets its deferred duplicate
    /// check here; the object's keys are then dropped from the stack.
    fn close_object(&mut self, s: &[u8], frame: Frame, at: usize) -> Result<(), ScanError> {
        let base = frame.key_base;
        if frame.suspect {
            let mut order = std::mem::take(&mut self.order);
            order.clear();
            order.extend((base..self.keys.len()).map(|k| k as u32));
            // Sort by (hash, bytes) so equal keys end up adjacent even if many hashes collide.
            order.sort_unstable_by(|&a, &b| {
                let (a, b) = (a as usize, b as usize);
                let (a, b) = (self.keys[a], self.keys[b]);
                a.hash
                    .cmp(&b.hash)
                    .then_with(|| self.key_bytes(s, a.span).cmp(self.key_bytes(s, b.span)))
            });
            let dup = order.windows(2).any(|w| {
                let (a, b) = (w[0] as usize, w[1] as usize);
                let (a, b) = (self.keys[a], self.keys[b]);
                a.hash == b.hash && self.key_bytes(s, a.span) == self.key_bytes(s, b.span)
            });
            self.order = order;
            if dup {
                return Err(ScanError::DuplicateKey(at));
            }
        }
        self.keys.truncate(base);
        Ok(())
    }
}

/// Records the type of the top-level value, or the type (and raw text) of the wanted one.
/// Called only when `capture` is set (twice per document), so it stays out of line and off
/// the per-value path.
#[cold]
#[inline(never)]
fn note<'a>(
    sum: &mut Summary<'a>,
    capture: &mut bool,
    is_top: bool,
    kind: Kind,
    raw: Option<RawStr<'a>>,
) {
    if is_top {
        sum.top = kind;
    } else {
        sum.target = Some((kind, raw));
    }
    *capture = false;
}

/// Skips JSON whitespace (exactly serde_json's set: space, tab, LF, CR).
#[inline(always)]
fn skip_ws(s: &[u8], mut i: usize) -> usize {
    // Compact JSON: the next byte is almost never whitespace.
    if let Some(&c) = s.get(i) {
        if c > b' ' {
            return i;
        }
    }
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = s.get(i) {
        i += 1;
    }
    i
}

/// Little-endian u64 from 8 bytes at `i` (one bounds check).
#[inline(always)]
fn load8(s: &[u8], i: usize) -> u64 {
    let w: [u8; 8] = s[i..i + 8].try_into().expect("8 bytes");
    u64::from_le_bytes(w)
}

/// Skips a string body starting just after its opening quote. Returns the index of the closing
/// quote and whether an escape was seen. Escapes are validated as serde_json does for strings it
/// returns: known escapes only, `\u` with four hex digits, surrogates only as a lead+trail pair.
#[inline(always)]
fn skip_string(s: &[u8], i: usize) -> Result<(usize, bool), ScanError> {
    let end = crate::simd::string_stop(s, i);
    // Nearly every string is plain: its first stop is the closing quote.
    if s.get(end) == Some(&b'"') {
        return Ok((end, false));
    }
    skip_string_rest(s, end)
}

/// [`skip_string`] from a stop that is not the closing quote: escapes, non-ASCII text and
/// errors, out of line so the plain case keeps its registers.
#[inline(never)]
fn skip_string_rest(s: &[u8], mut i: usize) -> Result<(usize, bool), ScanError> {
    let mut escaped = false;
    loop {
        match s.get(i) {
            None => return Err(ScanError::Syntax("unterminated string", i)),
            Some(b'"') => return Ok((i, escaped)),
            Some(b'\\') => {
                escaped = true;
                i = skip_escape(s, i + 1)?;
            }
            Some(&c) if c >= 0x80 => {
                // A run of non-ASCII bytes is valid UTF-8 exactly when the line is valid
                // there: no sequence continues across an ASCII byte.
                let run = s[i..]
                    .iter()
                    .position(|&c| c < 0x80)
                    .map_or(s.len(), |k| i + k);
                if std::str::from_utf8(&s[i..run]).is_err() {
                    return Err(ScanError::Utf8);
                }
                i = run;
            }
            Some(_) => return Err(ScanError::Syntax("control character in string", i)),
        }
        i = crate::simd::string_stop(s, i);
    }
}

/// Validates one escape whose `\` was just before `i`; returns the index after it.
fn skip_escape(s: &[u8], i: usize) -> Result<usize, ScanError> {
    match s.get(i) {
        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
        Some(b'u') => Ok(unicode_escape(s, i + 1)?.1),
        _ => Err(ScanError::Syntax("invalid escape", i)),
    }
}

/// `\u` escapes: returns (code point, index after the escape). Lone or reversed surrogates are
/// refused, as serde_json does when it produces a `String`.
fn unicode_escape(s: &[u8], i: usize) -> Result<(u32, usize), ScanError> {
    let n1 = hex4(s, i)?;
    if (0xDC00..=0xDFFF).contains(&n1) {
        return Err(ScanError::Syntax("lone trailing surrogate", i));
    }
    if !(0xD800..=0xDBFF).contains(&n1) {
        return Ok((n1, i + 4));
    }
    if s.get(i + 4) != Some(&b'\\') || s.get(i + 5) != Some(&b'u') {
        return Err(ScanError::Syntax("unpaired leading surrogate", i));
    }
    let n2 = hex4(s, i + 6)?;
    if !(0xDC00..=0xDFFF).contains(&n2) {
        return Err(ScanError::Syntax("unpaired leading surrogate", i));
    }
    Ok(((((n1 - 0xD800) << 10) | (n2 - 0xDC00)) + 0x1_0000, i + 10))
}

fn hex4(s: &[u8], i: usize) -> Result<u32, ScanError> {
    let Some(d) = s.get(i..i + 4) else {
        return Err(ScanError::Syntax("short \\u escape", i));
    };
    let mut v = 0u32;
    for &c in d {
        let x = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(ScanError::Syntax("bad hex digit in \\u escape", i)),
        };
        v = (v << 4) | x as u32;
    }
    Ok(v)
}

/// Appends the decoded form of a string body (as validated by the scanner) to `out`.
pub fn decode_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut i = 0;
    while i < raw.len() {
        let Some(k) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            return;
        };
        out.extend_from_slice(&raw[i..i + k]);
        i += k + 1;
        let c = raw.get(i).copied().unwrap_or(b'\\');
        i += 1;
        let simple = match c {
            b'b' => 0x08,
            b'f' => 0x0C,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                // Only called on validated text; fall back to U+FFFD rather than panic.
                let (cp, end) = unicode_escape(raw, i).unwrap_or((0xFFFD, raw.len()));
                i = end;
                let ch = char::from_u32(cp).unwrap_or('\u{FFFD}');
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                continue;
            }
            other => other,
        };
        out.push(simple);
    }
}

/// Scans a number at `start` with serde_json's grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)?
/// ([eE] [+-]? [0-9]+)?`. Returns the index after it.
#[inline(always)]
fn number(s: &[u8], start: usize) -> Result<usize, ScanError> {
    // Nearly every number is a short integer, read whole from one 16-byte window: its sign,
    // its digits and the byte after them, with no loop (a loop's exit mispredicts on capture's
    // mix of 1- to 13-digit numbers). Anything else takes the general path below: no digit,
    // a run that reaches the window's end, a fraction or an exponent, the line's last bytes.
    if let Some(digit) = crate::simd::digits16(s, start) {
        let neg = usize::from(s[start] == b'-');
        let int_start = start + neg;
        // Bits 16 and up of `!digit` are set, so `run <= 16 - neg`.
        let run = (!digit >> neg).trailing_zeros() as usize;
        // A leading `0` is the whole integer part (what follows is refused by the caller).
        let len = if s[int_start] == b'0' { 1 } else { run };
        let end = int_start + len;
        if (run != 0) & (run + neg < 16) & !matches!(s.get(end), Some(b'.' | b'e' | b'E')) {
            return Ok(end);
        }
    }
    number_general(s, start)
}

/// [`number`] one part at a time: any number, anywhere in the line.
#[inline(always)]
fn number_general(s: &[u8], start: usize) -> Result<usize, ScanError> {
    let digits = |i: usize| digits_end(s, i);
    let mut i = start;
    if s[i] == b'-' {
        i += 1;
    }
    let int_start = i;
    match s.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return Err(ScanError::Syntax("invalid number", i)),
    }
    // Nearly every number is a short integer: nothing follows its digits, and it is far from
    // any range limit.
    if !matches!(s.get(i), Some(b'.' | b'e' | b'E')) && i - int_start <= 300 {
        return Ok(i);
    }
    number_rest(s, start, int_start, i)
}

/// [`number_general`] after its integer part `s[int_start..i]` when a fraction or an exponent
/// follows, or the integer part is huge; out of line so the integer case stays small.
#[inline(never)]
fn number_rest(s: &[u8], start: usize, int_start: usize, mut i: usize) -> Result<usize, ScanError> {
    let digits = |i: usize| digits_end(s, i);
    let int_digits = (i - int_start) as i64;
    if s.get(i) == Some(&b'.') {
        let d = i + 1;
        i = digits(d);
        if i == d {
            return Err(ScanError::Syntax("invalid number", i));
        }
    }
    let mut exp: i64 = 0;
    if let Some(b'e' | b'E') = s.get(i) {
        i += 1;
        let negative = match s.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let d = i;
        while let Some(&c @ b'0'..=b'9') = s.get(i) {
            // Saturate: only "is it beyond ~308" matters here.
            exp = (exp * 10 + (c - b'0') as i64).min(1 << 40);
            i += 1;
        }
        if i == d {
            return Err(ScanError::Syntax("invalid number", i));
        }
        if negative {
            exp = -exp;
        }
    }
    // |value| < 10^(int_digits + exp). Below 10^300 it is certainly finite for serde_json too;
    // anything that may reach f64::MAX is decided by serde_json itself (its lossy conversion is
    // the reference, so we do not second-guess where exactly it overflows).
    if int_digits + exp > 300 && serde_json::from_slice::<serde_json::Value>(&s[start..i]).is_err()
    {
        return Err(ScanError::NumberOutOfRange(start));
    }
    Ok(i)
}

/// In an array, at the first digit of an element: skips every following element that is a
/// plain integer (digits, no leading zero) with its comma, a 32-byte window at a time, and
/// returns where the one-value-at-a-time path resumes (just after the last comma taken, or `i`).
/// Capture's `packetPos` and `packetLen` are long lists of such numbers. Anything else — a sign,
/// a fraction, whitespace, the list's last element, the last 32 bytes of the line, and every
/// error — stops the run, so verdicts and error positions stay those of the general path.
#[inline(always)]
fn int_run(s: &[u8], mut i: usize) -> usize {
    while let Some(m) = crate::simd::int_masks(s, i) {
        // The window's prefix made of digits and commas, up to its last comma.
        let plain = (!(m.digit | m.comma)).trailing_zeros();
        let commas = m.comma & low_bits(plain);
        if commas == 0 {
            break;
        }
        let last = 31 - commas.leading_zeros();
        // Each element of `0..=last` starts at 0 or just after a comma: it must start with a
        // digit (no empty element) and not with a `0` followed by a digit.
        let starts = (1 | commas << 1) & low_bits(last + 1);
        if starts & !m.digit != 0 || starts & m.zero & (m.digit >> 1) != 0 {
            break;
        }
        i += last as usize + 1;
    }
    i
}

/// The lowest `n` bits set (`n <= 32`).
#[inline(always)]
fn low_bits(n: u32) -> u32 {
    ((1u64 << n) - 1) as u32
}

/// The index of the first byte at or after `i` that is not an ASCII digit (or `s.len()`).
/// Eight bytes at a time: capture documents are full of 1–13 digit numbers, and a byte loop
/// pays a mispredicted exit per number.
#[inline(always)]
fn digits_end(s: &[u8], mut i: usize) -> usize {
    while i + 8 <= s.len() {
        let m = non_digit_mask(load8(s, i));
        if m != 0 {
            return i + (m.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(b'0'..=b'9') = s.get(i) {
        i += 1;
    }
    i
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `w` that is not `0`–`9`, exactly (no carries cross bytes:
/// `x & 0x7f` plus 0x76 stays below 0x100, and reaches 0x80 exactly when `x & 0x7f >= 10`).
#[inline(always)]
fn non_digit_mask(w: u64) -> u64 {
    let x = w ^ (LO * b'0' as u64);
    (((x & (LO * 0x7f)) + LO * 0x76) | x) & HI
}

/// A fast 32-bit hash of a key: FxHash-style mixing of 8-byte words. Keys of up to 16 bytes
/// (nearly all of capture's) are hashed as two zero-padded words. Equal keys always hash equal;
/// collisions only cost a byte compare.
#[inline(always)]
fn key_hash(k: &[u8]) -> u32 {
    let n = k.len();
    if n <= 16 {
        let mut w = [0u8; 16];
        w[..n].copy_from_slice(k);
        return hash16(n, load8(&w, 0), load8(&w, 8));
    }
    let mut h = mix(0, n as u64);
    let mut i = 0;
    while i + 8 < n {
        h = mix(h, load8(k, i));
        i += 8;
    }
    // The last 8 bytes, overlapping the previous word when n is not a multiple of 8.
    h = mix(h, load8(k, n - 8));
    (h >> 32) as u32
}

/// [`key_hash`] of the unescaped key `s[start..end]`, read in place: a short key is read as
/// two words with the bytes past its end masked off (no copy, no branch on its length) when the
/// line has 16 bytes from its start.
#[inline(always)]
fn key_hash_in_line(s: &[u8], start: usize, end: usize) -> u32 {
    let n = end - start;
    if n <= 16 && start + 16 <= s.len() {
        let [lo, hi] = KEEP[n];
        return hash16(n, load8(s, start) & lo, load8(s, start + 8) & hi);
    }
    key_hash(&s[start..end])
}

/// `KEEP[k]`: the masks of the low `k` bytes of two consecutive words (one lookup, no branch
/// on which word the key ends in).
const KEEP: [[u64; 2]; 17] = {
    let mut t = [[u64::MAX; 2]; 17];
    let mut k = 0;
    while k < 16 {
        let (lo, hi) = if k < 8 { (k, 0) } else { (8, k - 8) };
        t[k] = [low_bytes(lo), low_bytes(hi)];
        k += 1;
    }
    t
};

/// The mask of the low `k <= 8` bytes of a word.
const fn low_bytes(k: usize) -> u64 {
    if k == 8 {
        u64::MAX
    } else {
        (1 << (8 * k)) - 1
    }
}

/// The hash of a key of `n <= 16` bytes given as two little-endian words, zero-padded.
#[inline(always)]
fn hash16(n: usize, lo: u64, hi: u64) -> u32 {
    (mix(mix(n as u64, lo), hi) >> 32) as u32
}

#[inline(always)]
fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95)
}

#[cfg(test)]
mod tests;
