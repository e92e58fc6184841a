//! Parsers for single config values (booleans, ports, sizes, durations, Elasticsearch URLs,
//! upstream credentials). Each returns `Err(what to fix)`; `config` (mod.rs) adds file, line,
//! section and key. No file access here.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use base64::Engine as _;

use super::EsUrl;

/// `true`/`false` (also `yes`/`no`, `on`/`off`, `1`/`0`), any case.
pub fn boolean(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("not a boolean (true or false)".into()),
    }
}

/// A TCP port, 1-65535.
pub fn port(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err("not a port number (1-65535)".into()),
    }
}

/// A whole number in `min..=max`.
pub fn count(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let n = digits(v).ok_or_else(|| format!("not a whole number ({min}-{max})"))?;
    in_range(n, min, max)
}

/// Whole seconds in `min..=max`.
pub fn seconds(v: &str, min: u64, max: u64) -> Result<Duration, String> {
    let n = digits(v).ok_or_else(|| format!("not a number of seconds ({min}-{max})"))?;
    in_range(n, min, max).map(Duration::from_secs)
}

/// A size in bytes: plain digits, or digits followed by `K`, `M` or `G` (powers of 1024, any
/// case, optionally followed by `B` or `iB`: `64K`, `8MiB`, `1gb`), in `min..=max`.
pub fn size(v: &str, min: u64, max: u64) -> Result<u64, String> {
    let bad = || "not a size (bytes, or a number followed by K, M or G)".to_string();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let n = digits(&v[..split]).ok_or_else(bad)?;
    let unit = v[split..].trim().to_ascii_lowercase();
    let mult: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = n.checked_mul(mult).ok_or_else(|| too_big(max))?;
    in_range(bytes, min, max)
}

fn digits(v: &str) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

fn too_big(max: u64) -> String {
    format!("too large (at most {})", human(max))
}

fn in_range(n: u64, min: u64, max: u64) -> Result<u64, String> {
    if n < min {
        Err(format!("too small (at least {})", human(min)))
    } else if n > max {
        Err(too_big(max))
    } else {
        Ok(n)
    }
}

/// `1048576` → `1048576 (1M)` for messages about sizes.
pub fn human(n: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{n} ({}{unit})", n >> shift);
        }
    }
    n.to_string()
}

/// An Arkime index prefix: lower-case letters, digits, `_`, `-`, `.`; not starting with `_`,
/// `-` or `.` (Elasticsearch index-name rules, and nothing that could act as a wildcard or path
/// separator in the allowlist).
pub fn prefix(v: &str) -> Result<String, String> {
    let ok_chars = v
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
    if !ok_chars || v.starts_with(['_', '-', '.']) || v.len() > 100 {
        return Err(
            "not a valid index prefix (lower-case letters, digits, `_`, `-`, `.`; e.g. arkime)"
                .into(),
        );
    }
    Ok(v.to_string())
}

/// A host to bind or to name: an IP address (IPv6 with or without brackets) or a DNS name.
/// Returned without brackets.
pub fn host(v: &str) -> Result<String, String> {
    let bare = v
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(v);
    if bare.parse::<IpAddr>().is_ok() {
        return Ok(bare.to_string());
    }
    if is_dns_name(v) {
        return Ok(v.to_ascii_lowercase());
    }
    Err("not an IP address or host name".into())
}

/// An IP address (IPv6 with or without brackets).
pub fn ip(v: &str) -> Result<IpAddr, String> {
    let bare = v
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(v);
    bare.parse()
        .map_err(|_| "not an IP address (e.g. 127.0.0.1 or ::1)".into())
}

fn is_dns_name(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 253
        && v.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The `elasticsearch` list: comma separated, blanks and empty entries ignored. Returns the
/// URLs and the entries that had no scheme (taken as `http://`, as Arkime capture does) for a
/// warning.
pub fn es_urls(v: &str) -> Result<(Vec<EsUrl>, Vec<String>), String> {
    let mut urls = Vec::new();
    let mut no_scheme = Vec::new();
    for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (url, defaulted) = es_url(item)?;
        if defaulted {
            no_scheme.push(url.authority());
        }
        urls.push(url);
    }
    Ok((urls, no_scheme))
}

