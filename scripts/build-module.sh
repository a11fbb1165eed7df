#!/usr/bin/env bash
# Builds one module's source directory into a WebAssembly component for the
# `teemesh:module/enclave-module` world. The one recipe behind scripts/build-examples.sh (which runs
# it for every example module) and `teemesh deploy` (a module given as `source:` + `language:`; the
# binary embeds this file), so a deployment built from source has the measurement of the committed
# example. Reproducible: the same sources and toolchain give the same bytes at any path.
#
# Usage: bash scripts/build-module.sh [OPTIONS] rust|c DIR OUT.wasm
#   --adapter FILE     wasmtime 48's wasi_snapshot_preview1 reactor adapter (required;
#                      tools/wasi-adapter writes it, and so does `teemesh deploy`)
#   --target-dir DIR   cargo's build folder for a Rust module (required for rust); it only caches,
#                      the output never depends on it
#   --root DIR         the source tree whose path is written as /teemesh wherever a path could end
#                      up in a binary (default: the git work tree holding DIR, else DIR)
#
# What DIR must hold:
#   rust  a cargo package that is its own workspace, with its Cargo.lock (the build is --locked)
#         and a library of crate-type "cdylib": built for wasm32-wasip1 by Debian's rustc with
#         -Zbuild-std, then made a component.
#   c     a file build.conf naming what to compile, one entry per line, paths relative to DIR
#         (or absolute), `#` starts a comment:
#             bindings PATH   the world's `wit-bindgen c` output (enclave_module.{c,h} and
#                             enclave_module_component_type.o), once
#             include PATH    a header directory (-I), any number, in order
#             source PATH     a C file of the module, in link order (the order is part of the bytes)
#         Each source is compiled with clang-14 for wasm32-wasi (C11, -O2, -Wall -Wextra -Werror),
#         then linked as a reactor with the bindings.
# The component must export teemesh:module/guest and import nothing but teemesh:module/host (no
# WASI: the node provides none); it is validated and checked for that before OUT is written.
#
# Exit codes: 0 built, 1 the build failed, 2 usage, 3 a tool is missing (each one is named with the
# Debian package or the command that installs it; this script never installs anything, and
# build-examples.sh installs them all).
# Sourced with `--definitions-only`, it only defines the pinned versions below (build-examples.sh
# installs and records them).
set -euo pipefail

# Versions are pinned to the wasmtime release of the host (48): it parses with the wasm-tools 0.254
# crates, which wasm-tools 1.254 is built on.
wasm_tools_version=1.254.2
apt_packages=(rustc-web rust-web-src lld wasi-libc clang libclang-rt-dev-wasm32)
wasm_rustc=/usr/bin/rustc # Debian's rustc (rustc-web): it can build std for wasm32 from rust-web-src
rust_src=/usr/lib/rustlib/src/rust
wasi_sysroot=/usr/lib/wasm32-wasi
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
tools_root="$cargo_home/teemesh-examples-tools"
wasm_tools_install="cargo install --locked --root $tools_root/wasm-tools-$wasm_tools_version wasm-tools --version =$wasm_tools_version --no-default-features --features component,validate"
if [ "${1:-}" = --definitions-only ]; then
    return 0
fi

usage() {
    echo "usage: $0 [--adapter FILE] [--target-dir DIR] [--root DIR] rust|c DIR OUT.wasm" >&2
    exit 2
}
fail() {
    echo "error: $*" >&2
    exit 1
}
adapter="" target_dir="" root=""
while [ $# -gt 0 ]; do
    case "$1" in
        --adapter) [ $# -ge 2 ] || usage; adapter="$2"; shift 2 ;;
        --target-dir) [ $# -ge 2 ] || usage; target_dir="$2"; shift 2 ;;
        --root) [ $# -ge 2 ] || usage; root="$2"; shift 2 ;;
        --) shift; break ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 3 ] || usage
language="$1" dir="$2" out="$3"
case "$language" in rust | c) ;; *) usage ;; esac
[ -n "$adapter" ] || usage
[ "$language" = c ] || [ -n "$target_dir" ] || usage

