#!/usr/bin/env bash
# Puts the official MemOS Python SDK's client (PyPI package MemoryOS, pinned by version and
# sha256) into ./sdk (or the directory given), for the end-to-end test that drives it
# against the real server. Only its two client files are kept: `memos/api/client.py` and
# `memos/api/product_models.py`, as they are; the package's own `__init__` pulls a heavy
# tree the client does not need. Its Python dependencies, requests and pydantic, are
# installed when missing.
set -euo pipefail
dest="${1:-$(cd "$(dirname "$0")/.." && pwd)/sdk}"
version="2.0.33"
wheel_sha="afba86729b86fca23010c6f1b467ed28c02948268d37373349baa514654a261a"
if [ -f "$dest/memos/api/client.py" ] && [ -f "$dest/memos/api/product_models.py" ]; then
    exit 0
fi
python3 -c "import requests, pydantic" 2>/dev/null || python3 -m pip install --quiet \
    --disable-pip-version-check "requests==2.32.3" "pydantic==2.11.7"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" \
    "MemoryOS==$version" >&2
whl="$(ls "$tmp"/memoryos-"$version"-*.whl)"
got="$(sha256sum "$whl" | cut -d' ' -f1)"
if [ "$got" != "$wheel_sha" ]; then
    echo "fetch-sdk: $whl has sha256 $got, expected $wheel_sha" >&2
    exit 1
fi
mkdir -p "$dest/memos/api"
python3 - "$whl" "$dest" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for member in ("memos/api/client.py", "memos/api/product_models.py"):
        with open(f"{sys.argv[2]}/{member}", "wb") as out:
            out.write(z.read(member))
PY
echo "MemOS SDK $version ready in $dest" >&2
