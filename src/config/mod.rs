//! Configuration: the operator's Arkime-style INI file → one validated [`Config`] (SPEC §1).
//!
//! Two layers, as in River: [`ini`] turns text into raw sections that keep line numbers, then
//! this module reads the keys it knows and validates them into typed values. This is the only
//! module that touches the file system (reading the config, the host name, and checking that
//! configured certificate/key files exist); it makes no request-time decision.
//!
//! # Lookup
//! A key is looked up in the node's section (`-n NODE`; without it the short host name, as Arkime
//! does), then in `[default]`. The first of those sections that *has* the key decides, and an
//! empty value there (`keyFile=`) means "unset" — so an empty value in the node section turns off
//! a `[default]` setting, exactly as in esProxy.js. `[tee]`, `[xff]` and `[esproxy-sensors]` are
//! read on their own. Keys we do not use are ignored (the file is often a whole Arkime
//! `config.ini`), but likely misspellings of ours produce [`Warning`]s.
//!
//! # Keys (node section / `[default]`)
//! | key | meaning | default |
//! |---|---|---|
//! | `elasticsearch` | upstream URLs, comma separated, `http[s]://[user:pass@]host[:port][/]`; blanks ignored; no scheme = `http://` | required |
//! | `esProxyPort` | listen port | 7200 |
//! | `esProxyHost` | listen address | all interfaces |
//! | `certFile`, `keyFile` | PEM certificate and key: the listener speaks TLS (both or neither) | plain HTTP |
//! | `prefix` | Arkime index prefix (`tests` → `tests_`) | `arkime_` |
//! | `elasticsearchAPIKey` | upstream `Authorization: ApiKey <value>` | – |
//! | `elasticsearchBasicAuth` | upstream Basic credentials: `user:pass`, or already base64 | – |
//! | `caTrustFile`, `esClientCert`, `esClientKey`, `esClientKeyPass`, `insecure` | upstream TLS: CA bundle, client certificate/key (+ passphrase), skip certificate checks | system roots, no client cert, `false` |
//! | `esProxyStrict` | the rules beyond esProxy.js (SPEC §4/§5) | `true` |
//! | `esProxyMaxLine` | longest bulk line (bytes; `K`/`M`/`G` suffixes) | 8M (max 8M) |
//! | `esProxyMaxBody` | largest request body as received | 64M |
//! | `esProxyMaxInflated` | largest inflated gzip body | 64M |
//! | `esProxyMaxChunkInflated` | most inflated bytes one received chunk may produce | 16M |
//! | `esProxyMaxDepth` | deepest JSON nesting | 64 |
//! | `esProxyMaxSmallBody` | largest non-bulk body buffered for inspection (at most 64K) | 64K |
//! | `esProxyMaxHeaderSize` | largest request head (request line + headers) | 16K |
//! | `esProxyThreads` | worker threads | available cores |
//! | `esProxyProxyProtocol` | expect a PROXY protocol (v1/v2) header on each connection | `false` |
//! | `esProxyClientCA` | PEM CA bundle: sensors may authenticate with a client certificate (needs certFile) | off |
//! | `esProxyClientCertRequired` | refuse TLS handshakes without a client certificate (needs esProxyClientCA) | `false` |
//! | `esProxyMetricsPort`, `esProxyMetricsHost` | metrics listener | off, `127.0.0.1` |
//! | `esProxyGracePeriod` | seconds to finish requests on shutdown | 10 |
//! | `esProxyHealthCheckInterval`, `esProxyHealthCheckTimeout`, `esProxyHealthCheckPath` | upstream health checks | 5 s, 2 s, `/` |
//! | `esProxyUpstreamTimeout` | longest ES may stay silent: the answer's head after the request was sent, or a stalled body either way (seconds) | 30 s |
//! | `esProxyAccessLog` | log every request, not only denials | `false` |
//! | `esProxyFirstByteTimeout` | seconds from accept to a connection's first byte | 10 |
//! | `esProxyHeadTimeout` | seconds from accept (or a keep-alive request's first byte) to the end of its head | 20 |
//! | `esProxyKeepAliveTimeout` | seconds a connection may idle between requests | 60 |
//! | `esProxyBodyIdleTimeout` | seconds a request body may go without a byte (the upstream request is cut) | 30 |
//! | `esProxyMaxConnections` | open connections on the sensor listener | 10000 |
//! | `esProxyMaxUnauthenticated` | connections with no authenticated request yet (oldest waiting evicted past it) | 4096 |
//! | `esProxyMaxUnauthenticatedPerClient` | such connections from one client address | 64 |
//! | `esProxyConnLimitExempt` | client IPs/CIDRs the per-client cap does not apply to (an HTTP balancer) | `[xff] internalProxies` when `[xff]` is enabled, else none |
//! | `esProxySigV4` | sign every request to ES with AWS SigV4 (managed OpenSearch) | `false` |
//! | `esProxySigV4Region`, `esProxySigV4Service` | signing region and service (`es`, `aoss`) | `AWS_REGION`, `es` |
//! | `esProxySigV4CredentialUrl`, `esProxySigV4CredentialCert`, `esProxySigV4CredentialKey` | keys from an HTTPS URL with a client certificate | – |
//! | `esProxySigV4RoleArn` | keys from STS AssumeRole (from the default chain) | – |
//! | `esProxySigV4AccessKeyId`, `esProxySigV4SecretAccessKey`, `esProxySigV4SessionToken` | static keys | – |
//! | `esProxySigV4MaxBody` | largest body held whole to be hashed and signed (413 above) | 16M |
//!
//! Upstream credential precedence: `elasticsearchAPIKey` > `elasticsearchBasicAuth` > the URL's
//! own `user:pass@`.
//!
//! # Other sections
//! - `[esproxy-sensors]`: `NODE=pass:SECRET;ip:IP,IP,…` (see [`crate::auth::Sensor::parse`]).
//! - `[tee]`: `elasticsearch` (enables the tee), `elasticsearchAPIKey`, `elasticsearchBasicAuth`,
//!   `caTrustFile`, `esClientCert`, `esClientKey`, `esClientKeyPass`, `insecure`, and the SigV4
//!   keys `esProxySigV4`, `esProxySigV4Region`, `esProxySigV4Service`,
//!   `esProxySigV4CredentialUrl`, `esProxySigV4CredentialCert`, `esProxySigV4CredentialKey`,
//!   `esProxySigV4RoleArn`, `esProxySigV4AccessKeyId`, `esProxySigV4SecretAccessKey`,
//!   `esProxySigV4SessionToken` (see config/sigv4.rs) — read from `[tee]` only.
//! - `[xff]`: `enabled` (default `false`), `remoteIpHeader` (default `X-Forwarded-For`),
//!   `internalProxies`, `trustedProxies` (see [`crate::client_ip`]).

pub mod ini;
mod lint;
mod sigv4;
mod value;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Sensor, Sensors};
use crate::client_ip::{ProxySet, XffConfig};
use crate::policy::{Limits, Policy, Prefix};

use ini::{RawEntry, RawIni};
pub use sigv4::{CredentialSource, SigV4, DEFAULT_MAX_SIGNED_BODY};

/// Bounds for the size keys: (min, max). Beyond them a value is a mistake, not a tuning choice.
const MAX_LINE: (u64, u64) = (1 << 10, 8 << 20);
const MAX_BODY: (u64, u64) = (1 << 10, 1 << 30);
const MAX_INFLATED: (u64, u64) = (1 << 10, 1 << 30);
const MAX_CHUNK_INFLATED: (u64, u64) = (64 << 10, 256 << 20);
const MAX_DEPTH: (u64, u64) = (2, 512);
// Pingora replays a buffered body from its retry buffer, which holds at most 64 KiB.
const MAX_SMALL_BODY: (u64, u64) = (1 << 10, 64 << 10);
const MAX_HEADER: (u64, u64) = (1 << 10, 1 << 20);
const THREADS: (u64, u64) = (1, 1024);
const GRACE: (u64, u64) = (0, 3600);
const HEALTH_INTERVAL: (u64, u64) = (1, 3600);
const HEALTH_TIMEOUT: (u64, u64) = (1, 600);
const CONN_TIMEOUT: (u64, u64) = (1, 3600);
const MAX_CONNECTIONS: (u64, u64) = (1, 10_000_000);
// Above about 55 s a timed-out bulk can no longer be re-sent within the replay budget (60 s):
// it gets the 504 instead. Allowed, for clusters (or test nodes) slower than that.
const UPSTREAM_TIMEOUT: (u64, u64) = (1, 600);

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// The section name used for lookups (`-n`, else the short host name).
    pub node: String,
    /// Where and how the proxy listens.
    pub listen: Listen,
    /// Prefix, strictness and size limits for the request checks.
    pub policy: Policy,
    /// `[esproxy-sensors]`.
    pub sensors: Sensors,
    /// `[xff]`.
    pub xff: XffConfig,
    /// The Elasticsearch cluster requests go to.
    pub upstream: Upstream,
    /// `[tee]`: the cluster every validated request is mirrored to, if any.
    pub tee: Option<Upstream>,
    /// Worker threads.
    pub threads: usize,
    /// How long shutdown waits for in-flight requests.
    pub grace_period: Duration,
    /// Metrics listener, if enabled.
    pub metrics: Option<SocketAddr>,
    /// Log every request (not only denials).
    pub access_log: bool,
    /// Connection deadlines and caps on the sensor listener.
    pub connection: crate::connection::Settings,
}

