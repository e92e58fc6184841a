//! One Elasticsearch cluster's keys → [`Upstream`]: the node URLs, which credentials are sent
//! (`elasticsearchAPIKey` > `elasticsearchBasicAuth` > the URL's own `user:pass@`), TLS towards
//! it, health checks and the upstream timeout. The primary cluster is read from the node's
//! section / `[default]`, the tee from `[tee]` only.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::lookup::Builder;
use super::{value, ConfigError, SigV4};

const HEALTH_INTERVAL: (u64, u64) = (1, 3600);
const HEALTH_TIMEOUT: (u64, u64) = (1, 600);
// Above about 55 s a timed-out bulk can no longer be re-sent within the replay budget (60 s):
// it gets the 504 instead. Allowed, for clusters (or test nodes) slower than that.
const UPSTREAM_TIMEOUT: (u64, u64) = (1, 600);
const DNS_INTERVAL: (u64, u64) = (1, 3600);

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
    /// `esProxyDnsInterval`: how often the host names of `urls` are resolved again (see
    /// [`DEFAULT_DNS_INTERVAL`]).
    pub dns_interval: Duration,
}

/// Default `esProxyDnsInterval`. The system resolver gives no TTL, so this is the bound on how
/// long a moved name keeps being sent to its old address (a failed connect re-resolves sooner).
pub const DEFAULT_DNS_INTERVAL: Duration = Duration::from_secs(30);

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
            .field("dns_interval", &self.dns_interval)
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

impl<'a> Builder<'a> {
    /// Reads one cluster's keys from `sections`; `None` when it has no URL. `primary`: the
    /// node-level cluster (else the tee, which is off without a URL).
    pub(super) fn upstream(
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
        let dns_interval = self
            .node_value("esProxyDnsInterval", |v| {
                value::seconds(v, DNS_INTERVAL.0, DNS_INTERVAL.1)
            })?
            .unwrap_or(DEFAULT_DNS_INTERVAL);
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
            dns_interval,
        }))
    }

    pub(super) fn health(&self) -> Result<HealthCheck, ConfigError> {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::path::Path;
    use std::time::Duration;

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
    fn dns_interval_defaults_to_30_s_and_is_bounded() {
        let (c, _) = ok(ES);
        assert_eq!(c.upstream.dns_interval, Duration::from_secs(30));
        let (c, _) = ok(&format!("{ES}esProxyDnsInterval=5\n"));
        assert_eq!(c.upstream.dns_interval, Duration::from_secs(5));
        let e = err(&format!("{ES}esProxyDnsInterval=0\n"));
        assert!(
            e.starts_with("conf/x.ini:3: [default] esProxyDnsInterval"),
            "{e}"
        );
        assert!(err(&format!("{ES}esProxyDnsInterval=3601\n")).contains("3600"));
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
}
