//! TLS for sensors (issue #4): a certificate chain on the listener, optional and required client
//! certificates naming the sensor, PROXY v2 in front of TLS, and clear start-up errors for bad
//! certificate/key files. Certificates are generated here (rcgen), under a throwaway CA.

use crate::client_ip::v2_tcp4;
use crate::harness::{basic, free_port, read_response, temp_file, Osmem, Proxy, Response};
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.self_signed(&key).unwrap();
    Ca { cert, key }
}

fn intermediate(root: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.distinguished_name
        .push(DnType::CommonName, "esproxy test intermediate");
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = p.signed_by(&key, &root.cert, &root.key).unwrap();
    Ca { cert, key }
}

/// A leaf for `cn` with DNS SANs `dns`, signed by `by`.
fn leaf(by: &Ca, cn: &str, dns: &[&str], client: bool) -> (Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    if !client {
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = p.signed_by(&key, &by.cert, &by.key).unwrap();
    (cert, key)
}

/// Server side: root CA → intermediate → leaf for `localhost`; certFile holds leaf + intermediate.
pub(crate) struct Pki {
    root: Ca,
    cert_file: PathBuf,
    key_file: PathBuf,
    /// Client CA (separate from the server's) and its PEM file.
    client_ca: Ca,
    client_ca_file: PathBuf,
}

pub(crate) fn pki() -> Pki {
    let root = ca("esproxy test root");
    let inter = intermediate(&root);
    let (server, server_key) = leaf(&inter, "localhost", &["localhost"], false);
    let chain = format!("{}{}", server.pem(), inter.cert.pem());
    let cert_file = temp_file("server.crt", &chain);
    let key_file = temp_file("server.key", &server_key.serialize_pem());
    let client_ca = ca("esproxy sensor CA");
    let client_ca_file = temp_file("sensors-ca.crt", &client_ca.cert.pem());
    Pki {
        root,
        cert_file,
        key_file,
        client_ca,
        client_ca_file,
    }
}

pub(crate) fn ini(es: &str, pki: &Pki, extra: &str) -> String {
    format!(
        "[default]\nelasticsearch={es}\nesProxyPort={{PORT}}\nesProxyHost=127.0.0.1\n\
         certFile={}\nkeyFile={}\n{extra}\n\
         [esproxy-sensors]\ntoronto01=pass:secret1;ip:127.0.0.1\ntoronto011=pass:secret2;ip:127.0.0.1\n\
         lbonly=ip:192.0.2.10\n",
        pki.cert_file.display(),
        pki.key_file.display()
    )
}

/// A TLS client trusting the server's root, optionally presenting `client`.
pub(crate) fn client_config(
    pki: &Pki,
    client: Option<&(Certificate, KeyPair)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.root.cert.der().to_vec()))
        .unwrap();
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let cfg = match client {
        Some((cert, key)) => b
            .with_client_auth_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap(),
        None => b.with_no_client_auth(),
    };
    Arc::new(cfg)
}

