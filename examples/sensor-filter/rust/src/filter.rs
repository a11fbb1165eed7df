//! The sensor filter itself, written against a small `Host` trait so that the same code runs in
//! the component (over the WIT imports) and in the native transcript test (over a mock).
//!
//! All state lives in the node's sealed state, none in memory, so a restarted module carries on.
#![forbid(unsafe_code)]

use crate::json::{self, Value};

/// What the filter needs from the node; mirrors the WIT `host` interface.
pub(crate) trait Host {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String>;
    fn log_warn(&mut self, message: &str);
    fn now_nanos(&mut self) -> u64;
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>>;
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String>;
    fn state_delete(&mut self, key: &str);
    fn claims(&mut self) -> Claims;
}

/// The module's attestation claims, as the host reports them.
pub(crate) struct Claims {
    pub(crate) name: String,
    pub(crate) measurement: String,
    pub(crate) platform: String,
    pub(crate) simulated: bool,
}

pub(crate) const INPUTS: &[&str] = &["reading"];
pub(crate) const OUTPUTS: &[&str] = &["alert"];
pub(crate) const REQUESTS: &[&str] = &[];
pub(crate) const HANDLERS: &[&str] = &["latest"];
pub(crate) const ENTRIES: &[&str] = &["configure", "stats"];

// Sealed-state keys. Sensor names are restricted to a charset without ':' collisions mattering,
// since every per-sensor key carries the `above:` prefix that no fixed key has.
const KEY_CONFIG: &str = "config";
const KEY_READINGS: &str = "readings";
const KEY_ALERTS: &str = "alerts";
const KEY_LATEST: &str = "latest";
const KEY_ABOVE_PREFIX: &str = "above:";

const MAX_SENSOR_LEN: usize = 64;

pub(crate) fn on_input(host: &mut impl Host, input: &str, data: &[u8]) -> Result<(), String> {
    match input {
        "reading" => on_reading(host, data).map_err(|e| format!("reading: {e}")),
        _ => Err(format!("unknown input {}", json::quoted(input))),
    }
}

pub(crate) fn on_request(
    host: &mut impl Host,
    handler: &str,
    data: &[u8],
) -> Result<Vec<u8>, String> {
    match handler {
        "latest" => latest(host, data).map_err(|e| format!("latest: {e}")),
        _ => Err(format!("unknown handler {}", json::quoted(handler))),
    }
}

pub(crate) fn call_entry(host: &mut impl Host, entry: &str, arg: &[u8]) -> Result<Vec<u8>, String> {
    match entry {
        "configure" => configure(host, arg).map_err(|e| format!("configure: {e}")),
        "stats" => stats(host, arg).map_err(|e| format!("stats: {e}")),
        _ => Err(format!("unknown entry {}", json::quoted(entry))),
    }
}

/// Counts the reading, remembers it as the latest, and emits an alert when the sensor's value
/// goes from at-or-below the threshold to above it (edge-triggered, per sensor).
fn on_reading(host: &mut impl Host, data: &[u8]) -> Result<(), String> {
    let (sensor, value) = parse_reading(data)?;
    // Everything that can fail on corrupt state is read before anything is written.
    let threshold = load_threshold(host)?;
    let readings = load_counter(host, KEY_READINGS)? + 1;
    let now = host.now_nanos();

    store(host, KEY_READINGS, &readings.to_le_bytes())?;
    let mut latest = String::new();
    latest.push_str("{\"sensor\":");
    json::write_string(&mut latest, &sensor);
    latest.push_str(",\"value\":");
    json::write_number(&mut latest, value);
    latest.push_str(&format!(",\"time_ns\":{now}}}"));
    store(host, KEY_LATEST, latest.as_bytes())?;

    let Some(threshold) = threshold else {
        return Ok(());
    };
    let above_key = format!("{KEY_ABOVE_PREFIX}{sensor}");
    let was_above = host.state_get(&above_key).is_some();
    if value <= threshold {
        if was_above {
            host.state_delete(&above_key);
        }
        return Ok(());
    }
    if was_above {
        return Ok(());
    }

    let count = load_counter(host, KEY_ALERTS)? + 1;
    let mut alert = String::new();
    alert.push_str("{\"sensor\":");
    json::write_string(&mut alert, &sensor);
    alert.push_str(",\"value\":");
    json::write_number(&mut alert, value);
    alert.push_str(",\"threshold\":");
    json::write_number(&mut alert, threshold);
    alert.push_str(&format!(",\"count\":{count},\"time_ns\":{now}}}"));
    host.emit_output("alert", alert.as_bytes())
        .map_err(|e| format!("emitting alert: {e}"))?;
    store(host, KEY_ALERTS, &count.to_le_bytes())?;
    store(host, &above_key, b"1")?;

    let mut message = format!("sensor {sensor}: value ");
    json::write_number(&mut message, value);
    message.push_str(" crossed threshold ");
    json::write_number(&mut message, threshold);
    message.push_str(&format!(" (alert {count})"));
    host.log_warn(&message);
    Ok(())
}

