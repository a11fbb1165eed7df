#!/usr/bin/env bash
# Builds the example modules into WebAssembly components for the `teemesh:module/enclave-module`
# world, reproducibly: the same sources give the same bytes on any machine, at any path, so the
# committed .wasm files (and their SHA-256, the modules' measurements) can be checked by rebuilding.
# Each module is built by scripts/build-module.sh, the recipe `teemesh deploy` also runs for a module
# given as `source:`, so a deployment from source has the measurement committed here.
#
# Usage: bash scripts/build-examples.sh           build, test, and write examples/**/*.wasm,
#                                                 examples/SHA256SUMS and examples/toolchain.txt
#        bash scripts/build-examples.sh --check   build and test in a temporary directory; fail if
#                                                 any component differs from the committed one
#        bash scripts/build-examples.sh --install only install what building needs (what
#                                                 `teemesh deploy` needs for `source:` modules)
# Installs what is missing: Debian packages (as root), and with cargo install, into versioned
# folders under $CARGO_HOME/teemesh-examples-tools, wasm-tools and (for a build, not --check, which
# uses the committed C bindings) wit-bindgen-cli. Safe to rerun.
#   TEEMESH_EXAMPLES_TARGET=DIR   cargo's build folder for the Wasm builds (default target/examples);
#                                 it only caches, the output never depends on it
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
check=0 install_only=0
case "${1:-}" in
    "") ;;
    --check) check=1 ;;
    --install) install_only=1 check=1 ;;
    *) echo "usage: $0 [--check | --install]" >&2; exit 2 ;;
esac
start=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - start))" "$*"; }

# The pinned versions and Debian packages of the recipe: wasm_tools_version, apt_packages,
# wasm_rustc, tools_root. wit-bindgen 0.60 is built on the wasm-tools 0.254 crates too.
# shellcheck source=build-module.sh
source scripts/build-module.sh --definitions-only
wit_bindgen_version=0.60.0
cargo_target="${TEEMESH_EXAMPLES_TARGET:-$root/target/examples}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ "$check" = 1 ]; then out="$work/out"; else out="$root/examples"; fi
mkdir -p "$out/sensor-filter" "$out/sensor-driver" "$out/actuator" "$out/relay" "$out/misbehave" "$out/kernels"

step "system packages: ${apt_packages[*]}"
missing=()
for package in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "error: install ${missing[*]} (apt-get install ${missing[*]}) and rerun" >&2
        exit 1
    fi
fi
"$wasm_rustc" --version
clang-14 --version | head -n 1
wasm-ld-14 --version

step "tools: wasm-tools $wasm_tools_version$([ "$check" = 1 ] || echo ", wit-bindgen-cli $wit_bindgen_version")"
# Only the subcommands used here are compiled in, which more than halves the install time.
install_tool() { # crate version binary features
    local dir="$tools_root/$1-$2"
    if [ ! -x "$dir/bin/$3" ]; then
        echo "installing $1 $2 into $dir"
        (cd / && cargo install --quiet --locked --root "$dir" "$1" --version "=$2" --no-default-features --features "$4")
    fi
}
install_tool wasm-tools "$wasm_tools_version" wasm-tools component,validate
wasm_tools="$tools_root/wasm-tools-$wasm_tools_version/bin/wasm-tools"
"$wasm_tools" --version
if [ "$install_only" = 1 ]; then
    step "done in $((SECONDS - start)) s: the toolchain of scripts/build-module.sh is installed"
    exit 0
fi
# The C bindings are committed, so --check (CI) does without wit-bindgen-cli; a build regenerates
# them. A WIT change that --check misses in them cannot slip through anyway: the Rust components
# embed the world, so they change too and --check fails until someone rebuilds.
wit_bindgen="$tools_root/wit-bindgen-cli-$wit_bindgen_version/bin/wit-bindgen"
if [ "$check" = 0 ]; then
    install_tool wit-bindgen-cli "$wit_bindgen_version" wit-bindgen c
fi
if [ -x "$wit_bindgen" ]; then
    "$wit_bindgen" --version
fi

step "WASI reactor adapter (wasmtime 48)"
adapter="$work/wasi_snapshot_preview1.reactor.wasm"
cargo run --quiet --locked --release --manifest-path tools/wasi-adapter/Cargo.toml \
    --target-dir "$cargo_target/host" -- "$adapter"
sha256sum "$adapter" | sed "s|$work/||"

build_module() { # language dir component
    step "$1: $2 → $3.wasm"
    bash scripts/build-module.sh --adapter "$adapter" --target-dir "$cargo_target/wasm" --root "$root" \
        "$1" "$2" "$out/$3.wasm"
}
build_module rust examples/sensor-filter/rust sensor-filter/sensor-filter-rust
build_module rust examples/sensor-driver/rust sensor-driver/sensor-driver-rust
build_module rust examples/actuator/rust actuator/actuator-rust
build_module rust examples/relay/rust relay/relay-rust
build_module rust examples/misbehave misbehave/misbehave
build_module rust examples/kernels kernels/kernels

