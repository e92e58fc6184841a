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

use std::borrow::Cow;
use std::fmt::Write as _;

use http::Method;
use serde_json::{Map, Value};

use crate::bulk::scan::{Kind, Scanner, Summary};
use crate::json;
use crate::policy::Policy;
use crate::reject::Reject;

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
    let ctx = Ctx {
        p: &policy.prefix.p,
        o: &policy.prefix.old,
        node: sensor,
        strict: policy.strict,
    };
    let segs: Vec<&str> = match target.path.strip_prefix('/') {
        Some("") => Vec::new(),
        Some(rest) => rest.split('/').collect(),
        None => Vec::new(), // unreachable: Target::parse checked the leading '/'
    };
    let hit = match *method {
        Method::GET => get_route(&ctx, &target.path, &segs),
        Method::POST => post_route(&ctx, &target.path, &segs),
        Method::DELETE => delete_route(&ctx, &segs),
        _ => None,
    };
    let Some(hit) = hit else {
        return Err(Reject::NotAllowed(sanitize(&format!(
            "{method} {}",
            target.path
        ))));
    };

    let query: Cow<'_, str> = if ctx.strict || hit.always_check_query {
        Cow::Owned(strict_query(&ctx, hit.params, target.query)?)
    } else {
        Cow::Borrowed(lax_query(target.query)?)
    };
    let mut forward = String::with_capacity(target.path.len() + query.len() + 8);
    encode_into(&mut forward, &target.path, is_path_safe);
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
        |e: &dyn std::fmt::Display| Reject::BadBody(sanitize(&format!("{}: {e}", rule.label())));
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

// ───────────────────────────── route table ─────────────────────────────

/// The per-request facts the route table matches against.
struct Ctx<'a> {
    p: &'a str,
    o: &'a str,
    node: &'a str,
    strict: bool,
}

/// A matched route before the query is checked.
struct Hit {
    class: RouteClass,
    body: BodyRule,
    params: &'static [Param],
    /// Check the query with the strict rules in lax mode too (routes esProxy.js never admitted,
    /// whose safety depends on the query).
    always_check_query: bool,
}

impl Hit {
    fn new(class: RouteClass, body: BodyRule) -> Hit {
        Hit {
            class,
            body,
            params: NO_PARAMS,
            always_check_query: false,
        }
    }
    /// A read: no body.
    fn read(class: RouteClass) -> Hit {
        Hit::new(class, BodyRule::Empty)
    }
    fn json(class: RouteClass, rule: JsonRule) -> Hit {
        Hit::new(class, BodyRule::Json(rule))
    }
    fn with(mut self, params: &'static [Param]) -> Hit {
        self.params = params;
        self
    }
}

impl Ctx<'_> {
    /// `seg` is `{P}name`.
    fn is(&self, seg: &str, name: &str) -> bool {
        seg.strip_prefix(self.p) == Some(name)
    }

    /// A body rule esProxy.js never inspected: checked in strict mode, streamed in lax mode.
    fn inspect(&self, rule: JsonRule) -> BodyRule {
        if self.strict {
            BodyRule::Json(rule)
        } else {
            BodyRule::Unchecked
        }
    }

    /// `fn-{N}` exactly.
    fn is_sequence_id(&self, id: &str) -> bool {
        id.strip_prefix("fn-") == Some(self.node)
    }

    /// `{N}-<digits>`: the separator stops node `test` from reaching `test2-1` or `test-x-1`.
    fn is_own_file_id(&self, id: &str) -> bool {
        id.strip_prefix(self.node)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(all_digits)
    }

    /// `{N}-<B>-<I>`; strict: `B` ∈ 0..=1439 and `I` ∈ {5, 60, 600}, as capture writes them.
    fn is_own_dstats_id(&self, id: &str) -> bool {
        let Some(rest) = id.strip_prefix(self.node).and_then(|r| r.strip_prefix('-')) else {
            return false;
        };
        let Some((bucket, interval)) = rest.split_once('-') else {
            return false;
        };
        if !all_digits(bucket) || !all_digits(interval) {
            return false;
        }
        !self.strict
            || (canonical_uint(bucket).is_some_and(|b| b <= 1439)
                && matches!(interval, "5" | "60" | "600"))
    }

    /// One sessions index: `{O}sessions2-<x>` or `{P}sessions3-<x>`, `x` non-empty (strict: no
    /// `,`, so a path cannot name extra indices).
    fn is_sessions_index(&self, seg: &str) -> bool {
        let suffix = seg
            .strip_prefix(self.o)
            .and_then(|s| s.strip_prefix("sessions2-"))
            .or_else(|| {
                seg.strip_prefix(self.p)
                    .and_then(|s| s.strip_prefix("sessions3-"))
            });
        suffix.is_some_and(|x| self.is_index_suffix(x))
    }

    /// The `<x>` of a sessions index: non-empty; strict: no `,` (no extra indices).
    fn is_index_suffix(&self, x: &str) -> bool {
        if x.is_empty() {
            return false;
        }
        !self.strict || !x.contains(',')
    }

    /// `{P}sessions3-<x>` (the viewer refreshes the one index it just searched).
    fn is_sessions3_index(&self, seg: &str) -> bool {
        seg.strip_prefix(self.p)
            .and_then(|s| s.strip_prefix("sessions3-"))
            .is_some_and(|x| self.is_index_suffix(x))
    }

    /// Strict: a comma list made only of sessions indices.
    fn is_sessions_list(&self, seg: &str) -> bool {
        seg.split(',').all(|idx| self.is_sessions_index(idx))
    }

    /// Lax (esProxy.js): path starts with `/{O}sessions2` or `/{P}sessions3`, ends with `/_search`.
    fn is_lax_sessions_search(&self, path: &str) -> bool {
        let rest = &path[1..];
        let starts = rest
            .strip_prefix(self.o)
            .is_some_and(|r| r.starts_with("sessions2"))
            || rest
                .strip_prefix(self.p)
                .is_some_and(|r| r.starts_with("sessions3"));
        starts && path.ends_with("/_search")
    }

    /// The alias lists esProxy.js lists, plus the one viewers ≥ 5.7 send (with `partial-`).
    fn is_alias_list(&self, seg: &str) -> bool {
        let (p, o) = (self.p, self.o);
        [
            format!("{o}sessions2-*"),
            format!("{p}sessions3-*"),
            format!("{o}sessions2-*,{p}sessions3-*"),
            format!("sessions2-*,partial-{p}sessions3-*,{p}sessions3-*"),
            format!("{o}sessions2-*,partial-{p}sessions3-*,{p}sessions3-*"),
        ]
        .iter()
        .any(|a| a == seg)
    }

    /// The viewer's audit index. Lax: esProxy.js's `^/[^/]*history_v[^/]*/_doc$`; strict:
    /// `{P}history_v<digits>-<alphanumerics>` (the viewer writes `{P}history_v1-YYwWW`).
    fn is_history_index(&self, seg: &str) -> bool {
        if !self.strict {
            return seg.contains("history_v");
        }
        let Some(rest) = seg
            .strip_prefix(self.p)
            .and_then(|s| s.strip_prefix("history_v"))
        else {
            return false;
        };
        rest.split_once('-').is_some_and(|(v, when)| {
            all_digits(v) && !when.is_empty() && when.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    }
}

/// GET routes, in order. All reads: no body.
fn get_route(c: &Ctx, path: &str, segs: &[&str]) -> Option<Hit> {
    use RouteClass::*;
    let hit = match segs {
        [] => Hit::read(Root),
        ["_cat", "health"] => Hit::read(Health).with(HEALTH),
        ["_cluster", "health"] => Hit::read(Health),
        ["_nodes", "stats", "jvm,process,fs,os,indices,thread_pool"] => Hit::read(Health),
        ["_refresh"] => Hit::read(Refresh),
        ["_template", t] if c.is(t, "sessions3_template") => Hit::read(Template).with(TEMPLATE),
        ["_template", t] if t.strip_prefix(c.o) == Some("sessions2_template") => {
            Hit::read(Template).with(TEMPLATE)
        }
        [idx, "_alias"] if c.is_alias_list(idx) => Hit::read(Alias),
        // Capture's shutdown refresh of its own indices.
        [idx, "_refresh"] if c.is(idx, "*") => Hit::read(Refresh),
        [idx, "_stats"] if c.is(idx, "stats") => Hit::read(Stats),
        [idx, "_stats"] if c.is(idx, "dstats") => Hit::read(Dstats),
        [idx, "_stats"] if c.is(idx, "sequence") => Hit::read(Sequence),
        [idx, "_stats"] if c.is(idx, "files") => Hit::read(Files),
        [idx, "_stats"] if c.is(idx, "users") => Hit::read(Users),
        [idx, "_count"] if c.is(idx, "users") => Hit::read(Users).with(COUNT),
        [idx, "_mapping"] if c.is(idx, "files") => Hit::read(Files),
        [idx, "_mapping"] if c.is(idx, "queries") => Hit::read(Queries),
        [idx, "_search"] if c.is(idx, "fields") => Hit::read(Fields).with(FIELDS_GET),
        // Offline re-processing looks up its own file by name; the `q` check is what keeps it
        // to the sensor's node, so it applies in lax mode too.
        [idx, "_search"] if c.is(idx, "files") => Hit {
            always_check_query: true,
            ..Hit::read(Files).with(FILES_LOOKUP)
        },
        [idx, "_doc", _user] if c.is(idx, "users") => Hit::read(Users),
        [idx, "_doc", _id] if c.is(idx, "hunts") => Hit::read(Hunts),
        [idx, "_doc", id] if c.is(idx, "sequence") && c.is_sequence_id(id) => Hit::read(Sequence),
        [idx, "_doc", id] if c.is(idx, "stats") && *id == c.node => Hit::read(Stats),
        [idx, "_doc", id] if c.is(idx, "files") && c.is_own_file_id(id) => Hit::read(Files),
        [idx, "_doc", _id] if c.is_sessions_index(idx) => Hit::read(Sessions),
        // The tagger plugin: strict admits only its two reads.
        ["tagger", "_search"] if c.strict => Hit::read(Tagger).with(TAGGER_SEARCH),
        ["tagger", "_source", _file] if c.strict => Hit::read(Tagger),
        _ if !c.strict && path.starts_with("/tagger") => Hit::read(Tagger),
        _ => return None,
    };
    Some(hit)
}

/// POST routes, in order.
fn post_route(c: &Ctx, path: &str, segs: &[&str]) -> Option<Hit> {
    use JsonRule::*;
    use RouteClass::*;
    let hit = match segs {
        ["_bulk"] => Hit::new(Bulk, BodyRule::Bulk).with(BULK),
        [idx, "_search"] if c.is(idx, "stats") => {
            Hit::new(Stats, c.inspect(StatsSearch)).with(SEARCH)
        }
        [idx, "_search"] if c.is(idx, "fields") => {
            Hit::new(RouteClass::Fields, c.inspect(FieldsSearch)).with(SEARCH)
        }
        [idx, "_search"] if c.is(idx, "lookups") => {
            Hit::new(Lookups, c.inspect(LookupsSearch)).with(SEARCH)
        }
        [idx, "_search"] if c.is(idx, "files") => Hit::json(Files, FilesSearch).with(SEARCH),
        [idx, "_count"] if c.is(idx, "users") => Hit::json(Users, UsersCount).with(COUNT),
        [idx, "_doc", id] if c.is(idx, "sequence") && c.is_sequence_id(id) => {
            Hit::new(Sequence, c.inspect(SequenceDoc)).with(VERSIONED)
        }
        [idx, "_doc", id] if c.is(idx, "stats") && *id == c.node => {
            Hit::new(Stats, c.inspect(NodeStatsDoc)).with(VERSIONED)
        }
        [idx, "_doc", id] if c.is(idx, "dstats") && c.is_own_dstats_id(id) => {
            Hit::new(Dstats, c.inspect(NodeStatsDoc))
        }
        [idx, "_doc", id] if c.is(idx, "files") && c.is_own_file_id(id) => {
            Hit::new(Files, c.inspect(FilesDoc)).with(REFRESH)
        }
        [idx, "_update", id] if c.is(idx, "files") && c.is_own_file_id(id) => {
            Hit::json(Files, FilesUpdate)
        }
        [idx, "_update", _id] if c.is_sessions_index(idx) => {
            Hit::json(Sessions, SessionUpdate).with(UPDATE)
        }
        // The viewer refreshes a sessions index after a by-id miss.
        [idx, "_refresh"] if c.is_sessions3_index(idx) => Hit::read(Refresh),
        [idx, "_doc"] if c.is_history_index(idx) => {
            Hit::new(History, c.inspect(HistoryDoc)).with(HISTORY)
        }
        [list, "_search"] if c.strict && c.is_sessions_list(list) => Hit::json(
            Sessions,
            SessionSearch {
                single_index: !list.contains(','),
            },
        )
        .with(SEARCH),
        _ if !c.strict && c.is_lax_sessions_search(path) => Hit::json(
            Sessions,
            SessionSearch {
                single_index: false,
            },
        ),
        // Lax only: capture writes field definitions through `_bulk`, and the tagger plugin
        // only reads.
        [idx, "_doc", _id] if !c.strict && c.is(idx, "fields") => {
            Hit::new(RouteClass::Fields, BodyRule::Unchecked)
        }
        _ if !c.strict && path.starts_with("/tagger") => Hit::new(Tagger, BodyRule::Unchecked),
        _ => return None,
    };
    Some(hit)
}

/// DELETE routes: only the viewer's expiry of the sensor's own file records.
fn delete_route(c: &Ctx, segs: &[&str]) -> Option<Hit> {
    match segs {
        [idx, "_doc", id] if c.is(idx, "files") && c.is_own_file_id(id) => {
            Some(Hit::read(RouteClass::Files).with(REFRESH))
        }
        _ => None,
    }
}

// ───────────────────────────── query parameters ─────────────────────────────

/// One allowed query parameter: its decoded name and what its decoded value may be.
type Param = (&'static str, Val);

/// What a query parameter's decoded value may be.
#[derive(Debug, Clone, Copy)]
enum Val {
    /// No value, or `true` (`rest_total_hits_as_int` arrives both ways).
    Flag,
    /// Exactly this value.
    Exact(&'static str),
    /// A plain unsigned decimal.
    Uint,
    /// An ES time value (`30s`, `5m`, …).
    Duration,
    /// Required: `node:"N" AND name:"F"` for the sensor's own node.
    FilesQ,
}

const NO_PARAMS: &[Param] = &[];
const HEALTH: &[Param] = &[("format", Val::Exact("json"))];
const TEMPLATE: &[Param] = &[("filter_path", Val::Exact("**._meta"))];
const FIELDS_GET: &[Param] = &[("size", Val::Uint)];
const FILES_LOOKUP: &[Param] = &[
    ("rest_total_hits_as_int", Val::Flag),
    ("size", Val::Uint),
    ("sort", Val::Exact("num:desc")),
    ("q", Val::FilesQ),
];
const TAGGER_SEARCH: &[Param] = &[("_source", Val::Exact("md5")), ("size", Val::Uint)];
const COUNT: &[Param] = &[("ignore_unavailable", Val::Exact("true"))];
const SEARCH: &[Param] = &[("rest_total_hits_as_int", Val::Flag)];
const VERSIONED: &[Param] = &[
    ("version_type", Val::Exact("external")),
    ("version", Val::Uint),
];
const REFRESH: &[Param] = &[("refresh", Val::Exact("true"))];
const UPDATE: &[Param] = &[
    ("retry_on_conflict", Val::Exact("3")),
    ("timeout", Val::Exact("10m")),
];
const HISTORY: &[Param] = &[
    ("refresh", Val::Exact("true")),
    ("timeout", Val::Exact("10m")),
];
/// Capture's `esBulkQuery` may add a timeout (`/_bulk?timeout=…`).
const BULK: &[Param] = &[("timeout", Val::Duration)];

/// Strict query: form-decoded, every parameter allowed for the route, none twice; returns the
/// canonical re-encoding of what was checked (in the order received).
fn strict_query(ctx: &Ctx, params: &[Param], raw: Option<&str>) -> Result<String, Reject> {
    debug_assert!(params.len() <= 32);
    let mut seen: u32 = 0;
    let mut out = String::new();
    for piece in raw.unwrap_or("").split('&') {
        if piece.is_empty() {
            if raw.is_some_and(|r| !r.is_empty()) {
                return Err(bad_query("empty parameter", raw));
            }
            continue;
        }
        let (k, v) = match piece.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (piece, None),
        };
        let key = form_decode(k).ok_or_else(|| bad_query("malformed parameter name", raw))?;
        let Some(i) = params.iter().position(|(name, _)| *name == key) else {
            return Err(bad_query(&format!("parameter {key:?} not allowed"), raw));
        };
        if seen & (1 << i) != 0 {
            return Err(bad_query(&format!("parameter {key:?} repeated"), raw));
        }
        seen |= 1 << i;
        let value = match v {
            Some(v) => {
                Some(form_decode(v).ok_or_else(|| bad_query("malformed parameter value", raw))?)
            }
            None => None,
        };
        if !value_ok(ctx, params[i].1, value.as_deref()) {
            return Err(bad_query(&format!("bad value for {key:?}"), raw));
        }
        if !out.is_empty() {
            out.push('&');
        }
        encode_into(&mut out, &key, is_query_safe);
        if let Some(value) = value {
            out.push('=');
            encode_into(&mut out, &value, is_query_safe);
        }
    }
    for (i, (name, val)) in params.iter().enumerate() {
        if matches!(val, Val::FilesQ) && seen & (1 << i) == 0 {
            return Err(bad_query(&format!("parameter {name:?} required"), raw));
        }
    }
    Ok(out)
}

fn value_ok(ctx: &Ctx, val: Val, value: Option<&str>) -> bool {
    match (val, value) {
        (Val::Flag, None) => true,
        (Val::Flag, Some(v)) => v == "true",
        (Val::Exact(want), Some(v)) => v == want,
        (Val::Uint, Some(v)) => all_digits(v),
        (Val::Duration, Some(v)) => is_duration(v),
        (Val::FilesQ, Some(v)) => is_own_files_q(ctx.node, v),
        (_, None) => false,
    }
}

/// Capture's offline lookup `node:"N" AND name:"F"`: exactly the sensor's node, and a file name
/// that cannot close the phrase (no `"` or `\`).
fn is_own_files_q(node: &str, q: &str) -> bool {
    q.strip_prefix("node:\"")
        .and_then(|r| r.strip_prefix(node))
        .and_then(|r| r.strip_prefix("\" AND name:\""))
        .and_then(|r| r.strip_suffix('"'))
        .is_some_and(|name| !name.is_empty() && !name.contains(['"', '\\']))
}

fn is_duration(v: &str) -> bool {
    let digits = v.bytes().take_while(u8::is_ascii_digit).count();
    (1..=9).contains(&digits)
        && matches!(
            &v[digits..],
            "d" | "h" | "m" | "s" | "ms" | "micros" | "nanos"
        )
}

/// Lax query: forwarded as received (esProxy.js does), but it must be well formed: no control
/// bytes or blanks, and only complete `%XX` escapes.
fn lax_query(raw: Option<&str>) -> Result<&str, Reject> {
    let Some(q) = raw else { return Ok("") };
    let b = q.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c <= b' ' || c == 0x7f => return Err(bad_query("control byte or blank", raw)),
            b'%' => {
                if b.get(i + 1..i + 3).and_then(hex_pair).is_none() {
                    return Err(bad_query("malformed percent escape", raw));
                }
                i += 3;
            }
            _ => i += 1,
        }
    }
    Ok(q)
}

