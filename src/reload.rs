//! The process lifecycle after start-up: when the per-request settings change (SIGHUP re-reads
//! the config file and swaps the [`Snapshot`] atomically, or keeps the old one if the new file is
//! bad) and when the process exits after SIGTERM/SIGQUIT (as soon as in-flight requests are done,
//! at the latest when the grace period ends). Never looks at a request.
//!
//! What a reload applies: sensors, passwords, IP lists, `[xff]`, `esProxyStrict`, the prefix,
//! the size limits and `esProxyAccessLog`. What it cannot: the listener (`esProxyHost`,
//! `esProxyPort`, `certFile`, `keyFile`, PROXY protocol), the Elasticsearch and tee clusters,
//! `esProxyThreads`, `esProxyGracePeriod` and the metrics listener; a change there is logged and
//! shown as `esproxy_config_restart_required 1` until a restart (or a Pingora upgrade).

use crate::config::{Config, Listen};
use crate::metrics;
use crate::proxy::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use log::{error, info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// The per-request settings of `config`.
pub fn snapshot(config: &Config) -> Snapshot {
    Snapshot {
        policy: config.policy.clone(),
        sensors: config.sensors.clone(),
        xff: config.xff.clone(),
        access_log: config.access_log,
    }
}

/// The settings of `new` that differ from the running `old` and need a restart, by config key.
pub fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.listen != new.listen {
        out.push(
            "esProxyHost/esProxyPort/certFile/keyFile/esProxyClientCA/esProxyClientCertRequired/\
             esProxyProxyProtocol",
        );
    }
    if old.upstream != new.upstream {
        out.push("elasticsearch (with its credentials, TLS and health-check keys)");
    }
    if old.tee != new.tee {
        out.push("[tee]");
    }
    if old.threads != new.threads {
        out.push("esProxyThreads");
    }
    if old.grace_period != new.grace_period {
        out.push("esProxyGracePeriod");
    }
    if old.metrics != new.metrics {
        out.push("esProxyMetricsHost/esProxyMetricsPort");
    }
    out
}

/// Where a process started with `-u` receives the listening sockets of the running one
/// (Pingora's graceful upgrade). One path per listener address, so several esproxy instances on
/// one host never hand sockets to each other (Pingora's default is one fixed path).
pub fn upgrade_socket(listen: &Listen) -> String {
    let host = listen.host.as_deref().unwrap_or("all");
    let tag: String = format!("{host}-{}", listen.port)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("/tmp/esproxy-upgrade-{tag}.sock")
}

/// Re-reads the config file on SIGHUP and swaps the per-request settings.
pub struct Reloader {
    file: PathBuf,
    node: Option<String>,
    /// The configuration the process started with (its listener and clusters stay in force).
    running: Config,
    snapshot: Arc<ArcSwap<Snapshot>>,
}

/// What a successful reload did.
#[derive(Debug, PartialEq, Eq)]
pub struct Reloaded {
    /// Sensors now configured.
    pub sensors: usize,
    /// Changed settings that wait for a restart (config keys).
    pub restart_only: Vec<&'static str>,
}

impl Reloader {
    /// A reloader for the process started with `running` (`node`: the `-n` argument as given).
    pub fn new(running: Config, node: Option<String>, snapshot: Arc<ArcSwap<Snapshot>>) -> Self {
        Reloader {
            file: running.file.clone(),
            node,
            running,
            snapshot,
        }
    }

    /// Loads and validates the file, then swaps the snapshot; on error the old one stays.
    /// Requests already running keep the snapshot they started with.
    pub fn reload(&self) -> Result<Reloaded, crate::config::ConfigError> {
        let (new, warnings) = Config::load(&self.file, self.node.as_deref())?;
        for w in &warnings {
            warn!("reload: {w}");
        }
        self.snapshot.store(Arc::new(snapshot(&new)));
        metrics::config_loaded(new.sensors.len());
        Ok(Reloaded {
            sensors: new.sensors.len(),
            restart_only: restart_only_changes(&self.running, &new),
        })
    }

