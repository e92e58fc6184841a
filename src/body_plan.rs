//! What happens to an admitted request's body, one decision taken from its route and its
//! declared framing before a byte of it is read (SPEC §5): refused, streamed as is, streamed
//! through the bulk validator (inflated, or held and forwarded as received for a small gzip
//! bulk in lax mode), or buffered whole within `esProxyMaxSmallBody`, inflated if gzip, and
//! checked by the allowlist's body rules ([`SmallBody`]). A gzip bulk with a Content-Length up
//! to [`GZIP_WHOLE_INFLATE_MAX`] is held whole within `esProxyInflateBudget` and inflated at its
//! end. No I/O: `body_read` reads a small body, the
//! proxy writes.
//!
//! Strict mode may send a bulk's session `index` lines as `create` (`bulk::create`), so a strict
//! bulk always goes upstream re-framed, and a strict gzip bulk inflated: compressed bytes cannot
//! be rewritten, and re-compressing costs more CPU than the whole check (`bulk::create`'s docs
//! have the figures).

use crate::allowlist::{self, BodyRule, JsonRule, Route};
use crate::bulk::gzip::{Grant, Inflater};
use crate::bulk::{BodyEncoding, BulkValidator};
use crate::framing::{BodyHead, Encoding};
use crate::policy::{Limits, Policy};
use crate::reject::Reject;
use crate::upstream_head::BodyChange;

/// Lax mode: gzip bulks up to this Content-Length (and up to half of `esProxyMaxLine`) are held
/// whole (compressed) and forwarded unchanged once every inflated line checked out: such a
/// request holds at most this on top of what any bulk holds (one unfinished line).
pub const GZIP_STORE_AND_FORWARD_MAX: u64 = 4 * 1024 * 1024;

/// Gzip bulks are held whole up to this Content-Length and inflated at their end by libdeflate
/// (`bulk::gzip::inflate_whole`), when `esProxyInflateBudget` has room for them; others stream
/// through zlib-ng. Capture's bulks are a few hundred KB compressed.
pub const GZIP_WHOLE_INFLATE_MAX: u64 = 4 * 1024 * 1024;

/// The plan for one request's body.
pub enum Plan {
    /// Streamed upstream as received (no body expected, or one esProxy.js never inspected).
    Stream,
    /// `_bulk`: every chunk goes through the validator.
    Bulk {
        /// The request's validator.
        validator: Box<BulkValidator>,
        /// How what goes upstream differs from what the sensor sent: inflated (strict gzip, or
        /// a lax gzip bulk too large to hold), lines changed (strict), or not at all.
        change: BodyChange,
    },
    /// Buffered whole and checked before anything goes upstream.
    Small(SmallBody),
}

/// Decides the plan for `route`'s body given what the head declares.
pub fn plan(policy: &Policy, sensor: &str, route: &Route, head: &BodyHead) -> Result<Plan, Reject> {
    let limits = &policy.limits;
    match route.body {
        BodyRule::Empty if policy.strict && head.has_body => {
            Err(Reject::BadBody("a body on a route that takes none".into()))
        }
        BodyRule::Empty | BodyRule::Unchecked => Ok(Plan::Stream),
        BodyRule::Bulk => {
            if let Some(n) = head.length.filter(|&n| n > limits.max_body) {
                return Err(Reject::TooLarge(format!(
                    "Content-Length {n} over esProxyMaxBody {}",
                    limits.max_body
                )));
            }
            let (validator, change) = bulk(policy, sensor, head.encoding, head.length);
            Ok(Plan::Bulk {
                validator: Box::new(validator),
                change,
            })
        }
        BodyRule::Json(rule) => {
            if let Some(n) = head.length.filter(|&n| n > limits.max_small_body as u64) {
                return Err(Reject::TooLarge(format!(
                    "Content-Length {n} over esProxyMaxSmallBody {}",
                    limits.max_small_body
                )));
            }
            Ok(Plan::Small(SmallBody {
                rule,
                encoding: head.encoding,
                buf: Vec::new(),
            }))
        }
    }
}

