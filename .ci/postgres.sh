#!/usr/bin/env bash
# A throw-away PostgreSQL server on loopback for the tests of distributed search (issue 10).
#
#   eval "$(bash .ci/postgres.sh start)"   # installs PostgreSQL if missing, starts a server,
#                                          # prints `export ARCHDSL_TEST_POSTGRES_URL=...; export ARCHDSL_PG_DIR=...`
#   bash .ci/postgres.sh stop              # stops it and deletes its data directory
#
# The server runs as the `postgres` system user (PostgreSQL refuses to run as root), listens on
# 127.0.0.1 only, trusts local connections and keeps its data in a fresh temporary directory.
set -euo pipefail

find_bin() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
    done
    return 1
}

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        su postgres -s /bin/bash -c "$*"
    else
        bash -c "$*"
    fi
}

start() {
    local bin
    if ! bin=$(find_bin); then
        echo "postgres.sh: PostgreSQL not found; installing it with apt-get" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        bin=$(find_bin)
    fi
    local dir port
    dir=$(mktemp -d /tmp/archdsl-pg.XXXXXX)
    port=${ARCHDSL_PG_PORT:-55432}
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_postgres "'$bin/initdb' -D '$dir/data' -A trust -U postgres >'$dir/initdb.log' 2>&1"
    as_postgres "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 \
        -o \"-c listen_addresses=127.0.0.1 -p $port -k '$dir' -c max_connections=200 -c fsync=off\" start >&2"
    as_postgres "'$bin/createdb' -h 127.0.0.1 -p $port -U postgres archdsl_test"
    echo "export ARCHDSL_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/archdsl_test"
    echo "export ARCHDSL_PG_DIR=$dir ARCHDSL_PG_BIN=$bin"
}

stop() {
    local dir=${ARCHDSL_PG_DIR:-} bin=${ARCHDSL_PG_BIN:-}
    [ -n "$dir" ] && [ -d "$dir" ] || return 0
    [ -n "$bin" ] || bin=$(find_bin)
    as_postgres "'$bin/pg_ctl' -D '$dir/data' -m fast -w stop >/dev/null 2>&1" || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
