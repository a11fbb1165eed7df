//! The sensor driver itself, written against a small `Host` trait so that the same code runs in
//! the component (over the WIT imports) and in the native transcript test (over a mock).
//!
//! The device is simulated: a sawtooth `20 + step % 16` that crosses the filter's threshold of 30
//! every 16 samples. All state lives in the node's sealed state, so a restarted driver carries on.
#![forbid(unsafe_code)]

use crate::json::{self, Value};

/// What the driver needs from the node; a subset of the WIT `host` interface.
pub(crate) trait Host {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String>;
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>>;
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    fn state_delete(&mut self, key: &str);
}

pub(crate) const INPUTS: &[&str] = &["tick"];
pub(crate) const OUTPUTS: &[&str] = &["reading"];
pub(crate) const REQUESTS: &[&str] = &[];
pub(crate) const HANDLERS: &[&str] = &[];
pub(crate) const ENTRIES: &[&str] = &["set", "stats"];

// Sealed-state keys: the sawtooth position and the tick count (u64 little-endian), and a pending
// injected reading (the f64's IEEE 754 bits, little-endian).
const KEY_STEP: &str = "step";
const KEY_TICKS: &str = "ticks";
const KEY_OVERRIDE: &str = "override";

/// The sensor a tick without a `sensor` field reads.
const DEFAULT_SENSOR: &str = "t1";
const MAX_SENSOR_LEN: usize = 64;
/// The sawtooth: `SAWTOOTH_BASE + step % SAWTOOTH_PERIOD`, i.e. 20 to 35.
const SAWTOOTH_BASE: u64 = 20;
const SAWTOOTH_PERIOD: u64 = 16;

pub(crate) fn on_input(host: &mut impl Host, input: &str, data: &[u8]) -> Result<(), String> {
    match input {
        "tick" => tick(host, data).map_err(|e| format!("tick: {e}")),
        _ => Err(format!("unknown input {}", json::quoted(input))),
    }
}

pub(crate) fn on_request(
    _host: &mut impl Host,
    handler: &str,
    _data: &[u8],
) -> Result<Vec<u8>, String> {
    Err(format!("unknown handler {}", json::quoted(handler)))
}

pub(crate) fn call_entry(host: &mut impl Host, entry: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
    match entry {
        "set" => set(host, arg).map_err(|e| format!("set: {e}")),
        "stats" => stats(host, arg).map_err(|e| format!("stats: {e}")),
        _ => Err(format!("unknown entry {}", json::quoted(entry))),
    }
}

/// Samples the device and emits `{"sensor":…,"value":…}` on `reading`. An injected value (entry
/// `set`) is reported instead of the sawtooth, once, and does not advance it.
fn tick(host: &mut impl Host, data: &[u8]) -> Result<(), String> {
    let sensor = parse_tick(data)?;
    // Everything that can fail on corrupt state is read before anything is written, and nothing
    // is written unless the node took the reading: a refused tick leaves no trace.
    let step = load_counter(host, KEY_STEP)?;
    let ticks = load_counter(host, KEY_TICKS)?;
    let injected = load_override(host)?;
    let value = match injected {
        Some(value) => value,
        None => (SAWTOOTH_BASE + step % SAWTOOTH_PERIOD) as f64,
    };

    let mut reading = String::from("{\"sensor\":");
    json::write_string(&mut reading, &sensor);
    reading.push_str(",\"value\":");
    json::write_number(&mut reading, value);
    reading.push('}');
    host.emit_output("reading", reading.as_bytes())
        .map_err(|e| format!("emitting reading: {e}"))?;

    store(host, KEY_TICKS, &ticks.wrapping_add(1).to_le_bytes())?;
    if injected.is_some() {
        host.state_delete(KEY_OVERRIDE);
    } else {
        store(host, KEY_STEP, &step.wrapping_add(1).to_le_bytes())?;
    }
    Ok(())
}

