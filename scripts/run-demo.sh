#!/usr/bin/env bash
# Starts esproxy in front of a local osmem-server (an in-memory OpenSearch-compatible server)
# with conf/esproxy.ini, ready for:  curl -u test:test localhost:7200/_cluster/health
# Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
OSMEM="$(scripts/setup.sh | tail -n 1)"
cargo build --locked --release --bin esproxy

"$OSMEM" -addr 127.0.0.1:9200 -no-stdin-watch >/dev/null &
OSMEM_PID=$!
trap 'kill $OSMEM_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs http://127.0.0.1:9200/ >/dev/null && break; sleep 0.1; done
# Capture refuses to start without Arkime's sessions template (_meta.molochDbVersion >= 83).
curl -fs -XPUT -H 'Content-Type: application/json' http://127.0.0.1:9200/_template/arkime_sessions3_template \
  -d '{"index_patterns":["arkime_sessions3-*"],"mappings":{"_meta":{"molochDbVersion":86}}}' >/dev/null

echo "esproxy on :7200 -> osmem-server on 127.0.0.1:9200; try: curl -u test:test localhost:7200/_cluster/health" >&2
./target/release/esproxy -c conf/esproxy.ini -n demo
