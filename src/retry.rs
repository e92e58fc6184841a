//! Whether Pingora sends a request again after a failed attempt, one decision. A connect
//! failure sent nothing, so another peer is always safe. After anything was sent, only a
//! failure that proves ES never took the request is retried (`ReusedOnly`: a pooled keep-alive
//! connection ES had closed, no byte of answer), and only when the whole body is still in
//! Pingora's retry buffer; any other failure may have reached ES, so a write is never re-sent.
//! Bulks are never re-sent by Pingora (its retry buffer keeps only 64 KiB of raw body, and the
//! validator would run twice): `replay` sends them again from the held body.
//!
//! A peer that went silent (`esProxyUpstreamTimeout`) may still be working on the request, so
//! only what `replay::after_timeout` calls safe to send twice goes to another peer.

use pingora::{Error, RetryType};

/// After a connect failure: try again while a peer is left untried, or while a bulk may still
/// wait for its host name to move to a live address (`bulk_may_wait`: a bulk, a pool that
/// follows DNS, replay budget left; the next attempt's peer selection does the waiting).
pub fn after_connect_failure(e: &mut Error, peer_left: bool, bulk_may_wait: bool) {
    if peer_left || bulk_may_wait {
        e.set_retry(true);
    }
}

/// What decides a retry after an attempt that reached the proxying stage.
pub struct Attempt {
    /// A bulk (replayed instead), or a request we refused: never re-sent by Pingora.
    pub never: bool,
    /// The body no longer fits Pingora's retry buffer.
    pub body_truncated: bool,
    /// The connection to ES was a reused keep-alive one.
    pub client_reused: bool,
    /// The method is idempotent.
    pub idempotent: bool,
}

/// After an error while proxying: sets whether Pingora sends the request again.
pub fn after_proxy_error(e: &mut Error, a: &Attempt) {
    if a.never || a.body_truncated {
        e.set_retry(false);
    } else if matches!(e.retry, RetryType::ReusedOnly) {
        e.retry.decide_reuse(a.client_reused);
    } else if !a.idempotent {
        e.set_retry(false);
    }
}

/// What decides a retry after the peer went silent.
pub struct AfterTimeout {
    /// `replay::after_timeout` allows a second copy, and no answer has started.
    pub resend: bool,
    /// The body no longer fits Pingora's retry buffer.
    pub body_truncated: bool,
    /// A peer that has not failed this request is left.
    pub peer_left: bool,
    /// The replay budget is not spent.
    pub budget_left: bool,
}

/// After the peer went silent: sets whether Pingora sends the request to another peer, and
/// returns it.
pub fn after_timeout(e: &mut Error, a: &AfterTimeout) -> bool {
    let retry = a.resend && !a.body_truncated && a.peer_left && a.budget_left;
    e.set_retry(retry);
    retry
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::ErrorType;

    fn attempt() -> Attempt {
        Attempt {
            never: false,
            body_truncated: false,
            client_reused: true,
            idempotent: true,
        }
    }

    fn err(retry: RetryType) -> Box<Error> {
        let mut e = Error::new(ErrorType::ConnectionClosed);
        e.retry = retry;
        e
    }

    #[test]
    fn a_stale_reused_connection_is_retried_unless_bulk_refused_or_truncated() {
        let mut e = err(RetryType::ReusedOnly);
        after_proxy_error(&mut e, &attempt());
        assert!(e.retry());
        for a in [
            Attempt {
                never: true,
                ..attempt()
            },
            Attempt {
                body_truncated: true,
                ..attempt()
            },
            Attempt {
                client_reused: false,
                ..attempt()
            },
        ] {
            let mut e = err(RetryType::ReusedOnly);
            after_proxy_error(&mut e, &a);
            assert!(!e.retry());
        }
    }

    #[test]
    fn a_write_that_may_have_reached_es_is_never_resent() {
        let mut e = err(RetryType::Decided(true));
        after_proxy_error(
            &mut e,
            &Attempt {
                idempotent: false,
                ..attempt()
            },
        );
        assert!(!e.retry());
        let mut e = err(RetryType::Decided(true));
        after_proxy_error(&mut e, &attempt());
        assert!(e.retry(), "an idempotent read keeps Pingora's decision");
    }

    #[test]
    fn a_silent_peer_s_read_goes_to_another_peer_only_when_all_of_it_allows() {
        let ok = AfterTimeout {
            resend: true,
            body_truncated: false,
            peer_left: true,
            budget_left: true,
        };
        let mut e = err(RetryType::Decided(false));
        assert!(after_timeout(&mut e, &ok) && e.retry());
        for a in [
            AfterTimeout {
                resend: false,
                ..ok
            },
            AfterTimeout {
                body_truncated: true,
                ..ok
            },
            AfterTimeout {
                peer_left: false,
                ..ok
            },
            AfterTimeout {
                budget_left: false,
                ..ok
            },
        ] {
            let mut e = err(RetryType::Decided(true));
            assert!(!after_timeout(&mut e, &a) && !e.retry());
        }
    }

    #[test]
    fn connect_failures_try_another_peer_while_one_is_left() {
        let mut e = err(RetryType::Decided(false));
        after_connect_failure(&mut e, true, false);
        assert!(e.retry());
        let mut e = err(RetryType::Decided(false));
        after_connect_failure(&mut e, false, false);
        assert!(!e.retry());
        // A bulk whose name may move waits for it rather than failing now.
        let mut e = err(RetryType::Decided(false));
        after_connect_failure(&mut e, false, true);
        assert!(e.retry());
    }
}
