//! `gen_bulk --node NODE --bytes N [--seed S] [--kind capture|dense|escaped|deep|small] [--gzip] --out FILE`:
//! writes one capture-like `_bulk` body (the same generator as `benches/bulk.rs`) for the load
//! tests in `loadtest/`, so wrk, k6 and the benches all send the same shape of bytes.

use clap::Parser;
use std::process::ExitCode;

#[path = "../benches/support/bulkgen.rs"]
mod bulkgen;

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "gen_bulk", about = "Write a capture-like _bulk body")]
struct Cli {
    /// Node name written in every session document.
    #[arg(long)]
    node: String,
    /// Approximate plain size in bytes (the body ends at the first pair past it).
    #[arg(long)]
    bytes: usize,
    /// PRNG seed (same seed, same bytes).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// capture (default), dense (long sessions with packetLen), escaped, deep or small.
    #[arg(long, default_value = "capture")]
    kind: String,
    /// Write the gzip (level 6) of the body instead.
    #[arg(long)]
    gzip: bool,
    /// Output file.
    #[arg(long)]
    out: std::path::PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let body = match cli.kind.as_str() {
        "capture" => bulkgen::capture_bulk(&cli.node, cli.bytes, cli.seed),
        "dense" => bulkgen::capture_bulk_shaped(&cli.node, cli.bytes, cli.seed, bulkgen::DENSE),
        "escaped" => bulkgen::escaped_strings_bulk(&cli.node, cli.bytes, cli.seed),
        "deep" => bulkgen::deep_nesting_bulk(&cli.node, cli.bytes, 60, cli.seed),
        "small" => bulkgen::small_docs_bulk(&cli.node, cli.bytes, cli.seed),
        other => {
            eprintln!("gen_bulk: --kind {other}: want capture, dense, escaped, deep or small");
            return ExitCode::from(2);
        }
    };
    let data = if cli.gzip { bulkgen::gzip(&body) } else { body };
    if let Err(e) = std::fs::write(&cli.out, &data) {
        eprintln!("gen_bulk: --out {}: {e}", cli.out.display());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
