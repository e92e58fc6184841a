//! AWS Signature Version 4 for a cluster with `esProxySigV4=true` (Amazon OpenSearch Service,
//! `es`, or Serverless, `aoss`). Owns how an upstream request is signed and where the keys come
//! from; never decides what is forwarded.
//!
//! - [`Signer::sign`] signs one request head for the exact body bytes that follow it (the
//!   payload hash is always computed and sent as `x-amz-content-sha256`: `es` and `aoss` refuse
//!   `UNSIGNED-PAYLOAD`). The signing itself is `aws-sigv4`'s.
//! - [`keys`] caches the keys and refreshes them at 75 % of their lifetime in a background
//!   service; a failed refresh keeps the cached keys until they expire, is logged and counted.
//! - [`source`] builds the credential source from the config: the AWS SDK's own providers
//!   (default chain, STS AssumeRole, static keys) and Arkime's credential URL.
//!
//! The callers (upstream pool, replay, tee) make sure a signed request's body is complete and
//! held before its head is written, and is sent with `Content-Length`.

pub mod keys;
pub mod source;

use crate::config::SigV4;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use keys::Keys;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::SystemTime;

/// Headers covered by the signature besides the `x-amz-*` ones `aws-sigv4` adds: the ones no hop
/// between us and AWS rewrites and that say what the body is.
const SIGNED_HEADERS: [http::HeaderName; 4] = [
    http::header::HOST,
    http::header::CONTENT_TYPE,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_ENCODING,
];

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SigV4Error {
    /// No usable (unexpired) keys: the credential source failed and the cached keys expired.
    #[error("no unexpired AWS keys for SigV4 ({0}); see the earlier refresh errors")]
    NoKeys(&'static str),
    /// `aws-sigv4` refused the request or the keys.
    #[error("SigV4 signing failed: {0}")]
    Sign(String),
}

/// Signs requests to one cluster for its region and service.
pub struct Signer {
    region: String,
    service: String,
    max_body: usize,
    keys: Arc<Keys>,
}

impl Signer {
    /// A signer for `settings`; `cluster` names it in logs and metrics (`es`, `tee`). Its keys
    /// arrive once the [`keys::Refresher`] service from [`Signer::refresher`] runs.
    pub fn new(settings: &SigV4, cluster: &'static str) -> Arc<Signer> {
        Arc::new(Signer {
            region: settings.region.clone(),
            service: settings.service.clone(),
            max_body: settings.max_body,
            keys: Keys::new(cluster, settings.source.clone(), settings.region.clone()),
        })
    }

    /// The background service that fetches and refreshes this signer's keys.
    pub fn refresher(&self) -> keys::Refresher {
        keys::Refresher::new(self.keys.clone())
    }

    /// The key cache (for metrics).
    pub fn keys(&self) -> &Arc<Keys> {
        &self.keys
    }

    /// `esProxySigV4MaxBody`: the largest body held whole to be signed.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// Signs `req` (path, query and `Host` already final) for `body`, the exact bytes that
    /// follow it: sets `Content-Length`, drops `Transfer-Encoding`, adds `x-amz-date`,
    /// `x-amz-content-sha256`, `x-amz-security-token` (temporary keys) and `Authorization`.
    /// Waits for keys only when none are cached yet (start-up) or the cached ones expired.
    pub async fn sign(&self, req: &mut RequestHeader, body: &[Bytes]) -> Result<(), SigV4Error> {
        let creds = self.keys.get().await?;
        let mut h = Sha256::new();
        let mut len = 0usize;
        for b in body {
            h.update(b);
            len += b.len();
        }
        sign_with(
            req,
            hex::encode(h.finalize()),
            len,
            &creds,
            &self.region,
            &self.service,
            SystemTime::now(),
        )
    }
}

/// Signs `req` with `creds` at `time` for a body of `len` bytes whose SHA-256 is `payload_hash`.
pub fn sign_with(
    req: &mut RequestHeader,
    payload_hash: String,
    len: usize,
    creds: &aws_credential_types::Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<(), SigV4Error> {
    let e = |e: &dyn std::fmt::Display| SigV4Error::Sign(e.to_string());
    req.remove_header(&http::header::TRANSFER_ENCODING);
    req.remove_header(&http::header::AUTHORIZATION);
    for h in ["x-amz-date", "x-amz-security-token", "x-amz-content-sha256"] {
        req.remove_header(h);
    }
    // A GET without a body has no Content-Length, as a client would send it.
    if len > 0 || req.headers.contains_key(http::header::CONTENT_LENGTH) {
        req.insert_header(http::header::CONTENT_LENGTH, len.to_string())
            .map_err(|x| e(&x))?;
    }
    let identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|x| e(&x))?
        .into();
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(SIGNED_HEADERS.len());
    for name in &SIGNED_HEADERS {
        if let Some(v) = req.headers.get(name) {
            headers.push((name.as_str(), v.to_str().map_err(|x| e(&x))?));
        }
    }
    let uri = String::from_utf8_lossy(req.raw_path()).into_owned();
    let method = req.method.as_str().to_string();
    let signable = SignableRequest::new(
        &method,
        uri,
        headers.into_iter(),
        SignableBody::Precomputed(payload_hash),
    )
    .map_err(|x| e(&x))?;
    let (instructions, _) = sign(signable, &params).map_err(|x| e(&x))?.into_parts();
    let (add, _) = instructions.into_parts();
    for h in add {
        req.insert_header(h.name().to_string(), h.value().to_string())
            .map_err(|x| e(&x))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use std::time::{Duration, UNIX_EPOCH};

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    fn signed(body: &[u8], token: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/_bulk?timeout=10m", None).unwrap();
        req.insert_header("Host", "search-x.us-east-1.es.amazonaws.com")
            .unwrap();
        req.insert_header("Content-Type", "application/json")
            .unwrap();
        req.insert_header("Transfer-Encoding", "chunked").unwrap();
        req.insert_header("Authorization", "Basic c2Vuc29yOnB3")
            .unwrap();
        let hash = hex::encode(Sha256::digest(body));
        let t = UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        sign_with(
            &mut req,
            hash,
            body.len(),
            &creds(token),
            "us-east-1",
            "es",
            t,
        )
        .unwrap();
        req
    }

    fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
        req.headers.get(name).map(|v| v.to_str().unwrap())
    }

    #[test]
    fn signing_hashes_the_body_and_frames_it_by_length() {
        let req = signed(b"{}\n", None);
        assert_eq!(
            header(&req, "x-amz-content-sha256"),
            Some(hex::encode(Sha256::digest(b"{}\n")).as_str())
        );
        assert_eq!(header(&req, "content-length"), Some("3"));
        assert!(header(&req, "transfer-encoding").is_none());
        assert_eq!(header(&req, "x-amz-date"), Some("20150830T123600Z"));
        let auth = header(&req, "authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/es/aws4_request, \
                 SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, \
                 Signature="
            ),
            "{auth}"
        );
    }

    #[test]
    fn the_sensors_authorization_is_replaced_and_a_session_token_is_signed() {
        let req = signed(b"", Some("TOKEN"));
        assert_eq!(header(&req, "x-amz-security-token"), Some("TOKEN"));
        let auth = header(&req, "authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 "), "{auth}");
        assert!(auth.contains("x-amz-security-token"), "{auth}");
        assert_eq!(req.headers.get_all("authorization").iter().count(), 1);
    }

    #[test]
    fn a_different_body_gives_a_different_signature() {
        let sig = |b: &[u8]| {
            header(&signed(b, None), "authorization")
                .unwrap()
                .to_string()
        };
        assert_ne!(sig(b"a"), sig(b"b"));
        assert_eq!(sig(b"a"), sig(b"a"));
    }
}
