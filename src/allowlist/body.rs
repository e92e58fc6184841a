//! The JSON body rules for buffered non-bulk bodies: documents judged by their top level, and
//! the viewer's searches judged by their parsed shape. Session updates by script are in `viewer`.

use serde_json::{Map, Value};

use super::{all_digits, JsonRule};
use crate::json::scan::{Kind, Summary};

pub(super) type Verdict = Result<(), &'static str>;

pub(super) fn obj(v: &Value) -> Result<&Map<String, Value>, &'static str> {
    v.as_object().ok_or("not a JSON object")
}

/// Every key of `m` is one of `allowed`.
pub(super) fn keys_within(m: &Map<String, Value>, allowed: &[&str]) -> Verdict {
    if m.keys().all(|k| allowed.contains(&k.as_str())) {
        Ok(())
    } else {
        Err("unexpected key")
    }
}

/// `m` is `{key: <value>}` and nothing else.
pub(super) fn only<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
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

pub(super) fn is_str_array(v: &Value) -> bool {
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
pub(super) fn top_level_verdict(rule: &JsonRule, sum: &Summary<'_>, sensor: &str) -> Verdict {
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
pub(super) fn files_update(v: &Value, node: &str) -> Verdict {
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
pub(super) fn files_search_lax(v: &Value, node: &str) -> Verdict {
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
pub(super) fn files_search_strict(v: &Value, node: &str) -> Verdict {
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
pub(super) fn session_search_lax(v: &Value) -> Verdict {
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
pub(super) fn session_search_strict(v: &Value, single_index: bool) -> Verdict {
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

/// Strict: the viewer's `{"query":{"match":{"hostname":H}}}`.
pub(super) fn stats_search(v: &Value) -> Verdict {
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
pub(super) fn fields_search(v: &Value) -> Verdict {
    let m = obj(v)?;
    keys_within(m, &["size", "profile"])?;
    common_search_fields(m)
}

/// Strict: the viewer's shortcuts search, `bool.should` of `term` on `shared` / `userId`.
pub(super) fn lookups_search(v: &Value) -> Verdict {
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
pub(super) fn users_count(v: &Value) -> Verdict {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allowlist::testkit::*;
    use crate::allowlist::{check_body, JsonRule};
    use crate::json;

    use crate::reject::Reject;
    use http::Method;

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
}
