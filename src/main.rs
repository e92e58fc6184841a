//! `esproxy -c FILE [-n NODE] [--check-config]`: load the Arkime-style config, build the Pingora
//! server (sensor listener, ES pool health checks) and run. No policy lives here.

use arc_swap::ArcSwap;
use clap::Parser;
use esproxy::config::Config;
use esproxy::proxy::{EsProxy, Snapshot};
use esproxy::upstream::{HealthCheck, Pool};
use log::{error, info, warn};
use pingora::listeners::TcpSocketOptions;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;
use pingora::services::background::background_service;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Command line, in Arkime's style (`-c`, `-n`).
#[derive(Parser, Debug)]
#[command(
    name = "esproxy",
    version,
    about = "Security proxy between Arkime sensors and Elasticsearch"
)]
struct Cli {
    /// The Arkime-style INI file (esproxy.ini or the whole Arkime config.ini).
    #[arg(
        short = 'c',
        long = "config",
        default_value = "/etc/esproxy/esproxy.ini"
    )]
    config: PathBuf,
    /// Node name: the INI section consulted before [default] (Arkime's -n). Defaults to the host name.
    #[arg(short = 'n', long = "node")]
    node: Option<String>,
    /// Validate the config and exit (0 = valid, 2 = invalid, with the error).
    #[arg(long = "check-config")]
    check_config: bool,
    /// Take over the listening sockets of a running esproxy (Pingora graceful upgrade).
    #[arg(short = 'u', long = "upgrade")]
    upgrade: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,pingora_core=warn,pingora_proxy=warn"),
    )
    .init();
    let cli = Cli::parse();

    let (config, warnings) = match Config::load(&cli.config, cli.node.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("esproxy: config error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &warnings {
        warn!("{w}");
    }
    // Building the pool loads certificates and resolves hosts: part of validating the config.
    let pool = match Pool::new(&config.upstream) {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("esproxy: config error: {}: {e}", config.file.display());
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        println!(
            "{}: OK (node section [{}], {} sensor(s), {} upstream(s))",
            config.file.display(),
            config.node,
            config.sensors.len(),
            pool.len()
        );
        return ExitCode::SUCCESS;
    }
    run(cli, config, pool)
}

fn run(cli: Cli, config: Config, pool: Arc<Pool>) -> ExitCode {
    let opt = Opt {
        upgrade: cli.upgrade,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let conf = ServerConf {
        threads: config.threads.max(1),
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.grace_period.as_secs().clamp(1, 10)),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let snapshot = Arc::new(ArcSwap::from_pointee(Snapshot {
        policy: config.policy.clone(),
        sensors: config.sensors.clone(),
        xff: config.xff.clone(),
        access_log: config.access_log,
    }));
    let app = EsProxy {
        snapshot,
        pool: pool.clone(),
    };
    let mut svc =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, app, "esproxy");
    let addr = config.listen.bind_addr();
    match &config.listen.tls {
        Some(tls) => {
            let cert = tls.cert.to_string_lossy();
            let key = tls.key.to_string_lossy();
            match pingora::listeners::tls::TlsSettings::intermediate(&cert, &key) {
                Ok(settings) => svc.add_tls_with_settings(&addr, Some(sock_opts(&addr)), settings),
                Err(e) => {
                    eprintln!("esproxy: config error: certFile/keyFile ({cert}, {key}): {e}");
                    return ExitCode::from(2);
                }
            }
        }
        None => svc.add_tcp_with_settings(&addr, sock_opts(&addr)),
    }
    server.add_service(svc);
    server.add_service(background_service(
        "es health check",
        HealthCheck::new(pool),
    ));
    info!(
        "esproxy listening on {addr} ({}), node section [{}], {} sensor(s), strict={}",
        if config.listen.tls.is_some() {
            "https"
        } else {
            "http"
        },
        config.node,
        config.sensors.len(),
        config.policy.strict
    );
    if config.sensors.is_empty() {
        error!("no [esproxy-sensors] configured: every request will be refused");
    }
    server.run_forever()
}

fn sock_opts(addr: &str) -> TcpSocketOptions {
    let mut o = TcpSocketOptions::default();
    // Dual stack when listening on an IPv6 address such as [::] (IPv4 clients then appear as
    // ::ffff:a.b.c.d and are canonicalised); the option does not exist on IPv4 sockets.
    if addr.starts_with('[') {
        o.ipv6_only = Some(false);
    }
    o
}
