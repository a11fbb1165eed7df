#!/usr/bin/env bash
# Builds every fuzz target in fuzz/ once (release, debug assertions, AddressSanitizer) and runs
# each for a bounded time on a temporary copy of its seed corpus; exits non-zero on any crash.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 20)
#   FUZZ_TARGETS="evidence policy"  run only these targets (default: all, from `cargo fuzz list`)
#   CARGO_TARGET_DIR=...            where the instrumented build goes (default: fuzz/target)
#   FUZZ_KEEP_CORPUS=1              keep the grown corpus (its path is printed) instead of deleting it
#
# cargo fuzz needs nightly-only rustc flags (-Zsanitizer=address) and this project has only the
# stable toolchain, so the build runs with RUSTC_BOOTSTRAP=1. Only the fuzz workspace is built that
# way; the product is never built with unstable flags.
# Crashing inputs are written to fuzz/artifacts/<target>/ (git-ignored); reproduce one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a <target> fuzz/artifacts/<target>/<file>   (from the repo root)
# and, once understood, add it to testdata/bad-inputs/ so tests/bad_inputs.rs keeps it fixed.
set -euo pipefail

seconds="${1:-20}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number, default 20)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz_dir="$root/fuzz"
# Absolute, because cargo resolves a relative CARGO_TARGET_DIR against its working directory.
target_dir="${CARGO_TARGET_DIR:-$fuzz_dir/target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
export CARGO_TARGET_DIR="$target_dir"
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$target_dir/$triple/release"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz is missing; installing it from crates.io (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked
fi

cd "$fuzz_dir"
if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo fuzz list)
fi

build_start=$SECONDS
echo "fuzz: building ${#targets[@]} targets (release + debug assertions + ASan) into $target_dir"
if [ -n "${FUZZ_TARGETS:-}" ]; then
    for target in "${targets[@]}"; do
        RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a "$target"
    done
else
    RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a
fi
echo "fuzz: build took $((SECONDS - build_start)) s"

work="$(mktemp -d "${TMPDIR:-/tmp}/teemesh-fuzz.XXXXXX")"
if [ -z "${FUZZ_KEEP_CORPUS:-}" ]; then
    trap 'rm -rf "$work"' EXIT
fi

failed=()
run_start=$SECONDS
for target in "${targets[@]}"; do
    corpus="$work/corpus/$target"
    artifacts="$fuzz_dir/artifacts/$target"
    log="$work/$target.log"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "$fuzz_dir/corpus/$target" ]; then
        cp -R "$fuzz_dir/corpus/$target/." "$corpus/"
    fi
    seeds=$(find "$corpus" -type f | wc -l)
    status=ok
    # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a 2-core CI box has little
    # headroom; -print_final_stats: the numbers for the summary line.
    if ! "$bin_dir/$target" "$corpus" \
        -artifact_prefix="$artifacts/" \
        -max_total_time="$seconds" \
        -rss_limit_mb=2048 \
        -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        status=CRASH
        failed+=("$target")
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 | cut -d' ' -f2)
    grown=$(find "$corpus" -type f | wc -l)
    printf 'fuzz: %-14s %-5s %9s runs %7s exec/s  cov %-6s corpus %s -> %s  rss %s MB\n' \
        "$target" "$status" "${runs:-?}" "${speed:-?}" "${cov:-?}" "$seeds" "$grown" "${rss:-?}"
    if [ "$status" != ok ]; then
        # The sanitizer or panic report, and the input that caused it.
        grep -E -A25 '^(==[0-9]+==ERROR|thread .* panicked|ERROR: libFuzzer)' "$log" | head -n40 | sed 's/^/    /' || true
        grep -E '^(artifact_prefix|Test unit written to)' "$log" | sed 's/^/    /' || true
    fi
done
echo "fuzz: ${#targets[@]} targets x ${seconds} s took $((SECONDS - run_start)) s"
if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then
    echo "fuzz: grown corpus kept in $work/corpus"
fi

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran without a crash"
