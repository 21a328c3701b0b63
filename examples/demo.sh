#!/usr/bin/env bash
# A short tour of pg_oidc_authz on the throwaway cluster (make demo installs everything first):
# SQL with PyJWT tokens, then examples/demo_api.sh (a real OpenID Provider, an API backend and
# pgbouncer, over HTTP). Leaves the cluster and the databases oidc_demo and oidc_demo_api.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"
DB=oidc_demo

say() { printf '\n==> %s\n' "$*"; }
mint() { "$ROOT/.venv/bin/python" "$ROOT/tests/fixtures/mint.py" "$@"; }
psql() { PGOPTIONS='-c client_min_messages=warning' "$PG_BINDIR/psql" -X "$@"; }

[[ -x $ROOT/.venv/bin/python ]] || { echo "demo: run 'make setup' first" >&2; exit 1; }
cluster_running || cluster_start

say "Minting tokens with PyJWT (tests/fixtures/mint.py): alice, bob, one signed by an attacker's key, one expired"
alice=$(mint token --sub alice --scope "read write")
bob=$(mint token --sub bob --scope read)
forged=$(mint token --sub alice --scope "read write" --forged)
expired=$(mint token --sub alice --expired)
jwks=$(mint jwks --kids rs256)
echo "alice's token: ${alice:0:40}... (RS256, kid rs256, expires in one hour)"

say "Creating a fresh database $DB (and role demo_app)"
psql -q -d postgres -c "drop database if exists $DB with (force)" -c "drop role if exists demo_app"
psql -q -d postgres -c "create database $DB"

say "Running examples/demo.sql as the superuser, then as demo_app"
psql -d "$DB" -q -a -v jwks="$jwks" -v alice="$alice" -v bob="$bob" -v forged="$forged" -v expired="$expired" \
    -f "$ROOT/examples/demo.sql"

say "SQL tour done. Explore with: PG=$PG scripts/cluster.sh psql -d $DB    Stop with: make cluster-stop PG=$PG"

"$ROOT/examples/demo_api.sh"
