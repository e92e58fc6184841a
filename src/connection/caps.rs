//! The connection caps: how many connections may be open at all, and how many of them may be
//! unauthenticated, per client address and overall. Pure bookkeeping over counters (no I/O):
//! [`Caps::open`] and [`Caps::unauthenticated`] either hand out a guard that gives the slot back
//! when dropped, or say which cap refused.
//!
//! Unauthenticated connections can never starve authenticated sensors: when the unauthenticated
//! pool (or the overall cap) is full, the *oldest* unauthenticated connection still waiting for
//! its request head is evicted to make room, so a new connection that sends its head promptly (a
//! sensor does, within milliseconds) always gets its turn, however many idle ones an attacker
//! opens. Authenticated connections are never evicted.

use crate::client_ip::ProxySet;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::Notify;

/// Which cap refused a connection (also the metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `esProxyMaxConnections` reached and nothing could be evicted.
    MaxConnections,
    /// `esProxyMaxUnauthenticatedPerClient` reached for this client address.
    PerClient,
    /// `esProxyMaxUnauthenticated` reached and nothing could be evicted.
    Unauthenticated,
}

impl Refusal {
    /// Metric label and log word.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "max_connections",
            Refusal::PerClient => "per_client",
            Refusal::Unauthenticated => "unauthenticated",
        }
    }
}

/// The configured caps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// All open connections (`esProxyMaxConnections`).
    pub max_connections: usize,
    /// Unauthenticated connections overall (`esProxyMaxUnauthenticated`).
    pub max_unauthenticated: usize,
    /// Unauthenticated connections from one client address
    /// (`esProxyMaxUnauthenticatedPerClient`).
    pub per_client: usize,
    /// Client addresses the per-client cap does not apply to (`esProxyConnLimitExempt`: a
    /// balancer that relays many clients from its own address).
    pub exempt: ProxySet,
}

/// One unauthenticated connection as the eviction queue sees it.
#[derive(Debug, Default)]
pub struct Slot {
    /// Still waiting for (or reading) its request head: the only state it may be evicted in.
    waiting: AtomicBool,
    /// Authenticated or closed: never to be evicted.
    done: AtomicBool,
    evicted: AtomicBool,
    wake: Notify,
}

impl Slot {
    /// Marks whether the connection is waiting for a request head (evictable) or not.
    pub fn set_waiting(&self, waiting: bool) {
        self.waiting.store(waiting, Ordering::Release);
    }

    /// Whether this connection was evicted to make room for a newer one.
    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Resolves once the connection is evicted.
    pub async fn evicted(&self) {
        loop {
            let notified = self.wake.notified();
            if self.is_evicted() {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Default)]
struct Unauth {
    per_ip: HashMap<IpAddr, usize>,
    count: usize,
    /// Oldest first; entries of connections that authenticated or closed are dropped lazily.
    queue: VecDeque<Weak<Slot>>,
}

/// The shared counters behind every cap.
pub struct Caps {
    limits: Limits,
    open: AtomicUsize,
    unauth: Mutex<Unauth>,
}

/// An open connection's slot under `esProxyMaxConnections`; given back on drop.
pub struct Open(Arc<Caps>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An unauthenticated connection's slot (per client and overall); given back on drop, which
/// happens when the connection authenticates or closes.
pub struct Unauthenticated {
    caps: Arc<Caps>,
    ip: IpAddr,
    slot: Arc<Slot>,
}

impl Unauthenticated {
    /// The connection's eviction state.
    pub fn slot(&self) -> &Arc<Slot> {
        &self.slot
    }
}

impl Drop for Unauthenticated {
    fn drop(&mut self) {
        self.slot.done.store(true, Ordering::Release);
        let mut u = self.caps.unauth.lock().unwrap_or_else(|e| e.into_inner());
        u.count = u.count.saturating_sub(1);
        if let Some(n) = u.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                u.per_ip.remove(&self.ip);
            }
        }
        // Keep the queue from filling with entries of connections long gone.
        if u.queue.len() > 2 * u.count + 64 {
            u.queue.retain(|w| w.strong_count() > 0);
        }
    }
}

/// How many queue entries one admission looks at for something to evict (bounds the work a
/// flood can make us do per connection).
const EVICT_SCAN: usize = 64;

impl Caps {
    /// Counters for these limits.
    pub fn new(limits: Limits) -> Arc<Caps> {
        Arc::new(Caps {
            limits,
            open: AtomicUsize::new(0),
            unauth: Mutex::new(Unauth::default()),
        })
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Open connections right now.
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Unauthenticated connections right now.
    pub fn unauthenticated_count(&self) -> usize {
        self.unauth.lock().unwrap_or_else(|e| e.into_inner()).count
    }

    /// Whether a connection from `ip` would be refused by the per-client cap right now (read
    /// only: the accept loop's early check; [`Caps::unauthenticated`] still decides).
    pub fn client_at_cap(&self, ip: IpAddr) -> bool {
        if self.limits.exempt.contains(ip) {
            return false;
        }
        let u = self.unauth.lock().unwrap_or_else(|e| e.into_inner());
        u.per_ip.get(&ip).copied().unwrap_or(0) >= self.limits.per_client
    }

    /// A new connection: counted under `esProxyMaxConnections`. At the cap, the oldest
    /// unauthenticated connection waiting for its head is evicted instead of refusing (its slot
    /// comes back when its task ends, so the count may pass the cap by the evictions in flight).
    pub fn open(self: &Arc<Self>) -> Result<Open, Refusal> {
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.limits.max_connections {
            let mut u = self.unauth.lock().unwrap_or_else(|e| e.into_inner());
            if !evict_oldest(&mut u) {
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::MaxConnections);
            }
        }
        Ok(Open(self.clone()))
    }

