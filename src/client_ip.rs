//! Client-IP resolution (SPEC §3): socket peer + forwarding header + configured proxies → the
//! IP address the request is treated as coming from.
//!
//! This module owns one decision only: *which address is the client*. It never allows or denies a
//! sensor (that is `auth`'s job, which receives the address computed here) and it never touches
//! what is sent upstream. The only refusal it can produce is [`Reject::BadForwardedFor`], when a
//! hop we trust handed us a forwarding header we cannot read.
//!
//! The model is Search Guard's `xff` one (`enabled`, `remoteIpHeader`, `internalProxies`,
//! `trustedProxies`), with stricter parsing:
//! 1. the socket peer is canonicalised (`::ffff:a.b.c.d` → `a.b.c.d`);
//! 2. XFF disabled, or the peer is not an internal proxy → the peer is the client, the header is
//!    ignored;
//! 3. all header lines are joined with `,`; more than [`MAX_HEADER_BYTES`] bytes or more than
//!    [`MAX_ENTRIES`] entries → refused; a missing or blank header → the peer;
//! 4. entries are walked right to left; an internal or trusted proxy is skipped, the first other
//!    entry is the client; an entry the walk reaches that is not an IP → refused. Entries left of
//!    the client are never parsed, so a spoofed or garbage leftmost entry is harmless;
//! 5. every entry a proxy → the leftmost one.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use regex::Regex;

use crate::framing::trim_ows;
use crate::reject::Reject;

/// Largest accepted forwarding header (all lines joined with `,`), in bytes.
pub const MAX_HEADER_BYTES: usize = 2048;
/// Most entries accepted in the forwarding header (all lines together).
pub const MAX_ENTRIES: usize = 32;
/// The forwarding header read when `remoteIpHeader` is not set.
pub const DEFAULT_HEADER: &str = "x-forwarded-for";

/// Parses one IP address or CIDR range as written in a config list (`192.0.2.7`,
/// `198.51.100.0/24`, `2001:db8::/32`, `::ffff:192.0.2.7`), canonicalised so that an IPv4-mapped
/// IPv6 address or range becomes the plain IPv4 one. Shared with `auth`'s sensor IP lists.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = if text.contains('/') {
        text.parse::<IpNet>()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?
    } else {
        let ip = text
            .parse::<IpAddr>()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))?;
        IpNet::from(ip)
    };
    Ok(canonical_net(net))
}

/// A mapped IPv4 range (`::ffff:0:0/96` and narrower) is the same set of clients as the IPv4
/// range it embeds; everything else is returned unchanged.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.addr().to_ipv4_mapped() {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}

/// A set of proxy addresses from one config value: either a comma/space separated list of IPs
/// and CIDR ranges, or (Search Guard compatibility) one regular expression matched against the
/// whole canonical IP text.
#[derive(Clone, Default)]
pub struct ProxySet {
    nets: Vec<IpNet>,
    regex: Option<Regex>,
}

impl ProxySet {
    /// Parses a config value. A value that is entirely IPs/CIDRs is a list; anything else is taken
    /// as a regular expression, compiled anchored (`^(?:re)$`) so that `10\.0\.0\.\d+` can never
    /// match `110.0.0.1`. An empty value is the empty set.
    pub fn parse(value: &str) -> Result<ProxySet, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(ProxySet::default());
        }
        let items = value
            .split([',', ' ', '\t'])
            .filter(|s| !s.is_empty())
            .map(parse_net)
            .collect::<Result<Vec<_>, _>>();
        if let Ok(nets) = items {
            return Ok(ProxySet { nets, regex: None });
        }
        let re = Regex::new(&format!("^(?:{value})$")).map_err(|e| {
            format!("neither a list of IPs/CIDR ranges nor a valid regular expression: {e}")
        })?;
        Ok(ProxySet {
            nets: Vec::new(),
            regex: Some(re),
        })
    }

    /// True when nothing can match.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.regex.is_none()
    }

    /// Whether `ip` (already canonical) is in the set.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.nets.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        match &self.regex {
            None => false,
            Some(re) => {
                let mut buf = IpText::default();
                // Writing an IP into a 64-byte buffer cannot fail (the longest text is 45 bytes).
                let _ = fmt::write(&mut buf, format_args!("{ip}"));
                re.is_match(buf.as_str())
            }
        }
    }
}

