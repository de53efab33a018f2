#!/usr/bin/env bash
# Installs the official MCP TypeScript SDK (@modelcontextprotocol/sdk from npm, every package
# pinned by version and integrity hash in crates/memos/tests/e2e/mcp/package-lock.json) for
# the end-to-end test that drives memos' MCP server with it. Needs Node.js 18+ (Debian's
# `nodejs` and `npm` packages are installed when missing and this runs as root).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/crates/memos/tests/e2e/mcp"
if ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get install -y -qq nodejs npm >/dev/null || {
            apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
        }
    else
        echo "Node.js and npm are needed for the MCP test: install them (apt-get install nodejs npm)" >&2
        exit 1
    fi
fi
want="$(node -p "require('$dir/package-lock.json').packages['node_modules/@modelcontextprotocol/sdk'].version")"
have="$(node -p "try { require('$dir/node_modules/@modelcontextprotocol/sdk/package.json').version } catch { '' }")"
if [ "$have" = "$want" ]; then
    exit 0
fi
(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
echo "@modelcontextprotocol/sdk $want ready in $dir/node_modules" >&2