# The toolchain first, before anything else runs, so that a missing tool is named rather than
# found by a failing command.
missing=() install=()
need() { # what-is-missing debian-package
    missing+=("$1 (Debian package $2)")
    install+=("$2")
}
[ "$language" = c ] || {
    [ -x "$wasm_rustc" ] || need "$wasm_rustc" rustc-web
    [ -f "$rust_src/library/std/Cargo.toml" ] || need "the Rust sources in $rust_src" rust-web-src
    command -v cargo >/dev/null 2>&1 || missing+=("cargo (rustup: https://rustup.rs)")
}
[ "$language" = rust ] || {
    command -v clang-14 >/dev/null 2>&1 || need clang-14 clang
    compgen -G "/usr/lib/llvm-14/lib/clang/*/lib/wasi/libclang_rt.builtins-wasm32.a" >/dev/null ||
        need "clang's wasm32 builtins" libclang-rt-dev-wasm32
}
command -v wasm-ld-14 >/dev/null 2>&1 || need wasm-ld-14 lld
[ -f "$wasi_sysroot/libc.a" ] || need "wasi-libc in $wasi_sysroot" wasi-libc
wasm_tools="$tools_root/wasm-tools-$wasm_tools_version/bin/wasm-tools"
if [ ! -x "$wasm_tools" ]; then
    # One on PATH will do if it is the pinned version: another one writes other bytes.
    wasm_tools="$(command -v wasm-tools || true)"
    if [ -z "$wasm_tools" ] || [ "$("$wasm_tools" --version 2>/dev/null | awk '{print $2}')" != "$wasm_tools_version" ]; then
        missing+=("wasm-tools $wasm_tools_version${wasm_tools:+ (the one on PATH, $wasm_tools, is another version)} ($wasm_tools_install)")
    fi
fi
if [ "${#missing[@]}" -gt 0 ]; then
    echo "error: the Wasm toolchain to build a $language module is incomplete:" >&2
    printf 'missing: %s\n' "${missing[@]}" >&2
    apt=""
    if [ "${#install[@]}" -gt 0 ]; then apt="apt-get install ${install[*]}; or "; fi
    echo "install with: ${apt}bash scripts/build-examples.sh --install (in a teemesh checkout, as root: the whole toolchain)" >&2
    exit 3
fi
# From here on, any failure is a build failure (exit 1), whatever the failing tool's own code.
set -E
trap 'exit 1' ERR
[ -f "$adapter" ] || fail "no WASI adapter at $adapter"

absolute() { # an existing file or directory, as a physical absolute path
    if [ -d "$1" ]; then (cd "$1" && pwd -P); else echo "$(cd "$(dirname "$1")" && pwd -P)/$(basename "$1")"; fi
}
[ -d "$dir" ] || fail "$dir is not a directory"
dir="$(absolute "$dir")"
if [ -z "$root" ]; then
    root="$(git -C "$dir" rev-parse --show-toplevel 2>/dev/null || echo "$dir")"
fi
root="$(absolute "$root")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The environment must not change the bytes: cargo reads profiles, targets and flags from it.
unset RUSTFLAGS RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_INCREMENTAL
for variable in $(compgen -e); do
    case "$variable" in CARGO_PROFILE_* | CARGO_BUILD_* | CARGO_TARGET_*) unset "$variable" ;; esac
done

echo "build-module: $language $dir"
"$wasm_tools" --version

build_rust() {
    [ -f "$dir/Cargo.toml" ] || fail "$dir has no Cargo.toml (a rust module is a cargo package)"
    [ -f "$dir/Cargo.lock" ] || fail "$dir has no Cargo.lock (the build is --locked: commit one)"
    mkdir -p "$target_dir"
    target_dir="$(absolute "$target_dir")"
    "$wasm_rustc" --version
    # Every path that could end up in a binary is mapped to a fixed name; the most specific mapping
    # is given last because rustc applies the last one that matches.
    local rust_flags=(
        -Zunstable-options -Cpanic=immediate-abort # a panic is a bug: trap, no message, no WASI stderr
        -Clinker=wasm-ld-14 "-L$wasi_sysroot"
        "--remap-path-prefix=$cargo_home=/cargo"
        "--remap-path-prefix=$rust_src=/rust"
        "--remap-path-prefix=$root=/teemesh"
        "--remap-path-prefix=$target_dir=/target"
    )
    # CARGO_ENCODED_RUSTFLAGS (0x1f-separated) keeps paths with spaces in one argument.
    (
        cd "$dir"
        RUSTC="$wasm_rustc" RUSTC_BOOTSTRAP=1 CARGO_ENCODED_RUSTFLAGS="$(IFS=$'\x1f'; echo "${rust_flags[*]}")" \
            CARGO_TARGET_DIR="$target_dir" cargo build --quiet --locked --release \
            -Zbuild-std=std,panic_abort --target wasm32-wasip1 --message-format=json-render-diagnostics
    ) >"$work/cargo.json"
    # The package's own cdylib is the last artifact cargo reports with that crate type.
    local core
    core="$(grep '"reason":"compiler-artifact"' "$work/cargo.json" | grep '"crate_types":\["cdylib"\]' |
        tail -n 1 | grep -o '"[^"]*\.wasm"' | tail -n 1 | tr -d '"' || true)"
    [ -n "$core" ] && [ -f "$core" ] ||
        fail "cargo built no cdylib in $dir (a rust module needs [lib] crate-type = [\"cdylib\"])"
    cp "$core" "$work/core.wasm"
}

