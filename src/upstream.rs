//! The Elasticsearch peer pool: which ES node a request goes to, how we talk to it (http/https,
//! CA trust, client certificate, SNI) and which credentials we send. Round robin over healthy
//! peers; a peer that refuses a connection is marked down at once (passive check) and a
//! background task probes every peer (active check) to bring it back. Never looks at a request.

use crate::config::{EsUrl, Upstream};
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
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
}

/// The pool of ES nodes from one `elasticsearch=` list.
pub struct Pool {
    slots: Vec<PeerSlot>,
    next: AtomicUsize,
    health_path: String,
    health_interval: Duration,
    health_timeout: Duration,
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
            let addr = resolve(url)?;
            // An empty SNI makes Pingora skip every certificate check: always name the host.
            let mut peer = HttpPeer::new(addr, url.https, url.host.clone());
            peer.options.verify_cert = !up.tls.insecure;
            peer.options.verify_hostname = !up.tls.insecure;
            peer.options.connection_timeout = Some(Duration::from_secs(5));
            peer.options.total_connection_timeout = Some(Duration::from_secs(10));
            peer.options.idle_timeout = Some(Duration::from_secs(60));
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
            });
        }
        Ok(Pool {
            slots,
            next: AtomicUsize::new(0),
            health_path: up.health.path.clone(),
            health_interval: up.health.interval,
            health_timeout: up.health.timeout,
        })
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

    /// Marks a peer down after a failed connect; the health check brings it back.
    pub fn mark_down(&self, index: usize) {
        if let Some(s) = self.slots.get(index) {
            if s.healthy.swap(false, Ordering::Relaxed) {
                warn!("upstream {} marked down (connect failed)", s.name);
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

    /// Probes every peer once (GET health path, any status below 500 is healthy).
    pub async fn check_all(&self, connector: &Connector) {
        for (i, slot) in self.slots.iter().enumerate() {
            let ok = tokio::time::timeout(self.health_timeout, self.probe(connector, i))
                .await
                .unwrap_or(false);
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
        if let Some(a) = &slot.authorization {
            let _ = req.insert_header("Authorization", a);
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

fn load_cert_key(cert: &Path, key: &Path, pass: Option<&str>) -> Result<CertKey, UpstreamError> {
    let cert_pem = read_pem("esClientCert", cert)?;
    let certs = pem_certs("esClientCert", cert, &cert_pem)?;
    let key_pem = read_pem("esClientKey", key)?;
    let bad = |reason: String| UpstreamError::TlsFile {
        setting: "esClientKey",
        path: key.to_path_buf(),
        reason,
    };
    if String::from_utf8_lossy(&key_pem).contains("ENCRYPTED") {
        let _ = pass;
        return Err(bad(
            "encrypted private keys (esClientKeyPass) are not supported yet; decrypt it with \
             `openssl pkey -in KEY -out KEY.plain`"
                .into(),
        ));
    }
    let der = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(|e| bad(format!("bad PEM: {e}")))?
        .ok_or_else(|| bad("no PRIVATE KEY block (PKCS#1, PKCS#8 or SEC1) found".into()))?;
    Ok(CertKey::new(certs, der.secret_der().to_vec()))
}
