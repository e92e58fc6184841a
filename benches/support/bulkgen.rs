//! Capture-like `_bulk` bodies for the benches and the load tests (issue #7): session documents
//! shaped like arkime-traffic.md §4 (1.5–2.5 KB each, the action line capture writes, varied
//! numbers, addresses, ids and strings so gzip sees realistic entropy), plus the worst cases for
//! the scanner. Deterministic (a fixed-seed xorshift), so every run measures the same bytes.
//! Shared by `benches/bulk.rs` and `examples/gen_bulk.rs` through `#[path]`.

#![allow(dead_code)]

use std::fmt::Write as _;

/// A small deterministic PRNG (xorshift64*): no dependency, same bytes on every run.
pub struct Rng(u64);

impl Rng {
    /// Seeded generator (seed 0 is remapped: xorshift must not start at 0).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Next 64 random bits.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const HOSTS: &[&str] = &[
    "example.com",
    "xn--80ak6aa92e.com",
    "cdn.jsdelivr.net",
    "updates.example.org",
    "api.weather.example.net",
    "mail.example.co.uk",
    "static.example-cdn.com",
    "login.example.io",
];
const PATHS: &[&str] = &[
    "/wp-admin/admin-ajax.php",
    "/index.html",
    "/api/v2/items",
    "/static/js/app.3f9a1c.js",
    "/favicon.ico",
    "/search",
    "/images/logo.png",
    "/login",
];
const AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "curl/8.5.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \\\"Mobile\\\"",
];
const ORGS: &[&str] = &[
    "Núcleo de Inf. e Coord. do Ponto BR - NIC.BR",
    "Amazon.com, Inc.",
    "Google LLC",
    "Cloudflare, Inc.",
    "Deutsche Telekom AG",
];
const HEADERS: &[&str] = &[
    "accept",
    "accept-encoding",
    "accept-language",
    "cookie",
    "host",
    "referer",
    "user-agent",
    "x-forwarded-for",
    "cache-control",
    "connection",
];

/// Capture's rotation suffix used throughout (daily `YYMMDD`).
pub const DAY: &str = "260819";

/// The action line capture writes (exact spacing) for a fresh session id.
pub fn action_line(out: &mut String, prefix: &str, rng: &mut Rng) {
    let _ = write!(
        out,
        r#"{{"index":{{"_index":"{prefix}sessions3-{DAY}", "_id": "{DAY}-"#
    );
    for _ in 0..24 {
        out.push(B64URL[rng.below(64) as usize] as char);
    }
    out.push_str("\"}}\n");
}

/// How many packets a generated session carries, which sets its density of small numbers.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Extra gap-encoded `packetPos` entries: `min + below(spread)`.
    pub positions: (u64, u64),
    /// Whether `packetLen` is written (capture's `enablePacketLen`): one length per position.
    pub packet_len: bool,
    /// Gaps as long sessions have them (many 0 = same gap again, mostly short); otherwise
    /// uniform below 20,000.
    pub short_gaps: bool,
}

/// Short sessions (3–14 positions, no `packetLen`): ~225,000 JSON tokens per MB of documents
/// (tokens counted as simdjson indexes them: each of `{}[]:,` and each key or value).
pub const TYPICAL: Shape = Shape {
    positions: (2, 12),
    packet_len: false,
    short_gaps: false,
};

/// Longer sessions with `packetLen` (45–108 positions; arkime-traffic.md §4: `packetPos` and
/// `packetLen` are arrays of small numbers): ~290,000 JSON tokens per MB of documents, the
/// density of real capture bulks.
pub const DENSE: Shape = Shape {
    positions: (44, 64),
    packet_len: true,
    short_gaps: true,
};

/// One capture-shaped session document (1.5–2.5 KB, compact JSON, no newline).
pub fn session_doc(out: &mut String, node: &str, rng: &mut Rng) {
    session_doc_shaped(out, node, rng, TYPICAL)
}

