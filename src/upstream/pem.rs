//! Loading the PEM files an upstream cluster's TLS names (`caTrustFile`, `esClientCert`,
//! `esClientKey` with `esClientKeyPass`) into what Pingora's connector takes, so a bad file is
//! a start-up error that names the setting and the file, never a panic in Pingora's parser.

use super::UpstreamError;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use std::path::Path;
use std::sync::Arc;

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
    use std::path::PathBuf;

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
    fn ca_bundle_keeps_every_certificate() {
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let (c, _) = files("bundle", &format!("{}{}", a.cert.pem(), b.cert.pem()), "");
        assert_eq!(load_ca_bundle(&c).unwrap().len(), 2);
    }
}
