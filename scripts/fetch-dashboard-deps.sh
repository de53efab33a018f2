#!/usr/bin/env bash
# Installs what the dashboard's browser test drives: Debian's Chromium (`apt-get install
# chromium`, when missing and this runs as root, with a CJK font) and playwright-core from npm, pinned by
# version and integrity hash in crates/memos/tests/e2e/dashboard/package-lock.json. Playwright
# downloads no browser of its own: the test launches /usr/bin/chromium.
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)/crates/memos/tests/e2e/dashboard"
# A CJK font (WenQuanYi Micro Hei, 1.6 MB) so the screenshots show Chinese as people see
# it rather than empty boxes; the page names it among its fonts.
if [ ! -x /usr/bin/chromium ] || ! fc-list 2>/dev/null | grep -qi 'WenQuanYi'; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null 2>&1 || {
            apt-get update -qq && apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null
        }
    else
        echo "Chromium is needed for the dashboard test: apt-get install chromium" >&2
        exit 1
    fi
fi
if ! command -v npm >/dev/null 2>&1; then
    echo "Node.js and npm are needed for the dashboard test (scripts/fetch-mcp-sdk.sh installs them)" >&2
    exit 1
fi
want="$(node -p "require('$dir/package-lock.json').packages['node_modules/playwright-core'].version")"
have="$(node -p "try { require('$dir/node_modules/playwright-core/package.json').version } catch { '' }")"
if [ "$have" != "$want" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "$(/usr/bin/chromium --version 2>/dev/null) and playwright-core $want ready" >&2
