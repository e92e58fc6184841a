//! Replays the recorded requests of a real Arkime capture (`tests/data/capture-trace.txt`:
//! offline plain, offline gzip, live) through esproxy in its default strict mode. Not one of them
//! may be refused, and what capture wrote must land in ES. The trace keeps the first 300 bytes of
//! each body: shorter bodies are replayed byte for byte; longer ones are rebuilt in the same shape
//! (the stats document cut at its last complete field, bulks regenerated with capture's exact
//! action-line format and index) and sent with the same Content-Encoding.

use crate::fleet_ini;
use crate::harness::{basic, gzip, session_doc, Osmem, Proxy};

pub(crate) struct Recorded {
    pub(crate) section: char,
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) gzip: bool,
    pub(crate) body: Vec<u8>,
}

fn unescape_newlines(s: &str) -> String {
    s.replace("\\n", "\n")
}

/// The stats/dstats doc prefix cut at its last complete `"key": value` and closed.
fn close_truncated_object(prefix: &str) -> String {
    let cut = prefix.rfind(",\"").expect("a field boundary");
    format!("{}}}", &prefix[..cut])
}

/// Session ids handed out so far: like capture, which draws a new id for every session it
/// saves, no two rebuilt documents share one (strict mode writes them with `create`).
static NEXT_SESSION: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn rebuild_bulk(decoded_prefix: &str, size: usize) -> String {
    let text = unescape_newlines(decoded_prefix);
    if let Some(rest) = text.strip_prefix("{\"index\":{\"_index\":\"") {
        // Sessions: capture's exact action line, its index, toronto01's documents.
        let index = &rest[..rest.find('"').unwrap()];
        let day = index.rsplit('-').next().unwrap();
        let mut out = String::new();
        let mut i = 0;
        while out.len() < size {
            let n = NEXT_SESSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            out.push_str(&format!(
                "{{\"index\":{{\"_index\":\"{index}\", \"_id\": \"{day}-trace{n:019}\"}}}}\n"
            ));
            out.push_str(&session_doc("toronto01", i));
            out.push('\n');
            i += 1;
        }
        out
    } else {
        // Field definitions: keep the complete action/source pairs of the recorded prefix.
        let lines: Vec<&str> = text.lines().collect();
        let complete = &lines[..lines.len() - 1];
        let pairs = complete.len() / 2 * 2;
        let mut out = complete[..pairs].join("\n");
        out.push('\n');
        out
    }
}

pub(crate) fn parse_trace() -> Vec<Recorded> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/capture-trace.txt"
    ))
    .expect("tests/data/capture-trace.txt");
    let mut out: Vec<Recorded> = Vec::new();
    let mut section = '?';
    let mut body_len = 0usize;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            if rest.len() > 2
                && rest.as_bytes()[1] == b'.'
                && rest.as_bytes()[0].is_ascii_uppercase()
            {
                section = rest.as_bytes()[0] as char;
            }
        } else if let Some(rest) = line.strip_prefix("=== #") {
            let mut parts = rest.split_whitespace().skip(3);
            out.push(Recorded {
                section,
                method: parts.next().unwrap().to_string(),
                target: parts.next().unwrap().to_string(),
                gzip: false,
                body: Vec::new(),
            });
        } else if let Some(r) = out.last_mut() {
            let l = line.trim_start();
            if l.eq_ignore_ascii_case("> Content-Encoding: gzip") {
                r.gzip = true;
            } else if let Some(n) = l.strip_prefix("body: ") {
                body_len = n.split_whitespace().next().unwrap().parse().unwrap();
            } else if let Some(b) = l.strip_prefix("body[:300]: ") {
                if !r.gzip {
                    r.body = if body_len <= 300 {
                        unescape_newlines(b).into_bytes()
                    } else if r.target.starts_with("/_bulk") {
                        rebuild_bulk(b, body_len).into_bytes()
                    } else {
                        close_truncated_object(b).into_bytes()
                    };
                }
            } else if let Some(d) = l.strip_prefix("decoded: ") {
                let (size, prefix) = d.split_once(" bytes; decoded[:300]: ").unwrap();
                let size: usize = size.parse().unwrap();
                let plain = if size <= 300 {
                    unescape_newlines(prefix)
                } else if r.target.starts_with("/_bulk") {
                    rebuild_bulk(prefix, size)
                } else {
                    close_truncated_object(prefix)
                };
                r.body = gzip(plain.as_bytes());
            }
        }
    }
    out
}

#[test]
fn every_request_of_a_real_capture_passes_strict_mode_and_lands() {
    let recorded = parse_trace();
    assert!(recorded.len() > 80, "parsed {} requests", recorded.len());
    for section in ['A', 'B', 'C'] {
        // Each section of the trace started from a fresh database.
        let es = Osmem::start();
        let p = Proxy::start(&fleet_ini(&es.url(), ""), "default");
        let auth = basic("toronto01:secret1");
        let mut bulks = 0;
        for r in recorded.iter().filter(|r| r.section == section) {
            let mut headers = vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ];
            if r.gzip {
                headers.push(("Content-Encoding", "gzip"));
            }
            let resp = p.req_h(&r.method, &r.target, &headers, &r.body);
            assert_ne!(resp.status, 401, "{section}: {} {}", r.method, r.target);
            assert!(
                !(resp.status == 400 && resp.text() == "Not authorized for API"),
                "{section}: {} {} refused (body {} bytes)",
                r.method,
                r.target,
                r.body.len()
            );
            if r.target == "/_bulk" {
                bulks += 1;
                assert_eq!(resp.status, 200, "{section}: bulk answered {}", resp.text());
                assert!(
                    !resp.text().contains("\"errors\":true"),
                    "{section}: {}",
                    resp.text()
                );
            }
        }
        assert!(bulks > 0);
        assert!(
            es.count("arkime_sessions3-*", r#"{"term":{"node":"toronto01"}}"#) > 0,
            "{section}: sessions landed"
        );
        assert!(
            es.count("arkime_fields", r#"{"match_all":{}}"#) > 0,
            "{section}: fields landed"
        );
    }
}
