#!/usr/bin/env bash
# Runs every check and test: formatting, lints (hadolint on the Dockerfile too), unit + property
# + integration tests (the integration tests start the real esproxy binary against real
# osmem-server upstreams), and --check-config on every sample config. Installs what it needs
# first.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
OSMEM_SERVER_BIN="$(scripts/setup.sh | tail -n 1)"
export OSMEM_SERVER_BIN

# The Dockerfile cannot be built here (no Docker engine): lint it (hadolint from scripts/setup.sh).
HADOLINT="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/hadolint"
[ -x "$HADOLINT" ] || HADOLINT=hadolint
"$HADOLINT" Dockerfile

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo build --locked --bins
for f in conf/*.ini; do
  node=default
  case "$f" in conf/arkime-tests.ini) node=esproxy ;; esac
  ./target/debug/esproxy --check-config -c "$f" -n "$node"
done
# Unit, property and integration tests (doc tests: none). The closing line sums every binary.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --locked --lib --bins --tests 2>&1 | tee "$log"
# The hostile-connection load test (about a minute, ~18,000 connections) runs alone afterwards:
# beside the suite it would disturb the other tests' timing, and theirs its figures.
cargo test --locked --test it siege -- --ignored --nocapture 2>&1 | tee -a "$log"
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$log"