/// The validator of a `_bulk` whose head declares `encoding` and `length` (Content-Length), and
/// how what goes upstream differs from what the sensor sent.
pub fn bulk(
    policy: &Policy,
    sensor: &str,
    encoding: Encoding,
    length: Option<u64>,
) -> (BulkValidator, BodyChange) {
    let limits = &policy.limits;
    let gzip = encoding == Encoding::Gzip;
    let enc = if gzip {
        BodyEncoding::Gzip
    } else {
        BodyEncoding::Identity
    };
    let validator = BulkValidator::new(policy, sensor, enc);
    // Lax: a gzip bulk of known, modest size (capture's are a few hundred KB) goes upstream as
    // it came, once all of it checked out: a sixth of the bytes to forward. Others stream their
    // validated lines inflated; strict ones always do, since their lines may change (module
    // docs).
    let hold_max = GZIP_STORE_AND_FORWARD_MAX.min(limits.max_line as u64 / 2);
    let store_and_forward = !policy.strict && gzip && length.is_some_and(|n| n <= hold_max);
    let change = if gzip && !store_and_forward {
        BodyChange::Inflated
    } else if policy.strict {
        BodyChange::Lines
    } else {
        BodyChange::None
    };
    let validator = if store_and_forward {
        validator.forward_original()
    } else {
        validator
    };
    // Of known, bounded size: held whole and inflated at the end by libdeflate, ~1.35x faster
    // than zlib-ng (a stored body is held whole anyway); without room in the budget it streams.
    let validator = match length
        .filter(|&n| gzip && n <= GZIP_WHOLE_INFLATE_MAX)
        .and_then(|n| Grant::process(limits.inflate_budget, n as usize))
    {
        Some(grant) => validator.inflate_whole(grant),
        None => validator,
    };
    (validator, change)
}

/// A small inspected body being buffered: bounded by `esProxyMaxSmallBody` as it arrives, then
/// inflated (if gzip, output bounded the same) and checked whole. What goes upstream is the
/// body as received.
pub struct SmallBody {
    rule: JsonRule,
    encoding: Encoding,
    buf: Vec<u8>,
}

