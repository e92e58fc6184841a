//! Sensor authentication (SPEC §2): the request's `Authorization` header(s) + the client IP
//! (already resolved by `client_ip`) → the authenticated sensor's node name, or a [`Reject`].
//!
//! This module owns the decision *who is this sensor*. It does not resolve the client IP (that is
//! `client_ip`), does not decide what the sensor may do (`allowlist`, `bulk`), and never sees or
//! sets upstream credentials.
//!
//! Sensors come from `[esproxy-sensors]` (`NODE=pass:SECRET;ip:IP,IP,…`). Names are looked up in
//! a `HashMap`, so names that are special in JavaScript (`__proto__`, `constructor`, …) are just
//! unknown names. Passwords are compared as HMAC-SHA256 tags under a per-process random key, so
//! the comparison takes the same time whatever the length or content of either password.
//!
//! A connection remembers its last positive verdict ([`Memo`], held by the connection gate's
//! ticket): the next request on the same connection whose single `Authorization` value is the
//! same bytes, from the same client IP, under the same sensor set (a SIGHUP reload builds a new
//! one) gets the same sensor without the HMAC being computed again. That skips only work whose
//! answer cannot differ: the verdict is a function of exactly those three inputs (no clock, no
//! counter), and the memo is never shared between connections, so it can only replay a verdict
//! the very same credentials already earned on that socket. Refusals are never remembered, and a
//! refusal clears the memo. Requests with a TLS client certificate are always checked in full.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use ipnet::IpNet;
use ring::hmac;

use crate::client_ip::parse_net;
use crate::framing::trim_ows;
use crate::reject::Reject;

/// One configured sensor. A missing part turns that check off (the config warns about a sensor
/// with neither).
#[derive(Clone, PartialEq, Eq)]
pub struct Sensor {
    /// The Basic password the sensor must present; `None` = any password.
    pub pass: Option<String>,
    /// Networks the client IP must be in (canonical: mapped IPv4 stored as IPv4); `None` = any IP.
    pub ips: Option<Vec<IpNet>>,
}

impl Sensor {
    /// Parses an `[esproxy-sensors]` value: `;`-separated parts `pass:SECRET` and
    /// `ip:IP,IP,…` (IPv4/IPv6 addresses or CIDR ranges), both optional, each at most once.
    /// The error (never containing the password) says what to fix.
    ///
    /// Stricter than esProxy.js on purpose: an unknown part (`IP:…`, `password:…`) or an empty
    /// `pass:`/`ip:` is an error, because silently ignoring it would leave that check off.
    pub fn parse(value: &str) -> Result<Sensor, String> {
        let mut sensor = Sensor {
            pass: None,
            ips: None,
        };
        for part in value.split(';') {
            if part.trim().is_empty() {
                continue;
            }
            let Some((key, val)) = part.split_once(':') else {
                // Not echoed: it may well be a password written without `pass:`.
                return Err("a part without `:` (expected `pass:SECRET` or `ip:IP,IP,…`)".into());
            };
            match key.trim() {
                "pass" => {
                    if sensor.pass.is_some() {
                        return Err("`pass:` given twice".into());
                    }
                    // The secret is kept byte for byte (esProxy.js does not trim it either).
                    if val.is_empty() {
                        return Err("empty `pass:` (omit the part to accept any password)".into());
                    }
                    sensor.pass = Some(val.to_string());
                }
                "ip" => {
                    if sensor.ips.is_some() {
                        return Err("`ip:` given twice".into());
                    }
                    let nets = val
                        .split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(parse_net)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|e| format!("in `ip:`: {e}"))?;
                    if nets.is_empty() {
                        return Err("empty `ip:` list (omit the part to accept any IP)".into());
                    }
                    sensor.ips = Some(nets);
                }
                other => {
                    return Err(format!(
                        "unknown part {:?} (only `pass:` and `ip:` are understood)",
                        other.chars().take(32).collect::<String>()
                    ))
                }
            }
        }
        Ok(sensor)
    }

    /// True when the sensor checks neither a password nor an IP (anyone using the name passes).
    pub fn is_open(&self) -> bool {
        self.pass.is_none() && self.ips.is_none()
    }
}

