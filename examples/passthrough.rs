//! `passthrough --listen ADDR --upstream ADDR [--threads N]`: the floor esproxy is measured
//! against (issue #7). A bare Pingora 0.9.1 HTTP proxy with the same server and peer settings
//! as esproxy (`src/main.rs`, `src/upstream.rs`) and no checks at all: no auth, no allowlist, no
//! header rewrite, no body filter. Whatever this reaches is the framework's own data path;
//! esproxy's validation must be nearly free on top of it.
//!
//! Used by `loadtest/compare`; not part of the product.

use async_trait::async_trait;
use clap::Parser;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::proxy::{ProxyHttp, Session};
use pingora::server::configuration::{Opt, ServerConf};
use pingora::upstreams::peer::HttpPeer;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Command line.
#[derive(Parser, Debug)]
#[command(
    name = "passthrough",
    about = "Bare Pingora pass-through (esproxy's floor)"
)]
struct Cli {
    /// Listen address, e.g. 127.0.0.1:7300 or [::]:7300.
    #[arg(long)]
    listen: String,
    /// Upstream HTTP address, e.g. 127.0.0.1:9200.
    #[arg(long)]
    upstream: String,
    /// Worker threads (esproxy's default: the number of cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Pingora's `work_stealing` (esproxy: on, the default): `--work-stealing false` runs one
    /// single-threaded runtime per thread instead of a shared multi-threaded one.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    work_stealing: bool,
}

/// Forwards every request unchanged to one plain-HTTP upstream.
struct Passthrough {
    upstream: SocketAddr,
    host: String,
}

#[async_trait]
impl ProxyHttp for Passthrough {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // The same peer options esproxy's pool uses (src/upstream.rs), so the connection reuse
        // and timeouts match.
        let mut peer = HttpPeer::new(self.upstream, false, self.host.clone());
        peer.options.connection_timeout = Some(Duration::from_secs(5));
        peer.options.total_connection_timeout = Some(Duration::from_secs(10));
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }
}

fn main() {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("warn,pingora_core=warn,pingora_proxy=warn"),
    )
    .init();
    let cli = Cli::parse();
    let upstream = match cli.upstream.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        Ok(None) | Err(_) => {
            eprintln!(
                "passthrough: --upstream {}: not a reachable address",
                cli.upstream
            );
            std::process::exit(2);
        }
    };
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // As src/main.rs: threads per service, grace period 10 s (esproxy's default).
    let conf = ServerConf {
        threads: threads.max(1),
        grace_period_seconds: Some(10),
        graceful_shutdown_timeout_seconds: Some(10),
        work_stealing: cli.work_stealing,
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade: false,
        daemon: false,
        nocapture: false,
        test: false,
        conf: None,
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    let app = Passthrough {
        upstream,
        host: cli.upstream.clone(),
    };
    let mut svc =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, app, "passthrough");
    let mut opts = TcpSocketOptions::default();
    if cli.listen.starts_with('[') {
        opts.ipv6_only = Some(false);
    }
    svc.add_tcp_with_settings(&cli.listen, opts);
    server.add_service(svc);
    eprintln!(
        "passthrough listening on {} -> {} ({} thread(s))",
        cli.listen, upstream, threads
    );
    server.run_forever()
}
