//! Request framing and header-size checks on the raw request head (SPEC §8): ambiguous framing
//! — `Content-Length` together with `Transfer-Encoding`, several `Content-Length`s, a
//! `Transfer-Encoding` other than `chunked` — is refused rather than resolved, and an oversized
//! head is refused. Pingora quietly resolves `CL + TE` (TE wins, CL dropped) before any hook
//! runs, so a head that carries `Transfer-Encoding` is judged on the bytes the client actually
//! sent. Pure; never allows by itself.
//!
//! Once the raw head checked out, [`BodyHead::read`] reads what the parsed head declares about
//! the body (length, chunked, `Content-Encoding`, `Expect: 100-continue`) for the other modules.

use crate::reject::Reject;
use http::header::{self, HeaderMap, HeaderValue};

/// How a request body is encoded (SPEC §5: none or exactly gzip).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// No `Content-Encoding`, or `identity`.
    Identity,
    /// `Content-Encoding: gzip`.
    Gzip,
}

/// What a request head declares about its body, read once from headers [`check_head`] already
/// found unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyHead {
    /// `Content-Length`, if sent.
    pub length: Option<u64>,
    /// A body follows: chunked, or a non-zero `Content-Length`.
    pub has_body: bool,
    /// The body's `Content-Encoding`.
    pub encoding: Encoding,
    /// `Expect: 100-continue`.
    pub expects_continue: bool,
}

impl BodyHead {
    /// Reads the body facts of `headers`; refuses a `Content-Encoding` other than none, one
    /// `gzip` or one `identity` ([`Reject::BadEncoding`], the value as sent, cut).
    pub fn read(headers: &HeaderMap) -> Result<BodyHead, Reject> {
        HeadFacts::gather(headers).body_head()
    }
}

/// What the parsed headers say about framing and the body, gathered in one walk over them: a
/// request carries a handful of headers, and comparing each standard name costs less than the
/// five hash lookups it replaces (about 600 instructions per request, issue #16).
#[derive(Debug, Default)]
pub struct HeadFacts<'h> {
    /// `Content-Length` headers, and the first one's value.
    lengths: usize,
    length: Option<&'h HeaderValue>,
    /// Whether `Transfer-Encoding` is present.
    transfer_encoding: bool,
    /// `Content-Encoding` headers, and the first one's value.
    encodings: usize,
    encoding: Option<&'h HeaderValue>,
    /// The first `Expect` value.
    expect: Option<&'h HeaderValue>,
}

impl<'h> HeadFacts<'h> {
    fn gather(headers: &'h HeaderMap) -> HeadFacts<'h> {
        let mut f = HeadFacts::default();
        // A name's values come one after another, the first received first.
        for (name, value) in headers {
            if *name == header::CONTENT_LENGTH {
                f.lengths += 1;
                f.length.get_or_insert(value);
            } else if *name == header::TRANSFER_ENCODING {
                f.transfer_encoding = true;
            } else if *name == header::CONTENT_ENCODING {
                f.encodings += 1;
                f.encoding.get_or_insert(value);
            } else if *name == header::EXPECT {
                f.expect.get_or_insert(value);
            }
        }
        f
    }

    /// The body facts ([`BodyHead::read`]).
    pub fn body_head(&self) -> Result<BodyHead, Reject> {
        let length = self.length.and_then(length_value);
        Ok(BodyHead {
            length,
            has_body: self.transfer_encoding || length.unwrap_or(0) > 0,
            encoding: encoding(self.encodings, self.encoding)?,
            expects_continue: self
                .expect
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
        })
    }
}

/// `Content-Length` as a number (`None` if absent or not a number).
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(length_value)
}

fn length_value(v: &HeaderValue) -> Option<u64> {
    std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok()
}

/// The body's encoding from the number of `Content-Encoding` headers and the first one.
fn encoding(count: usize, first: Option<&HeaderValue>) -> Result<Encoding, Reject> {
    let Some(v) = first.filter(|_| count == 1) else {
        return match count {
            0 => Ok(Encoding::Identity),
            _ => Err(Reject::BadEncoding(
                "several Content-Encoding headers".into(),
            )),
        };
    };
    let v = v.as_bytes().trim_ascii();
    if v.eq_ignore_ascii_case(b"gzip") {
        Ok(Encoding::Gzip)
    } else if v.eq_ignore_ascii_case(b"identity") {
        Ok(Encoding::Identity)
    } else {
        Err(Reject::BadEncoding(crate::logline::bound(
            &String::from_utf8_lossy(v),
        )))
    }
}