/// Decodes one form-encoded component (`+` is a space, `%XX` a byte) to UTF-8 text without
/// control characters; `None` if malformed.
fn form_decode(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                out.push(hex_pair(b.get(i + 1..i + 3)?)?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.chars().any(char::is_control) {
        return None;
    }
    Some(s)
}

fn bad_query(why: &str, raw: Option<&str>) -> Reject {
    Reject::BadQuery(sanitize(&format!("{why}: {}", raw.unwrap_or(""))))
}

// ───────────────────────────── path canonicalisation ─────────────────────────────

/// A request target split and canonicalised: the decoded path and the raw query.
struct Target<'a> {
    /// Decoded, printable ASCII, starts with `/`, no empty, `.` or `..` segments.
    path: String,
    query: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn parse(raw: &'a str) -> Result<Target<'a>, Reject> {
        let bad = |why: &str| Reject::BadPath(sanitize(&format!("{why}: {raw}")));
        if raw.contains('#') {
            return Err(bad("fragment marker"));
        }
        let (raw_path, query) = match raw.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (raw, None),
        };
        if !raw_path.starts_with('/') {
            return Err(bad("not an origin-form path"));
        }
        let b = raw_path.as_bytes();
        let mut path = String::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            let c = if b[i] == b'%' {
                let c = b
                    .get(i + 1..i + 3)
                    .and_then(hex_pair)
                    .ok_or_else(|| bad("malformed percent escape"))?;
                // Encoded separators, dots and escapes are how traversal hides from a
                // normaliser; refuse rather than guess what upstream will make of them.
                if matches!(c, b'/' | b'.' | b'?' | b'#' | b'\\' | b'%') {
                    return Err(bad("encoded separator"));
                }
                i += 3;
                c
            } else {
                i += 1;
                b[i - 1]
            };
            if !(0x21..=0x7e).contains(&c) {
                return Err(bad("control, blank or non-ASCII byte"));
            }
            if c == b'\\' || c == b';' {
                return Err(bad("backslash or semicolon"));
            }
            path.push(char::from(c));
        }
        if path != "/" {
            for seg in path[1..].split('/') {
                match seg {
                    "" => return Err(bad("empty path segment")),
                    "." | ".." => return Err(bad("dot segment")),
                    _ => {}
                }
            }
        }
        Ok(Target { path, query })
    }
}

fn hex_pair(two: &[u8]) -> Option<u8> {
    let hi = char::from(*two.first()?).to_digit(16)?;
    let lo = char::from(*two.get(1)?).to_digit(16)?;
    Some((hi * 16 + lo) as u8)
}

/// Bytes a canonical path carries unencoded: unreserved, plus `/` `,` `*` `:` `@`.
fn is_path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/,*:@".contains(&b)
}

/// Bytes a canonical query value carries unencoded (`+`, `&`, `=`, `%`, quotes are encoded).
fn is_query_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~/,*:@".contains(&b)
}

