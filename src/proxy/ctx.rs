//! The per-request state the hooks share ([`Ctx`]), the settings snapshot it starts with, and
//! the count of requests in flight, which the proxy owns: a request counts from `new_ctx` until
//! its `Ctx` is dropped; the SIGTERM drain (`reload`) and `metrics` only read it.

use crate::allowlist;
use crate::auth::Sensors;
use crate::body_flow::BodyFlow;
use crate::client_ip::XffConfig;
use crate::connection::Ticket;
use crate::metrics;
use crate::policy::Policy;
use crate::reject::Reject;
use crate::upstream::Member;
use bytes::Bytes;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The part of the configuration every request reads, swapped atomically on reload: a request
/// keeps the snapshot it started with.
pub struct Snapshot {
    /// Prefix, strictness, limits.
    pub policy: Policy,
    /// Known sensors.
    pub sensors: Sensors,
    /// Forwarding-header trust.
    pub xff: XffConfig,
    /// Log every request, not only denials.
    pub access_log: bool,
}

/// Requests being handled now: a request counts from `new_ctx` until its `Ctx` is dropped. The
/// SIGTERM drain waits for this to reach zero; metrics show it.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Requests being handled now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// Counts one request in flight for as long as it lives.
struct InFlight(());

impl InFlight {
    fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Per-request state.
pub struct Ctx {
    _in_flight: InFlight,
    /// The settings this request started with.
    pub(super) snap: Arc<Snapshot>,
    /// When the request arrived (the replay budget counts from here).
    pub(super) started: Instant,
    /// The client's address (`client_ip`), once resolved.
    pub(super) client: Option<IpAddr>,
    /// The sensor's name (`auth`), once authenticated.
    pub(super) sensor: Option<Arc<str>>,
    /// The admitted route (`allowlist`).
    pub(super) route: Option<allowlist::Route>,
    /// The request carries a body (as its head declares).
    pub(super) has_body: bool,
    /// The refusal that ended this request, if any (logged once, answered by `fail_to_proxy`).
    pub(super) reject: Option<Reject>,
    /// Peer used by the current attempt and peers that failed to connect.
    pub(super) peer: Option<Arc<Member>>,
    pub(super) failed: Vec<u64>,
    /// In-flight count and upstream latency clock (metrics only).
    pub(super) obs: metrics::RequestObs,
    /// The body on its way upstream: bulk validation, replay hold, tee mirror.
    pub(super) body: BodyFlow,
    /// The connection gate's ticket (src/connection/): told when the request authenticated.
    pub(super) conn: Option<Ticket>,
    /// A small body read whole for inspection, kept as received when the request is signed.
    pub(super) small_body: Vec<Bytes>,
    /// The peer of an attempt went silent (esProxyUpstreamTimeout).
    pub(super) timed_out: bool,
    /// When the sensor last sent body bytes: a replay that reads the rest of a body stops
    /// waiting `esProxyBodyIdleTimeout` after it, as Pingora's own body read does.
    pub(super) last_body: Instant,
}

impl Ctx {
    /// A request's state when it arrives: it counts as in flight from now on, keeps the
    /// settings of `snap`, and its clock (the replay budget's) starts.
    pub(super) fn new(snap: Arc<Snapshot>) -> Ctx {
        let now = Instant::now();
        Ctx {
            _in_flight: InFlight::enter(),
            snap,
            started: now,
            client: None,
            sensor: None,
            route: None,
            has_body: false,
            reject: None,
            peer: None,
            failed: Vec::new(),
            obs: metrics::RequestObs::start(),
            body: BodyFlow::default(),
            conn: None,
            small_body: Vec::new(),
            timed_out: false,
            last_body: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_counts_in_flight_until_its_guard_drops() {
        // Other tests may run concurrently: compare with the value seen inside.
        let g = InFlight::enter();
        assert!(in_flight() >= 1);
        drop(g);
    }
}
