//! Action lines of a `_bulk` body (SPEC §5): which operation on which index, and therefore what
//! the next line must be. Owns the index-name rules (sessions/fields prefixes, rotation
//! suffixes, `_id` shape) and says when a strict session `index` must reach ES as `create`
//! ([`Action::as_create`]; the bytes of that line are `create.rs`'s); knows nothing about
//! documents (`doc.rs`) or framing.

use super::session_id::{self, IdForm};
use crate::json::{self, action_line};
use crate::policy::Policy;
use serde_json::Value;
use std::sync::Arc;

/// Action lines are ~60–120 bytes in real traffic; a longer one is refused before it is parsed
/// so a hostile "action" cannot make the tree parser allocate many times its size.
pub const MAX_ACTION_LINE: usize = 16 * 1024;

/// The bulk operation named by an action line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `index`
    Index,
    /// `create`
    Create,
    /// `update`
    Update,
    /// `delete`
    Delete,
}

/// The kind of index an action targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `{O}sessions2-…` or `{P}sessions3-…`.
    Sessions,
    /// `{P}fields…`.
    Fields,
}

/// A validated action line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    /// The operation.
    pub op: Op,
    /// The index kind.
    pub target: Target,
    /// The line names the document's `_id`: sending it twice cannot make a second document.
    pub with_id: bool,
    /// Strict mode, a session `index` under a random-form `_id` (which names no node): it goes
    /// to ES as `create`, so it cannot replace a document another sensor wrote under that id.
    pub as_create: bool,
}

impl Action {
    /// Whether a source line follows this action (everything but `delete`).
    pub fn has_source(&self) -> bool {
        self.op != Op::Delete
    }
}

/// The index-name prefixes an action may use and whose session ids it may write, built once
/// per request from the policy and the authenticated sensor.
#[derive(Debug, Clone)]
pub struct IndexNames {
    sessions2: String,
    sessions3: String,
    fields: String,
    /// The authenticated sensor (consistent session ids embed it).
    node: Box<str>,
    /// Every configured sensor name.
    sensors: Arc<[String]>,
}

impl IndexNames {
    /// `{O}sessions2-`, `{P}sessions3-`, `{P}fields` for this policy's prefixes, for `sensor`.
    pub fn new(policy: &Policy, sensor: &str) -> IndexNames {
        IndexNames {
            sessions2: format!("{}sessions2-", policy.prefix.old),
            sessions3: format!("{}sessions3-", policy.prefix.p),
            fields: format!("{}fields", policy.prefix.p),
            node: sensor.into(),
            sensors: policy.sensor_names.clone(),
        }
    }

    /// The index kind and, for sessions, the rotation suffix after `sessions2-`/`sessions3-`.
    fn classify<'a>(&self, index: &'a str) -> Option<(Target, &'a str)> {
        if let Some(rest) = index
            .strip_prefix(self.sessions3.as_str())
            .or_else(|| index.strip_prefix(self.sessions2.as_str()))
        {
            return Some((Target::Sessions, rest));
        }
        if index.starts_with(self.fields.as_str()) {
            return Some((Target::Fields, ""));
        }
        None
    }
}

/// Checks one action line (without its `\n`). Both modes: an `_id` of at most 512 bytes.
/// `strict` adds the rules beyond esProxy.js: metadata keys only `_index`/`_id` (strings), a
/// real rotation suffix and a session `_id` capture could have written for this sensor
/// ([`session_id`]), an `_id` on `index` into fields. The error is a short reason for the log.
pub fn check(
    line: &[u8],
    names: &IndexNames,
    strict: bool,
    max_depth: usize,
) -> Result<Action, String> {
    check_read(line, capture_shape(line), names, strict, max_depth)
}

/// Capture's exact `index` line read without a JSON tree: `Some((index, id))`, or `None` for
/// any other bytes (and for a line too long to be an action). Read once per line and handed
/// to [`check_read`] and to the `create` rewrite.
pub fn capture_shape(line: &[u8]) -> Option<(&str, &str)> {
    if line.len() > MAX_ACTION_LINE {
        return None;
    }
    action_line::capture_index_line(line)
}

