//! TLS on the sensor listener (`certFile`/`keyFile`, optional `esProxyClientCA`). This module
//! owns two decisions: *is the configured certificate and key usable* (checked here at start-up,
//! so a bad file is a clear config error and never a Pingora panic), and *which node names a
//! verified client certificate vouches for* (its subject CNs and DNS SANs, handed to `auth`).
//!
//! The listener speaks HTTP/1.1 only (ALPN `http/1.1`), TLS 1.2 and 1.3 via rustls + ring. Keys
//! may be PKCS#1, PKCS#8 or SEC1 PEM; the certificate file may hold a chain (leaf first).

use std::any::Any;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{TlsAccept, ALPN};
use pingora::protocols::tls::TlsRef;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{
    CertificateDer, ClientHello, CryptoProvider, PrivateKeyDer, ResolvesServerCert, RootCertStore,
    WebPkiClientVerifier,
};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::config::ServerTls;

/// Why the listener's TLS material cannot be used. Each names the file and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("{key} = {path:?}: cannot read: {err}")]
    Unreadable {
        /// Config key.
        key: &'static str,
        /// File.
        path: PathBuf,
        /// The OS error.
        err: std::io::Error,
    },
    /// No usable PEM block of the expected kind.
    #[error("{key} = {path:?}: {what}")]
    BadPem {
        /// Config key.
        key: &'static str,
        /// File.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The key does not belong to the leaf certificate, or rustls refuses the pair.
    #[error("certFile = {cert:?} and keyFile = {key:?} do not go together: {what}")]
    Mismatch {
        /// certFile.
        cert: PathBuf,
        /// keyFile.
        key: PathBuf,
        /// rustls' reason.
        what: String,
    },
    /// The client CA bundle cannot be turned into a verifier.
    #[error("esProxyClientCA = {path:?}: {what}")]
    ClientCa {
        /// File.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// Loads and checks the listener's TLS material and returns Pingora settings that cannot panic
/// later (the certificate is handed over already parsed, through a resolver).
pub fn server_settings(cfg: &ServerTls) -> Result<TlsSettings, TlsError> {
    let mismatch = |what: String| TlsError::Mismatch {
        cert: cfg.cert.clone(),
        key: cfg.key.clone(),
        what,
    };
    pingora::tls::install_default_crypto_provider();
    let provider = CryptoProvider::get_default()
        .cloned()
        .ok_or_else(|| mismatch("no TLS crypto provider installed".into()))?;
    let chain = load_chain("certFile", &cfg.cert)?;
    let key = load_key(&cfg.key)?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider).map_err(|e| mismatch(e.to_string()))?;
    // `from_der` lets "cannot tell" pass; every key type ring loads can tell, so insist.
    certified
        .keys_match()
        .map_err(|e| mismatch(e.to_string()))?;

    let mut settings = TlsSettings::with_callbacks(Box::new(PeerIdentity))
        .map_err(|e| mismatch(format!("building TLS settings: {e}")))?;
    settings.set_cert_resolver(Arc::new(FixedCert(Arc::new(certified))));
    // HTTP/1.1 only: sensors speak nothing else, and H2 would bypass the H1 framing checks.
    settings.set_alpn(ALPN::H1);
    if let Some(ca) = &cfg.client_ca {
        let ca_err = |what: String| TlsError::ClientCa {
            path: ca.clone(),
            what,
        };
        let mut roots = RootCertStore::empty();
        for cert in load_chain("esProxyClientCA", ca)? {
            roots
                .add(cert)
                .map_err(|e| ca_err(format!("not a usable CA certificate: {e}")))?;
        }
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let builder = if cfg.client_cert_required {
            builder
        } else {
            builder.allow_unauthenticated()
        };
        let verifier = builder.build().map_err(|e| ca_err(e.to_string()))?;
        settings.set_client_cert_verifier(verifier);
    }
    Ok(settings)
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Unreadable {
        key,
        path: path.to_path_buf(),
        err,
    })
}

