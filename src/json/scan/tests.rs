//! The scanner's tests: each rule against serde_json's verdict on the same line, plus
//! property tests over generated and mutated documents.

use super::*;
use crate::json::parse_strict;
use proptest::prelude::*;
use serde_json::Value;

/// The scanner and the reference agree on accept/reject, and on what an accepted line's
/// top level holds (type, key count, `_` keys, the wanted key's value).
fn agree_depth(line: &[u8], max_depth: usize) {
    let mut sc = Scanner::new();
    let got = sc.scan(line, max_depth, Some(b"node"));
    let want = parse_strict(line, max_depth);
    match (&got, &want) {
        (Ok(sum), Ok(v)) => {
            assert_eq!(sum.top, Kind::of(v), "top kind of {:?}", show(line));
            let obj = v.as_object();
            assert_eq!(sum.top_keys, obj.map_or(0, |o| o.len()));
            assert_eq!(
                sum.underscore_key,
                obj.is_some_and(|o| o.keys().any(|k| k.starts_with('_')))
            );
            let node = obj.and_then(|o| o.get("node"));
            assert_eq!(sum.target.map(|t| t.0), node.map(Kind::of));
            if let (Some((Kind::String, Some(raw))), Some(Value::String(s))) = (sum.target, node) {
                let mut buf = Vec::new();
                assert!(raw.decodes_to(s.as_bytes(), &mut buf));
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "disagreement on {:?}: scanner {:?}, parse_strict {:?}",
            show(line),
            got,
            want
        ),
    }
}

fn agree(line: &[u8]) {
    agree_depth(line, 64);
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned()
}

fn ok(line: &str) -> bool {
    agree(line.as_bytes());
    Scanner::new().scan(line.as_bytes(), 64, None).is_ok()
}

#[test]
fn realistic_session_doc_is_accepted_and_node_found() {
    let doc = include_str!("../../bulk/testdata/session-2102.json").trim_end();
    assert_eq!(doc.chars().count(), 2102);
    let mut sc = Scanner::new();
    let sum = sc.scan(doc.as_bytes(), 64, Some(b"node")).unwrap();
    assert_eq!(sum.top, Kind::Object);
    assert!(!sum.underscore_key);
    let (kind, raw) = sum.target.unwrap();
    assert_eq!(kind, Kind::String);
    assert_eq!(raw.unwrap().raw, b"toronto01");
    agree(doc.as_bytes());
}

#[test]
fn whitespace_around_and_inside_is_json_whitespace_only() {
    assert!(ok(" \t\r\n{ \"a\" : [ 1 , 2 ] } \r\n"));
    assert!(!ok("\u{0b}{}"));
    assert!(!ok("{}\u{0c}"));
    assert!(!ok("\u{a0}{}"));
    assert!(!ok(""));
    assert!(!ok("   "));
}

#[test]
fn scalars_at_top_level_are_json_but_not_objects() {
    for s in ["1", "-0", "\"x\"", "true", "false", "null", "[]", "{}"] {
        assert!(ok(s), "{s}");
    }
    for s in [
        "tru",
        "nul",
        "True",
        "NULL",
        "nan",
        "Infinity",
        "-Infinity",
        "undefined",
    ] {
        assert!(!ok(s), "{s}");
    }
}

#[test]
fn numbers_follow_rfc_8259_exactly() {
    for s in [
        "0",
        "-0",
        "1",
        "-1",
        "10",
        "0.5",
        "-0.5",
        "1e5",
        "1E5",
        "1e+5",
        "1e-5",
        "1.5e3",
        "0e0",
        "123456789012345678901234567890",
        "-9223372036854775809",
        "18446744073709551616",
        "1e-400",
        "0e99999999999999999999",
        "1.7976931348623157e308",
        "-1.7976931348623157e308",
        "4.9e-324",
    ] {
        assert!(ok(s), "{s}");
        assert!(ok(&format!("[{s}]")), "[{s}]");
    }
    for s in [
        "01", "-01", "00", "+1", ".5", "1.", "-.5", "1.e5", "1e", "1e+", "1e-", "--1", "-", "1x",
        "0x10", "1_000", "1.5.5", "1ee5", "- 1",
    ] {
        assert!(!ok(s), "{s}");
        assert!(!ok(&format!("[{s}]")), "[{s}]");
    }
}

#[test]
fn numbers_overflowing_f64_are_refused_like_serde_json() {
    for s in [
        "1e309",
        "-1e309",
        "1e400",
        "0.0001e99999999999",
        "1.8e308",
        "17976931348623159e292",
        "1e99999999999999999999",
    ] {
        assert!(!ok(s), "{s}");
    }
    let big = format!("1{}", "0".repeat(400));
    assert!(!ok(&big));
    // Plain integers around the length where the integer fast path hands over to the range
    // check: 300 digits, 10^308 (finite) and 10^309 (not), bare and in a list.
    for (s, want) in [
        ("9".repeat(300), true),
        (format!("1{}", "0".repeat(308)), true),
        (format!("1{}", "0".repeat(309)), false),
        (format!("-1{}", "0".repeat(309)), false),
    ] {
        assert_eq!(ok(&s), want, "{} digits", s.len());
        assert_eq!(ok(&format!("[{s},1]")), want, "[{} digits,1]", s.len());
        agree(s.as_bytes());
    }
    let fine = format!("1{}e-200", "0".repeat(400));
    assert!(ok(&fine));
    // Whatever serde_json decides near f64::MAX, the scanner decides the same.
    for s in [
        "1.7976931348623158e308",
        "1.79769313486231580793e308",
        "1.797693134862315807937e308",
        "179769313486231570000e288",
        "0.00000000000000000000000000001e337",
    ] {
        agree(s.as_bytes());
    }
}

#[test]
fn strings_follow_serde_json_escape_and_surrogate_rules() {
    for s in [
        r#""\"\\\/\b\f\n\r\t""#,
        r#""\u0041\u00e9\u4e2d""#,
        r#""\uD83D\uDE00""#,
        r#""\ud83d\ude00""#,
        "\"raw é 中 😀\"",
        "\"\u{7f}\"",
    ] {
        assert!(ok(s), "{s}");
    }
    for s in [
        r#""\x41""#,
        r#""\u004""#,
        r#""\u00G1""#,
        r#""\uD83D""#,
        r#""\uDE00""#,
        r#""\uD83D\u0041""#,
        r#""\uD83Dx""#,
        r#""\uD83D\n""#,
        r#""\uDE00\uD83D""#,
        r#""\'""#,
        "\"a\u{0}b\"",
        "\"a\tb\"",
        "\"a\nb\"",
        "\"\u{1f}\"",
        "\"abc",
        r#""abc\"#,
        "'x'",
    ] {
        assert!(!ok(s), "{s}");
    }
}

#[test]
fn invalid_utf8_and_bom_are_refused() {
    for b in [
        &b"\"\xff\""[..],
        b"\"\xc3\"",
        b"\"\xed\xa0\x80\"",
        b"\"\xc0\xaf\"",
        b"\xef\xbb\xbf{}",
        b"{}\xff",
    ] {
        agree(b);
        assert!(Scanner::new().scan(b, 64, None).is_err());
    }
}

#[test]
fn structure_errors_are_refused() {
    for s in [
        "{",
        "}",
        "[",
        "]",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\" 1}",
        "{\"a\":1,}",
        "{,}",
        "{1:2}",
        "{a:1}",
        "{\"a\":1 \"b\":2}",
        "[1]]",
        "{}}",
        "{} {}",
        "[]x",
        "/*c*/{}",
        "{}//c",
        "{\"a\":1}#",
        "[1,,2]",
        "{\"a\"::1}",
    ] {
        assert!(!ok(s), "{s}");
    }
}

#[test]
fn duplicate_keys_are_refused_at_every_level_after_unescaping() {
    assert!(!ok(r#"{"a":1,"a":2}"#));
    assert!(!ok(r#"{"x":{"a":1,"b":2,"a":3}}"#));
    assert!(!ok(r#"[{"a":1},{"b":[{"c":1,"c":1}]}]"#));
    assert!(!ok(r#"{"node":"a","no\u0064e":"b"}"#));
    assert!(!ok(r#"{"\u00e9":1,"é":2}"#));
    assert!(!ok(r#"{"\uD83D\uDE00":1,"😀":2}"#));
    assert!(!ok(r#"{"a\/b":1,"a/b":2}"#));
    // The same key in sibling or nested objects is fine.
    assert!(ok(
        r#"{"a":{"a":{"a":1}},"b":{"a":2},"c":[{"a":1},{"a":2}]}"#
    ));
    assert!(ok(r#"{"":1,"\u0000":2," ":3}"#));
}

#[test]
fn duplicate_keys_in_big_objects_are_found_by_the_sorted_check() {
    let keys: Vec<String> = (0..500).map(|i| format!("\"k{i}\":{i}")).collect();
    let clean = format!("{{{}}}", keys.join(","));
    assert!(ok(&clean));
    let dup_late = format!("{{{},\"k7\":0}}", keys.join(","));
    assert!(!ok(&dup_late));
    let dup_escaped = format!("{{{},\"k\\u00340\":0}}", keys.join(","));
    assert!(!ok(&dup_escaped));
    // Nested big object closed before a parent key repeats a child key: no false hit.
    let nested = format!("{{\"k1\":{clean},\"k2\":{clean}}}");
    assert!(ok(&nested));
}

#[test]
fn many_colliding_prefix_keys_stay_fast() {
    // Keys differing only in the middle defeat a prefix/suffix fingerprint, not this check.
    let keys: Vec<String> = (0..100_000)
        .map(|i| format!("\"aaaaaaaaaaaaaaaa{i:08}aaaaaaaaaaaaaaaa\":0"))
        .collect();
    let line = format!("{{{}}}", keys.join(","));
    let t = std::time::Instant::now();
    assert!(Scanner::new().scan(line.as_bytes(), 64, None).is_ok());
    assert!(t.elapsed().as_secs() < 5);
}

#[test]
fn depth_limit_matches_the_reference_and_serde_json_cap() {
    for depth in [0usize, 1, 2, 3, 126, 127, 128, 129, 200] {
        for n in [0usize, 1, 2, 3, 4, 126, 127, 128, 129] {
            let arr = format!("{}1{}", "[".repeat(n), "]".repeat(n));
            agree_depth(arr.as_bytes(), depth);
            let obj = format!("{}1{}", "{\"a\":".repeat(n), "}".repeat(n));
            agree_depth(obj.as_bytes(), depth);
        }
    }
    assert!(Scanner::new().scan(b"[[[1]]]", 3, None).is_ok());
    assert_eq!(
        Scanner::new().scan(b"[[[[1]]]]", 3, None),
        Err(ScanError::TooDeep(3))
    );
    let deep = format!("{}{}", "[".repeat(127), "]".repeat(127));
    assert!(Scanner::new().scan(deep.as_bytes(), 1000, None).is_ok());
    let deeper = format!("{}{}", "[".repeat(128), "]".repeat(128));
    assert!(Scanner::new().scan(deeper.as_bytes(), 1000, None).is_err());
}

#[test]
fn target_key_value_is_reported_only_at_top_level() {
    let mut sc = Scanner::new();
    let s = sc
        .scan(br#"{"a":{"node":"x"},"node":"y"}"#, 64, Some(b"node"))
        .unwrap();
    assert_eq!(s.target.unwrap().1.unwrap().raw, b"y");
    let s = sc
        .scan(br#"{"a":{"node":"x"}}"#, 64, Some(b"node"))
        .unwrap();
    assert_eq!(s.target, None);
    let s = sc.scan(br#"[{"node":"x"}]"#, 64, Some(b"node")).unwrap();
    assert_eq!(s.target, None);
    let s = sc
        .scan(br#"{"node":{"node":"x"}}"#, 64, Some(b"node"))
        .unwrap();
    assert_eq!(s.target.unwrap().0, Kind::Object);
    let s = sc
        .scan(br#"{"n\u006fde":"t\u006f"}"#, 64, Some(b"node"))
        .unwrap();
    let raw = s.target.unwrap().1.unwrap();
    assert!(raw.escaped);
    assert!(raw.decodes_to(b"to", &mut Vec::new()));
}

#[test]
fn scanner_is_reusable_across_lines() {
    let mut sc = Scanner::new();
    assert!(sc.scan(br#"{"a":{"b":1,"b":2}}"#, 64, None).is_err());
    // State from a failed line must not leak into the next one.
    assert!(sc.scan(br#"{"a":1,"b":2}"#, 64, None).is_ok());
    assert!(sc.scan(br#"{"b":1}"#, 64, None).is_ok());
}

#[test]
fn digit_runs_end_at_the_first_non_digit_byte() {
    for b in 0..=255u8 {
        for at in 0..12 {
            let mut s = vec![b'7'; 12];
            s[at] = b;
            let want = if b.is_ascii_digit() { 12 } else { at };
            assert_eq!(digits_end(&s, 0), want, "byte {b:#x} at {at}");
            assert_eq!(digits_end(&s, at), if b.is_ascii_digit() { 12 } else { at });
        }
    }
    assert_eq!(digits_end(b"", 0), 0);
    assert_eq!(digits_end(b"123", 3), 3);
}

#[test]
fn numbers_read_from_one_window_end_and_fail_where_the_general_path_does() {
    // Each token, followed by each tail, at offsets that put its end at every lane of the
    // 16-byte window and past it (the line's last bytes take the general path).
    let tokens = [
        "0",
        "-0",
        "7",
        "-7",
        "01",
        "-01",
        "00",
        "10",
        "123456789012345",
        "1234567890123456",
        "-123456789012345",
        "-12345678901234",
        "99999999999999999999",
        "0.5",
        "-0.5",
        "1.",
        "1.e3",
        "1e5",
        "1E+5",
        "-1e-5",
        "0e0",
        "12345678901234.5",
        "-",
        "--1",
        "-a",
        "-.5",
        "+1",
        "a",
        "-0x1",
    ];
    let tails = [
        "",
        ",",
        "}",
        "]",
        " ",
        ".",
        "e",
        "E",
        "x",
        "0",
        "\"",
        ",1,2,3,4,5,6,7,8,9",
    ];
    for t in tokens {
        for tail in tails {
            for pad in 0..20 {
                let line = format!("{t}{tail}{}", " ".repeat(pad));
                let s = line.as_bytes();
                assert_eq!(number(s, 0), number_general(s, 0), "{line:?}");
                let line = format!("[{line}");
                let s = line.as_bytes();
                assert_eq!(number(s, 1), number_general(s, 1), "{line:?}");
                agree(line.as_bytes());
            }
        }
    }
}

#[test]
fn integer_lists_agree_with_the_reference_wherever_a_bad_element_sits() {
    // Lists long enough to cross several 32-byte windows; each bad element is tried at every
    // index, so it lands at every lane of a window and on window edges.
    let bad = [
        "01", "00", "-1", "1.5", "1e3", "", " 2", "2 ", "+1", "0x1", "1-", "\"a\"", "[]", "9a",
    ];
    for len in [1, 2, 3, 7, 20, 41] {
        for width in [1, 3, 5] {
            let good: Vec<String> = (0..len)
                .map(|k| ((k * 7919) % 10usize.pow(width)).to_string())
                .collect();
            let line = format!("[{}]", good.join(","));
            assert!(ok(&line), "{line}");
            for at in 0..len {
                for b in bad {
                    let mut elems = good.clone();
                    elems[at] = b.to_string();
                    let line = format!("[{}]", elems.join(","));
                    agree(line.as_bytes());
                    let wrapped = format!("{{\"a\":{line},\"b\":[0,{line}]}}");
                    agree(wrapped.as_bytes());
                }
            }
        }
    }
    assert!(ok(
        "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"
    ));
    assert!(!ok(
        "[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,]"
    ));
    assert!(!ok(
        "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,,18,19,20,21,22,23,24]"
    ));
    assert!(ok(
        "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17, 18,19,20,21,22,23,24]"
    ));
}

#[test]
fn non_ascii_is_checked_inside_strings_at_every_offset() {
    let valid: [&[u8]; 4] = [
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xf0\x9f\x98\x80",
        b"\xc3\xa9\xe2\x82\xac",
    ];
    let invalid: [&[u8]; 8] = [
        b"\xff",
        b"\xc3",
        b"\xc3\x28",
        b"\xa9",
        b"\xed\xa0\x80",
        b"\xc0\xaf",
        b"\xf4\x90\x80\x80",
        b"\xe2\x82",
    ];
    for pad in 0..40 {
        for (piece, good) in valid
            .iter()
            .map(|p| (p, true))
            .chain(invalid.iter().map(|p| (p, false)))
        {
            let mut line = b"{\"k\":\"".to_vec();
            line.extend(std::iter::repeat_n(b'x', pad));
            line.extend_from_slice(piece);
            line.extend_from_slice(b"y\",\"n\":1}");
            agree(&line);
            let got = Scanner::new().scan(&line, 64, None);
            assert_eq!(got.is_ok(), good, "{line:?}");
            if !good {
                assert_eq!(got, Err(ScanError::Utf8), "{line:?}");
            }
            // The same bytes outside a string: refused, as UTF-8 when they are not UTF-8.
            let mut bare = b"[".to_vec();
            bare.extend(std::iter::repeat_n(b' ', pad));
            bare.extend_from_slice(piece);
            bare.push(b']');
            agree(&bare);
            let got = Scanner::new().scan(&bare, 64, None);
            assert!(got.is_err());
            assert_eq!(got == Err(ScanError::Utf8), !good, "{bare:?}");
        }
    }
}

#[test]
fn short_keys_hash_the_same_read_in_place_or_decoded() {
    // In place (masked words) and from a copy (escaped keys, the end of a line) must agree,
    // or an escaped duplicate of a short key would go unseen.
    for n in 0..=20 {
        let key: Vec<u8> = (0..n).map(|k| b'a' + (k % 26) as u8).collect();
        let mut line = key.clone();
        line.extend_from_slice(&[b'"'; 20]);
        assert_eq!(key_hash_in_line(&line, 0, n), key_hash(&key), "length {n}");
        let escaped = format!(
            "{{\"{}\":1,\"\\u{:04x}{}\":2}}",
            String::from_utf8_lossy(&key),
            key.first().copied().unwrap_or(b'a'),
            String::from_utf8_lossy(key.get(1..).unwrap_or_default()),
        );
        if n > 0 {
            assert_eq!(
                Scanner::new().scan(escaped.as_bytes(), 64, None),
                Err(ScanError::DuplicateKey(escaped.find(",").unwrap() + 1)),
                "{escaped}"
            );
        }
    }
}

#[test]
fn decode_handles_every_escape() {
    let mut out = Vec::new();
    decode_into(br#"a\"b\\c\/d\be\ff\ng\rh\ti\u00e9\uD83D\uDE00"#, &mut out);
    assert_eq!(
        out,
        "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti\u{e9}\u{1F600}".as_bytes()
    );
}

/// Valid JSON documents built from a small recursive grammar, serialised compactly.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_\u{e9}\u{1F600}\\\\\"\n\u{1}]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("(node|_id|[a-c]{1,2}|no\u{64}e)", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Byte-level mutations that tend to hit the interesting corners.
fn mutate(mut b: Vec<u8>, edits: Vec<(usize, u8, u8)>) -> Vec<u8> {
    const ALPHABET: &[u8] =
        b"{}[]:,\" \\u0123456789abcdefABCDEFeE.+-tfnrl_\x00\x1f\x7f\xc3\xa9\xff\r\n\tDd8";
    for (pos, op, x) in edits {
        let c = ALPHABET[x as usize % ALPHABET.len()];
        if b.is_empty() {
            b.push(c);
            continue;
        }
        let p = pos % (b.len() + 1);
        match op % 4 {
            0 => b.insert(p, c),
            1 if p < b.len() => {
                b.remove(p);
            }
            2 if p < b.len() => b[p] = c,
            _ => {
                // Duplicate a slice: repeats keys, escapes, brackets.
                let q = (p + x as usize % 12).min(b.len());
                let piece: Vec<u8> = b[p.min(q)..q].to_vec();
                let at = (p + x as usize) % (b.len() + 1);
                b.splice(at..at, piece);
            }
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn scanner_agrees_with_parse_strict_on_valid_documents(v in json_value()) {
        let s = serde_json::to_vec(&v).unwrap();
        agree(&s);
        let pretty = serde_json::to_vec_pretty(&v).unwrap();
        agree(&pretty);
        agree_depth(&s, 2);
    }

    #[test]
    fn scanner_agrees_with_parse_strict_on_mutated_documents(
        v in json_value(),
        edits in prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let s = mutate(serde_json::to_vec(&v).unwrap(), edits);
        agree(&s);
    }

    #[test]
    fn scanner_agrees_with_parse_strict_on_integer_lists(
        elems in prop::collection::vec(prop_oneof![
            8 => "[1-9][0-9]{0,6}", 2 => Just("0".to_string()), 1 => "0[0-9]{1,3}",
            1 => "-[0-9]{1,3}", 1 => "[0-9]{1,3}[.e][0-9]", 1 => Just(String::new()),
            1 => "[ \t\n]{1,2}[0-9]{1,2}", 1 => "[0-9]{1,2}[ \r]", 1 => Just("\"x\"".to_string()),
            1 => "[0-9]{300,320}",
        ], 0..60),
        tail in "[]}, 0-9]{0,3}",
    ) {
        let line = format!("[{}{tail}", elems.join(","));
        agree(line.as_bytes());
        agree(format!("{line}]").as_bytes());
    }

    #[test]
    fn scanner_agrees_with_parse_strict_on_token_soup(
        toks in prop::collection::vec(prop_oneof![
            Just("{"), Just("}"), Just("["), Just("]"), Just(":"), Just(","), Just(" "),
            Just("\"node\""), Just("\"no\\u0064e\""), Just("\"a\""), Just("\"\\uD83D\\uDE00\""),
            Just("\"\\uD83D\""), Just("1"), Just("-0"), Just("1e400"), Just("0.5"), Just("01"),
            Just("true"), Just("null"), Just("\"_x\""), Just("\"\u{1}\""),
        ], 0..16),
    ) {
        agree(toks.concat().as_bytes());
    }
}
