//! The API allowlist (SPEC §4, arkime-traffic.md §7): for an authenticated sensor, decides whether
//! `(method, path, query)` may reach Elasticsearch, rebuilds the canonical target that goes
//! upstream, names the body check that applies, and runs that check on buffered small bodies.
//!
//! This module owns path canonicalisation, the route table, the per-route query parameters and the
//! non-bulk body rules. It must not authenticate, read or inflate bodies, validate `_bulk` (the
//! `bulk` module does), pick upstreams or do any I/O: everything here is a pure function of the
//! request, the sensor name and the [`Policy`].
//!
//! Two modes (`Policy::strict`):
//! - **lax** is esProxy.js 6.7 (its node-scoped helpers included), plus the real capture/viewer
//!   routes it wrongly refuses (SPEC §4). The query string is forwarded as received, but must be
//!   well formed.
//! - **strict** (default) also closes SPEC §4's loose spots and applies arkime-traffic.md §7: ids
//!   end at a separator, only the query parameters real clients send, and admitted bodies carry
//!   only the keys and clauses real clients send.
//!
//! In both modes the path is canonicalised first (decoded once, encoded separators and traversal
//! refused) and the route is matched on exact segments of that canonical path, which is also what
//! goes upstream: the proxy never forwards the raw target.
//!
//! Parts, in the order a request meets them: `path` (canonicalisation), `routes` (the route
//! table), `query` (per-route query parameters), then, for buffered bodies, `body` (the JSON body
//! rules) and `viewer` (session updates by the viewer's scripts). This file holds the public
//! types and the two entry points, [`classify`] and [`check_body`].

mod body;
mod path;
mod query;
mod routes;
#[cfg(test)]
mod testkit;
mod viewer;

use std::borrow::Cow;

use http::Method;

use crate::json;
use crate::json::scan::Scanner;
use crate::logline::bound;
use crate::policy::Policy;
use crate::reject::Reject;

use body::{
    fields_search, files_search_lax, files_search_strict, files_update, lookups_search,
    session_search_lax, session_search_strict, stats_search, top_level_verdict, users_count,
};
use path::{encode_into, Target};
use query::{lax_query, strict_query};
use routes::{delete_route, get_route, post_route, Scope};
use viewer::{session_update_lax, session_update_strict};

/// What the allowlist decided for an admitted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which API family the request belongs to (for metrics and logs).
    pub class: RouteClass,
    /// The canonical path and query to send upstream instead of the raw request target.
    pub forward: String,
    /// What the proxy must do with the request body.
    pub body: BodyRule,
}

/// The API family of an admitted request: a small, fixed set, usable as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `GET /` (version check).
    Root,
    /// Cluster health and node statistics.
    Health,
    /// Index template reads.
    Template,
    /// Session index alias listing.
    Alias,
    /// `_refresh` calls.
    Refresh,
    /// `POST /_bulk`.
    Bulk,
    /// The sensor's stats document and stats searches.
    Stats,
    /// The sensor's dstats documents.
    Dstats,
    /// The sensor's file-number sequence.
    Sequence,
    /// The sensor's pcap file records.
    Files,
    /// Field definitions.
    Fields,
    /// Session documents: by-id and rootId searches, tag/hunt updates.
    Sessions,
    /// Users index reads.
    Users,
    /// Hunt documents.
    Hunts,
    /// The tagger plugin's index.
    Tagger,
    /// The viewer's audit history.
    History,
    /// Shortcut lookups.
    Lookups,
    /// The queries index mapping.
    Queries,
}

impl RouteClass {
    /// Every class, e.g. to pre-register metrics.
    pub const ALL: &'static [RouteClass] = &[
        RouteClass::Root,
        RouteClass::Health,
        RouteClass::Template,
        RouteClass::Alias,
        RouteClass::Refresh,
        RouteClass::Bulk,
        RouteClass::Stats,
        RouteClass::Dstats,
        RouteClass::Sequence,
        RouteClass::Files,
        RouteClass::Fields,
        RouteClass::Sessions,
        RouteClass::Users,
        RouteClass::Hunts,
        RouteClass::Tagger,
        RouteClass::History,
        RouteClass::Lookups,
        RouteClass::Queries,
    ];

    /// A short, fixed label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            RouteClass::Root => "root",
            RouteClass::Health => "health",
            RouteClass::Template => "template",
            RouteClass::Alias => "alias",
            RouteClass::Refresh => "refresh",
            RouteClass::Bulk => "bulk",
            RouteClass::Stats => "stats",
            RouteClass::Dstats => "dstats",
            RouteClass::Sequence => "sequence",
            RouteClass::Files => "files",
            RouteClass::Fields => "fields",
            RouteClass::Sessions => "sessions",
            RouteClass::Users => "users",
            RouteClass::Hunts => "hunts",
            RouteClass::Tagger => "tagger",
            RouteClass::History => "history",
            RouteClass::Lookups => "lookups",
            RouteClass::Queries => "queries",
        }
    }
}

