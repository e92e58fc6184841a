//! Request framing and header-size checks on the raw request head (SPEC §8): ambiguous framing
//! — `Content-Length` together with `Transfer-Encoding`, several `Content-Length`s, a
//! `Transfer-Encoding` other than `chunked` — is refused rather than resolved, and an oversized
//! head is refused. Pingora quietly resolves `CL + TE` (TE wins, CL dropped) before any hook
//! runs, so this looks at the bytes the client actually sent. Pure; never allows by itself.

use crate::reject::Reject;

/// Checks the raw request head (request line and header lines, as received).
pub fn check_head(raw: &[u8], max_header_bytes: usize) -> Result<(), Reject> {
    if raw.len() > max_header_bytes {
        return Err(Reject::HeadersTooLarge(format!(
            "request head of {} bytes over esProxyMaxHeaderSize {max_header_bytes}",
            raw.len()
        )));
    }
    let mut content_lengths = 0;
    let mut transfer_encodings: Vec<&[u8]> = Vec::new();
    // Skip the request line; header lines end in CRLF (or a bare LF, which httparse accepts).
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
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
        return Err(Reject::BadFraming("several Content-Length headers".into()));
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

    #[test]
    fn plain_content_length_or_chunked_is_fine() {
        assert!(check_head(&head(&["Host: a", "Content-Length: 5"]), MAX).is_ok());
        assert!(check_head(&head(&["Host: a", "Transfer-Encoding: chunked"]), MAX).is_ok());
        assert!(check_head(&head(&["Host: a"]), MAX).is_ok());
    }

    #[test]
    fn content_length_with_transfer_encoding_is_refused() {
        let h = head(&["Content-Length: 5", "Transfer-Encoding: chunked"]);
        assert!(matches!(check_head(&h, MAX), Err(Reject::BadFraming(_))));
        let h = head(&["transfer-encoding: chunked", "content-length: 5"]);
        assert!(matches!(check_head(&h, MAX), Err(Reject::BadFraming(_))));
    }

    #[test]
    fn several_content_lengths_are_refused_even_when_equal() {
        let h = head(&["Content-Length: 5", "Content-Length: 5"]);
        assert!(matches!(check_head(&h, MAX), Err(Reject::BadFraming(_))));
    }

    #[test]
    fn transfer_encoding_other_than_one_chunked_is_refused() {
        for te in ["gzip, chunked", "chunked, chunked", "identity", "xchunked"] {
            let h = head(&[&format!("Transfer-Encoding: {te}")]);
            assert!(
                matches!(check_head(&h, MAX), Err(Reject::BadFraming(_))),
                "{te}"
            );
        }
        let h = head(&["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"]);
        assert!(matches!(check_head(&h, MAX), Err(Reject::BadFraming(_))));
    }

    #[test]
    fn oversized_head_is_refused() {
        let big = format!("X-Pad: {}", "a".repeat(MAX));
        assert!(matches!(
            check_head(&head(&[&big]), MAX),
            Err(Reject::HeadersTooLarge(_))
        ));
    }
}
