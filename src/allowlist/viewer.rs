//! Session updates by script: the lax esProxy.js rule, and the strict rule that admits only the
//! viewer's own tag and hunt painless scripts, compared token by token.

use serde_json::Value;

use super::body::{is_str_array, keys_within, obj, only, Verdict};

/// esProxy.js: a `script` and no `doc`.
pub(super) fn session_update_lax(v: &Value) -> Verdict {
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
pub(super) fn session_update_strict(v: &Value) -> Verdict {
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

#[cfg(test)]
mod tests {

    use crate::allowlist::testkit::*;
    use crate::allowlist::JsonRule;

    use http::Method;

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
}