# The C modules share the sensor filter's bindings, JSON code and WASI stubs (one copy each, so
# that they cannot drift apart): each module's build.conf names them.
c_shared=examples/sensor-filter/c
bindings=$c_shared/bindings
step "c: $bindings (bindings from wit/, shared by all C modules)"
if [ -x "$wit_bindgen" ]; then
    "$wit_bindgen" c --world enclave-module --out-dir "$work/c-bindings" wit/ >"$work/wit-bindgen.log" 2>&1 ||
        { cat "$work/wit-bindgen.log" >&2; exit 1; }
    if [ "$check" = 1 ]; then
        diff -r "$bindings" "$work/c-bindings" ||
            { echo "error: $bindings is stale (rebuild with bash scripts/build-examples.sh)" >&2; exit 1; }
        echo "committed bindings match wit-bindgen c $wit_bindgen_version"
    else
        rm -rf "$bindings" && cp -r "$work/c-bindings" "$bindings"
        echo "bindings regenerated into $bindings"
    fi
else
    echo "using the committed bindings in $bindings (wit-bindgen-cli $wit_bindgen_version is not installed)"
fi
build_module c examples/sensor-filter/c sensor-filter/sensor-filter-c
build_module c examples/sensor-driver/c sensor-driver/sensor-driver-c
build_module c examples/actuator/c actuator/actuator-c
components=(
    sensor-filter/sensor-filter-rust sensor-filter/sensor-filter-c
    sensor-driver/sensor-driver-rust sensor-driver/sensor-driver-c
    actuator/actuator-rust actuator/actuator-c
    relay/relay-rust misbehave/misbehave kernels/kernels
)

step "tests: each Rust and C pair replays its testdata/transcript.txt over a mock node"
cc_native="$(command -v clang-14 || command -v cc)"
for crate in sensor-filter/rust sensor-driver/rust actuator/rust relay/rust; do
    echo "rust: examples/$crate (cargo test)"
    (cd "examples/$crate" && CARGO_TARGET_DIR="$cargo_target/host" cargo test --quiet --locked)
done
# The replay loop and the mock node are shared (examples/common/transcript.c, never in a component);
# each module's transcript_test.c only routes the calls to it.
c_transcript_test() { # module source...
    local module="$1" transcript="examples/$1/testdata/transcript.txt"
    shift
    "$cc_native" -std=c11 -O2 -Wall -Wextra -Werror -I "$c_shared" -I examples/common \
        -o "$work/$module-transcript-test" "$@" examples/common/transcript.c -lm
    "$work/$module-transcript-test" "$transcript" >"$work/$module-transcript.c.txt"
    diff -u "$transcript" "$work/$module-transcript.c.txt"
    echo "C $module: transcript matches ($(grep -cE '^(input|request|entry) ' "$transcript") calls)"
}
c_transcript_test sensor-filter $c_shared/{json,filter,transcript_test}.c
c_transcript_test sensor-driver $c_shared/json.c examples/sensor-driver/c/{driver,transcript_test}.c
c_transcript_test actuator $c_shared/json.c examples/actuator/c/{actuator,transcript_test}.c

step "toolchain record"
{
    echo "# What built the committed components (scripts/build-examples.sh writes this file)."
    dpkg-query -W -f='${Package} ${Version}\n' "${apt_packages[@]}" clang-14 lld-14
    "$wasm_rustc" --version
    echo "wasm-tools $wasm_tools_version"
    echo "wit-bindgen-cli $wit_bindgen_version"
    echo "wasi-preview1-component-adapter-provider 48.0.8"
} >"$work/toolchain.txt"
(cd "$out" && sha256sum "${components[@]/%/.wasm}") >"$work/SHA256SUMS"
cat "$work/SHA256SUMS"

if [ "$check" = 1 ]; then
    step "check: rebuilt components against the committed ones"
    if ! (cd examples && sha256sum --quiet --check "$work/SHA256SUMS"); then
        echo "error: the committed components differ from this build (rebuild with bash scripts/build-examples.sh and commit)" >&2
        echo "toolchain of this build against the committed record:" >&2
        diff -u examples/toolchain.txt "$work/toolchain.txt" >&2 || true
        exit 1
    fi
    diff -u examples/SHA256SUMS "$work/SHA256SUMS"
    echo "all ${#components[@]} components are byte-identical to the committed ones"
else
    cp "$work/toolchain.txt" "$work/SHA256SUMS" examples/
fi
step "done in $((SECONDS - start)) s"