/// The listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// `esProxyHost` (IP or host name, no brackets); `None` = all interfaces.
    pub host: Option<String>,
    /// `esProxyPort`.
    pub port: u16,
    /// `certFile`/`keyFile`: TLS on the listener.
    pub tls: Option<ServerTls>,
    /// `esProxyProxyProtocol`: each connection starts with a PROXY protocol header.
    pub proxy_protocol: bool,
}

impl Listen {
    /// The address to bind, `host:port` with IPv6 in brackets. Unset host → `[::]:PORT`, which
    /// on Linux (default `bindv6only=0`) also accepts IPv4, like Node's `listen(port)`; a caller
    /// on a host without IPv6 may fall back to `0.0.0.0:PORT`.
    pub fn bind_addr(&self) -> String {
        match &self.host {
            None => format!("[::]:{}", self.port),
            Some(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Some(h) => format!("{h}:{}", self.port),
        }
    }
}

/// Listener certificate and key (PEM files, checked to exist at load time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// `certFile`.
    pub cert: PathBuf,
    /// `keyFile`.
    pub key: PathBuf,
    /// `esProxyClientCA`: CA bundle for sensor client certificates.
    pub client_ca: Option<PathBuf>,
    /// `esProxyClientCertRequired`: the handshake fails without a client certificate.
    pub client_cert_required: bool,
}

/// One Elasticsearch node from an `elasticsearch=` list.
#[derive(Clone, PartialEq, Eq)]
pub struct EsUrl {
    /// `https://` (else `http://`).
    pub https: bool,
    /// Host name or IP, lower case, IPv6 without brackets (also the TLS SNI name).
    pub host: String,
    /// Port (default 80/443).
    pub port: u16,
    /// `Basic …` header value from the URL's `user:pass@`, if any.
    pub authorization: Option<String>,
}

impl EsUrl {
    /// `host:port`, IPv6 as `[v6]:port`.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for EsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            if self.authorization.is_some() {
                "<credentials>@"
            } else {
                ""
            },
            self.authority()
        )
    }
}

/// An upstream cluster: its nodes, credentials, TLS and health checks.
#[derive(Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The nodes (at least one).
    pub urls: Vec<EsUrl>,
    /// Config-level `Authorization` value (`ApiKey …` or `Basic …`), overriding the URLs' own.
    pub authorization: Option<String>,
    /// TLS settings for `https://` nodes.
    pub tls: UpstreamTls,
    /// Health checks.
    pub health: HealthCheck,
    /// `esProxySigV4=true`: every request to this cluster is signed (and `authorization` is
    /// not sent).
    pub sigv4: Option<SigV4>,
    /// `esProxyUpstreamTimeout`: the longest ES may go without sending or taking a byte once
    /// the request is under way (see [`DEFAULT_UPSTREAM_TIMEOUT`]).
    pub timeout: Duration,
}

/// Default `esProxyUpstreamTimeout`. ES answers a bulk only once it has indexed all of it, so
/// this bounds a whole bulk's indexing on a busy cluster; capture waits 120 s, and the replay
/// budget (60 s) then still leaves a full re-send on another node.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

impl Upstream {
    /// The `Authorization` header value for a given URL: the config-level one, else the URL's own.
    pub fn authorization_for<'a>(&'a self, url: &'a EsUrl) -> Option<&'a str> {
        self.authorization
            .as_deref()
            .or(url.authorization.as_deref())
    }
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("urls", &self.urls)
            .field(
                "authorization",
                &self
                    .authorization
                    .as_ref()
                    .map(|a| a.split(' ').next().unwrap_or("")),
            )
            .field("tls", &self.tls)
            .field("health", &self.health)
            .field("sigv4", &self.sigv4)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// TLS towards an upstream cluster (files checked to exist at load time).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct UpstreamTls {
    /// `caTrustFile`: PEM CA bundle (else the system roots).
    pub ca_trust_file: Option<PathBuf>,
    /// `esClientCert`: client certificate (PEM).
    pub client_cert: Option<PathBuf>,
    /// `esClientKey`: client key (PEM).
    pub client_key: Option<PathBuf>,
    /// `esClientKeyPass`: passphrase of the client key.
    pub client_key_pass: Option<String>,
    /// `insecure`: do not verify the upstream certificate.
    pub insecure: bool,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("ca_trust_file", &self.ca_trust_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field(
                "client_key_pass",
                &self.client_key_pass.as_ref().map(|_| "<redacted>"),
            )
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Upstream health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Time between checks of one node.
    pub interval: Duration,
    /// Time a check may take.
    pub timeout: Duration,
    /// Path requested (GET).
    pub path: String,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            path: "/".to_string(),
        }
    }
}

/// Where a diagnostic points, and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Diag {
    file: PathBuf,
    line: Option<usize>,
    section: Option<String>,
    key: Option<String>,
    /// Already redacted.
    value: Option<String>,
    message: String,
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if let Some(s) = &self.section {
            write!(f, "[{s}] ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "{k}")?;
            if let Some(v) = &self.value {
                write!(f, " = {v:?}")?;
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// A configuration that cannot be used. Displays as
/// `file:line: [section] key = "value": what is wrong and how to fix it`
/// (secrets are never shown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Box<Diag>);

/// Something in the configuration that works but is probably not what was meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(Diag);

macro_rules! diag_accessors {
    ($t:ty) => {
        impl $t {
            /// 1-based line, when the problem is on one line.
            pub fn line(&self) -> Option<usize> {
                self.0.line
            }
            /// Section, when known.
            pub fn section(&self) -> Option<&str> {
                self.0.section.as_deref()
            }
            /// Key, when known.
            pub fn key(&self) -> Option<&str> {
                self.0.key.as_deref()
            }
            /// What is wrong (without the location).
            pub fn message(&self) -> &str {
                &self.0.message
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
diag_accessors!(ConfigError);
diag_accessors!(Warning);

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and validates `file`. `node` is the `-n` name; `None` = the short host name.
    pub fn load(file: &Path, node: Option<&str>) -> Result<(Config, Vec<Warning>), ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            ConfigError(Box::new(Diag {
                file: file.to_path_buf(),
                line: None,
                section: None,
                key: None,
                value: None,
                message: format!("cannot read the config file: {e}"),
            }))
        })?;
        Config::from_str(&text, file, node)
    }

    /// Validates config text as if read from `file` (used by [`Config::load`] and tests).
    /// Referenced certificate/key files are still checked on disk.
    pub fn from_str(
        text: &str,
        file: &Path,
        node: Option<&str>,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let ini = ini::parse(text).map_err(|e| {
            ConfigError(Box::new(Diag {
                file: file.to_path_buf(),
                line: Some(e.line),
                section: None,
                key: None,
                value: None,
                message: e.message,
            }))
        })?;
        let mut warnings = Vec::new();
        let (node, explicit) = match node {
            Some(n) if !n.trim().is_empty() => (n.trim().to_string(), true),
            _ => match short_hostname() {
                Some(h) => (h, false),
                None => {
                    warnings.push(Warning(Diag {
                        file: file.to_path_buf(),
                        line: None,
                        section: None,
                        key: None,
                        value: None,
                        message: "cannot read the host name; using [default] only (pass -n NODE)"
                            .into(),
                    }));
                    ("default".to_string(), false)
                }
            },
        };
        let mut b = Builder {
            ini: &ini,
            file,
            node,
            warnings,
        };
        let config = b.build(explicit)?;
        Ok((config, b.warnings))
    }
}

/// Arkime's default node name: the host name up to the first `.`.
fn short_hostname() -> Option<String> {
    let h = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let h = h.trim().split('.').next()?.to_string();
    (!h.is_empty()).then_some(h)
}

/// A key found in some section.
struct Found<'a> {
    section: &'a str,
    entry: &'a RawEntry,
}

impl Found<'_> {
    /// The value, `None` when empty (= unset).
    fn value(&self) -> Option<&str> {
        Some(self.entry.value.as_str()).filter(|v| !v.is_empty())
    }
}

struct Builder<'a> {
    ini: &'a RawIni,
    file: &'a Path,
    node: String,
    warnings: Vec<Warning>,
}

