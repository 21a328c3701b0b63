#!/usr/bin/env bash
# A PostgreSQL install of its own with a package of the extension unpacked into it, for
# testing the package (tests/package) or running the test tiers against it without writing
# into the system's directories:
#
#   scripts/scratch-root.sh DEB ROOT [PG_CONFIG]     PG_CONFIG default /usr/lib/postgresql/15/bin/pg_config
#
# copies the server's bin/lib and share trees (PG_CONFIG's) to the same paths under ROOT,
# leaving out any pg_oidc_authz files installed there, and unpacks DEB over them with
# `dpkg -x`. Postgres finds its share and library directories relative to its binary when
# they share a prefix with the bin directory, so ROOT/.../bin/postgres reads ROOT's files:
# the script checks this with ROOT's pg_config. Then, e.g.:
#
#   PG_BINDIR=ROOT/usr/lib/postgresql/15/bin PGOIDC_DIR=/tmp/mine PGOIDC_PORT=55492 scripts/cluster.sh start
#
# ROOT must be readable by the postgres user (not under /root); it is replaced if it exists.
set -euo pipefail

die() { printf 'scratch-root: %s\n' "$*" >&2; exit 1; }
(($# >= 2)) || die "usage: $0 DEB ROOT [PG_CONFIG]"
DEB=$1
ROOT=$2
PG_CONFIG=${3:-/usr/lib/postgresql/15/bin/pg_config}
[[ -f $DEB ]] || die "no package $DEB"
[[ $ROOT == /* && $ROOT != / ]] || die "ROOT must be an absolute path other than /"

bindir=$("$PG_CONFIG" --bindir)
sharedir=$("$PG_CONFIG" --sharedir)
pkglibdir=$("$PG_CONFIG" --pkglibdir)
# Debian: /usr/lib/postgresql/NN/{bin,lib} and /usr/share/postgresql/NN.
libtree=$(dirname "$bindir")
[[ $pkglibdir == "$libtree"/* ]] || die "$pkglibdir is not under $libtree"

rm -rf "$ROOT"
mkdir -p "$ROOT$(dirname "$libtree")" "$ROOT$(dirname "$sharedir")"
cp -a "$libtree" "$ROOT$libtree"
cp -a "$sharedir" "$ROOT$sharedir"
rm -f "$ROOT$pkglibdir"/pg_oidc_authz.so "$ROOT$sharedir"/extension/pg_oidc_authz[.-]*
dpkg -x "$DEB" "$ROOT"
chmod 0755 "$ROOT"

got=$("$ROOT$bindir/pg_config" --sharedir)
[[ $got == "$ROOT$sharedir" ]] || die "the copied server reads $got, not $ROOT$sharedir"
echo "scratch-root: $ROOT (server $ROOT$bindir, extension files from $(basename "$DEB"))"
