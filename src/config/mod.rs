//! Configuration: the operator's Arkime-style INI file → one validated [`Config`] (SPEC §1).
//!
//! Two layers, as in River: [`ini`] turns text into raw sections that keep line numbers, then
//! the readers below validate the keys they know into typed values. This module and its
//! children are the only code that touches the file system (reading the config, the host name,
//! and checking that configured certificate/key files exist); they make no request-time decision.
//!
//! One child per concern, each with its tests: `lookup` (which section a key comes from, and
//! the `Builder` the readers extend), `error` (diagnostics and what is never echoed),
//! `listen` (listener and metrics listener), `upstream` (a cluster: URLs, credentials, TLS,
//! health), `sigv4`, `limits` (request-check limits, connection deadlines and caps), `sensors`
//! (`[esproxy-sensors]`, `[xff]`), `lint` (our key names, misspelling warnings) and `value`
//! (one value's syntax). This file holds the key table below and assembles [`Config`].
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
//! | `esProxyInflateBudget` | bytes all gzip bulks held for whole-body inflate may take together (0: off) | 32M |
//! | `esProxyThreads` | worker threads | available cores |
//! | `esProxyProxyProtocol` | expect a PROXY protocol (v1/v2) header on each connection | `false` |
//! | `esProxyClientCA` | PEM CA bundle: sensors may authenticate with a client certificate (needs certFile) | off |
//! | `esProxyClientCertRequired` | refuse TLS handshakes without a client certificate (needs esProxyClientCA) | `false` |
//! | `esProxyMetricsPort`, `esProxyMetricsHost` | metrics listener | off, `127.0.0.1` |
//! | `esProxyGracePeriod` | seconds to finish requests on shutdown | 10 |
//! | `esProxyHealthCheckInterval`, `esProxyHealthCheckTimeout`, `esProxyHealthCheckPath` | upstream health checks | 5 s, 2 s, `/` |
//! | `esProxyUpstreamTimeout` | longest ES may stay silent: the answer's head after the request was sent, or a stalled body either way (seconds) | 30 s |
//! | `esProxyDnsInterval` | seconds between resolutions of the host names in `elasticsearch=` and `[tee]` (system resolver, A and AAAA) | 30 s |
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

mod error;
pub mod ini;
mod limits;
mod lint;
mod listen;
mod lookup;
mod sensors;
mod sigv4;
mod upstream;
mod value;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::Sensors;
use crate::client_ip::XffConfig;
use crate::policy::Policy;

use error::Diag;
pub use error::{ConfigError, Warning};
pub use listen::{Listen, ServerTls};
use lookup::Builder;
pub use sigv4::{CredentialSource, SigV4, DEFAULT_MAX_SIGNED_BODY};
pub use upstream::{
    EsUrl, HealthCheck, Upstream, UpstreamTls, DEFAULT_DNS_INTERVAL, DEFAULT_UPSTREAM_TIMEOUT,
};

const THREADS: (u64, u64) = (1, 1024);
const GRACE: (u64, u64) = (0, 3600);

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

impl Config {
    /// Reads and validates `file`. `node` is the `-n` name; `None` = the short host name.
    pub fn load(file: &Path, node: Option<&str>) -> Result<(Config, Vec<Warning>), ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            let message = format!("cannot read the config file: {e}");
            ConfigError(Box::new(Diag::in_file(file, None, message)))
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
        let ini = ini::parse(text)
            .map_err(|e| ConfigError(Box::new(Diag::in_file(file, Some(e.line), e.message))))?;
        let mut warnings = Vec::new();
        let (node, explicit) = match node {
            Some(n) if !n.trim().is_empty() => (n.trim().to_string(), true),
            _ => match lookup::short_hostname() {
                Some(h) => (h, false),
                None => {
                    let message = "cannot read the host name; using [default] only (pass -n NODE)";
                    warnings.push(Warning(Diag::in_file(file, None, message.into())));
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

impl Builder<'_> {
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
}

/// Loading helpers and sample files shared by the config modules' tests.
#[cfg(test)]
mod test_support {
    pub(super) use super::*;
    use base64::Engine as _;

    pub(super) fn load(
        text: &str,
        node: Option<&str>,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        Config::from_str(text, Path::new("conf/x.ini"), node)
    }

    pub(super) fn ok(text: &str) -> (Config, Vec<Warning>) {
        load(text, Some("esproxy")).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) fn err(text: &str) -> String {
        load(text, Some("esproxy")).unwrap_err().to_string()
    }

    pub(super) fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    /// A file that exists, for certificate/key keys.
    pub(super) fn existing() -> String {
        concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").to_string()
    }

    pub(super) const ES: &str = "[default]\nelasticsearch=http://127.0.0.1:9200\n";

    /// The shape of Arkime's own test config, trimmed: capture/viewer keys everywhere.
    pub(super) const ARKIME_TEST: &str = "\
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
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use crate::policy::{Policy, Prefix};
    use std::net::IpAddr;
    use std::time::Duration;

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
    fn broken_section_header_is_an_error_with_its_line() {
        assert_eq!(
            err("[default]\nelasticsearch=http://192.0.2.1\n[esproxy\n"),
            "conf/x.ini:3: section header \"[esproxy\" has no closing `]`"
        );
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