/// Keys whose values are secrets: never echoed in messages. Matched loosely, so a misspelt
/// secret key (`elasticsearchBasicauth`) is not echoed either.
fn is_secret(section: &str, key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    section == "esproxy-sensors"
        || ["pass", "auth", "apikey", "secret", "token"]
            .iter()
            .any(|s| k.contains(s))
}

impl<'a> Builder<'a> {
    fn diag(&self, found: &Found<'_>, message: String) -> Diag {
        let (section, key) = (found.section, found.entry.key.as_str());
        let value = if is_secret(section, key) {
            None
        } else if key == "elasticsearch" {
            Some(
                found
                    .entry
                    .value
                    .split(',')
                    .map(value::redact_url)
                    .collect::<Vec<_>>()
                    .join(","),
            )
        } else {
            Some(found.entry.value.clone())
        };
        Diag {
            file: self.file.to_path_buf(),
            line: Some(found.entry.line),
            section: Some(section.to_string()),
            key: Some(key.to_string()),
            value,
            message,
        }
    }

    fn error(&self, found: &Found<'_>, message: impl Into<String>) -> ConfigError {
        ConfigError(Box::new(self.diag(found, message.into())))
    }

    fn warn(&mut self, found: &Found<'_>, message: impl Into<String>) {
        let d = self.diag(found, message.into());
        self.warnings.push(Warning(d));
    }

    /// An error about a key that is missing or about a combination of keys.
    fn error_at(&self, section: &str, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError(Box::new(Diag {
            file: self.file.to_path_buf(),
            line: None,
            section: Some(section.to_string()),
            key: Some(key.to_string()),
            value: None,
            message: message.into(),
        }))
    }

    fn warn_at(&mut self, section: Option<&str>, line: Option<usize>, message: impl Into<String>) {
        self.warnings.push(Warning(Diag {
            file: self.file.to_path_buf(),
            line,
            section: section.map(str::to_string),
            key: None,
            value: None,
            message: message.into(),
        }));
    }

