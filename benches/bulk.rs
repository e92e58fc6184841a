//! Throughput of the streaming bulk validator (issue #7), in bytes of NDJSON validated per
//! second: capture-like ~1 MB bulks (plain and gzip, strict and lax; `capture_1MB` with short
//! sessions, ~225k JSON tokens per MB, `capture_dense_1MB` with long ones and `packetLen`,
//! ~290k tokens per MB like real capture traffic) and the scanner's worst
//! cases (long escaped strings, deep nesting, many tiny documents), each fed in 64 KiB chunks
//! as Pingora hands them to `request_body_filter`. `inflate_zlib_ng` is raw zlib-ng inflate of
//! the same gzip bytes (issue #16's baseline), `inflate_libdeflate` raw libdeflate inflate of the
//! whole body, which `gzip_strict` (a gzip bulk with a Content-Length, as the proxy plans it)
//! uses; `gzip_strict_streamed` is the streaming zlib-ng path of a chunked one.
//!
//! `stats_doc` times the check of a small stats body (what every sensor sends every 2 s) against
//! the serde_json tree it replaced.
//!
//! `cargo bench --bench bulk` (criterion prints "thrpt" in GiB/s; throughput is counted in
//! inflated bytes for the gzip cases, so they compare directly with `inflate`).

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use esproxy::allowlist::{check_body, JsonRule};
use esproxy::body_plan;
use esproxy::bulk::{BodyEncoding, BulkValidator};
use esproxy::framing::Encoding;
use esproxy::json;
use esproxy::policy::Policy;
use flate2::{Decompress, FlushDecompress, Status};
use std::time::Duration;

#[path = "support/bulkgen.rs"]
mod bulkgen;

const NODE: &str = "toronto01";
/// Pingora's H1 body read size (`v1/body.rs BODY_BUFFER_SIZE`).
const CHUNK: usize = 64 * 1024;
const BULK: usize = 1024 * 1024;

/// Feeds `body` in `CHUNK`s like the proxy does; panics if the validator refuses it (a bench
/// of a refusal would measure nothing).
fn validate(policy: &Policy, enc: BodyEncoding, body: &Bytes) -> usize {
    feed_chunks(BulkValidator::new(policy, NODE, enc), body)
}

/// [`validate`] with a given validator (store and forward, for instance).
fn feed_chunks(mut v: BulkValidator, body: &Bytes) -> usize {
    let mut out = 0;
    let mut at = 0;
    while at < body.len() {
        let end = (at + CHUNK).min(body.len());
        let eos = end == body.len();
        match v.feed(body.slice(at..end), eos) {
            Ok(b) => out += b.len(),
            Err(e) => panic!("bench body refused: {e:?}"),
        }
        at = end;
    }
    out
}

/// Inflates all of `gz` with zlib-ng into a reused buffer, as a lower bound for gzip bodies.
fn inflate(gz: &[u8], buf: &mut Vec<u8>) -> usize {
    let mut z = Decompress::new_gzip(15);
    let mut total = 0;
    let mut input = gz;
    loop {
        buf.clear();
        let before_in = z.total_in();
        let status = z
            .decompress_vec(input, buf, FlushDecompress::None)
            .expect("valid gzip");
        input = &input[(z.total_in() - before_in) as usize..];
        total += buf.len();
        if status == Status::StreamEnd {
            return total;
        }
    }
}

fn lax() -> Policy {
    Policy {
        strict: false,
        ..Policy::default()
    }
}

fn bench_capture(c: &mut Criterion) {
    let typical = bulkgen::capture_bulk_shaped(NODE, BULK, 1, bulkgen::TYPICAL);
    bench_capture_shape(c, "capture_1MB", typical);
    let dense = bulkgen::capture_bulk_shaped(NODE, BULK, 1, bulkgen::DENSE);
    bench_capture_shape(c, "capture_dense_1MB", dense);
}

