#!/usr/bin/env bash
# The package installed for real: dpkg -i (apt resolving its Depends), the package test
# (tests/package) against the system's server, then dpkg -r and a check that its files are
# gone. It writes the system's PostgreSQL directories and dpkg's database, so it is for a
# disposable machine only (.ci/run runs it after `make test`, on CI's fresh clone); on a
# shared development machine use `make package-test`, which unpacks into a scratch root.
# Afterwards the extension is not installed: run `make install` to put it back.
#
#   scripts/package-install-test.sh [PG_CONFIG]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${1:-/usr/lib/postgresql/15/bin/pg_config}
[[ $EUID -eq 0 ]] || { echo "package-install-test: must run as root (dpkg -i)" >&2; exit 1; }
MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
NAME=postgresql-$MAJOR-pg-oidc-authz
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)
DEB=$ROOT/target/package/${NAME}_${VERSION}_$(dpkg --print-architecture).deb
[[ -f $DEB ]] || { echo "package-install-test: no $DEB; run make package" >&2; exit 1; }

# A running server that preloads the library must not see it replaced.
"$ROOT/scripts/cluster.sh" stop
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 "$DEB"
trap 'DEBIAN_FRONTEND=noninteractive dpkg -r "$NAME" >/dev/null || true' EXIT
PGOIDC_PACKAGE_INSTALLED=1 PGOIDC_DEB=$DEB "$ROOT/scripts/package-test.sh" "$PG_CONFIG"
DEBIAN_FRONTEND=noninteractive dpkg -r "$NAME"
trap - EXIT
left=$(dpkg-deb --contents "$DEB" | awk '$1 ~ /^-/ { sub(/^\./, "", $NF); print $NF }' |
       while read -r f; do [[ -e $f ]] && echo "$f"; done || true)
[[ -z $left ]] || { echo "package-install-test: dpkg -r left: $left" >&2; exit 1; }
echo "package-install-test: installed, used and removed $NAME $VERSION"
