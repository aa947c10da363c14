#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster: initdb into a
# temporary directory, listen on 127.0.0.1 only, run the command with
# DRYCC_TEST_DATABASE_URL set (tests create a database each under it), stop
# and remove the cluster on exit.
#
#   bash scripts/with-postgres.sh cargo test -p drycc-store
#
# Needs the PostgreSQL server binaries (Debian: `apt-get install -y postgresql`).
# Run from anywhere inside the workspace. As root, the server runs as the
# `postgres` user (initdb refuses root).
#
#   PGPORT   port to listen on (default: a free one)
#   PGBIN    directory of initdb/pg_ctl (default: newest /usr/lib/postgresql/*/bin)
set -euo pipefail

# A free port unless one is asked for: another cluster (a parallel run)
# may hold any fixed one.
port="${PGPORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
bin="${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}"
if [[ -z "$bin" || ! -x "$bin/initdb" ]]; then
    echo "with-postgres: no PostgreSQL server binaries found (apt-get install -y postgresql)" >&2
    exit 1
fi

data="$(mktemp -d "${TMPDIR:-/tmp}/drycc-store-pg.XXXXXX")"
as_db_user() {
    if [[ "$(id -u)" == 0 ]]; then
        chown -R postgres:postgres "$data"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
cleanup() {
    as_db_user "$bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
    rm -rf "$data"
}
trap cleanup EXIT

as_db_user "$bin/initdb" -D "$data" -U postgres --auth=trust >"$data.initdb.log" 2>&1 \
    || { cat "$data.initdb.log" >&2; exit 1; }
rm -f "$data.initdb.log"
as_db_user "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data" start

export DRYCC_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
"$@"
