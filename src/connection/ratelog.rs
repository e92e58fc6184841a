//! Denial logs an attack cannot flood: each kind of event logs at most [`BURST`] lines per
//! [`WINDOW`]; the next line after a quiet-down says how many were left out.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines per window per kind.
pub const BURST: u32 = 10;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(10);

struct State {
    since: Instant,
    logged: u32,
    suppressed: u64,
}

/// One kind of event's budget.
pub struct RateLog {
    state: Mutex<Option<State>>,
}

impl RateLog {
    /// A budget with nothing logged yet.
    pub const fn new() -> RateLog {
        RateLog {
            state: Mutex::new(None),
        }
    }

    /// `Some(n)` when a line may be logged now; `n` lines were left out before it (say so).
    /// `None`: over budget, counted as left out.
    pub fn admit(&self, now: Instant) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let st = s.get_or_insert(State {
            since: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(st.since) >= WINDOW {
            st.since = now;
            st.logged = 0;
        }
        if st.logged < BURST {
            st.logged += 1;
            Some(std::mem::take(&mut st.suppressed))
        } else {
            st.suppressed += 1;
            None
        }
    }
}

impl Default for RateLog {
    fn default() -> Self {
        RateLog::new()
    }
}

/// Logs `$fmt` at warn level through `$rl` (a [`RateLog`]), noting lines left out.
#[macro_export]
#[doc(hidden)]
macro_rules! rate_limited_warn {
    ($rl:expr, $($arg:tt)+) => {
        if let Some(left_out) = $rl.admit(std::time::Instant::now()) {
            if left_out > 0 {
                log::warn!("{} ({left_out} similar lines left out)", format_args!($($arg)+));
            } else {
                log::warn!($($arg)+);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_then_the_rest_is_counted_and_reported_next_window() {
        let rl = RateLog::new();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert_eq!(rl.admit(t0), Some(0));
        }
        for _ in 0..1000 {
            assert_eq!(rl.admit(t0 + Duration::from_secs(1)), None);
        }
        assert_eq!(rl.admit(t0 + WINDOW + Duration::from_secs(1)), Some(1000));
        assert_eq!(rl.admit(t0 + WINDOW + Duration::from_secs(1)), Some(0));
    }
}