impl fmt::Debug for ProxySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.regex {
            Some(re) => write!(f, "ProxySet(regex {:?})", re.as_str()),
            None => f.debug_tuple("ProxySet").field(&self.nets).finish(),
        }
    }
}

/// A stack buffer for an IP's text, so regex matching does not allocate per request.
struct IpText {
    buf: [u8; 64],
    len: usize,
}

impl Default for IpText {
    fn default() -> Self {
        IpText {
            buf: [0; 64],
            len: 0,
        }
    }
}

impl IpText {
    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever written, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for IpText {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The `[xff]` settings: whether forwarding headers are used at all, which header, and which
/// peers/hops are proxies.
#[derive(Debug, Clone)]
pub struct XffConfig {
    enabled: bool,
    header: String,
    internal: ProxySet,
    trusted: ProxySet,
}

impl XffConfig {
    /// Forwarding headers ignored: the client is always the socket peer.
    pub fn disabled() -> Self {
        XffConfig {
            enabled: false,
            header: DEFAULT_HEADER.to_string(),
            internal: ProxySet::default(),
            trusted: ProxySet::default(),
        }
    }

    /// Builds the settings from config values. `header` empty means `X-Forwarded-For`;
    /// `internal`/`trusted` are [`ProxySet::parse`] values. The error says which value is wrong.
    pub fn new(enabled: bool, header: &str, internal: &str, trusted: &str) -> Result<Self, String> {
        let header = header.trim();
        let header = if header.is_empty() {
            DEFAULT_HEADER.to_string()
        } else {
            http::HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| format!("remoteIpHeader {header:?} is not a valid header name"))?
                .as_str()
                .to_string()
        };
        let internal = ProxySet::parse(internal).map_err(|e| format!("internalProxies: {e}"))?;
        let trusted = ProxySet::parse(trusted).map_err(|e| format!("trustedProxies: {e}"))?;
        Ok(XffConfig {
            enabled,
            header,
            internal,
            trusted,
        })
    }

    /// The forwarding header to read (lower case).
    pub fn header_name(&self) -> &str {
        &self.header
    }

    /// Whether forwarding headers are used at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The peers allowed to hand us a forwarding header.
    pub fn internal(&self) -> &ProxySet {
        &self.internal
    }

    /// Further hops skipped in the walk (but not allowed to be the peer).
    pub fn trusted(&self) -> &ProxySet {
        &self.trusted
    }

    fn is_proxy(&self, ip: IpAddr) -> bool {
        self.internal.contains(ip) || self.trusted.contains(ip)
    }
}

/// [`resolve`] for a request's headers: every line of the configured header, when `[xff]` is
/// enabled (else none is read).
pub fn resolve_headers(
    cfg: &XffConfig,
    peer: IpAddr,
    headers: &http::HeaderMap,
) -> Result<IpAddr, Reject> {
    let lines: Vec<&[u8]> = if cfg.enabled {
        headers
            .get_all(cfg.header_name())
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    } else {
        Vec::new()
    };
    resolve(cfg, peer, &lines)
}

/// Resolves the client IP for one request. `header_lines` are the values of every
/// [`XffConfig::header_name`] header line, in order.
pub fn resolve(cfg: &XffConfig, peer: IpAddr, header_lines: &[&[u8]]) -> Result<IpAddr, Reject> {
    let peer = peer.to_canonical();
    if !cfg.enabled || !cfg.internal.contains(peer) {
        return Ok(peer);
    }

    // Limits apply to the whole header, wherever the walk would stop, so an oversized header
    // is refused the same way every time.
    let joined_len: usize =
        header_lines.iter().map(|l| l.len()).sum::<usize>() + header_lines.len().saturating_sub(1);
    if joined_len > MAX_HEADER_BYTES {
        return Err(Reject::BadForwardedFor(format!(
            "{joined_len} bytes (limit {MAX_HEADER_BYTES})"
        )));
    }
    if header_lines.iter().all(|l| trim_ows(l).is_empty()) {
        return Ok(peer);
    }
    let entries: usize = header_lines
        .iter()
        .map(|l| 1 + memchr::memchr_iter(b',', l).count())
        .sum();
    if entries > MAX_ENTRIES {
        return Err(Reject::BadForwardedFor(format!(
            "{entries} entries (limit {MAX_ENTRIES})"
        )));
    }

    let mut leftmost = peer;
    for line in header_lines.iter().rev() {
        for entry in line.rsplit(|&b| b == b',') {
            let entry = trim_ows(entry);
            let ip = parse_entry(entry).ok_or_else(|| {
                Reject::BadForwardedFor(format!("unusable entry {}", shown(entry)))
            })?;
            if !cfg.is_proxy(ip) {
                return Ok(ip);
            }
            leftmost = ip;
        }
    }
    Ok(leftmost)
}

/// One forwarding entry: `IPv4`, `IPv4:port`, `IPv6`, `[IPv6]` or `[IPv6]:port`, canonicalised.
/// A bare IPv6 address is never split on `:`. Anything else (host names, `unknown`, obfuscated
/// identifiers, zone ids, empty) is `None`.
fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?;
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let v6: Ipv6Addr = inner.parse().ok()?;
        if !after.is_empty() {
            valid_port(after.strip_prefix(':')?)?;
        }
        return Some(IpAddr::V6(v6).to_canonical());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    let (host, port) = s.split_once(':')?;
    valid_port(port)?;
    let v4: Ipv4Addr = host.parse().ok()?;
    Some(IpAddr::V4(v4))
}