/// [`session_doc`] with a given number of packets.
pub fn session_doc_shaped(out: &mut String, node: &str, rng: &mut Rng, shape: Shape) {
    let first = 1_787_140_352_477u64 + rng.below(86_400_000);
    let len = rng.below(60_000);
    let last = first + len;
    let sport = 1024 + rng.below(64_000);
    let dport = *[80u64, 443, 53, 8080, 25]
        .get(rng.below(5) as usize)
        .unwrap_or(&80);
    let (sb, db) = (rng.below(2_000_000), rng.below(20_000_000));
    let (sp, dp) = (1 + rng.below(400), 1 + rng.below(900));
    let host = rng.pick(HOSTS);
    let path = rng.pick(PATHS);
    let org = rng.pick(ORGS);
    let _ = write!(
        out,
        concat!(
            r#"{{"packetRange":{{"gte":{first},"lte":{last}}},"firstPacket":{first},"lastPacket":{last},"#,
            r#""length":{len},"ipProtocol":6,"ethertype":2048,"#,
            r#""tcpflags":{{"syn":1,"syn-ack":1,"ack":{ack},"psh":{psh},"fin":2,"rst":0,"urg":0,"ece":0,"cwr":0,"ae":0,"srcZero":0,"dstZero":0}},"#,
            r#""initRTT":{rtt},"tcpseq":{{"src":{seq1},"dst":{seq2}}},"tcpSynValidated":true,"tcpSynAckValidated":true,"srcISNCnt":1,"#,
            r#""srcPayload8":"{pay1:016x}","dstPayload8":"{pay2:016x}","@timestamp":{ts},"#,
            r#""source":{{"ip":"10.{a}.{b}.{c}","port":{sport},"bytes":{sb},"packets":{sp},"mac-cnt":1,"mac":["02:50:00:{m1:02x}:{m2:02x}:e8"]}},"#,
            r#""destination":{{"ip":"{d1}.{d2}.{d3}.{d4}","port":{dport},"bytes":{db},"packets":{dp},"geo":{{"country_iso_code":"BR"}},"#,
            r#""as":{{"number":{asn},"full":"AS{asn} {org}","organization":{{"name":"{org}"}}}},"mac-cnt":1,"mac":["ac:4b:c8:1d:{m3:02x}:4a"]}},"#,
            r#""dstRIR":"LACNIC","network":{{"packets":{np},"bytes":{nb},"community_id":"1:"#
        ),
        first = first,
        last = last,
        len = len,
        ack = rng.below(40),
        psh = rng.below(20),
        rtt = rng.below(300),
        seq1 = rng.below(4_000_000_000),
        seq2 = rng.below(4_000_000_000),
        pay1 = rng.next(),
        pay2 = rng.next(),
        ts = 1_787_140_800_000u64 + rng.below(86_400_000),
        a = rng.below(256),
        b = rng.below(256),
        c = rng.below(256),
        sport = sport,
        sb = sb,
        sp = sp,
        m1 = rng.below(256),
        m2 = rng.below(256),
        d1 = 1 + rng.below(223),
        d2 = rng.below(256),
        d3 = rng.below(256),
        d4 = rng.below(256),
        dport = dport,
        db = db,
        dp = dp,
        asn = rng.below(65_000),
        org = org,
        m3 = rng.below(256),
        np = sp + dp,
        nb = sb + db,
    );
    for _ in 0..27 {
        out.push(B64URL[rng.below(64) as usize] as char);
    }
    let file = 1 + rng.below(90_000);
    let _ = write!(
        out,
        concat!(
            r#"="}},"client":{{"bytes":{cb}}},"server":{{"bytes":{svb}}},"totDataBytes":{tot},"segmentCnt":1,"#,
            r#""node":"{node}","packetPos":[-{file},{pos}"#
        ),
        cb = sb / 2,
        svb = db / 2,
        tot = sb / 2 + db / 2,
        node = node,
        file = file,
        pos = rng.below(40_000_000_000),
    );
    let positions = 1 + shape.positions.0 + rng.below(shape.positions.1);
    for _ in 1..positions {
        // Gap-encoded: 0 repeats the previous gap, most gaps are a few hundred bytes.
        let gap = if !shape.short_gaps {
            rng.below(20_000)
        } else {
            match rng.below(4) {
                0 => 0,
                1 | 2 => rng.below(2_000),
                _ => rng.below(20_000),
            }
        };
        let _ = write!(out, ",{gap}");
    }
    if shape.packet_len {
        out.push_str("],\"packetLen\":[");
        for i in 0..positions {
            let len = match rng.below(3) {
                0 => 66,
                1 => 54 + rng.below(100),
                _ => 54 + rng.below(1_460),
            };
            let _ = write!(out, "{}{len}", if i > 0 { "," } else { "" });
        }
    }
    let _ = write!(
        out,
        r#"],"fileId":[{file}],"dstOuiCnt":1,"dstOui":["Juniper Networks"],"dstTTLCnt":1,"dstTTL":[{ttl}],"#,
        ttl = 40 + rng.below(215)
    );
    // The http block: the bulk of a typical document, with a variable number of headers.
    let nreq = 3 + rng.below(HEADERS.len() as u64 - 3) as usize;
    let nresp = 2 + rng.below(6) as usize;
    let _ = write!(
        out,
        concat!(
            r#""http":{{"bodyMagicCnt":1,"bodyMagic":["text/html"],"clientVersionCnt":1,"clientVersion":["1.1"],"#,
            r#""hostCnt":1,"host":["{host}"],"md5Cnt":1,"md5":["{md5a:016x}{md5b:016x}"],"#,
            r#""methodCnt":1,"method":["{method}"],"pathCnt":1,"path":["{path}"],"requestHeaderCnt":{nreq},"requestHeader":["#
        ),
        host = host,
        md5a = rng.next(),
        md5b = rng.next(),
        method = rng.pick(&["GET", "POST", "PUT", "HEAD"]),
        path = path,
        nreq = nreq,
    );
    for (i, h) in HEADERS.iter().take(nreq).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{h}\"");
    }
    let _ = write!(out, r#"],"responseHeaderCnt":{nresp},"responseHeader":["#);
    for (i, h) in HEADERS.iter().rev().take(nresp).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{h}\"");
    }
    let _ = write!(
        out,
        concat!(
            r#"],"serverVersionCnt":1,"serverVersion":["1.1"],"statuscodeCnt":1,"statuscode":[{status}],"#,
            r#""uriCnt":1,"uri":["{host}{path}?q={q}&id={id}"],"useragentCnt":1,"useragent":["{ua}"]}},"#,
            r#""protocolCnt":2,"protocol":["http","tcp"],"srcTTLCnt":1,"srcTTL":[{sttl}]}}"#
        ),
        status = rng.pick(&["200", "301", "404", "500"]),
        host = host,
        path = path,
        q = rng.next() % 1_000_000_007,
        id = rng.next(),
        ua = rng.pick(AGENTS),
        sttl = 40 + rng.below(215),
    );
}

