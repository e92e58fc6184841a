//! The upstream request head: which of the sensor's headers Elasticsearch may see (issue #18).
//!
//! Owns one decision: the header allowlist. Every header the sensor sent is dropped unless its
//! name is in [`SENSOR_KEPT`]; the headers esproxy sets itself ([`ESPROXY_SET`]) are removed
//! here and put back with our values by their owners (`Host` and credentials by `upstream`, the
//! client address here). The header set is part of the request we validated: a sensor must not
//! reach Elasticsearch's run-as (`es-security-runas-user`), OpenSearch's impersonation
//! (`opendistro_security_impersonate_as`, `securitytenant`), forwarded-address headers a cluster
//! may trust, or anything else that changes who ES thinks is asking. The tee gets the head built
//! here (with its own credentials), so both clusters see the same names.
//!
//! Must not decide routes or bodies, and must not read configuration.

use pingora::http::RequestHeader;
use std::net::IpAddr;

/// Headers of the sensor's request that are forwarded (lower case), each with why:
/// - `content-type`: ES needs it to parse a body (capture and the viewer send
///   `application/json`);
/// - `content-length`, `transfer-encoding`: the framing of the body we forward (the listener
///   already refused ambiguous framing; a body we change is re-framed chunked by [`rewrite`]);
/// - `content-encoding`: a body forwarded compressed (`gzip`, checked by the body rules);
///   dropped when esproxy forwards the inflated bytes;
/// - `accept`, `accept-encoding`: the answer's format, passed back to the sensor as ES gives it;
/// - `user-agent`: ES logs it (deprecation logs name the client);
/// - `x-opaque-id`: ES tags tasks and slow logs with it; kept only when one value, at most
///   [`MAX_OPAQUE_ID`] bytes, printable ASCII.
pub const SENSOR_KEPT: &[&str] = &[
    "content-type",
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "accept",
    "accept-encoding",
    "user-agent",
    "x-opaque-id",
];

/// Headers Elasticsearch receives with esproxy's values, never the sensor's: `host` and
/// `authorization` (our credentials for the chosen peer, set by `upstream`; request signing
/// adds its own headers the same way, after this module), `x-forwarded-for` (the client
/// address esproxy determined).
pub const ESPROXY_SET: &[&str] = &["host", "authorization", "x-forwarded-for"];

/// Longest `X-Opaque-Id` forwarded, bytes. Clients put a request or trace id there; anything
/// longer is not an id and only bloats ES's task list and slow logs.
pub const MAX_OPAQUE_ID: usize = 256;

/// What esproxy does to a request body on its way upstream, which decides the framing headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyChange {
    /// Forwarded as received: the sensor's framing and encoding headers stay.
    #[default]
    None,
    /// Lines may change length (a strict bulk: `bulk::create`): sent chunked, encoding kept.
    Lines,
    /// Inflated, lines maybe changed too: sent chunked, without `Content-Encoding`.
    Inflated,
}

/// Whether a header the sensor sent under `name` goes upstream as it is. An
/// `http::HeaderName` is lower case whatever case the sensor wrote, so exact compares do (they
/// skip on length; this runs for every header of every request).
pub fn sensor_header_kept(name: &http::HeaderName) -> bool {
    SENSOR_KEPT.contains(&name.as_str())
}

/// Whether an `X-Opaque-Id` value is forwarded: bounded and printable ASCII (no control bytes
/// that could split a log line on the ES side).
pub fn opaque_id_ok(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_OPAQUE_ID
        && value.iter().all(|b| (0x20..=0x7e).contains(b))
}