impl SmallBody {
    /// Adds a chunk; refuses the body once it is over the limit.
    pub fn push(&mut self, chunk: &[u8], limits: &Limits) -> Result<(), Reject> {
        if self.buf.len() + chunk.len() > limits.max_small_body {
            return Err(Reject::TooLarge(format!(
                "body over esProxyMaxSmallBody {}",
                limits.max_small_body
            )));
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Inflates the whole body if needed and checks it against the route's rule.
    pub fn check(self, policy: &Policy, sensor: &str) -> Result<(), Reject> {
        let body = match self.encoding {
            Encoding::Identity => self.buf,
            Encoding::Gzip => gunzip_small(&self.buf, &policy.limits)?,
        };
        allowlist::check_body(policy, sensor, &self.rule, &body)
    }
}

/// Inflates a small gzip body (one member, output bounded by `esProxyMaxSmallBody`) for
/// inspection only; the original compressed bytes are what goes upstream.
fn gunzip_small(raw: &[u8], limits: &Limits) -> Result<Vec<u8>, Reject> {
    let small = Limits {
        max_inflated: limits.max_small_body as u64,
        max_chunk_inflated: limits.max_small_body,
        ..limits.clone()
    };
    let mut inflater = Inflater::new();
    let mut out = Vec::new();
    inflater.inflate(raw, &mut out, &small)?;
    if !inflater.finished() {
        return Err(Reject::BadEncoding("gzip: truncated".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::RouteClass;

    fn small_limits(max_small_body: usize) -> Limits {
        Limits {
            max_small_body,
            ..Limits::default()
        }
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn head(length: Option<u64>, encoding: Encoding) -> BodyHead {
        BodyHead {
            length,
            has_body: length.unwrap_or(0) > 0,
            encoding,
            expects_continue: false,
        }
    }

    fn route(body: BodyRule) -> Route {
        Route {
            class: RouteClass::Bulk,
            forward: "/".into(),
            body,
        }
    }

    #[test]
    fn gunzip_small_round_trips_and_refuses_trailing_garbage() {
        let mut gz = gz(b"{\"a\":1}");
        let limits = small_limits(1024);
        assert_eq!(gunzip_small(&gz, &limits).unwrap(), b"{\"a\":1}");
        gz.push(0);
        assert!(gunzip_small(&gz, &limits).is_err());
    }

    #[test]
    fn gunzip_small_refuses_truncated_and_oversized() {
        let gz = gz(&[b' '; 10_000]);
        assert!(matches!(
            gunzip_small(&gz, &small_limits(1024)),
            Err(Reject::TooLarge(_))
        ));
        assert!(gunzip_small(&gz[..gz.len() - 4], &small_limits(65536)).is_err());
    }

    #[test]
    fn a_body_on_an_empty_route_is_refused_in_strict_mode_only() {
        let r = route(BodyRule::Empty);
        let with_body = head(Some(3), Encoding::Identity);
        let strict = Policy::default();
        assert!(matches!(
            plan(&strict, "n", &r, &with_body),
            Err(Reject::BadBody(_))
        ));
        let lax = Policy {
            strict: false,
            ..Policy::default()
        };
        assert!(matches!(plan(&lax, "n", &r, &with_body), Ok(Plan::Stream)));
        let no_body = head(None, Encoding::Identity);
        assert!(matches!(plan(&strict, "n", &r, &no_body), Ok(Plan::Stream)));
    }

    #[test]
    fn declared_lengths_over_the_limits_are_refused_before_reading() {
        let p = Policy::default();
        let over_body = head(Some(p.limits.max_body + 1), Encoding::Identity);
        assert!(matches!(
            plan(&p, "n", &route(BodyRule::Bulk), &over_body),
            Err(Reject::TooLarge(_))
        ));
        let over_small = head(Some(p.limits.max_small_body as u64 + 1), Encoding::Identity);
        let json = route(BodyRule::Json(JsonRule::UsersCount));
        assert!(matches!(
            plan(&p, "n", &json, &over_small),
            Err(Reject::TooLarge(_))
        ));
    }

    fn change(p: &Policy, length: Option<u64>, encoding: Encoding) -> BodyChange {
        match plan(p, "n", &route(BodyRule::Bulk), &head(length, encoding)) {
            Ok(Plan::Bulk { change, .. }) => change,
            _ => panic!("not a bulk plan"),
        }
    }

    #[test]
    fn lax_small_gzip_bulks_are_held_and_forwarded_as_received_larger_ones_inflated() {
        let p = Policy {
            strict: false,
            ..Policy::default()
        };
        assert_eq!(change(&p, Some(1000), Encoding::Gzip), BodyChange::None);
        assert_eq!(
            change(&p, Some(GZIP_STORE_AND_FORWARD_MAX + 1), Encoding::Gzip),
            BodyChange::Inflated
        );
        // Chunked: the size is unknown, so it streams inflated.
        assert_eq!(change(&p, None, Encoding::Gzip), BodyChange::Inflated);
        assert_eq!(change(&p, Some(10), Encoding::Identity), BodyChange::None);
    }

    #[test]
    fn strict_bulks_go_rechunked_and_gzip_ones_inflated() {
        let p = Policy::default();
        assert!(p.strict);
        for length in [Some(1000), Some(GZIP_STORE_AND_FORWARD_MAX + 1), None] {
            assert_eq!(change(&p, length, Encoding::Gzip), BodyChange::Inflated);
            assert_eq!(change(&p, length, Encoding::Identity), BodyChange::Lines);
        }
    }

    fn holds_whole(p: &Policy, length: Option<u64>, encoding: Encoding) -> bool {
        match plan(p, "n", &route(BodyRule::Bulk), &head(length, encoding)) {
            Ok(Plan::Bulk { validator, .. }) => validator.holds_whole(),
            _ => panic!("not a bulk plan"),
        }
    }

    #[test]
    fn inflated_gzip_bulks_of_known_bounded_size_are_held_whole_within_the_budget() {
        let p = Policy::default();
        assert!(holds_whole(&p, Some(1000), Encoding::Gzip));
        assert!(holds_whole(
            &p,
            Some(GZIP_WHOLE_INFLATE_MAX),
            Encoding::Gzip
        ));
        assert!(!holds_whole(
            &p,
            Some(GZIP_WHOLE_INFLATE_MAX + 1),
            Encoding::Gzip
        ));
        // Chunked: the size is unknown; plain bodies are never inflated.
        assert!(!holds_whole(&p, None, Encoding::Gzip));
        assert!(!holds_whole(&p, Some(1000), Encoding::Identity));
        // No room in the budget (0 turns it off): streamed as before.
        let off = Policy {
            limits: Limits {
                inflate_budget: 0,
                ..Limits::default()
            },
            ..Policy::default()
        };
        assert!(!holds_whole(&off, Some(1000), Encoding::Gzip));
        assert_eq!(
            change(&off, Some(1000), Encoding::Gzip),
            BodyChange::Inflated
        );
        // Lax bulks stored and forwarded are held whole anyway.
        let lax = Policy {
            strict: false,
            ..Policy::default()
        };
        assert!(holds_whole(&lax, Some(1000), Encoding::Gzip));
        let lax_small_line = Policy {
            limits: Limits {
                max_line: 1 << 20,
                ..Limits::default()
            },
            ..lax
        };
        // Beyond store and forward (half of esProxyMaxLine here): inflated, held whole.
        assert!(holds_whole(&lax_small_line, Some(1 << 20), Encoding::Gzip));
    }

    #[test]
    fn small_body_is_bounded_as_it_arrives_then_inflated_and_checked() {
        let p = Policy::default();
        let json = route(BodyRule::Json(JsonRule::HistoryDoc));
        let Ok(Plan::Small(mut b)) = plan(&p, "n", &json, &head(None, Encoding::Gzip)) else {
            panic!("not a small-body plan")
        };
        b.push(&gz(br#"{"userId":"a"}"#), &p.limits).unwrap();
        assert!(b.check(&p, "n").is_ok());
        let Ok(Plan::Small(mut b)) = plan(&p, "n", &json, &head(None, Encoding::Identity)) else {
            panic!("not a small-body plan")
        };
        assert!(matches!(
            b.push(&vec![b' '; p.limits.max_small_body + 1], &p.limits),
            Err(Reject::TooLarge(_))
        ));
        let Ok(Plan::Small(mut b)) = plan(&p, "n", &json, &head(None, Encoding::Identity)) else {
            panic!("not a small-body plan")
        };
        b.push(b"[1]", &p.limits).unwrap();
        assert!(matches!(b.check(&p, "n"), Err(Reject::BadBody(_))));
    }

    #[test]
    fn a_small_body_in_several_chunks_is_bounded_and_checked_as_one() {
        let p = Policy::default();
        let json = route(BodyRule::Json(JsonRule::HistoryDoc));
        let small = |chunks: &[&[u8]]| {
            let Ok(Plan::Small(mut b)) = plan(&p, "n", &json, &head(None, Encoding::Identity))
            else {
                panic!("not a small-body plan")
            };
            for c in chunks {
                b.push(c, &p.limits)?;
            }
            b.check(&p, "n")
        };
        assert!(small(&[br#"{"userId""#, br#":"a"}"#]).is_ok());
        assert!(small(&[br#"{"userId""#, b"", br#":"a"}"#]).is_ok());
        // Each chunk alone is valid JSON; together they are not.
        assert!(matches!(small(&[b"[1]", b"[2]"]), Err(Reject::BadBody(_))));
        // The bound counts every chunk.
        let half = vec![b' '; p.limits.max_small_body / 2 + 1];
        assert!(matches!(small(&[&half, &half]), Err(Reject::TooLarge(_))));
    }
}
