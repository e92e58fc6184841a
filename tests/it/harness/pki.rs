//! Test certificates and a TLS terminator, for the TLS tests.

use std::net::{SocketAddr, TcpListener};

/// Test PKI: a CA, a server certificate for 127.0.0.1 and a client certificate, all PEM.
pub struct TestPki {
    /// CA certificate.
    pub ca: String,
    /// Server certificate and key.
    pub server_cert: String,
    /// Server key (PKCS#8).
    pub server_key: String,
    /// Client certificate.
    pub client_cert: String,
    /// Client key, PKCS#8 encrypted with `client_key_pass`.
    pub client_key_encrypted: String,
    /// The passphrase.
    pub client_key_pass: String,
}

/// Generates a [`TestPki`].
pub fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "esproxy test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();

    let srv_key = KeyPair::generate().unwrap();
    let mut srv = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key).unwrap();

    let cli_key = KeyPair::generate().unwrap();
    let mut cli = CertificateParams::new(Vec::<String>::new()).unwrap();
    cli.distinguished_name.push(DnType::CommonName, "esproxy");
    cli.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cli_cert = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();

    let pass = "test-pass-1".to_string();
    let cli_der = cli_key.serialize_der();
    let pki = pkcs8::PrivateKeyInfo::try_from(cli_der.as_slice()).unwrap();
    let params =
        pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(2048, &[3; 16], &[5; 16]).unwrap();
    let enc = pki
        .encrypt_with_params(params, pass.as_bytes())
        .unwrap()
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    TestPki {
        ca: ca_cert.pem(),
        server_cert: srv_cert.pem(),
        server_key: srv_key.serialize_pem(),
        client_cert: cli_cert.pem(),
        client_key_encrypted: enc,
        client_key_pass: pass,
    }
}

/// A test-only TLS terminator in front of `target`: TLS 1.2/1.3 with `pki`'s server
/// certificate, requiring a client certificate from `pki`'s CA. Runs until the test ends.
pub fn tls_terminator(pki: &TestPki, target: SocketAddr) -> SocketAddr {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca: Vec<CertificateDer<'static>> = rustls_pemfile_certs(&pki.ca);
    let mut roots = rustls::RootCertStore::empty();
    for c in ca {
        roots.add(c).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = rustls_pemfile_certs(&pki.server_cert);
    let key = PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
    });
    addr
}

fn rustls_pemfile_certs(pem: &str) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.unwrap())
        .collect()
}