/// [`check`] given `capture_shape(line)`.
pub fn check_read(
    line: &[u8],
    shape: Option<(&str, &str)>,
    names: &IndexNames,
    strict: bool,
    max_depth: usize,
) -> Result<Action, String> {
    if line.len() > MAX_ACTION_LINE {
        return Err(format!("action line longer than {MAX_ACTION_LINE} bytes"));
    }
    // Capture writes every session action line in one exact shape: read that shape without
    // building a JSON tree (a tenth of the proxy's time on bulks, issue #7); any other bytes
    // take the full parse below, which reaches the same verdict on this shape.
    if max_depth >= 2 {
        if let Some((index, id)) = shape {
            return decide(Op::Index, index, Some(id), names, strict);
        }
    }
    check_parsed(line, names, strict, max_depth)
}

/// The general path: parse the line as strict JSON, then the same decision as the fast path.
fn check_parsed(
    line: &[u8],
    names: &IndexNames,
    strict: bool,
    max_depth: usize,
) -> Result<Action, String> {
    let v = json::parse_strict(line, max_depth).map_err(|e| format!("action line: {e}"))?;
    let Value::Object(top) = v else {
        return Err("action line is not a JSON object".into());
    };
    if top.len() != 1 {
        return Err(format!(
            "action line has {} keys, want exactly 1",
            top.len()
        ));
    }
    let (name, meta) = top.iter().next().expect("one key");
    let op = match name.as_str() {
        "index" => Op::Index,
        "create" => Op::Create,
        "update" => Op::Update,
        "delete" => Op::Delete,
        _ => return Err("unknown bulk operation".into()),
    };
    let Value::Object(meta) = meta else {
        return Err("action metadata is not an object".into());
    };
    let Some(Value::String(index)) = meta.get("_index") else {
        return Err("action without a string _index".into());
    };
    let id = match meta.get("_id") {
        None => None,
        Some(Value::String(id)) => Some(id.as_str()),
        Some(_) if strict => return Err("_id is not a string".into()),
        Some(_) => None,
    };
    if strict && meta.keys().any(|k| k != "_index" && k != "_id") {
        return Err("action metadata key other than _index/_id".into());
    }
    decide(op, index, id, names, strict)
}

/// The verdict on an action line once its operation, `_index` and `_id` are known.
fn decide(
    op: Op,
    index: &str,
    id: Option<&str>,
    names: &IndexNames,
    strict: bool,
) -> Result<Action, String> {
    let Some((target, suffix)) = names.classify(index) else {
        return Err(format!("index \"{}\" not allowed", short(index)));
    };
    let allowed = match op {
        Op::Index => true,
        Op::Create => target == Target::Sessions,
        Op::Update | Op::Delete => target == Target::Fields,
    };
    if !allowed {
        return Err(format!("{op:?} not allowed on \"{}\"", short(index)));
    }
    if let Some(id) = id {
        session_id::check_length(id)?;
    }
    let mut as_create = false;
    if strict {
        match target {
            Target::Sessions => {
                if !is_rotation(suffix) {
                    return Err(format!("index \"{}\" has no rotation suffix", short(index)));
                }
                if let Some(id) = id {
                    let form = session_id::check_strict(id, suffix, &names.node, &names.sensors)?;
                    as_create = op == Op::Index && form == IdForm::Random;
                }
            }
            Target::Fields => {
                // Capture writes field definitions to exactly `{P}fields`; a longer name
                // (`arkime_fields_v30`, `arkime_fieldsX`) is some other index.
                if index != names.fields {
                    return Err(format!(
                        "fields index {:?} is not exactly the alias",
                        short(index)
                    ));
                }
                if op == Op::Index && id.is_none() {
                    return Err("index into fields without _id".into());
                }
            }
        }
    }
    Ok(Action {
        op,
        target,
        with_id: id.is_some(),
        as_create,
    })
}