/// Every `CERTIFICATE` block of a PEM file, in order (leaf first for certFile).
fn load_chain(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(key, path)?;
    let bad = |what: String| TlsError::BadPem {
        key,
        path: path.to_path_buf(),
        what,
    };
    let certs = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block found".into()));
    }
    for (i, c) in certs.iter().enumerate() {
        X509Certificate::from_der(c.as_ref())
            .map_err(|e| bad(format!("certificate #{} is not valid X.509: {e}", i + 1)))?;
    }
    Ok(certs)
}

/// The first private key of a PEM file: PKCS#1 (`RSA PRIVATE KEY`), PKCS#8 (`PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`).
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read("keyFile", path)?;
    let bad = |what: String| TlsError::BadPem {
        key: "keyFile",
        path: path.to_path_buf(),
        what,
    };
    match rustls_pemfile::private_key(&mut bytes.as_slice()) {
        Ok(Some(k)) => Ok(k),
        Ok(None) if bytes.windows(9).any(|w| w == b"ENCRYPTED") => Err(bad(
            "encrypted private keys are not supported; store the key unencrypted (mode 0600)"
                .into(),
        )),
        Ok(None) => Err(bad(
            "no private key found (expected PKCS#1, PKCS#8 or SEC1 PEM)".into(),
        )),
        Err(e) => Err(bad(format!("bad PEM: {e}"))),
    }
}

/// Always the one configured certificate (whatever SNI the sensor sends).
struct FixedCert(Arc<CertifiedKey>);

impl fmt::Debug for FixedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FixedCert")
    }
}

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The node names a client certificate vouches for. Present on a connection only when rustls
/// verified the certificate against `esProxyClientCA`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// Subject common names, then DNS subject-alternative names, in certificate order.
    pub names: Vec<String>,
}

impl ClientCert {
    /// Extracts the names from a DER certificate (`None` if it does not parse).
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut names: Vec<String> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_string)
            .collect();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                if let GeneralName::DNSName(d) = n {
                    names.push(d.to_string());
                }
            }
        }
        Some(ClientCert { names })
    }
}

/// Pingora's post-handshake hook: stores the verified client certificate's names in the
/// connection's TLS digest, where [`client_cert`] finds them for every request.
struct PeerIdentity;

#[async_trait]
impl TlsAccept for PeerIdentity {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        // rustls only completes a handshake with a certificate that chains to the CA, so a
        // certificate here is a verified one.
        let der = tls.peer_certificate_der()?;
        ClientCert::from_der(der).map(|c| Arc::new(c) as Arc<dyn Any + Send + Sync>)
    }
}

