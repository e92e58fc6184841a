//! `validate_bulk [--kind capture|dense] [--passes N] [--gzip [--whole|--stored]]`: feeds one generated
//! 1 MiB capture-like bulk through the strict validator `N` times, in 64 KiB chunks as the
//! proxy does, and prints the bytes validated. A fixed, short workload for profilers: run it
//! under `valgrind --tool=callgrind` (instruction counts do not move with the load of a shared
//! machine, unlike wall-clock benches) or `perf record`.

use bytes::Bytes;
use clap::Parser;
use esproxy::body_plan;
use esproxy::bulk::{BodyEncoding, BulkValidator};
use esproxy::framing::Encoding;
use esproxy::policy::Policy;
use std::process::ExitCode;

#[path = "../benches/support/bulkgen.rs"]
mod bulkgen;

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "validate_bulk", about = "Validate a generated bulk N times")]
struct Cli {
    /// capture (short sessions, the benches' `capture_1MB`) or dense (`capture_dense_1MB`).
    #[arg(long, default_value = "capture")]
    kind: String,
    /// How many times to validate the body.
    #[arg(long, default_value_t = 20)]
    passes: usize,
    /// Send the body gzip-compressed (level 6), inflated and checked as it streams.
    #[arg(long)]
    gzip: bool,
    /// With --gzip: store and forward (the proxy's lax-mode path for a gzip bulk with a
    /// Content-Length; strict mode streams gzip bulks inflated).
    #[arg(long)]
    stored: bool,
    /// With --gzip: as the proxy plans a strict gzip bulk with a Content-Length (held whole,
    /// inflated at once by libdeflate), the benches' `gzip_strict`.
    #[arg(long)]
    whole: bool,
}

const NODE: &str = "toronto01";
const CHUNK: usize = 64 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let shape = match cli.kind.as_str() {
        "capture" => bulkgen::TYPICAL,
        "dense" => bulkgen::DENSE,
        other => {
            eprintln!("validate_bulk: --kind {other}: want capture or dense");
            return ExitCode::from(2);
        }
    };
    let plain = bulkgen::capture_bulk_shaped(NODE, 1 << 20, 1, shape);
    let (body, enc) = if cli.gzip {
        (Bytes::from(bulkgen::gzip(&plain)), BodyEncoding::Gzip)
    } else {
        (Bytes::from(plain.clone()), BodyEncoding::Identity)
    };
    // Store and forward is lax mode's (strict rewrites session `index` lines to `create`).
    let policy = Policy {
        strict: !cli.stored,
        ..Policy::default()
    };
    let mut total = 0usize;
    for _ in 0..cli.passes {
        let mut v = if cli.whole {
            let length = Some(body.len() as u64);
            body_plan::bulk(&policy, NODE, Encoding::Gzip, length).0
        } else {
            BulkValidator::new(&policy, NODE, enc)
        };
        if cli.stored {
            v = v.forward_original();
        }
        let mut at = 0;
        while at < body.len() {
            let end = (at + CHUNK).min(body.len());
            match v.feed(body.slice(at..end), end == body.len()) {
                Ok(out) => total += out.len(),
                Err(e) => {
                    eprintln!("validate_bulk: the generated body was refused: {e:?}");
                    return ExitCode::from(1);
                }
            }
            at = end;
        }
    }
    println!(
        "{} passes of {} bytes ({} plain): {total} bytes released",
        cli.passes,
        body.len(),
        plain.len()
    );
    ExitCode::SUCCESS
}