/// Turns the sensor's request head (Pingora's copy, about to go upstream) into what ES may
/// see: drops every header not in [`SENSOR_KEPT`], sets our `X-Forwarded-For` to `client`, and
/// for a body we change (`change`) replaces `Content-Length` with `Transfer-Encoding: chunked`
/// (the size is only known at the end; without either header Pingora would send no body at
/// all) and, for an inflated one, drops `Content-Encoding`. `Host` and credentials are set
/// afterwards by the upstream pool, for the primary and for the tee.
pub fn rewrite(
    up: &mut RequestHeader,
    client: Option<IpAddr>,
    change: BodyChange,
) -> pingora::Result<()> {
    // The names to drop are collected first (the map cannot change while it is walked). A
    // sensor sends a handful of headers: a stack array holds them, a Vec any beyond (issue #16:
    // no allocation per request).
    let mut few: [Option<http::HeaderName>; 8] = Default::default();
    let mut n = 0;
    let mut more = Vec::new();
    for name in up.headers.keys().filter(|n| !sensor_header_kept(n)) {
        match few.get_mut(n) {
            Some(slot) => {
                *slot = Some(name.clone());
                n += 1;
            }
            None => more.push(name.clone()),
        }
    }
    let mut opaque = up.headers.get_all(&X_OPAQUE_ID).iter();
    // Absent: nothing to remove (a removal still costs a header-map probe).
    let forwarded = match (opaque.next(), opaque.next()) {
        (None, _) => true,
        (Some(one), None) => opaque_id_ok(one.as_bytes()),
        _ => false,
    };
    for name in few.iter().flatten().chain(&more) {
        up.remove_header(name);
    }
    if !forwarded {
        up.remove_header(&X_OPAQUE_ID);
    }
    if change == BodyChange::Inflated {
        up.remove_header(&http::header::CONTENT_ENCODING);
    }
    if change != BodyChange::None {
        up.remove_header(&http::header::CONTENT_LENGTH);
        up.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    if let Some(ip) = client {
        // A `&'static str` name is borrowed as it is; an `http::HeaderName` that is not one of
        // the standard ones Pingora titles would be copied into a new buffer first (issue #16).
        up.insert_header("X-Forwarded-For", address_value(ip))?;
    }
    Ok(())
}

/// Forgets the letter case the sensor wrote its header names in, once the request is admitted.
/// Pingora keeps a second, case-preserving map of names beside the headers; the upstream head
/// is a copy of this one, and every removal and insertion on it touches both maps. Without it
/// Pingora writes standard names title-cased and others in lower case (header names are
/// case-insensitive to ES and to HTTP). The target becomes the URI's own form: the request
/// was classified on the bytes received, and the upstream head is given the route's canonical
/// target ([`crate::proxy`]).
pub fn drop_name_case(h: &mut RequestHeader) {
    if !h.has_case() {
        return;
    }
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let parts = http::request::Parts::from(std::mem::replace(h, empty));
    *h = RequestHeader::from(parts);
}

/// `X-Opaque-Id`, looked up on every request: a `&str` name would be parsed each time.
static X_OPAQUE_ID: http::HeaderName = http::HeaderName::from_static("x-opaque-id");

/// `ip` as a header value, as `Display` writes it. Hand-written for IPv4 (every request of a
/// sensor writes one): `Display` goes through the formatting machinery, about 1,300
/// instructions against under 100 here (issue #16).
fn address_value(ip: IpAddr) -> http::HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return http::HeaderValue::from_str(&ip.to_string())
            .unwrap_or_else(|_| unreachable!("an IPv6 address is ASCII"));
    };
    let mut out = [0u8; 15];
    let mut n = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out[n] = b'.';
            n += 1;
        }
        if octet >= 100 {
            out[n] = b'0' + octet / 100;
            n += 1;
        }
        if octet >= 10 {
            out[n] = b'0' + octet / 10 % 10;
            n += 1;
        }
        out[n] = b'0' + octet % 10;
        n += 1;
    }
    http::HeaderValue::from_bytes(&out[..n]).unwrap_or_else(|_| unreachable!("digits and dots"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the issue lists, with whether a sensor's copy goes upstream.
    const TABLE: &[(&str, bool)] = &[
        ("Content-Type", true),
        ("Content-Length", true),
        ("Transfer-Encoding", true),
        ("Content-Encoding", true),
        ("Accept", true),
        ("Accept-Encoding", true),
        ("User-Agent", true),
        ("X-Opaque-Id", true),
        // Who ES thinks is asking.
        ("es-security-runas-user", false),
        ("opendistro_security_impersonate_as", false),
        ("securitytenant", false),
        // Client-address headers a cluster may trust.
        ("Forwarded", false),
        ("X-Real-IP", false),
        ("X-Forwarded-For", false),
        ("X-Forwarded-Host", false),
        ("X-Forwarded-Proto", false),
        ("X-Forwarded-Port", false),
        ("X-Forwarded-Server", false),
        ("X-Forwarded-Prefix", false),
        ("X-Client-IP", false),
        ("True-Client-IP", false),
        // AWS signing, cookies, product origin.
        ("X-Amz-Date", false),
        ("X-Amz-Security-Token", false),
        ("X-Amz-Content-Sha256", false),
        ("Cookie", false),
        ("X-Elastic-Product-Origin", false),
        ("X-Elastic-Client-Meta", false),
        // Ours, with our values, never the sensor's.
        ("Authorization", false),
        ("Proxy-Authorization", false),
        ("Host", false),
        // Hop by hop and everything else.
        ("Expect", false),
        ("Connection", false),
        ("Keep-Alive", false),
        ("TE", false),
        ("Upgrade", false),
        ("X-Unknown-Thing", false),
        ("Elastic-Api-Version", false),
    ];

    #[test]
    fn the_table_of_kept_and_dropped_names_holds_in_any_case() {
        // As the sensor may write it, parsed the way every request's names are.
        let parsed = |n: &str| http::HeaderName::from_bytes(n.as_bytes()).unwrap();
        for (name, kept) in TABLE {
            assert_eq!(sensor_header_kept(&parsed(name)), *kept, "{name}");
            assert_eq!(
                sensor_header_kept(&parsed(&name.to_ascii_lowercase())),
                *kept
            );
            assert_eq!(
                sensor_header_kept(&parsed(&name.to_ascii_uppercase())),
                *kept
            );
        }
    }

    #[test]
    fn our_own_headers_are_never_taken_from_the_sensor() {
        for name in ESPROXY_SET {
            let parsed = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            assert!(!sensor_header_kept(&parsed), "{name}");
        }
    }

    fn head_with_every_table_name() -> RequestHeader {
        let mut h = RequestHeader::build("POST", b"/_bulk", None).unwrap();
        for (name, _) in TABLE {
            h.append_header(name.to_string(), "sensor-value").unwrap();
        }
        h
    }

    fn names(h: &RequestHeader) -> Vec<String> {
        let mut n: Vec<String> = h.headers.keys().map(|k| k.as_str().to_string()).collect();
        n.sort();
        n.dedup();
        n
    }

    #[test]
    fn dropping_name_case_keeps_every_header_value_and_the_request_line() {
        let mut h = RequestHeader::build(
            "POST",
            b"/sessions3-*/_search?rest_total_hits_as_int=true",
            None,
        )
        .unwrap();
        for (name, value) in [
            ("Content-Type", "application/json"),
            ("X-Opaque-ID", "a"),
            ("x-opaque-id", "b"),
            ("USER-AGENT", "arkime"),
        ] {
            h.append_header(name.to_string(), value).unwrap();
        }
        assert!(h.has_case());
        let before: Vec<(String, Vec<u8>)> = h
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        drop_name_case(&mut h);
        assert!(!h.has_case());
        let after: Vec<(String, Vec<u8>)> = h
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(after, before, "same names, values and order");
        assert_eq!(h.method, http::Method::POST);
        assert_eq!(
            h.raw_path(),
            b"/sessions3-*/_search?rest_total_hits_as_int=true"
        );
        assert_eq!(h.version, http::Version::HTTP_11);
        // Later edits work on the one map left.
        h.remove_header("x-opaque-id");
        h.insert_header("Host", "es").unwrap();
        assert_eq!(names(&h), ["content-type", "host", "user-agent"]);
        drop_name_case(&mut h);
        assert_eq!(h.headers["host"], "es");
    }

    #[test]
    fn address_value_writes_what_display_writes() {
        let edges = [0u8, 1, 9, 10, 42, 99, 100, 199, 200, 255];
        for a in edges {
            for b in edges {
                for c in edges {
                    for d in [0u8, 7, 10, 100, 255] {
                        let ip = IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d));
                        assert_eq!(address_value(ip).to_str().unwrap(), ip.to_string());
                    }
                }
            }
        }
        for v6 in ["::1", "2001:db8::7", "::ffff:192.0.2.1", "fe80::1:2:3:4"] {
            let ip: IpAddr = v6.parse().unwrap();
            assert_eq!(address_value(ip).to_str().unwrap(), ip.to_string());
        }
    }

    #[test]
    fn rewrite_keeps_exactly_the_allowlist_and_puts_our_client_address() {
        let mut h = head_with_every_table_name();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        rewrite(&mut h, Some(ip), BodyChange::None).unwrap();
        let mut want: Vec<String> = SENSOR_KEPT.iter().map(|s| s.to_string()).collect();
        want.push("x-forwarded-for".into());
        want.sort();
        assert_eq!(names(&h), want);
        let xff: Vec<_> = h.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["192.0.2.7"], "only ours, the sensor's is gone");
        assert_eq!(h.headers["x-opaque-id"], "sensor-value");
    }

    #[test]
    fn rewrite_of_an_inflated_body_drops_its_encoding_and_goes_chunked() {
        let mut h = head_with_every_table_name();
        rewrite(&mut h, None, BodyChange::Inflated).unwrap();
        assert!(!h.headers.contains_key("content-encoding"));
        assert!(!h.headers.contains_key("content-length"));
        assert_eq!(h.headers["transfer-encoding"], "chunked");
        assert_eq!(h.headers.get_all("transfer-encoding").iter().count(), 1);
        assert!(!h.headers.contains_key("x-forwarded-for"));
        assert!(h.headers.contains_key("content-type"));
    }

    #[test]
    fn a_body_whose_lines_change_goes_chunked_with_its_encoding() {
        let mut h = RequestHeader::build("POST", b"/_bulk", None).unwrap();
        h.insert_header("Content-Length", "1234").unwrap();
        h.insert_header("Content-Encoding", "identity").unwrap();
        rewrite(&mut h, None, BodyChange::Lines).unwrap();
        assert!(!h.headers.contains_key("content-length"));
        assert_eq!(h.headers["transfer-encoding"], "chunked");
        assert_eq!(h.headers["content-encoding"], "identity");
        // Unchanged bodies keep the sensor's framing.
        let mut h = RequestHeader::build("POST", b"/_bulk", None).unwrap();
        h.insert_header("Content-Length", "1234").unwrap();
        rewrite(&mut h, None, BodyChange::None).unwrap();
        assert_eq!(h.headers["content-length"], "1234");
        assert!(!h.headers.contains_key("transfer-encoding"));
    }

    #[test]
    fn opaque_id_is_kept_only_when_single_bounded_and_printable() {
        let with = |values: &[&[u8]]| {
            let mut h = RequestHeader::build("GET", b"/", None).unwrap();
            for v in values {
                h.append_header("X-Opaque-Id", http::HeaderValue::from_bytes(v).unwrap())
                    .unwrap();
            }
            rewrite(&mut h, None, BodyChange::None).unwrap();
            h.headers.get("x-opaque-id").map(|v| v.as_bytes().to_vec())
        };
        assert_eq!(with(&[b"req-42 abc"]), Some(b"req-42 abc".to_vec()));
        let longest = vec![b'a'; MAX_OPAQUE_ID];
        assert_eq!(with(&[&longest]), Some(longest.clone()));
        assert_eq!(with(&[&vec![b'a'; MAX_OPAQUE_ID + 1]]), None, "too long");
        assert_eq!(with(&[b"a\tb"]), None, "control byte");
        assert_eq!(with(&["caf\u{e9}".as_bytes()]), None, "not ASCII");
        assert_eq!(with(&[b""]), None, "empty");
        assert_eq!(with(&[b"one", b"two"]), None, "two values");
    }
}