/// A capture-like plain bulk of about `target` bytes for `node` (pairs of action and session
/// document lines, each line ending in `\n`).
pub fn capture_bulk(node: &str, target: usize, seed: u64) -> Vec<u8> {
    capture_bulk_shaped(node, target, seed, TYPICAL)
}

/// [`capture_bulk`] with sessions of the given [`Shape`].
pub fn capture_bulk_shaped(node: &str, target: usize, seed: u64, shape: Shape) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(target + 4096);
    while out.len() < target {
        action_line(&mut out, "arkime_", &mut rng);
        session_doc_shaped(&mut out, node, &mut rng, shape);
        out.push('\n');
    }
    out.into_bytes()
}

/// Worst case: every document carries long strings dense with escapes (`\"`, `\\`, `\n`,
/// `\u00e9`, raw multi-byte UTF-8) — the scanner cannot skip any of it at memchr speed.
pub fn escaped_strings_bulk(node: &str, target: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(target + 70_000);
    while out.len() < target {
        action_line(&mut out, "arkime_", &mut rng);
        let _ = write!(out, r#"{{"node":"{node}","http":{{"uri":[""#);
        for _ in 0..2000 {
            out.push_str(match rng.below(6) {
                0 => r#"\"q\""#,
                1 => r"\\",
                2 => r"\n",
                3 => r"\u00e9",
                4 => "é€",
                _ => "abc/def?x=1",
            });
        }
        out.push_str("\"]}}\n");
    }
    out.into_bytes()
}

/// Worst case: documents nested `depth` levels deep (objects and arrays alternating), every
/// level a structural token the scanner must track.
pub fn deep_nesting_bulk(node: &str, target: usize, depth: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(target + 4096);
    while out.len() < target {
        action_line(&mut out, "arkime_", &mut rng);
        let _ = write!(out, r#"{{"node":"{node}","d":"#);
        for i in 0..depth {
            out.push_str(if i % 2 == 0 { "[1," } else { r#"{"k":"# });
        }
        out.push('0');
        for i in (0..depth).rev() {
            out.push(if i % 2 == 0 { ']' } else { '}' });
        }
        out.push_str("}\n");
    }
    out.into_bytes()
}

/// Worst case: the smallest valid pairs (an action and a ~30-byte document), so the per-line
/// cost dominates.
pub fn small_docs_bulk(node: &str, target: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(target + 4096);
    while out.len() < target {
        action_line(&mut out, "arkime_", &mut rng);
        let _ = writeln!(out, r#"{{"node":"{node}","n":{}}}"#, rng.below(1000));
    }
    out.into_bytes()
}

/// gzip of `data` at capture's level (6).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(data).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}
