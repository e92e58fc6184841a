//! Where one cluster's signing keys come from (chosen by `config`, in esProxy.js's order):
//!
//! - the AWS default chain (`aws-config`): environment variables, web identity
//!   (`AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`), container credentials
//!   (`AWS_CONTAINER_CREDENTIALS_FULL_URI`/`_RELATIVE_URI`), EC2 IMDSv2 — with the standard
//!   variables (`AWS_REGION`, `AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
//!   `AWS_EC2_METADATA_DISABLED`, ...);
//! - STS AssumeRole (`aws-config`'s provider), starting from the default chain;
//! - static keys from the config;
//! - Arkime's credential URL: an HTTPS GET, with a client certificate, answering JSON keys
//!   (`AccessKeyId`, `SecretAccessKey`, `SessionToken`, `Expiration`, PascalCase or camelCase,
//!   optionally under `Credentials`). The only source written here; its server certificate is
//!   checked against the system roots (`SSL_CERT_FILE` overrides them).
//!
//! The SDK's HTTP client is rustls with ring, the same crypto as the rest of the proxy.

use crate::config::CredentialSource;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_smithy_http_client::tls;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::upstreams::peer::HttpPeer;
use std::time::{Duration, SystemTime};

/// Largest credential-URL answer read.
const MAX_ANSWER: usize = 64 << 10;
/// Longest a credential-URL fetch may take.
const URL_TIMEOUT: Duration = Duration::from_secs(10);

/// A ready credential source.
pub enum Source {
    /// One of the AWS SDK's providers (default chain, AssumeRole, static).
    Aws(SharedCredentialsProvider),
    /// Arkime's credential URL.
    Url(Box<CredentialUrl>),
}

impl Source {
    /// Builds the source (loads the SDK configuration from the environment, or the client
    /// certificate of the credential URL).
    pub async fn new(src: &CredentialSource, region: &str) -> Result<Source, String> {
        Ok(match src {
            CredentialSource::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => Source::Aws(SharedCredentialsProvider::new(Credentials::new(
                access_key_id,
                secret_access_key,
                session_token.clone(),
                None,
                "esProxySigV4AccessKeyId",
            ))),
            CredentialSource::DefaultChain => {
                let conf = sdk_config(region).await;
                Source::Aws(
                    conf.credentials_provider()
                        .ok_or("the AWS default credential chain is not available")?,
                )
            }
            CredentialSource::AssumeRole { role_arn } => {
                let conf = sdk_config(region).await;
                let p = aws_config::sts::AssumeRoleProvider::builder(role_arn.clone())
                    .session_name("arkime-esproxy")
                    .region(Region::new(region.to_string()))
                    .configure(&conf)
                    .build()
                    .await;
                Source::Aws(SharedCredentialsProvider::new(p))
            }
            CredentialSource::Url { url, cert_key } => {
                Source::Url(Box::new(CredentialUrl::new(url, cert_key.as_ref())?))
            }
        })
    }

    /// Fetches keys once.
    pub async fn fetch(&self) -> Result<Credentials, String> {
        match self {
            Source::Aws(p) => p.provide_credentials().await.map_err(|e| {
                // The SDK's errors keep their cause in the source chain.
                let mut s = e.to_string();
                let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&e);
                while let Some(c) = cur {
                    s.push_str(": ");
                    s.push_str(&c.to_string());
                    cur = c.source();
                }
                s
            }),
            Source::Url(u) => tokio::time::timeout(URL_TIMEOUT, u.fetch())
                .await
                .unwrap_or_else(|_| Err(format!("{}: no answer in time", u.url))),
        }
    }
}

/// The SDK configuration from the environment, over a rustls+ring HTTPS client.
async fn sdk_config(region: &str) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_string()))
        .load()
        .await
}

/// Arkime's credential URL (`esProxySigV4CredentialUrl`).
pub struct CredentialUrl {
    url: String,
    host: String,
    port: u16,
    path: String,
    client_cert: Option<std::sync::Arc<pingora::utils::tls::CertKey>>,
    connector: Connector,
}

