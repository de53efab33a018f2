#!/usr/bin/env bash
# Starts a throwaway PostgreSQL that speaks TLS, for the test of memos' TLS connection
# (sslmode / sslrootcert): Debian's `postgresql` server (installed with apt-get when missing
# and run as root; the PyPI build the other tests use has no TLS), a CA and a server
# certificate for `localhost` made with openssl, and a second CA that signed nothing.
# Prints the directory holding `port`, `ca.crt` and `other-ca.crt` as its last line.
#   MEMOS_PG_TLS_DIR="$(scripts/start-postgres-tls.sh)"; ...; scripts/stop-postgres-tls.sh
set -euo pipefail
PORT="${PGTLSPORT:-55442}"
ROOT="${TMPDIR:-/tmp}/memos-pg-tls-$PORT"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
if [ -z "$bin" ] || ! command -v openssl >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq postgresql openssl >/dev/null 2>&1 || {
            apt-get update -qq >&2 && apt-get install -y -qq postgresql openssl >/dev/null
        }
        bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)"
    else
        echo "PostgreSQL (Debian's postgresql package) and openssl are needed for the TLS test" >&2
        exit 1
    fi
fi
RUNAS=()
if [ "$(id -u)" = 0 ]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    RUNAS=(runuser -u postgres --)
fi
if [ -f "$ROOT/data/postmaster.pid" ]; then
    "${RUNAS[@]}" "$bin/pg_ctl" -D "$ROOT/data" -m fast -w stop >&2 || true
fi
rm -rf "$ROOT"
mkdir -p "$ROOT/certs"
cd "$ROOT/certs"
quiet() { "$@" >/dev/null 2>&1; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=memos test CA" \
    -keyout ca.key -out ca.crt
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=someone else's CA" \
    -keyout other-ca.key -out other-ca.crt
quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr
printf 'subjectAltName=DNS:localhost\n' >san.ext
quiet openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
    -extfile san.ext -out server.crt
chmod 600 server.key
cp ca.crt other-ca.crt "$ROOT/"
echo "$PORT" >"$ROOT/port"
chmod 755 "$ROOT"
[ "${#RUNAS[@]}" -gt 0 ] && chown -R postgres "$ROOT"
"${RUNAS[@]}" "$bin/initdb" -D "$ROOT/data" -U postgres -A trust >"$ROOT/initdb.log"
"${RUNAS[@]}" "$bin/pg_ctl" -D "$ROOT/data" -l "$ROOT/server.log" -w -t 60 -o \
    "-c listen_addresses=127.0.0.1 -p $PORT -k $ROOT -c ssl=on -c ssl_cert_file=$ROOT/certs/server.crt -c ssl_key_file=$ROOT/certs/server.key -c fsync=off" \
    start >&2
echo "$ROOT"
