//! `esproxy -c FILE [-n NODE] [--check-config]`: load the Arkime-style config, build the Pingora
//! server (sensor listener, ES pool health checks) and run. No policy lives here.

use arc_swap::ArcSwap;
use clap::Parser;
use esproxy::config::Config;
use esproxy::connection::Gate;
use esproxy::metrics;
use esproxy::proxy::EsProxy;
use esproxy::reload::{self, Drain, Reloader};
use esproxy::replay::Replayer;
use esproxy::tee::Tee;
use esproxy::upstream::{HealthCheck, Pool, Resolve};
use log::{error, info, warn};
use pingora::listeners::{ListenerConfig, TcpSocketOptions};
use pingora::protocols::l4::stream::L4BufferSettings;
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
    // Building the pool loads certificates and resolves hosts: part of validating the config
    // (a name that does not resolve yet is a warning: it is resolved again in the background).
    let pool = match Pool::new(&config.upstream, "es") {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("esproxy: config error: {}: {e}", config.file.display());
            return ExitCode::from(2);
        }
    };
    // The tee's pool is validated the same way (its own hosts and certificates).
    let tee = match Tee::from_config(config.tee.as_ref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "esproxy: config error: {}: [tee] {e}",
                config.file.display()
            );
            return ExitCode::from(2);
        }
    };
    for p in std::iter::once(pool.clone()).chain(tee.as_ref().map(|t| t.pool())) {
        for w in p.warnings() {
            warn!("{}: {w}", config.file.display());
        }
    }
    // Listener certificate and key are checked here, so a bad pair is a config error (exit 2).
    let tls_settings = match config
        .listen
        .tls
        .as_ref()
        .map(esproxy::tls::server_settings)
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
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
            config.upstream.urls.len()
        );
        return ExitCode::SUCCESS;
    }
    run(cli, config, pool, tee, tls_settings)
}

fn run(
    cli: Cli,
    config: Config,
    pool: Arc<Pool>,
    tee: Option<Arc<Tee>>,
    tls_settings: Option<pingora::listeners::tls::TlsSettings>,
) -> ExitCode {
    // From here on a SIGHUP means "reload", never the default "terminate".
    reload::install_sighup_guard();
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
        upgrade_sock: reload::upgrade_socket(&config.listen),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    // The per-request settings, swapped as a whole on SIGHUP (src/reload.rs).
    let snapshot = Arc::new(ArcSwap::from_pointee(reload::snapshot(&config)));
    metrics::watch_snapshot(snapshot.clone());
    metrics::config_loaded(config.sensors.len());
    let app = EsProxy {
        snapshot: snapshot.clone(),
        pool: pool.clone(),
        tee: tee.clone(),
        replayer: Arc::new(Replayer::new(pool.clone())),
    };
    // The HTTP app behind the connection gate (caps and deadlines, src/connection/), which also
    // reads PROXY protocol headers and does the TLS handshake, both under its deadlines: the
    // Pingora listener itself is always plain TCP.
    let proxy = pingora::proxy::http_proxy(&server.configuration, app);
    let tls = tls_settings.is_some();
    let gate = Gate::new(
        proxy,
        config.connection.clone(),
        config.listen.proxy_protocol,
        tls_settings,
    );
    let accept_filter = gate.accept_filter();
    let mut svc = pingora::services::listening::Service::new("esproxy".to_string(), gate);
    // Past its per-client cap, a connection is closed in the accept loop (no task for it).
    if let Some(f) = accept_filter {
        svc.set_connection_filter(Arc::new(f));
    }
    let addr = config.listen.bind_addr();
    let listener = ListenerConfig::tcp(&addr).tcp_socket_options(sock_opts(&addr));
    // Plain HTTP reads straight into Pingora's head and body buffers: no 64 KiB read buffer per
    // connection, idle or not. TLS gets one record's worth (Pingora's default is 64 KiB).
    let read_buffer = if tls { 16 * 1024 } else { 0 };
    svc.add_listener(listener.l4_buffer(L4BufferSettings::default().read(read_buffer)));
    server.add_service(svc);
    if let Some(maddr) = config.metrics {
        server.add_service(metrics::service(maddr, pool.clone(), tee.clone()));
        info!("metrics on http://{maddr}/metrics");
    }
    // SigV4 keys: fetched and refreshed in the background (src/sigv4/keys.rs).
    for p in std::iter::once(pool.clone()).chain(tee.as_ref().map(|t| t.pool())) {
        if let Some(signer) = p.signer() {
            server.add_service(background_service("sigv4 keys", signer.refresher()));
        }
    }
    server.add_service(background_service(
        "es health check",
        HealthCheck::new(pool.clone()),
    ));
    server.add_service(background_service("es resolver", Resolve::new(pool)));
    if let Some(tee) = &tee {
        server.add_service(background_service(
            "tee health check",
            HealthCheck::new(tee.pool()),
        ));
        server.add_service(background_service("tee resolver", Resolve::new(tee.pool())));
    }
    server.add_service(background_service(
        "config reload",
        Reloader::new(config.clone(), cli.node.clone(), snapshot),
    ));
    // Exit as soon as a graceful shutdown has nothing left in flight (Pingora alone would sleep
    // the whole grace period).
    let mut drain = Drain::new(config.grace_period);
    if let Some(tee) = tee.clone() {
        // Mirrors still streaming to the tee finish too (a cut one is lost to the tee).
        drain = drain.also_wait_for(move || tee.in_flight());
    }
    server.add_service(background_service("shutdown drain", drain));
    info!(
        "esproxy listening on {addr} ({}), node section [{}], {} sensor(s), strict={}",
        match (&config.listen.tls, config.listen.proxy_protocol) {
            (None, false) => "http",
            (None, true) => "http after a PROXY header",
            (Some(t), pp) => match (t.client_ca.is_some(), t.client_cert_required, pp) {
                (false, _, false) => "https",
                (false, _, true) => "https after a PROXY header",
                (true, false, false) => "https, client certificates optional",
                (true, true, false) => "https, client certificates required",
                (true, false, true) => "https after a PROXY header, client certificates optional",
                (true, true, true) => "https after a PROXY header, client certificates required",
            },
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
