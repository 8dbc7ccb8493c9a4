#!/usr/bin/env bash
# Install, start and prepare a local PostgreSQL server for the journal tests and the
# node benchmark (issue 5). Idempotent: safe to run again while the server is up.
#
#   export CLEARWAY_TEST_PG_URL="$(bash .ci/postgres.sh)"   # the URL is the only stdout line
#   source .ci/postgres.sh                                  # or: exports CLEARWAY_TEST_PG_URL
#                                                           #     and CLEARWAY_BENCH_PG_URL
# Needs root (CI runs as root): installs the Debian package `postgresql` if missing, creates
# and starts the Debian cluster "main" on loopback, a login role and a database. Logs go to
# stderr. Overrides: CLEARWAY_PG_USER, CLEARWAY_PG_PASSWORD, CLEARWAY_PG_DB (default
# "clearway" each).

_clearway_postgres() (
    set -euo pipefail
    user="${CLEARWAY_PG_USER:-clearway}"
    password="${CLEARWAY_PG_PASSWORD:-clearway}"
    db="${CLEARWAY_PG_DB:-clearway}"
    log() { echo "postgres.sh: $*" >&2; }

    if [ "$(id -u)" != 0 ]; then
        log "must run as root (installs and starts the Debian PostgreSQL server)"
        return 1
    fi
    if ! command -v pg_ctlcluster >/dev/null || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        log "installing the postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq postgresql >&2
    fi
    version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
    if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
        log "creating cluster $version/main"
        pg_createcluster "$version" main >&2
    fi
    port="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $3 }')"
    status="$(pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" { print $4 }')"
    if [ "$status" != online ]; then
        log "starting cluster $version/main on port $port"
        pg_ctlcluster "$version" main start >&2
    fi
    for _ in $(seq 1 60); do
        if pg_isready -q -h 127.0.0.1 -p "$port"; then break; fi
        sleep 0.5
    done
    pg_isready -h 127.0.0.1 -p "$port" >&2

    psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -q -p $port -tA $*"; }
    if [ -z "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname = '$user'\"")" ]; then
        log "creating role $user"
        psql_admin "-c \"CREATE ROLE $user LOGIN PASSWORD '$password'\"" >&2
    fi
    if [ -z "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname = '$db'\"")" ]; then
        log "creating database $db"
        psql_admin "-c \"CREATE DATABASE $db OWNER $user\"" >&2
    fi
    echo "postgresql://$user:$password@127.0.0.1:$port/$db"
)

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # sourced: export the URL for the tests and the benchmark
    if _clearway_pg_url="$(_clearway_postgres)"; then
        export CLEARWAY_TEST_PG_URL="$_clearway_pg_url"
        export CLEARWAY_BENCH_PG_URL="$_clearway_pg_url"
        unset _clearway_pg_url
    else
        unset _clearway_pg_url
        return 1
    fi
else
    _clearway_postgres
fi