/// What the proxy does with the request body of an admitted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// No body expected (GET/DELETE, `_refresh`). The proxy refuses a non-empty body in strict mode.
    Empty,
    /// Streamed upstream without inspection (lax mode only, for routes esProxy.js never inspected).
    Unchecked,
    /// `POST /_bulk`: streamed through the bulk validator (the `bulk` module).
    Bulk,
    /// Buffered by the proxy (≤ `limits.max_small_body`, inflated if gzip), then passed whole —
    /// even when empty — to [`check_body`].
    Json(JsonRule),
}

/// One variant per inspected body kind. [`check_body`] applies the lax or strict form of a rule
/// according to `Policy::strict`; rules marked "strict" are only produced in strict mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonRule {
    /// Strict: a stats or dstats document whose `nodeName` is the sensor.
    NodeStatsDoc,
    /// Strict: a files document whose `node` is the sensor.
    FilesDoc,
    /// Strict: the sequence body, exactly `{}`.
    SequenceDoc,
    /// Both modes: `{"doc": {…}}` and nothing else; `doc.node`, if present, is the sensor.
    FilesUpdate,
    /// Both modes: a files search scoped to the sensor's node.
    FilesSearch,
    /// Both modes: a session search by one id or by rootId.
    SessionSearch {
        /// The path names exactly one sessions index (needed for a by-id search in strict mode).
        single_index: bool,
    },
    /// Both modes: a session `_update` by script (strict: only the viewer's tag/hunt scripts).
    SessionUpdate,
    /// Strict: the viewer's stats search by hostname.
    StatsSearch,
    /// Strict: the viewer's field-definitions load.
    FieldsSearch,
    /// Strict: the viewer's shortcuts search.
    LookupsSearch,
    /// Both modes: the viewer's users count (the body may be empty).
    UsersCount,
    /// Strict: an audit history document (a JSON object).
    HistoryDoc,
}

impl JsonRule {
    /// A short, fixed label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            JsonRule::NodeStatsDoc => "node_stats_doc",
            JsonRule::FilesDoc => "files_doc",
            JsonRule::SequenceDoc => "sequence_doc",
            JsonRule::FilesUpdate => "files_update",
            JsonRule::FilesSearch => "files_search",
            JsonRule::SessionSearch { .. } => "session_search",
            JsonRule::SessionUpdate => "session_update",
            JsonRule::StatsSearch => "stats_search",
            JsonRule::FieldsSearch => "fields_search",
            JsonRule::LookupsSearch => "lookups_search",
            JsonRule::UsersCount => "users_count",
            JsonRule::HistoryDoc => "history_doc",
        }
    }
}

/// [`classify`] for the request target as its raw bytes: a target that is not UTF-8 is a bad
/// path (its percent-escapes are checked by [`classify`]; raw non-ASCII is refused there too).
pub fn classify_raw(
    policy: &Policy,
    sensor: &str,
    method: &Method,
    raw_target: &[u8],
) -> Result<Route, Reject> {
    let target = std::str::from_utf8(raw_target)
        .map_err(|_| Reject::BadPath("request target is not UTF-8".into()))?;
    classify(policy, sensor, method, target)
}