/// Checks the request head, `raw` as received (request line and header lines) and `parsed`
/// its headers as Pingora parsed them; what it read gives the body facts later
/// ([`HeadFacts::body_head`], refused only after authentication as before). Pingora
/// edits the parsed headers only when `Transfer-Encoding` is present (it drops
/// `Content-Length`), and never drops `Transfer-Encoding`: without it, every header line is in
/// `parsed` and its `Content-Length`s are counted there; with it, the raw head decides
/// (reading it again costs about a thousand instructions, issue #16).
pub fn check_head<'h>(
    raw: &[u8],
    parsed: &'h HeaderMap,
    max_header_bytes: usize,
) -> Result<HeadFacts<'h>, Reject> {
    if raw.len() > max_header_bytes {
        return Err(Reject::HeadersTooLarge(format!(
            "request head of {} bytes over esProxyMaxHeaderSize {max_header_bytes}",
            raw.len()
        )));
    }
    let facts = HeadFacts::gather(parsed);
    if facts.transfer_encoding {
        check_raw(raw)?;
    } else if facts.lengths > 1 {
        return Err(several_content_lengths());
    }
    Ok(facts)
}

fn several_content_lengths() -> Reject {
    Reject::BadFraming("several Content-Length headers".into())
}

/// [`check_head`]'s framing rules on the raw head alone.
fn check_raw(raw: &[u8]) -> Result<(), Reject> {
    let mut content_lengths = 0;
    let mut transfer_encodings: Vec<&[u8]> = Vec::new();
    // Skip the request line; header lines end in CRLF (or a bare LF, which httparse accepts).
    // memchr, not a byte loop: this runs on every request head.
    let (mut start, mut request_line) = (0, true);
    for end in memchr::memchr_iter(b'\n', raw).chain(std::iter::once(raw.len())) {
        let line = &raw[start..end];
        start = (end + 1).min(raw.len());
        if std::mem::take(&mut request_line) {
            continue;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = memchr::memchr(b':', line) else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            content_lengths += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            transfer_encodings.push(value);
        }
    }
    if content_lengths > 1 {
        return Err(several_content_lengths());
    }
    if !transfer_encodings.is_empty() {
        if content_lengths > 0 {
            return Err(Reject::BadFraming(
                "Content-Length together with Transfer-Encoding".into(),
            ));
        }
        if transfer_encodings.len() > 1 || !transfer_encodings[0].eq_ignore_ascii_case(b"chunked") {
            return Err(Reject::BadFraming(
                "Transfer-Encoding other than a single chunked".into(),
            ));
        }
    }
    Ok(())
}

