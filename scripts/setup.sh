#!/usr/bin/env bash
# Installs everything the build and the test tiers need, skipping what is already there.
# Safe to run repeatedly; must run as root (apt, system Postgres directories).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
PG_CONFIG=/usr/lib/postgresql/$PG_MAJOR/bin/pg_config
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
    # sudo: `cargo pgrx test --runas` drives initdb/pg_ctl through it.
    for pkg in sudo pgbouncer; do
        [[ -n $(installed_version "$pkg") ]] || wanted+=("$pkg")
    done

    if ((${#wanted[@]} == 0)); then
        step "apt packages present (postgresql-server-dev-$PG_MAJOR $server_version, sudo, pgbouncer)"
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

pgrx_init() {
    if grep -Eqs '^[[:space:]]*pg'"$PG_MAJOR"'[[:space:]]*=' "$PGRX_HOME/config.toml"; then
        step "pgrx already knows pg$PG_MAJOR ($PGRX_HOME/config.toml)"
        return
    fi
    # Points pgrx at the system server; never lets it download and build one.
    step "cargo pgrx init --pg$PG_MAJOR $PG_CONFIG"
    cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
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
node_runtime
provider_packages
cargo_pgrx
pgrx_init
python_venv
step "setup complete"
