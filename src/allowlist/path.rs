//! Path canonicalisation: splits the request target, decodes the path once, refuses encoded
//! separators, traversal and odd bytes, and re-encodes what goes upstream.

use std::borrow::Cow;

use crate::logline::bound;
use crate::reject::Reject;

/// A request target split and canonicalised: the decoded path and the raw query.
pub(super) struct Target<'a> {
    /// Decoded, printable ASCII, starts with `/`, no empty, `.` or `..` segments. Borrowed from
    /// the target when it has no escape (what clients send), so nothing is copied.
    pub(super) path: Cow<'a, str>,
    pub(super) query: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(super) fn parse(raw: &'a str) -> Result<Target<'a>, Reject> {
        let bad = |why: &str| Reject::BadPath(bound(&format!("{why}: {raw}")));
        if raw.contains('#') {
            return Err(bad("fragment marker"));
        }
        let (raw_path, query) = match raw.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw, None),
        };
        if !raw_path.starts_with('/') {
            return Err(bad("not an origin-form path"));
        }
        let b = raw_path.as_bytes();
        let path = if b.contains(&b'%') {
            let mut path = String::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let c = if b[i] == b'%' {
                    let c = b
                        .get(i + 1..i + 3)
                        .and_then(hex_pair)
                        .ok_or_else(|| bad("malformed percent escape"))?;
                    // Encoded separators, dots and escapes are how traversal hides from a
                    // normaliser; refuse rather than guess what upstream will make of them.
                    if matches!(c, b'/' | b'.' | b'?' | b'#' | b'\\' | b'%') {
                        return Err(bad("encoded separator"));
                    }
                    i += 3;
                    c
                } else {
                    i += 1;
                    b[i - 1]
                };
                check_path_byte(c).map_err(bad)?;
                path.push(char::from(c));
            }
            Cow::Owned(path)
        } else {
            // No escape: the decoded path is the raw one, checked byte by byte all the same.
            for &c in b {
                check_path_byte(c).map_err(bad)?;
            }
            Cow::Borrowed(raw_path)
        };
        if path != "/" {
            // One pass over pairs of bytes (the path starts with `/`): an empty segment is `//`
            // or a trailing `/`, a dot segment `/.` before a `/` or the end. `..` anywhere in a
            // segment is refused too, not only as a whole dot segment (SPEC §7 lists `..` among
            // what is refused): no id capture or the viewer writes has one, and servers differ
            // on segments like `..;` or `..&`.
            let b = path.as_bytes();
            for i in 1..b.len() {
                match (b[i - 1], b[i]) {
                    (b'/', b'/') => return Err(bad("empty path segment")),
                    (b'.', b'.') => return Err(bad("dot segment")),
                    (b'/', b'.') if b.get(i + 1).is_none_or(|&c| c == b'/') => {
                        return Err(bad("dot segment"))
                    }
                    _ => {}
                }
            }
            if b.ends_with(b"/") {
                return Err(bad("empty path segment"));
            }
        }
        Ok(Target { path, query })
    }
}

/// What a decoded path byte may be: printable ASCII, no backslash or semicolon.
fn check_path_byte(c: u8) -> Result<(), &'static str> {
    if !(0x21..=0x7e).contains(&c) {
        return Err("control, blank or non-ASCII byte");
    }
    if c == b'\\' || c == b';' {
        return Err("backslash or semicolon");
    }
    Ok(())
}

pub(super) fn hex_pair(two: &[u8]) -> Option<u8> {
    let hi = char::from(*two.first()?).to_digit(16)?;
    let lo = char::from(*two.get(1)?).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Bytes a canonical path or query component carries unencoded: unreserved, plus
/// `/` `,` `*` `:` `@` (`+`, `&`, `=`, `%`, quotes, blanks, controls and non-ASCII bytes are
/// encoded). Only ASCII bytes are safe, which [`encode_into`] relies on.
const SAFE: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.' | b'_' | b'~' | b'/' | b',' | b'*' | b':' | b'@'
            );
        c += 1;
    }
    t
};

/// Appends `s` to `out`, each byte not in [`SAFE`] as `%XX`; runs of safe bytes (all of a typical
/// path or parameter) are copied at once.
pub(super) fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (j, &c) in s.as_bytes().iter().enumerate() {
        if !SAFE[usize::from(c)] {
            // Safe bytes are ASCII, so a run of them starts and ends on character boundaries.
            if j > start {
                out.push_str(&s[start..j]);
            }
            out.push('%');
            out.push(char::from(HEX[usize::from(c >> 4)]));
            out.push(char::from(HEX[usize::from(c & 15)]));
            start = j + 1;
        }
    }
    if start < s.len() {
        out.push_str(&s[start..]);
    }
}