fn encode_into(out: &mut String, s: &str, safe: fn(u8) -> bool) {
    for &b in s.as_bytes() {
        if safe(b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

// ───────────────────────────── body rules ─────────────────────────────

type Verdict = Result<(), &'static str>;

fn obj(v: &Value) -> Result<&Map<String, Value>, &'static str> {
    v.as_object().ok_or("not a JSON object")
}

/// Every key of `m` is one of `allowed`.
fn keys_within(m: &Map<String, Value>, allowed: &[&str]) -> Verdict {
    if m.keys().all(|k| allowed.contains(&k.as_str())) {
        Ok(())
    } else {
        Err("unexpected key")
    }
}

/// `m` is `{key: <value>}` and nothing else.
fn only<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let m = v.as_object()?;
    if m.len() == 1 {
        m.get(key)
    } else {
        None
    }
}

fn is_uint(v: &Value) -> bool {
    v.as_u64().is_some()
}

fn is_str_array(v: &Value) -> bool {
    v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
}

/// `_source` as the viewer sends it: a flag, a field, or a field list.
fn is_source_filter(v: &Value) -> bool {
    v.is_boolean() || v.is_string() || is_str_array(v)
}

/// Optional typed top-level fields shared by the viewer's searches.
fn common_search_fields(m: &Map<String, Value>) -> Verdict {
    let typed = [
        ("size", is_uint as fn(&Value) -> bool),
        ("profile", Value::is_boolean),
        ("_source", is_source_filter),
        ("fields", is_str_array),
    ];
    for (key, ok) in typed {
        if m.get(key).is_some_and(|v| !ok(v)) {
            return Err("badly typed search option");
        }
    }
    Ok(())
}

/// Keys no admitted search carries at any depth: scripts, runtime fields, aggregations and the
/// other expensive or data-exposing search features (SPEC §4 loose spots).
const FORBIDDEN_KEYS: &[&str] = &[
    "script",
    "_script",
    "script_score",
    "script_fields",
    "scripted_metric",
    "runtime_mappings",
    "aggs",
    "aggregations",
    "stored_fields",
    "suggest",
    "collapse",
    "rescore",
];

fn no_forbidden_keys(v: &Value) -> Verdict {
    match v {
        Value::Object(m) => {
            if m.keys().any(|k| FORBIDDEN_KEYS.contains(&k.as_str())) {
                return Err("script, aggregation or other forbidden search feature");
            }
            m.values().try_for_each(no_forbidden_keys)
        }
        Value::Array(a) => a.iter().try_for_each(no_forbidden_keys),
        _ => Ok(()),
    }
}

/// The rules decided by a document's top level, from the scanner's summary of it: an object
/// whose node field (the one the scan was asked for) is the sensor; `{}` for a sequence.
fn top_level_verdict(rule: &JsonRule, sum: &Summary<'_>, sensor: &str) -> Verdict {
    if sum.top != Kind::Object {
        return Err("not a JSON object");
    }
    match rule {
        JsonRule::NodeStatsDoc | JsonRule::FilesDoc => match sum.target {
            Some((Kind::String, Some(raw)))
                if raw.decodes_to(sensor.as_bytes(), &mut Vec::new()) =>
            {
                Ok(())
            }
            Some(_) => Err("node field is not the sensor"),
            None => Err("node field missing"),
        },
        JsonRule::SequenceDoc if sum.top_keys > 0 => Err("sequence body is not {}"),
        _ => Ok(()),
    }
}

/// `{"doc": {…}}` only, and the partial doc cannot move the file to another node.
fn files_update(v: &Value, node: &str) -> Verdict {
    let doc = only(v, "doc")
        .ok_or("not exactly one key \"doc\"")?
        .as_object()
        .ok_or("doc is not an object")?;
    match doc.get("node") {
        None => Ok(()),
        Some(Value::String(s)) if s == node => Ok(()),
        Some(_) => Err("doc.node is not the sensor"),
    }
}

/// esProxy.js: `query.bool.filter[0].terms.node` (or `must[0]` without a filter) includes N.
fn files_search_lax(v: &Value, node: &str) -> Verdict {
    let bool_q = v.pointer("/query/bool").ok_or("no query.bool")?;
    let clause = match bool_q.get("filter") {
        Some(f) if truthy(f) => f,
        _ => bool_q.get("must").ok_or("no filter or must")?,
    };
    let nodes = clause
        .pointer("/0/terms/node")
        .and_then(Value::as_array)
        .ok_or("no terms.node list")?;
    if nodes.iter().any(|n| n.as_str() == Some(node)) {
        Ok(())
    } else {
        Err("node list does not include the sensor")
    }
}

/// JavaScript truthiness, for the lax rules that copy esProxy.js's `if (x)`.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// The viewer's expiry search (arkime-traffic §3): `filter` (older viewers: `must`) with
/// `[{terms:{node:[N]}}, {bool:{should:[{wildcard:{name}}…]}}]`, `must_not` the locked files.
fn files_search_strict(v: &Value, node: &str) -> Verdict {
    no_forbidden_keys(v)?;
    let m = obj(v)?;
    keys_within(m, &["query", "size", "from", "sort", "_source", "profile"])?;
    common_search_fields(m)?;
    if m.get("from")
        .is_some_and(|f| !is_uint(f) && !f.as_str().is_some_and(all_digits))
    {
        return Err("bad from");
    }
    if let Some(sort) = m.get("sort") {
        let order = only(sort, "first")
            .and_then(|f| only(f, "order"))
            .and_then(Value::as_str);
        if !matches!(order, Some("asc" | "desc")) {
            return Err("sort is not by first");
        }
    }
    let query = m.get("query").ok_or("no query")?;
    let bool_q = only(query, "bool")
        .and_then(Value::as_object)
        .ok_or("query is not one bool")?;
    keys_within(bool_q, &["filter", "must", "must_not"])?;
    let clauses = match (bool_q.get("filter"), bool_q.get("must")) {
        (Some(c), None) | (None, Some(c)) => c.as_array().ok_or("filter is not a list")?,
        _ => return Err("need exactly one of filter or must"),
    };
    let nodes = clauses
        .first()
        .and_then(|c| only(c, "terms"))
        .and_then(|t| only(t, "node"))
        .and_then(Value::as_array)
        .ok_or("first clause is not terms.node")?;
    if nodes.is_empty() || nodes.iter().any(|n| n.as_str() != Some(node)) {
        return Err("node list is not the sensor alone");
    }
    match clauses.get(1..) {
        Some([]) | None => {}
        Some([dirs]) => {
            let should = only(dirs, "bool")
                .and_then(|b| only(b, "should"))
                .and_then(Value::as_array)
                .ok_or("second clause is not bool.should")?;
            let wildcard_name = |c: &Value| {
                only(c, "wildcard")
                    .and_then(|w| only(w, "name"))
                    .is_some_and(Value::is_string)
            };
            if !should.iter().all(wildcard_name) {
                return Err("directory clause is not wildcard on name");
            }
        }
        Some(_) => return Err("extra filter clauses"),
    }
    if let Some(not) = bool_q.get("must_not") {
        let locked = only(not, "term").and_then(|t| only(t, "locked"));
        if !locked.is_some_and(|l| l.is_number() || l.is_boolean()) {
            return Err("must_not is not term.locked");
        }
    }
    Ok(())
}

const ROOT_ID_KEYS: &[&str] = &["size", "_source", "sort", "query", "profile"];

/// esProxy.js: `query.ids.values` has one element, or a rootId search.
fn session_search_lax(v: &Value) -> Verdict {
    let one_id = v
        .pointer("/query/ids/values")
        .and_then(Value::as_array)
        .is_some_and(|a| a.len() == 1);
    if one_id || root_id_shape(v) {
        Ok(())
    } else {
        Err("neither a one-id nor a rootId search")
    }
}

/// esProxy.js 6.7's rootId search: top keys within [`ROOT_ID_KEYS`]; `query` is either
/// `{term:{rootId:str}}` or `{bool:{filter:[{term:{rootId:str}}, …]}}` (the viewer ANDs the
/// user's forced expression after the term, which can only narrow it).
fn root_id_shape(v: &Value) -> bool {
    let Some(m) = v.as_object() else { return false };
    if keys_within(m, ROOT_ID_KEYS).is_err() {
        return false;
    }
    let Some(q) = m.get("query").and_then(Value::as_object) else {
        return false;
    };
    if q.len() != 1 {
        return false;
    }
    let term_is_root_id = |t: Option<&Value>| {
        t.and_then(Value::as_object)
            .is_some_and(|t| t.len() == 1 && t.get("rootId").is_some_and(Value::is_string))
    };
    if let Some(term) = q.get("term") {
        return term_is_root_id(Some(term));
    }
    let Some(b) = q.get("bool").and_then(Value::as_object) else {
        return false;
    };
    b.len() == 1
        && b.get("filter")
            .and_then(Value::as_array)
            .and_then(|f| f.first())
            .is_some_and(|first| term_is_root_id(first.get("term")))
}

/// Strict: the viewer's by-id lookup on one index, or its rootId search; no scripts or
/// aggregations anywhere.
fn session_search_strict(v: &Value, single_index: bool) -> Verdict {
    no_forbidden_keys(v)?;
    let m = obj(v)?;
    common_search_fields(m)?;
    if v.pointer("/query/ids").is_some() {
        if !single_index {
            return Err("id search over more than one index");
        }
        keys_within(m, &["query", "_source", "fields", "size", "profile"])?;
        let values = m
            .get("query")
            .and_then(|q| only(q, "ids"))
            .and_then(|i| only(i, "values"))
            .and_then(Value::as_array)
            .ok_or("query is not ids.values")?;
        return match values.as_slice() {
            [Value::String(_)] => Ok(()),
            _ => Err("not exactly one id"),
        };
    }
    if !root_id_shape(v) {
        return Err("neither a one-id nor a rootId search");
    }
    // The rootId term must stand alone as the first filter clause.
    if let Some(first) = v.pointer("/query/bool/filter/0") {
        if only(first, "term").is_none() {
            return Err("rootId clause carries extra keys");
        }
    }
    Ok(())
}

/// esProxy.js: a `script` and no `doc`.
fn session_update_lax(v: &Value) -> Verdict {
    let m = obj(v)?;
    if m.contains_key("script") && !m.contains_key("doc") {
        Ok(())
    } else {
        Err("no script, or a doc")
    }
}

/// Which parameters a known viewer script takes.
#[derive(Clone, Copy)]
enum ScriptParams {
    Tags,
    Hunt,
}

/// The painless scripts the viewer sends to tag and hunt sessions (viewer db.js
/// addTagsToSession, removeTagsFromSession, addHuntToSession, removeHuntFromSession; older
/// viewers name the local `index` instead of `idx`). Compared token by token, so layout does
/// not matter.
const VIEWER_SCRIPTS: &[(&str, ScriptParams)] = &[
    (
        "if (ctx._source.tags != null) {
           for (int i = 0; i < params.tags.length; i++) {
             if (ctx._source.tags.indexOf(params.tags[i]) == -1) { ctx._source.tags.add(params.tags[i]); }
           }
           ctx._source.tagsCnt = ctx._source.tags.length;
         } else {
           ctx._source.tags = params.tags;
           ctx._source.tagsCnt = params.tags.length;
         }",
        ScriptParams::Tags,
    ),
    (
        "if (ctx._source.tags != null) {
           for (int i = 0; i < params.tags.length; i++) {
             int idx = ctx._source.tags.indexOf(params.tags[i]);
             if (idx > -1) { ctx._source.tags.remove(idx); }
           }
           ctx._source.tagsCnt = ctx._source.tags.length;
           if (ctx._source.tagsCnt == 0) { ctx._source.remove(\"tags\"); ctx._source.remove(\"tagsCnt\"); }
         }",
        ScriptParams::Tags,
    ),
    (
        "if (ctx._source.tags != null) {
           for (int i = 0; i < params.tags.length; i++) {
             int index = ctx._source.tags.indexOf(params.tags[i]);
             if (index > -1) { ctx._source.tags.remove(index); }
           }
           ctx._source.tagsCnt = ctx._source.tags.length;
           if (ctx._source.tagsCnt == 0) { ctx._source.remove(\"tags\"); ctx._source.remove(\"tagsCnt\"); }
         }",
        ScriptParams::Tags,
    ),
    (
        "if (ctx._source.huntId != null) { ctx._source.huntId.add(params.huntId); }
         else { ctx._source.huntId = [ params.huntId ]; }
         if (ctx._source.huntName != null) { ctx._source.huntName.add(params.huntName); }
         else { ctx._source.huntName = [ params.huntName ]; }",
        ScriptParams::Hunt,
    ),
    (
        "if (ctx._source.huntId != null) {
           int idx = ctx._source.huntId.indexOf(params.huntId);
           if (idx > -1) { ctx._source.huntId.remove(idx); }
         }
         if (ctx._source.huntName != null) {
           int idx = ctx._source.huntName.indexOf(params.huntName);
           if (idx > -1) { ctx._source.huntName.remove(idx); }
         }",
        ScriptParams::Hunt,
    ),
    (
        "if (ctx._source.huntId != null) {
           int index = ctx._source.huntId.indexOf(params.huntId);
           if (index > -1) { ctx._source.huntId.remove(index); }
         }
         if (ctx._source.huntName != null) {
           int index = ctx._source.huntName.indexOf(params.huntName);
           if (index > -1) { ctx._source.huntName.remove(index); }
         }",
        ScriptParams::Hunt,
    ),
];