    /// The connection from `ip` has not authenticated yet: counted under the per-client cap
    /// (unless `ip` is exempt) and the unauthenticated pool, evicting the oldest waiting
    /// connection when the pool is full.
    pub fn unauthenticated(self: &Arc<Self>, ip: IpAddr) -> Result<Unauthenticated, Refusal> {
        let exempt = self.limits.exempt.contains(ip);
        let mut u = self.unauth.lock().unwrap_or_else(|e| e.into_inner());
        let from_ip = u.per_ip.get(&ip).copied().unwrap_or(0);
        if !exempt && from_ip >= self.limits.per_client {
            return Err(Refusal::PerClient);
        }
        if u.count >= self.limits.max_unauthenticated && !evict_oldest(&mut u) {
            return Err(Refusal::Unauthenticated);
        }
        let slot = Arc::new(Slot::default());
        slot.set_waiting(true);
        *u.per_ip.entry(ip).or_insert(0) += 1;
        u.count += 1;
        u.queue.push_back(Arc::downgrade(&slot));
        drop(u);
        Ok(Unauthenticated {
            caps: self.clone(),
            ip,
            slot,
        })
    }
}

/// Evicts the oldest connection still waiting for its head; false if none was found within
/// [`EVICT_SCAN`] entries. Entries looked at and found gone or evicted are dropped; live ones not
/// waiting (reading their first request) go back to the end.
fn evict_oldest(u: &mut Unauth) -> bool {
    for _ in 0..EVICT_SCAN.min(u.queue.len()) {
        let Some(weak) = u.queue.pop_front() else {
            break;
        };
        let Some(slot) = weak.upgrade() else {
            continue;
        };
        if slot.is_evicted() || slot.done.load(Ordering::Acquire) {
            continue;
        }
        if slot.waiting.load(Ordering::Acquire) {
            slot.evicted.store(true, Ordering::Release);
            slot.wake.notify_waiters();
            return true;
        }
        u.queue.push_back(weak);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(max: usize, unauth: usize, per_client: usize, exempt: &str) -> Arc<Caps> {
        Caps::new(Limits {
            max_connections: max,
            max_unauthenticated: unauth,
            per_client,
            exempt: ProxySet::parse(exempt).unwrap(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_client_cap_refuses_one_address_but_not_another() {
        let c = caps(100, 100, 2, "");
        let _a = c.unauthenticated(ip("192.0.2.1")).unwrap();
        let _b = c.unauthenticated(ip("192.0.2.1")).unwrap();
        assert_eq!(
            c.unauthenticated(ip("192.0.2.1")).err(),
            Some(Refusal::PerClient)
        );
        assert!(c.unauthenticated(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn authenticating_gives_the_per_client_slot_back() {
        let c = caps(100, 100, 1, "");
        let a = c.unauthenticated(ip("192.0.2.1")).unwrap();
        assert!(c.unauthenticated(ip("192.0.2.1")).is_err());
        drop(a);
        assert!(c.unauthenticated(ip("192.0.2.1")).is_ok());
        assert_eq!(c.unauthenticated_count(), 0);
    }

    #[test]
    fn the_early_check_sees_a_client_at_its_cap_and_no_other() {
        let c = caps(100, 100, 2, "198.51.100.0/24");
        let _a = c.unauthenticated(ip("192.0.2.1")).unwrap();
        assert!(!c.client_at_cap(ip("192.0.2.1")));
        let _b = c.unauthenticated(ip("192.0.2.1")).unwrap();
        assert!(c.client_at_cap(ip("192.0.2.1")));
        assert!(!c.client_at_cap(ip("192.0.2.2")));
        let _held: Vec<_> = (0..3)
            .map(|_| c.unauthenticated(ip("198.51.100.7")).unwrap())
            .collect();
        assert!(!c.client_at_cap(ip("198.51.100.7")), "exempt");
    }

    #[test]
    fn exempt_balancer_address_is_not_capped_per_client() {
        let c = caps(100, 100, 1, "198.51.100.0/24");
        let held: Vec<_> = (0..10)
            .map(|_| c.unauthenticated(ip("198.51.100.7")).unwrap())
            .collect();
        assert_eq!(held.len(), 10);
        assert_eq!(c.unauthenticated_count(), 10);
    }

    #[test]
    fn full_pool_evicts_the_oldest_waiting_connection() {
        let c = caps(100, 2, 10, "");
        let first = c.unauthenticated(ip("192.0.2.1")).unwrap();
        let second = c.unauthenticated(ip("192.0.2.2")).unwrap();
        let third = c.unauthenticated(ip("192.0.2.3")).unwrap();
        assert!(first.slot().is_evicted());
        assert!(!second.slot().is_evicted());
        assert!(!third.slot().is_evicted());
    }

    #[test]
    fn connections_reading_their_first_request_are_not_evicted() {
        let c = caps(100, 1, 10, "");
        let busy = c.unauthenticated(ip("192.0.2.1")).unwrap();
        busy.slot().set_waiting(false);
        assert_eq!(
            c.unauthenticated(ip("192.0.2.2")).err(),
            Some(Refusal::Unauthenticated)
        );
        assert!(!busy.slot().is_evicted());
    }

    #[test]
    fn overall_cap_evicts_an_unauthenticated_connection_never_refuses_while_one_waits() {
        let c = caps(2, 10, 10, "");
        let _o1 = c.open().unwrap();
        let u1 = c.unauthenticated(ip("192.0.2.1")).unwrap();
        let _o2 = c.open().unwrap();
        let _u2 = c.unauthenticated(ip("192.0.2.2")).unwrap();
        let _o3 = c.open().unwrap();
        assert!(u1.slot().is_evicted());
    }

    #[test]
    fn overall_cap_refuses_when_every_connection_is_authenticated() {
        let c = caps(2, 10, 10, "");
        let _o1 = c.open().unwrap();
        let _o2 = c.open().unwrap();
        assert_eq!(c.open().err(), Some(Refusal::MaxConnections));
        assert_eq!(c.open_count(), 2);
        drop(_o1);
        assert!(c.open().is_ok());
    }

    #[test]
    fn the_queue_of_gone_connections_is_compacted() {
        let c = caps(100_000, 100_000, 100_000, "");
        for _ in 0..10_000 {
            drop(c.unauthenticated(ip("192.0.2.1")).unwrap());
        }
        assert!(c.unauth.lock().unwrap().queue.len() <= 64 + 1);
    }

    #[test]
    fn an_authenticated_connection_is_never_evicted() {
        let c = caps(100, 1, 10, "");
        let first = c.unauthenticated(ip("192.0.2.1")).unwrap();
        let slot = first.slot().clone();
        drop(first); // authenticated
        let _second = c.unauthenticated(ip("192.0.2.2")).unwrap();
        let _third = c.unauthenticated(ip("192.0.2.3")).unwrap();
        assert!(!slot.is_evicted());
    }

    #[tokio::test]
    async fn evicted_wakes_the_waiting_connection() {
        let c = caps(100, 1, 10, "");
        let first = c.unauthenticated(ip("192.0.2.1")).unwrap();
        let slot = first.slot().clone();
        let waiter = tokio::spawn(async move { slot.evicted().await });
        tokio::task::yield_now().await;
        let _second = c.unauthenticated(ip("192.0.2.2")).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .unwrap();
    }
}
