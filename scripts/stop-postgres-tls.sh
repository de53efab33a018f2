#!/usr/bin/env bash
# Stops the server scripts/start-postgres-tls.sh started and removes its files.
set -euo pipefail
PORT="${PGTLSPORT:-55442}"
ROOT="${TMPDIR:-/tmp}/memos-pg-tls-$PORT"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)
if [ -n "$bin" ] && [ -f "$ROOT/data/postmaster.pid" ]; then
    "${RUNAS[@]}" "$bin/pg_ctl" -D "$ROOT/data" -m fast -w stop >/dev/null || true
fi
rm -rf "$ROOT"
