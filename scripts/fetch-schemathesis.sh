#!/usr/bin/env bash
# Installs schemathesis (PyPI, every package pinned by version and sha256 in
# scripts/schemathesis-requirements.txt) into ./.venv-schemathesis (or the directory given),
# for the contract test that fuzzes the live server from its own OpenAPI contract.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/.venv-schemathesis}"
want="$(grep -o '^schemathesis==[^ ]*' "$root/scripts/schemathesis-requirements.txt")"
if [ -x "$dest/bin/st" ] && "$dest/bin/pip" freeze 2>/dev/null | grep -qx "$want"; then
    exit 0
fi
python3 -m venv "$dest"
"$dest/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r "$root/scripts/schemathesis-requirements.txt"
echo "$want ready in $dest" >&2
