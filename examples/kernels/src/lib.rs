//! Compute kernels as an enclave module, for `teemesh bench runtime`: entries `sha256` and `sort`
//! run the code of `kernels.rs` (which the benchmark also compiles natively), handlers `echo` and
//! `noop` measure the cost of a call.
//!
//! Entries: `sha256` `{"mib": N}` → `{"sha256":"<hex>","bytes":…}`;
//! `sort` `{"n": N}` → `{"checksum":"<16 hex digits>","n":…}`.
//! Handlers: `echo` returns its payload, `noop` returns nothing. No inputs, outputs or requests.
//! (No `forbid(unsafe_code)` here: the glue `wit_bindgen` generates is unsafe; `kernels.rs`
//! forbids it.)

wit_bindgen::generate!({
    world: "enclave-module",
    path: "../../wit",
});

mod kernels;

use std::fmt::Write as _;

use exports::teemesh::module::guest::{Guest, Manifest};

/// Largest `mib` accepted by `sha256` (the fuel and deadline per call end it long before).
const MAX_MIB: u64 = 1 << 20;
/// Largest `n` accepted by `sort` (the memory limit usually refuses far fewer).
const MAX_VALUES: u64 = 1 << 30;

struct Kernels;

impl Guest for Kernels {
    fn describe() -> Manifest {
        Manifest {
            inputs: Vec::new(),
            outputs: Vec::new(),
            requests: Vec::new(),
            handlers: vec!["echo".into(), "noop".into()],
            entries: vec!["sha256".into(), "sort".into()],
        }
    }

    fn on_input(input: String, _data: Vec<u8>) -> Result<(), String> {
        Err(format!("unknown input {input:?}"))
    }

    fn on_request(handler: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        match handler.as_str() {
            "echo" => Ok(data),
            "noop" => Ok(Vec::new()),
            _ => Err(format!("unknown handler {handler:?}")),
        }
    }

    fn call_entry(entry: String, arg: Vec<u8>) -> Result<Vec<u8>, String> {
        let out = match entry.as_str() {
            "sha256" => {
                let mib = single_field(&arg, "mib", MAX_MIB).map_err(|e| format!("sha256: {e}"))?;
                let bytes = mib << 20;
                let digest = kernels::sha256_of_generated(bytes);
                format!(r#"{{"sha256":"{}","bytes":{bytes}}}"#, hex(&digest))
            }
            "sort" => {
                let n = single_field(&arg, "n", MAX_VALUES).map_err(|e| format!("sort: {e}"))?;
                let n = usize::try_from(n).map_err(|_| format!("sort: n = {n} is too large"))?;
                let checksum = kernels::sort_checksum(n).map_err(|e| format!("sort: {e}"))?;
                format!(r#"{{"checksum":"{checksum:016x}","n":{n}}}"#)
            }
            _ => return Err(format!("unknown entry {entry:?}")),
        };
        Ok(out.into_bytes())
    }
}

/// The value of a JSON object with exactly one field, `key`, a non-negative integer up to `max`:
/// `{"mib": 64}`. Anything else is an error saying what was expected.
fn single_field(arg: &[u8], key: &str, max: u64) -> Result<u64, String> {
    let expected = || format!("expected {{\"{key}\": N}} with 0 ≤ N ≤ {max}");
    let text = std::str::from_utf8(arg).map_err(|_| expected())?;
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(expected)?;
    let (name, value) = inner.split_once(':').ok_or_else(expected)?;
    if name.trim() != format!("\"{key}\"") {
        return Err(expected());
    }
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(expected());
    }
    match value.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(expected()),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

export!(Kernels);