/// One `GET /` over TLS (after an optional PROXY header). `Err` = the handshake or the
/// connection failed before a response.
pub(crate) fn tls_get(
    p: &Proxy,
    cfg: Arc<rustls::ClientConfig>,
    creds: Option<&str>,
    proxy_header: Option<&[u8]>,
) -> Result<Response, String> {
    let mut tcp = TcpStream::connect(p.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if let Some(h) = proxy_header {
        tcp.write_all(h).unwrap();
    }
    let conn = rustls::ClientConnection::new(cfg, ServerName::try_from("localhost").unwrap())
        .map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    let mut req = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".to_string();
    if let Some(c) = creds {
        req.push_str(&format!("Authorization: {}\r\n", basic(c)));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    s.flush().map_err(|e| e.to_string())?;
    let mut r = BufReader::new(s);
    // A refused client certificate under TLS 1.3 surfaces on the first read.
    let mut probe = String::new();
    use std::io::BufRead;
    match r.read_line(&mut probe) {
        Ok(0) => return Err("closed".into()),
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    let status = probe
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {probe:?}"))?;
    // Re-read the rest through the harness reader by faking the status line we consumed.
    let rest = read_response(&mut BufReader::new(std::io::Read::chain(
        std::io::Cursor::new(probe.into_bytes()),
        r,
    )));
    assert_eq!(rest.status, status);
    Ok(rest)
}

#[test]
fn tls_with_a_chain_serves_http11_with_basic_auth() {
    let es = Osmem::start();
    let pki = pki();
    let p = Proxy::start(&ini(&es.url(), &pki, ""), "default");
    let r = tls_get(
        &p,
        client_config(&pki, None),
        Some("toronto01:secret1"),
        None,
    )
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["version"]["distribution"], "opensearch");
    let r = tls_get(&p, client_config(&pki, None), Some("toronto01:wrong"), None).unwrap();
    assert_eq!(r.status, 401);

    // Plain HTTP to the TLS port gets no HTTP answer (a TLS alert at most).
    let mut tcp = TcpStream::connect(p.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut got = Vec::new();
    let _ = std::io::Read::read_to_end(&mut tcp, &mut got);
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");
}

#[test]
fn tls_offers_only_http11() {
    let es = Osmem::start();
    let pki = pki();
    let p = Proxy::start(&ini(&es.url(), &pki, ""), "default");
    let mut cfg = (*client_config(&pki, None)).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let mut tcp = TcpStream::connect(p.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut conn =
        rustls::ClientConnection::new(Arc::new(cfg), ServerName::try_from("localhost").unwrap())
            .unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[test]
fn optional_client_certificate_names_the_sensor() {
    let es = Osmem::start();
    let pki = pki();
    let extra = format!("esProxyClientCA={}", pki.client_ca_file.display());
    let p = Proxy::start(&ini(&es.url(), &pki, &extra), "default");
    let toronto = leaf(
        &pki.client_ca,
        "toronto01",
        &["toronto01.sensors.example"],
        true,
    );
    let by_san = leaf(&pki.client_ca, "sensor", &["toronto011"], true);
    let stranger = leaf(&pki.client_ca, "intruder", &[], true);
    let with = |c: &(Certificate, KeyPair)| client_config(&pki, Some(c));

    // Certificate alone: no password needed.
    assert_eq!(tls_get(&p, with(&toronto), None, None).unwrap().status, 200);
    assert_eq!(tls_get(&p, with(&by_san), None, None).unwrap().status, 200);
    // Certificate and Basic naming the same sensor (password still checked).
    assert_eq!(
        tls_get(&p, with(&toronto), Some("toronto01:secret1"), None)
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        tls_get(&p, with(&toronto), Some("toronto01:wrong"), None)
            .unwrap()
            .status,
        401
    );
    // Certificate and Basic naming different sensors.
    assert_eq!(
        tls_get(&p, with(&toronto), Some("toronto011:secret2"), None)
            .unwrap()
            .status,
        401
    );
    // A certificate that names no sensor.
    assert_eq!(
        tls_get(&p, with(&stranger), None, None).unwrap().status,
        401
    );
    // No certificate: Basic as usual.
    let none = client_config(&pki, None);
    assert_eq!(
        tls_get(&p, none.clone(), Some("toronto01:secret1"), None)
            .unwrap()
            .status,
        200
    );
    assert_eq!(tls_get(&p, none, None, None).unwrap().status, 401);
    // A certificate from another CA does not get through the handshake.
    let rogue_ca = ca("rogue");
    let rogue = leaf(&rogue_ca, "toronto01", &[], true);
    assert!(tls_get(&p, with(&rogue), None, None).is_err());
}

#[test]
fn required_client_certificate_refuses_handshakes_without_one() {
    let es = Osmem::start();
    let pki = pki();
    let extra = format!(
        "esProxyClientCA={}\nesProxyClientCertRequired=true",
        pki.client_ca_file.display()
    );
    let p = Proxy::start(&ini(&es.url(), &pki, &extra), "default");
    let none = tls_get(
        &p,
        client_config(&pki, None),
        Some("toronto01:secret1"),
        None,
    );
    assert!(none.is_err(), "{none:?}");
    let toronto = leaf(&pki.client_ca, "toronto01", &[], true);
    let r = tls_get(&p, client_config(&pki, Some(&toronto)), None, None).unwrap();
    assert_eq!(r.status, 200);
}

#[test]
fn proxy_v2_before_the_tls_handshake() {
    let es = Osmem::start();
    let pki = pki();
    let p = Proxy::start(
        &ini(&es.url(), &pki, "esProxyProxyProtocol=true"),
        "default",
    );
    let cfg = client_config(&pki, None);
    let via = tls_get(
        &p,
        cfg.clone(),
        Some("lbonly:x"),
        Some(&v2_tcp4([192, 0, 2, 10])),
    );
    assert_eq!(via.unwrap().status, 200);
    let other = tls_get(
        &p,
        cfg.clone(),
        Some("lbonly:x"),
        Some(&v2_tcp4([203, 0, 113, 5])),
    );
    assert_eq!(other.unwrap().status, 401);
    assert!(
        tls_get(&p, cfg, Some("lbonly:x"), None).is_err(),
        "no header: closed"
    );
}

/// Runs esproxy with `args` (killed after 20 s): exit status and stderr.
fn run_esproxy(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_esproxy"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `esproxy --check-config` and a real start on `ini`: both must fail the same way.
fn start_fails(ini_text: &str) -> (Option<i32>, String) {
    let port = free_port();
    let file = temp_file(
        "bad-tls.ini",
        &ini_text.replace("{PORT}", &port.to_string()),
    );
    let c = std::ffi::OsStr::new("-c");
    let check = run_esproxy(&[c, file.as_os_str(), std::ffi::OsStr::new("--check-config")]);
    let run = run_esproxy(&[c, file.as_os_str()]);
    assert_eq!(check.0, run.0, "{}", run.1);
    run
}

#[test]
fn bad_certificates_and_keys_are_clear_startup_errors() {
    let pki = pki();
    let es = "http://127.0.0.1:9";
    let base = |cert: &PathBuf, key: &PathBuf, extra: &str| {
        format!(
            "[default]\nelasticsearch={es}\nesProxyPort={{PORT}}\nesProxyHost=127.0.0.1\n\
             certFile={}\nkeyFile={}\n{extra}\n[esproxy-sensors]\na=pass:b\n",
            cert.display(),
            key.display()
        )
    };
    let other_key = temp_file("other.key", &KeyPair::generate().unwrap().serialize_pem());
    let junk = temp_file("junk.pem", "this is not PEM\n");

    let (code, err) = start_fails(&base(&pki.cert_file, &other_key, ""));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("do not go together"), "{err}");

    let (code, err) = start_fails(&base(&junk, &pki.key_file, ""));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("certFile") && err.contains("no CERTIFICATE"),
        "{err}"
    );

    let (code, err) = start_fails(&base(&pki.cert_file, &junk, ""));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("keyFile") && err.contains("no private key"),
        "{err}"
    );

    let extra = format!("esProxyClientCA={}", junk.display());
    let (code, err) = start_fails(&base(&pki.cert_file, &pki.key_file, &extra));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("esProxyClientCA"), "{err}");

    let (code, err) = start_fails(&base(
        &pki.cert_file,
        &pki.key_file,
        "esProxyClientCertRequired=true",
    ));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("esProxyClientCA"), "{err}");
}
