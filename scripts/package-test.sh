#!/usr/bin/env bash
# The Debian package's test (tests/package): control fields and files, and an install into a
# scratch copy of the server that creates the extension and verifies a token, run with a PATH
# that holds no Rust toolchain. Needs the package: `make package` (or PGOIDC_DEB).
#
#   scripts/package-test.sh [PG_CONFIG] [pytest args...]     PG_CONFIG default PostgreSQL 15's
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${1:-/usr/lib/postgresql/15/bin/pg_config}
shift || true
[[ -x $ROOT/.venv/bin/pytest ]] || { echo "package-test: $ROOT/.venv is missing; run 'make setup'" >&2; exit 1; }

cd "$ROOT"
echo "package-test: pytest -q tests/package (PG_CONFIG=$PG_CONFIG) $*"
# Only the system's directories in the PATH: nothing of ~/.cargo or rustup.
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" LANG=C.UTF-8 PG_CONFIG="$PG_CONFIG" \
    ${PGOIDC_DEB:+PGOIDC_DEB="$PGOIDC_DEB"} ${PGOIDC_PACKAGE_PORT:+PGOIDC_PACKAGE_PORT="$PGOIDC_PACKAGE_PORT"} \
    ${PGOIDC_PACKAGE_INSTALLED:+PGOIDC_PACKAGE_INSTALLED="$PGOIDC_PACKAGE_INSTALLED"} \
    "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider tests/package "$@"