/// Decides whether `sensor` may send `method` to `path_and_query` (the raw request target as
/// received) and, if so, what goes upstream and how the body is checked.
///
/// Refusals: [`Reject::BadPath`] for a target that is not canonical, [`Reject::NotAllowed`] for a
/// route not on the list, [`Reject::BadQuery`] for a query parameter the route does not allow.
pub fn classify(
    policy: &Policy,
    sensor: &str,
    method: &Method,
    path_and_query: &str,
) -> Result<Route, Reject> {
    let target = Target::parse(path_and_query)?;
    let scope = Scope {
        prefix: &policy.prefix.p,
        old_prefix: &policy.prefix.old,
        node: sensor,
        strict: policy.strict,
    };
    // Allowed routes have a handful of segments: split into a stack array, no allocation per
    // request; a path longer than the array is split into a Vec (and matches no route).
    let rest = match target.path.strip_prefix('/') {
        Some("") | None => None, // None is unreachable: Target::parse checked the leading '/'
        Some(rest) => Some(rest),
    };
    let mut stack = [""; 8];
    let mut n = 0;
    let mut long = Vec::new();
    for seg in rest.into_iter().flat_map(|r| r.split('/')) {
        if n < stack.len() {
            stack[n] = seg;
            n += 1;
        } else {
            if long.is_empty() {
                long.extend_from_slice(&stack);
            }
            long.push(seg);
        }
    }
    let segs: &[&str] = if long.is_empty() { &stack[..n] } else { &long };
    let hit = match *method {
        Method::GET => get_route(&scope, &target.path, segs),
        Method::POST => post_route(&scope, &target.path, segs),
        Method::DELETE => delete_route(&scope, segs),
        _ => None,
    };
    let Some(hit) = hit else {
        return Err(Reject::NotAllowed(bound(&format!(
            "{method} {}",
            target.path
        ))));
    };

    let query: Cow<'_, str> = if scope.strict || hit.always_check_query {
        Cow::Owned(strict_query(&scope, hit.params, target.query)?)
    } else {
        Cow::Borrowed(lax_query(target.query)?)
    };
    let mut forward = String::with_capacity(target.path.len() + query.len() + 8);
    encode_into(&mut forward, &target.path);
    if !query.is_empty() {
        forward.push('?');
        forward.push_str(&query);
    }
    Ok(Route {
        class: hit.class,
        forward,
        body: hit.body,
    })
}

thread_local! {
    /// One scanner per worker thread: its scratch buffers are reused from request to request
    /// (they grow to the largest buffered body, itself bounded).
    static SCANNER: std::cell::RefCell<Scanner> = std::cell::RefCell::new(Scanner::new());
}

/// Checks a buffered (and inflated) body against `rule` for `sensor`. Every body must be strict
/// JSON nested at most `policy.limits.max_depth` deep ([`json::parse_strict`], or the bulk
/// scanner, which accepts exactly the same); refusals are [`Reject::BadBody`].
pub fn check_body(
    policy: &Policy,
    sensor: &str,
    rule: &JsonRule,
    body: &[u8],
) -> Result<(), Reject> {
    // The viewer's users count may come without a body.
    if *rule == JsonRule::UsersCount && body.is_empty() {
        return Ok(());
    }
    let bad_json =
        |e: &dyn std::fmt::Display| Reject::BadBody(bound(&format!("{}: {e}", rule.label())));
    // The documents every sensor writes every few seconds (stats, dstats, files, sequence,
    // history) are decided by their top level alone: the bulk scanner checks them in one pass
    // without building a value (it accepts exactly what `parse_strict` accepts).
    let top_level = match rule {
        JsonRule::NodeStatsDoc => Some(Some("nodeName")),
        JsonRule::FilesDoc => Some(Some("node")),
        JsonRule::SequenceDoc | JsonRule::HistoryDoc => Some(None),
        _ => None,
    };
    if let Some(field) = top_level {
        let sum = SCANNER
            .with_borrow_mut(|sc| sc.scan(body, policy.limits.max_depth, field.map(str::as_bytes)))
            .map_err(|e| bad_json(&e))?;
        return top_level_verdict(rule, &sum, sensor)
            .map_err(|why| Reject::BadBody(format!("{}: {why}", rule.label())));
    }
    let v = json::parse_strict(body, policy.limits.max_depth).map_err(|e| bad_json(&e))?;
    let strict = policy.strict;
    let verdict = match rule {
        JsonRule::NodeStatsDoc
        | JsonRule::FilesDoc
        | JsonRule::SequenceDoc
        | JsonRule::HistoryDoc => unreachable!("decided by the top level above"),
        JsonRule::FilesUpdate => files_update(&v, sensor),
        JsonRule::FilesSearch if strict => files_search_strict(&v, sensor),
        JsonRule::FilesSearch => files_search_lax(&v, sensor),
        JsonRule::SessionSearch { single_index } if strict => {
            session_search_strict(&v, *single_index)
        }
        JsonRule::SessionSearch { .. } => session_search_lax(&v),
        JsonRule::SessionUpdate if strict => session_update_strict(&v),
        JsonRule::SessionUpdate => session_update_lax(&v),
        JsonRule::StatsSearch => stats_search(&v),
        JsonRule::FieldsSearch => fields_search(&v),
        JsonRule::LookupsSearch => lookups_search(&v),
        JsonRule::UsersCount => users_count(&v),
    };
    verdict.map_err(|why| Reject::BadBody(format!("{}: {why}", rule.label())))
}