fn valid_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok()
}

/// A header entry for a refusal's detail: raw (the log line escapes it), quoted, cut short.
fn shown(entry: &[u8]) -> String {
    const MAX: usize = 64;
    let cut = String::from_utf8_lossy(&entry[..entry.len().min(MAX)]);
    let more = if entry.len() > MAX { "…" } else { "" };
    format!("\"{cut}\"{more}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// LB at 192.0.2.10 (internal), a CDN edge range 198.51.100.0/24 (trusted).
    fn cfg() -> XffConfig {
        XffConfig::new(true, "", "192.0.2.10, 2001:db8::10", "198.51.100.0/24").unwrap()
    }

    fn resolve_lines(cfg: &XffConfig, peer: &str, lines: &[&str]) -> Result<IpAddr, Reject> {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        resolve(cfg, ip(peer), &lines)
    }

    fn is_bad(r: Result<IpAddr, Reject>) -> bool {
        matches!(r, Err(Reject::BadForwardedFor(_)))
    }

    #[test]
    fn disabled_xff_uses_the_peer_and_ignores_the_header() {
        let c = XffConfig::disabled();
        assert_eq!(
            resolve_lines(&c, "192.0.2.10", &["203.0.113.5"]).unwrap(),
            ip("192.0.2.10")
        );
    }

    #[test]
    fn disabled_xff_ignores_even_garbage_headers() {
        let c = XffConfig::disabled();
        let huge = "x,".repeat(5000);
        assert_eq!(
            resolve_lines(&c, "192.0.2.10", &[&huge]).unwrap(),
            ip("192.0.2.10")
        );
    }

    #[test]
    fn untrusted_peer_ignores_incoming_forwarding_headers() {
        assert_eq!(
            resolve_lines(&cfg(), "203.0.113.9", &["203.0.113.5"]).unwrap(),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn untrusted_peer_with_garbage_header_is_not_refused() {
        assert_eq!(
            resolve_lines(&cfg(), "203.0.113.9", &["unknown, ,_obf"]).unwrap(),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn trusted_but_not_internal_peer_cannot_hand_us_a_header() {
        // Search Guard semantics: only internalProxies may be the socket peer.
        assert_eq!(
            resolve_lines(&cfg(), "198.51.100.7", &["203.0.113.5"]).unwrap(),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn one_proxy_hop_gives_the_rightmost_entry() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn two_proxy_hops_skip_the_trusted_hop() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["203.0.113.5, 198.51.100.7"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn internal_proxy_entries_are_skipped_too() {
        assert_eq!(
            resolve_lines(
                &cfg(),
                "192.0.2.10",
                &["203.0.113.5, 192.0.2.10, 198.51.100.7"]
            )
            .unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn spoofed_leftmost_entry_is_ignored() {
        // The client sent "XFF: 192.0.2.200"; the LB appended the real address.
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["192.0.2.200, 203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn garbage_left_of_the_client_is_never_parsed() {
        for garbage in ["unknown", "_obf", "", "evil.example", "999.1.1.1", "\u{7f}"] {
            let header = format!("{garbage}, 203.0.113.5");
            assert_eq!(
                resolve_lines(&cfg(), "192.0.2.10", &[&header]).unwrap(),
                ip("203.0.113.5"),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn garbage_reached_by_the_walk_is_refused() {
        for garbage in [
            "unknown",
            "_obf",
            "",
            "proxy.example",
            "1.2.3",
            "fe80::1%eth0",
            "[2001:db8::1",
        ] {
            let header = format!("203.0.113.5, {garbage}");
            assert!(
                is_bad(resolve_lines(&cfg(), "192.0.2.10", &[&header])),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn garbage_behind_a_trusted_hop_is_refused() {
        assert!(is_bad(resolve_lines(
            &cfg(),
            "192.0.2.10",
            &["unknown, 198.51.100.7"]
        )));
    }

    #[test]
    fn all_entries_trusted_gives_the_leftmost() {
        assert_eq!(
            resolve_lines(
                &cfg(),
                "192.0.2.10",
                &["198.51.100.1, 198.51.100.2, 192.0.2.10"]
            )
            .unwrap(),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn multiple_header_lines_are_joined_in_order() {
        assert_eq!(
            resolve_lines(
                &cfg(),
                "192.0.2.10",
                &["192.0.2.200", "203.0.113.5", "198.51.100.7"]
            )
            .unwrap(),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve_lines(
                &cfg(),
                "192.0.2.10",
                &["203.0.113.5, 198.51.100.1", "198.51.100.7"]
            )
            .unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn empty_line_among_lines_is_an_empty_entry_when_reached() {
        assert!(is_bad(resolve_lines(
            &cfg(),
            "192.0.2.10",
            &["203.0.113.5", "", "198.51.100.7"]
        )));
    }

    #[test]
    fn missing_header_gives_the_peer() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &[]).unwrap(),
            ip("192.0.2.10")
        );
    }

    #[test]
    fn blank_header_gives_the_peer() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["", " \t "]).unwrap(),
            ip("192.0.2.10")
        );
    }

    #[test]
    fn comma_only_header_is_refused() {
        assert!(is_bad(resolve_lines(&cfg(), "192.0.2.10", &[" , "])));
    }

    #[test]
    fn whitespace_around_entries_is_trimmed() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["\t203.0.113.5 \t,  198.51.100.7\t"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn ipv4_with_port_is_accepted() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["203.0.113.5:51234"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn bad_ports_are_refused() {
        for e in [
            "203.0.113.5:",
            "203.0.113.5:65536",
            "203.0.113.5:x",
            "[2001:db8::5]:",
            "[2001:db8::5]x",
        ] {
            assert!(is_bad(resolve_lines(&cfg(), "192.0.2.10", &[e])), "{e}");
        }
    }

    #[test]
    fn bare_ipv6_is_never_split_on_colon() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["2001:db8::5"]).unwrap(),
            ip("2001:db8::5")
        );
        // The last group looks like a port but belongs to the address.
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["2001:db8::5:8080"]).unwrap(),
            ip("2001:db8::5:8080")
        );
    }

    #[test]
    fn bracketed_ipv6_with_and_without_port_is_accepted() {
        for e in ["[2001:db8::5]", "[2001:db8::5]:443"] {
            assert_eq!(
                resolve_lines(&cfg(), "192.0.2.10", &[e]).unwrap(),
                ip("2001:db8::5"),
                "{e}"
            );
        }
    }

    #[test]
    fn ipv6_peer_can_be_internal() {
        assert_eq!(
            resolve_lines(&cfg(), "2001:db8::10", &["2001:db8::5"]).unwrap(),
            ip("2001:db8::5")
        );
    }

    #[test]
    fn mapped_v4_peer_matches_v4_internal_proxy() {
        assert_eq!(
            resolve_lines(&cfg(), "::ffff:192.0.2.10", &["203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn untrusted_mapped_v4_peer_is_returned_as_plain_v4() {
        assert_eq!(
            resolve_lines(&cfg(), "::ffff:203.0.113.9", &[]).unwrap(),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn mapped_v4_entries_are_canonicalised() {
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["::ffff:203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["[::ffff:203.0.113.5]:80"]).unwrap(),
            ip("203.0.113.5")
        );
        // A mapped trusted hop is still trusted.
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &["203.0.113.5, ::ffff:198.51.100.7"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn mapped_v4_range_in_config_equals_the_v4_range() {
        let c = XffConfig::new(true, "", "::ffff:192.0.2.0/120", "").unwrap();
        assert_eq!(
            resolve_lines(&c, "192.0.2.77", &["203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn header_over_2_kib_is_refused() {
        let mut header = "203.0.113.5,".repeat(10);
        header.push_str(&" ".repeat(MAX_HEADER_BYTES));
        header.push_str("203.0.113.5");
        assert!(is_bad(resolve_lines(&cfg(), "192.0.2.10", &[&header])));
    }

    #[test]
    fn header_of_exactly_2_kib_is_accepted() {
        let mut header = " ".repeat(MAX_HEADER_BYTES - "203.0.113.5".len());
        header.push_str("203.0.113.5");
        assert_eq!(header.len(), MAX_HEADER_BYTES);
        assert_eq!(
            resolve_lines(&cfg(), "192.0.2.10", &[&header]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn size_limit_counts_the_joining_commas() {
        let a = " ".repeat(1000) + "203.0.113.5";
        let b = " ".repeat(MAX_HEADER_BYTES - a.len() - 1 - 11) + "203.0.113.6";
        // a + "," + b is exactly the limit.
        assert!(resolve_lines(&cfg(), "192.0.2.10", &[&a, &b]).is_ok());
        let b2 = format!(" {b}");
        assert!(is_bad(resolve_lines(&cfg(), "192.0.2.10", &[&a, &b2])));
    }

    #[test]
    fn more_than_32_entries_are_refused_even_if_the_client_is_rightmost() {
        let header = vec!["203.0.113.5"; MAX_ENTRIES + 1].join(",");
        assert!(is_bad(resolve_lines(&cfg(), "192.0.2.10", &[&header])));
    }

    #[test]
    fn entries_are_counted_across_lines() {
        let line = vec!["203.0.113.5"; 16].join(",");
        assert!(resolve_lines(&cfg(), "192.0.2.10", &[&line, &line]).is_ok());
        assert!(is_bad(resolve_lines(
            &cfg(),
            "192.0.2.10",
            &[&line, &line, "203.0.113.5"]
        )));
    }

    #[test]
    fn regex_proxies_are_anchored() {
        let c = XffConfig::new(true, "", r"10\.0\.0\.\d+", "").unwrap();
        assert!(c.internal().contains(ip("10.0.0.1")));
        assert!(!c.internal().contains(ip("110.0.0.1")));
        // A peer 110.0.0.1 is not internal: header ignored.
        assert_eq!(
            resolve_lines(&c, "110.0.0.1", &["203.0.113.5"]).unwrap(),
            ip("110.0.0.1")
        );
        assert_eq!(
            resolve_lines(&c, "10.0.0.1", &["203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn regex_alternation_is_anchored_as_a_whole() {
        // Without the group, `^a|b$` would match anything starting with a.
        let s = ProxySet::parse(r"192\.0\.2\.1|192\.0\.2\.2").unwrap();
        assert!(s.contains(ip("192.0.2.1")));
        assert!(s.contains(ip("192.0.2.2")));
        assert!(!s.contains(ip("192.0.2.10")));
        assert!(!s.contains(ip("192.0.2.22")));
    }

    #[test]
    fn regex_matches_the_canonical_ipv6_text() {
        let s = ProxySet::parse(r"2001:db8::[0-9a-f]+").unwrap();
        assert!(s.contains(ip("2001:0db8:0:0:0:0:0:0001")));
        assert!(!s.contains(ip("2001:db8:1::1")));
    }

    #[test]
    fn regex_sees_mapped_v4_as_plain_v4() {
        let c = XffConfig::new(true, "", r"192\.0\.2\.10", "").unwrap();
        assert_eq!(
            resolve_lines(&c, "::ffff:192.0.2.10", &["203.0.113.5"]).unwrap(),
            ip("203.0.113.5")
        );
    }

    #[test]
    fn invalid_regex_is_a_config_error() {
        let e = XffConfig::new(true, "", "10.0.0.(", "").unwrap_err();
        assert!(e.starts_with("internalProxies:"), "{e}");
        let e = XffConfig::new(true, "", "", "[").unwrap_err();
        assert!(e.starts_with("trustedProxies:"), "{e}");
    }

    #[test]
    fn proxy_list_accepts_commas_and_spaces() {
        let s = ProxySet::parse("192.0.2.1 ,198.51.100.0/24  2001:db8::/64").unwrap();
        assert!(s.contains(ip("192.0.2.1")));
        assert!(s.contains(ip("198.51.100.200")));
        assert!(s.contains(ip("2001:db8::abcd")));
        assert!(!s.contains(ip("192.0.2.2")));
    }

    #[test]
    fn empty_proxy_set_matches_nothing() {
        let s = ProxySet::parse("  ").unwrap();
        assert!(s.is_empty());
        assert!(!s.contains(ip("192.0.2.1")));
    }

    #[test]
    fn enabled_without_internal_proxies_never_reads_the_header() {
        let c = XffConfig::new(true, "", "", "198.51.100.0/24").unwrap();
        assert_eq!(
            resolve_lines(&c, "198.51.100.7", &["203.0.113.5"]).unwrap(),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn header_name_defaults_and_is_lower_cased() {
        assert_eq!(cfg().header_name(), "x-forwarded-for");
        let c = XffConfig::new(true, "X-Real-IP", "", "").unwrap();
        assert_eq!(c.header_name(), "x-real-ip");
        assert!(XffConfig::new(true, "bad header", "", "").is_err());
    }

    #[test]
    fn non_utf8_entry_is_refused() {
        let lines: [&[u8]; 1] = [b"\xff\xfe"];
        assert!(is_bad(resolve(&cfg(), ip("192.0.2.10"), &lines)));
    }

    #[test]
    fn leading_zero_ipv4_is_not_an_ip() {
        // Some parsers read 010 as octal; refuse rather than guess.
        assert!(is_bad(resolve_lines(&cfg(), "192.0.2.10", &["010.0.0.1"])));
    }

    #[test]
    fn rejection_detail_is_short_and_escaped_in_the_log_line() {
        let header = format!("{}\u{1b}[31m", "a".repeat(200));
        match resolve_lines(&cfg(), "192.0.2.10", &[&header]) {
            Err(Reject::BadForwardedFor(d)) => {
                assert!(d.len() < 120, "{d}");
                assert!(!crate::logline::escape(d.as_bytes()).contains('\u{1b}'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parse_net_canonicalises_mapped_addresses() {
        assert_eq!(
            parse_net("::ffff:192.0.2.1").unwrap(),
            parse_net("192.0.2.1").unwrap()
        );
        assert_eq!(
            parse_net("::ffff:192.0.2.0/120").unwrap(),
            parse_net("192.0.2.0/24").unwrap()
        );
        assert!(parse_net("192.0.2.0/33").is_err());
        assert!(parse_net("host.example").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_headers_never_panic_and_untrusted_peers_always_win(
            lines in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..80), 0..5),
        ) {
            let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_slice()).collect();
            let _ = resolve(&cfg(), ip("192.0.2.10"), &lines);
            proptest::prop_assert_eq!(resolve(&cfg(), ip("203.0.113.9"), &lines), Ok(ip("203.0.113.9")));
        }

        #[test]
        fn arbitrary_proxy_values_never_panic(v in "\\PC{0,40}") {
            let _ = XffConfig::new(true, &v, &v, &v);
        }
    }
}