/// Strict: `{"script":{"source","lang":"painless","params"}}` where the source is one of the
/// viewer's tag/hunt scripts and the params are exactly the ones it takes.
fn session_update_strict(v: &Value) -> Verdict {
    let script = only(v, "script")
        .and_then(Value::as_object)
        .ok_or("not exactly one key \"script\"")?;
    keys_within(script, &["source", "lang", "params"])?;
    if script.get("lang").and_then(Value::as_str) != Some("painless") {
        return Err("lang is not painless");
    }
    let source = script
        .get("source")
        .and_then(Value::as_str)
        .ok_or("no script source")?;
    let params = script
        .get("params")
        .and_then(Value::as_object)
        .ok_or("no script params")?;
    let (_, kind) = VIEWER_SCRIPTS
        .iter()
        .find(|(known, _)| Tokens::new(known).eq(Tokens::new(source)))
        .ok_or("not one of the viewer's tag/hunt scripts")?;
    let ok = match kind {
        ScriptParams::Tags => params.len() == 1 && params.get("tags").is_some_and(is_str_array),
        ScriptParams::Hunt => {
            params.len() == 2
                && params.get("huntId").is_some_and(Value::is_string)
                && params.get("huntName").is_some_and(Value::is_string)
        }
    };
    if ok {
        Ok(())
    } else {
        Err("script params are not the viewer's")
    }
}

/// Painless source as tokens: identifiers/numbers, string literals, single punctuation
/// characters; whitespace dropped. Two sources with equal tokens are the same script or one of
/// them does not compile.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Tokens<'a> {
        Tokens { rest: s }
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;
    fn next(&mut self) -> Option<&'a str> {
        let s = self
            .rest
            .trim_start_matches(|c: char| c.is_ascii_whitespace());
        let b = s.as_bytes();
        let first = *b.first()?;
        let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        let len = if word(&first) {
            b.iter().position(|c| !word(c)).unwrap_or(b.len())
        } else if first == b'"' || first == b'\'' {
            let mut i = 1;
            let mut end = b.len();
            while i < b.len() {
                if b[i] == b'\\' {
                    i += 2;
                } else if b[i] == first {
                    end = i + 1;
                    break;
                } else {
                    i += 1;
                }
            }
            end
        } else {
            s.chars().next().map_or(1, char::len_utf8)
        };
        let (tok, rest) = s.split_at(len);
        self.rest = rest;
        Some(tok)
    }
}

/// Strict: the viewer's `{"query":{"match":{"hostname":H}}}`.
fn stats_search(v: &Value) -> Verdict {
    no_forbidden_keys(v)?;
    let m = obj(v)?;
    keys_within(m, &["query", "size", "profile"])?;
    common_search_fields(m)?;
    let host = m
        .get("query")
        .and_then(|q| only(q, "match"))
        .and_then(|q| only(q, "hostname"));
    if host.is_some_and(Value::is_string) {
        Ok(())
    } else {
        Err("query is not match.hostname")
    }
}

/// Strict: the viewer's `{"size":N}`.
fn fields_search(v: &Value) -> Verdict {
    let m = obj(v)?;
    keys_within(m, &["size", "profile"])?;
    common_search_fields(m)
}

/// Strict: the viewer's shortcuts search, `bool.should` of `term` on `shared` / `userId`.
fn lookups_search(v: &Value) -> Verdict {
    no_forbidden_keys(v)?;
    let m = obj(v)?;
    keys_within(m, &["query", "size", "profile"])?;
    common_search_fields(m)?;
    let should = m
        .get("query")
        .and_then(|q| only(q, "bool"))
        .and_then(|b| only(b, "should"))
        .and_then(Value::as_array)
        .ok_or("query is not bool.should")?;
    let shared_or_user = |c: &Value| {
        only(c, "term").and_then(Value::as_object).is_some_and(|t| {
            t.len() == 1
                && t.iter().all(|(k, v)| {
                    (k == "shared" && v.is_boolean()) || (k == "userId" && v.is_string())
                })
        })
    };
    if (1..=2).contains(&should.len()) && should.iter().all(shared_or_user) {
        Ok(())
    } else {
        Err("should clauses are not shared/userId terms")
    }
}

/// The viewer's `{"query":{"bool":{"must_not":{"term":{"userId":…}}}}}`.
fn users_count(v: &Value) -> Verdict {
    let user = only(v, "query")
        .and_then(|q| only(q, "bool"))
        .and_then(|b| only(b, "must_not"))
        .and_then(|n| only(n, "term"))
        .and_then(|t| only(t, "userId"));
    if user.is_some_and(Value::is_string) {
        Ok(())
    } else {
        Err("not the viewer's users count")
    }
}

// ───────────────────────────── small helpers ─────────────────────────────

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