/// `{"threshold": number}` is stored as the configuration; the stored bytes are returned.
fn configure(host: &mut impl Host, arg: &[u8]) -> Result<Vec<u8>, String> {
    let fields = json::parse_object(arg)?;
    let mut threshold = None;
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("threshold", _) if threshold.is_some() => return Err(duplicate(&key)),
            ("threshold", Value::Num(number)) => threshold = Some(number),
            ("threshold", Value::Str(_)) => return Err(must_be(&key, "a number")),
            _ => return Err(unknown(&key)),
        }
    }
    let threshold = threshold.ok_or_else(|| missing("threshold"))?;
    let config = config_json(threshold);
    store(host, KEY_CONFIG, config.as_bytes())?;
    Ok(config.into_bytes())
}

/// Readings seen, alerts emitted, the threshold in force and who is counting (the claims).
fn stats(host: &mut impl Host, arg: &[u8]) -> Result<Vec<u8>, String> {
    expect_no_argument(arg)?;
    let readings = load_counter(host, KEY_READINGS)?;
    let alerts = load_counter(host, KEY_ALERTS)?;
    let threshold = load_threshold(host)?;
    let claims = host.claims();
    let mut out = format!("{{\"readings\":{readings},\"alerts\":{alerts},\"threshold\":");
    match threshold {
        Some(threshold) => json::write_number(&mut out, threshold),
        None => out.push_str("null"),
    }
    out.push_str(",\"claims\":{\"name\":");
    json::write_string(&mut out, &claims.name);
    out.push_str(",\"measurement\":");
    json::write_string(&mut out, &claims.measurement);
    out.push_str(",\"platform\":");
    json::write_string(&mut out, &claims.platform);
    out.push_str(if claims.simulated {
        ",\"simulated\":true}}"
    } else {
        ",\"simulated\":false}}"
    });
    Ok(out.into_bytes())
}

/// The latest reading with the time it arrived, or `null` before the first one.
fn latest(host: &mut impl Host, data: &[u8]) -> Result<Vec<u8>, String> {
    expect_no_argument(data)?;
    Ok(host
        .state_get(KEY_LATEST)
        .unwrap_or_else(|| b"null".to_vec()))
}

fn parse_reading(data: &[u8]) -> Result<(String, f64), String> {
    let mut sensor = None;
    let mut value = None;
    for (key, field) in json::parse_object(data)? {
        match (key.as_str(), field) {
            ("sensor", _) if sensor.is_some() => return Err(duplicate(&key)),
            ("sensor", Value::Str(text)) => sensor = Some(text),
            ("sensor", Value::Num(_)) => return Err(must_be(&key, "a string")),
            ("value", _) if value.is_some() => return Err(duplicate(&key)),
            ("value", Value::Num(number)) => value = Some(number),
            ("value", Value::Str(_)) => return Err(must_be(&key, "a number")),
            _ => return Err(unknown(&key)),
        }
    }
    let sensor = sensor.ok_or_else(|| missing("sensor"))?;
    let value = value.ok_or_else(|| missing("value"))?;
    let valid_name =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/');
    if sensor.is_empty() || sensor.len() > MAX_SENSOR_LEN || !sensor.bytes().all(valid_name) {
        return Err(must_be(
            "sensor",
            "1 to 64 characters from A-Z a-z 0-9 - _ . : /",
        ));
    }
    Ok((sensor, value))
}

/// Entries and handlers without parameters take an empty payload or `{}`.
fn expect_no_argument(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Ok(());
    }
    match json::parse_object(data)?.first() {
        Some((key, _)) => Err(unknown(key)),
        None => Ok(()),
    }
}

fn config_json(threshold: f64) -> String {
    let mut out = String::from("{\"threshold\":");
    json::write_number(&mut out, threshold);
    out.push('}');
    out
}

fn load_threshold(host: &mut impl Host) -> Result<Option<f64>, String> {
    let Some(bytes) = host.state_get(KEY_CONFIG) else {
        return Ok(None);
    };
    match json::parse_object(&bytes).as_deref() {
        Ok([(key, Value::Num(threshold))]) if key == "threshold" => Ok(Some(*threshold)),
        _ => Err("sealed state: corrupt \"config\"".to_string()),
    }
}

fn load_counter(host: &mut impl Host, key: &str) -> Result<u64, String> {
    match host.state_get(key) {
        None => Ok(0),
        Some(bytes) => match <[u8; 8]>::try_from(bytes.as_slice()) {
            Ok(le) => Ok(u64::from_le_bytes(le)),
            Err(_) => Err(format!("sealed state: corrupt {}", json::quoted(key))),
        },
    }
}

fn store(host: &mut impl Host, key: &str, value: &[u8]) -> Result<(), String> {
    host.state_set(key, value)
        .map_err(|e| format!("sealed state: {e}"))
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
