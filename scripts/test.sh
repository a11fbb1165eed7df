#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need, then format check, clippy with
# warnings as errors, every test, the demo, a bounded fuzz run and the dependency policy check.
#
# Usage: bash scripts/test.sh
#   TEEMESH_FUZZ_SECONDS=N   seconds per fuzz target (default 20; 0 skips fuzzing)
#   TEEMESH_SKIP_DENY=1      skip `cargo deny` (it needs crates.io to install the first time)
#   TEEMESH_SKIP_EXAMPLES=1  do without the Debian Wasm toolchain: skip rebuilding examples/ from
#                            source (~7 min cold) and the tests of `teemesh deploy` that build
#                            modules from source (named source_build_*)
# Works from a fresh Debian machine as root with rustup's stable toolchain; safe to rerun.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fuzz_seconds="${TEEMESH_FUZZ_SECONDS:-20}"
start=$SECONDS
step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - start))" "$*"; }

step "toolchain"
# rust-toolchain.toml pins 1.95.0; a machine whose only toolchain is called `stable` gets it linked
# under the pinned name instead of trying to download it.
pinned="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
if ! rustup toolchain list | grep -q "^$pinned"; then
    stable_version="$(rustc +stable --version | awk '{print $2}')"
    if [ "$stable_version" != "$pinned" ]; then
        echo "error: rust-toolchain.toml pins $pinned but this machine has stable $stable_version" >&2
        exit 1
    fi
    rustup toolchain link "$pinned" "$(rustc +stable --print sysroot)"
fi
rustc --version
cargo --version
# The build needs about 10 GB; say how much there is, so a full disk is recognised as such.
df -h . | tail -n 1 | awk '{print "disk: " $4 " free of " $2 " on " $6}'

step "system packages"
# openssl: the ordinary TLS client (s_client) of the attested-TLS interoperability tests.
# mosquitto-clients, python3-paho-mqtt: the MQTT clients of the broker's interoperability tests
# (crates/teemesh/tests/mqtt_interop.rs); mosquitto: the broker `teemesh bench mqtt` compares with.
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v mosquitto_sub >/dev/null 2>&1 || missing+=(mosquitto-clients)
/usr/bin/python3 -c 'import paho.mqtt.client' >/dev/null 2>&1 || missing+=(python3-paho-mqtt)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    else
        echo "error: install ${missing[*]} (apt-get install ${missing[*]}) and rerun" >&2
        exit 1
    fi
fi

step "mqttwrk (the third-party MQTT load tool of scripts/bench-mqttwrk.py and its test)"
if [ ! -x target/tools/bin/mqttwrk ]; then
    cargo install mqttwrk --version 0.2.0 --locked --root target/tools
fi

if [ -z "${TEEMESH_SKIP_EXAMPLES:-}" ]; then
    # Before the tests: `teemesh deploy` builds `source:` modules with it (tests/deploy_source.rs).
    step "Wasm toolchain (scripts/build-module.sh: examples and deploy from source)"
    bash scripts/build-examples.sh --install
fi

step "cargo fmt --check"
cargo fmt --all --check
cargo fmt --manifest-path fuzz/Cargo.toml --all --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test"
if [ -z "${TEEMESH_SKIP_EXAMPLES:-}" ]; then
    cargo test --workspace --locked
else
    echo "skipping the source_build_* tests (TEEMESH_SKIP_EXAMPLES: no Wasm toolchain)"
    cargo test --workspace --locked -- --skip source_build_
fi

if [ -z "${TEEMESH_SKIP_EXAMPLES:-}" ]; then
    step "examples: rebuild the committed .wasm from source and compare"
    bash scripts/build-examples.sh --check
fi

step "teemesh demo (smoke)"
cargo run --locked -q -p teemesh -- demo

if [ "$fuzz_seconds" != 0 ]; then
    step "fuzz (${fuzz_seconds} s per target)"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi

if [ -z "${TEEMESH_SKIP_DENY:-}" ]; then
    step "cargo deny (licenses, bans, sources)"
    if ! cargo deny --version >/dev/null 2>&1; then
        cargo install cargo-deny --locked
    fi
    # Advisories need the RustSec database from GitHub, which these machines cannot reach.
    cargo deny --locked check licenses bans sources
fi

step "all checks passed in $((SECONDS - start)) s"
du -sh target 2>/dev/null | awk '{print "target/: " $1}' || true