/// A header value (or one entry of a list) without HTTP's optional whitespace (SP / HTAB)
/// around it (RFC 9110 §5.6.3); shared by the modules that read header values.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 16 * 1024;

    fn head(lines: &[&str]) -> Vec<u8> {
        let mut s = String::from("POST /_bulk HTTP/1.1\r\n");
        for l in lines {
            s.push_str(l);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }

    /// The headers of `raw` as Pingora hands them to the hooks: one entry per header line, and
    /// `Content-Length` dropped when `Transfer-Encoding` is there too.
    fn pingora_parsed(raw: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for line in raw.split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let name = header::HeaderName::from_bytes(&line[..colon]).unwrap();
                let value = header::HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
                h.append(name, value.unwrap());
            }
        }
        if h.contains_key(header::TRANSFER_ENCODING) {
            h.remove(header::CONTENT_LENGTH);
        }
        h
    }

    fn check(raw: &[u8]) -> Result<(), Reject> {
        check_head(raw, &pingora_parsed(raw), MAX).map(|_| ())
    }

    /// The body facts read name by name, with one lookup each: what the single walk must agree
    /// with.
    fn body_head_by_lookups(h: &HeaderMap) -> Result<BodyHead, Reject> {
        let length = h
            .get(header::CONTENT_LENGTH)
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .and_then(|s| s.trim().parse().ok());
        let mut encodings = h.get_all(header::CONTENT_ENCODING).iter();
        Ok(BodyHead {
            length,
            has_body: h.contains_key(header::TRANSFER_ENCODING) || length.unwrap_or(0) > 0,
            encoding: encoding(
                h.get_all(header::CONTENT_ENCODING).iter().count(),
                encodings.next(),
            )?,
            expects_continue: h
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue")),
        })
    }

    #[test]
    fn one_walk_reads_the_body_facts_the_lookups_read() {
        let lines = [
            ("content-length", "0"),
            ("content-length", "12"),
            ("content-length", " 7 "),
            ("content-length", "x"),
            ("transfer-encoding", "chunked"),
            ("content-encoding", "gzip"),
            ("content-encoding", "br"),
            ("content-encoding", "Identity"),
            ("expect", "100-continue"),
            ("expect", "nothing"),
            ("host", "a"),
        ];
        let mut checked = 0;
        for a in 0..=lines.len() {
            for b in 0..=lines.len() {
                for c in 0..=lines.len() {
                    let picked: Vec<_> = [a, b, c]
                        .iter()
                        .filter_map(|&i| lines.get(i).copied())
                        .collect();
                    let h = headers(&picked);
                    let got = BodyHead::read(&h).map_err(|r| r.to_string());
                    let want = body_head_by_lookups(&h).map_err(|r| r.to_string());
                    assert_eq!(got, want, "{picked:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 12 * 12 * 12);
    }

    #[test]
    fn the_parsed_headers_decide_as_the_raw_head_does() {
        let lines = [
            "Content-Length: 5",
            "content-length: 5",
            "Content-Length: 6",
            "Transfer-Encoding: chunked",
            "transfer-encoding: gzip",
            "Host: a",
        ];
        // Every head of up to three of these lines, in every order (259 heads).
        let mut heads: Vec<Vec<&str>> = vec![vec![]];
        let mut last = heads.clone();
        for _ in 0..3 {
            last = last
                .iter()
                .flat_map(|h| lines.iter().map(move |l| [h.as_slice(), &[*l]].concat()))
                .collect();
            heads.extend(last.iter().cloned());
        }
        assert_eq!(heads.len(), 1 + 6 + 36 + 216);
        for h in heads {
            let raw = head(&h);
            let by_raw = check_raw(&raw).map_err(|r| r.to_string());
            assert_eq!(check(&raw).map_err(|r| r.to_string()), by_raw, "{h:?}");
        }
    }

    #[test]
    fn header_lines_are_split_on_lf_after_the_request_line() {
        // The request line is never read as a header, whatever it holds.
        let h = b"GET /content-length:1 HTTP/1.1\r\nContent-Length: 5\r\n\r\n";
        assert!(check(h).is_ok());
        // Bare LF line ends count, and so does a last line without one.
        let h = b"GET / HTTP/1.1\nContent-Length: 5\ncontent-length: 6";
        assert!(matches!(check(h), Err(Reject::BadFraming(_))));
        let h = b"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked";
        assert!(matches!(check(h), Err(Reject::BadFraming(_))));
    }

    #[test]
    fn plain_content_length_or_chunked_is_fine() {
        assert!(check(&head(&["Host: a", "Content-Length: 5"])).is_ok());
        assert!(check(&head(&["Host: a", "Transfer-Encoding: chunked"])).is_ok());
        assert!(check(&head(&["Host: a"])).is_ok());
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused() {
        let h = head(&["Content-Length: 5", "Transfer-Encoding: chunked"]);
        assert!(matches!(check(&h), Err(Reject::BadFraming(_))));
        let h = head(&["transfer-encoding: chunked", "content-length: 5"]);
        assert!(matches!(check(&h), Err(Reject::BadFraming(_))));
    }

    #[test]
    fn several_content_lengths_are_refused_even_when_equal() {
        let h = head(&["Content-Length: 5", "Content-Length: 5"]);
        assert!(matches!(check(&h), Err(Reject::BadFraming(_))));
    }

    #[test]
    fn transfer_encoding_other_than_one_chunked_is_refused() {
        for te in ["gzip, chunked", "chunked, chunked", "identity", "xchunked"] {
            let h = head(&[&format!("Transfer-Encoding: {te}")]);
            assert!(matches!(check(&h), Err(Reject::BadFraming(_))), "{te}");
        }
        let h = head(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]);
        assert!(matches!(check(&h), Err(Reject::BadFraming(_))));
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn body_head_reads_length_chunking_encoding_and_expect() {
        let b = BodyHead::read(&headers(&[
            ("content-length", "12"),
            ("content-encoding", " GZIP "),
            ("expect", "100-Continue"),
        ]))
        .unwrap();
        assert_eq!(
            b,
            BodyHead {
                length: Some(12),
                has_body: true,
                encoding: Encoding::Gzip,
                expects_continue: true
            }
        );
        let b = BodyHead::read(&headers(&[("transfer-encoding", "chunked")])).unwrap();
        assert!(b.has_body && b.length.is_none() && b.encoding == Encoding::Identity);
        let b = BodyHead::read(&headers(&[("content-length", "0")])).unwrap();
        assert!(!b.has_body && !b.expects_continue);
    }

    #[test]
    fn body_head_refuses_other_or_several_encodings() {
        for h in [
            headers(&[("content-encoding", "br")]),
            headers(&[("content-encoding", "gzip"), ("content-encoding", "gzip")]),
        ] {
            assert!(matches!(BodyHead::read(&h), Err(Reject::BadEncoding(_))));
        }
        let h = headers(&[("content-encoding", "identity")]);
        assert_eq!(BodyHead::read(&h).unwrap().encoding, Encoding::Identity);
    }

    #[test]
    fn oversized_head_is_refused() {
        let big = format!("X-Pad: {}", "a".repeat(MAX));
        assert!(matches!(
            check(&head(&[&big])),
            Err(Reject::HeadersTooLarge(_))
        ));
    }
}
