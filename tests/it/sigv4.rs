//! SigV4 towards managed OpenSearch (`esProxySigV4`), for every credential source. The upstream is
//! osmem-server behind a verifier (`tests/aws/stand_in.py`) that recomputes each request's
//! signature with botocore from the bytes that arrived and answers 403 on any mismatch, as AWS
//! does; the same process stands in for STS, IMDSv2, container credentials and Arkime's
//! credential URL. Everything listens on 127.0.0.1: esproxy runs with an emptied environment, the
//! AWS config files pointed at nothing, and `AWS_EC2_METADATA_DISABLED=true` unless IMDS is the
//! stand-in, so nothing can reach AWS.
//!
//! Temporary keys live [`TTL`] seconds and the capture-like mix (a real capture's requests:
//! plain and gzip bulks, stats, sequence and field documents) is spread over longer than that, so
//! the keys rotate during it; the verifier refuses expired keys.

use crate::capture_trace::parse_trace;
use crate::fleet_ini;
use crate::harness::{basic, free_port, request, temp_file, Osmem, Response};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lifetime of the temporary keys the stand-ins hand out (esproxy refreshes them after 6 s and
/// stops using them after 7 s).
const TTL: u64 = 12;
/// How long the request mix is spread over: more than one key lifetime.
const SPREAD: Duration = Duration::from_secs(16);
const REGION: &str = "eu-west-3";
const STATIC_ID: &str = "AKIAESPROXYSTATIC";
const STATIC_SECRET: &str = "static/secret+key";

/// The stand-ins (killed on drop).
struct StandIn {
    child: Child,
    ports: serde_json::Value,
}

impl StandIn {
    fn start(es: &Osmem, region: &str, service: &str, extra: &[String]) -> StandIn {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aws/stand_in.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--osmem", &es.addr.to_string(), "--region", region])
            .args(["--service", service, "--ttl", &TTL.to_string()])
            .args(["--static", &format!("{STATIC_ID}:{STATIC_SECRET}")])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/aws/stand_in.py (botocore: scripts/setup.sh)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("stand-in banner {line:?}: {e}"));
        StandIn { child, ports }
    }

    fn addr(&self, name: &str) -> String {
        format!("127.0.0.1:{}", self.ports[name].as_u64().expect(name))
    }

    fn stats(&self) -> serde_json::Value {
        let addr: SocketAddr = self.addr("verifier").parse().unwrap();
        request(addr, "GET", "/", &[("X-Stand-In", "stats")], b"").json()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// esproxy started with only the environment given here (killed on drop).
struct Signed {
    child: Child,
    addr: SocketAddr,
    log: std::path::PathBuf,
}

impl Signed {
    fn start(ini: &str, env: &[(&str, String)]) -> Signed {
        let port = free_port();
        let config = temp_file("esproxy.ini", &ini.replace("{PORT}", &port.to_string()));
        let log = config.with_file_name("esproxy.log");
        let nothing = config.with_file_name("no-such-aws-file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_esproxy"));
        cmd.arg("-c")
            .arg(&config)
            .args(["-n", "default"])
            .env_clear()
            .env("RUST_LOG", "info")
            .env("AWS_CONFIG_FILE", &nothing)
            .env("AWS_SHARED_CREDENTIALS_FILE", &nothing)
            .env("HOME", config.parent().unwrap())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if !env
            .iter()
            .any(|(k, _)| *k == "AWS_EC2_METADATA_SERVICE_ENDPOINT")
        {
            cmd.env("AWS_EC2_METADATA_DISABLED", "true");
        }
        let mut child = cmd.spawn().expect("start esproxy");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Some(s) = child.try_wait().unwrap() {
                panic!(
                    "esproxy exited: {s}: {}",
                    std::fs::read_to_string(&log).unwrap()
                );
            }
            assert!(Instant::now() < deadline, "esproxy did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Signed { child, addr, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Signed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ini(es: &str, sigv4: &str) -> String {
    fleet_ini(
        &format!("http://{es}"),
        &format!(
            "esProxyHealthCheckInterval=2\nesProxySigV4=true\nesProxySigV4Region={REGION}\n{sigv4}"
        ),
    )
}

/// Sends a real capture's requests (plain bulks, then gzip bulks, with their stats, sequence
/// and field documents) spread over [`SPREAD`]; every answer must come from ES. Returns how
/// many were sent.
fn capture_mix(p: &Signed) -> usize {
    let recorded: Vec<_> = parse_trace()
        .into_iter()
        .filter(|r| r.section == 'A' || r.section == 'B')
        .collect();
    let auth = basic("toronto01:secret1");
    let gap = SPREAD / recorded.len() as u32;
    let (mut plain, mut gzipped) = (0, 0);
    for r in &recorded {
        let mut headers = vec![
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        if r.gzip {
            headers.push(("Content-Encoding", "gzip"));
        }
        let resp: Response = request(p.addr, &r.method, &r.target, &headers, &r.body);
        assert!(
            resp.status != 403 && resp.status < 500 && resp.status != 413 && resp.status != 401,
            "{} {} answered {}: {}\n{}",
            r.method,
            r.target,
            resp.status,
            resp.text(),
            p.log()
        );
        if r.target == "/_bulk" {
            assert_eq!(resp.status, 200, "bulk: {}", resp.text());
            assert!(!resp.text().contains("\"errors\":true"), "{}", resp.text());
            if r.gzip {
                gzipped += 1;
            } else {
                plain += 1;
            }
        }
        std::thread::sleep(gap);
    }
    assert!(plain > 0 && gzipped > 0, "plain {plain}, gzip {gzipped}");
    recorded.len()
}

/// What every source must show: all answered from ES, all verified, none refused, documents
/// landed, and (for temporary keys) more than one key used without a failed request.
fn check(es: &Osmem, aws: &StandIn, p: &Signed, sent: usize, rotates: bool) {
    let s = aws.stats();
    assert_eq!(s["refused"], 0, "refused: {}\n{}", s["reasons"], p.log());
    assert!(
        s["verified"].as_u64().unwrap() >= sent as u64,
        "verified {} of {sent}",
        s["verified"]
    );
    let keys = s["keys_used"].as_array().unwrap().len();
    if rotates {
        assert!(keys >= 2, "keys used: {keys}; stats {s}\n{}", p.log());
    }
    assert!(es.count("arkime_sessions3-*", r#"{"term":{"node":"toronto01"}}"#) > 0);
    assert!(es.count("arkime_fields", r#"{"match_all":{}}"#) > 0);
}

#[test]
fn sigv4_static_keys_sign_every_request() {
    let es = Osmem::start();
    let aws = StandIn::start(&es, REGION, "es", &[]);
    let p = Signed::start(
        &ini(
            &aws.addr("verifier"),
            &format!("esProxySigV4AccessKeyId={STATIC_ID}\nesProxySigV4SecretAccessKey={STATIC_SECRET}\nelasticsearchBasicAuth=elastic:changeme\n"),
        ),
        &[],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, false);
}

#[test]
fn sigv4_environment_keys_from_the_default_chain() {
    let es = Osmem::start();
    let aws = StandIn::start(&es, REGION, "es", &[]);
    let p = Signed::start(
        &ini(&aws.addr("verifier"), ""),
        &[
            ("AWS_ACCESS_KEY_ID", STATIC_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", STATIC_SECRET.into()),
        ],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, false);
}

#[test]
fn sigv4_web_identity_keys_rotate_through_sts() {
    let es = Osmem::start();
    let aws = StandIn::start(
        &es,
        REGION,
        "es",
        &["--web-identity-token".into(), "eks-token-1".into()],
    );
    let token = temp_file("web-identity-token", "eks-token-1");
    let p = Signed::start(
        &ini(&aws.addr("verifier"), ""),
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
            (
                "AWS_ROLE_ARN",
                "arn:aws:iam::123456789012:role/esproxy".into(),
            ),
            ("AWS_ROLE_SESSION_NAME", "esproxy-test".into()),
            (
                "AWS_ENDPOINT_URL_STS",
                format!("http://{}", aws.addr("sts")),
            ),
        ],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, true);
}

#[test]
fn sigv4_container_credentials_rotate() {
    let es = Osmem::start();
    let aws = StandIn::start(
        &es,
        REGION,
        "es",
        &["--container-token".into(), "ecs-secret-token".into()],
    );
    let p = Signed::start(
        &ini(&aws.addr("verifier"), ""),
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("http://{}/v2/credentials", aws.addr("container")),
            ),
            (
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "ecs-secret-token".into(),
            ),
        ],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, true);
}

#[test]
fn sigv4_assume_role_from_the_default_chain_rotates() {
    let es = Osmem::start();
    let aws = StandIn::start(&es, REGION, "es", &[]);
    let p = Signed::start(
        &ini(
            &aws.addr("verifier"),
            "esProxySigV4RoleArn=arn:aws:iam::123456789012:role/esproxy\n",
        ),
        &[
            ("AWS_ACCESS_KEY_ID", STATIC_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", STATIC_SECRET.into()),
            (
                "AWS_ENDPOINT_URL_STS",
                format!("http://{}", aws.addr("sts")),
            ),
        ],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, true);
    assert!(aws.stats()["by_source"]["AssumeRole"].as_u64().unwrap() >= 2);
}

#[test]
fn sigv4_imds_v2_keys_rotate() {
    let es = Osmem::start();
    let aws = StandIn::start(&es, REGION, "es", &[]);
    let p = Signed::start(
        &ini(&aws.addr("verifier"), ""),
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            format!("http://{}/", aws.addr("imds")),
        )],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, true);
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate with a plain key.
fn pki() -> (String, String, String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "sigv4 test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let srv_key = KeyPair::generate().unwrap();
    let srv = CertificateParams::new(vec!["127.0.0.1".into()])
        .unwrap()
        .signed_by(&srv_key, &ca_cert, &ca_key)
        .unwrap();
    let cli_key = KeyPair::generate().unwrap();
    let mut cli = CertificateParams::new(Vec::<String>::new()).unwrap();
    cli.distinguished_name.push(DnType::CommonName, "esproxy");
    let cli = cli.signed_by(&cli_key, &ca_cert, &ca_key).unwrap();
    (
        ca_cert.pem(),
        srv.pem(),
        srv_key.serialize_pem(),
        cli.pem(),
        cli_key.serialize_pem(),
    )
}

#[test]
fn sigv4_credential_url_with_a_client_certificate_rotates() {
    let (ca, srv, srv_key, cli, cli_key) = pki();
    let ca = temp_file("ca.pem", &ca);
    let srv = temp_file("keyurl.pem", &srv);
    let srv_key = temp_file("keyurl.key", &srv_key);
    let cli = temp_file("client.pem", &cli);
    let cli_key = temp_file("client.key", &cli_key);
    let es = Osmem::start();
    let path = |p: &std::path::PathBuf| p.display().to_string();
    let aws = StandIn::start(
        &es,
        REGION,
        "es",
        &[
            "--tls-cert".into(),
            path(&srv),
            "--tls-key".into(),
            path(&srv_key),
            "--client-ca".into(),
            path(&ca),
        ],
    );
    let p = Signed::start(
        &ini(
            &aws.addr("verifier"),
            &format!(
                "esProxySigV4CredentialUrl=https://{}/keys\nesProxySigV4CredentialCert={}\nesProxySigV4CredentialKey={}\n",
                aws.addr("keyurl"),
                path(&cli),
                path(&cli_key)
            ),
        ),
        // The URL's server certificate is checked against the system roots: ours, here.
        &[("SSL_CERT_FILE", path(&ca))],
    );
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, true);
}

#[test]
fn sigv4_the_tee_signs_for_its_own_region_and_service() {
    let es = Osmem::start();
    let aws = StandIn::start(&es, REGION, "es", &[]);
    let tee_es = Osmem::start();
    let tee_aws = StandIn::start(&tee_es, "ap-south-2", "aoss", &[]);
    let text = format!(
        "{}[tee]\nelasticsearch=http://{}\nesProxySigV4=true\nesProxySigV4Region=ap-south-2\n\
         esProxySigV4Service=aoss\nesProxySigV4AccessKeyId={STATIC_ID}\n\
         esProxySigV4SecretAccessKey={STATIC_SECRET}\n",
        ini(
            &aws.addr("verifier"),
            &format!("esProxySigV4AccessKeyId={STATIC_ID}\nesProxySigV4SecretAccessKey={STATIC_SECRET}\n"),
        ),
        tee_aws.addr("verifier"),
    );
    let p = Signed::start(&text, &[]);
    let sent = capture_mix(&p);
    check(&es, &aws, &p, sent, false);
    // The mirrors finish in the background.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tee_es.count("arkime_sessions3-*", r#"{"term":{"node":"toronto01"}}"#)
        != es.count("arkime_sessions3-*", r#"{"term":{"node":"toronto01"}}"#)
    {
        assert!(Instant::now() < deadline, "tee sessions did not land");
        std::thread::sleep(Duration::from_millis(200));
    }
    let t = tee_aws.stats();
    assert_eq!(t["refused"], 0, "tee refused: {}", t["reasons"]);
    assert!(t["verified"].as_u64().unwrap() > 0);
}

#[test]
fn sigv4_a_body_over_the_hold_bound_is_refused_with_413() {
    let es = Osmem::start();
    let aws = StandIn::start(&es, REGION, "es", &[]);
    let p = Signed::start(
        &ini(
            &aws.addr("verifier"),
            &format!("esProxySigV4MaxBody=64K\nesProxySigV4AccessKeyId={STATIC_ID}\nesProxySigV4SecretAccessKey={STATIC_SECRET}\n"),
        ),
        &[],
    );
    let mut bulk = String::new();
    let mut i = 0;
    while bulk.len() < 100 << 10 {
        bulk.push_str(&crate::harness::action_line(
            "arkime_sessions3-260101",
            &format!("260101-sigv4{i:019}"),
        ));
        bulk.push('\n');
        bulk.push_str(&crate::harness::session_doc("toronto01", i));
        bulk.push('\n');
        i += 1;
    }
    let auth = basic("toronto01:secret1");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let resp = request(p.addr, "POST", "/_bulk", &headers, bulk.as_bytes());
    assert_eq!(resp.status, 413, "{}", resp.text());
    assert!(p.log().contains("esProxySigV4MaxBody"), "{}", p.log());
    // A smaller one goes through, signed.
    let small = &bulk[..bulk[..8000].rfind("\n{\"index\"").unwrap() + 1];
    let resp = request(p.addr, "POST", "/_bulk", &headers, small.as_bytes());
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(aws.stats()["refused"], 0);
}
