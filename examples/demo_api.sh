#!/usr/bin/env bash
# The deployment path of pg_oidc_authz, end to end on loopback:
#   OpenID Provider (oidc-provider, tests/provider) -> tokens -> API backend (examples/api)
#   -> pgbouncer (transaction mode) -> Postgres, where row-level security decides what each
#   caller sees. Without pgbouncer installed, the backend connects to Postgres directly.
# Run by examples/demo.sh after its SQL tour (make demo installs everything first). Starts the
# provider, pgbouncer and the backend on free 127.0.0.1 ports and stops them when it ends;
# leaves the database oidc_demo_api for exploration.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"
DB=oidc_demo_api
PY=$ROOT/.venv/bin/python

say() { printf '\n==> %s\n' "$*"; }
psql() { PGOPTIONS='-c client_min_messages=warning' "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
token() { "$PY" "$ROOT/tests/provider/oidc_client.py" "$@" --issuer "$ISSUER"; }

# Waits (at most 20 s) until url answers 200, or until the process pid has exited.
wait_ready() {
    local url=$1 pid=$2 log=$3
    if ! "$PY" - "$url" "$pid" <<'PY'; then
import os, sys, time, urllib.request
url, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.05)
sys.exit(1)
PY
        echo "demo: $url did not answer; last lines of $log:" >&2
        tail -n 20 "$log" >&2
        return 1
    fi
}

# `http WHO METHOD PATH [TOKEN [JSON]]`: one request to the backend, with WHO's token if given.
http() {
    "$PY" - "$API" "$@" <<'PY'
import json, sys, urllib.error, urllib.request
base, who, method, path = sys.argv[1:5]
token = sys.argv[5] if len(sys.argv) > 5 else ""
body = sys.argv[6].encode() if len(sys.argv) > 6 else None
req = urllib.request.Request(base + path, data=body, method=method)
if token:
    req.add_header("Authorization", f"Bearer {token}")
try:
    with urllib.request.urlopen(req, timeout=10) as resp:
        status, answer = resp.status, json.loads(resp.read())
except urllib.error.HTTPError as err:
    status, answer = err.code, json.loads(err.read())
shown = f"Authorization: Bearer <{who}>" if token else "(no Authorization header)"
print(f"  {method} {path}  {shown}" + (f"  {body.decode()}" if body else ""))
print(f"  -> {status} {json.dumps(answer)}")
PY
}

[[ -x $PY ]] || { echo "demo: run 'make setup' first" >&2; exit 1; }
[[ -d $ROOT/tests/provider/node_modules/oidc-provider ]] || { echo "demo: run 'make setup' first (npm ci)" >&2; exit 1; }
cluster_running || cluster_start

WORK=$(mktemp -d)
PGB_DIR=
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n $PGB_DIR ]]; then
        rm -rf "$PGB_DIR"
        psql -d postgres -c "alter role api_authenticator password null" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # through the EXIT trap, so nothing started here outlives the demo

