//! The relay example module: re-emits every event of input `in` on output `out`, and entry `emit`
//! emits its argument there. `teemesh bench events` wires two relays into a ring between nodes.
//!
//! This file only binds the WIT world to `relay`.

mod relay;

wit_bindgen::generate!({
    world: "enclave-module",
    path: "../../../wit",
});

use exports::teemesh::module::guest::{Guest, Manifest};
use teemesh::module::host;

struct Relay;

/// The real node, reached through the WIT imports.
struct NodeHost;

impl relay::Host for NodeHost {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
        host::emit_output(output, data)
    }
}

impl Guest for Relay {
    fn describe() -> Manifest {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        Manifest {
            inputs: names(relay::INPUTS),
            outputs: names(relay::OUTPUTS),
            requests: Vec::new(),
            handlers: Vec::new(),
            entries: names(relay::ENTRIES),
        }
    }

    fn on_input(input: String, data: Vec<u8>) -> Result<(), String> {
        relay::on_input(&mut NodeHost, &input, &data)
    }

    fn on_request(handler: String, _data: Vec<u8>) -> Result<Vec<u8>, String> {
        relay::on_request(&handler)
    }

    fn call_entry(entry: String, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        relay::call_entry(&mut NodeHost, &entry, &arg)
    }
}

export!(Relay);