impl CredentialUrl {
    /// Parses the URL and loads the client certificate and key.
    pub fn new(
        url: &str,
        cert_key: Option<&(std::path::PathBuf, std::path::PathBuf)>,
    ) -> Result<CredentialUrl, String> {
        let bad = |why: &str| format!("esProxySigV4CredentialUrl {url}: {why}");
        let u: http::Uri = url.parse().map_err(|e| bad(&format!("{e}")))?;
        if u.scheme_str() != Some("https") {
            return Err(bad("must be https://"));
        }
        let host = u.host().ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let client_cert = match cert_key {
            Some((c, k)) => Some(std::sync::Arc::new(
                crate::upstream::load_cert_key(c, k, None).map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        Ok(CredentialUrl {
            url: url.to_string(),
            port: u.port_u16().unwrap_or(443),
            path: u
                .path_and_query()
                .map_or("/".to_string(), |p| p.as_str().to_string()),
            host,
            client_cert,
            connector: Connector::new(None),
        })
    }

    async fn fetch(&self) -> Result<Credentials, String> {
        let e = |what: &str, err: &dyn std::fmt::Display| format!("{}: {what}: {err}", self.url);
        let addr = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|x| e("resolve", &x))?
            .next()
            .ok_or_else(|| e("resolve", &"no address"))?;
        let mut peer = HttpPeer::new(addr, true, self.host.clone());
        peer.client_cert_key = self.client_cert.clone();
        let (mut s, _) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|x| e("connect", &x))?;
        let mut req = RequestHeader::build("GET", self.path.as_bytes(), None)
            .map_err(|x| e("request", &x))?;
        let authority = if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        };
        req.insert_header("Host", authority)
            .map_err(|x| e("request", &x))?;
        req.insert_header("Accept", "application/json")
            .map_err(|x| e("request", &x))?;
        s.write_request_header(Box::new(req))
            .await
            .map_err(|x| e("send", &x))?;
        s.finish_request_body().await.map_err(|x| e("send", &x))?;
        s.read_response_header().await.map_err(|x| e("read", &x))?;
        let status = s.response_header().map_or(0, |h| h.status.as_u16());
        let mut body = Vec::new();
        while let Some(b) = s.read_response_body().await.map_err(|x| e("read", &x))? {
            if body.len() + b.len() > MAX_ANSWER {
                return Err(e("read", &format!("answer over {MAX_ANSWER} bytes")));
            }
            body.extend_from_slice(&b);
        }
        if !(200..300).contains(&status) {
            return Err(e("answer", &format!("HTTP {status}")));
        }
        parse_keys(&body).map_err(|x| e("answer", &x))
    }
}

/// The keys in a credential-URL answer: PascalCase or camelCase fields, at the top level or
/// under `Credentials`/`credentials`; `Expiration` an RFC 3339 time (or Unix seconds).
pub fn parse_keys(body: &[u8]) -> Result<Credentials, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let c = v
        .get("Credentials")
        .or_else(|| v.get("credentials"))
        .unwrap_or(&v);
    let field = |pascal: &str, camel: &str| {
        c.get(pascal)
            .or_else(|| c.get(camel))
            .filter(|x| !x.is_null())
    };
    let text = |pascal: &str, camel: &str| -> Result<Option<String>, String> {
        match field(pascal, camel) {
            None => Ok(None),
            Some(serde_json::Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(format!("{pascal} is not a non-empty string")),
        }
    };
    let id = text("AccessKeyId", "accessKeyId")?.ok_or("no AccessKeyId")?;
    let secret = text("SecretAccessKey", "secretAccessKey")?.ok_or("no SecretAccessKey")?;
    let token = text("SessionToken", "sessionToken")?;
    let expiry = match field("Expiration", "expiration") {
        None => None,
        Some(serde_json::Value::String(s)) => Some(
            aws_smithy_types::DateTime::from_str(
                s,
                aws_smithy_types::date_time::Format::DateTimeWithOffset,
            )
            .map_err(|e| format!("Expiration {s:?}: {e}"))
            .and_then(|d| SystemTime::try_from(d).map_err(|e| format!("Expiration: {e}")))?,
        ),
        Some(serde_json::Value::Number(n)) => {
            let secs = n.as_u64().ok_or("Expiration is not a Unix time")?;
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        }
        Some(_) => return Err("Expiration is neither a time string nor a number".into()),
    };
    Ok(Credentials::new(
        id,
        secret,
        token,
        expiry,
        "esProxySigV4CredentialUrl",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_url_answers_in_either_case_and_wrapping_are_read() {
        let pascal = br#"{"Credentials":{"AccessKeyId":"A","SecretAccessKey":"S","SessionToken":"T","Expiration":"2030-01-01T00:00:00Z"}}"#;
        let c = parse_keys(pascal).unwrap();
        assert_eq!((c.access_key_id(), c.secret_access_key()), ("A", "S"));
        assert_eq!(c.session_token(), Some("T"));
        assert_eq!(
            c.expiry().unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        );
        let camel =
            br#"{"accessKeyId":"a","secretAccessKey":"s","expiration":"2030-01-01T01:00:00+01:00"}"#;
        let c = parse_keys(camel).unwrap();
        assert_eq!(c.access_key_id(), "a");
        assert_eq!(c.session_token(), None);
        assert_eq!(
            c.expiry().unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_456_000)
        );
    }

    #[test]
    fn credential_url_answers_without_keys_are_refused() {
        assert!(parse_keys(b"{}").unwrap_err().contains("AccessKeyId"));
        assert!(parse_keys(br#"{"AccessKeyId":"A"}"#)
            .unwrap_err()
            .contains("SecretAccessKey"));
        assert!(parse_keys(b"<html>").unwrap_err().contains("not JSON"));
        assert!(
            parse_keys(br#"{"AccessKeyId":"A","SecretAccessKey":"S","Expiration":"soon"}"#)
                .unwrap_err()
                .contains("Expiration")
        );
    }

    #[test]
    fn a_credential_url_must_be_https() {
        assert!(CredentialUrl::new("http://127.0.0.1/creds", None)
            .err()
            .unwrap()
            .contains("https"));
        assert!(CredentialUrl::new("https://127.0.0.1:8443/creds?x=1", None).is_ok());
    }
}
