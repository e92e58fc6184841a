//! The Elasticsearch peer pool: which ES node a request goes to, how we talk to it (http/https,
//! CA trust, client certificate, SNI) and which credentials we send. Round robin over healthy
//! peers; a peer that refuses a connection is marked down at once (passive check) and a
//! background task probes every peer (active check) to bring it back. With `esProxySigV4` the
//! pool's [`Signer`] takes the place of our `Authorization` (health checks are signed too).
//! Never looks at a request.

use crate::config::{EsUrl, Upstream};
use crate::sigv4::Signer;
use async_trait::async_trait;
use log::{info, warn};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Why the upstream settings could not be turned into a pool. Names the file or URL to fix.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A host name in `elasticsearch=` did not resolve.
    #[error("elasticsearch URL {url}: cannot resolve {authority}: {reason}")]
    Resolve {
        /// The URL as configured (without credentials).
        url: String,
        /// host:port.
        authority: String,
        /// The resolver's answer.
        reason: String,
    },
    /// An https URL without a host name: Pingora would skip every certificate check.
    #[error("elasticsearch URL {url}: https needs a host name for SNI and certificate checks")]
    EmptySni {
        /// The URL as configured (without credentials).
        url: String,
    },
    /// A certificate or key file could not be read or holds nothing usable.
    #[error("{setting} = {path}: {reason}")]
    TlsFile {
        /// The config key (`caTrustFile`, `esClientCert`, `esClientKey`).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One ES node: the connection template and its state.
struct PeerSlot {
    /// Shown in logs (no credentials).
    name: String,
    template: HttpPeer,
    host_header: String,
    authorization: Option<String>,
    healthy: AtomicBool,
    /// Consecutive failed health checks.
    failed_checks: AtomicU32,
}

/// Failed health checks in a row before a peer is marked down (one slow answer from a busy node
/// must not take it out of the pool; a refused connect still marks it down at once).
const FAILS_TO_MARK_DOWN: u32 = 2;

/// The pool of ES nodes from one `elasticsearch=` list.
pub struct Pool {
    slots: Vec<PeerSlot>,
    next: AtomicUsize,
    health_path: String,
    health_interval: Duration,
    health_timeout: Duration,
    signer: Option<Arc<Signer>>,
}

/// A peer chosen for one attempt.
pub struct Chosen {
    /// Index in the pool (to mark it down or exclude it on retry).
    pub index: usize,
    /// The connection to open.
    pub peer: Box<HttpPeer>,
}

impl Pool {
    /// Builds the pool: resolves every URL, loads CA bundle and client certificate once.
    pub fn new(up: &Upstream) -> Result<Pool, UpstreamError> {
        let ca = match &up.tls.ca_trust_file {
            Some(p) => Some(load_ca_bundle(p)?),
            None => None,
        };
        let client_cert = match (&up.tls.client_cert, &up.tls.client_key) {
            (Some(c), Some(k)) => Some(Arc::new(load_cert_key(
                c,
                k,
                up.tls.client_key_pass.as_deref(),
            )?)),
            _ => None,
        };
        let mut slots = Vec::with_capacity(up.urls.len());
        for url in &up.urls {
            // An empty SNI makes Pingora skip every certificate check: always name the host.
            if url.https && url.host.trim().is_empty() {
                return Err(UpstreamError::EmptySni {
                    url: format!("https://{}", url.authority()),
                });
            }
            let addr = resolve(url)?;
            let mut peer = HttpPeer::new(addr, url.https, url.host.clone());
            peer.options.verify_cert = !up.tls.insecure;
            peer.options.verify_hostname = !up.tls.insecure;
            peer.options.connection_timeout = Some(Duration::from_secs(5));
            peer.options.total_connection_timeout = Some(Duration::from_secs(10));
            peer.options.idle_timeout = Some(Duration::from_secs(60));
            // A node that goes silent (GC pause, wedged JVM) must not hold a request until the
            // sensor gives up: Pingora applies these to every read and write of the exchange.
            peer.options.read_timeout = Some(up.timeout);
            peer.options.write_timeout = Some(up.timeout);
            if let Some(ca) = &ca {
                peer.options.ca = Some(ca.clone());
            }
            peer.client_cert_key = client_cert.clone();
            slots.push(PeerSlot {
                name: format!(
                    "{}://{}",
                    if url.https { "https" } else { "http" },
                    url.authority()
                ),
                template: peer,
                host_header: url.authority(),
                authorization: up.authorization_for(url).map(str::to_string),
                healthy: AtomicBool::new(true),
                failed_checks: AtomicU32::new(0),
            });
        }
        Ok(Pool {
            slots,
            next: AtomicUsize::new(0),
            health_path: up.health.path.clone(),
            health_interval: up.health.interval,
            health_timeout: up.health.timeout,
            signer: up.sigv4.as_ref().map(|s| Signer::new(s, "es")),
        })
    }

    /// Names the pool's signer in logs and metrics (the tee's is `tee`).
    pub fn label_signer(&mut self, up: &Upstream, cluster: &'static str) {
        self.signer = up.sigv4.as_ref().map(|s| Signer::new(s, cluster));
    }

    /// The SigV4 signer, when every request to this cluster must be signed.
    pub fn signer(&self) -> Option<&Arc<Signer>> {
        self.signer.as_ref()
    }

    /// Sets read and write timeouts on every peer (used for the tee, whose connections must
    /// never hang on a black-holed node).
    pub fn set_io_timeout(&mut self, t: Duration) {
        for s in &mut self.slots {
            s.template.options.read_timeout = Some(t);
            s.template.options.write_timeout = Some(t);
        }
    }

    /// A connection template for peer `index` (for requests we send ourselves: tee, replay).
    pub fn peer(&self, index: usize) -> HttpPeer {
        self.slots[index].template.clone()
    }

    /// Puts this peer's `Host` and our credentials for it on an upstream request, in place of
    /// whatever the sensor sent.
    pub fn prepare_header(&self, index: usize, req: &mut RequestHeader) -> pingora::Result<()> {
        req.remove_header(&http::header::AUTHORIZATION);
        req.remove_header(&http::header::PROXY_AUTHORIZATION);
        // A signed cluster gets no Authorization of ours: the signature replaces it.
        if let Some(a) = self.authorization(index).filter(|_| self.signer.is_none()) {
            req.insert_header(http::header::AUTHORIZATION, a)?;
        }
        req.insert_header(http::header::HOST, self.host_header(index))?;
        Ok(())
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the pool has no peers.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Next peer in round-robin order, skipping `exclude` (peers that already failed for this
    /// request) and, while any is left, unhealthy ones. When every remaining peer is marked
    /// down we still try one: a health check can lag behind a peer's recovery, and a refused
    /// connect costs little compared with failing a sensor's bulk.
    pub fn select(&self, exclude: &[usize]) -> Option<Chosen> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let candidates = (0..n)
            .map(|i| (start + i) % n)
            .filter(|i| !exclude.contains(i));
        let mut fallback = None;
        for i in candidates {
            if self.slots[i].healthy.load(Ordering::Relaxed) {
                return Some(self.chosen(i));
            }
            fallback.get_or_insert(i);
        }
        fallback.map(|i| self.chosen(i))
    }

    fn chosen(&self, index: usize) -> Chosen {
        Chosen {
            index,
            peer: Box::new(self.slots[index].template.clone()),
        }
    }

    /// Marks a peer down at once (a failed connect, or no byte for the upstream timeout);
    /// only a passed health check brings it back. `why` is for the log line.
    pub fn mark_down(&self, index: usize, why: &str) {
        if let Some(s) = self.slots.get(index) {
            if s.healthy.swap(false, Ordering::Relaxed) {
                warn!("upstream {} marked down ({why})", s.name);
            }
        }
    }

    /// The `Authorization` value to send to this peer, if any.
    pub fn authorization(&self, index: usize) -> Option<&str> {
        self.slots.get(index)?.authorization.as_deref()
    }

    /// The `Host` header for this peer.
    pub fn host_header(&self, index: usize) -> &str {
        &self.slots[index].host_header
    }

    /// The peer's name for logs (scheme://host:port, no credentials).
    pub fn name(&self, index: usize) -> &str {
        &self.slots[index].name
    }

    /// Whether a peer is currently considered healthy.
    pub fn is_healthy(&self, index: usize) -> bool {
        self.slots[index].healthy.load(Ordering::Relaxed)
    }

    /// Probes every peer once (GET health path, any status below 500 is healthy). A peer is
    /// marked down after [`FAILS_TO_MARK_DOWN`] failures in a row, and up after one success.
    pub async fn check_all(&self, connector: &Connector) {
        for (i, slot) in self.slots.iter().enumerate() {
            let passed = tokio::time::timeout(self.health_timeout, self.probe(connector, i))
                .await
                .unwrap_or(false);
            let ok = if passed {
                slot.failed_checks.store(0, Ordering::Relaxed);
                true
            } else {
                let n = slot.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
                // A peer already down (refused connect) stays down on its first failed check.
                n < FAILS_TO_MARK_DOWN && slot.healthy.load(Ordering::Relaxed)
            };
            let was = slot.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                if ok {
                    info!("upstream {} is healthy again", slot.name);
                } else {
                    warn!("upstream {} failed its health check", slot.name);
                }
            }
        }
    }

    async fn probe(&self, connector: &Connector, index: usize) -> bool {
        let slot = &self.slots[index];
        let Ok((mut session, _)) = connector.get_http_session(&slot.template).await else {
            return false;
        };
        let Ok(mut req) = RequestHeader::build("GET", self.health_path.as_bytes(), None) else {
            return false;
        };
        let _ = req.insert_header("Host", &slot.host_header);
        match &self.signer {
            Some(signer) => {
                if let Err(e) = signer.sign(&mut req, &[]).await {
                    warn!("health check of {}: {e}", slot.name);
                    return false;
                }
            }
            None => {
                if let Some(a) = &slot.authorization {
                    let _ = req.insert_header("Authorization", a);
                }
            }
        }
        if session.write_request_header(Box::new(req)).await.is_err()
            || session.finish_request_body().await.is_err()
            || session.read_response_header().await.is_err()
        {
            return false;
        }
        let ok = session
            .response_header()
            .is_some_and(|h| h.status.as_u16() < 500);
        while let Ok(Some(_)) = session.read_response_body().await {}
        ok
    }
}

/// Background service running the active health checks of one pool.
pub struct HealthCheck {
    pool: Arc<Pool>,
    connector: Connector,
}

impl HealthCheck {
    /// A health checker for `pool`.
    pub fn new(pool: Arc<Pool>) -> HealthCheck {
        HealthCheck {
            pool,
            connector: Connector::new(None),
        }
    }
}

#[async_trait]
impl BackgroundService for HealthCheck {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.pool.check_all(&self.connector).await;
            tokio::select! {
                _ = tokio::time::sleep(self.pool.health_interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn resolve(url: &EsUrl) -> Result<SocketAddr, UpstreamError> {
    let authority = url.authority();
    let err = |reason: String| UpstreamError::Resolve {
        url: format!(
            "{}://{}",
            if url.https { "https" } else { "http" },
            authority
        ),
        authority: authority.clone(),
        reason,
    };
    (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|e| err(e.to_string()))?
        .next()
        .ok_or_else(|| err("no address".into()))
}

fn read_pem(setting: &'static str, path: &Path) -> Result<Vec<u8>, UpstreamError> {
    std::fs::read(path).map_err(|e| UpstreamError::TlsFile {
        setting,
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Every certificate of a PEM bundle (Pingora's own loader keeps only the first).
pub fn load_ca_bundle(path: &Path) -> Result<Arc<[WrappedX509]>, UpstreamError> {
    let pem = read_pem("caTrustFile", path)?;
    let ders = pem_certs("caTrustFile", path, &pem)?;
    Ok(ders
        .into_iter()
        .map(|der| WrappedX509::new(der, parse_x509))
        .collect::<Vec<_>>()
        .into())
}

fn pem_certs(
    setting: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<Vec<u8>>, UpstreamError> {
    let bad = |reason: String| UpstreamError::TlsFile {
        setting,
        path: path.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    for c in rustls_pemfile::certs(&mut &pem[..]) {
        let der = c.map_err(|e| bad(format!("bad PEM: {e}")))?;
        // Pingora's parser panics on bad DER; check first so a bad file is a start-up error.
        x509_check(&der).map_err(bad)?;
        out.push(der.to_vec());
    }
    if out.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    Ok(out)
}

fn x509_check(der: &[u8]) -> Result<(), String> {
    x509_parser::parse_x509_certificate(der)
        .map(|_| ())
        .map_err(|e| format!("not a valid X.509 certificate: {e}"))
}

/// A client certificate and its key (PEM files; the key may be encrypted PKCS#8 with `pass`).
pub(crate) fn load_cert_key(
    cert: &Path,
    key: &Path,
    pass: Option<&str>,
) -> Result<CertKey, UpstreamError> {
    let cert_pem = read_pem("esClientCert", cert)?;
    let certs = pem_certs("esClientCert", cert, &cert_pem)?;
    let key_pem = read_pem("esClientKey", key)?;
    let bad = |reason: String| UpstreamError::TlsFile {
        setting: "esClientKey",
        path: key.to_path_buf(),
        reason,
    };
    let der = key_der(&key_pem, pass).map_err(bad)?;
    Ok(CertKey::new(certs, der))
}

/// The DER private key from a PEM file: PKCS#1, PKCS#8 or SEC1 in the clear, or PKCS#8
/// `ENCRYPTED PRIVATE KEY` (PBES2) decrypted with `esClientKeyPass`.
fn key_der(pem: &[u8], pass: Option<&str>) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        let pass =
            pass.ok_or("the key is encrypted (PKCS#8) but esClientKeyPass is not set".to_string())?;
        let start = text
            .find("-----BEGIN ENCRYPTED PRIVATE KEY-----")
            .unwrap_or(0);
        let (_, doc) = pkcs8::SecretDocument::from_pem(&text[start..])
            .map_err(|e| format!("bad ENCRYPTED PRIVATE KEY PEM: {e}"))?;
        let enc = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes())
            .map_err(|e| format!("bad ENCRYPTED PRIVATE KEY: {e}"))?;
        let plain = enc.decrypt(pass.as_bytes()).map_err(|e| {
            format!(
                "cannot decrypt with esClientKeyPass (wrong passphrase or unsupported cipher): {e}"
            )
        })?;
        return Ok(plain.as_bytes().to_vec());
    }
    if text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(
            "legacy OpenSSL-encrypted key: convert it to encrypted PKCS#8 with \
                    `openssl pkcs8 -topk8 -v2 aes-256-cbc -in KEY -out KEY.p8`"
                .into(),
        );
    }
    let der = rustls_pemfile::private_key(&mut &pem[..])
        .map_err(|e| format!("bad PEM: {e}"))?
        .ok_or_else(|| "no PRIVATE KEY block (PKCS#1, PKCS#8 or SEC1) found".to_string())?;
    Ok(der.secret_der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encrypted_pem(der: &[u8], pass: &str) -> String {
        let pki = pkcs8::PrivateKeyInfo::try_from(der).unwrap();
        let params =
            pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[7; 16], &[9; 16])
                .unwrap();
        let doc = pki.encrypt_with_params(params, pass).unwrap();
        doc.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .unwrap()
            .to_string()
    }

    fn files(tag: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("esproxy-upstream-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }

    #[test]
    fn encrypted_pkcs8_client_key_is_decrypted_with_its_passphrase() {
        let ck = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
        let plain = ck.key_pair.serialize_der();
        let (c, k) = files("enc", &ck.cert.pem(), &encrypted_pem(&plain, "hunter2"));
        assert!(load_cert_key(&c, &k, Some("hunter2")).is_ok());
        assert_eq!(
            key_der(&std::fs::read(&k).unwrap(), Some("hunter2")).unwrap(),
            plain
        );
        let e = load_cert_key(&c, &k, Some("wrong"))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("esClientKey") && e.contains("cannot decrypt"),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        let e = load_cert_key(&c, &k, None).err().unwrap().to_string();
        assert!(e.contains("esClientKeyPass is not set"), "{e}");
    }

    #[test]
    fn plain_client_key_loads_and_legacy_encryption_is_explained() {
        let ck = rcgen::generate_simple_self_signed(vec!["client".into()]).unwrap();
        let (c, k) = files("plain", &ck.cert.pem(), &ck.key_pair.serialize_pem());
        assert!(load_cert_key(&c, &k, None).is_ok());
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        let e = key_der(legacy.as_bytes(), Some("x")).unwrap_err();
        assert!(e.contains("openssl pkcs8 -topk8"), "{e}");
    }

    #[test]
    fn https_url_without_host_is_refused_rather_than_unverified() {
        let up = Upstream {
            urls: vec![EsUrl {
                https: true,
                host: String::new(),
                port: 9200,
                authorization: None,
            }],
            authorization: None,
            tls: Default::default(),
            health: crate::config::HealthCheck {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                path: "/".into(),
            },
            sigv4: None,
            timeout: crate::config::DEFAULT_UPSTREAM_TIMEOUT,
        };
        let e = Pool::new(&up).err().expect("refused").to_string();
        assert!(e.contains("SNI"), "{e}");
    }

    #[test]
    fn ca_bundle_keeps_every_certificate() {
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let (c, _) = files("bundle", &format!("{}{}", a.cert.pem(), b.cert.pem()), "");
        assert_eq!(load_ca_bundle(&c).unwrap().len(), 2);
    }

    #[test]
    fn round_robin_skips_down_peers_and_excluded_ones() {
        let url = |port| EsUrl {
            https: false,
            host: "127.0.0.1".into(),
            port,
            authorization: None,
        };
        let up = Upstream {
            urls: vec![url(9201), url(9202), url(9203)],
            authorization: Some("ApiKey k".into()),
            tls: Default::default(),
            health: crate::config::HealthCheck {
                interval: Duration::from_secs(5),
                timeout: Duration::from_secs(2),
                path: "/".into(),
            },
            sigv4: None,
            timeout: crate::config::DEFAULT_UPSTREAM_TIMEOUT,
        };
        let pool = Pool::new(&up).unwrap();
        let picks: Vec<usize> = (0..6).map(|_| pool.select(&[]).unwrap().index).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        pool.mark_down(1, "test");
        let picks: Vec<usize> = (0..4).map(|_| pool.select(&[]).unwrap().index).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert_ne!(pool.select(&[0]).unwrap().index, 0);
        // Every peer down: still try one rather than fail outright.
        pool.mark_down(0, "test");
        pool.mark_down(2, "test");
        assert!(pool.select(&[]).is_some());
        assert!(pool.select(&[0, 1, 2]).is_none());
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("Authorization", "Basic c2Vuc29yOnB3")
            .unwrap();
        pool.prepare_header(2, &mut req).unwrap();
        assert_eq!(req.headers.get("authorization").unwrap(), "ApiKey k");
        assert_eq!(req.headers.get("host").unwrap(), "127.0.0.1:9203");
    }
}
