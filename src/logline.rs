//! Attacker-controlled text in log lines, one decision: how it is cut and how it is escaped.
//! Decision modules keep the details of a refusal raw and only bounded in length ([`bound`]);
//! the proxy escapes every value once, with [`escape`], where it writes the line. (Escaping in
//! both places showed a `\` in a refused path as `\\\\`.)

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
