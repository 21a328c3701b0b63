#!/usr/bin/env bash
# SQL regression tests: tests/pg_regress/sql/[0-9]*.sql against the installed extension in the
# throwaway cluster, compared with tests/pg_regress/expected/*.out.
#
#   scripts/regress.sh [TEST...]            e.g. scripts/regress.sh 10_rejections
#   REGRESS_UPDATE=1 scripts/regress.sh     copy results over expected, for review with git diff
#
# pg_regress runs from tests/pg_regress (as `cargo pgrx regress` does), so the tests' relative
# `\i sql/_tokens.psql` is echoed the same way from any clone. With --use-existing, pg_regress
# neither creates nor drops the database: this script recreates it before every run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"
# The major's own pg_regress, from its PGXS (Debian's postgresql-server-dev-15, or the PG 18 tree).
PG_REGRESS=${PG_REGRESS:-$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress}
DB=pg_oidc_authz_regress
DIR=$ROOT/tests/pg_regress
UPDATE=${REGRESS_UPDATE:-0}

cd "$DIR"
if (($# > 0)); then
    tests=("$@")
else
    tests=()
    for f in sql/[0-9]*.sql; do tests+=("$(basename "$f" .sql)"); done
fi
if [[ $UPDATE != 1 ]]; then
    for t in "${tests[@]}"; do
        [[ -f expected/$t.out ]] || {
            echo "regress: no expected/$t.out; run 'make regress-update' and review the result" >&2
            exit 1
        }
    done
fi

cluster_use

echo "regress: recreating database $DB"
psql() { PGOPTIONS='-c client_min_messages=warning' "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
psql -d postgres -c "drop database if exists $DB with (force)"
psql -d postgres -c "create database $DB template template0 encoding 'UTF8' locale 'C'"
# The settings pg_regress itself gives a database it creates, for output that does not
# depend on the machine.
for setting in "lc_messages to 'C'" "lc_monetary to 'C'" "lc_numeric to 'C'" "lc_time to 'C'" \
    "bytea_output to 'hex'" "timezone_abbreviations to 'Default'"; do
    psql -d postgres -c "alter database $DB set $setting"
done

rm -rf results regression.diffs regression.out
if [[ $UPDATE == 1 ]]; then
    # pg_regress gives up at the first test without an expected file.
    mkdir -p expected
    for t in "${tests[@]}"; do [[ -f expected/$t.out ]] || : >"expected/$t.out"; done
fi
echo "regress: pg_regress ${tests[*]}"
status=0
"$PG_REGRESS" --use-existing --bindir="$PG_BINDIR" --host="$PGHOST" --port="$PGPORT" --user=postgres \
    --dbname="$DB" --inputdir=. --outputdir=. "${tests[@]}" || status=$?

if [[ $UPDATE == 1 ]]; then
    for t in "${tests[@]}"; do
        [[ -f results/$t.out ]] || { echo "regress: $t produced no output" >&2; exit 1; }
        if ! cmp -s "results/$t.out" "expected/$t.out"; then
            cp "results/$t.out" "expected/$t.out"
            echo "regress: updated tests/pg_regress/expected/$t.out"
        fi
    done
    echo "regress: review the changes with: git diff tests/pg_regress/expected"
    exit 0
fi

if ((status != 0)); then
    if [[ -s regression.diffs ]]; then
        echo "regress: differences (tests/pg_regress/regression.diffs):" >&2
        cat regression.diffs >&2
    fi
    exit "$status"
fi
