//! Query parameters: the strict per-route allowlist (decoded, checked, re-encoded canonically)
//! and the lax rule (forwarded as received, but well formed).

use std::borrow::Cow;

use super::all_digits;
use super::path::{encode_into, hex_pair};
use super::routes::Scope;
use crate::logline::bound;
use crate::reject::Reject;

/// One allowed query parameter: its decoded name and what its decoded value may be.
pub(super) type Param = (&'static str, Val);

/// What a query parameter's decoded value may be.
#[derive(Debug, Clone, Copy)]
pub(super) enum Val {
    /// No value, or `true` (`rest_total_hits_as_int` arrives both ways).
    Flag,
    /// Exactly this value.
    Exact(&'static str),
    /// A plain unsigned decimal.
    Uint,
    /// An ES time value (`30s`, `5m`, …).
    Duration,
    /// Required: `node:"N" AND name:"F"` for the sensor's own node.
    FilesQ,
}

pub(super) const NO_PARAMS: &[Param] = &[];
pub(super) const HEALTH: &[Param] = &[("format", Val::Exact("json"))];
pub(super) const TEMPLATE: &[Param] = &[("filter_path", Val::Exact("**._meta"))];
pub(super) const FIELDS_GET: &[Param] = &[("size", Val::Uint)];
pub(super) const FILES_LOOKUP: &[Param] = &[
    ("rest_total_hits_as_int", Val::Flag),
    ("size", Val::Uint),
    ("sort", Val::Exact("num:desc")),
    ("q", Val::FilesQ),
];
pub(super) const TAGGER_SEARCH: &[Param] = &[("_source", Val::Exact("md5")), ("size", Val::Uint)];
pub(super) const COUNT: &[Param] = &[("ignore_unavailable", Val::Exact("true"))];
pub(super) const SEARCH: &[Param] = &[("rest_total_hits_as_int", Val::Flag)];
/// The viewer's session searches: "download entire pcap" sends its rootId search with
/// `preference=primaries&ignore_unavailable=true` (arkime-traffic.md §3, Arkime #4172).
pub(super) const SESSION_SEARCH: &[Param] = &[
    ("rest_total_hits_as_int", Val::Flag),
    ("preference", Val::Exact("primaries")),
    ("ignore_unavailable", Val::Exact("true")),
];
/// The lookups page also asks for document versions (arkime-traffic.md §3).
pub(super) const LOOKUPS_SEARCH: &[Param] = &[
    ("rest_total_hits_as_int", Val::Flag),
    ("version", Val::Exact("true")),
];
pub(super) const VERSIONED: &[Param] = &[
    ("version_type", Val::Exact("external")),
    ("version", Val::Uint),
];
pub(super) const REFRESH: &[Param] = &[("refresh", Val::Exact("true"))];
pub(super) const UPDATE: &[Param] = &[
    ("retry_on_conflict", Val::Exact("3")),
    ("timeout", Val::Exact("10m")),
];
pub(super) const HISTORY: &[Param] = &[
    ("refresh", Val::Exact("true")),
    ("timeout", Val::Exact("10m")),
];
/// Capture's `esBulkQuery` may add a timeout (`/_bulk?timeout=…`).
pub(super) const BULK: &[Param] = &[("timeout", Val::Duration)];

/// Strict query: form-decoded, every parameter allowed for the route, none twice; returns the
/// canonical re-encoding of what was checked (in the order received).
pub(super) fn strict_query(
    scope: &Scope,
    params: &[Param],
    raw: Option<&str>,
) -> Result<String, Reject> {
    debug_assert!(params.len() <= 32);
    let mut seen: u32 = 0;
    // What is forwarded is the query re-encoded: about as long as the one received.
    let mut out = String::with_capacity(raw.map_or(0, str::len));
    for piece in raw.unwrap_or("").split('&') {
        if piece.is_empty() {
            if raw.is_some_and(|r| !r.is_empty()) {
                return Err(bad_query("empty parameter", raw));
            }
            continue;
        }
        let (k, v) = match piece.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (piece, None),
        };
        let key = form_decode(k).ok_or_else(|| bad_query("malformed parameter name", raw))?;
        let Some(i) = params.iter().position(|(name, _)| *name == key) else {
            return Err(bad_query(&format!("parameter {key:?} not allowed"), raw));
        };
        if seen & (1 << i) != 0 {
            return Err(bad_query(&format!("parameter {key:?} repeated"), raw));
        }
        seen |= 1 << i;
        let value = match v {
            Some(v) => {
                Some(form_decode(v).ok_or_else(|| bad_query("malformed parameter value", raw))?)
            }
            None => None,
        };
        if !value_ok(scope, params[i].1, value.as_deref()) {
            return Err(bad_query(&format!("bad value for {key:?}"), raw));
        }
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, &key);
        if let Some(value) = value {
            out.push('=');
            encode_into(&mut out, &value);
        }
    }
    for (i, (name, val)) in params.iter().enumerate() {
        if matches!(val, Val::FilesQ) && seen & (1 << i) == 0 {
            return Err(bad_query(&format!("parameter {name:?} required"), raw));
        }
    }
    Ok(out)
}

