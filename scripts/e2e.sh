#!/usr/bin/env bash
# End-to-end tests: pytest + psycopg against the installed extension in the throwaway cluster.
#   scripts/e2e.sh [pytest args...]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/cluster.sh
. "$ROOT/scripts/cluster.sh"

[[ -x $ROOT/.venv/bin/pytest ]] || { echo "e2e: $ROOT/.venv is missing; run 'make setup'" >&2; exit 1; }

cluster_use

cd "$ROOT"
# tests/fixtures first: they show the tokens are what the e2e and regression tests assume.
echo "e2e: pytest -q tests/fixtures tests/e2e $*"
.venv/bin/pytest -q tests/fixtures tests/e2e "$@"