/// One URL: `http[s]://[user:pass@]host[:port][/]` (IPv6 in brackets; default ports 80/443).
/// A URL without `scheme://` is taken as `http://` (second value `true`). The URL's own
/// `user:pass@` (percent-decoded) becomes a `Basic` header value.
pub fn es_url(item: &str) -> Result<(EsUrl, bool), String> {
    let shown = redact_url(item);
    let fail = |why: &str| format!("{shown:?} is not a URL like http://HOST:9200 ({why})");
    let (https, rest, defaulted) = match item.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => (false, rest, false),
            "https" => (true, rest, false),
            _ => return Err(fail("scheme must be http or https")),
        },
        None => (false, item, true),
    };
    if rest.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(fail("contains spaces or control characters"));
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if !(path.is_empty() || path == "/") {
        return Err(fail("no path, query or fragment allowed after the host"));
    }
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    let (host, port_text) = if let Some(r) = hostport.strip_prefix('[') {
        let (inner, after) = r.split_once(']').ok_or_else(|| fail("missing `]`"))?;
        let v6: Ipv6Addr = inner.parse().map_err(|_| fail("bad IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| fail("junk after `]`"))?),
        };
        (v6.to_string(), port)
    } else {
        let (h, p) = match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        };
        if h.contains(':') || !is_dns_name(h) {
            return Err(fail("bad host; put IPv6 addresses in brackets"));
        }
        (h.to_ascii_lowercase(), p)
    };
    let port = match port_text {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        Some(p) => port(p).map_err(|_| fail("bad port"))?,
    };
    let authorization = match userinfo {
        None | Some("") => None,
        Some(ui) => {
            let (user, pass) = ui.split_once(':').unwrap_or((ui, ""));
            let mut raw: Vec<u8> = percent_encoding::percent_decode_str(user).collect();
            raw.push(b':');
            raw.extend(percent_encoding::percent_decode_str(pass));
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
        }
    };
    Ok((
        EsUrl {
            https,
            host,
            port,
            authorization,
        },
        defaulted,
    ))
}

/// The URL with any password replaced, for messages.
pub fn redact_url(item: &str) -> String {
    let start = item.find("://").map(|i| i + 3).unwrap_or(0);
    let end = item[start..]
        .find(['/', '?', '#'])
        .map(|i| start + i)
        .unwrap_or(item.len());
    match item[start..end].rfind('@') {
        Some(at) => {
            let ui = &item[start..start + at];
            let user = ui.split_once(':').map(|(u, _)| u).unwrap_or(ui);
            format!("{}{user}:***{}", &item[..start], &item[start + at..])
        }
        None => item.to_string(),
    }
}

/// `elasticsearchAPIKey` → `ApiKey <v>`.
pub fn api_key_header(v: &str) -> Result<String, String> {
    if !v.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be the encoded API key (visible ASCII, no spaces)".into());
    }
    Ok(format!("ApiKey {v}"))
}

