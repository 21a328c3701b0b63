#!/usr/bin/env bash
# Coverage-guided fuzzing of the pure core: builds the cargo-fuzz project in fuzz/ and runs
# each target (all, or those named as arguments) for FUZZ_SECONDS, one after the other.
# Fails when any target finds a crash (a panic: a broken property), a hang (an input running
# longer than FUZZ_TIMEOUT seconds) or an input needing more than FUZZ_RSS_MB of memory; the
# input is left in fuzz/artifacts/<target>/. New inputs the fuzzer finds go to the ignored
# fuzz/work/corpus/<target>/, beside the committed seeds of fuzz/corpus/<target>/.
#
# To keep a finding: fix the core, then copy the input to fuzz/regressions/<target>/, where
# `cargo test -p oidc_authz_core` (core/tests/fuzz_regressions.rs) replays it from then on.
# FUZZ_TIMEOUT (10 s), FUZZ_RSS_MB (2048) and FUZZ_SANITIZER (address) tune a run.
# Reproduce one:  RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <file>  (from fuzz/).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FUZZ=$ROOT/fuzz
SECONDS_EACH=${FUZZ_SECONDS:-60}
TIMEOUT=${FUZZ_TIMEOUT:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
# AddressSanitizer (cargo-fuzz's default) watches the unsafe code of dependencies (the CEL
# parser's runtime); `none` runs the safe core alone faster.
SANITIZER=${FUZZ_SANITIZER:-address}
# cargo-fuzz passes nightly-only flags (-Z sanitizer, -C passes=sancov-module); the stable
# toolchain accepts them with RUSTC_BOOTSTRAP. Nothing else is built this way.
export RUSTC_BOOTSTRAP=1

die() { printf 'fuzz: %s\n' "$*" >&2; exit 1; }

# Installed here, not by `make setup`: `make test` needs none of it. Pinned: a version that
# builds with this toolchain.
CARGO_FUZZ=0.13.2
if [[ $(cargo fuzz --version 2>/dev/null | awk '{ print $2 }') != "$CARGO_FUZZ" ]]; then
    echo "==> cargo install --locked cargo-fuzz --version =$CARGO_FUZZ"
    cargo install --locked cargo-fuzz --version "=$CARGO_FUZZ"
fi
[[ $SECONDS_EACH =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a positive number of seconds"

cd "$FUZZ"
mapfile -t all < <(cargo fuzz list)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")
for t in "${targets[@]}"; do
    printf '%s\n' "${all[@]}" | grep -qx -- "$t" || die "no fuzz target \`$t\` (have: ${all[*]})"
done

printf '==> cargo fuzz build (%d targets)\n' "${#all[@]}"
start=$(date +%s)
cargo fuzz build --sanitizer "$SANITIZER"
printf '==> built in %ds\n' "$(($(date +%s) - start))"

mkdir -p "$FUZZ/work/logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    work=$FUZZ/work/corpus/$t
    log=$FUZZ/work/logs/$t.log
    mkdir -p "$work" "$FUZZ/artifacts/$t"
    printf '==> %s for %ss\n' "$t" "$SECONDS_EACH"
    rc=0
    cargo fuzz run --sanitizer "$SANITIZER" "$t" "$work" "$FUZZ/corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" -rss_limit_mb="$RSS_MB" \
        -print_final_stats=1 >"$log" 2>&1 || rc=$?
    runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$log" | tail -n1)
    speed=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$log" | tail -n1)
    cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -n1 || true)
    line=$(printf '%-17s %10s runs %7s/s  %s' "$t" "${runs:-?}" "${speed:-?}" "${cov:-}")
    if ((rc != 0)); then
        failed+=("$t")
        line+="  FAILED (exit $rc, log $log)"
        grep -E '^(==[0-9]+==|thread .* panicked|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -n 20 >&2 || true
    fi
    summary+=("$line")
    printf '%s\n' "$line"
done

printf '==> summary (%ss per target, timeout %ss, rss limit %s MB, sanitizer %s)\n' \
    "$SECONDS_EACH" "$TIMEOUT" "$RSS_MB" "$SANITIZER"
printf '    %s\n' "${summary[@]}"
((${#failed[@]} == 0)) || die "findings in: ${failed[*]} (inputs under fuzz/artifacts/)"
printf '==> no crash, hang or out-of-memory in %d targets\n' "${#targets[@]}"
