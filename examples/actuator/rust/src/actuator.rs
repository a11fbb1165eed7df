//! The actuator itself, written against a small `Host` trait so that the same code runs in the
//! component (over the WIT imports) and in the native transcript test (over a mock).
//!
//! It trusts the node, not the payload: the node feeds `alert` only from an authenticated
//! connection, so every alert that gets here is authentic, yet its fields are still checked.
#![forbid(unsafe_code)]

use crate::json::{self, Value};

/// What the actuator needs from the node; a subset of the WIT `host` interface.
pub(crate) trait Host {
    fn log_warn(&mut self, message: &str);
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>>;
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
}

pub(crate) const INPUTS: &[&str] = &["alert"];
pub(crate) const OUTPUTS: &[&str] = &[];
pub(crate) const REQUESTS: &[&str] = &[];
pub(crate) const HANDLERS: &[&str] = &[];
pub(crate) const ENTRIES: &[&str] = &["state"];

// Sealed-state keys: the number of actions (u64 little-endian) and the last alert acted on
// (`{"sensor":…,"value":…}`).
const KEY_ACTIONS: &str = "actions";
const KEY_LAST: &str = "last";

const MAX_SENSOR_LEN: usize = 64;
/// 2^64, the first number above the range of `count` and `time_ns`.
const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;

/// An alert as the sensor filter emits it.
struct Alert {
    sensor: String,
    value: f64,
    threshold: f64,
}

pub(crate) fn on_input(host: &mut impl Host, input: &str, data: &[u8]) -> Result<(), String> {
    match input {
        "alert" => on_alert(host, data).map_err(|e| format!("alert: {e}")),
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
        "state" => state(host, arg).map_err(|e| format!("state: {e}")),
        _ => Err(format!("unknown entry {}", json::quoted(entry))),
    }
}

/// Acts on a valid alert: counts the action, remembers the alert's sensor and value, and logs.
fn on_alert(host: &mut impl Host, data: &[u8]) -> Result<(), String> {
    let alert = parse_alert(data)?;
    // Corrupt state is reported before anything is written.
    let actions = load_counter(host, KEY_ACTIONS)?.wrapping_add(1);
    store(host, KEY_ACTIONS, &actions.to_le_bytes())?;
    store(
        host,
        KEY_LAST,
        last_json(&alert.sensor, alert.value).as_bytes(),
    )?;

    let mut message = format!("actuating: {} value ", alert.sensor);
    json::write_number(&mut message, alert.value);
    message.push_str(" above threshold ");
    json::write_number(&mut message, alert.threshold);
    host.log_warn(&message);
    Ok(())
}

/// How often the actuator acted and on what, last.
fn state(host: &mut impl Host, arg: &[u8]) -> Result<Vec<u8>, String> {
    expect_no_argument(arg)?;
    let actions = load_counter(host, KEY_ACTIONS)?;
    let last = match host.state_get(KEY_LAST) {
        None => "null".to_string(),
        Some(bytes) => match json::parse_object(&bytes).as_deref() {
            Ok(
                [
                    (sensor_key, Value::Str(sensor)),
                    (value_key, Value::Num(value)),
                ],
            ) if sensor_key == "sensor" && value_key == "value" => last_json(sensor, *value),
            _ => return Err(corrupt(KEY_LAST)),
        },
    };
    Ok(format!("{{\"actions\":{actions},\"last\":{last}}}").into_bytes())
}

/// `{"sensor":…,"value":…,"threshold":…,"count":…,"time_ns":…}`, each field exactly once.
fn parse_alert(data: &[u8]) -> Result<Alert, String> {
    let (mut sensor, mut value, mut threshold, mut count, mut time_ns) =
        (None, None, None, None, None);
    for (key, field) in json::parse_object(data)? {
        match (key.as_str(), field) {
            ("sensor", _) if sensor.is_some() => return Err(duplicate(&key)),
            ("sensor", Value::Str(text)) => sensor = Some(text),
            ("sensor", Value::Num(_)) => return Err(must_be(&key, "a string")),
            ("value", field) => put_number(&mut value, &key, field)?,
            ("threshold", field) => put_number(&mut threshold, &key, field)?,
            ("count", field) => put_integer(&mut count, &key, field)?,
            ("time_ns", field) => put_integer(&mut time_ns, &key, field)?,
            _ => return Err(unknown(&key)),
        }
    }
    let sensor = sensor.ok_or_else(|| missing("sensor"))?;
    let value = value.ok_or_else(|| missing("value"))?;
    let threshold = threshold.ok_or_else(|| missing("threshold"))?;
    count.ok_or_else(|| missing("count"))?;
    time_ns.ok_or_else(|| missing("time_ns"))?;
    let valid_name =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/');
    if sensor.is_empty() || sensor.len() > MAX_SENSOR_LEN || !sensor.bytes().all(valid_name) {
        return Err(must_be(
            "sensor",
            "1 to 64 characters from A-Z a-z 0-9 - _ . : /",
        ));
    }
    // The filter alerts only above the threshold; anything else is not an alert to act on.
    if value <= threshold {
        let mut message = String::from("value ");
        json::write_number(&mut message, value);
        message.push_str(" is not above threshold ");
        json::write_number(&mut message, threshold);
        return Err(message);
    }
    Ok(Alert {
        sensor,
        value,
        threshold,
    })
}

fn put_number(slot: &mut Option<f64>, key: &str, field: Value) -> Result<(), String> {
    match field {
        _ if slot.is_some() => Err(duplicate(key)),
        Value::Num(number) => {
            *slot = Some(number);
            Ok(())
        }
        Value::Str(_) => Err(must_be(key, "a number")),
    }
}

/// A whole number in the range of u64: the filter writes `count` and `time_ns` from u64s.
fn put_integer(slot: &mut Option<f64>, key: &str, field: Value) -> Result<(), String> {
    match field {
        _ if slot.is_some() => Err(duplicate(key)),
        Value::Num(number) if (0.0..U64_LIMIT).contains(&number) && number.trunc() == number => {
            *slot = Some(number);
            Ok(())
        }
        _ => Err(must_be(key, "a non-negative integer")),
    }
}

fn last_json(sensor: &str, value: f64) -> String {
    let mut out = String::from("{\"sensor\":");
    json::write_string(&mut out, sensor);
    out.push_str(",\"value\":");
    json::write_number(&mut out, value);
    out.push('}');
    out
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
