//! A module that misbehaves on request, for the runtime's tests of its limits: entry `spin` never
//! returns, `grow` allocates until the memory limit refuses, `trap` panics (a Wasm trap).
//!
//! Run it only under the runtime's limits: without them `spin` runs forever and `grow` takes 4 GiB.

wit_bindgen::generate!({
    world: "enclave-module",
    path: "../../wit",
});

use exports::teemesh::module::guest::{Guest, Manifest};
use teemesh::module::host;
use teemesh::module::types::Level;

/// Allocation step of `grow`.
const CHUNK: usize = 1 << 20;

struct Misbehave;

impl Guest for Misbehave {
    fn describe() -> Manifest {
        Manifest {
            inputs: Vec::new(),
            outputs: Vec::new(),
            requests: Vec::new(),
            handlers: Vec::new(),
            entries: vec!["spin".into(), "grow".into(), "trap".into()],
        }
    }

    fn on_input(input: String, _data: Vec<u8>) -> Result<(), String> {
        Err(format!("unknown input {input:?}"))
    }

    fn on_request(handler: String, _data: Vec<u8>) -> Result<Vec<u8>, String> {
        Err(format!("unknown handler {handler:?}"))
    }

    fn call_entry(entry: String, _arg: Vec<u8>) -> Result<Vec<u8>, String> {
        if !matches!(entry.as_str(), "spin" | "grow" | "trap") {
            return Err(format!("unknown entry {entry:?}"));
        }
        // Logged first, so a test can tell that the entry ran before it misbehaved.
        host::log(Level::Info, &format!("entry {entry}: misbehaving now"));
        match entry.as_str() {
            "spin" => spin(),
            "grow" => Err(grow()),
            _ => panic!("entry `trap` called"),
        }
    }
}

/// Loops forever; only fuel or epoch interruption ends it.
fn spin() -> ! {
    let mut counter = 0_u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates and touches 1 MiB chunks until an allocation fails, then reports how far it got
/// (the chunks are freed on return, but the linear memory stays grown).
fn grow() -> String {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(CHUNK).is_err() || chunks.try_reserve(1).is_err() {
            return format!("out of memory after {} MiB", chunks.len());
        }
        chunk.resize(CHUNK, 0xa5);
        chunks.push(chunk);
    }
}

export!(Misbehave);