    /// [`Self::reload`] plus its log lines and metrics.
    pub fn reload_and_report(&self) {
        match self.reload() {
            Ok(r) => {
                metrics::config_reload(true);
                metrics::restart_required(!r.restart_only.is_empty());
                info!(
                    "reload: {} applied ({} sensor(s))",
                    self.file.display(),
                    r.sensors
                );
                if !r.restart_only.is_empty() {
                    warn!(
                        "reload: {} changed in {}; these need a restart (SIGTERM and start, or a \
                         Pingora upgrade: start a new esproxy with -u, then SIGQUIT this one); \
                         the running values stay in force",
                        r.restart_only.join(", "),
                        self.file.display()
                    );
                }
            }
            Err(e) => {
                metrics::config_reload(false);
                error!("reload: config error, keeping the running configuration: {e}");
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                error!("reload: cannot listen for SIGHUP ({e}); live reload is off");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    info!("reload: SIGHUP received, re-reading {}", self.file.display());
                    self.reload_and_report();
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Installs the SIGHUP handler before the server starts, so a SIGHUP that arrives before the
/// [`Reloader`] runs is ignored instead of killing the process (the default action). Call once
/// from `main`, before `run_forever`.
pub fn install_sighup_guard() {
    // The handler stays installed for the life of the process once registered, whichever
    // runtime registered it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    match rt {
        Ok(rt) => {
            if let Err(e) = rt.block_on(async { signal(SignalKind::hangup()).map(drop) }) {
                warn!("cannot install the SIGHUP handler early: {e}");
            }
        }
        Err(e) => warn!("cannot install the SIGHUP handler early: {e}"),
    }
}

/// Ends the process once a graceful shutdown (SIGTERM, or SIGQUIT after handing the listeners
/// to a new process) has no request left in flight, or when the grace period is over.
///
/// Pingora alone would sleep the whole grace period whatever is in flight, then cut what is
/// left; this makes an idle proxy exit at once and a busy one as soon as it is done.
pub struct Drain {
    grace: Duration,
    /// Other work to wait for besides requests (e.g. tee mirrors still streaming).
    also: Vec<Box<dyn Fn() -> usize + Send + Sync>>,
}

/// How often the drain looks at the in-flight count, and how long it must stay at zero.
const DRAIN_POLL: Duration = Duration::from_millis(50);
const DRAIN_QUIET: Duration = Duration::from_millis(200);

impl Drain {
    /// A drain bounded by `grace` (`esProxyGracePeriod`).
    pub fn new(grace: Duration) -> Drain {
        Drain {
            grace,
            also: Vec::new(),
        }
    }

    /// Also waits until `busy` returns 0 (within the same grace period).
    pub fn also_wait_for(mut self, busy: impl Fn() -> usize + Send + Sync + 'static) -> Drain {
        self.also.push(Box::new(busy));
        self
    }

    fn busy(&self) -> i64 {
        crate::proxy::in_flight() as i64 + self.also.iter().map(|f| f() as i64).sum::<i64>()
    }
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                return;
            }
        }
        let started = Instant::now();
        info!(
            "shutdown: listeners closed; waiting up to {}s for {} request(s) and mirror(s) in flight",
            self.grace.as_secs(),
            self.busy()
        );
        let mut quiet_since: Option<Instant> = None;
        loop {
            let n = self.busy();
            if n <= 0 {
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= DRAIN_QUIET {
                    info!(
                        "shutdown: nothing in flight after {:.1}s, exiting",
                        started.elapsed().as_secs_f64()
                    );
                    std::process::exit(0);
                }
            } else {
                quiet_since = None;
            }
            if started.elapsed() >= self.grace {
                warn!(
                    "shutdown: grace period of {}s over, exiting with {n} request(s)/mirror(s) \
                     in flight",
                    self.grace.as_secs()
                );
                std::process::exit(0);
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &std::path::Path, text: &str) -> PathBuf {
        let p = dir.join("esproxy.ini");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn ini(pass: &str, port: u16) -> String {
        format!(
            "[default]\nelasticsearch=http://127.0.0.1:9200\nesProxyPort={port}\n\
             [esproxy-sensors]\ntoronto01=pass:{pass};ip:192.0.2.1\n"
        )
    }

    fn setup(name: &str) -> (PathBuf, Reloader, Arc<ArcSwap<Snapshot>>) {
        let dir =
            std::env::temp_dir().join(format!("esproxy-reload-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = write(&dir, &ini("old", 7200));
        let (cfg, _) = Config::load(&file, Some("default")).unwrap();
        let snap = Arc::new(ArcSwap::from_pointee(snapshot(&cfg)));
        let r = Reloader::new(cfg, Some("default".into()), snap.clone());
        (file, r, snap)
    }

    fn password_ok(snap: &ArcSwap<Snapshot>, pass: &str) -> bool {
        use base64::Engine;
        let cred = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("toronto01:{pass}"))
        );
        crate::auth::authenticate(
            &snap.load().sensors,
            &[cred.as_bytes()],
            "192.0.2.1".parse().unwrap(),
        )
        .is_ok()
    }

    #[test]
    fn reload_swaps_a_changed_password() {
        let (file, r, snap) = setup("password");
        assert!(password_ok(&snap, "old"));
        let before = snap.load_full();
        std::fs::write(&file, ini("new", 7200)).unwrap();
        let done = r.reload().unwrap();
        assert_eq!(done.sensors, 1);
        assert!(done.restart_only.is_empty());
        assert!(password_ok(&snap, "new") && !password_ok(&snap, "old"));
        // A request holding the old snapshot keeps it.
        assert!(before.sensors.get("toronto01").is_some());
    }

    #[test]
    fn bad_config_keeps_the_running_snapshot() {
        let (file, r, snap) = setup("bad");
        std::fs::write(&file, "[default]\nesProxyPort=notaport\n").unwrap();
        assert!(r.reload().is_err());
        assert!(password_ok(&snap, "old"));
    }

    #[test]
    fn upgrade_socket_is_one_path_per_listener() {
        let l = |host: Option<&str>, port| Listen {
            host: host.map(str::to_string),
            port,
            tls: None,
            proxy_protocol: false,
        };
        assert_eq!(
            upgrade_socket(&l(None, 7200)),
            "/tmp/esproxy-upgrade-all-7200.sock"
        );
        assert_eq!(
            upgrade_socket(&l(Some("::1"), 7200)),
            "/tmp/esproxy-upgrade-__1-7200.sock"
        );
        assert_ne!(
            upgrade_socket(&l(Some("10.0.0.5"), 7200)),
            upgrade_socket(&l(Some("10.0.0.6"), 7200))
        );
    }

    #[test]
    fn listener_change_is_reported_as_restart_only() {
        let (file, r, _snap) = setup("listener");
        std::fs::write(&file, ini("old", 7201)).unwrap();
        let done = r.reload().unwrap();
        assert_eq!(done.restart_only.len(), 1);
        assert!(done.restart_only[0].contains("esProxyPort"));
    }
}
