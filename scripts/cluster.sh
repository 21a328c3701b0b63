#!/usr/bin/env bash
# A throwaway Postgres cluster of the major PG (scripts/pg.sh: 15 by default, or 18) for the
# regression and end-to-end tests.
#
#   [PG=18] scripts/cluster.sh start|stop|status|env|psql [psql args...]
#   scripts/cluster.sh prepare    only create PGOIDC_DIR for postgres (pgtest uses it)
#
# Sourcing this file (`. scripts/cluster.sh`) defines the same functions and exports the
# connection environment without running anything. The system's own clusters are never
# touched: this one lives under /tmp/pg_oidc_authz (PG 15) or /tmp/pg_oidc_authz-pg18
# (PG 18), on its own port, and is driven with pg_ctl directly.

# shellcheck source=scripts/pg.sh
. "$(dirname "${BASH_SOURCE[0]}")/pg.sh" || { return 2 2>/dev/null || exit 2; }
# Overridable, so that several checkouts (or a CI run beside a session) can test at once.
PGOIDC_DIR=${PGOIDC_DIR:-$PG_DEFAULT_DIR}
PGOIDC_PORT=${PGOIDC_PORT:-$PG_DEFAULT_PORT}
PGOIDC_DATA=$PGOIDC_DIR/data
PGOIDC_LOG=$PGOIDC_DIR/postgres.log
export PGOIDC_DIR PGOIDC_PORT PGOIDC_DATA PGOIDC_LOG
export PGHOST=$PGOIDC_DIR PGPORT=$PGOIDC_PORT PGUSER=postgres PGDATABASE=postgres

# Postgres refuses to run as root; cd / so a cwd that postgres cannot enter (a clone under
# /root, say) does not break initdb/pg_ctl, which resolve their own path relative to it.
as_postgres() {
    (cd / && runuser -u postgres -- "$@")
}

cluster_running() {
    [[ -f $PGOIDC_DATA/PG_VERSION ]] && as_postgres "$PG_BINDIR/pg_ctl" status -D "$PGOIDC_DATA" >/dev/null 2>&1
}

cluster_prepare_dir() {
    # chown follows symlinks: refuse one planted in /tmp by someone else.
    if [[ -L $PGOIDC_DIR ]]; then
        echo "cluster: $PGOIDC_DIR is a symlink; refusing to use it" >&2
        return 1
    fi
    mkdir -p "$PGOIDC_DIR"
    chown postgres:postgres "$PGOIDC_DIR"
    # Only postgres (and root) can reach the socket, because local connections are trusted.
    chmod 0700 "$PGOIDC_DIR"
}

cluster_init() {
    if [[ -f $PGOIDC_DATA/PG_VERSION ]]; then
        [[ $(cat "$PGOIDC_DATA/PG_VERSION") == "$PG" ]] && return 0
        echo "cluster: $PGOIDC_DATA holds a PostgreSQL $(cat "$PGOIDC_DATA/PG_VERSION") cluster, not $PG;" \
            "choose another PGOIDC_DIR" >&2
        return 1
    fi
    echo "cluster: initdb $PGOIDC_DATA"
    as_postgres "$PG_BINDIR/initdb" -D "$PGOIDC_DATA" -U postgres -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 --no-sync --no-instructions >/dev/null || return 1
    echo "include_if_exists = 'pg_oidc_authz.conf'" >>"$PGOIDC_DATA/postgresql.conf"
}

cluster_write_conf() {
    # Rewritten on every start so a changed PGOIDC_PORT takes effect.
    cat >"$PGOIDC_DATA/pg_oidc_authz.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGOIDC_PORT
unix_socket_directories = '$PGOIDC_DIR'
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
# Throwaway data: durability only costs time here.
fsync = off
synchronous_commit = off
full_page_writes = off
# The emit_log_hook (tokens redacted from the log) and the background worker (keys from
# discovery) need the library preloaded; the pg_test cluster of cargo pgrx test runs without
# it, and shows what works without preloading.
shared_preload_libraries = 'pg_oidc_authz'
# The worker takes one slot per database with the extension, plus its launcher; parallel
# queries need theirs.
max_worker_processes = 16
# Configuration changes held by prepared transactions (tests/e2e/test_sessions.py).
max_prepared_transactions = 8
# Logical replication between two databases of this cluster (tests/e2e/test_logical.py).
wal_level = logical
CONF
    chown postgres:postgres "$PGOIDC_DATA/pg_oidc_authz.conf"
}

cluster_start() {
    if cluster_running; then
        echo "cluster: already running (port $PGOIDC_PORT, data $PGOIDC_DATA)"
        return 0
    fi
    cluster_prepare_dir && cluster_init && cluster_write_conf || return 1
    echo "cluster: starting on 127.0.0.1:$PGOIDC_PORT and $PGOIDC_DIR (log $PGOIDC_LOG)"
    if ! as_postgres "$PG_BINDIR/pg_ctl" start -D "$PGOIDC_DATA" -l "$PGOIDC_LOG" -w -t 60 -s; then
        echo "cluster: start failed; last log lines:" >&2
        tail -n 20 "$PGOIDC_LOG" >&2 || true
        return 1
    fi
}

cluster_stop() {
    if ! cluster_running; then
        echo "cluster: not running"
        return 0
    fi
    echo "cluster: stopping"
    as_postgres "$PG_BINDIR/pg_ctl" stop -D "$PGOIDC_DATA" -m fast -t 30 -s ||
        as_postgres "$PG_BINDIR/pg_ctl" stop -D "$PGOIDC_DATA" -m immediate -t 30 -s
}

cluster_status() {
    if cluster_running; then
        echo "cluster: running (port $PGOIDC_PORT, data $PGOIDC_DATA, log $PGOIDC_LOG)"
    else
        echo "cluster: not running"
        return 3
    fi
}

# For scripts: start the cluster unless it is running, and stop it when the script exits only
# if this call started it (a cluster someone started by hand stays up).
cluster_use() {
    cluster_running && return 0
    cluster_start || return 1
    trap cluster_stop EXIT
}

cluster_env() {
    printf 'export PGHOST=%q PGPORT=%q PGUSER=%q PGDATABASE=%q\n' "$PGHOST" "$PGPORT" "$PGUSER" "$PGDATABASE"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    set -euo pipefail
    case ${1:-} in
        prepare) cluster_prepare_dir ;;
        start) cluster_start ;;
        stop) cluster_stop ;;
        status) cluster_status ;;
        env) cluster_env ;;
        psql) shift; exec "$PG_BINDIR/psql" "$@" ;;
        *) echo "usage: $0 start|stop|status|env|prepare|psql [args...]" >&2; exit 2 ;;
    esac
fi
