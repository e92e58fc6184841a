//! Shared test helpers and the viewer traffic fixtures (arkime-traffic.md §3) for the allowlist's
//! per-part tests.

use http::Method;

use super::{check_body, classify, BodyRule, JsonRule, Route};
use crate::policy::{Policy, Prefix};
use crate::reject::Reject;

pub(super) const NODE: &str = "toronto01";

pub(super) fn strict() -> Policy {
    Policy::default()
}

pub(super) fn lax() -> Policy {
    Policy {
        strict: false,
        ..Policy::default()
    }
}

/// Arkime's test prefix (`tests_`, old prefix `tests_`).
pub(super) fn tests_prefix(strict: bool) -> Policy {
    Policy {
        prefix: Prefix::new(Some("tests")),
        strict,
        ..Policy::default()
    }
}

pub(super) fn route(policy: &Policy, method: Method, target: &str) -> Result<Route, Reject> {
    classify(policy, NODE, &method, target)
}

pub(super) fn ok(policy: &Policy, method: Method, target: &str) -> Route {
    route(policy, method.clone(), target)
        .unwrap_or_else(|e| panic!("{method} {target} refused: {e}"))
}

pub(super) fn refused(policy: &Policy, method: Method, target: &str) -> Reject {
    match route(policy, method.clone(), target) {
        Ok(r) => panic!("{method} {target} admitted: {r:?}"),
        Err(e) => e,
    }
}

pub(super) fn both_modes() -> [Policy; 2] {
    [strict(), lax()]
}

/// Classifies and checks the body, as the proxy would.
pub(super) fn admit(
    policy: &Policy,
    method: Method,
    target: &str,
    body: &str,
) -> Result<Route, Reject> {
    let r = route(policy, method, target)?;
    match r.body {
        BodyRule::Json(rule) => check_body(policy, NODE, &rule, body.as_bytes())?,
        BodyRule::Empty if !body.is_empty() => panic!("{target}: body on an Empty route"),
        _ => {}
    }
    Ok(r)
}

pub(super) fn json_rule(r: &Route) -> JsonRule {
    match r.body {
        BodyRule::Json(rule) => rule,
        other => panic!("expected a JSON body rule, got {other:?}"),
    }
}

pub(super) fn body_ok(policy: &Policy, rule: JsonRule, body: &str) -> bool {
    check_body(policy, NODE, &rule, body.as_bytes()).is_ok()
}

pub(super) const TAG_ADD: &str = r#"
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
pub(super) const TAG_REMOVE: &str = r#"
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
pub(super) const HUNT_ADD: &str = r#"
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
pub(super) const HUNT_REMOVE_OLD: &str = r#"
if (ctx._source.huntId != null) {
  int index = ctx._source.huntId.indexOf(params.huntId);
  if (index > -1) { ctx._source.huntId.remove(index); }
}
if (ctx._source.huntName != null) {
  int index = ctx._source.huntName.indexOf(params.huntName);
  if (index > -1) { ctx._source.huntName.remove(index); }
}
  "#;

pub(super) fn update_body(source: &str, params: serde_json::Value) -> String {
    serde_json::json!({"script": {"source": source, "lang": "painless", "params": params}})
        .to_string()
}

pub(super) fn viewer_traffic() -> Vec<(Method, &'static str, String)> {
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
            // "Download entire pcap" exactly as the 6.7.1 viewer sends it (Arkime #4172).
            "/sessions2-*%2Carkime_sessions3-*/_search?rest_total_hits_as_int=true\
             &preference=primaries&ignore_unavailable=true",
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
        (
            Method::POST,
            "/arkime_lookups/_search?rest_total_hits_as_int=true&version=true",
            s(
                r#"{"query":{"bool":{"should":[{"term":{"shared":true}},{"term":{"userId":"admin"}}]}},
               "size":10000,"profile":false}"#,
            ),
        ),
        (Method::GET, "/arkime_users/_count", s("")),
        (Method::GET, "/_refresh", s("")),
    ]
}