/// Log-safe text: control and bidi characters escaped, backslashes doubled, cut to 200 chars.
fn sanitize(s: &str) -> String {
    const MAX_CHARS: usize = 200;
    let mut out = String::with_capacity(s.len().min(MAX_CHARS) + 4);
    for (n, c) in s.chars().enumerate() {
        if n == MAX_CHARS {
            out.push('…');
            break;
        }
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
            {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Prefix;

    const NODE: &str = "toronto01";

    fn strict() -> Policy {
        Policy::default()
    }

    fn lax() -> Policy {
        Policy {
            strict: false,
            ..Policy::default()
        }
    }

    /// Arkime's test prefix (`tests_`, old prefix `tests_`).
    fn tests_prefix(strict: bool) -> Policy {
        Policy {
            prefix: Prefix::new(Some("tests")),
            strict,
            ..Policy::default()
        }
    }

    fn route(policy: &Policy, method: Method, target: &str) -> Result<Route, Reject> {
        classify(policy, NODE, &method, target)
    }

    fn ok(policy: &Policy, method: Method, target: &str) -> Route {
        route(policy, method.clone(), target)
            .unwrap_or_else(|e| panic!("{method} {target} refused: {e}"))
    }

    fn refused(policy: &Policy, method: Method, target: &str) -> Reject {
        match route(policy, method.clone(), target) {
            Ok(r) => panic!("{method} {target} admitted: {r:?}"),
            Err(e) => e,
        }
    }

    fn both_modes() -> [Policy; 2] {
        [strict(), lax()]
    }

    /// Classifies and checks the body, as the proxy would.
    fn admit(policy: &Policy, method: Method, target: &str, body: &str) -> Result<Route, Reject> {
        let r = route(policy, method, target)?;
        match r.body {
            BodyRule::Json(rule) => check_body(policy, NODE, &rule, body.as_bytes())?,
            BodyRule::Empty if !body.is_empty() => panic!("{target}: body on an Empty route"),
            _ => {}
        }
        Ok(r)
    }

    fn json_rule(r: &Route) -> JsonRule {
        match r.body {
            BodyRule::Json(rule) => rule,
            other => panic!("expected a JSON body rule, got {other:?}"),
        }
    }

    fn body_ok(policy: &Policy, rule: JsonRule, body: &str) -> bool {
        check_body(policy, NODE, &rule, body.as_bytes()).is_ok()
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

    const TAG_ADD: &str = r#"
        if (ctx._source.tags != null) {
          for (int i = 0; i < params.tags.length; i++) {
            if (ctx._source.tags.indexOf(params.tags[i]) == -1) {
              ctx._source.tags.add(params.tags[i]);
            }
          }
          ctx._source.tagsCnt = ctx._source.tags.length;
        } else {
          ctx._source.tags = params.tags;
          ctx._source.tagsCnt = params.tags.length;
        }
      "#;
    const TAG_REMOVE: &str = r#"
        if (ctx._source.tags != null) {
          for (int i = 0; i < params.tags.length; i++) {
            int idx = ctx._source.tags.indexOf(params.tags[i]);
            if (idx > -1) { ctx._source.tags.remove(idx); }
          }
          ctx._source.tagsCnt = ctx._source.tags.length;
          if (ctx._source.tagsCnt == 0) {
            ctx._source.remove("tags");
            ctx._source.remove("tagsCnt");
          }
        }
      "#;
    const HUNT_ADD: &str = r#"
        if (ctx._source.huntId != null) {
          ctx._source.huntId.add(params.huntId);
        } else {
          ctx._source.huntId = [ params.huntId ];
        }
        if (ctx._source.huntName != null) {
          ctx._source.huntName.add(params.huntName);
        } else {
          ctx._source.huntName = [ params.huntName ];
        }
      "#;
    const HUNT_REMOVE_OLD: &str = r#"
    if (ctx._source.huntId != null) {
      int index = ctx._source.huntId.indexOf(params.huntId);
      if (index > -1) { ctx._source.huntId.remove(index); }
    }
    if (ctx._source.huntName != null) {
      int index = ctx._source.huntName.indexOf(params.huntName);
      if (index > -1) { ctx._source.huntName.remove(index); }
    }
  "#;

    fn update_body(source: &str, params: serde_json::Value) -> String {
        serde_json::json!({"script": {"source": source, "lang": "painless", "params": params}})
            .to_string()
    }

    fn viewer_traffic() -> Vec<(Method, &'static str, String)> {
        let tags = serde_json::json!({"tags": ["suspicious"]});
        let hunt = serde_json::json!({"huntId": "h1", "huntName": "hunt one"});
        let s = |x: &str| x.to_string();
        vec![
            (Method::GET, "/", s("")),
            (Method::GET, "/arkime_stats/_stats", s("")),
            (Method::GET, "/arkime_dstats/_stats", s("")),
            (Method::GET, "/arkime_sequence/_stats", s("")),
            (Method::GET, "/arkime_files/_stats", s("")),
            (Method::GET, "/arkime_files/_mapping", s("")),
            (
                Method::GET,
                "/_template/arkime_sessions3_template?filter_path=**._meta",
                s(""),
            ),
            (
                Method::GET,
                "/_template/sessions2_template?filter_path=**._meta",
                s(""),
            ),
            (Method::GET, "/_cluster/health", s("")),
            (
                Method::GET,
                "/_nodes/stats/jvm,process,fs,os,indices,thread_pool",
                s(""),
            ),
            (Method::GET, "/arkime_users/_stats", s("")),
            (
                Method::POST,
                "/arkime_users/_count?ignore_unavailable=true",
                s(r#"{"query":{"bool":{"must_not":{"term":{"userId":"_moloch_shared"}}}}}"#),
            ),
            (
                Method::POST,
                "/arkime_users/_count?ignore_unavailable=true",
                s(""),
            ),
            (
                Method::GET,
                "/sessions2-*%2Cpartial-arkime_sessions3-*%2Carkime_sessions3-*/_alias",
                s(""),
            ),
            (Method::GET, "/sessions2-*,arkime_sessions3-*/_alias", s("")),
            (
                Method::POST,
                "/arkime_fields/_search?rest_total_hits_as_int=true",
                s(r#"{"size":10000,"profile":false}"#),
            ),
            (
                Method::POST,
                "/arkime_stats/_search?rest_total_hits_as_int=true",
                s(r#"{"query":{"match":{"hostname":"vm"}},"profile":false}"#),
            ),
            (
                Method::POST,
                "/arkime_files/_search?rest_total_hits_as_int=true",
                s(
                    r#"{"_source":["num","name","first","size","node","indexFilename"],"from":"0","size":500,
                   "query":{"bool":{"filter":[{"terms":{"node":["toronto01"]}},
                   {"bool":{"should":[{"wildcard":{"name":"/opt/arkime/raw/*"}}]}}],
                   "must_not":{"term":{"locked":1}}}},"sort":{"first":{"order":"asc"}},"profile":false}"#,
                ),
            ),
            (Method::DELETE, "/arkime_files/_doc/toronto01-42", s("")),
            (
                Method::POST,
                "/arkime_history_v1-26w47/_doc?refresh=true&timeout=10m",
                s(
                    r#"{"userId":"admin","timestamp":1787140800,"api":"/api/session/raw","uiPage":"sessions"}"#,
                ),
            ),
            (Method::GET, "/arkime_users/_doc/admin", s("")),
            (
                Method::POST,
                "/arkime_sessions3-260819/_search?rest_total_hits_as_int=true",
                s(
                    r#"{"query":{"ids":{"values":["260819-XyFr4-nVi-Pfro7SVr4ix4J5"]}},"_source":false,
                   "fields":["node","ipProtocol","packetPos"],"profile":false}"#,
                ),
            ),
            (Method::POST, "/arkime_sessions3-260819/_refresh", s("")),
            (Method::GET, "/arkime_stats/_doc/toronto01", s("")),
            (Method::GET, "/arkime_files/_doc/toronto01-42", s("")),
            (
                Method::POST,
                "/sessions2-*%2Carkime_sessions3-*/_search?rest_total_hits_as_int=true",
                s(
                    r#"{"size":1000,"_source":["rootId"],"sort":{"lastPacket":{"order":"asc"}},
                   "query":{"term":{"rootId":"260819-abc"}},"profile":false}"#,
                ),
            ),
            (
                Method::POST,
                "/sessions2-*%2Carkime_sessions3-*/_search?rest_total_hits_as_int=true",
                s(
                    r#"{"size":1000,"_source":["rootId"],"sort":{"lastPacket":{"order":"asc"}},
                   "query":{"bool":{"filter":[{"term":{"rootId":"260819-abc"}},
                   {"term":{"tags":"forced"}}]}},"profile":false}"#,
                ),
            ),
            (Method::GET, "/arkime_hunts/_doc/h1", s("")),
            (
                Method::POST,
                "/arkime_sessions3-260819/_update/260819-abc?retry_on_conflict=3&timeout=10m",
                update_body(TAG_ADD, tags.clone()),
            ),
            (
                Method::POST,
                "/arkime_sessions3-260819/_update/260819-abc?retry_on_conflict=3&timeout=10m",
                update_body(TAG_REMOVE, tags),
            ),
            (
                Method::POST,
                "/arkime_sessions3-260819/_update/260819-abc?retry_on_conflict=3&timeout=10m",
                update_body(HUNT_ADD, hunt.clone()),
            ),
            (
                Method::POST,
                "/arkime_sessions3-260819/_update/260819-abc?retry_on_conflict=3&timeout=10m",
                update_body(HUNT_REMOVE_OLD, hunt),
            ),
            (
                Method::GET,
                "/arkime_sessions3-260819/_doc/260819-abc",
                s(""),
            ),
            (Method::GET, "/arkime_queries/_mapping", s("")),
            (
                Method::POST,
                "/arkime_lookups/_search?rest_total_hits_as_int=true",
                s(
                    r#"{"query":{"bool":{"should":[{"term":{"shared":true}},{"term":{"userId":"admin"}}]}},
                   "size":10000,"profile":false}"#,
                ),
            ),
            (Method::GET, "/arkime_users/_count", s("")),
            (Method::GET, "/_refresh", s("")),
        ]
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

    // ── path canonicalisation (both modes) ──

    #[test]
    fn known_traversal_tricks_are_refused_in_both_modes() {
        let tricks = [
            (Method::GET, "/_cat/health%3fz/../../_search"),
            (Method::GET, "/_cat/health%23z/../../_search"),
            (Method::POST, "/tests_stats/_search%3f/../../_bulk"),
            (
                Method::GET,
                "/tests_files/_doc/test-%3fz/../../../tests_sessions3-2024",
            ),
            (Method::GET, "/tagger%3f/../../tests_users/_search"),
            (
                Method::GET,
                "/tests_users/_doc/%3f/../../../_cluster/settings",
            ),
            (
                Method::GET,
                "/tests_files/_doc/test-5%3f\\..\\..\\..\\tests_esproxy_nosuchindex",
            ),
        ];
        for strict in [true, false] {
            let policy = tests_prefix(strict);
            for (method, target) in &tricks {
                let e = classify(&policy, "test", method, target).unwrap_err();
                assert!(matches!(e, Reject::BadPath(_)), "{target}: {e:?}");
            }
        }
    }

    #[test]
    fn encoded_slash_dot_backslash_question_hash_and_percent_are_refused() {
        for policy in both_modes() {
            for target in [
                "/arkime_users/_doc/a%2Fb",
                "/arkime_users/_doc/a%2fb",
                "/arkime_users/_doc/%2E%2E",
                "/arkime_users/_doc/a%2eb",
                "/arkime_users/_doc/a%5Cb",
                "/arkime_users/_doc/a%3Fb",
                "/arkime_users/_doc/a%23b",
                "/arkime_users/_doc/a%252Fb",
            ] {
                assert!(
                    matches!(refused(&policy, Method::GET, target), Reject::BadPath(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn dot_segments_double_slashes_and_trailing_slashes_are_refused() {
        for policy in both_modes() {
            for target in [
                "/arkime_stats/../_bulk",
                "/arkime_stats/./_stats",
                "/arkime_stats/_doc/..",
                "//arkime_stats/_stats",
                "/arkime_stats//_stats",
                "/_cat/health/",
                "/_bulk/",
            ] {
                let method = if target.contains("_bulk") {
                    Method::POST
                } else {
                    Method::GET
                };
                assert!(
                    matches!(refused(&policy, method, target), Reject::BadPath(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn semicolons_backslashes_controls_blanks_and_non_ascii_are_refused() {
        for policy in both_modes() {
            for target in [
                "/_cat/health;x",
                "/_cat/health%3Bx",
                "/_cat\\health",
                "/_cat/health%00",
                "/_cat/health%0a",
                "/_cat/health%20",
                "/_cat/health\t",
                "/_cat/héalth",
                "/_cat/health%C3%A9",
                "/_cat/health%7F",
            ] {
                assert!(
                    matches!(refused(&policy, Method::GET, target), Reject::BadPath(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn malformed_percent_escapes_and_raw_hash_are_refused() {
        for policy in both_modes() {
            for target in [
                "/_cat/health%",
                "/_cat/health%2",
                "/_cat/health%zz",
                "/_cat/health#x",
                "/_cat/health?format=json#x",
            ] {
                assert!(
                    matches!(refused(&policy, Method::GET, target), Reject::BadPath(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn target_must_be_origin_form() {
        for target in ["http://es:9200/_cat/health", "*", "", "_cat/health"] {
            assert!(
                matches!(refused(&strict(), Method::GET, target), Reject::BadPath(_)),
                "{target:?}"
            );
        }
    }

    #[test]
    fn encoded_comma_decodes_to_a_comma_and_is_forwarded_canonically() {
        for policy in both_modes() {
            let r = ok(
                &policy,
                Method::GET,
                "/sessions2-*%2Cpartial-arkime_sessions3-*%2carkime_sessions3-*/_alias",
            );
            assert_eq!(r.class, RouteClass::Alias);
            assert_eq!(
                r.forward,
                "/sessions2-*,partial-arkime_sessions3-*,arkime_sessions3-*/_alias"
            );
        }
    }

    #[test]
    fn path_match_is_case_sensitive_and_exact() {
        for policy in both_modes() {
            for (method, target) in [
                (Method::POST, "/_BULK"),
                (Method::POST, "/_bulkx"),
                (Method::POST, "/_bulk/x"),
                (Method::GET, "/_CAT/health"),
                (Method::GET, "/ARKIME_stats/_doc/toronto01"),
                (Method::GET, "/arkime_stats/_doc/TORONTO01"),
            ] {
                assert!(
                    matches!(refused(&policy, method, target), Reject::NotAllowed(_)),
                    "{target}"
                );
            }
        }
    }

    #[test]
    fn forward_is_the_decoded_path_reencoded_conservatively() {
        let r = ok(
            &strict(),
            Method::GET,
            "/arkime_users/_doc/a%40b%7Ec%2Bd%21",
        );
        assert_eq!(r.forward, "/arkime_users/_doc/a@b~c%2Bd%21");
        let r = ok(&strict(), Method::GET, "/arkime_users/_doc/a+b");
        // A raw '+' is a literal plus in a path; ES would read it as a space, so it is encoded.
        assert_eq!(r.forward, "/arkime_users/_doc/a%2Bb");
        let r = ok(&strict(), Method::GET, "/%61rkime_stats/_doc/toronto01");
        assert_eq!(r.forward, "/arkime_stats/_doc/toronto01");
    }

    #[test]
    fn forward_of_an_admitted_request_classifies_to_itself() {
        for (method, target, _) in viewer_traffic() {
            let first = ok(&strict(), method.clone(), target);
            let again = ok(&strict(), method.clone(), &first.forward);
            assert_eq!(first, again, "{target}");
        }
    }

    // ── methods ──

    #[test]
    fn put_head_and_other_methods_are_never_allowed() {
        for policy in both_modes() {
            for method in [Method::PUT, Method::HEAD, Method::PATCH, Method::OPTIONS] {
                for target in [
                    "/",
                    "/_bulk",
                    "/arkime_stats/_doc/toronto01",
                    "/tagger/_search",
                ] {
                    assert!(matches!(
                        refused(&policy, method.clone(), target),
                        Reject::NotAllowed(_)
                    ));
                }
            }
            assert!(matches!(
                refused(&policy, Method::DELETE, "/arkime_stats/_doc/toronto01"),
                Reject::NotAllowed(_)
            ));
            assert!(matches!(
                refused(&policy, Method::POST, "/_refresh"),
                Reject::NotAllowed(_)
            ));
        }
    }

    #[test]
    fn get_routes_expect_no_body() {
        for policy in both_modes() {
            assert_eq!(
                ok(&policy, Method::GET, "/arkime_files/_doc/toronto01-1").body,
                BodyRule::Empty
            );
            assert_eq!(
                ok(&policy, Method::DELETE, "/arkime_files/_doc/toronto01-1").body,
                BodyRule::Empty
            );
        }
    }

    // ── node-scoped ids ──

    #[test]
    fn sibling_node_name_cannot_reach_other_files_doc() {
        let policy = tests_prefix(true);
        for strict in [true, false] {
            let policy = Policy {
                strict,
                ..policy.clone()
            };
            for method in [Method::GET, Method::POST, Method::DELETE] {
                assert!(classify(&policy, "test", &method, "/tests_files/_doc/test-5").is_ok());
                for target in [
                    "/tests_files/_doc/test2-1",
                    "/tests_files/_doc/test-x-1",
                    "/tests_files/_doc/test-",
                    "/tests_files/_doc/test",
                    "/tests_files/_doc/test-1x",
                ] {
                    let e = classify(&policy, "test", &method, target).unwrap_err();
                    assert!(matches!(e, Reject::NotAllowed(_)), "{method} {target}");
                }
            }
            assert!(classify(
                &policy,
                "test",
                &Method::POST,
                "/tests_files/_update/test-5"
            )
            .is_ok());
            assert!(classify(
                &policy,
                "test",
                &Method::POST,
                "/tests_files/_update/test2-5"
            )
            .is_err());
        }
    }

    #[test]
    fn node_name_prefix_collisions_are_refused() {
        for policy in both_modes() {
            let s = |m: Method, t: &str| classify(&policy, "toronto01", &m, t);
            assert!(s(Method::GET, "/arkime_stats/_doc/toronto011").is_err());
            assert!(s(Method::POST, "/arkime_stats/_doc/toronto011").is_err());
            assert!(s(Method::GET, "/arkime_sequence/_doc/fn-toronto011").is_err());
            assert!(s(Method::POST, "/arkime_sequence/_doc/fn-toronto01x").is_err());
            assert!(s(Method::POST, "/arkime_dstats/_doc/toronto011-5-5").is_err());
            assert!(s(Method::POST, "/arkime_files/_doc/toronto011-5").is_err());
            assert!(s(Method::GET, "/arkime_files/_doc/toronto011-5").is_err());
        }
    }

    #[test]
    fn strict_dstats_id_needs_a_real_bucket_and_interval() {
        let p = strict();
        for id in ["toronto01-0-5", "toronto01-1439-60", "toronto01-720-600"] {
            ok(&p, Method::POST, &format!("/arkime_dstats/_doc/{id}"));
        }
        for id in [
            "toronto01-1440-5",
            "toronto01-5-7",
            "toronto01-05-5",
            "toronto01-5",
            "toronto01-5-5-5",
            "toronto01--5",
        ] {
            assert!(
                route(&p, Method::POST, &format!("/arkime_dstats/_doc/{id}")).is_err(),
                "{id}"
            );
        }
        // esProxy.js only asks for `<digits>-<digits>`.
        ok(&lax(), Method::POST, "/arkime_dstats/_doc/toronto01-1440-7");
        assert!(route(&lax(), Method::POST, "/arkime_dstats/_doc/toronto01-5").is_err());
    }

    #[test]
    fn sessions_doc_path_needs_a_prefixed_sessions_index() {
        for strict in [true, false] {
            let p = tests_prefix(strict);
            let c = |m: Method, t: &str| classify(&p, "test", &m, t);
            assert!(c(Method::GET, "/tests_sessions3-2024/_doc/1").is_ok());
            assert!(c(Method::GET, "/tests_sessions2-2024/_doc/1").is_ok());
            assert!(c(Method::GET, "/other_sessions3-2024/_doc/1").is_err());
            assert!(c(Method::GET, "/sessions3-2024/_doc/1").is_err());
            assert!(c(Method::GET, "/tests_sessions3-/_doc/1").is_err());
            assert!(c(Method::GET, "/tests_sessions3-2024/_doc/1/_source").is_err());
            assert!(c(Method::GET, "/tests_sessions3-2024/_source/1").is_err());
        }
        // Default prefix: sessions2 indices have no prefix.
        ok(&strict(), Method::GET, "/sessions2-240101/_doc/1");
        assert!(route(&strict(), Method::GET, "/arkime_sessions2-240101/_doc/1").is_err());
    }

    #[test]
    fn strict_session_paths_cannot_name_extra_indices() {
        let p = strict();
        assert!(route(&p, Method::GET, "/arkime_sessions3-x,arkime_users/_doc/1").is_err());
        assert!(route(
            &p,
            Method::POST,
            "/arkime_sessions3-x%2Carkime_users/_update/1"
        )
        .is_err());
        assert!(route(
            &p,
            Method::POST,
            "/arkime_sessions3-*%2Carkime_users/_search"
        )
        .is_err());
        assert!(route(
            &p,
            Method::POST,
            "/arkime_sessions3-x,arkime_users/_refresh"
        )
        .is_err());
        // esProxy.js admitted these paths (the body check was all that stood in the way).
        ok(
            &lax(),
            Method::POST,
            "/arkime_sessions3-*%2Carkime_users/_search",
        );
    }

    // ── strict-only route closures ──

    #[test]
    fn strict_tagger_admits_only_its_two_reads() {
        let p = strict();
        assert_eq!(
            ok(&p, Method::GET, "/tagger/_search?_source=md5&size=999").class,
            RouteClass::Tagger
        );
        ok(&p, Method::GET, "/tagger/_source/abc");
        for (m, t) in [
            (Method::POST, "/tagger,arkime_sessions3-*/_delete_by_query"),
            (Method::POST, "/tagger/_search"),
            (Method::GET, "/tagger,arkime_users/_search"),
            (Method::GET, "/tagger/_doc/abc"),
            (Method::GET, "/taggerx/_search"),
            (Method::GET, "/tagger/_source/abc/def"),
        ] {
            assert!(route(&p, m.clone(), t).is_err(), "{m} {t}");
        }
        assert!(matches!(
            refused(&p, Method::GET, "/tagger/_search?_source=md5,dek"),
            Reject::BadQuery(_)
        ));
    }

    #[test]
    fn lax_tagger_is_esproxy_prefix_match() {
        let r = ok(
            &lax(),
            Method::POST,
            "/tagger,arkime_sessions3-*/_delete_by_query",
        );
        assert_eq!((r.class, r.body), (RouteClass::Tagger, BodyRule::Unchecked));
        ok(&lax(), Method::GET, "/taggerx/anything");
    }

    #[test]
    fn strict_refuses_single_document_writes_to_fields() {
        assert!(matches!(
            refused(&strict(), Method::POST, "/arkime_fields/_doc/http.uri"),
            Reject::NotAllowed(_)
        ));
        let r = ok(&lax(), Method::POST, "/arkime_fields/_doc/http.uri");
        assert_eq!(r.body, BodyRule::Unchecked);
    }

    #[test]
    fn history_index_is_tightened_in_strict_mode() {
        ok(&strict(), Method::POST, "/arkime_history_v1-26w47/_doc");
        for t in [
            "/arkime_users_history_v1/_doc",
            "/history_v1-26w47/_doc",
            "/arkime_history_v1-26w47,arkime_users/_doc",
            "/arkime_history_v1-26w47/_doc/1",
        ] {
            assert!(route(&strict(), Method::POST, t).is_err(), "{t}");
        }
        ok(&lax(), Method::POST, "/anything_history_vx/_doc");
        assert!(route(&lax(), Method::POST, "/arkime_history_v1/_doc/1").is_err());
    }

    #[test]
    fn lax_bodies_esproxy_never_inspected_are_unchecked() {
        let p = lax();
        for (m, t) in [
            (Method::POST, "/arkime_stats/_doc/toronto01"),
            (Method::POST, "/arkime_dstats/_doc/toronto01-1-5"),
            (Method::POST, "/arkime_files/_doc/toronto01-1"),
            (Method::POST, "/arkime_sequence/_doc/fn-toronto01"),
            (Method::POST, "/arkime_stats/_search"),
            (Method::POST, "/arkime_history_v1-26w47/_doc"),
        ] {
            assert_eq!(ok(&p, m, t).body, BodyRule::Unchecked, "{t}");
        }
    }

    #[test]
    fn bulk_route_is_exact_and_streams_through_the_bulk_validator() {
        for policy in both_modes() {
            let r = ok(&policy, Method::POST, "/_bulk");
            assert_eq!(
                (r.class, r.body, r.forward.as_str()),
                (RouteClass::Bulk, BodyRule::Bulk, "/_bulk")
            );
            assert!(route(&policy, Method::GET, "/_bulk").is_err());
        }
        ok(&strict(), Method::POST, "/_bulk?timeout=5m");
        assert!(matches!(
            refused(&strict(), Method::POST, "/_bulk?pipeline=evil"),
            Reject::BadQuery(_)
        ));
        assert!(matches!(
            refused(&strict(), Method::POST, "/_bulk?timeout=forever"),
            Reject::BadQuery(_)
        ));
    }

    // ── query strings ──

    #[test]
    fn strict_refuses_parameters_real_clients_do_not_send() {
        let p = strict();
        for t in [
            "/_bulk?pipeline=x",
            "/arkime_stats/_doc/toronto01?version_type=force&version=1",
            "/arkime_stats/_doc/toronto01?routing=x",
            "/arkime_files/_doc/toronto01-1?refresh=wait_for",
            "/arkime_files/_doc/toronto01-1?op_type=create",
            "/arkime_sequence/_doc/fn-toronto01?version=-1",
            "/arkime_stats/_search?scroll=1m",
        ] {
            assert!(
                matches!(refused(&p, Method::POST, t), Reject::BadQuery(_)),
                "{t}"
            );
        }
        for t in [
            "/_cat/health?format=yaml",
            "/arkime_sessions3-x/_doc/1?_source_includes=dek",
            "/?pretty",
        ] {
            assert!(
                matches!(refused(&p, Method::GET, t), Reject::BadQuery(_)),
                "{t}"
            );
        }
    }

    #[test]
    fn strict_refuses_repeated_and_empty_parameters() {
        let p = strict();
        for t in [
            "/_cat/health?format=json&format=json",
            "/_cat/health?format=json&form%61t=json",
            "/_cat/health?format=json&",
            "/_cat/health?&format=json",
            "/_cat/health?format=json&&format=json",
        ] {
            assert!(
                matches!(refused(&p, Method::GET, t), Reject::BadQuery(_)),
                "{t}"
            );
        }
    }

    #[test]
    fn strict_decodes_parameters_before_checking_and_forwards_a_canonical_query() {
        let p = strict();
        let r = ok(&p, Method::GET, "/_cat/health?%66ormat=%6Ason");
        assert_eq!(r.forward, "/_cat/health?format=json");
        let r = ok(
            &p,
            Method::GET,
            "/_template/arkime_sessions3_template?filter_path=%2A%2A._meta",
        );
        assert_eq!(
            r.forward,
            "/_template/arkime_sessions3_template?filter_path=**._meta"
        );
        let r = ok(
            &p,
            Method::POST,
            "/arkime_stats/_doc/toronto01?version_type=external&version=12",
        );
        assert_eq!(
            r.forward,
            "/arkime_stats/_doc/toronto01?version_type=external&version=12"
        );
        let r = ok(&p, Method::GET, "/_cat/health?");
        assert_eq!(r.forward, "/_cat/health");
        assert!(matches!(
            refused(&p, Method::GET, "/_cat/health?format=js%6"),
            Reject::BadQuery(_)
        ));
        assert!(matches!(
            refused(&p, Method::GET, "/_cat/health?format=json%00"),
            Reject::BadQuery(_)
        ));
    }

    #[test]
    fn files_lookup_q_must_name_the_sensor_after_decoding() {
        let base = "/arkime_files/_search?rest_total_hits_as_int&size=1&sort=num:desc&q=";
        for policy in both_modes() {
            let r = ok(
                &policy,
                Method::GET,
                &format!("{base}node%3A%22toronto01%22+AND+name%3A%22/data/x.pcap%22"),
            );
            assert_eq!(
                r.forward,
                "/arkime_files/_search?rest_total_hits_as_int&size=1&sort=num:desc\
                 &q=node:%22toronto01%22%20AND%20name:%22/data/x.pcap%22"
            );
            // Raw (unencoded) quotes and colons are the same query.
            ok(
                &policy,
                Method::GET,
                &format!("{base}node:%22toronto01%22%20AND%20name:%22f%22"),
            );
            for q in [
                "node%3A%22toronto011%22+AND+name%3A%22f%22",
                "node%3A%22other%22+AND+name%3A%22f%22",
                "node%3A%22toronto01%22+OR+name%3A%22f%22",
                "node%3A%22toronto01%22+AND+name%3A%22f%22+OR+node%3Aother",
                "node%3A%22toronto01%22+AND+name%3A%22f%22+OR+%22x%22",
                "node%3A%22toronto01%22+AND+name%3A%22a%5C%22%22",
                "node%3A%22toronto01%22+AND+name%3A%22%22",
                "node:toronto01",
                "*",
            ] {
                let e = refused(&policy, Method::GET, &format!("{base}{q}"));
                assert!(matches!(e, Reject::BadQuery(_)), "{q}: {e:?}");
            }
            // The lookup needs its q, and only the lookup's parameters.
            assert!(matches!(
                refused(&policy, Method::GET, "/arkime_files/_search?size=1"),
                Reject::BadQuery(_)
            ));
            assert!(matches!(
                refused(&policy, Method::GET, "/arkime_files/_search"),
                Reject::BadQuery(_)
            ));
            let extra = format!("{base}node%3A%22toronto01%22+AND+name%3A%22f%22&_source=dek");
            assert!(matches!(
                refused(&policy, Method::GET, &extra),
                Reject::BadQuery(_)
            ));
        }
    }

    #[test]
    fn lax_forwards_the_query_as_received_but_well_formed() {
        let r = ok(
            &lax(),
            Method::POST,
            "/arkime_stats/_doc/toronto01?version_type=force&version=%31",
        );
        assert_eq!(
            r.forward,
            "/arkime_stats/_doc/toronto01?version_type=force&version=%31"
        );
        for t in [
            "/_cat/health?a=%zz",
            "/_cat/health?a=\u{1}",
            "/_cat/health?a=%4",
        ] {
            assert!(
                matches!(refused(&lax(), Method::GET, t), Reject::BadQuery(_)),
                "{t:?}"
            );
        }
    }

    // ── body rules ──

    #[test]
    fn files_update_body_is_a_doc_for_the_own_node_in_both_modes() {
        for policy in both_modes() {
            let rule = json_rule(&ok(
                &policy,
                Method::POST,
                "/arkime_files/_update/toronto01-5",
            ));
            assert_eq!(rule, JsonRule::FilesUpdate);
            assert!(body_ok(&policy, rule, r#"{"doc": {"filesize": 1}}"#));
            assert!(body_ok(
                &policy,
                rule,
                r#"{"doc": {"filesize": 1, "node": "toronto01"}}"#
            ));
            for bad in [
                r#"{"doc": {"node": "other"}}"#,
                r#"{"doc": {"node": ["toronto01"]}}"#,
                r#"{"doc": {}, "doc_as_upsert": true}"#,
                r#"{"doc": {}, "upsert": {"node": "other"}}"#,
                r#"{"doc": null}"#,
                r#"{"script": "ctx._source.node = 'x'"}"#,
                r#"{"doc": {"node": "toronto01", "node": "other"}}"#,
                "[]",
                "",
            ] {
                assert!(!body_ok(&policy, rule, bad), "{bad}");
            }
        }
    }

    #[test]
    fn strict_stats_and_dstats_docs_must_carry_the_sensors_node_name() {
        let p = strict();
        for t in [
            "/arkime_stats/_doc/toronto01",
            "/arkime_dstats/_doc/toronto01-5-5",
        ] {
            let rule = json_rule(&ok(&p, Method::POST, t));
            assert!(body_ok(
                &p,
                rule,
                r#"{"ver": "6.7.0","nodeName": "toronto01","interval": 5}"#
            ));
            assert!(!body_ok(
                &p,
                rule,
                r#"{"ver": "6.7.0","nodeName": "toronto011"}"#
            ));
            assert!(!body_ok(&p, rule, r#"{"ver": "6.7.0"}"#));
            assert!(!body_ok(
                &p,
                rule,
                r#"{"nodeName": "toronto01", "nodeName": "x"}"#
            ));
            assert!(!body_ok(&p, rule, r#"{"nodeName": "toronto01"} {}"#));
        }
    }

    #[test]
    fn strict_files_doc_must_carry_the_sensors_node() {
        let p = strict();
        let rule = json_rule(&ok(
            &p,
            Method::POST,
            "/arkime_files/_doc/toronto01-5?refresh=true",
        ));
        assert!(body_ok(&p, rule, r#"{"num":5, "node":"toronto01"}"#));
        assert!(!body_ok(&p, rule, r#"{"num":5, "node":"other"}"#));
        assert!(!body_ok(&p, rule, r#"{"num":5}"#));
    }

    #[test]
    fn strict_sequence_body_is_exactly_an_empty_object() {
        let p = strict();
        let rule = json_rule(&ok(&p, Method::POST, "/arkime_sequence/_doc/fn-toronto01"));
        assert!(body_ok(&p, rule, "{}"));
        assert!(body_ok(&p, rule, " {\n} "));
        assert!(!body_ok(&p, rule, r#"{"a":1}"#));
        assert!(!body_ok(&p, rule, "[]"));
        assert!(!body_ok(&p, rule, ""));
    }

    fn files_search_body(nodes: &str, extra: &str) -> String {
        format!(
            r#"{{"size":500,"query":{{"bool":{{"filter":[{{"terms":{{"node":{nodes}}}}},
                {{"bool":{{"should":[{{"wildcard":{{"name":"/pcap/*"}}}}]}}}}],
                "must_not":{{"term":{{"locked":1}}}}}}}},"sort":{{"first":{{"order":"asc"}}}}{extra}}}"#
        )
    }

    #[test]
    fn strict_files_search_lists_only_the_sensor() {
        let p = strict();
        let rule = json_rule(&ok(&p, Method::POST, "/arkime_files/_search"));
        assert!(body_ok(
            &p,
            rule,
            &files_search_body(r#"["toronto01"]"#, "")
        ));
        assert!(!body_ok(
            &p,
            rule,
            &files_search_body(r#"["toronto01","other"]"#, "")
        ));
        assert!(!body_ok(&p, rule, &files_search_body("[]", "")));
        assert!(!body_ok(&p, rule, &files_search_body(r#""toronto01""#, "")));
        // Older viewers used `must` for the same clauses.
        let must = files_search_body(r#"["toronto01"]"#, "").replace("\"filter\"", "\"must\"");
        assert!(body_ok(&p, rule, &must));
    }

    #[test]
    fn strict_files_search_refuses_aggregations_scripts_and_extra_clauses() {
        let p = strict();
        let rule = JsonRule::FilesSearch;
        let n = r#"["toronto01"]"#;
        for extra in [
            r#","aggs":{"k":{"terms":{"field":"dek"}}}"#,
            r#","aggregations":{}"#,
            r#","runtime_mappings":{}"#,
            r#","script_fields":{}"#,
            r#","stored_fields":["dek"]"#,
            r#","suggest":{}"#,
            r#","collapse":{"field":"node"}"#,
            r#","from":-1"#,
        ] {
            assert!(!body_ok(&p, rule, &files_search_body(n, extra)), "{extra}");
        }
        let should = r#"{"query":{"bool":{"filter":[{"terms":{"node":["toronto01"]}}],"should":[{"match_all":{}}]}}}"#;
        assert!(!body_ok(&p, rule, should));
        let third = r#"{"query":{"bool":{"filter":[{"terms":{"node":["toronto01"]}},{"bool":{"should":[]}},{"match_all":{}}]}}}"#;
        assert!(!body_ok(&p, rule, third));
        let script = r#"{"query":{"bool":{"filter":[{"terms":{"node":["toronto01"]}},{"bool":{"should":[{"script":{"script":"1"}}]}}]}}}"#;
        assert!(!body_ok(&p, rule, script));
    }

    #[test]
    fn lax_files_search_is_esproxys_includes_check() {
        let p = lax();
        let rule = json_rule(&ok(&p, Method::POST, "/arkime_files/_search"));
        assert!(body_ok(
            &p,
            rule,
            &files_search_body(r#"["other","toronto01"]"#, r#","aggs":{}"#)
        ));
        assert!(!body_ok(&p, rule, &files_search_body(r#"["other"]"#, "")));
        assert!(body_ok(
            &p,
            rule,
            r#"{"query":{"bool":{"must":[{"terms":{"node":["toronto01"]}}]}}}"#
        ));
        assert!(!body_ok(&p, rule, r#"{"query":{"match_all":{}}}"#));
    }

    #[test]
    fn session_search_follows_arkimes_own_esproxy_tests_in_both_modes() {
        for policy in both_modes() {
            let rule = json_rule(&ok(&policy, Method::POST, "/arkime_sessions3-x/_search"));
            assert!(body_ok(
                &policy,
                rule,
                r#"{"query":{"ids":{"values":["x-1"]}}}"#
            ));
            assert!(body_ok(
                &policy,
                rule,
                r#"{"query":{"term":{"rootId":"x"}},"size":1000}"#
            ));
            assert!(body_ok(
                &policy,
                rule,
                r#"{"query":{"bool":{"filter":[{"term":{"rootId":"x"}}]}}}"#
            ));
            for bad in [
                r#"{"query":{"ids":{"values":["a","b"]}}}"#,
                r#"{"query":{"ids":{"values":[]}}}"#,
                r#"{"query":{"bool":{"filter":[{"term":{"node":"foo"}}]}}}"#,
                r#"{"query":{"bool":{"filter":[{"term":{"rootId":"x"}}],"should":[{"match_all":{}}]}}}"#,
                r#"{"query":{"term":{"node":"foo"}}}"#,
                r#"{"query":{"term":{"rootId":"x"},"match_all":{}}}"#,
                r#"{"query":{"term":{"rootId":1}}}"#,
                r#"{"query":{"term":{"rootId":"x"}},"aggs":{}}"#,
                r#"{"query":{"match_all":{}}}"#,
            ] {
                assert!(
                    !body_ok(&policy, rule, bad),
                    "strict={} {bad}",
                    policy.strict
                );
            }
        }
    }

    #[test]
    fn strict_session_search_by_id_allows_only_the_viewers_keys() {
        let p = strict();
        let rule = json_rule(&ok(&p, Method::POST, "/arkime_sessions3-x/_search"));
        assert_eq!(rule, JsonRule::SessionSearch { single_index: true });
        let good = r#"{"query":{"ids":{"values":["x"]}},"_source":false,"fields":["node"],"size":1,"profile":false}"#;
        assert!(body_ok(&p, rule, good));
        for bad in [
            r#"{"query":{"ids":{"values":["x"]}},"aggs":{"g":{"global":{}}}}"#,
            r#"{"query":{"ids":{"values":["x"]}},"aggregations":{}}"#,
            r#"{"query":{"ids":{"values":["x"]}},"post_filter":{"match_all":{}}}"#,
            r#"{"query":{"ids":{"values":["x"]}},"runtime_mappings":{}}"#,
            r#"{"query":{"ids":{"values":["x"]}},"script_fields":{}}"#,
            r#"{"query":{"ids":{"values":["x"]}},"size":-1}"#,
            r#"{"query":{"ids":{"values":["x"],"boost":2}}}"#,
            r#"{"query":{"ids":{"values":[1]}}}"#,
        ] {
            assert!(!body_ok(&p, rule, bad), "{bad}");
        }
        // Several indices: only a rootId search.
        let rule = json_rule(&ok(
            &p,
            Method::POST,
            "/sessions2-*%2Carkime_sessions3-*/_search",
        ));
        assert_eq!(
            rule,
            JsonRule::SessionSearch {
                single_index: false
            }
        );
        assert!(!body_ok(&p, rule, r#"{"query":{"ids":{"values":["x"]}}}"#));
        assert!(body_ok(&p, rule, r#"{"query":{"term":{"rootId":"x"}}}"#));
    }

    #[test]
    fn strict_root_id_search_carries_no_scripts_anywhere() {
        let p = strict();
        let rule = JsonRule::SessionSearch {
            single_index: false,
        };
        for bad in [
            r#"{"query":{"bool":{"filter":[{"term":{"rootId":"x"}},{"script":{"script":"true"}}]}}}"#,
            r#"{"query":{"bool":{"filter":[{"term":{"rootId":"x"}},{"function_score":{"script_score":{}}}]}}}"#,
            r#"{"query":{"term":{"rootId":"x"}},"sort":{"_script":{"script":"1"}}}"#,
            r#"{"query":{"bool":{"filter":[{"term":{"rootId":"x"},"boost":1}]}}}"#,
        ] {
            assert!(!body_ok(&p, rule, bad), "{bad}");
        }
        // The same bodies pass esProxy.js's looser check.
        assert!(body_ok(
            &lax(),
            rule,
            r#"{"query":{"bool":{"filter":[{"term":{"rootId":"x"}},{"script":{"script":"true"}}]}}}"#
        ));
    }

    #[test]
    fn strict_session_update_admits_only_the_viewers_tag_and_hunt_scripts() {
        let p = strict();
        let rule = json_rule(&ok(&p, Method::POST, "/arkime_sessions3-x/_update/x-1"));
        let tags = serde_json::json!({"tags": ["a", "b"]});
        let hunt = serde_json::json!({"huntId": "h", "huntName": "n"});
        assert!(body_ok(&p, rule, &update_body(TAG_ADD, tags.clone())));
        assert!(body_ok(&p, rule, &update_body(TAG_REMOVE, tags.clone())));
        assert!(body_ok(&p, rule, &update_body(HUNT_ADD, hunt.clone())));
        assert!(body_ok(
            &p,
            rule,
            &update_body(HUNT_REMOVE_OLD, hunt.clone())
        ));
        // Layout does not matter.
        let compact: String = TAG_ADD.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(body_ok(&p, rule, &update_body(&compact, tags.clone())));

        let evil = [
            "ctx.op = 'delete'",
            "ctx._source.node = 'other'",
            &format!("{TAG_ADD} ctx.op = 'delete';"),
            &TAG_ADD.replace(
                "ctx._source.tagsCnt = params.tags.length",
                "ctx._source.node = params.tags",
            ),
            &TAG_REMOVE.replace("\"tagsCnt\"", "\"node\""),
            &format!("{TAG_ADD} // comment"),
        ];
        for source in evil {
            assert!(
                !body_ok(&p, rule, &update_body(source, tags.clone())),
                "{source}"
            );
        }
        // Params must be exactly the script's.
        assert!(!body_ok(&p, rule, &update_body(TAG_ADD, hunt.clone())));
        assert!(!body_ok(
            &p,
            rule,
            &update_body(TAG_ADD, serde_json::json!({"tags": ["a"], "x": 1}))
        ));
        assert!(!body_ok(
            &p,
            rule,
            &update_body(TAG_ADD, serde_json::json!({"tags": "a"}))
        ));
        assert!(!body_ok(
            &p,
            rule,
            &update_body(HUNT_ADD, serde_json::json!({"huntId": "h"}))
        ));
        // No doc, upsert or extra keys beside the script.
        let mut with_upsert: serde_json::Value =
            serde_json::from_str(&update_body(TAG_ADD, tags.clone())).unwrap();
        with_upsert["upsert"] = serde_json::json!({"node": "other"});
        assert!(!body_ok(&p, rule, &with_upsert.to_string()));
        let mut scripted = with_upsert.clone();
        scripted.as_object_mut().unwrap().remove("upsert");
        scripted["scripted_upsert"] = serde_json::json!(true);
        assert!(!body_ok(&p, rule, &scripted.to_string()));
        let mut other_lang: serde_json::Value =
            serde_json::from_str(&update_body(TAG_ADD, tags)).unwrap();
        other_lang["script"]["lang"] = serde_json::json!("expression");
        assert!(!body_ok(&p, rule, &other_lang.to_string()));
        assert!(!body_ok(&p, rule, r#"{"doc":{"tags":["a"]}}"#));
    }

    #[test]
    fn lax_session_update_needs_a_script_and_no_doc() {
        let p = lax();
        let rule = JsonRule::SessionUpdate;
        assert!(body_ok(
            &p,
            rule,
            r#"{"script":{"source":"ctx.op = 'delete'"}}"#
        ));
        assert!(!body_ok(&p, rule, r#"{"script":"x","doc":{}}"#));
        assert!(!body_ok(&p, rule, r#"{"doc":{}}"#));
    }

    #[test]
    fn strict_viewer_searches_carry_only_what_the_viewer_sends() {
        let p = strict();
        assert!(body_ok(
            &p,
            JsonRule::StatsSearch,
            r#"{"query":{"match":{"hostname":"vm"}}}"#
        ));
        assert!(!body_ok(
            &p,
            JsonRule::StatsSearch,
            r#"{"query":{"match_all":{}}}"#
        ));
        assert!(!body_ok(
            &p,
            JsonRule::StatsSearch,
            r#"{"query":{"match":{"hostname":"vm"}},"aggs":{}}"#
        ));
        assert!(body_ok(&p, JsonRule::FieldsSearch, r#"{"size":10000}"#));
        assert!(!body_ok(
            &p,
            JsonRule::FieldsSearch,
            r#"{"size":10000,"query":{"match_all":{}}}"#
        ));
        assert!(!body_ok(&p, JsonRule::FieldsSearch, r#"{"size":"all"}"#));
        let lookups =
            r#"{"query":{"bool":{"should":[{"term":{"shared":true}},{"term":{"userId":"a"}}]}}}"#;
        assert!(body_ok(&p, JsonRule::LookupsSearch, lookups));
        assert!(!body_ok(
            &p,
            JsonRule::LookupsSearch,
            r#"{"query":{"bool":{"should":[{"term":{"password":"a"}}]}}}"#
        ));
        assert!(!body_ok(
            &p,
            JsonRule::LookupsSearch,
            r#"{"query":{"match_all":{}}}"#
        ));
        assert!(body_ok(&p, JsonRule::UsersCount, ""));
        assert!(!body_ok(
            &p,
            JsonRule::UsersCount,
            r#"{"query":{"match_all":{}}}"#
        ));
        assert!(body_ok(&p, JsonRule::HistoryDoc, r#"{"userId":"a"}"#));
        assert!(!body_ok(&p, JsonRule::HistoryDoc, "[1]"));
    }

    #[test]
    fn inspected_bodies_are_parsed_strictly_with_the_depth_limit() {
        let mut p = strict();
        p.limits.max_depth = 3;
        assert!(body_ok(&p, JsonRule::HistoryDoc, r#"{"a":{"b":{}}}"#));
        assert!(!body_ok(
            &p,
            JsonRule::HistoryDoc,
            r#"{"a":{"b":{"c":{}}}}"#
        ));
        let e = check_body(
            &p,
            NODE,
            &JsonRule::FilesDoc,
            br#"{"node":"toronto01","no\u0064e":"x"}"#,
        )
        .unwrap_err();
        assert!(matches!(e, Reject::BadBody(_)), "{e:?}");
        assert!(!body_ok(&p, JsonRule::SequenceDoc, "\u{feff}{}"));
        assert!(!body_ok(&p, JsonRule::SequenceDoc, "{} // c"));
    }

    /// The top-level rules as they read on a parsed value: the reference the scanner-based
    /// check must agree with.
    fn top_level_reference(rule: JsonRule, body: &[u8], max_depth: usize) -> Result<(), String> {
        let v = json::parse_strict(body, max_depth).map_err(|e| e.to_string())?;
        let o = v.as_object().ok_or("not a JSON object")?;
        let field = match rule {
            JsonRule::NodeStatsDoc => "nodeName",
            JsonRule::FilesDoc => "node",
            JsonRule::SequenceDoc if !o.is_empty() => return Err("sequence body is not {}".into()),
            _ => return Ok(()),
        };
        match o.get(field) {
            Some(Value::String(s)) if s == NODE => Ok(()),
            Some(_) => Err("node field is not the sensor".into()),
            None => Err("node field missing".into()),
        }
    }

    #[test]
    fn top_level_documents_are_judged_like_the_parsed_reference() {
        let bodies = [
            r#"{"nodeName":"toronto01","ver":"6.7.1","cpu":5593}"#,
            r#"{"nodeName":"toronto02"}"#,
            r#"{"nodeName":"toronto01","nodeName":"toronto01"}"#,
            r#"{"node\u004eame":"toronto01"}"#,
            r#"{"nodeName":"toronto\u00301"}"#,
            r#"{"nodeName":"\u0074oronto01","x":{"nodeName":"evil"}}"#,
            r#"{"x":{"nodeName":"toronto01"}}"#,
            r#"{"nodeName":["toronto01"]}"#,
            r#"{"nodeName":null}"#,
            r#"{"node":"toronto01","num":3,"name":"/data/x.pcap"}"#,
            r#"{"node":"toronto01","node":"other"}"#,
            r#"{"node":"toronto01","name":"a\"b"}"#,
            r#"{"node":"toronto01"} x"#,
            r#"["nodeName","toronto01"]"#,
            r#""toronto01""#,
            "{}",
            " { } ",
            r#"{"a":1}"#,
            "{",
            "",
            "{\"nodeName\":\"toronto01\",\"c\":\"tab\there\"}",
        ];
        let rules = [
            JsonRule::NodeStatsDoc,
            JsonRule::FilesDoc,
            JsonRule::SequenceDoc,
            JsonRule::HistoryDoc,
        ];
        let policy = strict();
        for rule in rules {
            for body in bodies {
                let got = check_body(&policy, NODE, &rule, body.as_bytes());
                let want = top_level_reference(rule, body.as_bytes(), policy.limits.max_depth);
                assert_eq!(
                    got.is_ok(),
                    want.is_ok(),
                    "{rule:?} {body:?}: {got:?} vs {want:?}"
                );
                if let (Err(Reject::BadBody(g)), Err(w)) = (&got, &want) {
                    if !w.contains("at line") && !w.contains("duplicate") {
                        assert!(g.ends_with(w.as_str()), "{rule:?} {body:?}: {g} vs {w}");
                    }
                }
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
    fn refusal_details_are_sanitised_and_cut() {
        let long = format!("/x{}", "a".repeat(500));
        let Reject::NotAllowed(d) = refused(&strict(), Method::GET, &long) else {
            panic!()
        };
        assert!(d.chars().count() <= 201, "{}", d.len());
        let Reject::BadQuery(d) = refused(&lax(), Method::GET, "/_cat/health?a=\u{1b}[31m") else {
            panic!()
        };
        assert!(d.contains("\\x1b") && !d.contains('\u{1b}'), "{d}");
        assert_eq!(sanitize("a\\b\u{202e}c\n"), "a\\\\b\\u{202e}c\\x0a");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Id text as a client might send it: plain bytes and percent escapes of anything.
        fn id() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    "[a-zA-Z0-9._~!*:@,+=$&'()-]".prop_map(|s| s),
                    any::<u8>().prop_map(|b| format!("%{b:02X}")),
                    any::<u8>().prop_map(|b| format!("%{b:02x}")),
                ],
                1..12,
            )
            .prop_map(|parts| parts.concat())
        }

        proptest! {
            #[test]
            fn canonical_forward_is_a_fixpoint(id in id(), q in id(), strict in any::<bool>()) {
                let policy = Policy { strict, ..Policy::default() };
                for target in [
                    format!("/arkime_users/_doc/{id}"),
                    format!("/arkime_sessions3-{id}/_doc/{q}"),
                    format!("/arkime_files/_doc/toronto01-1?refresh={q}"),
                    format!("/_cat/health?format={q}"),
                ] {
                    let method = if target.contains("files") { Method::POST } else { Method::GET };
                    if let Ok(first) = classify(&policy, NODE, &method, &target) {
                        let again = classify(&policy, NODE, &method, &first.forward);
                        prop_assert_eq!(Ok(first), again, "{}", target);
                    }
                }
            }

            #[test]
            fn forwarded_paths_never_carry_separators_dots_or_escapes_in_disguise(id in id()) {
                let target = format!("/arkime_users/_doc/{id}");
                if let Ok(r) = classify(&strict(), NODE, &Method::GET, &target) {
                    let path = r.forward.split('?').next().unwrap_or("");
                    let lower = path.to_ascii_lowercase();
                    for bad in ["%2f", "%2e", "%5c", "%3f", "%23", "%25", "..", "//", ";", "\\"] {
                        prop_assert!(!lower.contains(bad), "{} -> {}", target, path);
                    }
                    prop_assert_eq!(path.matches('/').count(), 3);
                }
            }

            #[test]
            fn classify_never_panics(target in "\\PC{0,40}", strict in any::<bool>()) {
                let policy = Policy { strict, ..Policy::default() };
                for method in [Method::GET, Method::POST, Method::DELETE] {
                    let _ = classify(&policy, NODE, &method, &target);
                    let _ = classify(&policy, NODE, &method, &format!("/{target}"));
                }
            }
        }
    }
}
