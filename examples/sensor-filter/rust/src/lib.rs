//! The sensor-filter example module in Rust: a `teemesh:module/enclave-module` component that
//! raises an alert when a sensor's reading crosses a configured threshold.
//!
//! This file only binds the WIT world to `filter`; the C twin in `../c/` behaves identically.

mod filter;
mod json;
#[cfg(test)]
mod transcript;

wit_bindgen::generate!({
    world: "enclave-module",
    path: "../../../wit",
});

use exports::teemesh::module::guest::{Guest, Manifest};
use teemesh::module::host;
use teemesh::module::types::Level;

struct SensorFilter;

/// The real node, reached through the WIT imports.
struct NodeHost;

impl filter::Host for NodeHost {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
        host::emit_output(output, data)
    }
    fn log_warn(&mut self, message: &str) {
        host::log(Level::Warn, message);
    }
    fn now_nanos(&mut self) -> u64 {
        host::now_nanos()
    }
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>> {
        host::state_get(key)
    }
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        host::state_set(key, value)
    }
    fn state_delete(&mut self, key: &str) {
        host::state_delete(key);
    }
    fn claims(&mut self) -> filter::Claims {
        let claims = host::claims();
        filter::Claims {
            name: claims.name,
            measurement: claims.measurement,
            platform: claims.platform,
            simulated: claims.simulated,
        }
    }
}

impl Guest for SensorFilter {
    fn describe() -> Manifest {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        Manifest {
            inputs: names(filter::INPUTS),
            outputs: names(filter::OUTPUTS),
            requests: names(filter::REQUESTS),
            handlers: names(filter::HANDLERS),
            entries: names(filter::ENTRIES),
        }
    }

    fn on_input(input: String, data: Vec<u8>) -> Result<(), String> {
        filter::on_input(&mut NodeHost, &input, &data)
    }

    fn on_request(handler: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        filter::on_request(&mut NodeHost, &handler, &data)
    }

    fn call_entry(entry: String, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        filter::call_entry(&mut NodeHost, &entry, &arg)
    }
}

export!(SensorFilter);