build_c() {
    local conf="$dir/build.conf" line key value rest number=0 bindings="" includes=() sources=()
    [ -f "$conf" ] || fail "$dir has no build.conf (a c module lists its bindings, includes and sources there; see scripts/build-module.sh)"
    while IFS= read -r line || [ -n "$line" ]; do
        number=$((number + 1))
        line="${line%%#*}"
        read -r key value rest <<<"$line" || true
        [ -n "${key:-}" ] || continue
        [ -n "${value:-}" ] && [ -z "${rest:-}" ] || fail "$conf:$number: expected \`KEY PATH\` (one path, no spaces)"
        case "$value" in /*) ;; *) value="$dir/$value" ;; esac
        [ -e "$value" ] || fail "$conf:$number: $value does not exist"
        value="$(absolute "$value")"
        case "$key" in
            bindings) [ -z "$bindings" ] || fail "$conf:$number: bindings given twice"; bindings="$value" ;;
            include) includes+=(-I "$value") ;;
            source) sources+=("$value") ;;
            *) fail "$conf:$number: unknown key $key (bindings, include or source)" ;;
        esac
    done <"$conf"
    [ -n "$bindings" ] || fail "$conf: no bindings line"
    [ "${#sources[@]}" -gt 0 ] || fail "$conf: no source line"
    local file
    for file in enclave_module.c enclave_module.h enclave_module_component_type.o; do
        [ -f "$bindings/$file" ] || fail "$bindings has no $file (generate it with wit-bindgen c --world enclave-module wit/)"
    done
    clang-14 --version | head -n 1
    local c_flags=(
        --target=wasm32-wasi -std=c11 -O2 -g0
        "-ffile-prefix-map=$root=/teemesh"
    )
    local source objects=() i=0
    for source in "${sources[@]}"; do
        i=$((i + 1))
        echo "cc ${source#"$root"/}"
        clang-14 "${c_flags[@]}" -Wall -Wextra -Werror "${includes[@]}" -I "$bindings" \
            -c "$source" -o "$work/$i-$(basename "$source" .c).o"
        objects+=("$work/$i-$(basename "$source" .c).o")
    done
    # The generated bindings are compiled without -Werror: their warnings are not ours to fix.
    clang-14 "${c_flags[@]}" -mexec-model=reactor -Wl,--strip-all -I "$bindings" \
        -o "$work/core.wasm" "${objects[@]}" \
        "$bindings/enclave_module.c" "$bindings/enclave_module_component_type.o"
}

"build_$language"

"$wasm_tools" component new "$work/core.wasm" \
    --adapt "wasi_snapshot_preview1=$adapter" -o "$work/component.wasm"
"$wasm_tools" validate "$work/component.wasm"
"$wasm_tools" component wit "$work/component.wasm" >"$work/component.wit"
# The world is what the node links against: the component must export guest and import nothing but
# the teemesh interfaces; WASI in particular is kept out (see no_wasi.c and -Cpanic above), so the
# node need not provide any.
world="$(sed -n '/^world root {/,/^}/p' "$work/component.wit")"
printf 'component (%s bytes):\n%s\n' "$(wc -c <"$work/component.wasm")" "$world"
grep -qx '  export teemesh:module/guest@0.1.0;' <<<"$world" ||
    fail "the component does not export teemesh:module/guest@0.1.0"
foreign="$(grep '^  import ' <<<"$world" | grep -vxE '  import teemesh:module/(types|host)@0\.1\.0;' || true)"
[ -z "$foreign" ] || fail "the component imports more than teemesh:module/host (WASI included): $foreign"
echo "WASI imports: none"
# Written whole or not at all: a reader of OUT never sees half a component.
mkdir -p "$(dirname "$out")"
cp "$work/component.wasm" "$out.partial.$$"
mv -f "$out.partial.$$" "$out"
