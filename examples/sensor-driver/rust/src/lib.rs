//! The sensor-driver example module in Rust: a `teemesh:module/enclave-module` component that
//! emits a reading of a simulated device on every tick.
//!
//! This file only binds the WIT world to `driver`; the C twin in `../c/` behaves identically.

mod driver;
// The sensor filter's JSON dialect, shared rather than copied so that the driver writes numbers
// exactly as the filter (and both C twins) do.
#[path = "../../../sensor-filter/rust/src/json.rs"]
mod json;
#[cfg(test)]
mod transcript;

wit_bindgen::generate!({
    world: "enclave-module",
    path: "../../../wit",
});

use exports::teemesh::module::guest::{Guest, Manifest};
use teemesh::module::host;

struct SensorDriver;

/// The real node, reached through the WIT imports.
struct NodeHost;

impl driver::Host for NodeHost {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
        host::emit_output(output, data)
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
}

impl Guest for SensorDriver {
    fn describe() -> Manifest {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        Manifest {
            inputs: names(driver::INPUTS),
            outputs: names(driver::OUTPUTS),
            requests: names(driver::REQUESTS),
            handlers: names(driver::HANDLERS),
            entries: names(driver::ENTRIES),
        }
    }

    fn on_input(input: String, data: Vec<u8>) -> Result<(), String> {
        driver::on_input(&mut NodeHost, &input, &data)
    }

    fn on_request(handler: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        driver::on_request(&mut NodeHost, &handler, &data)
    }

    fn call_entry(entry: String, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        driver::call_entry(&mut NodeHost, &entry, &arg)
    }
}

export!(SensorDriver);