fn value_ok(scope: &Scope, val: Val, value: Option<&str>) -> bool {
    match (val, value) {
        (Val::Flag, None) => true,
        (Val::Flag, Some(v)) => v == "true",
        (Val::Exact(want), Some(v)) => v == want,
        (Val::Uint, Some(v)) => all_digits(v),
        (Val::Duration, Some(v)) => is_duration(v),
        (Val::FilesQ, Some(v)) => is_own_files_q(scope.node, v),
        (_, None) => false,
    }
}

/// Capture's offline lookup `node:"N" AND name:"F"`: exactly the sensor's node, and a file name
/// that cannot close the phrase (no `"` or `\`).
fn is_own_files_q(node: &str, q: &str) -> bool {
    q.strip_prefix("node:\"")
        .and_then(|r| r.strip_prefix(node))
        .and_then(|r| r.strip_prefix("\" AND name:\""))
        .and_then(|r| r.strip_suffix('"'))
        .is_some_and(|name| !name.is_empty() && !name.contains(['"', '\\']))
}

fn is_duration(v: &str) -> bool {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    (1..=9).contains(&digits)
        && matches!(
            &v[digits..],
            "d" | "h" | "m" | "s" | "ms" | "micros" | "nanos"
        )
}

/// Lax query: forwarded as received (esProxy.js does), but it must be well formed: no control
/// bytes or blanks, and only complete `%XX` escapes.
pub(super) fn lax_query(raw: Option<&str>) -> Result<&str, Reject> {
    let Some(q) = raw else { return Ok("") };
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c <= b' ' || c == 0x7f => return Err(bad_query("control byte or blank", raw)),
            b'%' => {
                if b.get(i + 1..i + 3).and_then(hex_pair).is_none() {
                    return Err(bad_query("malformed percent escape", raw));
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Ok(q)
}

/// Decodes one form-encoded component (`+` is a space, `%XX` a byte) to UTF-8 text without
/// control characters; `None` if malformed. A component with no escape, `+`, control or
/// non-ASCII byte (what clients send) is its own decoding and is borrowed.
fn form_decode(raw: &str) -> Option<Cow<'_, str>> {
    if raw
        .bytes()
        .all(|c| (0x20..0x7f).contains(&c) && c != b'%' && c != b'+')
    {
        return Some(Cow::Borrowed(raw));
    }
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                out.push(hex_pair(b.get(i + 1..i + 3)?)?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.chars().any(char::is_control) {
        return None;
    }
    Some(Cow::Owned(s))
}

fn bad_query(why: &str, raw: Option<&str>) -> Reject {
    Reject::BadQuery(bound(&format!("{why}: {}", raw.unwrap_or(""))))
}

#[cfg(test)]
mod tests {

    use crate::allowlist::testkit::*;

    use crate::reject::Reject;
    use http::Method;

    // ── query strings ──

    #[test]
    fn strict_admits_the_viewer_session_and_lookups_search_parameters_and_no_other_values() {
        // arkime-traffic.md §3: "download entire pcap" and the lookups page.
        let p = strict();
        let roots = "/sessions2-*%2Carkime_sessions3-*/_search";
        ok(
            &p,
            Method::POST,
            &format!(
                "{roots}?rest_total_hits_as_int=true&preference=primaries&ignore_unavailable=true"
            ),
        );
        ok(
            &p,
            Method::POST,
            "/arkime_sessions3-260819/_search?preference=primaries",
        );
        ok(
            &p,
            Method::POST,
            "/arkime_lookups/_search?rest_total_hits_as_int=true&version=true",
        );
        for t in [
            format!("{roots}?preference=_only_nodes:evil"),
            format!("{roots}?preference=_local"),
            format!("{roots}?ignore_unavailable=false"),
            format!("{roots}?version=true"),
            format!("{roots}?allow_no_indices=true"),
            "/arkime_lookups/_search?version=false".to_string(),
            "/arkime_lookups/_search?preference=primaries".to_string(),
            "/arkime_stats/_search?preference=primaries".to_string(),
        ] {
            assert!(
                matches!(refused(&p, Method::POST, &t), Reject::BadQuery(_)),
                "{t}"
            );
        }
    }

    #[test]
    fn strict_refuses_parameters_real_clients_do_not_send() {
        let p = strict();
        for t in [
            "/_bulk?pipeline=x",
            "/arkime_stats/_doc/toronto01?version_type=force&version=1",
            "/arkime_stats/_doc/toronto01?routing=x",
            "/arkime_files/_doc/toronto01-1?refresh=wait_for",
            "/arkime_files/_doc/toronto01-1?op_type=create",
            "/arkime_sequence/_doc/fn-toronto01?version=-1",
            "/arkime_stats/_search?scroll=1m",
        ] {
            assert!(
                matches!(refused(&p, Method::POST, t), Reject::BadQuery(_)),
                "{t}"
            );
        }
        for t in [
            "/_cat/health?format=yaml",
            "/arkime_sessions3-x/_doc/1?_source_includes=dek",
            "/?pretty",
        ] {
            assert!(
                matches!(refused(&p, Method::GET, t), Reject::BadQuery(_)),
                "{t}"
            );
        }
    }

    #[test]
    fn strict_refuses_repeated_and_empty_parameters() {
        let p = strict();
        for t in [
            "/_cat/health?format=json&format=json",
            "/_cat/health?format=json&form%61t=json",
            "/_cat/health?format=json&",
            "/_cat/health?&format=json",
            "/_cat/health?format=json&&format=json",
        ] {
            assert!(
                matches!(refused(&p, Method::GET, t), Reject::BadQuery(_)),
                "{t}"
            );
        }
    }

    #[test]
    fn strict_decodes_parameters_before_checking_and_forwards_a_canonical_query() {
        let p = strict();
        let r = ok(&p, Method::GET, "/_cat/health?%66ormat=%6Ason");
        assert_eq!(r.forward, "/_cat/health?format=json");
        let r = ok(
            &p,
            Method::GET,
            "/_template/arkime_sessions3_template?filter_path=%2A%2A._meta",
        );
        assert_eq!(
            r.forward,
            "/_template/arkime_sessions3_template?filter_path=**._meta"
        );
        let r = ok(
            &p,
            Method::POST,
            "/arkime_stats/_doc/toronto01?version_type=external&version=12",
        );
        assert_eq!(
            r.forward,
            "/arkime_stats/_doc/toronto01?version_type=external&version=12"
        );
        let r = ok(&p, Method::GET, "/_cat/health?");
        assert_eq!(r.forward, "/_cat/health");
        assert!(matches!(
            refused(&p, Method::GET, "/_cat/health?format=js%6"),
            Reject::BadQuery(_)
        ));
        assert!(matches!(
            refused(&p, Method::GET, "/_cat/health?format=json%00"),
            Reject::BadQuery(_)
        ));
        // Unescaped control bytes and blanks are refused too, in names and values.
        for t in [
            "/_cat/health?format=json\u{1}",
            "/_cat/health?format=json\u{7f}",
            "/_cat/health?form\tat=json",
        ] {
            assert!(
                matches!(refused(&p, Method::GET, t), Reject::BadQuery(_)),
                "{t:?}"
            );
        }
    }

    #[test]
    fn files_lookup_q_must_name_the_sensor_after_decoding() {
        let base = "/arkime_files/_search?rest_total_hits_as_int&size=1&sort=num:desc&q=";
        for policy in both_modes() {
            let r = ok(
                &policy,
                Method::GET,
                &format!("{base}node%3A%22toronto01%22+AND+name%3A%22/data/x.pcap%22"),
            );
            assert_eq!(
                r.forward,
                "/arkime_files/_search?rest_total_hits_as_int&size=1&sort=num:desc\
                 &q=node:%22toronto01%22%20AND%20name:%22/data/x.pcap%22"
            );
            // Raw (unencoded) quotes and colons are the same query.
            ok(
                &policy,
                Method::GET,
                &format!("{base}node:%22toronto01%22%20AND%20name:%22f%22"),
            );
            for q in [
                "node%3A%22toronto011%22+AND+name%3A%22f%22",
                "node%3A%22other%22+AND+name%3A%22f%22",
                "node%3A%22toronto01%22+OR+name%3A%22f%22",
                "node%3A%22toronto01%22+AND+name%3A%22f%22+OR+node%3Aother",
                "node%3A%22toronto01%22+AND+name%3A%22f%22+OR+%22x%22",
                "node%3A%22toronto01%22+AND+name%3A%22a%5C%22%22",
                "node%3A%22toronto01%22+AND+name%3A%22%22",
                "node:toronto01",
                "*",
            ] {
                let e = refused(&policy, Method::GET, &format!("{base}{q}"));
                assert!(matches!(e, Reject::BadQuery(_)), "{q}: {e:?}");
            }
            // The lookup needs its q, and only the lookup's parameters.
            assert!(matches!(
                refused(&policy, Method::GET, "/arkime_files/_search?size=1"),
                Reject::BadQuery(_)
            ));
            assert!(matches!(
                refused(&policy, Method::GET, "/arkime_files/_search"),
                Reject::BadQuery(_)
            ));
            let extra = format!("{base}node%3A%22toronto01%22+AND+name%3A%22f%22&_source=dek");
            assert!(matches!(
                refused(&policy, Method::GET, &extra),
                Reject::BadQuery(_)
            ));
        }
    }

    #[test]
    fn lax_forwards_the_query_as_received_but_well_formed() {
        let r = ok(
            &lax(),
            Method::POST,
            "/arkime_stats/_doc/toronto01?version_type=force&version=%31",
        );
        assert_eq!(
            r.forward,
            "/arkime_stats/_doc/toronto01?version_type=force&version=%31"
        );
        for t in [
            "/_cat/health?a=%zz",
            "/_cat/health?a=\u{1}",
            "/_cat/health?a=%4",
        ] {
            assert!(
                matches!(refused(&lax(), Method::GET, t), Reject::BadQuery(_)),
                "{t:?}"
            );
        }
    }
}