/// Non-empty ASCII digits, at most 20 (a u64).
fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A decimal without leading zeros, as capture prints it.
fn canonical_uint(s: &str) -> Option<u32> {
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::testkit::*;

    #[test]
    fn a_target_that_is_not_utf8_is_a_bad_path_and_a_utf8_one_is_classified() {
        let policy = strict();
        let e = classify_raw(&policy, "toronto01", &Method::GET, b"/_cat/health\xff").unwrap_err();
        assert!(matches!(e, Reject::BadPath(_)), "{e:?}");
        let r = classify_raw(&policy, "toronto01", &Method::GET, b"/_cat/health").unwrap();
        assert_eq!(r.forward, "/_cat/health");
    }

    #[test]
    fn paths_longer_than_the_stack_split_are_matched_on_every_segment() {
        // Over 8 segments the split goes to a Vec: still no route matches a longer path, and
        // lax mode's path-prefix route (tagger) still sees it whole.
        let long = "/_cluster/health/a/b/c/d/e/f/g/h";
        assert!(matches!(
            refused(&strict(), Method::GET, long),
            Reject::NotAllowed(_)
        ));
        let tagger = "/tagger/a/b/c/d/e/f/g/h/i";
        assert_eq!(ok(&lax(), Method::GET, tagger).forward, tagger);
        assert!(matches!(
            refused(&strict(), Method::GET, tagger),
            Reject::NotAllowed(_)
        ));
        // Exactly 8 and 9 segments, none allowed.
        for n in [8, 9] {
            let p: String = (0..n).map(|i| format!("/s{i}")).collect();
            assert!(matches!(
                refused(&strict(), Method::GET, &p),
                Reject::NotAllowed(_)
            ));
        }
    }

    // ── the real capture trace and viewer traffic ──

    #[test]
    fn every_request_in_the_capture_trace_passes_in_strict_mode() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/capture-trace.txt");
        let text = std::fs::read_to_string(path).expect("capture-trace.txt");
        let policy = strict();
        let (mut requests, mut bodies) = (0, 0);
        let mut current: Option<(String, Route)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("=== ") {
                // "#1 conn=1 t=1795348654.018 GET /_template/…"
                let fields: Vec<&str> = rest.split(' ').collect();
                let [_, _, _, method, target] = fields.as_slice() else {
                    panic!("unexpected request line {line:?}");
                };
                let method = Method::from_bytes(method.as_bytes()).unwrap();
                let r = ok(&policy, method, target);
                current = Some((target.to_string(), r));
                requests += 1;
                continue;
            }
            // Only bodies shown whole: plain text, not cut at 300 bytes.
            let line = line.trim_start();
            let shown = line
                .strip_prefix("body[:300]: ")
                .or_else(|| line.split_once("decoded[:300]: ").map(|(_, b)| b));
            let Some(body) = shown else { continue };
            if body.ends_with("[truncated]") || body.starts_with("b'") || body.starts_with("b\"") {
                continue;
            }
            if let Some((
                target,
                Route {
                    body: BodyRule::Json(rule),
                    ..
                },
            )) = &current
            {
                check_body(&policy, NODE, rule, body.as_bytes())
                    .unwrap_or_else(|e| panic!("{target} body {body:?} refused: {e}"));
                bodies += 1;
            }
        }
        assert!(
            requests >= 80,
            "only {requests} requests found in the trace"
        );
        assert!(bodies >= 10, "only {bodies} whole bodies checked");
    }

    #[test]
    fn capture_requests_of_arkime_traffic_section2_pass_in_both_modes() {
        let files_lookup = "/arkime_files/_search?rest_total_hits_as_int&size=1&sort=num:desc\
                            &q=node%3A%22toronto01%22+AND+name%3A%22/data/pcap/sample.pcap%22";
        let cases = [
            (Method::GET, "/_cat/health?format=json", ""),
            (
                Method::GET,
                "/_template/arkime_sessions3_template?filter_path=**._meta",
                "",
            ),
            (Method::GET, "/arkime_sequence/_doc/fn-toronto01", ""),
            (
                Method::POST,
                "/arkime_sequence/_doc/fn-toronto01?version_type=external&version=100",
                "{}",
            ),
            (Method::POST, "/arkime_sequence/_doc/fn-toronto01", "{}"),
            (Method::GET, "/arkime_stats/_doc/toronto01", ""),
            (Method::GET, "/arkime_fields/_search?size=3000", ""),
            (
                Method::POST,
                "/arkime_stats/_doc/toronto01?version_type=external&version=7",
                r#"{"ver": "6.7.0","nodeName": "toronto01","hostname": "vm","interval": 1}"#,
            ),
            (
                Method::POST,
                "/arkime_dstats/_doc/toronto01-720-60",
                r#"{"ver": "6.7.0","nodeName": "toronto01","hostname": "vm","interval": 60}"#,
            ),
            (
                Method::POST,
                "/arkime_files/_doc/toronto01-42?refresh=true",
                r#"{"num":42, "name":"/opt/arkime/raw/toronto01-260819-00000042.pcap.zst", "first":1787140800, "node":"toronto01", "locked":0}"#,
            ),
            (
                Method::POST,
                "/arkime_files/_update/toronto01-42",
                r#"{"doc": {"filesize": 12884901888, "packets": 10, "finishTimestamp":1}}"#,
            ),
            (Method::GET, files_lookup, ""),
            (Method::GET, "/tagger/_search?_source=md5&size=999", ""),
            (Method::GET, "/tagger/_source/some-file.txt", ""),
            (Method::GET, "/arkime_*/_refresh", ""),
            (Method::POST, "/_bulk", ""),
        ];
        for policy in both_modes() {
            for (method, target, body) in &cases {
                if let Err(e) = admit(&policy, method.clone(), target, body) {
                    panic!("strict={} {method} {target}: {e}", policy.strict);
                }
            }
        }
    }

    #[test]
    fn viewer_requests_of_arkime_traffic_section3_pass_in_strict_mode() {
        for (method, target, body) in viewer_traffic() {
            if let Err(e) = admit(&strict(), method.clone(), target, &body) {
                panic!("{method} {target}: {e}");
            }
        }
    }

    #[test]
    fn viewer_requests_of_arkime_traffic_section3_pass_in_lax_mode() {
        for (method, target, body) in viewer_traffic() {
            if let Err(e) = admit(&lax(), method.clone(), target, &body) {
                panic!("{method} {target}: {e}");
            }
        }
    }

    // ── labels and details ──

    #[test]
    fn route_class_labels_are_unique() {
        let mut labels: Vec<&str> = RouteClass::ALL.iter().map(RouteClass::label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), RouteClass::ALL.len());
    }

    #[test]
    fn refusal_details_are_raw_cut_and_escaped_once_in_the_log_line() {
        use crate::logline::escape;
        let long = format!("/x{}", "a".repeat(500));
        let Reject::NotAllowed(d) = refused(&strict(), Method::GET, &long) else {
            panic!()
        };
        assert!(d.chars().count() <= 201, "{}", d.len());
        let r = refused(&lax(), Method::GET, "/_cat/health?a=\u{1b}[31m");
        let logged = escape(r.to_string().as_bytes());
        assert!(
            logged.contains("\\x1b") && !logged.contains('\u{1b}'),
            "{logged}"
        );
        // A backslash in a refused path is kept raw by the decision and doubled once in the log.
        let r = refused(&strict(), Method::GET, "/a\\b");
        let Reject::BadPath(d) = &r else { panic!() };
        assert!(d.ends_with("/a\\b"), "{d}");
        let logged = escape(r.to_string().as_bytes());
        assert!(logged.ends_with("/a\\\\b"), "{logged}");
    }
}
