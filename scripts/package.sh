#!/usr/bin/env bash
# A Debian package of the extension for the PostgreSQL major of a pg_config:
#
#   scripts/package.sh [PG_CONFIG]     default /usr/lib/postgresql/15/bin/pg_config
#
# writes target/package/postgresql-<major>-pg-oidc-authz_<version>_<arch>.deb (and prints its
# path): the library, the control file, the install script of this version and those of the
# earlier releases kept in sql/ (so CREATE EXTENSION ... VERSION and ALTER EXTENSION ... UPDATE
# work from every one), the upgrade scripts, the Supabase shim (contrib/pg_oidc_authz/), README
# and the copyright file, at the paths of Debian's (and PGDG's) postgresql-<major> package:
# /usr/lib/postgresql/<major>/lib and /usr/share/postgresql/<major>, whatever the layout of
# the server the library is built against (PostgreSQL 18 here is a relocatable build under
# /opt; its ABI is the major's, which is what a module's magic block checks). Nothing is
# installed: `cargo pgrx package` builds into a staging directory, whose files are moved to
# those paths, and dpkg-deb wraps them.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${1:-/usr/lib/postgresql/15/bin/pg_config}
EXT=pg_oidc_authz

die() { printf 'package: %s\n' "$*" >&2; exit 1; }
[[ -x $PG_CONFIG ]] || die "no pg_config at $PG_CONFIG"

MAJOR=$("$PG_CONFIG" --version | sed -E 's/^PostgreSQL ([0-9]+).*/\1/')
[[ $MAJOR =~ ^[0-9]+$ ]] || die "cannot read the major version from $("$PG_CONFIG" --version)"
read -r VERSION LICENSE DESCRIPTION < <(python3 - "$ROOT/Cargo.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    doc = tomllib.load(f)
package, workspace = doc["package"], doc.get("workspace", {}).get("package", {})
def field(name):
    value = package[name]
    return workspace[name] if isinstance(value, dict) and value.get("workspace") else value
print(field("version"), field("license"), field("description"))
PY
)
ARCH=$(dpkg --print-architecture)
NAME=postgresql-$MAJOR-${EXT//_/-}
MAINTAINER=${DEB_MAINTAINER:-$(git -C "$ROOT" log -1 --format='%an <%ae>' 2>/dev/null || true)}
[[ -n $MAINTAINER ]] || die "set DEB_MAINTAINER (\"Name <email>\"): no git history to take it from"

OUT=$ROOT/target/package
STAGE=$OUT/$NAME
BUILD=$OUT/$NAME.pgrx
DEB=$OUT/${NAME}_${VERSION}_${ARCH}.deb
# Where pgrx stages the files (the pg_config's directories) and where the package puts them.
BUILD_SHAREDIR=$("$PG_CONFIG" --sharedir)
BUILD_PKGLIBDIR=$("$PG_CONFIG" --pkglibdir)
SHAREDIR=/usr/share/postgresql/$MAJOR
PKGLIBDIR=/usr/lib/postgresql/$MAJOR/lib
rm -rf "$STAGE" "$BUILD" "$DEB"
mkdir -p "$STAGE" "$BUILD"

echo "package: cargo pgrx package for PostgreSQL $MAJOR ($PG_CONFIG)"
(cd "$ROOT" && nice cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$BUILD" \
    --no-default-features --features "pg$MAJOR")

# pgrx stages the library, the control file, this version's install script and sql/'s
# upgrade scripts; each goes to the Debian path, and anything else pgrx staged is an error
# (it would be left out of the package unnoticed).
extdir=$STAGE$SHAREDIR/extension
[[ -f $BUILD$BUILD_SHAREDIR/extension/$EXT--$VERSION.sql && -f $BUILD$BUILD_SHAREDIR/extension/$EXT.control &&
   -f $BUILD$BUILD_PKGLIBDIR/$EXT.so ]] ||
    die "cargo pgrx package did not stage the library, control file and install script"
install -d "$extdir" "$STAGE$PKGLIBDIR"
mv "$BUILD$BUILD_PKGLIBDIR/$EXT.so" "$STAGE$PKGLIBDIR/"
mv "$BUILD$BUILD_SHAREDIR"/extension/"$EXT"[.-]* "$extdir/"
left=$(find "$BUILD" -type f)
[[ -z $left ]] || die "cargo pgrx package staged files this script does not place: $left"
rm -rf "$BUILD"
# The install scripts of earlier releases are ours to add.
for script in "$ROOT"/sql/"$EXT"--*.sql; do
    install -m 0644 "$script" "$extdir/"
done

# The optional Supabase shim is no extension script: psql -f runs it (README "Integrations").
install -D -m 0644 "$ROOT/sql/supabase_compat.sql" "$STAGE$SHAREDIR/contrib/$EXT/supabase_compat.sql"

doc=$STAGE/usr/share/doc/$NAME
install -d "$doc"
# Compressed, as Debian's policy asks of documentation (the copyright file stays plain).
gzip -9n <"$ROOT/README.md" >"$doc/README.md.gz"
# Machine-readable copyright (DEP-5); the license is the crate's (Cargo.toml).
[[ $LICENSE == MIT ]] || die "the copyright file below only knows the MIT license, not $LICENSE"
cat >"$doc/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $EXT
Source: the $EXT repository

Files: *
Copyright: the $EXT authors
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy of this
 software and associated documentation files (the "Software"), to deal in the Software
 without restriction, including without limitation the rights to use, copy, modify, merge,
 publish, distribute, sublicense, and/or sell copies of the Software, and to permit persons
 to whom the Software is furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in all copies or
 substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED,
 INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR
 PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE
 FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR
 OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER
 DEALINGS IN THE SOFTWARE.
COPYRIGHT

# The shared libraries the library links (libc, libgcc_s, ...), as dpkg-shlibdeps finds them
# from the installed packages' symbols files; it wants a debian/control to read.
shlibs=$(
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    mkdir "$tmp/debian"
    printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' "$NAME" "$NAME" >"$tmp/debian/control"
    cd "$tmp" && dpkg-shlibdeps -O -e"$STAGE$PKGLIBDIR/$EXT.so" 2>/dev/null | sed -n 's/^shlibs:Depends=//p'
)
[[ -n $shlibs ]] || die "dpkg-shlibdeps found no dependencies of $EXT.so"

find "$STAGE" -type d -exec chmod 0755 {} +
find "$STAGE" -type f -exec chmod 0644 {} +
install -d "$STAGE/DEBIAN"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$STAGE/DEBIAN/md5sums"
cat >"$STAGE/DEBIAN/control" <<CONTROL
Package: $NAME
Version: $VERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: postgresql-$MAJOR, $shlibs
Section: database
Priority: optional
Description: $DESCRIPTION
 pg_oidc_authz verifies OpenID Connect access tokens inside PostgreSQL $MAJOR and decides
 fine-grained authorization for row-level security policies. Load it with
 shared_preload_libraries = '$EXT' (log redaction, key discovery worker), then run
 CREATE EXTENSION $EXT in each database; ALTER EXTENSION $EXT UPDATE upgrades one from an
 earlier release.
CONTROL
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/md5sums"

dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
echo "package: $DEB"