#[cfg(test)]
mod tests {

    use crate::allowlist::testkit::*;
    use crate::allowlist::{classify, RouteClass};

    use crate::policy::Policy;
    use crate::reject::Reject;
    use http::Method;

    // ── path canonicalisation (both modes) ──

    #[test]
    fn known_traversal_tricks_are_refused_in_both_modes() {
        let tricks = [
            (Method::GET, "/_cat/health%3fz/../../_search"),
            (Method::GET, "/_cat/health%23z/../../_search"),
            (Method::POST, "/tests_stats/_search%3f/../../_bulk"),
            (
                Method::GET,
                "/tests_files/_doc/test-%3fz/../../../tests_sessions3-2024",
            ),
            (Method::GET, "/tagger%3f/../../tests_users/_search"),
            (
                Method::GET,
                "/tests_users/_doc/%3f/../../../_cluster/settings",
            ),
            (
                Method::GET,
                "/tests_files/_doc/test-5%3f\\..\\..\\..\\tests_esproxy_nosuchindex",
            ),
        ];
        for strict in [true, false] {
            let policy = tests_prefix(strict);
            for (method, target) in &tricks {
                let e = classify(&policy, "test", method, target).unwrap_err();
                assert!(matches!(e, Reject::BadPath(_)), "{target}: {e:?}");
            }
        }
    }