impl fmt::Debug for Sensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sensor")
            .field("pass", &self.pass.as_ref().map(|_| "<redacted>"))
            .field("ips", &self.ips)
            .finish()
    }
}

#[derive(Clone)]
struct Entry {
    sensor: Sensor,
    /// HMAC tag of the configured password, computed once.
    tag: Option<[u8; 32]>,
    /// Its metric series, kept with this sensor set (a reload starts new ones).
    series: Arc<crate::metrics::SensorSeries>,
}

/// Every configured sensor, ready for [`authenticate`].
#[derive(Clone)]
pub struct Sensors {
    map: HashMap<String, Entry>,
    key: hmac::Key,
    /// Unique per [`Sensors::new`] (a clone keeps it: same sensors, same verdicts); a [`Memo`]
    /// made under another generation is ignored.
    generation: u64,
}

/// Source of [`Sensors::generation`].
static GENERATION: AtomicU64 = AtomicU64::new(1);

impl Sensors {
    /// Builds the set (password tags are computed here, once).
    pub fn new(map: HashMap<String, Sensor>) -> Self {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
            // Timing safety does not depend on the key being secret; a fixed key is a fine
            // fallback if the system RNG is unavailable.
            .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, b"esproxy password compare"));
        let map = map
            .into_iter()
            .map(|(name, sensor)| {
                let tag = sensor.pass.as_ref().map(|p| {
                    let mut t = [0u8; 32];
                    t.copy_from_slice(hmac::sign(&key, p.as_bytes()).as_ref());
                    t
                });
                let series = Arc::default();
                (
                    name,
                    Entry {
                        sensor,
                        tag,
                        series,
                    },
                )
            })
            .collect();
        Sensors {
            map,
            key,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The sensor called `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&Sensor> {
        self.map.get(name).map(|e| &e.sensor)
    }

    /// The metric series of the sensor called `name`, if configured.
    pub fn series(&self, name: &str) -> Option<&crate::metrics::SensorSeries> {
        self.map.get(name).map(|e| &*e.series)
    }

    /// Number of sensors.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no sensor is configured (every request is refused).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The configured sensor names (in no particular order).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

impl Default for Sensors {
    fn default() -> Self {
        Sensors::new(HashMap::new())
    }
}

impl fmt::Debug for Sensors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m: Vec<_> = self.map.iter().map(|(k, e)| (k, &e.sensor)).collect();
        m.sort_by(|a, b| a.0.cmp(b.0));
        f.debug_map().entries(m).finish()
    }
}

/// Authenticates one request. `authorization` holds every `Authorization` header value of the
/// request; `client` is the client IP from `client_ip::resolve`. Returns the sensor's name
/// (= its Arkime node name).
///
/// Checks, in esProxy.js's order: exactly one header; Basic scheme (case-insensitive) with
/// base64 `user:pass` (split at the first `:`, UTF-8); known user; password (constant time,
/// skipped for a sensor without one); client IP in the sensor's networks (skipped without a list;
/// `::ffff:a.b.c.d` is `a.b.c.d`).
pub fn authenticate(
    sensors: &Sensors,
    authorization: &[&[u8]],
    client: IpAddr,
) -> Result<String, Reject> {
    let header = match authorization {
        [] => return Err(Reject::NoCredentials),
        [one] => *one,
        _ => return Err(Reject::MultipleAuthorization),
    };
    let (decoded, colon) = parse_basic(header).ok_or(Reject::NoCredentials)?;
    let (user, pass) = (&decoded[..colon], &decoded[colon + 1..]);
    let entry = sensors.map.get(user).ok_or(Reject::UnknownSensor)?;
    if let Some(tag) = &entry.tag {
        hmac::verify(&sensors.key, pass.as_bytes(), tag).map_err(|_| Reject::BadPassword)?;
    }
    check_ip(&entry.sensor, client)?;
    Ok(user.to_string())
}

fn check_ip(sensor: &Sensor, client: IpAddr) -> Result<(), Reject> {
    if let Some(nets) = &sensor.ips {
        let client = client.to_canonical();
        if !nets.iter().any(|n| n.contains(&client)) {
            return Err(Reject::IpNotAllowed(client));
        }
    }
    Ok(())
}

/// [`authenticate_with_cert`] for a request's headers (every `Authorization` line).
pub fn authenticate_request(
    sensors: &Sensors,
    headers: &http::HeaderMap,
    client: IpAddr,
    cert_names: Option<&[String]>,
) -> Result<String, Reject> {
    let creds: Vec<&[u8]> = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    authenticate_with_cert(sensors, &creds, client, cert_names)
}

/// One connection's last positive verdict (see the module doc): empty until a request on the
/// connection authenticates, cleared by a refusal.
#[derive(Default)]
pub struct Memo(Mutex<Option<Verdict>>);

/// The inputs of a positive verdict and the sensor it named.
struct Verdict {
    generation: u64,
    client: IpAddr,
    header: Box<[u8]>,
    sensor: Arc<str>,
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the header: it holds the password.
        f.write_str("Memo")
    }
}

/// [`authenticate_request`] with the connection's [`Memo`] (None: no connection context, e.g.
/// a request the gate did not see): a repeat of the remembered single `Authorization` value,
/// client IP and sensor generation is answered from it; anything else is checked in full and a
/// success remembered. The name is shared (`Arc`): a request answered from the memo allocates
/// nothing for it.
pub fn authenticate_request_memo(
    sensors: &Sensors,
    headers: &http::HeaderMap,
    client: IpAddr,
    cert_names: Option<&[String]>,
    memo: Option<&Memo>,
) -> Result<Arc<str>, Reject> {
    let Some(memo) = memo.filter(|_| cert_names.is_none()) else {
        return authenticate_request(sensors, headers, client, cert_names).map(Arc::from);
    };
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(one), None) = (values.next(), values.next()) else {
        *lock(memo) = None;
        return authenticate_request(sensors, headers, client, cert_names).map(Arc::from);
    };
    let header = one.as_bytes();
    let mut held = lock(memo);
    if let Some(v) = held.as_ref() {
        if v.generation == sensors.generation
            && v.client == client
            // Constant time, as the password check it stands in for.
            && bool::from(subtle::ConstantTimeEq::ct_eq(&v.header[..], header))
        {
            return Ok(v.sensor.clone());
        }
    }
    match authenticate(sensors, &[header], client) {
        Ok(sensor) => {
            let sensor: Arc<str> = Arc::from(sensor);
            *held = Some(Verdict {
                generation: sensors.generation,
                client,
                header: header.into(),
                sensor: sensor.clone(),
            });
            Ok(sensor)
        }
        Err(r) => {
            *held = None;
            Err(r)
        }
    }
}

fn lock(memo: &Memo) -> std::sync::MutexGuard<'_, Option<Verdict>> {
    memo.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// [`authenticate`] for a request whose TLS connection may carry a verified client certificate;
/// `cert_names` are the node names it vouches for (`tls::ClientCert`: CNs, then DNS SANs).
///
/// - No certificate: exactly [`authenticate`].
/// - Certificate and Basic credentials: [`authenticate`] in full (password included), and the
///   Basic user must be one of the certificate's names: both must name the same node.
/// - Certificate alone: the certificate must name exactly one configured sensor, which needs no
///   password then; its IP list still applies.
pub fn authenticate_with_cert(
    sensors: &Sensors,
    authorization: &[&[u8]],
    client: IpAddr,
    cert_names: Option<&[String]>,
) -> Result<String, Reject> {
    let Some(names) = cert_names else {
        return authenticate(sensors, authorization, client);
    };
    if !authorization.is_empty() {
        let user = authenticate(sensors, authorization, client)?;
        if !names.contains(&user) {
            return Err(Reject::CertMismatch(format!(
                "Basic user {user:?} is not named by the certificate ({names:?})"
            )));
        }
        return Ok(user);
    }
    let mut known: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| sensors.map.contains_key(*n))
        .collect();
    known.sort_unstable();
    known.dedup();
    let user = match known.as_slice() {
        [one] => *one,
        [] => {
            return Err(Reject::CertMismatch(format!(
                "names no configured sensor ({names:?})"
            )))
        }
        _ => {
            return Err(Reject::CertMismatch(format!(
                "names several sensors ({known:?}); send Basic credentials to pick one"
            )))
        }
    };
    if let Some(entry) = sensors.map.get(user) {
        check_ip(&entry.sensor, client)?;
    }
    Ok(user.to_string())
}

/// Decodes `Basic <base64(user:pass)>` into the decoded text and the index of its first `:`;
/// `None` for anything else.
fn parse_basic(header: &[u8]) -> Option<(String, usize)> {
    let header = trim_ows(header);
    let split = header.iter().position(|&b| b == b' ' || b == b'\t')?;
    let (scheme, rest) = header.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = BASIC_ENGINE.decode(trim_ows(rest)).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let colon = decoded.find(':')?;
    Some((decoded, colon))
}

/// Standard alphabet; padding optional (some clients leave it off, the bytes are the same).
const BASIC_ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    fn sensors(entries: &[(&str, &str)]) -> Sensors {
        Sensors::new(
            entries
                .iter()
                .map(|(n, v)| (n.to_string(), Sensor::parse(v).unwrap()))
                .collect(),
        )
    }

    fn auth(s: &Sensors, header: &str, client: &str) -> Result<String, Reject> {
        authenticate(s, &[header.as_bytes()], ip(client))
    }

    /// Arkime's test layout: `test=pass:test;ip:127.0.0.1,::1`, plus documentation addresses.
    fn arkime() -> Sensors {
        sensors(&[
            ("test", "pass:test;ip:127.0.0.1,::1"),
            ("toronto01", "pass:torontorules;ip:192.0.2.10"),
            ("singapore01", "ip:198.51.100.0/24,2001:db8::/32"),
            ("nopass", "pass:s3cret"),
        ])
    }

    #[test]
    fn arkime_test_sensor_authenticates_from_v4_and_v6_loopback() {
        let s = arkime();
        assert_eq!(auth(&s, &basic("test:test"), "127.0.0.1").unwrap(), "test");
        assert_eq!(auth(&s, &basic("test:test"), "::1").unwrap(), "test");
    }

    #[test]
    fn mapped_v4_client_equals_plain_v4() {
        let s = arkime();
        assert_eq!(
            auth(&s, &basic("test:test"), "::ffff:127.0.0.1").unwrap(),
            "test"
        );
        assert_eq!(
            auth(&s, &basic("toronto01:torontorules"), "::ffff:192.0.2.10").unwrap(),
            "toronto01"
        );
    }

    #[test]
    fn mapped_v4_in_the_sensor_list_equals_plain_v4() {
        let s = sensors(&[("a", "ip:::ffff:192.0.2.1")]);
        assert_eq!(auth(&s, &basic("a:x"), "192.0.2.1").unwrap(), "a");
        assert_eq!(auth(&s, &basic("a:x"), "::ffff:192.0.2.1").unwrap(), "a");
    }

    #[test]
    fn wrong_ip_is_refused_with_the_canonical_client_ip() {
        let s = arkime();
        assert_eq!(
            auth(&s, &basic("toronto01:torontorules"), "::ffff:192.0.2.11"),
            Err(Reject::IpNotAllowed(ip("192.0.2.11")))
        );
    }

    #[test]
    fn cidr_ranges_and_v6_ranges_are_honoured() {
        let s = arkime();
        assert!(auth(&s, &basic("singapore01:"), "198.51.100.200").is_ok());
        assert!(auth(&s, &basic("singapore01:"), "2001:db8:1::5").is_ok());
        assert!(auth(&s, &basic("singapore01:"), "203.0.113.1").is_err());
        assert!(auth(&s, &basic("singapore01:"), "2001:db9::1").is_err());
    }

    #[test]
    fn sensor_without_pass_accepts_any_password() {
        let s = arkime();
        assert!(auth(&s, &basic("singapore01:whatever"), "198.51.100.1").is_ok());
        assert!(auth(&s, &basic("singapore01:"), "198.51.100.1").is_ok());
    }

    #[test]
    fn sensor_without_ip_list_accepts_any_ip() {
        let s = arkime();
        assert!(auth(&s, &basic("nopass:s3cret"), "203.0.113.77").is_ok());
        assert!(auth(&s, &basic("nopass:s3cret"), "2001:db8::77").is_ok());
    }

    #[test]
    fn wrong_password_is_refused() {
        let s = arkime();
        for p in ["", "tes", "testt", "TEST", "test ", " test"] {
            assert_eq!(
                auth(&s, &basic(&format!("test:{p}")), "127.0.0.1"),
                Err(Reject::BadPassword),
                "{p:?}"
            );
        }
    }

    #[test]
    fn password_is_checked_before_ip() {
        let s = arkime();
        assert_eq!(
            auth(&s, &basic("test:nope"), "203.0.113.1"),
            Err(Reject::BadPassword)
        );
    }

    #[test]
    fn password_may_contain_colons() {
        let s = sensors(&[("a", "pass:x:y:z")]);
        assert!(auth(&s, &basic("a:x:y:z"), "192.0.2.1").is_ok());
        assert_eq!(
            auth(&s, &basic("a:x"), "192.0.2.1"),
            Err(Reject::BadPassword)
        );
    }

    #[test]
    fn unknown_sensor_is_refused() {
        let s = arkime();
        assert_eq!(
            auth(&s, &basic("toronto011:torontorules"), "192.0.2.10"),
            Err(Reject::UnknownSensor)
        );
        assert_eq!(
            auth(&s, &basic(":test"), "127.0.0.1"),
            Err(Reject::UnknownSensor)
        );
    }

    #[test]
    fn javascript_special_names_are_just_unknown_names() {
        let s = arkime();
        for name in [
            "__proto__",
            "constructor",
            "toString",
            "hasOwnProperty",
            "valueOf",
            "prototype",
        ] {
            assert_eq!(
                auth(&s, &basic(&format!("{name}:")), "127.0.0.1"),
                Err(Reject::UnknownSensor),
                "{name}"
            );
        }
    }

    #[test]
    fn sensor_names_are_case_sensitive() {
        let s = arkime();
        assert_eq!(
            auth(&s, &basic("TEST:test"), "127.0.0.1"),
            Err(Reject::UnknownSensor)
        );
    }

    #[test]
    fn no_header_is_no_credentials() {
        assert_eq!(
            authenticate(&arkime(), &[], ip("127.0.0.1")),
            Err(Reject::NoCredentials)
        );
    }

    #[test]
    fn two_headers_are_refused_even_if_both_are_valid() {
        let h = basic("test:test");
        assert_eq!(
            authenticate(&arkime(), &[h.as_bytes(), h.as_bytes()], ip("127.0.0.1")),
            Err(Reject::MultipleAuthorization)
        );
    }

    #[test]
    fn basic_scheme_is_case_insensitive() {
        let s = arkime();
        let token = base64::engine::general_purpose::STANDARD.encode("test:test");
        for scheme in ["Basic", "basic", "BASIC", "bAsIc"] {
            assert!(
                auth(&s, &format!("{scheme} {token}"), "127.0.0.1").is_ok(),
                "{scheme}"
            );
        }
        assert!(auth(&s, &format!("  Basic \t {token}  "), "127.0.0.1").is_ok());
    }

    #[test]
    fn unpadded_base64_is_accepted() {
        // "test:test1" encodes with one '=' of padding.
        let s = sensors(&[("test", "pass:test1")]);
        let token = base64::engine::general_purpose::STANDARD_NO_PAD.encode("test:test1");
        assert!(auth(&s, &format!("Basic {token}"), "127.0.0.1").is_ok());
    }

    #[test]
    fn malformed_credentials_are_no_credentials() {
        let s = arkime();
        let no_colon = basic("test");
        let non_utf8 = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(b"test:\xff\xfe")
        );
        for h in [
            "",
            "Basic",
            "Basic ",
            "Basic !!!!",
            "Bearer dGVzdDp0ZXN0",
            "ApiKey dGVzdDp0ZXN0",
            "Basicdd GVzdDp0ZXN0",
            "dGVzdDp0ZXN0",
            no_colon.as_str(),
            non_utf8.as_str(),
        ] {
            assert_eq!(
                auth(&s, h, "127.0.0.1"),
                Err(Reject::NoCredentials),
                "{h:?}"
            );
        }
    }

    #[test]
    fn non_utf8_header_bytes_are_no_credentials() {
        assert_eq!(
            authenticate(&arkime(), &[b"Basic \xff\xff"], ip("127.0.0.1")),
            Err(Reject::NoCredentials)
        );
    }

    #[test]
    fn utf8_passwords_compare_exactly() {
        let s = sensors(&[("a", "pass:pässwörd")]);
        assert!(auth(&s, &basic("a:pässwörd"), "192.0.2.1").is_ok());
        assert!(auth(&s, &basic("a:passwort"), "192.0.2.1").is_err());
    }

    #[test]
    fn parse_accepts_pass_only_ip_only_both_and_neither() {
        let p = Sensor::parse("pass:x").unwrap();
        assert_eq!(p.pass.as_deref(), Some("x"));
        assert!(p.ips.is_none());
        let p = Sensor::parse("ip:192.0.2.1").unwrap();
        assert!(p.pass.is_none());
        assert_eq!(p.ips.unwrap().len(), 1);
        let p = Sensor::parse("ip:192.0.2.1, 2001:db8::/48 ;pass:y;").unwrap();
        assert_eq!(p.pass.as_deref(), Some("y"));
        assert_eq!(p.ips.unwrap().len(), 2);
        assert!(Sensor::parse("").unwrap().is_open());
    }

    #[test]
    fn parse_keeps_the_password_byte_for_byte() {
        assert_eq!(
            Sensor::parse("pass: a b ;ip:192.0.2.1")
                .unwrap()
                .pass
                .as_deref(),
            Some(" a b ")
        );
    }

    #[test]
    fn parse_refuses_what_would_silently_turn_a_check_off() {
        for v in [
            "pass:",
            "ip:",
            "ip: , ",
            "IP:192.0.2.1",
            "password:x",
            "pass:x;pass:y",
            "ip:192.0.2.1;ip:192.0.2.2",
            "ip:192.0.2.300",
            "ip:host.example",
            "justtext",
        ] {
            assert!(Sensor::parse(v).is_err(), "{v:?}");
        }
    }

    #[test]
    fn parse_errors_never_contain_the_password() {
        let e = Sensor::parse("pass:hunter2;pass:hunter3").unwrap_err();
        assert!(!e.contains("hunter"), "{e}");
        let e = Sensor::parse("pass:hunter2;ip:bad").unwrap_err();
        assert!(!e.contains("hunter"), "{e}");
        let e = Sensor::parse("hunter2").unwrap_err();
        assert!(!e.contains("hunter"), "{e}");
    }

    #[test]
    fn debug_output_redacts_passwords() {
        let s = arkime();
        let d = format!("{s:?}");
        assert!(!d.contains("torontorules"), "{d}");
        assert!(d.contains("toronto01"));
    }

    #[test]
    fn sensors_are_looked_up_counted_and_listed_by_name() {
        let s = arkime();
        assert_eq!(s.len(), 4);
        assert!(!s.is_empty());
        assert!(s.get("test").is_some());
        assert!(s.get("__proto__").is_none());
        let mut names: Vec<_> = s.names().collect();
        names.sort();
        assert_eq!(names, ["nopass", "singapore01", "test", "toronto01"]);
        assert!(Sensors::default().is_empty());
    }

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            h.append(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    fn memo_auth(s: &Sensors, memo: &Memo, header: &str, client: &str) -> Result<String, Reject> {
        authenticate_request_memo(s, &headers(&[header]), ip(client), None, Some(memo))
            .map(|s| s.to_string())
    }

    #[test]
    fn memo_answers_a_repeat_of_the_same_bytes_ip_and_generation() {
        let s = arkime();
        let memo = Memo::default();
        let good = basic("test:test");
        assert_eq!(memo_auth(&s, &memo, &good, "127.0.0.1").unwrap(), "test");
        // Plant a verdict the full check would not give (sensor name changed): a hit returns
        // the remembered one, which shows the full check was skipped.
        lock(&memo).as_mut().unwrap().sensor = "remembered".into();
        assert_eq!(
            memo_auth(&s, &memo, &good, "127.0.0.1").unwrap(),
            "remembered"
        );
        // A clone of the same sensor set is the same generation.
        assert_eq!(
            memo_auth(&s.clone(), &memo, &good, "127.0.0.1").unwrap(),
            "remembered"
        );
    }

    #[test]
    fn memo_checks_other_header_bytes_in_full() {
        let s = arkime();
        let memo = Memo::default();
        assert!(memo_auth(&s, &memo, &basic("test:test"), "127.0.0.1").is_ok());
        assert_eq!(
            memo_auth(&s, &memo, &basic("test:nope"), "127.0.0.1"),
            Err(Reject::BadPassword)
        );
        // The refusal cleared the memo.
        assert!(lock(&memo).is_none());
        // Same credentials, other bytes (scheme case, spacing): checked again, and remembered.
        let token = base64::engine::general_purpose::STANDARD.encode("test:test");
        assert!(memo_auth(&s, &memo, &format!("basic  {token}"), "127.0.0.1").is_ok());
        lock(&memo).as_mut().unwrap().sensor = "remembered".into();
        assert_eq!(
            memo_auth(&s, &memo, &basic("test:test"), "127.0.0.1").unwrap(),
            "test"
        );
    }

    #[test]
    fn memo_checks_another_client_ip_in_full() {
        let s = arkime();
        let memo = Memo::default();
        let good = basic("toronto01:torontorules");
        assert!(memo_auth(&s, &memo, &good, "192.0.2.10").is_ok());
        assert_eq!(
            memo_auth(&s, &memo, &good, "192.0.2.11"),
            Err(Reject::IpNotAllowed(ip("192.0.2.11")))
        );
    }

    #[test]
    fn memo_is_ignored_under_a_reloaded_sensor_set() {
        let memo = Memo::default();
        let good = basic("test:test");
        let before = sensors(&[("test", "pass:test")]);
        assert!(memo_auth(&before, &memo, &good, "127.0.0.1").is_ok());
        // The password changed on reload: the same bytes are refused.
        let changed = sensors(&[("test", "pass:rotated")]);
        assert_eq!(
            memo_auth(&changed, &memo, &good, "127.0.0.1"),
            Err(Reject::BadPassword)
        );
        // Even an identical reloaded set is a new generation: checked in full.
        assert!(memo_auth(&before, &memo, &good, "127.0.0.1").is_ok());
        lock(&memo).as_mut().unwrap().sensor = "remembered".into();
        let same = sensors(&[("test", "pass:test")]);
        assert_eq!(memo_auth(&same, &memo, &good, "127.0.0.1").unwrap(), "test");
    }

    #[test]
    fn memo_is_not_used_for_two_headers_or_a_client_certificate() {
        let s = arkime();
        let memo = Memo::default();
        let good = basic("test:test");
        assert!(memo_auth(&s, &memo, &good, "127.0.0.1").is_ok());
        assert_eq!(
            authenticate_request_memo(
                &s,
                &headers(&[&good, &good]),
                ip("127.0.0.1"),
                None,
                Some(&memo)
            ),
            Err(Reject::MultipleAuthorization)
        );
        assert!(memo_auth(&s, &memo, &good, "127.0.0.1").is_ok());
        lock(&memo).as_mut().unwrap().sensor = "remembered".into();
        let cert = names(&["other"]);
        assert!(matches!(
            authenticate_request_memo(
                &s,
                &headers(&[&good]),
                ip("127.0.0.1"),
                Some(&cert),
                Some(&memo)
            ),
            Err(Reject::CertMismatch(_))
        ));
    }

    #[test]
    fn memo_debug_never_shows_the_header() {
        let s = arkime();
        let memo = Memo::default();
        assert!(memo_auth(&s, &memo, &basic("test:test"), "127.0.0.1").is_ok());
        assert_eq!(format!("{memo:?}"), "Memo");
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn certificate_alone_authenticates_the_one_sensor_it_names() {
        let s = arkime();
        let cert = names(&["toronto01", "toronto01.sensors.example"]);
        assert_eq!(
            authenticate_with_cert(&s, &[], ip("192.0.2.10"), Some(&cert)).unwrap(),
            "toronto01"
        );
        // The sensor's IP list still applies.
        assert_eq!(
            authenticate_with_cert(&s, &[], ip("192.0.2.11"), Some(&cert)),
            Err(Reject::IpNotAllowed(ip("192.0.2.11")))
        );
    }

    #[test]
    fn certificate_naming_no_sensor_or_several_is_refused_without_basic() {
        let s = arkime();
        let none = names(&["intruder.example"]);
        assert!(matches!(
            authenticate_with_cert(&s, &[], ip("192.0.2.10"), Some(&none)),
            Err(Reject::CertMismatch(_))
        ));
        let two = names(&["toronto01", "singapore01"]);
        assert!(matches!(
            authenticate_with_cert(&s, &[], ip("198.51.100.7"), Some(&two)),
            Err(Reject::CertMismatch(_))
        ));
        assert_eq!(
            authenticate_with_cert(&s, &[], ip("127.0.0.1"), None),
            Err(Reject::NoCredentials)
        );
    }

    #[test]
    fn certificate_and_basic_must_name_the_same_sensor() {
        let s = arkime();
        let cert = names(&["toronto01"]);
        let good = basic("toronto01:torontorules");
        assert_eq!(
            authenticate_with_cert(&s, &[good.as_bytes()], ip("192.0.2.10"), Some(&cert)).unwrap(),
            "toronto01"
        );
        let other = basic("test:test");
        assert!(matches!(
            authenticate_with_cert(&s, &[other.as_bytes()], ip("127.0.0.1"), Some(&cert)),
            Err(Reject::CertMismatch(_))
        ));
        // Basic is checked in full even with a matching certificate.
        let wrong = basic("toronto01:nope");
        assert_eq!(
            authenticate_with_cert(&s, &[wrong.as_bytes()], ip("192.0.2.10"), Some(&cert)),
            Err(Reject::BadPassword)
        );
    }
}
