//! Attacker-controlled text in log lines, one decision: how it is cut and how it is escaped.
//! Decision modules keep the details of a refusal raw and only bounded in length ([`bound`]);
//! every value is escaped once, with [`escape`], where the line is written: here, in
//! [`denial`], [`upstream`] and [`access`]. (Escaping in both places showed a `\` in a refused
//! path as `\\\\`.)

use crate::reject::Reject;
use log::{info, warn};
use pingora::http::RequestHeader;
use std::net::IpAddr;

/// The most characters of one detail a refusal keeps.
pub const MAX_DETAIL_CHARS: usize = 200;

/// The most bytes of one value a log line shows.
const MAX_LOGGED_BYTES: usize = 256;

/// `s` cut to [`MAX_DETAIL_CHARS`] characters (with `…` when cut), otherwise unchanged.
pub fn bound(s: &str) -> String {
    match s.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One log-line value: printable ASCII as is, `\` doubled, every other byte (controls,
/// non-ASCII, bidi overrides) as `\xNN`, cut after 256 bytes with `…`.
pub fn escape(raw: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(raw.len().min(MAX_LOGGED_BYTES) + 8);
    for (i, &b) in raw.iter().enumerate() {
        if i >= MAX_LOGGED_BYTES {
            s.push('…');
            break;
        }
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

/// The sensor's name for a log line (`-` before authentication).
fn sensor_field(sensor: Option<&str>) -> String {
    escape(sensor.unwrap_or("-").as_bytes())
}

/// The client's address for a log line (`-` before it is known).
fn client_field(client: Option<IpAddr>) -> String {
    client.map_or("-".to_string(), |ip| ip.to_string())
}

/// Logs a refusal once: who, from where, what and why.
pub fn denial(sensor: Option<&str>, client: Option<IpAddr>, req: &RequestHeader, r: &Reject) {
    warn!(
        "denied sensor={} ip={} method={} path={} reason={} detail={}",
        sensor_field(sensor),
        client_field(client),
        req.method,
        escape(req.raw_path()),
        r.label(),
        escape(r.to_string().as_bytes()),
    );
}

/// Logs an upstream problem (`what`: `error`, `timeout`) with the request it hit.
pub fn upstream(
    what: &str,
    sensor: Option<&str>,
    req: &RequestHeader,
    detail: std::fmt::Arguments<'_>,
) {
    warn!(
        "upstream {what} sensor={} path={}: {detail}",
        sensor_field(sensor),
        escape(req.raw_path()),
    );
}

/// Logs a finished request (`esProxyAccessLog`).
pub fn access(
    sensor: Option<&str>,
    client: Option<IpAddr>,
    req: &RequestHeader,
    status: u16,
    route: Option<&str>,
    e: Option<&pingora::Error>,
) {
    info!(
        "access sensor={} ip={} method={} path={} status={} route={}{}",
        sensor_field(sensor),
        client_field(client),
        req.method,
        escape(req.raw_path()),
        status,
        route.unwrap_or("-"),
        e.map_or(String::new(), |e| format!(" error={:?}", e.etype())),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_escapes_control_characters_and_cuts() {
        assert_eq!(escape(b"a\nb\x1b"), "a\\x0ab\\x1b");
        assert!(escape(&[b'a'; 1000]).len() < 300);
    }

    #[test]
    fn escape_doubles_a_backslash_once_and_hides_bidi_overrides() {
        assert_eq!(escape(b"/a\\b"), "/a\\\\b");
        assert_eq!(escape("x\u{202e}y".as_bytes()), "x\\xe2\\x80\\xaey");
    }

    #[test]
    fn bound_cuts_long_details_on_a_character_boundary_and_keeps_short_ones() {
        assert_eq!(bound("a\\b\n"), "a\\b\n");
        let long = "é".repeat(500);
        let cut = bound(&long);
        assert_eq!(cut.chars().count(), MAX_DETAIL_CHARS + 1);
        assert!(cut.ends_with('…'));
    }
}