/// The verified client certificate of the request's connection, if any.
pub fn client_cert(session: &pingora::proxy::Session) -> Option<&ClientCert> {
    session
        .digest()?
        .ssl_digest
        .as_ref()?
        .extension
        .get::<ClientCert>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("esproxy-tls-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn self_signed(alg: &'static rcgen::SignatureAlgorithm) -> (String, KeyPair) {
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = CertificateParams::new(vec!["esproxy.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key)
    }

    fn settings_err(cfg: &ServerTls) -> TlsError {
        match server_settings(cfg) {
            Ok(_) => panic!("expected an error for {cfg:?}"),
            Err(e) => e,
        }
    }

    fn cfg(cert: PathBuf, key: PathBuf) -> ServerTls {
        ServerTls {
            cert,
            key,
            client_ca: None,
            client_cert_required: false,
        }
    }

    #[test]
    fn pkcs8_and_sec1_keys_load_and_match() {
        let d = tmpdir("ok");
        let (cert, key) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let c = write(&d, "c.pem", &cert);
        let k8 = write(&d, "k8.pem", &key.serialize_pem());
        assert!(server_settings(&cfg(c.clone(), k8)).is_ok());
        // The same key as SEC1 (`EC PRIVATE KEY`) is what OpenSSL's `ecparam -genkey` writes.
        let sec1 = pem_block("EC PRIVATE KEY", &sec1_from_pkcs8(&key.serialize_der()));
        let k1 = write(&d, "k1.pem", &sec1);
        assert!(server_settings(&cfg(c, k1)).is_ok());
    }

    #[test]
    fn pkcs1_rsa_key_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/certs");
        let c = cfg(dir.join("rsa.crt"), dir.join("rsa-pkcs1.key"));
        assert!(std::fs::read_to_string(&c.key)
            .unwrap()
            .starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        assert!(server_settings(&c).is_ok());
    }

    #[test]
    fn mismatched_key_is_a_clear_error() {
        let d = tmpdir("mismatch");
        let (cert, _) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let (_, other) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let c = write(&d, "c.pem", &cert);
        let k = write(&d, "k.pem", &other.serialize_pem());
        let e = settings_err(&cfg(c, k));
        assert!(matches!(e, TlsError::Mismatch { .. }), "{e}");
        assert!(e.to_string().contains("do not go together"), "{e}");
    }

    #[test]
    fn unreadable_empty_and_swapped_files_name_the_key() {
        let d = tmpdir("bad");
        let (cert, key) = self_signed(&rcgen::PKCS_ECDSA_P256_SHA256);
        let c = write(&d, "c.pem", &cert);
        let k = write(&d, "k.pem", &key.serialize_pem());
        let junk = write(&d, "junk.pem", "not pem at all\n");
        let e = settings_err(&cfg(d.join("missing.pem"), k.clone()));
        assert!(e.to_string().starts_with("certFile = "), "{e}");
        let e = settings_err(&cfg(junk.clone(), k.clone()));
        assert!(e.to_string().contains("no CERTIFICATE block"), "{e}");
        let e = settings_err(&cfg(c.clone(), junk));
        assert!(e.to_string().starts_with("keyFile = "), "{e}");
        let e = settings_err(&cfg(k, c));
        assert!(e.to_string().contains("certFile"), "{e}");
    }

    #[test]
    fn client_cert_names_are_cns_then_dns_sans() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(vec!["toronto01.sensors.example".into()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "toronto01");
        p.subject_alt_names
            .push(SanType::IpAddress("192.0.2.1".parse().unwrap()));
        let cert = p.self_signed(&key).unwrap();
        let c = ClientCert::from_der(cert.der()).unwrap();
        assert_eq!(c.names, vec!["toronto01", "toronto01.sensors.example"]);
        assert!(ClientCert::from_der(b"junk").is_none());
    }

    fn pem_block(label: &str, der: &[u8]) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut s = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            s.push_str(std::str::from_utf8(line).unwrap());
            s.push('\n');
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    }

    /// Rebuilds a P-256 PKCS#8 key (as ring/rcgen write it) as the SEC1 `ECPrivateKey` OpenSSL
    /// writes: version 1, the 32-byte secret, the curve OID `[0]`, the public key `[1]`.
    fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        let at = |pat: &[u8]| {
            pkcs8
                .windows(pat.len())
                .position(|w| w == pat)
                .expect("P-256 PKCS#8 layout")
        };
        let secret_at = at(&[0x02, 0x01, 0x01, 0x04, 0x20]) + 5;
        let public_at = at(&[0xa1, 0x44, 0x03, 0x42, 0x00]);
        let mut body = vec![0x02, 0x01, 0x01, 0x04, 0x20];
        body.extend_from_slice(&pkcs8[secret_at..secret_at + 32]);
        body.extend_from_slice(&[
            0xa0, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
        ]);
        body.extend_from_slice(&pkcs8[public_at..public_at + 2 + 0x44]);
        let mut der = vec![0x30, body.len() as u8];
        der.extend_from_slice(&body);
        der
    }
}
