//! The actuator example module in Rust: a `teemesh:module/enclave-module` component that acts on
//! the sensor filter's alerts, which the node delivers only from an authenticated connection.
//!
//! This file only binds the WIT world to `actuator`; the C twin in `../c/` behaves identically.

mod actuator;
// The sensor filter's JSON dialect, shared rather than copied so that the actuator reads alerts
// exactly as the filter writes them (and as both C twins do).
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
use teemesh::module::types::Level;

struct Actuator;

/// The real node, reached through the WIT imports.
struct NodeHost;

impl actuator::Host for NodeHost {
    fn log_warn(&mut self, message: &str) {
        host::log(Level::Warn, message);
    }
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>> {
        host::state_get(key)
    }
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        host::state_set(key, value)
    }
}

impl Guest for Actuator {
    fn describe() -> Manifest {
        let names = |list: &[&str]| list.iter().map(|name| name.to_string()).collect();
        Manifest {
            inputs: names(actuator::INPUTS),
            outputs: names(actuator::OUTPUTS),
            requests: names(actuator::REQUESTS),
            handlers: names(actuator::HANDLERS),
            entries: names(actuator::ENTRIES),
        }
    }

    fn on_input(input: String, data: Vec<u8>) -> Result<(), String> {
        actuator::on_input(&mut NodeHost, &input, &data)
    }

    fn on_request(handler: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        actuator::on_request(&mut NodeHost, &handler, &data)
    }

    fn call_entry(entry: String, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        actuator::call_entry(&mut NodeHost, &entry, &arg)
    }
}

export!(Actuator);