# pgbouncer in transaction mode on a free port, two server connections for every client; runs
# as postgres (it refuses root) from a private directory. Sets DATABASE_URL and PGPASSWORD.
start_pgbouncer() {
    local port password
    port=$(free_port)
    password=$("$PY" -c 'import secrets; print(secrets.token_urlsafe(24))')
    PGB_DIR=$(mktemp -d -p "$PGOIDC_DIR" pgbouncer-demo.XXXXXX)
    # The pooler logs in over TCP, where the cluster asks for a SCRAM password.
    psql -d postgres -c "alter role api_authenticator password '$password'"
    printf '"api_authenticator" "%s"\n' "$password" >"$PGB_DIR/userlist.txt"
    cat >"$PGB_DIR/pgbouncer.ini" <<INI
[databases]
$DB = host=127.0.0.1 port=$PGPORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $PGB_DIR/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 20
logfile = $PGB_DIR/pgbouncer.log
pidfile = $PGB_DIR/pgbouncer.pid
INI
    chmod 0600 "$PGB_DIR"/*
    chown -R postgres:postgres "$PGB_DIR"
    (cd / && exec setpriv --reuid=postgres --regid=postgres --clear-groups -- pgbouncer -q "$PGB_DIR/pgbouncer.ini") &
    pids+=($!)
    export PGPASSWORD=$password
    DATABASE_URL="host=127.0.0.1 port=$port dbname=$DB user=api_authenticator"
    local deadline=$((SECONDS + 15))
    until "$PG_BINDIR/psql" -X -q -d "$DATABASE_URL" -c 'select 1' >/dev/null 2>&1; do
        if ((SECONDS >= deadline)) || ! kill -0 "${pids[-1]}" 2>/dev/null; then
            echo "demo: pgbouncer did not start; its log:" >&2
            tail -n 20 "$PGB_DIR/pgbouncer.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
    echo "  pgbouncer $(pgbouncer --version | head -n 1 | awk '{ print $2 }') on 127.0.0.1:$port, pool_mode = transaction, 2 server connections"
}

PROVIDER_PORT=$(free_port)
ISSUER=http://127.0.0.1:$PROVIDER_PORT
say "Starting a real OpenID Provider (npm oidc-provider, tests/provider/server.mjs) at $ISSUER"
node "$ROOT/tests/provider/server.mjs" genkeys "$WORK/keys.json" --tag demo
node "$ROOT/tests/provider/server.mjs" serve --port "$PROVIDER_PORT" --keys "$WORK/keys.json" \
    >"$WORK/provider.log" 2>&1 &
pids+=($!)
wait_ready "$ISSUER/.well-known/openid-configuration" "${pids[-1]}" "$WORK/provider.log"
echo "  its signing keys: rs256-demo (RS256) and es256-demo (ES256), published at $ISSUER/jwks"

say "Creating database $DB with the example API's schema (examples/api/schema.sql) and four documents"
psql -d postgres -c "drop database if exists $DB with (force)" -c "create database $DB"
psql -d "$DB" -f "$ROOT/examples/api/schema.sql"
psql -d "$DB" -c "insert into documents (owner, title) values
    ('alice', 'Alice''s roadmap'), ('alice', 'Alice''s notes'), ('bob', 'Bob''s budget'), ('carol', 'Carol''s draft')"

say "Loading the provider's keys into oidc.issuers (examples/load_issuer.py: discovery, then jwks_uri)"
"$PY" "$ROOT/examples/load_issuer.py" --issuer "$ISSUER" --audience api://documents \
    --required-typ at+jwt --roles-claim authz.roles --dsn "dbname=$DB"
psql -d "$DB" -c "select issuer, audiences, required_typ, roles_claim,
    (select string_agg(k ->> 'kid', ', ') from jsonb_array_elements(jwks -> 'keys') k) as kids from oidc.issuers"

if command -v pgbouncer >/dev/null; then
    say "Starting pgbouncer between the API backend and Postgres"
    start_pgbouncer
    via="through pgbouncer: callers share its two server connections, one transaction at a time"
else
    DATABASE_URL="host=$PGHOST port=$PGPORT dbname=$DB user=api_authenticator"
    via="directly to Postgres (pgbouncer is not installed; make setup installs it)"
fi
API_PORT=$(free_port)
API=http://127.0.0.1:$API_PORT
say "Starting the API backend (examples/api/server.py) at $API, connecting $via"
DATABASE_URL=$DATABASE_URL API_ROLE=api_user PYTHONUNBUFFERED=1 "$PY" "$ROOT/examples/api/server.py" \
    --port "$API_PORT" >"$WORK/api.log" 2>&1 &
pids+=($!)
wait_ready "$API/me" "${pids[-1]}" "$WORK/api.log"

say "Getting tokens from the provider: alice and bob log in (authorization code flow through its dev login page), the service 'reports' uses client credentials"
alice=$(token login --user alice)
bob=$(token login --user bob)
reports=$(token client-credentials --client reports)
"$PY" - "$alice" <<'PY'
import base64, json, sys
head, body, _ = sys.argv[1].split(".")
decode = lambda s: json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
print("  alice's access token: header", json.dumps(decode(head)))
claims = decode(body)
print("  claims:", json.dumps({k: claims[k] for k in ("iss", "sub", "aud", "scope", "authz") if k in claims}))
PY

say "Two users, the same endpoint, different rows (the backend runs set_config('oidc.token', \$1, true) and set local role api_user per request)"
http "alice's token" GET /documents "$alice"
http "bob's token" GET /documents "$bob"
say "The service 'reports' has the role auditor in its token (claim authz.roles): the policy lets it read every row"
http "reports' token" GET /documents "$reports"
http "reports' token" GET /me "$reports"
say "No token: anonymous, no rows"
http anonymous GET /documents
say "Writing needs the scope documents:write (bob's token has only documents:read), then bob with it"
http "bob's token" POST /documents "$bob" '{"title": "Bob'"'"'s plan"}'
bob_writer=$(token login --user bob --scope "openid documents:read documents:write")
http "bob's token with documents:write" POST /documents "$bob_writer" '{"title": "Bob'"'"'s plan"}'
http "bob's token" GET /documents "$bob"
say "A forged token and an ID token (not an access token: typ is not at+jwt) are refused: 401 with the database's reason"
http "alice's claims with bob's signature" GET /documents "${alice%.*}.${bob##*.}"
http "alice's ID token" GET /documents "$(token login --user alice --id-token)"

say "Done: stopping what this demo started (the API backend, pgbouncer, the provider). The database $DB stays; explore with: PG=$PG scripts/cluster.sh psql -d $DB"
