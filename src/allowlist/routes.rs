//! The route table: which `(method, path)` a sensor may use, matched on exact segments of the
//! canonical path, and what each admitted route does with its query and body.

use super::query::{
    Param, BULK, COUNT, FIELDS_GET, FILES_LOOKUP, HEALTH, HISTORY, LOOKUPS_SEARCH, NO_PARAMS,
    REFRESH, SEARCH, SESSION_SEARCH, TAGGER_SEARCH, TEMPLATE, UPDATE, VERSIONED,
};
use super::{all_digits, canonical_uint, BodyRule, JsonRule, RouteClass};

/// The per-request facts the route table matches against.
pub(super) struct Scope<'a> {
    /// The index prefix (`{P}`), e.g. `arkime_`.
    pub(super) prefix: &'a str,
    /// The old (sessions2-era) index prefix (`{O}`).
    pub(super) old_prefix: &'a str,
    pub(super) node: &'a str,
    pub(super) strict: bool,
}

/// A matched route before the query is checked.
pub(super) struct Hit {
    pub(super) class: RouteClass,
    pub(super) body: BodyRule,
    pub(super) params: &'static [Param],
    /// Check the query with the strict rules in lax mode too (routes esProxy.js never admitted,
    /// whose safety depends on the query).
    pub(super) always_check_query: bool,
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

impl Scope<'_> {
    /// `seg` is `{P}name`.
    fn is(&self, seg: &str, name: &str) -> bool {
        seg.strip_prefix(self.prefix) == Some(name)
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
            .strip_prefix(self.old_prefix)
            .and_then(|s| s.strip_prefix("sessions2-"))
            .or_else(|| {
                seg.strip_prefix(self.prefix)
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
        seg.strip_prefix(self.prefix)
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
            .strip_prefix(self.old_prefix)
            .is_some_and(|r| r.starts_with("sessions2"))
            || rest
                .strip_prefix(self.prefix)
                .is_some_and(|r| r.starts_with("sessions3"));
        starts && path.ends_with("/_search")
    }

    /// The alias lists esProxy.js lists, plus the one viewers ≥ 5.7 send (with `partial-`).
    fn is_alias_list(&self, seg: &str) -> bool {
        let (p, o) = (self.prefix, self.old_prefix);
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
            .strip_prefix(self.prefix)
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
pub(super) fn get_route(c: &Scope, path: &str, segs: &[&str]) -> Option<Hit> {
    use RouteClass::*;
    let hit = match segs {
        [] => Hit::read(Root),
        ["_cat", "health"] => Hit::read(Health).with(HEALTH),
        ["_cluster", "health"] => Hit::read(Health),
        ["_nodes", "stats", "jvm,process,fs,os,indices,thread_pool"] => Hit::read(Health),
        ["_refresh"] => Hit::read(Refresh),
        ["_template", t] if c.is(t, "sessions3_template") => Hit::read(Template).with(TEMPLATE),
        ["_template", t] if t.strip_prefix(c.old_prefix) == Some("sessions2_template") => {
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
pub(super) fn post_route(c: &Scope, path: &str, segs: &[&str]) -> Option<Hit> {
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
            Hit::new(Lookups, c.inspect(LookupsSearch)).with(LOOKUPS_SEARCH)
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
        .with(SESSION_SEARCH),
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
pub(super) fn delete_route(c: &Scope, segs: &[&str]) -> Option<Hit> {
    match segs {
        [idx, "_doc", id] if c.is(idx, "files") && c.is_own_file_id(id) => {
            Some(Hit::read(RouteClass::Files).with(REFRESH))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {

    use crate::allowlist::testkit::*;
    use crate::allowlist::{classify, BodyRule, RouteClass};

    use crate::policy::Policy;
    use crate::reject::Reject;
    use http::Method;

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
}