/// `{"value": number}`: the next tick reports this value instead of the sawtooth.
fn set(host: &mut impl Host, arg: &[u8]) -> Result<Vec<u8>, String> {
    let mut value = None;
    for (key, field) in json::parse_object(arg)? {
        match (key.as_str(), field) {
            ("value", _) if value.is_some() => return Err(duplicate(&key)),
            ("value", Value::Num(number)) => value = Some(number),
            ("value", Value::Str(_)) => return Err(must_be(&key, "a number")),
            _ => return Err(unknown(&key)),
        }
    }
    let value = value.ok_or_else(|| missing("value"))?;
    store(host, KEY_OVERRIDE, &value.to_bits().to_le_bytes())?;
    let mut out = String::from("{\"next\":");
    json::write_number(&mut out, value);
    out.push('}');
    Ok(out.into_bytes())
}

/// Ticks answered so far and the sawtooth's position.
fn stats(host: &mut impl Host, arg: &[u8]) -> Result<Vec<u8>, String> {
    expect_no_argument(arg)?;
    let ticks = load_counter(host, KEY_TICKS)?;
    let step = load_counter(host, KEY_STEP)?;
    Ok(format!("{{\"ticks\":{ticks},\"step\":{step}}}").into_bytes())
}

/// An empty payload, `{}` or `{"sensor": name}`; the name defaults to `t1`.
fn parse_tick(data: &[u8]) -> Result<String, String> {
    if data.is_empty() {
        return Ok(DEFAULT_SENSOR.to_string());
    }
    let mut sensor = None;
    for (key, field) in json::parse_object(data)? {
        match (key.as_str(), field) {
            ("sensor", _) if sensor.is_some() => return Err(duplicate(&key)),
            ("sensor", Value::Str(text)) => sensor = Some(text),
            ("sensor", Value::Num(_)) => return Err(must_be(&key, "a string")),
            _ => return Err(unknown(&key)),
        }
    }
    let sensor = sensor.unwrap_or_else(|| DEFAULT_SENSOR.to_string());
    let valid_name =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/');
    if sensor.is_empty() || sensor.len() > MAX_SENSOR_LEN || !sensor.bytes().all(valid_name) {
        return Err(must_be(
            "sensor",
            "1 to 64 characters from A-Z a-z 0-9 - _ . : /",
        ));
    }
    Ok(sensor)
}

/// Entries without parameters take an empty payload or `{}`.
fn expect_no_argument(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    match json::parse_object(data)?.first() {
        Some((key, _)) => Err(unknown(key)),
        None => Ok(()),
    }
}

fn load_counter(host: &mut impl Host, key: &str) -> Result<u64, String> {
    match host.state_get(key) {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(le) => Ok(u64::from_le_bytes(le)),
            Err(_) => Err(corrupt(key)),
        },
    }
}

/// The pending injected value; `set` only stores finite numbers, so anything else is corrupt.
fn load_override(host: &mut impl Host) -> Result<Option<f64>, String> {
    let Some(bytes) = host.state_get(KEY_OVERRIDE) else {
        return Ok(None);
    };
    match <[u8; 8]>::try_from(bytes.as_slice()) {
        Ok(le) if f64::from_bits(u64::from_le_bytes(le)).is_finite() => {
            Ok(Some(f64::from_bits(u64::from_le_bytes(le))))
        }
        _ => Err(corrupt(KEY_OVERRIDE)),
    }
}

fn store(host: &mut impl Host, key: &str, value: &[u8]) -> Result<(), String> {
    host.state_set(key, value)
        .map_err(|e| format!("sealed state: {e}"))
}

fn corrupt(key: &str) -> String {
    format!("sealed state: corrupt {}", json::quoted(key))
}

fn missing(field: &str) -> String {
    format!("missing field {}", json::quoted(field))
}

fn duplicate(field: &str) -> String {
    format!("duplicate field {}", json::quoted(field))
}

fn unknown(field: &str) -> String {
    format!("unknown field {}", json::quoted(field))
}

fn must_be(field: &str, what: &str) -> String {
    format!("field {} must be {what}", json::quoted(field))
}