/// One group of capture-like bulks: `plain` strict and lax, its gzip strict (streamed and
/// stored), and raw inflate of the same gzip bytes.
fn bench_capture_shape(c: &mut Criterion, group: &str, plain: Vec<u8>) {
    let strict = Policy::default();
    let lax = lax();
    let plain = Bytes::from(plain);
    let gz = Bytes::from(bulkgen::gzip(&plain));
    eprintln!(
        "{group}: {} bytes plain, {} bytes gzip ({} docs)",
        plain.len(),
        gz.len(),
        plain.iter().filter(|&&b| b == b'\n').count() / 2
    );
    // Sanity: what we bench is accepted and passes through whole (stored: as received).
    assert_eq!(
        validate(&strict, BodyEncoding::Identity, &plain),
        plain.len()
    );
    assert_eq!(validate(&strict, BodyEncoding::Gzip, &gz), plain.len());
    let (v, _) = body_plan::bulk(&strict, NODE, Encoding::Gzip, Some(gz.len() as u64));
    assert!(v.holds_whole(), "a capture gzip bulk is held whole");
    assert_eq!(feed_chunks(v, &gz), plain.len());
    // Store and forward is lax mode's (strict sends session `index` lines as `create`, which
    // compressed bytes cannot carry).
    let stored = BulkValidator::new(&lax, NODE, BodyEncoding::Gzip).forward_original();
    assert_eq!(feed_chunks(stored, &gz), gz.len());

    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("plain_strict", |b| {
        b.iter(|| validate(&strict, BodyEncoding::Identity, black_box(&plain)))
    });
    g.bench_function("plain_lax", |b| {
        b.iter(|| validate(&lax, BodyEncoding::Identity, black_box(&plain)))
    });
    // What the proxy does for a capture gzip bulk with a Content-Length (held whole and
    // inflated by libdeflate when the budget has room, which it always has here), and for one
    // without (chunked: streamed through zlib-ng).
    let with_length = Some(gz.len() as u64);
    g.bench_function("gzip_strict", |b| {
        b.iter(|| {
            let (v, _) = body_plan::bulk(&strict, NODE, Encoding::Gzip, with_length);
            feed_chunks(v, black_box(&gz))
        })
    });
    g.bench_function("gzip_strict_streamed", |b| {
        b.iter(|| validate(&strict, BodyEncoding::Gzip, black_box(&gz)))
    });
    // What the proxy does in lax mode for a gzip bulk with a Content-Length: check, then
    // release the received bytes whole.
    g.bench_function("gzip_lax_stored", |b| {
        b.iter(|| {
            let (v, _) = body_plan::bulk(&lax, NODE, Encoding::Gzip, with_length);
            feed_chunks(v, black_box(&gz))
        })
    });
    let mut buf = Vec::with_capacity(CHUNK * 4);
    g.bench_function("inflate_zlib_ng", |b| {
        b.iter(|| inflate(black_box(&gz), &mut buf))
    });
    // libdeflate on the whole body, into a buffer of the inflated size: what `gzip_strict`
    // inflates with.
    let mut d = libdeflater::Decompressor::new();
    let mut whole = vec![0u8; plain.len()];
    assert_eq!(d.gzip_decompress(&gz, &mut whole).ok(), Some(plain.len()));
    g.bench_function("inflate_libdeflate", |b| {
        b.iter(|| d.gzip_decompress(black_box(&gz), &mut whole).ok())
    });
    g.bench_function("memchr_newlines", |b| {
        b.iter(|| memchr::memchr_iter(b'\n', black_box(&plain)).count())
    });
    g.finish();
}

fn bench_worst(c: &mut Criterion) {
    let strict = Policy::default();
    let cases = [
        (
            "escaped_strings",
            bulkgen::escaped_strings_bulk(NODE, BULK, 2),
        ),
        (
            "deep_nesting_60",
            bulkgen::deep_nesting_bulk(NODE, BULK, 60, 3),
        ),
        ("small_docs", bulkgen::small_docs_bulk(NODE, BULK, 4)),
    ];
    let mut g = c.benchmark_group("worst_1MB");
    for (name, body) in cases {
        let body = Bytes::from(body);
        assert_eq!(
            validate(&strict, BodyEncoding::Identity, &body),
            body.len(),
            "{name}"
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::new("plain_strict", name), &body, |b, body| {
            b.iter(|| validate(&strict, BodyEncoding::Identity, black_box(body)))
        });
    }
    g.finish();
}

/// The small JSON bodies every sensor sends every few seconds (a capture stats document): the
/// whole `check_body` as the proxy runs it, against building the serde_json tree it used before.
fn bench_small(c: &mut Criterion) {
    let strict = Policy::default();
    let stats = br#"{"ver":"6.7.1-GIT","nodeName":"toronto01","hostname":"toronto01.example","interval":2,"currentTime":1795348828,"usedSpaceM":0,"freeSpaceM":83950,"freeSpaceP":31.03,"monitoring":0,"memory":818933760,"memoryP":3.24,"cpu":5593,"diskQueue":0,"esQueue":0,"packetQueue":0,"fragsQueue":0,"frags":0,"needSave":0,"closeQueue":0,"totalPackets":123456789,"totalK":987654,"totalSessions":424242,"totalDropped":0,"tcpSessions":1200,"udpSessions":300,"deltaPackets":12345,"deltaBytes":9876543,"deltaSessions":420,"deltaDropped":0,"esHealthMS":3,"deltaMS":2000}"#;
    let rule = JsonRule::NodeStatsDoc;
    assert!(check_body(&strict, NODE, &rule, stats).is_ok());
    let mut g = c.benchmark_group("stats_doc");
    g.throughput(Throughput::Bytes(stats.len() as u64));
    g.bench_function("check_body", |b| {
        b.iter(|| check_body(&strict, NODE, &rule, black_box(stats)).is_ok())
    });
    g.bench_function("parse_strict_value", |b| {
        b.iter(|| json::parse_strict(black_box(stats), 64).is_ok())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_capture, bench_worst, bench_small
}
criterion_main!(benches);