    /// The sections searched for node-level keys, in order.
    fn node_sections(&self) -> Vec<&'a str> {
        let mut v = Vec::with_capacity(2);
        if let Some(s) = self.ini.section(&self.node) {
            v.push(s.name.as_str());
        }
        if self.node != "default" {
            if let Some(s) = self.ini.section("default") {
                v.push(s.name.as_str());
            }
        }
        v
    }

    /// The first of `sections` that has `key`.
    fn find_in(&self, sections: &[&'a str], key: &str) -> Option<Found<'a>> {
        sections.iter().find_map(|s| {
            self.ini
                .get(s, key)
                .map(|entry| Found { section: s, entry })
        })
    }

    fn node_key(&self, key: &str) -> Option<Found<'a>> {
        self.find_in(&self.node_sections(), key)
    }

    /// A set, non-empty key parsed with `parse`; errors point at its line.
    fn parse_found<T>(
        &self,
        found: Option<Found<'a>>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<(T, Found<'a>)>, ConfigError> {
        let Some(found) = found else { return Ok(None) };
        let Some(v) = found.value() else {
            return Ok(None);
        };
        match parse(v) {
            Ok(t) => Ok(Some((t, found))),
            Err(msg) => Err(self.error(&found, msg)),
        }
    }

    fn node_value<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        Ok(self.parse_found(self.node_key(key), parse)?.map(|(t, _)| t))
    }

    /// A path key whose file must exist and be readable.
    fn file_value(&self, found: Option<Found<'a>>) -> Result<Option<PathBuf>, ConfigError> {
        self.parse_found(found, |v| {
            let p = PathBuf::from(v);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => Ok(p),
                Ok(_) => Err("not a regular file".to_string()),
                Err(e) => Err(format!("cannot use this file: {e}")),
            }
        })
        .map(|o| o.map(|(p, _)| p))
    }

    fn build(&mut self, explicit_node: bool) -> Result<Config, ConfigError> {
        self.lint(explicit_node);
        let node_sections = self.node_sections();

        let upstream = match self.upstream(&node_sections, true)? {
            Some(u) => u,
            None => {
                let msg = "required: set at least one Elasticsearch URL, e.g. \
                           elasticsearch=http://127.0.0.1:9200";
                return Err(match self.node_key("elasticsearch") {
                    Some(f) => self.error(&f, msg),
                    None => self.error_at(
                        &self.node,
                        "elasticsearch",
                        format!("not in [{}] nor in [default]; {msg}", self.node),
                    ),
                });
            }
        };
        let listen = self.listen()?;
        let mut policy = self.policy()?;
        let sensors = self.sensors()?;
        policy.sensor_names = sensors.names().map(str::to_string).collect();
        let xff = self.xff()?;
        let tee = if self.ini.section("tee").is_some() {
            self.upstream(&["tee"], false)?
        } else {
            None
        };

        let threads =
            match self.node_value("esProxyThreads", |v| value::count(v, THREADS.0, THREADS.1))? {
                Some(n) => n as usize,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            };
        let grace_period = self
            .node_value("esProxyGracePeriod", |v| {
                value::seconds(v, GRACE.0, GRACE.1)
            })?
            .unwrap_or(Duration::from_secs(10));
        let access_log = self
            .node_value("esProxyAccessLog", value::boolean)?
            .unwrap_or(false);
        let metrics = self.metrics(&listen)?;
        let connection = self.connection(&policy, &xff)?;

        Ok(Config {
            file: self.file.to_path_buf(),
            node: self.node.clone(),
            listen,
            policy,
            sensors,
            xff,
            upstream,
            tee,
            threads,
            grace_period,
            metrics,
            access_log,
            connection,
        })
    }

    fn connection(
        &self,
        policy: &Policy,
        xff: &XffConfig,
    ) -> Result<crate::connection::Settings, ConfigError> {
        let d = crate::connection::Settings::default();
        let secs = |key: &str, default: std::time::Duration| {
            self.node_value(key, |v| value::seconds(v, CONN_TIMEOUT.0, CONN_TIMEOUT.1))
                .map(|v| v.unwrap_or(default))
        };
        let count = |key: &str, default: usize| {
            self.node_value(key, |v| {
                value::count(v, MAX_CONNECTIONS.0, MAX_CONNECTIONS.1)
            })
            .map(|v| v.map_or(default, |n| n as usize))
        };
        // HTTP balancers named in [xff] relay many clients from their own address: not capped
        // as one client unless esProxyConnLimitExempt says otherwise.
        let exempt = match self.node_value("esProxyConnLimitExempt", ProxySet::parse)? {
            Some(set) => set,
            None if xff.enabled() => xff.internal().clone(),
            None => ProxySet::default(),
        };
        Ok(crate::connection::Settings {
            first_byte: secs("esProxyFirstByteTimeout", d.first_byte)?,
            head: secs("esProxyHeadTimeout", d.head)?,
            keepalive: secs("esProxyKeepAliveTimeout", d.keepalive)?,
            body_idle: secs("esProxyBodyIdleTimeout", d.body_idle)?,
            max_head_bytes: policy.limits.max_header_bytes,
            caps: crate::connection::caps::Limits {
                max_connections: count("esProxyMaxConnections", d.caps.max_connections)?,
                max_unauthenticated: count(
                    "esProxyMaxUnauthenticated",
                    d.caps.max_unauthenticated,
                )?,
                per_client: count("esProxyMaxUnauthenticatedPerClient", d.caps.per_client)?,
                exempt,
            },
        })
    }

    /// Reads one cluster's keys from `sections`; `None` when it has no URL. `primary`: the
    /// node-level cluster (else the tee, which is off without a URL).
    fn upstream(
        &mut self,
        sections: &[&'a str],
        primary: bool,
    ) -> Result<Option<Upstream>, ConfigError> {
        let parsed = self.parse_found(self.find_in(sections, "elasticsearch"), value::es_urls)?;
        let (urls, url_found) = match parsed {
            Some(((urls, no_scheme), f)) if !urls.is_empty() => {
                for a in no_scheme {
                    self.warn(&f, format!("`{a}` has no scheme; using http://"));
                }
                (urls, f)
            }
            _ => {
                // A tee section with settings but no cluster is probably a mistake.
                if let (false, Some(s)) = (primary, self.ini.section("tee")) {
                    if s.entries.iter().any(|e| !e.value.is_empty()) {
                        self.warn_at(
                            Some("tee"),
                            Some(s.line),
                            "no `elasticsearch` URL: the tee is off",
                        );
                    }
                }
                return Ok(None);
            }
        };

        let api_key = self.parse_found(
            self.find_in(sections, "elasticsearchAPIKey"),
            value::api_key_header,
        )?;
        let basic = self.parse_found(
            self.find_in(sections, "elasticsearchBasicAuth"),
            value::basic_auth_header,
        )?;
        let authorization = match (api_key, basic) {
            (Some((a, _)), Some((_, bf))) => {
                self.warn(
                    &bf,
                    "ignored: elasticsearchAPIKey is set and takes precedence",
                );
                Some(a)
            }
            (Some((a, _)), None) => Some(a),
            (None, Some((b, _))) => Some(b),
            (None, None) => None,
        };
        if authorization.is_some() && urls.iter().any(|u| u.authorization.is_some()) {
            self.warn(
                &url_found,
                "the URL's user:pass@ is ignored: elasticsearchAPIKey/elasticsearchBasicAuth take precedence",
            );
        }

        let ca_trust_file = self.file_value(self.find_in(sections, "caTrustFile"))?;
        let cert_found = self.find_in(sections, "esClientCert");
        let key_found = self.find_in(sections, "esClientKey");
        let client_cert = self.file_value(self.find_in(sections, "esClientCert"))?;
        let client_key = self.file_value(self.find_in(sections, "esClientKey"))?;
        match (&client_cert, &client_key, &cert_found, &key_found) {
            (Some(_), None, Some(f), _) => {
                return Err(self.error(
                    f,
                    "esClientKey must be set too (client certificate and key go together)",
                ))
            }
            (None, Some(_), _, Some(f)) => {
                return Err(self.error(
                    f,
                    "esClientCert must be set too (client certificate and key go together)",
                ))
            }
            _ => {}
        }
        let pass = self.parse_found(self.find_in(sections, "esClientKeyPass"), |v| {
            Ok(v.to_string())
        })?;
        let client_key_pass = match pass {
            Some((_, f)) if client_key.is_none() => {
                self.warn(&f, "ignored: no esClientKey is set");
                None
            }
            other => other.map(|(p, _)| p),
        };
        let insecure = match self.parse_found(self.find_in(sections, "insecure"), value::boolean)? {
            Some((true, f)) => {
                self.warn(&f, "upstream TLS certificates are NOT verified");
                true
            }
            _ => false,
        };
        if ca_trust_file.is_some() && !urls.iter().any(|u| u.https) {
            if let Some(f) = self.find_in(sections, "caTrustFile") {
                self.warn(&f, "no https:// URL uses it");
            }
        }

        let sigv4 = self.sigv4(sections)?;
        if sigv4.is_some() && authorization.is_some() {
            if let Some(f) = self
                .find_in(sections, "elasticsearchAPIKey")
                .or_else(|| self.find_in(sections, "elasticsearchBasicAuth"))
            {
                self.warn(
                    &f,
                    "not sent: esProxySigV4 signs every request to this cluster",
                );
            }
        }
        let health = self.health()?;
        let timeout = self
            .node_value("esProxyUpstreamTimeout", |v| {
                value::seconds(v, UPSTREAM_TIMEOUT.0, UPSTREAM_TIMEOUT.1)
            })?
            .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT);
        Ok(Some(Upstream {
            urls,
            authorization,
            tls: UpstreamTls {
                ca_trust_file,
                client_cert,
                client_key,
                client_key_pass,
                insecure,
            },
            health,
            sigv4,
            timeout,
        }))
    }

    fn health(&self) -> Result<HealthCheck, ConfigError> {
        let d = HealthCheck::default();
        let interval = self.parse_found(self.node_key("esProxyHealthCheckInterval"), |v| {
            value::seconds(v, HEALTH_INTERVAL.0, HEALTH_INTERVAL.1)
        })?;
        let timeout = self.parse_found(self.node_key("esProxyHealthCheckTimeout"), |v| {
            value::seconds(v, HEALTH_TIMEOUT.0, HEALTH_TIMEOUT.1)
        })?;
        let path = self.node_value("esProxyHealthCheckPath", |v| {
            if v.starts_with('/') && v.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
                Ok(v.to_string())
            } else {
                Err(
                    "must be a path starting with `/` (no spaces), e.g. / or /_cluster/health"
                        .into(),
                )
            }
        })?;
        let interval_v = interval.as_ref().map_or(d.interval, |(i, _)| *i);
        let timeout_v = timeout.as_ref().map_or(d.timeout, |(t, _)| *t);
        if timeout_v > interval_v {
            let msg = format!(
                "the timeout ({} s) must not exceed esProxyHealthCheckInterval ({} s)",
                timeout_v.as_secs(),
                interval_v.as_secs()
            );
            // Point at the timeout when it was set, else at the interval that made it too long.
            if let Some((_, f)) = timeout.as_ref().or(interval.as_ref()) {
                return Err(self.error(f, msg));
            }
        }
        Ok(HealthCheck {
            interval: interval_v,
            timeout: timeout_v,
            path: path.unwrap_or(d.path),
        })
    }

    fn listen(&self) -> Result<Listen, ConfigError> {
        let port = self.node_value("esProxyPort", value::port)?.unwrap_or(7200);
        let host = self.node_value("esProxyHost", value::host)?;
        let cert_found = self.node_key("certFile");
        let key_found = self.node_key("keyFile");
        let cert = self.file_value(self.node_key("certFile"))?;
        let key = self.file_value(self.node_key("keyFile"))?;
        let client_ca_found = self.node_key("esProxyClientCA");
        let client_ca = self.file_value(self.node_key("esProxyClientCA"))?;
        let required_found = self.node_key("esProxyClientCertRequired");
        let client_cert_required = self
            .node_value("esProxyClientCertRequired", value::boolean)?
            .unwrap_or(false);
        if let (Some(f), true) = (&client_ca_found, cert.is_none()) {
            return Err(self.error(f, "client certificates need TLS: set certFile and keyFile"));
        }
        if let (Some(f), true, None) = (&required_found, client_cert_required, &client_ca) {
            return Err(self.error(
                f,
                "set esProxyClientCA too (the CA that signs sensor certificates)",
            ));
        }
        let tls = match (cert, key, cert_found, key_found) {
            (Some(cert), Some(key), _, _) => Some(ServerTls {
                cert,
                key,
                client_ca,
                client_cert_required,
            }),
            (Some(_), None, Some(f), _) => {
                return Err(self.error(&f, "keyFile must be set too (both or neither enable TLS)"))
            }
            (None, Some(_), _, Some(f)) => {
                return Err(self.error(&f, "certFile must be set too (both or neither enable TLS)"))
            }
            _ => None,
        };
        let proxy_protocol = self
            .node_value("esProxyProxyProtocol", value::boolean)?
            .unwrap_or(false);
        Ok(Listen {
            host,
            port,
            tls,
            proxy_protocol,
        })
    }

    fn policy(&self) -> Result<Policy, ConfigError> {
        let prefix = self.node_value("prefix", value::prefix)?;
        let strict = self
            .node_value("esProxyStrict", value::boolean)?
            .unwrap_or(true);
        let d = Limits::default();
        let size =
            |key: &str, (min, max): (u64, u64)| self.node_value(key, |v| value::size(v, min, max));
        let limits = Limits {
            max_line: size("esProxyMaxLine", MAX_LINE)?.map_or(d.max_line, |v| v as usize),
            max_body: size("esProxyMaxBody", MAX_BODY)?.unwrap_or(d.max_body),
            max_inflated: size("esProxyMaxInflated", MAX_INFLATED)?.unwrap_or(d.max_inflated),
            max_chunk_inflated: size("esProxyMaxChunkInflated", MAX_CHUNK_INFLATED)?
                .map_or(d.max_chunk_inflated, |v| v as usize),
            max_depth: self
                .node_value("esProxyMaxDepth", |v| {
                    value::count(v, MAX_DEPTH.0, MAX_DEPTH.1)
                })?
                .map_or(d.max_depth, |v| v as usize),
            max_small_body: size("esProxyMaxSmallBody", MAX_SMALL_BODY)?
                .map_or(d.max_small_body, |v| v as usize),
            max_header_bytes: size("esProxyMaxHeaderSize", MAX_HEADER)?
                .map_or(d.max_header_bytes, |v| v as usize),
        };
        Ok(Policy {
            prefix: Prefix::new(prefix.as_deref()),
            strict,
            limits,
            sensor_names: Arc::from([]),
        })
    }

    fn sensors(&mut self) -> Result<Sensors, ConfigError> {
        let Some(section) = self.ini.section("esproxy-sensors") else {
            self.warn_at(
                None,
                None,
                "no [esproxy-sensors] section: every request will be refused (401)",
            );
            return Ok(Sensors::default());
        };
        let mut map = HashMap::new();
        for entry in section.effective() {
            let found = Found {
                section: "esproxy-sensors",
                entry,
            };
            if entry.value.is_empty() {
                self.warn(
                    &found,
                    "empty value: sensor not configured (set pass:SECRET and/or ip:IP,…)",
                );
                continue;
            }
            let sensor = Sensor::parse(&entry.value).map_err(|e| self.error(&found, e))?;
            if sensor.is_open() {
                self.warn(
                    &found,
                    "neither pass: nor ip: is set: anyone can use this sensor name",
                );
            }
            if entry.key.contains(':') {
                self.warn(
                    &found,
                    "a name containing `:` can never log in with Basic auth",
                );
            }
            map.insert(entry.key.clone(), sensor);
        }
        if map.is_empty() {
            self.warn_at(
                Some("esproxy-sensors"),
                Some(section.line),
                "no sensors configured: every request will be refused (401)",
            );
        }
        Ok(Sensors::new(map))
    }

    fn xff(&mut self) -> Result<XffConfig, ConfigError> {
        if self.ini.section("xff").is_none() {
            return Ok(XffConfig::disabled());
        }
        let get = |key: &str| self.find_in(&["xff"], key);
        let enabled = self
            .parse_found(get("enabled"), value::boolean)?
            .is_some_and(|(b, _)| b);
        let text = |key: &str| {
            get(key)
                .and_then(|f| f.value().map(str::to_string))
                .unwrap_or_default()
        };
        let (header, internal, trusted) = (
            text("remoteIpHeader"),
            text("internalProxies"),
            text("trustedProxies"),
        );
        // Validate each value on its own so the error points at the right line.
        for (key, h, i, t) in [
            ("remoteIpHeader", header.as_str(), "", ""),
            ("internalProxies", "", internal.as_str(), ""),
            ("trustedProxies", "", "", trusted.as_str()),
        ] {
            if let (Err(e), Some(f)) = (XffConfig::new(enabled, h, i, t), get(key)) {
                return Err(self.error(&f, e));
            }
        }
        let cfg = XffConfig::new(enabled, &header, &internal, &trusted)
            .map_err(|e| self.error_at("xff", "enabled", e))?;
        if enabled && cfg.internal().is_empty() {
            if let Some(f) = get("enabled") {
                self.warn(
                    &f,
                    "internalProxies is empty: forwarding headers will never be used",
                );
            }
        }
        Ok(cfg)
    }

    fn metrics(&self, listen: &Listen) -> Result<Option<SocketAddr>, ConfigError> {
        let port = self.parse_found(self.node_key("esProxyMetricsPort"), value::port)?;
        let host: IpAddr = self
            .node_value("esProxyMetricsHost", value::ip)?
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        let Some((port, found)) = port else {
            return Ok(None);
        };
        let overlaps = match &listen.host {
            None => true,
            Some(h) => host.is_unspecified() || h.parse::<IpAddr>().ok() == Some(host),
        };
        if port == listen.port && overlaps {
            return Err(self.error(&found, "must differ from esProxyPort"));
        }
        Ok(Some(SocketAddr::new(host, port)))
    }

    /// Misspelling and section-name warnings.
    fn lint(&mut self, explicit_node: bool) {
        let ini = self.ini;
        if explicit_node && self.node != "default" && ini.section(&self.node).is_none() {
            self.warn_at(
                None,
                None,
                format!(
                    "no [{}] section for node {:?}: using [default] only",
                    self.node, self.node
                ),
            );
        }
        for issue in &ini.issues {
            self.warn_at(None, Some(issue.line), issue.message.clone());
        }
        for section in &ini.sections {
            if let Some(msg) = lint::section_name(&section.name, &self.node) {
                self.warn_at(Some(&section.name), Some(section.line), msg);
            }
            let known: Option<&[&str]> = match section.name.as_str() {
                "tee" => Some(lint::TEE_KEYS),
                "xff" => Some(lint::XFF_KEYS),
                n if n == self.node || n == "default" => None,
                _ => continue,
            };
            for entry in section.effective() {
                let msg = match known {
                    Some(k) => lint::own_section_key(&entry.key, k),
                    None => lint::node_key(&entry.key),
                };
                if let Some(msg) = msg {
                    let f = Found {
                        section: &section.name,
                        entry,
                    };
                    // The value is left out: the key is unknown, so we cannot tell a secret.
                    let mut d = self.diag(&f, msg);
                    d.value = None;
                    self.warnings.push(Warning(d));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn load(text: &str, node: Option<&str>) -> Result<(Config, Vec<Warning>), ConfigError> {
        Config::from_str(text, Path::new("conf/x.ini"), node)
    }

    fn ok(text: &str) -> (Config, Vec<Warning>) {
        load(text, Some("esproxy")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn connection_limit_exempt_defaults_to_the_xff_balancers_and_can_be_set() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (c, _) = ok(ES);
        assert!(c.connection.caps.exempt.is_empty());
        let (c, _) = ok(&format!(
            "{ES}[xff]\nenabled=true\ninternalProxies=192.0.2.10\n"
        ));
        assert!(c.connection.caps.exempt.contains(ip("192.0.2.10")));
        let (c, _) = ok(&format!(
            "{ES}esProxyConnLimitExempt=198.51.100.0/24\n[xff]\nenabled=true\ninternalProxies=192.0.2.10\n"
        ));
        assert!(c.connection.caps.exempt.contains(ip("198.51.100.7")));
        assert!(!c.connection.caps.exempt.contains(ip("192.0.2.10")));
        let (c, _) = ok(&format!(
            "{ES}esProxyFirstByteTimeout=5\nesProxyHeadTimeout=15\nesProxyKeepAliveTimeout=30\n\
             esProxyBodyIdleTimeout=45\nesProxyMaxConnections=100\nesProxyMaxUnauthenticated=50\n\
             esProxyMaxUnauthenticatedPerClient=5\n"
        ));
        let k = &c.connection;
        assert_eq!(
            (k.first_byte, k.head, k.keepalive, k.body_idle),
            (
                Duration::from_secs(5),
                Duration::from_secs(15),
                Duration::from_secs(30),
                Duration::from_secs(45)
            )
        );
        assert_eq!(
            (
                k.caps.max_connections,
                k.caps.max_unauthenticated,
                k.caps.per_client
            ),
            (100, 50, 5)
        );
        assert!(err(&format!("{ES}esProxyHeadTimeout=0\n")).contains("esProxyHeadTimeout"));
    }

    fn err(text: &str) -> String {
        load(text, Some("esproxy")).unwrap_err().to_string()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// A file that exists, for certificate/key keys.
    fn existing() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_string()
    }

    const ES: &str = "[default]\nelasticsearch=http://127.0.0.1:9200\n";

    /// The shape of Arkime's own test config, trimmed: capture/viewer keys everywhere.
    const ARKIME_TEST: &str = "\
[default]
elasticsearch= , , http://127.0.0.1:9200,
pcapDir=/tmp
parsersDir = ../capture/parsers;parsers
keyFile=
passwordSecret=password
viewPort=8123
filenameOps=tags=/gre-(.*)\\\\.pcap%gretest-\\\\1;tags=dns-error%error-dns

[test]
prefix=tests
plugins=test.so;tagger.so;wise.so;scrubspi.so

[esproxy]
prefix=tests
esProxyPort=7200

[esproxy-sensors]
test=pass:test;ip:127.0.0.1,::1

[headers-http-request]
referer=type:string;count:true;unique:true

[override-ips]
10.0.0.1=tag:srcip;asn:AS0000 This is neat;country:RU

[right-click]
VTIP=url:https://www.virustotal.com/en/ip-address/%TEXT%/information/;name:Virus Total IP;category:ip
";

    #[test]
    fn arkime_test_layout_loads_with_node_esproxy() {
        let (c, w) = ok(ARKIME_TEST);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.node, "esproxy");
        assert_eq!(c.policy.prefix, Prefix::new(Some("tests")));
        assert_eq!(c.policy.prefix.p, "tests_");
        assert_eq!(c.listen.port, 7200);
        assert_eq!(c.upstream.urls.len(), 1);
        assert_eq!(c.upstream.urls[0].authority(), "127.0.0.1:9200");
        let t = c.sensors.get("test").unwrap();
        assert_eq!(t.pass.as_deref(), Some("test"));
        assert_eq!(t.ips.as_ref().unwrap().len(), 2);
        assert_eq!(c.sensors.len(), 1);
        assert!(c.tee.is_none());
        assert!(c.listen.tls.is_none(), "empty keyFile= means unset");
    }

    #[test]
    fn arkime_test_sensor_authenticates_end_to_end() {
        let (c, _) = ok(ARKIME_TEST);
        let h = format!("Basic {}", b64("test:test"));
        let ip: IpAddr = "::1".parse().unwrap();
        assert_eq!(
            crate::auth::authenticate(&c.sensors, &[h.as_bytes()], ip).unwrap(),
            "test"
        );
    }

    #[test]
    fn unset_keys_take_their_documented_defaults() {
        let (c, _) = ok(ES);
        assert_eq!(c.listen.port, 7200);
        assert_eq!(c.listen.host, None);
        assert_eq!(c.listen.bind_addr(), "[::]:7200");
        assert!(!c.listen.proxy_protocol);
        assert_eq!(c.policy, Policy::default());
        assert!(c.policy.strict);
        assert_eq!(
            c.threads,
            std::thread::available_parallelism().map_or(1, |n| n.get())
        );
        assert_eq!(c.grace_period, Duration::from_secs(10));
        assert_eq!(c.metrics, None);
        assert!(!c.access_log);
        assert_eq!(c.upstream.health, HealthCheck::default());
        assert_eq!(c.upstream.health.path, "/");
        assert_eq!(c.upstream.tls, UpstreamTls::default());
        assert!(!c.xff.enabled());
        assert_eq!(c.xff.header_name(), "x-forwarded-for");
    }

    #[test]
    fn node_section_overrides_default() {
        let text = "[default]\nelasticsearch=http://192.0.2.1:9200\nesProxyPort=7300\nprefix=a\n\
                    [n1]\nesProxyPort=7301\n";
        let (c, _) = load(text, Some("n1")).unwrap();
        assert_eq!(c.listen.port, 7301);
        assert_eq!(c.policy.prefix.p, "a_", "falls back to [default]");
        let (c, _) = load(text, Some("other")).unwrap();
        assert_eq!(c.listen.port, 7300);
    }

    #[test]
    fn empty_value_in_node_section_unsets_the_default() {
        let text = format!(
            "[default]\nelasticsearch=http://192.0.2.1:9200\ncertFile={f}\nkeyFile={f}\n\
             [esproxy]\ncertFile=\nkeyFile=\n",
            f = existing()
        );
        let (c, _) = ok(&text);
        assert!(c.listen.tls.is_none());
        let (c, _) = load(&text, Some("other")).unwrap();
        assert!(c.listen.tls.is_some());
    }

    #[test]
    fn node_defaults_to_the_short_host_name() {
        let text = "[default]\nelasticsearch=http://192.0.2.1:9200\n";
        let (c, _) = load(text, None).unwrap();
        if let Some(h) = short_hostname() {
            assert_eq!(c.node, h);
            assert!(!c.node.contains('.'));
        }
    }

    #[test]
    fn explicit_node_without_section_warns() {
        let (_, w) = load(ES, Some("esprxy")).unwrap();
        assert!(
            w.iter()
                .any(|w| w.message().contains("no [esprxy] section")),
            "{w:?}"
        );
    }

    #[test]
    fn elasticsearch_list_ignores_blanks_and_keeps_order() {
        let (c, _) = ok("[default]\nelasticsearch= , , http://127.0.0.1:9200,\n");
        assert_eq!(c.upstream.urls.len(), 1);
        let (c, _) = ok(
            "[default]\nelasticsearch=https://es1.example:9200, http://[2001:db8::1]:9201 ,192.0.2.3\n",
        );
        let a: Vec<_> = c.upstream.urls.iter().map(EsUrl::authority).collect();
        assert_eq!(
            a,
            ["es1.example:9200", "[2001:db8::1]:9201", "192.0.2.3:80"]
        );
        assert!(c.upstream.urls[0].https);
    }

    #[test]
    fn url_without_scheme_warns() {
        let (_, w) = ok("[default]\nelasticsearch=192.0.2.3:9200\n");
        assert!(w.iter().any(|w| w.message().contains("no scheme")), "{w:?}");
    }

    #[test]
    fn basic_auth_user_pass_is_encoded() {
        let (c, _) = ok(&format!("{ES}elasticsearchBasicAuth=elastic:changeme\n"));
        let want = format!("Basic {}", b64("elastic:changeme"));
        assert_eq!(c.upstream.authorization.as_deref(), Some(want.as_str()));
    }

    #[test]
    fn basic_auth_without_colon_is_already_base64() {
        let enc = b64("elastic:changeme");
        let (c, _) = ok(&format!("{ES}elasticsearchBasicAuth={enc}\n"));
        assert_eq!(c.upstream.authorization.unwrap(), format!("Basic {enc}"));
    }

    #[test]
    fn api_key_takes_precedence_over_basic_auth_and_url_credentials() {
        let (c, w) = ok(
            "[default]\nelasticsearch=http://u:p@192.0.2.1:9200\nelasticsearchAPIKey=a2V5\n\
             elasticsearchBasicAuth=elastic:changeme\n",
        );
        assert_eq!(c.upstream.authorization.as_deref(), Some("ApiKey a2V5"));
        assert_eq!(
            c.upstream.authorization_for(&c.upstream.urls[0]),
            Some("ApiKey a2V5")
        );
        assert!(w.iter().any(|w| w.key() == Some("elasticsearchBasicAuth")));
    }

    #[test]
    fn url_credentials_are_used_when_no_config_credentials() {
        let (c, _) = ok(
            "[default]\nelasticsearch=http://elastic:p%40ss@192.0.2.1:9200,http://192.0.2.2:9200\n",
        );
        let want = format!("Basic {}", b64("elastic:p@ss"));
        assert_eq!(c.upstream.authorization, None);
        assert_eq!(
            c.upstream.authorization_for(&c.upstream.urls[0]),
            Some(want.as_str())
        );
        assert_eq!(c.upstream.authorization_for(&c.upstream.urls[1]), None);
    }

    #[test]
    fn unknown_keys_are_ignored_silently() {
        let (_, w) = ok(&format!(
            "{ES}pcapDir=/tmp\nplugins=a.so\nrulesFiles=r.yaml\nspiDataMaxIndices=-1\n[custom-fields]\nx=kind:termfield\n"
        ));
        assert!(w.iter().all(|w| w.key().is_none()), "{w:?}");
    }

    #[test]
    fn misspelt_key_of_ours_warns_with_the_nearest_known_one() {
        let (c, w) = ok(&format!("{ES}esProxyPrt=7300\n"));
        assert_eq!(c.listen.port, 7200);
        let w = w.iter().find(|w| w.key() == Some("esProxyPrt")).unwrap();
        assert_eq!(w.line(), Some(3));
        assert_eq!(w.section(), Some("default"));
        assert!(w.message().contains("`esProxyPort`"), "{w}");
        assert!(
            w.to_string()
                .starts_with("conf/x.ini:3: [default] esProxyPrt: unknown esProxy setting"),
            "{w}"
        );
    }

    #[test]
    fn wrong_case_of_our_key_warns() {
        let (_, w) = ok(&format!("{ES}esproxyport=7300\n"));
        assert!(
            w.iter().any(|w| w.message().contains("`esProxyPort`")),
            "{w:?}"
        );
    }

    #[test]
    fn unknown_keys_in_our_sections_warn() {
        let (_, w) = ok(&format!(
            "{ES}[xff]\nenable=true\n[tee]\nelasticsearh=http://192.0.2.9:9200\n"
        ));
        assert!(w.iter().any(|w| w.message().contains("`enabled`")), "{w:?}");
        assert!(
            w.iter().any(|w| w.message().contains("`elasticsearch`")),
            "{w:?}"
        );
    }

    #[test]
    fn misspelt_section_warns() {
        let (_, w) = ok(&format!("{ES}[esproxy-sensor]\na=pass:x\n"));
        assert!(
            w.iter().any(|w| w.message().contains("[esproxy-sensors]")),
            "{w:?}"
        );
    }

    #[test]
    fn sigv4_source_follows_esproxy_js_order_url_role_static_default() {
        let base = format!("{ES}esProxySigV4=true\nesProxySigV4Region=eu-west-1\n");
        let (c, w) = ok(&format!(
            "{base}esProxySigV4CredentialUrl=https://127.0.0.1:9/k\nesProxySigV4RoleArn=arn:aws:iam::1:role/r\n"
        ));
        let s = c.upstream.sigv4.unwrap();
        assert_eq!((s.region.as_str(), s.service.as_str()), ("eu-west-1", "es"));
        assert_eq!(s.max_body, DEFAULT_MAX_SIGNED_BODY);
        assert!(matches!(
            s.source,
            CredentialSource::Url { cert_key: None, .. }
        ));
        assert!(!w.iter().any(|w| w.key().is_some()), "{w:?}");
        let (c, _) = ok(&format!(
            "{base}esProxySigV4RoleArn=arn:aws:iam::1:role/r\nesProxySigV4AccessKeyId=A\nesProxySigV4SecretAccessKey=S\n"
        ));
        assert!(matches!(
            c.upstream.sigv4.unwrap().source,
            CredentialSource::AssumeRole { .. }
        ));
        let (c, _) = ok(&format!(
            "{base}esProxySigV4AccessKeyId=A\nesProxySigV4SecretAccessKey=S\nesProxySigV4SessionToken=T\nesProxySigV4Service=aoss\n"
        ));
        let s = c.upstream.sigv4.unwrap();
        assert_eq!(s.service, "aoss");
        assert_eq!(
            s.source,
            CredentialSource::Static {
                access_key_id: "A".into(),
                secret_access_key: "S".into(),
                session_token: Some("T".into())
            }
        );
        let (c, _) = ok(&base);
        assert_eq!(
            c.upstream.sigv4.unwrap().source,
            CredentialSource::DefaultChain
        );
        let (c, _) = ok(&format!("{ES}esProxySigV4=false\n"));
        assert!(c.upstream.sigv4.is_none());
    }

    #[test]
    fn sigv4_mistakes_are_config_errors_that_never_show_the_secret() {
        let base = format!("{ES}esProxySigV4=true\nesProxySigV4Region=eu-west-1\n");
        let e = err(&format!("{base}esProxySigV4SecretAccessKey=hunter2\n"));
        assert!(e.contains("esProxySigV4AccessKeyId must be set too"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let e = err(&format!(
            "{base}esProxySigV4CredentialUrl=http://127.0.0.1/k\n"
        ));
        assert!(e.contains("https://"), "{e}");
        let e = err(&format!("{base}esProxySigV4RoleArn=admin\n"));
        assert!(e.contains("role ARN"), "{e}");
        let e = err(&format!("{base}esProxySigV4MaxBody=1K\n"));
        assert!(e.contains("esProxySigV4MaxBody"), "{e}");
    }

    #[test]
    fn sigv4_replaces_our_credentials_with_a_warning_and_the_tee_has_its_own() {
        let (c, w) = ok(&format!(
            "{ES}elasticsearchAPIKey=k\nesProxySigV4=true\nesProxySigV4Region=eu-west-1\n\
             [tee]\nelasticsearch=http://127.0.0.2:9200\nesProxySigV4=true\n\
             esProxySigV4Region=us-east-2\nesProxySigV4Service=aoss\n"
        ));
        assert!(w.iter().any(|w| w.message().contains("not sent")), "{w:?}");
        let tee = c.tee.unwrap().sigv4.unwrap();
        assert_eq!(
            (tee.region.as_str(), tee.service.as_str()),
            ("us-east-2", "aoss")
        );
        assert_eq!(c.upstream.sigv4.unwrap().region, "eu-west-1");
    }

    #[test]
    fn bad_port_error_names_file_line_section_key_value() {
        let text =
            "[default]\nelasticsearch=http://127.0.0.1:9200\n\n\n\n\n\n\n\n\n\nesProxyPort=72x0\n";
        assert_eq!(
            load(text, Some("esproxy")).unwrap_err().to_string(),
            "conf/x.ini:12: [default] esProxyPort = \"72x0\": not a port number (1-65535)"
        );
    }

    #[test]
    fn missing_elasticsearch_is_an_error() {
        let e = err("[default]\nprefix=x\n");
        assert_eq!(
            e,
            "conf/x.ini: [esproxy] elasticsearch: not in [esproxy] nor in [default]; required: \
             set at least one Elasticsearch URL, e.g. elasticsearch=http://127.0.0.1:9200"
        );
        let e = err("[default]\nelasticsearch= , ,\n");
        assert!(
            e.starts_with("conf/x.ini:2: [default] elasticsearch = \", ,\": required"),
            "{e}"
        );
    }

    #[test]
    fn empty_elasticsearch_in_node_section_does_not_fall_back() {
        let e = err("[default]\nelasticsearch=http://192.0.2.1:9200\n[esproxy]\nelasticsearch=\n");
        assert!(
            e.starts_with("conf/x.ini:4: [esproxy] elasticsearch"),
            "{e}"
        );
    }

    #[test]
    fn misspelt_secret_key_warning_does_not_echo_the_value() {
        let (_, w) = ok(&format!("{ES}elasticsearchBasicauth=elastic:hunter2\n"));
        let w = w
            .iter()
            .find(|w| w.key() == Some("elasticsearchBasicauth"))
            .unwrap();
        assert!(!w.to_string().contains("hunter2"), "{w}");
        assert!(w.message().contains("`elasticsearchBasicAuth`"), "{w}");
    }

    #[test]
    fn every_password_in_a_url_list_is_hidden() {
        let e = err(
            "[default]\nelasticsearch=http://a:hunter1@192.0.2.1,http://b:hunter2@192.0.2.2:0\n",
        );
        assert!(!e.contains("hunter"), "{e}");
    }

    #[test]
    fn bad_url_error_hides_the_password() {
        let e = err("[default]\nelasticsearch=http://elastic:hunter2@192.0.2.1:99999\n");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.starts_with("conf/x.ini:2: [default] elasticsearch = \"http://elastic:***@"),
            "{e}"
        );
    }

    #[test]
    fn bad_secret_values_are_never_echoed() {
        let e = err(&format!("{ES}elasticsearchBasicAuth=not base64 hunter2\n"));
        assert!(!e.contains("hunter2"), "{e}");
        assert!(
            e.starts_with("conf/x.ini:3: [default] elasticsearchBasicAuth: "),
            "{e}"
        );
        let e = err(&format!("{ES}[esproxy-sensors]\nt=pass:hunter2;ip:nope\n"));
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.starts_with("conf/x.ini:4: [esproxy-sensors] t: "), "{e}");
    }

    #[test]
    fn debug_output_hides_secrets() {
        let (c, _) = ok(
            "[default]\nelasticsearch=http://u:hunter1@192.0.2.1\nelasticsearchBasicAuth=e:hunter2\n\
             [esproxy-sensors]\nt=pass:hunter3\n[tee]\nelasticsearch=http://192.0.2.2\nelasticsearchAPIKey=hunter4\n"
        );
        let d = format!("{c:?}");
        for s in ["hunter", &b64("e:hunter2"), &b64("u:hunter1")] {
            assert!(!d.contains(s), "{s} in {d}");
        }
    }

    #[test]
    fn bad_boolean_and_sizes_are_errors() {
        assert_eq!(
            err(&format!("{ES}esProxyStrict=treu\n")),
            "conf/x.ini:3: [default] esProxyStrict = \"treu\": not a boolean (true or false)"
        );
        assert_eq!(
            err(&format!("{ES}esProxyMaxLine=16M\n")),
            "conf/x.ini:3: [default] esProxyMaxLine = \"16M\": too large (at most 8388608 (8M))"
        );
        assert!(err(&format!("{ES}esProxyMaxBody=lots\n")).contains("not a size"));
        assert!(err(&format!("{ES}esProxyMaxDepth=0\n")).contains("too small"));
        assert!(err(&format!("{ES}esProxyThreads=0\n")).contains("esProxyThreads"));
    }

    #[test]
    fn sizes_and_tuning_keys_are_read() {
        let (c, _) = ok(&format!(
            "{ES}esProxyStrict=false\nesProxyMaxLine=1M\nesProxyMaxBody=32M\nesProxyMaxInflated=128M\n\
             esProxyMaxChunkInflated=4M\nesProxyMaxDepth=32\nesProxyMaxSmallBody=32K\nesProxyMaxHeaderSize=8K\nesProxyThreads=3\n\
             esProxyGracePeriod=0\nesProxyAccessLog=true\nesProxyProxyProtocol=true\n\
             esProxyHealthCheckInterval=10\nesProxyHealthCheckTimeout=3\nesProxyHealthCheckPath=/_cluster/health\n\
             esProxyHost=192.0.2.5\n"
        ));
        assert!(!c.policy.strict);
        let l = &c.policy.limits;
        assert_eq!(
            (
                l.max_line,
                l.max_body,
                l.max_inflated,
                l.max_chunk_inflated,
                l.max_depth,
                l.max_small_body,
                l.max_header_bytes
            ),
            (1 << 20, 32 << 20, 128 << 20, 4 << 20, 32, 32 << 10, 8 << 10)
        );
        assert_eq!(c.threads, 3);
        assert_eq!(c.grace_period, Duration::ZERO);
        assert!(c.access_log && c.listen.proxy_protocol);
        assert_eq!(c.upstream.health.interval, Duration::from_secs(10));
        assert_eq!(c.upstream.health.timeout, Duration::from_secs(3));
        assert_eq!(c.upstream.health.path, "/_cluster/health");
        assert_eq!(c.listen.bind_addr(), "192.0.2.5:7200");
    }

    #[test]
    fn ipv6_listen_host_is_bracketed_in_bind_addr() {
        let (c, _) = ok(&format!("{ES}esProxyHost=[::1]\nesProxyPort=7201\n"));
        assert_eq!(c.listen.host.as_deref(), Some("::1"));
        assert_eq!(c.listen.bind_addr(), "[::1]:7201");
    }

    #[test]
    fn upstream_timeout_defaults_to_30_s_and_is_bounded() {
        let (c, _) = ok(ES);
        assert_eq!(c.upstream.timeout, Duration::from_secs(30));
        let (c, _) = ok(&format!("{ES}esProxyUpstreamTimeout=90\n"));
        assert_eq!(c.upstream.timeout, Duration::from_secs(90));
        let e = err(&format!("{ES}esProxyUpstreamTimeout=0\n"));
        assert!(
            e.starts_with("conf/x.ini:3: [default] esProxyUpstreamTimeout"),
            "{e}"
        );
        assert!(err(&format!("{ES}esProxyUpstreamTimeout=601\n")).contains("600"));
    }

    #[test]
    fn health_timeout_longer_than_interval_is_an_error() {
        let e = err(&format!(
            "{ES}esProxyHealthCheckInterval=2\nesProxyHealthCheckTimeout=5\n"
        ));
        assert!(
            e.starts_with("conf/x.ini:4: [default] esProxyHealthCheckTimeout"),
            "{e}"
        );
        let e = err(&format!("{ES}esProxyHealthCheckInterval=1\n"));
        assert!(
            e.starts_with("conf/x.ini:3: [default] esProxyHealthCheckInterval"),
            "{e}"
        );
        assert!(err(&format!("{ES}esProxyHealthCheckPath=_health\n")).contains("starting with `/`"));
    }

    #[test]
    fn listener_tls_needs_both_files_and_they_must_exist() {
        let f = existing();
        let (c, _) = ok(&format!("{ES}certFile={f}\nkeyFile={f}\n"));
        let tls = c.listen.tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from(&f));
        let e = err(&format!("{ES}certFile={f}\n"));
        assert!(e.starts_with("conf/x.ini:3: [default] certFile"), "{e}");
        assert!(e.contains("keyFile must be set too"), "{e}");
        let e = err(&format!("{ES}certFile={f}\nkeyFile=/nonexistent/key.pem\n"));
        assert!(
            e.starts_with(
                "conf/x.ini:4: [default] keyFile = \"/nonexistent/key.pem\": cannot use this file"
            ),
            "{e}"
        );
    }

    #[test]
    fn client_certificate_keys_need_tls_and_a_ca() {
        let f = existing();
        let (c, _) = ok(&format!(
            "{ES}certFile={f}\nkeyFile={f}\nesProxyClientCA={f}\nesProxyClientCertRequired=true\n"
        ));
        let tls = c.listen.tls.unwrap();
        assert_eq!(tls.client_ca, Some(PathBuf::from(&f)));
        assert!(tls.client_cert_required);
        let e = err(&format!("{ES}esProxyClientCA={f}\n"));
        assert!(e.contains("need TLS"), "{e}");
        let e = err(&format!(
            "{ES}certFile={f}\nkeyFile={f}\nesProxyClientCertRequired=true\n"
        ));
        assert!(e.contains("set esProxyClientCA too"), "{e}");
    }

    #[test]
    fn upstream_tls_keys_are_read_and_insecure_warns() {
        let f = existing();
        let (c, w) = ok(&format!(
            "[default]\nelasticsearch=https://es.example:9200\ncaTrustFile={f}\nesClientCert={f}\n\
             esClientKey={f}\nesClientKeyPass=pw\ninsecure=true\n"
        ));
        let t = &c.upstream.tls;
        assert_eq!(t.ca_trust_file.as_deref(), Some(Path::new(&f)));
        assert!(t.client_cert.is_some() && t.client_key.is_some());
        assert_eq!(t.client_key_pass.as_deref(), Some("pw"));
        assert!(t.insecure);
        assert!(w.iter().any(|w| w.message().contains("NOT verified")));
        let e = err(&format!("{ES}esClientCert={f}\n"));
        assert!(e.contains("esClientKey must be set too"), "{e}");
    }

    #[test]
    fn tee_is_read_from_its_own_section_only() {
        let (c, _) = ok(
            "[default]\nelasticsearch=http://192.0.2.1:9200\nelasticsearchAPIKey=primary\ninsecure=true\n\
             [tee]\nelasticsearch=http://192.0.2.2:9200\nelasticsearchBasicAuth=t:p\n"
        );
        let tee = c.tee.unwrap();
        assert_eq!(tee.urls[0].authority(), "192.0.2.2:9200");
        assert_eq!(tee.authorization, Some(format!("Basic {}", b64("t:p"))));
        assert!(!tee.tls.insecure, "not inherited from [default]");
        assert_eq!(c.upstream.authorization.as_deref(), Some("ApiKey primary"));
    }

    #[test]
    fn tee_without_url_is_off_with_a_warning() {
        let (c, w) = ok(&format!("{ES}[tee]\nelasticsearchAPIKey=k\n"));
        assert!(c.tee.is_none());
        assert!(
            w.iter().any(|w| w.message().contains("tee is off")),
            "{w:?}"
        );
    }

    #[test]
    fn open_or_empty_sensor_entries_and_a_missing_section_warn() {
        let (c, w) = ok(&format!("{ES}[esproxy-sensors]\nopen=;\nempty=\n"));
        assert!(c.sensors.get("open").is_some());
        assert!(c.sensors.get("empty").is_none());
        assert!(w
            .iter()
            .any(|w| w.key() == Some("open") && w.message().contains("anyone")));
        assert!(w.iter().any(|w| w.key() == Some("empty")));
        let (_, w) = ok(ES);
        assert!(w
            .iter()
            .any(|w| w.message().contains("no [esproxy-sensors]")));
    }

    #[test]
    fn later_duplicate_sensor_wins() {
        let (c, _) = ok(&format!("{ES}[esproxy-sensors]\na=pass:one\na=pass:two\n"));
        assert_eq!(c.sensors.get("a").unwrap().pass.as_deref(), Some("two"));
    }

    #[test]
    fn xff_section_is_read_and_its_errors_name_file_line_and_key() {
        let (c, _) = ok(&format!(
            "{ES}[xff]\nenabled=true\nremoteIpHeader=X-Real-IP\ninternalProxies=192.0.2.10\ntrustedProxies=198.51.100.0/24\n"
        ));
        assert!(c.xff.enabled());
        assert_eq!(c.xff.header_name(), "x-real-ip");
        let e = err(&format!(
            "{ES}[xff]\nenabled=true\ninternalProxies=10.0.0.(\n"
        ));
        assert!(
            e.starts_with(
                "conf/x.ini:5: [xff] internalProxies = \"10.0.0.(\": internalProxies: neither"
            ),
            "{e}"
        );
        let (_, w) = ok(&format!("{ES}[xff]\nenabled=true\n"));
        assert!(w
            .iter()
            .any(|w| w.message().contains("internalProxies is empty")));
    }

    #[test]
    fn metrics_listener_defaults_to_loopback_and_must_differ_from_the_proxy() {
        let (c, _) = ok(&format!("{ES}esProxyMetricsPort=9100\n"));
        assert_eq!(c.metrics, Some("127.0.0.1:9100".parse().unwrap()));
        let (c, _) = ok(&format!(
            "{ES}esProxyMetricsPort=9100\nesProxyMetricsHost=::1\n"
        ));
        assert_eq!(c.metrics, Some("[::1]:9100".parse().unwrap()));
        let e = err(&format!("{ES}esProxyMetricsPort=7200\n"));
        assert!(e.contains("must differ from esProxyPort"), "{e}");
        assert!(err(&format!(
            "{ES}esProxyMetricsPort=9100\nesProxyMetricsHost=localhost\n"
        ))
        .contains("not an IP address"));
    }

    #[test]
    fn bad_prefix_is_an_error() {
        let e = err(&format!("{ES}prefix=Tests*\n"));
        assert!(
            e.starts_with("conf/x.ini:3: [default] prefix = \"Tests*\": not a valid index prefix"),
            "{e}"
        );
    }

    #[test]
    fn broken_section_header_is_an_error_with_its_line() {
        assert_eq!(
            err("[default]\nelasticsearch=http://192.0.2.1\n[esproxy\n"),
            "conf/x.ini:3: section header \"[esproxy\" has no closing `]`"
        );
    }

    #[test]
    fn junk_lines_are_warnings() {
        let (_, w) = ok(&format!("{ES}just some words\n"));
        assert!(w.iter().any(|w| w.line() == Some(3)), "{w:?}");
    }

    #[test]
    fn load_reads_the_file_and_reports_a_missing_one() {
        let dir = std::env::temp_dir().join(format!("esproxy-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("esproxy.ini");
        std::fs::write(&path, ARKIME_TEST).unwrap();
        let (c, _) = Config::load(&path, Some("esproxy")).unwrap();
        assert_eq!(c.file, path);
        assert_eq!(c.policy.prefix.p, "tests_");
        std::fs::remove_file(&path).unwrap();
        let e = Config::load(&path, Some("esproxy"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("{}: cannot read the config file", path.display())),
            "{e}"
        );
        let _ = std::fs::remove_dir(&dir);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "(\\[[a-z-]{0,8}\\]\n|[a-zA-Z]{0,14}=[ -~]{0,30}\n|[^\n]{0,20}\n){0,12}") {
            let _ = load(&text, Some("esproxy"));
        }

        #[test]
        fn arbitrary_values_for_our_keys_never_panic(
            key in proptest::sample::select(lint::NODE_KEYS),
            v in "\\PC{0,40}",
        ) {
            let _ = load(&format!("{ES}{key}={v}\n"), Some("esproxy"));
        }
    }
}
