//! The signing keys of one cluster: a cache the request path reads without waiting, and a
//! background service that fetches them and refreshes them at 75 % of their lifetime (as
//! esProxy.js does; keys too short-lived for that, before [`EXPIRY_MARGIN`] retires them).
//! A failed refresh keeps the cached keys until they expire; it is logged and
//! counted ([`KeyStats`], exported as metrics), and retried with backoff.

use super::source::Source;
use super::SigV4Error;
use crate::config::CredentialSource;
use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use aws_credential_types::Credentials;
use log::{info, warn};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Keys this close to their expiry are no longer used to sign (a request signed now must still
/// be valid when AWS reads it).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(5);
/// How long a request waits for keys when none are usable (start-up, or every refresh failed
/// and the cached keys expired) before it is answered 502.
pub const WAIT_FOR_KEYS: Duration = Duration::from_secs(10);
/// Refresh at this fraction of the keys' lifetime.
const REFRESH_AT: f64 = 0.75;
/// Keys without an expiry (static, environment) are read again this often.
const NO_EXPIRY_RECHECK: Duration = Duration::from_secs(3600);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the key cache did, since start.
#[derive(Debug, Default)]
pub struct KeyStats {
    /// Keys fetched.
    pub refreshed: AtomicU64,
    /// Fetches that failed.
    pub refresh_failures: AtomicU64,
    /// Requests that found no usable keys and were not signed.
    pub unsigned: AtomicU64,
    /// Unix time the current keys expire (0: no expiry, or none yet).
    pub expires_unix: AtomicU64,
}

/// One cluster's cached keys.
pub struct Keys {
    cluster: &'static str,
    source: CredentialSource,
    region: String,
    current: ArcSwapOption<Credentials>,
    fresh: watch::Sender<u64>,
    /// Counters.
    pub stats: KeyStats,
}

fn usable(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|e| now + EXPIRY_MARGIN < e)
}

impl Keys {
    /// An empty cache for `cluster` (`es`, `tee`) fed from `source`.
    pub fn new(cluster: &'static str, source: CredentialSource, region: String) -> Arc<Keys> {
        Arc::new(Keys {
            cluster,
            source,
            region,
            current: ArcSwapOption::empty(),
            fresh: watch::channel(0).0,
            stats: KeyStats::default(),
        })
    }

    /// The cluster's name in logs and metrics.
    pub fn cluster(&self) -> &'static str {
        self.cluster
    }

    /// Usable keys: the cached ones, else waits up to [`WAIT_FOR_KEYS`] for the refresher.
    pub async fn get(&self) -> Result<Credentials, SigV4Error> {
        let mut rx = self.fresh.subscribe();
        let deadline = tokio::time::Instant::now() + WAIT_FOR_KEYS;
        loop {
            if let Some(c) = self.current.load_full() {
                if usable(&c, SystemTime::now()) {
                    return Ok((*c).clone());
                }
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                self.stats.unsigned.fetch_add(1, Ordering::Relaxed);
                return Err(SigV4Error::NoKeys(self.cluster));
            }
        }
    }

    /// Stores new keys; returns when to refresh them.
    fn store(&self, c: Credentials) -> Duration {
        let now = SystemTime::now();
        let next = match c.expiry() {
            Some(e) => {
                let ttl = e.duration_since(now).unwrap_or_default();
                self.stats.expires_unix.store(
                    e.duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    Ordering::Relaxed,
                );
                // Short-lived keys: refresh before they stop being used, not after.
                ttl.mul_f64(REFRESH_AT)
                    .min(ttl.saturating_sub(EXPIRY_MARGIN + Duration::from_secs(1)))
                    .max(Duration::from_secs(1))
            }
            None => NO_EXPIRY_RECHECK,
        };
        self.current.store(Some(Arc::new(c)));
        self.stats.refreshed.fetch_add(1, Ordering::Relaxed);
        self.fresh.send_modify(|n| *n += 1);
        next
    }
}

/// The background service that keeps one cluster's keys fresh.
pub struct Refresher {
    keys: Arc<Keys>,
}

impl Refresher {
    /// A refresher for `keys`.
    pub fn new(keys: Arc<Keys>) -> Refresher {
        Refresher { keys }
    }

