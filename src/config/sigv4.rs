//! The `esProxySigV4*` keys of one cluster (node section / `[default]` for the primary, `[tee]`
//! for the tee) → [`SigV4`]. Which credential source applies is decided here, in esProxy.js's
//! order: credential URL, then STS AssumeRole, then static keys, then the AWS default chain.

use std::fmt;
use std::path::PathBuf;

use super::lookup::Builder;
use super::{value, ConfigError};

/// Bounds of `esProxySigV4MaxBody`.
const MAX_SIGNED_BODY: (u64, u64) = (64 << 10, 1 << 30);
/// Default `esProxySigV4MaxBody`: capture's bulks are at most ~15 MB raw, usually ~1 MB.
pub const DEFAULT_MAX_SIGNED_BODY: usize = 16 << 20;

/// AWS Signature Version 4 signing of every request sent to one cluster.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SigV4 {
    /// `esProxySigV4Region` (else `AWS_REGION` / `AWS_DEFAULT_REGION`).
    pub region: String,
    /// `esProxySigV4Service`: `es` (managed OpenSearch) or `aoss` (Serverless).
    pub service: String,
    /// Where the keys come from.
    pub source: CredentialSource,
    /// `esProxySigV4MaxBody` (node section / `[default]`): the largest body held whole to be
    /// hashed and signed; a larger one is refused with 413.
    pub max_body: usize,
}

/// Where the signing keys come from.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `esProxySigV4CredentialUrl` (+ `…CredentialCert`/`…CredentialKey`): an HTTPS GET with a
    /// client certificate answering JSON keys (Arkime's own source).
    Url {
        /// The URL (https).
        url: String,
        /// Client certificate and key (PEM), both or neither.
        cert_key: Option<(PathBuf, PathBuf)>,
    },
    /// `esProxySigV4RoleArn`: STS AssumeRole, starting from the default chain.
    AssumeRole {
        /// The role to assume.
        role_arn: String,
    },
    /// `esProxySigV4AccessKeyId` + `esProxySigV4SecretAccessKey` (+ `…SessionToken`).
    Static {
        /// Access key id.
        access_key_id: String,
        /// Secret access key.
        secret_access_key: String,
        /// Session token, for temporary keys.
        session_token: Option<String>,
    },
    /// None of the above: environment, web identity, container, EC2 IMDSv2 (the AWS default
    /// chain, with the standard environment variables).
    DefaultChain,
}

impl fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Url { url, cert_key } => f
                .debug_struct("Url")
                .field("url", url)
                .field("cert_key", cert_key)
                .finish(),
            CredentialSource::AssumeRole { role_arn } => f
                .debug_struct("AssumeRole")
                .field("role_arn", role_arn)
                .finish(),
            CredentialSource::Static { access_key_id, .. } => f
                .debug_struct("Static")
                .field("access_key_id", access_key_id)
                .finish_non_exhaustive(),
            CredentialSource::DefaultChain => f.write_str("DefaultChain"),
        }
    }
}

impl CredentialSource {
    /// A short name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            CredentialSource::Url { .. } => "credential-url",
            CredentialSource::AssumeRole { .. } => "assume-role",
            CredentialSource::Static { .. } => "static",
            CredentialSource::DefaultChain => "default-chain",
        }
    }
}

impl<'a> Builder<'a> {
    /// The SigV4 settings of the cluster whose keys are in `sections`; `None` unless
    /// `esProxySigV4=true`.
    pub(super) fn sigv4(&mut self, sections: &[&'a str]) -> Result<Option<SigV4>, ConfigError> {
        let on = self.parse_found(self.find_in(sections, "esProxySigV4"), value::boolean)?;
        let Some((true, on_found)) = on else {
            return Ok(None);
        };
        let text = |b: &Self, key: &str| {
            b.find_in(sections, key).and_then(|f| {
                let v = f.value()?.trim().to_string();
                Some((v, f))
            })
        };
        let region = match text(self, "esProxySigV4Region") {
            Some((r, f)) => {
                if r.is_empty() || !r.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                    return Err(self.error(&f, "not an AWS region name (e.g. us-east-1)"));
                }
                r
            }
            None => match ["AWS_REGION", "AWS_DEFAULT_REGION"]
                .iter()
                .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
            {
                Some(r) => r.trim().to_string(),
                None => {
                    return Err(self.error(
                        &on_found,
                        "SigV4 needs a region: set esProxySigV4Region (or AWS_REGION)",
                    ))
                }
            },
        };
        let service = match text(self, "esProxySigV4Service") {
            Some((s, f)) => {
                if s.is_empty() || !s.bytes().all(|c| c.is_ascii_lowercase() || c == b'-') {
                    return Err(self.error(&f, "not a service name: `es` or `aoss`"));
                }
                s
            }
            None => "es".to_string(),
        };

        let url = text(self, "esProxySigV4CredentialUrl");
        let cert = self.file_value(self.find_in(sections, "esProxySigV4CredentialCert"))?;
        let key = self.file_value(self.find_in(sections, "esProxySigV4CredentialKey"))?;
        let role = text(self, "esProxySigV4RoleArn");
        let id = text(self, "esProxySigV4AccessKeyId");
        let secret = text(self, "esProxySigV4SecretAccessKey");
        let token = text(self, "esProxySigV4SessionToken");

        let source = if let Some((url, f)) = url {
            if !url.starts_with("https://") {
                return Err(self.error(&f, "must be an https:// URL"));
            }
            let cert_key = match (cert, key) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => {
                    return Err(self.error(
                        &f,
                        "esProxySigV4CredentialCert and esProxySigV4CredentialKey go together",
                    ))
                }
            };
            CredentialSource::Url { url, cert_key }
        } else if let Some((role_arn, f)) = role {
            if !role_arn.starts_with("arn:") {
                return Err(self.error(&f, "not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"));
            }
            CredentialSource::AssumeRole { role_arn }
        } else {
            match (id, secret) {
                (Some((access_key_id, _)), Some((secret_access_key, _))) => {
                    CredentialSource::Static {
                        access_key_id,
                        secret_access_key,
                        session_token: token.map(|(t, _)| t),
                    }
                }
                (Some((_, f)), None) => {
                    return Err(self.error(&f, "esProxySigV4SecretAccessKey must be set too"))
                }
                (None, Some((_, f))) => {
                    return Err(self.error(&f, "esProxySigV4AccessKeyId must be set too"))
                }
                (None, None) => CredentialSource::DefaultChain,
            }
        };
        let max_body = self
            .node_value("esProxySigV4MaxBody", |v| {
                value::size(v, MAX_SIGNED_BODY.0, MAX_SIGNED_BODY.1)
            })?
            .map_or(DEFAULT_MAX_SIGNED_BODY, |v| v as usize);
        Ok(Some(SigV4 {
            region,
            service,
            source,
            max_body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
}
