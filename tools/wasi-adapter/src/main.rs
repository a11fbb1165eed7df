//! Writes wasmtime 48's `wasi_snapshot_preview1` reactor adapter to the path given, for
//! `wasm-tools component new --adapt wasi_snapshot_preview1=PATH` (see scripts/build-examples.sh).
#![forbid(unsafe_code)]

use std::process::ExitCode;

use wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: wasi-adapter OUTPUT.wasm");
        return ExitCode::from(2);
    };
    match std::fs::write(&path, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasi-adapter: writing {}: {error}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