    /// Each target is refused as a bad path in both modes (POST for `_bulk`, else GET).
    fn refused_as_bad_path(targets: &[&str]) {
        for policy in both_modes() {
            for target in targets {
                let method = if target.contains("_bulk") {
                    Method::POST
                } else {
                    Method::GET
                };
                assert!(
                    matches!(refused(&policy, method, target), Reject::BadPath(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn encoded_slash_dot_backslash_question_hash_and_percent_are_refused() {
        refused_as_bad_path(&[
            "/arkime_users/_doc/a%2Fb",
            "/arkime_users/_doc/a%2fb",
            "/arkime_users/_doc/%2E%2E",
            "/arkime_users/_doc/a%2eb",
            "/arkime_users/_doc/a%5Cb",
            "/arkime_users/_doc/a%3Fb",
            "/arkime_users/_doc/a%23b",
            "/arkime_users/_doc/a%252Fb",
        ]);
    }

    #[test]
    fn dot_segments_double_slashes_and_trailing_slashes_are_refused() {
        refused_as_bad_path(&[
            "/arkime_stats/../_bulk",
            "/arkime_stats/./_stats",
            "/arkime_stats/_doc/..",
            "/arkime_stats/_doc/.",
            "/.",
            "/./_cat/health",
            // `..` inside a segment (found by the fixpoint property: `..&` was forwarded)
            "/arkime_users/_doc/..&",
            "/arkime_users/_doc/..%26",
            "/arkime_users/_doc/a..b",
            "/arkime_users/_doc/...",
            "//arkime_stats/_stats",
            "/arkime_stats//_stats",
            "/_cat/health/",
            "/_bulk/",
        ]);
    }

    #[test]
    fn semicolons_backslashes_controls_blanks_and_non_ascii_are_refused() {
        refused_as_bad_path(&[
            "/_cat/health;x",
            "/_cat/health%3Bx",
            "/_cat\\health",
            "/_cat/health%00",
            "/_cat/health%0a",
            "/_cat/health%20",
            "/_cat/health\t",
            "/_cat/héalth",
            "/_cat/health%C3%A9",
            "/_cat/health%7F",
        ]);
    }

    #[test]
    fn malformed_percent_escapes_and_raw_hash_are_refused() {
        refused_as_bad_path(&[
            "/_cat/health%",
            "/_cat/health%2",
            "/_cat/health%zz",
            "/_cat/health#x",
            "/_cat/health?format=json#x",
        ]);
    }

    #[test]
    fn target_must_be_origin_form() {
        for target in ["http://es:9200/_cat/health", "*", "", "_cat/health"] {
            assert!(
                matches!(refused(&strict(), Method::GET, target), Reject::BadPath(_)),
                "{target:?}"
            );
        }
    }

    #[test]
    fn encoded_comma_decodes_to_a_comma_and_is_forwarded_canonically() {
        for policy in both_modes() {
            let r = ok(
                &policy,
                Method::GET,
                "/sessions2-*%2Cpartial-arkime_sessions3-*%2carkime_sessions3-*/_alias",
            );
            assert_eq!(r.class, RouteClass::Alias);
            assert_eq!(
                r.forward,
                "/sessions2-*,partial-arkime_sessions3-*,arkime_sessions3-*/_alias"
            );
        }
    }

    #[test]
    fn path_match_is_case_sensitive_and_exact() {
        for policy in both_modes() {
            for (method, target) in [
                (Method::POST, "/_BULK"),
                (Method::POST, "/_bulkx"),
                (Method::POST, "/_bulk/x"),
                (Method::GET, "/_CAT/health"),
                (Method::GET, "/ARKIME_stats/_doc/toronto01"),
                (Method::GET, "/arkime_stats/_doc/TORONTO01"),
            ] {
                assert!(
                    matches!(refused(&policy, method, target), Reject::NotAllowed(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn forward_is_the_decoded_path_reencoded_conservatively() {
        let r = ok(
            &strict(),
            Method::GET,
            "/arkime_users/_doc/a%40b%7Ec%2Bd%21",
        );
        assert_eq!(r.forward, "/arkime_users/_doc/a@b~c%2Bd%21");
        let r = ok(&strict(), Method::GET, "/arkime_users/_doc/a+b");
        // A raw '+' is a literal plus in a path; ES would read it as a space, so it is encoded.
        assert_eq!(r.forward, "/arkime_users/_doc/a%2Bb");
        let r = ok(&strict(), Method::GET, "/%61rkime_stats/_doc/toronto01");
        assert_eq!(r.forward, "/arkime_stats/_doc/toronto01");
    }

    #[test]
    fn forward_of_an_admitted_request_classifies_to_itself() {
        for (method, target, _) in viewer_traffic() {
            let first = ok(&strict(), method.clone(), target);
            let again = ok(&strict(), method.clone(), &first.forward);
            assert_eq!(first, again, "{target}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Id text as a client might send it: plain bytes and percent escapes of anything.
        fn id() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9._~!*:@,+=$&'()-]".prop_map(|s| s),
                    any::<u8>().prop_map(|b| format!("%{b:02X}")),
                    any::<u8>().prop_map(|b| format!("%{b:02x}")),
                ],
                1..12,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            #[test]
            fn canonical_forward_is_a_fixpoint(id in id(), q in id(), strict in any::<bool>()) {
                let policy = Policy { strict, ..Policy::default() };
                for target in [
                    format!("/arkime_users/_doc/{id}"),
                    format!("/arkime_sessions3-{id}/_doc/{q}"),
                    format!("/arkime_files/_doc/toronto01-1?refresh={q}"),
                    format!("/_cat/health?format={q}"),
                ] {
                    let method = if target.contains("files") { Method::POST } else { Method::GET };
                    if let Ok(first) = classify(&policy, NODE, &method, &target) {
                        let again = classify(&policy, NODE, &method, &first.forward);
                        prop_assert_eq!(Ok(first), again, "{}", target);
                    }
                }
            }

            #[test]
            fn forwarded_paths_never_carry_separators_dots_or_escapes_in_disguise(id in id()) {
                let target = format!("/arkime_users/_doc/{id}");
                if let Ok(r) = classify(&strict(), NODE, &Method::GET, &target) {
                    let path = r.forward.split('?').next().unwrap_or("");
                    let lower = path.to_ascii_lowercase();
                    for bad in ["%2f", "%2e", "%5c", "%3f", "%23", "%25", "..", "//", ";", "\\"] {
                        prop_assert!(!lower.contains(bad), "{} -> {}", target, path);
                    }
                    prop_assert_eq!(path.matches('/').count(), 3);
                }
            }

            #[test]
            fn classify_never_panics(target in "\\PC{0,40}", strict in any::<bool>()) {
                let policy = Policy { strict, ..Policy::default() };
                for method in [Method::GET, Method::POST, Method::DELETE] {
                    let _ = classify(&policy, NODE, &method, &target);
                    let _ = classify(&policy, NODE, &method, &format!("/{target}"));
                }
            }
        }
    }

    #[test]
    fn encoding_copies_safe_runs_and_escapes_every_other_byte() {
        let mut out = String::new();
        super::encode_into(&mut out, "a-b_c~d.e/f,g*h:i@j");
        assert_eq!(out, "a-b_c~d.e/f,g*h:i@j");
        out.clear();
        super::encode_into(&mut out, "é a+b&c=d%\"\u{1}");
        assert_eq!(out, "%C3%A9%20a%2Bb%26c%3Dd%25%22%01");
        out.clear();
        super::encode_into(&mut out, "xé");
        assert_eq!(out, "x%C3%A9");
    }
}