    /// One fetch; returns the wait before the next one.
    async fn once(&self, src: &Source, backoff: &mut Duration) -> Duration {
        let k = &self.keys;
        match src.fetch().await {
            Ok(c) => {
                let first = k.stats.refreshed.load(Ordering::Relaxed) == 0;
                let next = k.store(c);
                let msg = format!(
                    "sigv4 {}: keys from {} (refresh in {} s)",
                    k.cluster,
                    k.source.label(),
                    next.as_secs()
                );
                if first {
                    info!("{msg}");
                } else {
                    log::debug!("{msg}");
                }
                *backoff = FIRST_BACKOFF;
                next
            }
            Err(e) => {
                k.stats.refresh_failures.fetch_add(1, Ordering::Relaxed);
                let left = k
                    .current
                    .load_full()
                    .and_then(|c| c.expiry())
                    .map(|e| e.duration_since(SystemTime::now()).unwrap_or_default());
                warn!(
                    "sigv4 {}: fetching keys from {} failed ({}); {}",
                    k.cluster,
                    k.source.label(),
                    e,
                    match left {
                        Some(l) if !l.is_zero() =>
                            format!("keeping the cached keys, which expire in {} s", l.as_secs()),
                        _ if k.current.load().is_some() && left.is_none() => {
                            "keeping the cached keys (no expiry)".to_string()
                        }
                        _ => "requests to this cluster fail until keys arrive".to_string(),
                    }
                );
                let wait = *backoff;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
                wait
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Refresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let k = &self.keys;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let wait = match Source::new(&k.source, &k.region).await {
                Ok(src) => loop {
                    let wait = self.once(&src, &mut backoff).await;
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                },
                Err(e) => {
                    k.stats.refresh_failures.fetch_add(1, Ordering::Relaxed);
                    warn!("sigv4 {}: {} source: {e}", k.cluster, k.source.label());
                    let w = backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    w
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Arc<Keys> {
        Keys::new("es", CredentialSource::DefaultChain, "us-east-1".into())
    }

    fn creds(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new("AKID", "SECRET", None, expiry, "test")
    }

    #[test]
    fn refresh_is_scheduled_at_three_quarters_of_the_lifetime() {
        let k = keys();
        let next = k.store(creds(Some(SystemTime::now() + Duration::from_secs(400))));
        assert!((295..=300).contains(&next.as_secs()), "{next:?}");
        // Short-lived keys are refreshed before the margin makes them unusable.
        let next = k.store(creds(Some(SystemTime::now() + Duration::from_secs(12))));
        assert!((5..=6).contains(&next.as_secs()), "{next:?}");
        assert_eq!(k.store(creds(None)), NO_EXPIRY_RECHECK);
    }

    #[tokio::test]
    async fn keys_about_to_expire_are_not_used() {
        let k = keys();
        k.store(creds(Some(SystemTime::now() + Duration::from_secs(2))));
        tokio::time::pause();
        let e = k.get().await.unwrap_err();
        assert!(matches!(e, SigV4Error::NoKeys("es")));
        assert_eq!(k.stats.unsigned.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_the_cached_keys_counts_and_backs_off() {
        use aws_credential_types::provider::error::CredentialsError;
        use aws_credential_types::provider::SharedCredentialsProvider;
        let k = keys();
        k.store(creds(Some(SystemTime::now() + Duration::from_secs(600))));
        let failing = SharedCredentialsProvider::new(
            aws_credential_types::credential_fn::provide_credentials_fn(|| async {
                Err(CredentialsError::not_loaded("STS is down"))
            }),
        );
        let r = Refresher::new(k.clone());
        let mut backoff = FIRST_BACKOFF;
        let wait = r.once(&Source::Aws(failing), &mut backoff).await;
        assert_eq!(wait, FIRST_BACKOFF);
        assert_eq!(backoff, FIRST_BACKOFF * 2);
        assert_eq!(k.stats.refresh_failures.load(Ordering::Relaxed), 1);
        assert_eq!(k.get().await.unwrap().access_key_id(), "AKID");
    }

    #[tokio::test]
    async fn a_waiting_request_gets_the_keys_as_soon_as_they_arrive() {
        let k = keys();
        let k2 = k.clone();
        let waiter = tokio::spawn(async move { k2.get().await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        k.store(creds(Some(SystemTime::now() + Duration::from_secs(600))));
        let c = waiter.await.unwrap().unwrap();
        assert_eq!(c.access_key_id(), "AKID");
    }
}