/// `elasticsearchBasicAuth` → `Basic <base64>`: `user:pass` is encoded; a value without `:` is
/// taken as already base64-encoded (and must decode).
pub fn basic_auth_header(v: &str) -> Result<String, String> {
    if v.contains(':') {
        return Ok(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(v)
        ));
    }
    let ok = v.bytes().all(|b| b.is_ascii_graphic())
        && base64::engine::general_purpose::STANDARD.decode(v).is_ok();
    if !ok {
        return Err("must be `user:pass`, or base64 of `user:pass`".into());
    }
    Ok(format!("Basic {v}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_the_usual_spellings_and_refuse_typos() {
        for t in ["true", "TRUE", "yes", "on", "1"] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for f in ["false", "False", "no", "off", "0"] {
            assert_eq!(boolean(f), Ok(false), "{f}");
        }
        assert!(boolean("treu").is_err());
    }

    #[test]
    fn ports_are_one_to_65535_in_plain_digits() {
        assert_eq!(port("7200"), Ok(7200));
        for bad in ["0", "65536", "72x0", "+80", "-1", ""] {
            assert!(port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_accept_bytes_and_binary_suffixes() {
        let max = u64::MAX;
        assert_eq!(size("1000", 0, max), Ok(1000));
        assert_eq!(size("64K", 0, max), Ok(64 << 10));
        assert_eq!(size("64kb", 0, max), Ok(64 << 10));
        assert_eq!(size("8MiB", 0, max), Ok(8 << 20));
        assert_eq!(size("8 M", 0, max), Ok(8 << 20));
        assert_eq!(size("1g", 0, max), Ok(1 << 30));
        for bad in ["", "M", "1.5M", "1T", "-1", "1 0", "K1"] {
            assert!(size(bad, 0, max).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_bounded_and_overflow_is_too_large() {
        assert!(size("9M", 1024, 8 << 20)
            .unwrap_err()
            .contains("at most 8388608 (8M)"));
        assert!(size("1", 1024, 8 << 20)
            .unwrap_err()
            .contains("at least 1024 (1K)"));
        assert!(size("99999999999999999G", 0, u64::MAX)
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn es_urls_parse_with_scheme_ipv6_and_default_ports() {
        let (u, d) = es_url("http://127.0.0.1:9200").unwrap();
        assert!(!d && !u.https && u.host == "127.0.0.1" && u.port == 9200);
        let (u, _) = es_url("https://ES.example/").unwrap();
        assert!(u.https && u.host == "es.example" && u.port == 443);
        let (u, _) = es_url("http://[2001:db8::1]").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 80));
        assert_eq!(u.authority(), "[2001:db8::1]:80");
        let (u, d) = es_url("192.0.2.1:9200").unwrap();
        assert!(d && !u.https && u.port == 9200);
        assert_eq!(es_url("HTTPS://h:1").unwrap().0.port, 1);
    }

    #[test]
    fn malformed_es_urls_are_refused() {
        for bad in [
            "ftp://h",
            "http://",
            "http://h:0",
            "http://h:99999",
            "http://h:",
            "http://h/es",
            "http://h?x=1",
            "http://2001:db8::1:9200",
            "http://[2001:db8::1",
            "http://[2001:db8::1]x",
            "http://h h",
            "http://bad_host!",
        ] {
            assert!(es_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn es_url_userinfo_becomes_basic_and_is_percent_decoded() {
        let (u, _) = es_url("http://elastic:p%40ss%3Aw@192.0.2.1:9200").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("elastic:p@ss:w");
        assert_eq!(u.authorization.unwrap(), format!("Basic {b64}"));
        let (u, _) = es_url("http://user@192.0.2.1").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode("user:");
        assert_eq!(u.authorization.unwrap(), format!("Basic {b64}"));
    }

    #[test]
    fn url_errors_never_show_the_password() {
        let e = es_url("http://elastic:hunter2@h:99999").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("elastic:***@h"), "{e}");
    }

    #[test]
    fn url_list_skips_blanks() {
        let (urls, _) = es_urls(" , , http://127.0.0.1:9200,").unwrap();
        assert_eq!(urls.len(), 1);
        assert!(es_urls(" , ").unwrap().0.is_empty());
    }

    #[test]
    fn basic_auth_value_is_encoded_once_and_bad_base64_refused() {
        let enc = base64::engine::general_purpose::STANDARD.encode("u:p");
        assert_eq!(basic_auth_header("u:p").unwrap(), format!("Basic {enc}"));
        assert_eq!(basic_auth_header(&enc).unwrap(), format!("Basic {enc}"));
        assert!(basic_auth_header("not base64!").is_err());
    }

    #[test]
    fn api_key_value_becomes_an_apikey_header_and_blanks_are_refused() {
        assert_eq!(api_key_header("abc==").unwrap(), "ApiKey abc==");
        assert!(api_key_header("a b").is_err());
    }

    #[test]
    fn prefixes_are_lowercase_index_safe_names() {
        assert!(prefix("tests").is_ok());
        assert!(prefix("arkime_").is_ok());
        for bad in ["Tests", "a*", "a/b", "_x", "a,b", "a b"] {
            assert!(prefix(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_are_unbracketed_and_lowercased_and_blanks_refused() {
        assert_eq!(host("[::1]").unwrap(), "::1");
        assert_eq!(host("0.0.0.0").unwrap(), "0.0.0.0");
        assert_eq!(host("Proxy.Example").unwrap(), "proxy.example");
        assert!(host("bad host").is_err());
    }
}