/// At most 64 characters of an index name, for log reasons.
fn short(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Whether `s` is one of Arkime's rotation suffixes: `YYMMDD`, `YYMMDDhHH`, `YYwWW`, `YYmMM`
/// (digits only, real month/day, hour 00–23, week 00–53, month 01–12).
pub fn is_rotation(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |i: usize| -> Option<u32> {
        match (b.get(i), b.get(i + 1)) {
            (Some(x @ b'0'..=b'9'), Some(y @ b'0'..=b'9')) => {
                Some(u32::from(x - b'0') * 10 + u32::from(y - b'0'))
            }
            _ => None,
        }
    };
    let Some(yy) = num(0) else {
        return false;
    };
    match (b.len(), b.get(2)) {
        (5, Some(b'w')) => num(3).is_some_and(|w| w <= 53),
        (5, Some(b'm')) => num(3).is_some_and(|m| (1..=12).contains(&m)),
        (6, _) => valid_date(yy, num(2), num(4)),
        (9, _) => valid_date(yy, num(2), num(4)) && b[6] == b'h' && num(7).is_some_and(|h| h < 24),
        _ => false,
    }
}

/// A real calendar date in 2000–2099 (every year divisible by 4 is a leap year there).
fn valid_date(yy: u32, mm: Option<u32>, dd: Option<u32>) -> bool {
    let (Some(mm), Some(dd)) = (mm, dd) else {
        return false;
    };
    let days = match mm {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if yy.is_multiple_of(4) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&dd)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Prefix;

    fn names(prefix: Option<&str>) -> IndexNames {
        IndexNames::new(
            &Policy {
                prefix: Prefix::new(prefix),
                ..Policy::default()
            },
            "toronto01",
        )
    }

    fn strict(line: &str) -> Result<Action, String> {
        check(line.as_bytes(), &names(None), true, 64)
    }

    fn lax_tests(line: &str) -> Result<Action, String> {
        check(line.as_bytes(), &names(Some("tests")), false, 64)
    }

    #[test]
    fn capture_session_action_line_is_accepted_in_strict_mode() {
        let a = strict(
            r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-XyFr4-nVi-Pfro7SVr4ix4J5"}}"#,
        )
        .unwrap();
        assert_eq!(
            a,
            Action {
                op: Op::Index,
                target: Target::Sessions,
                with_id: true,
                as_create: true,
            }
        );
        assert!(a.has_source());
    }

    #[test]
    fn an_action_without_id_is_marked_so() {
        let a = lax_tests(r#"{"index":{"_index":"tests_sessions3-2024"}}"#).unwrap();
        assert!(!a.with_id);
        let a =
            lax_tests(r#"{"create":{"_index":"tests_sessions3-2024","_id":"2024-a"}}"#).unwrap();
        assert!(a.with_id);
    }

    #[test]
    fn strict_fields_index_must_be_exactly_the_alias() {
        assert!(strict(r#"{"index":{"_index":"arkime_fieldsx","_id":"a"}}"#).is_err());
        assert!(strict(r#"{"delete":{"_index":"arkime_fields_v30","_id":"a"}}"#).is_err());
        assert!(lax_tests(r#"{"delete":{"_index":"tests_fields_v30","_id":"x"}}"#).is_ok());
    }

    #[test]
    fn capture_fields_action_lines_are_accepted_in_strict_mode() {
        for l in [
            r#"{"index": {"_index": "arkime_fields", "_id": "dbTimestamp"}}"#,
            r#"{"update": {"_index": "arkime_fields", "_id": "http.uri"}}"#,
            r#"{"delete": {"_index": "arkime_fields", "_id": "http.uri"}}"#,
        ] {
            assert!(strict(l).is_ok(), "{l}");
        }
        assert!(
            !strict(r#"{"delete":{"_index":"arkime_fields","_id":"x"}}"#)
                .unwrap()
                .has_source()
        );
    }

    #[test]
    fn arkime_regression_cases_behave_as_esproxy_in_lax_mode() {
        assert!(lax_tests(r#"{"index":{"_index":"tests_sessions3-2024","_id":"1"}}"#).is_ok());
        for bad in [
            r#"{"index":{"_index":"evil_sessions2_hack"}}"#,
            r#"{"index":{"_index":"other_sessions3-2024"}}"#,
            r#"{"index":{"_index":"tests_sessions3evil"}}"#,
            r#"{"delete":{"_index":"evil_fields_hack","_id":"x"}}"#,
            r#"{"create":{"_index":"tests_fields","_id":"x"}}"#,
            r#"{"update":{"_index":"tests_sessions3-2024","_id":"1"}}"#,
            "not valid json",
            r#"{"index":{"_index":"tests_sessions3-2024"},"create":{"_index":"tests_sessions3-2024"}}"#,
        ] {
            assert!(lax_tests(bad).is_err(), "{bad}");
        }
        assert!(lax_tests(r#"{"delete":{"_index":"tests_fields","_id":"x"}}"#).is_ok());
    }

    #[test]
    fn sessions2_uses_the_old_prefix() {
        // Default prefix: O is empty.
        assert!(strict(r#"{"index":{"_index":"sessions2-260819"}}"#).is_ok());
        assert!(strict(r#"{"index":{"_index":"arkime_sessions2-260819"}}"#).is_err());
        let n = names(Some("tests"));
        assert!(check(
            br#"{"index":{"_index":"tests_sessions2-260819"}}"#,
            &n,
            true,
            64
        )
        .is_ok());
        assert!(check(br#"{"index":{"_index":"sessions2-260819"}}"#, &n, true, 64).is_err());
    }

    #[test]
    fn operation_and_index_kind_must_match() {
        assert!(strict(r#"{"create":{"_index":"arkime_sessions3-260819"}}"#).is_ok());
        assert!(strict(r#"{"create":{"_index":"arkime_fields","_id":"a"}}"#).is_err());
        assert!(strict(r#"{"update":{"_index":"arkime_sessions3-260819"}}"#).is_err());
        assert!(strict(r#"{"delete":{"_index":"arkime_sessions3-260819"}}"#).is_err());
        assert!(strict(r#"{"index":{"_index":"arkime_files_v30","_id":"a"}}"#).is_err());
        assert!(strict(r#"{"upsert":{"_index":"arkime_fields","_id":"a"}}"#).is_err());
    }

    #[test]
    fn action_shape_is_one_key_with_object_metadata_and_string_index() {
        for bad in [
            r#"[]"#,
            r#"{}"#,
            r#"{"index":"arkime_fields"}"#,
            r#"{"index":{}}"#,
            r#"{"index":{"_index":5}}"#,
            r#"{"index":{"_index":["arkime_fields"]}}"#,
        ] {
            assert!(strict(bad).is_err(), "{bad}");
            assert!(lax_tests(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strict_metadata_allows_only_string_index_and_id() {
        assert!(
            strict(r#"{"index":{"_index":"arkime_fields","_id":"a","pipeline":"p"}}"#).is_err()
        );
        assert!(strict(r#"{"index":{"_index":"arkime_fields","_id":1}}"#).is_err());
        assert!(strict(r#"{"index":{"_index":"arkime_sessions3-260819","routing":"x"}}"#).is_err());
        // Lax mode (esProxy.js) only looks at _index.
        let n = names(None);
        assert!(check(
            br#"{"index":{"_index":"arkime_fields","_id":1,"pipeline":"p"}}"#,
            &n,
            false,
            64
        )
        .is_ok());
    }

    #[test]
    fn duplicate_keys_in_action_lines_are_rejected_in_both_modes() {
        let l =
            r#"{"index":{"_index":"arkime_fields","_index":"arkime_sessions3-260819","_id":"a"}}"#;
        assert!(strict(l).is_err());
        assert!(check(l.as_bytes(), &names(None), false, 64).is_err());
        let esc = r#"{"index":{"_index":"arkime_sessions3-260819","\u005findex":"x"}}"#;
        assert!(check(esc.as_bytes(), &names(None), false, 64).is_err());
    }

    #[test]
    fn strict_session_index_needs_a_rotation_suffix_and_matching_id() {
        const R: &str = "XyFr4-nVi-Pfro7SVr4ix4J5";
        let line =
            |index: &str, id: &str| format!(r#"{{"index":{{"_index":"{index}","_id":"{id}"}}}}"#);
        assert!(strict(&line("arkime_sessions3-2024", "2024-XyFr4")).is_err());
        assert!(strict(&line("arkime_sessions3-260819", &format!("260818-{R}"))).is_err());
        assert!(strict(&line("arkime_sessions3-260819", "260819")).is_err());
        assert!(strict(&line("arkime_sessions3-260819", "260819-")).is_err());
        assert!(strict(&line("arkime_sessions3-260819", &format!("260819-{R}"))).is_ok());
        assert!(strict(&line(
            "arkime_sessions3-260819h07",
            &format!("260819h07-{R}")
        ))
        .is_ok());
        assert!(strict(&line("arkime_sessions3-26w33", &format!("26w33-{R}"))).is_ok());
        assert!(strict(&line("arkime_sessions3-26m08", &format!("26m08-{R}"))).is_ok());
        // Lax: esProxy.js only checks the prefix.
        assert!(check(
            br#"{"index":{"_index":"arkime_sessions3-anything","_id":"z"}}"#,
            &names(None),
            false,
            64
        )
        .is_ok());
    }

    /// Issue #11: every id form, as toronto01 (toronto011 and paris-02 also configured), in
    /// capture's exact line and in a reordered one (the general parse), strict and lax: the
    /// verdict, and for admitted ones whether the line goes to ES as `create`.
    #[test]
    fn session_id_table_in_strict_and_lax_mode() {
        let n = "n".repeat(500);
        let over_long = format!("260819-{n}-1-2"); // 511 bytes: strict refuses, lax passes
        let over_es = format!("260819-{n}-12345-12345"); // 519 bytes: over ES's limit
        let table: &[(&str, &str, bool, bool)] = &[
            ("random", "260819-XyFr4-nVi-Pfro7SVr4ix4J5", true, true),
            ("sequential", "260819-AAEAAAAAAAAAAAAAAAAAAAAB", true, true),
            (
                "consistent, own node",
                "260819-toronto01-42468-33456471984",
                true,
                true,
            ),
            (
                "consistent, other node",
                "260819-paris-02-42468-33456471984",
                false,
                true,
            ),
            (
                "consistent, node that has ours as prefix",
                "260819-toronto011-7-100",
                false,
                true,
            ),
            (
                "random-shaped consistent id of another node",
                "260819-toronto011-1234-12345678",
                false,
                true,
            ),
            ("wrong date", "260818-XyFr4-nVi-Pfro7SVr4ix4J5", false, true),
            (
                "no dash after the date",
                "260819XyFr4-nVi-Pfro7SVr4ix4J5",
                false,
                true,
            ),
            (
                "random, 23 characters",
                "260819-XyFr4-nVi-Pfro7SVr4ix4J",
                false,
                true,
            ),
            (
                "random, 25 characters",
                "260819-XyFr4-nVi-Pfro7SVr4ix4J55",
                false,
                true,
            ),
            (
                "standard base64",
                "260819-XyFr4+nVi/Pfro7SVr4ix4J5",
                false,
                true,
            ),
            ("space", "260819-XyFr4 nVi-Pfro7SVr4ix4J5", false, true),
            ("non-ASCII", "260819-XyFr4-nVi-Pfro7SVr4ix4Jé", false, true),
            (
                "consistent, position not a number",
                "260819-toronto01-42468-3x",
                false,
                true,
            ),
            ("long consistent-looking", &over_long, false, true),
            ("over 512 bytes", &over_es, false, false),
        ];
        let policy = |strict: bool| Policy {
            strict,
            sensor_names: ["toronto01", "toronto011", "paris-02"]
                .map(String::from)
                .into(),
            ..Policy::default()
        };
        for strict in [true, false] {
            let names = IndexNames::new(&policy(strict), "toronto01");
            for (what, id, strict_ok, lax_ok) in table {
                let want = if strict { *strict_ok } else { *lax_ok };
                let id_json = serde_json::to_string(id).unwrap();
                for line in [
                    format!(
                        r#"{{"index":{{"_index":"arkime_sessions3-260819", "_id": {id_json}}}}}"#
                    ),
                    format!(
                        r#"{{"index":{{"_id":{id_json},"_index":"arkime_sessions3-260819"}}}}"#
                    ),
                ] {
                    let got = check(line.as_bytes(), &names, strict, 64);
                    assert_eq!(got.is_ok(), want, "strict={strict} {what}: {got:?}");
                    // Ids that name no node go to ES as `create` (strict only); the sensor's
                    // own consistent ids stay `index`.
                    let creates = strict && matches!(*what, "random" | "sequential");
                    if let Ok(a) = got {
                        assert_eq!(a.as_create, creates, "strict={strict} {what}");
                    }
                }
            }
        }
    }

    #[test]
    fn only_a_strict_session_index_under_a_random_id_becomes_create() {
        const R: &str = "260819-XyFr4-nVi-Pfro7SVr4ix4J5";
        let a = |line: &str, strict_mode: bool| {
            check(line.as_bytes(), &names(None), strict_mode, 64)
                .unwrap()
                .as_create
        };
        let index = format!(r#"{{"index":{{"_index":"arkime_sessions3-260819","_id":"{R}"}}}}"#);
        assert!(a(&index, true));
        assert!(!a(&index, false), "lax mode forwards as sent");
        let create = index.replacen("index", "create", 1);
        assert!(!a(&create, true), "already a create");
        // No _id: ES picks a fresh one, nothing to overwrite.
        assert!(!a(
            r#"{"index":{"_index":"arkime_sessions3-260819"}}"#,
            true
        ));
        assert!(!a(
            r#"{"index":{"_index":"arkime_fields","_id":"a"}}"#,
            true
        ));
    }

    #[test]
    fn strict_index_into_fields_needs_an_id() {
        assert!(strict(r#"{"index":{"_index":"arkime_fields"}}"#).is_err());
        assert!(check(
            br#"{"index":{"_index":"arkime_fields"}}"#,
            &names(None),
            false,
            64
        )
        .is_ok());
    }

    #[test]
    fn rotation_suffixes_are_real_dates_hours_weeks_and_months() {
        for ok in [
            "260819",
            "240229",
            "000101",
            "991231",
            "260819h00",
            "260819h23",
            "26w00",
            "26w53",
            "26m01",
            "26m12",
        ] {
            assert!(is_rotation(ok), "{ok}");
        }
        for bad in [
            "",
            "2608",
            "2608190",
            "261319",
            "260800",
            "260832",
            "250229",
            "260431",
            "260819h24",
            "260819x07",
            "260819h7",
            "26w54",
            "26m00",
            "26m13",
            "26x01",
            "2a0819",
            "26081９",
            "+60819",
            "26w-1",
            "260819h0a",
        ] {
            assert!(!is_rotation(bad), "{bad}");
        }
    }

    #[test]
    fn overlong_action_line_is_refused_before_parsing() {
        let pad = " ".repeat(MAX_ACTION_LINE);
        let l = format!(r#"{{"index":{{"_index":"arkime_fields","_id":"a"}}}}{pad}"#);
        assert!(strict(&l).unwrap_err().contains("longer than"));
    }

    #[test]
    fn fast_path_needs_the_depth_the_full_parse_needs() {
        let l = r#"{"index":{"_index":"arkime_sessions3-260819", "_id": "260819-a"}}"#;
        for depth in 0..4 {
            assert_eq!(
                check(l.as_bytes(), &names(None), true, depth),
                check_parsed(l.as_bytes(), &names(None), true, depth),
                "max_depth {depth}"
            );
        }
    }

    proptest::proptest! {
        /// The fast path is an optimisation only: on capture-shaped lines with any index and
        /// id text (escapes, quotes, controls, non-ASCII included) both paths agree.
        #[test]
        fn fast_path_agrees_with_the_full_parse(
            index in r#"(arkime_|tests_)?(sessions[23]-|fields)?[0-9hwm]{0,9}[-a-z"\\é\x00-\x1f ]{0,3}"#,
            id in r#"[0-9hwm]{0,9}-?[-A-Za-z0-9_"\\\x7f é]{0,6}"#,
            strict_mode in proptest::bool::ANY,
            prefix in proptest::option::of("tests"),
        ) {
            let line = format!(r#"{{"index":{{"_index":"{index}", "_id": "{id}"}}}}"#);
            let n = names(prefix.as_deref());
            proptest::prop_assert_eq!(
                check(line.as_bytes(), &n, strict_mode, 64),
                check_parsed(line.as_bytes(), &n, strict_mode, 64)
            );
        }
    }
}
