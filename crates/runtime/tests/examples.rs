#![allow(clippy::unwrap_used)]
//! The committed example modules (`examples/`, built from Rust and C source by
//! `scripts/build-examples.sh`, which CI reruns with `--check`) on the real runtime:
//!
//! - both sensor filters, both sensor drivers and both actuators replay their pair's shared
//!   transcript (`examples/*/testdata/transcript.txt`) call by call — inputs, handlers, entries,
//!   emitted outputs, logs, sealed state — exactly as their native tests do over a mock host;
//! - ticks of a sensor driver, passed through a filter to an actuator, make it act once per
//!   crossing of the threshold; the relay passes bytes through unchanged;
//! - the misbehaving module's loop, memory hog and panic each fail their call with a distinct
//!   error while a sensor filter on the same runtime keeps answering.

mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use runtime::{
    EventSink, HostClock, Limits, LoadedModule, NodeSecret, PortKind, Runtime, RuntimeConfig,
    RuntimeError, SealedStore,
};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::{Layer, Registry};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
/// The claims measurement the transcript records (its mock host's), replaced by the real one.
const MOCK_MEASUREMENT: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const SECRET: [u8; 32] = [7; 32];

fn example(path: &str) -> Vec<u8> {
    std::fs::read(Path::new(EXAMPLES).join(path)).unwrap()
}

/// The measurement `examples/SHA256SUMS` lists for `path`.
fn listed_measurement(path: &str) -> String {
    let sums = std::fs::read_to_string(Path::new(EXAMPLES).join("SHA256SUMS")).unwrap();
    sums.lines()
        .find_map(|line| {
            let (hash, file) = line.split_once("  ")?;
            (file == path).then(|| hash.to_owned())
        })
        .unwrap_or_else(|| panic!("{path} is not in examples/SHA256SUMS"))
}

/// The transcript's clock: starts at 1.7e18 ns and ticks 1 µs per read.
struct TickingClock(AtomicU64);

impl HostClock for TickingClock {
    fn now_nanos(&self) -> u64 {
        self.0.fetch_add(1_000, Ordering::SeqCst) + 1_000
    }
}

/// Records emitted events as transcript lines, or fails them when told to.
#[derive(Default)]
struct TranscriptSink {
    failure: Mutex<Option<String>>,
    lines: Arc<Mutex<String>>,
}

impl EventSink for TranscriptSink {
    fn emit(&self, _module: &str, output: &str, data: &[u8]) -> Result<(), String> {
        if let Some(failure) = self.failure.lock().unwrap().clone() {
            return Err(failure);
        }
        let mut lines = self.lines.lock().unwrap();
        let _ = writeln!(lines, "emit {output} {}", String::from_utf8_lossy(data));
        Ok(())
    }
}

/// Records the `log` host calls (events of `runtime::host`) as transcript lines.
struct LogCapture(Arc<Mutex<String>>);

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.0);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for LogCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if event.metadata().target() != "runtime::host" {
            return;
        }
        let mut message = Message::default();
        event.record(&mut message);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let _ = writeln!(self.0.lock().unwrap(), "log {level} {}", message.0);
    }
}

struct Replay {
    runtime: Runtime,
    sink: Arc<TranscriptSink>,
    state_dir: tempfile::TempDir,
    name: &'static str,
    bytes: Vec<u8>,
}

impl Replay {
    fn new(name: &'static str, bytes: Vec<u8>) -> Self {
        let state_dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(TranscriptSink::default());
        let clock = Arc::new(TickingClock(AtomicU64::new(1_700_000_000_000_000_000)));
        let config = RuntimeConfig::new(common::identity())
            .with_sealed_state(state_dir.path(), NodeSecret::from_bytes(SECRET))
            .with_sink(sink.clone())
            .with_clock(clock);
        Self {
            runtime: Runtime::new(config).unwrap(),
            sink,
            state_dir,
            name,
            bytes,
        }
    }

    fn load(&self) -> LoadedModule {
        self.runtime.load(self.name, &self.bytes).unwrap()
    }

    /// Runs every call of `transcript` and writes down what happened in the transcript's format.
    fn run(&self, transcript: &str, logs: &Arc<Mutex<String>>) -> String {
        let mut module = Some(self.load());
        let mut out = String::new();
        for line in transcript.lines() {
            let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
            let (name, payload) = rest.split_once(' ').unwrap_or((rest, ""));
            let loaded = module.as_mut().unwrap();
            let result = match verb {
                "emit" | "log" | "ok" | "err" => continue,
                "input" => loaded
                    .deliver_input(name, payload.as_bytes())
                    .map(|()| Vec::new()),
                "request" => loaded.handle_request(name, payload.as_bytes()),
                "entry" => loaded.call_entry(name, payload.as_bytes()),
                "host" => {
                    match name {
                        "emit-fails" => *self.sink.failure.lock().unwrap() = Some(payload.into()),
                        "emit-ok" => *self.sink.failure.lock().unwrap() = None,
                        "state-set" => {
                            // Write behind the module's back, as a corrupted disk would: unload it,
                            // change the sealed file, load it again.
                            let measurement = loaded.measurement();
                            drop(module.take());
                            let (key, value) = payload.split_once(' ').unwrap_or((payload, ""));
                            let secret = NodeSecret::from_bytes(SECRET);
                            let mut store =
                                SealedStore::open(self.state_dir.path(), &secret, measurement)
                                    .unwrap();
                            store.set(key, value.as_bytes()).unwrap();
                            drop(store);
                            module = Some(self.load());
                        }
                        _ => panic!("unknown host directive: {line}"),
                    }
                    let _ = writeln!(out, "{line}");
                    continue;
                }
                _ => {
                    let _ = writeln!(out, "{line}");
                    continue;
                }
            };
            let _ = writeln!(out, "{line}");
            // Host calls in the order they happened: emits and logs of one call are never
            // interleaved in the transcript (a call logs its alert after emitting it).
            out.push_str(&std::mem::take(&mut *self.sink.lines.lock().unwrap()));
            out.push_str(&std::mem::take(&mut *logs.lock().unwrap()));
            match result {
                Ok(data) if data.is_empty() => out.push_str("ok\n"),
                Ok(data) => {
                    let _ = writeln!(out, "ok {}", String::from_utf8_lossy(&data));
                }
                Err(RuntimeError::Guest { message, .. }) => {
                    let _ = writeln!(out, "err {message}");
                }
                // The runtime refuses ports the manifest does not declare before the module
                // sees the call; the native replay gets the module's own refusal. Same words.
                Err(RuntimeError::UnknownPort { kind, name, .. }) => {
                    assert!(matches!(
                        kind,
                        PortKind::Input | PortKind::Handler | PortKind::Entry
                    ));
                    let _ = writeln!(out, "err unknown {kind} {name:?}");
                }
                Err(other) => panic!("{line}: unexpected runtime error: {other}"),
            }
        }
        out
    }
}

/// Replays `examples/MODULE/testdata/transcript.txt` against the component at `path`.
fn replay_transcript(module: &'static str, path: &str) {
    let bytes = example(path);
    let measurement = listed_measurement(path);
    let replay = Replay::new(module, bytes);
    assert_eq!(
        replay.load().measurement().to_hex(),
        measurement,
        "the committed {path} is what examples/SHA256SUMS lists"
    );

    let transcript = std::fs::read_to_string(
        Path::new(EXAMPLES).join(format!("{module}/testdata/transcript.txt")),
    )
    .unwrap();
    let logs = Arc::new(Mutex::new(String::new()));
    let subscriber = Registry::default().with(LogCapture(logs.clone()));
    let actual = tracing::subscriber::with_default(subscriber, || replay.run(&transcript, &logs));

    let expected = transcript.replace(MOCK_MEASUREMENT, &measurement);
    // Only the filter reports its claims; there, the replacement must have happened.
    assert!(
        module != "sensor-filter" || expected.contains(&measurement),
        "the transcript checks claims"
    );
    if actual != expected {
        let first = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .unwrap_or(0);
        panic!(
            "{path} departs from the transcript at line {}:\n  expected: {}\n  actual:   {}",
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

#[test]
fn rust_sensor_filter_follows_the_transcript() {
    replay_transcript("sensor-filter", "sensor-filter/sensor-filter-rust.wasm");
}

#[test]
fn c_sensor_filter_follows_the_transcript() {
    replay_transcript("sensor-filter", "sensor-filter/sensor-filter-c.wasm");
}

#[test]
fn rust_sensor_driver_follows_the_transcript() {
    replay_transcript("sensor-driver", "sensor-driver/sensor-driver-rust.wasm");
}

#[test]
fn c_sensor_driver_follows_the_transcript() {
    replay_transcript("sensor-driver", "sensor-driver/sensor-driver-c.wasm");
}

#[test]
fn rust_actuator_follows_the_transcript() {
    replay_transcript("actuator", "actuator/actuator-rust.wasm");
}

#[test]
fn c_actuator_follows_the_transcript() {
    replay_transcript("actuator", "actuator/actuator-c.wasm");
}

/// Collects what modules emit, for a test to deliver by hand.
#[derive(Default)]
struct Outbox(Mutex<Vec<(String, String, Vec<u8>)>>);

impl EventSink for Outbox {
    fn emit(&self, module: &str, output: &str, data: &[u8]) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((module.to_owned(), output.to_owned(), data.to_vec()));
        Ok(())
    }
}

impl Outbox {
    fn take(&self) -> Vec<(String, String, Vec<u8>)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// The secure-I/O chain of `examples/apps/sensor-alarm*.yaml` on one runtime, delivered by hand:
/// 32 ticks of the sawtooth 20..35 cross the threshold of 30 twice, so the actuator acts twice.
#[test]
fn driver_readings_through_the_filter_make_the_actuator_act_once_per_crossing() {
    for languages in [("rust", "c", "c"), ("c", "rust", "rust")] {
        let outbox = Arc::new(Outbox::default());
        let state_dir = tempfile::tempdir().unwrap();
        let config = RuntimeConfig::new(common::identity())
            .with_sealed_state(state_dir.path(), NodeSecret::from_bytes(SECRET))
            .with_sink(outbox.clone());
        let runtime = Runtime::new(config).unwrap();
        let load = |name: &str, language: &str| {
            runtime
                .load(name, &example(&format!("{name}/{name}-{language}.wasm")))
                .unwrap()
        };
        let mut sensor = load("sensor-driver", languages.0);
        let mut filter = load("sensor-filter", languages.1);
        let mut actuator = load("actuator", languages.2);
        filter
            .call_entry("configure", br#"{"threshold":30}"#)
            .unwrap();
        let mut readings = 0;
        for _ in 0..32 {
            sensor.deliver_input("tick", br#"{"sensor":"t1"}"#).unwrap();
            for (module, output, data) in outbox.take() {
                assert_eq!(
                    (module.as_str(), output.as_str()),
                    ("sensor-driver", "reading")
                );
                readings += 1;
                filter.deliver_input("reading", &data).unwrap();
                for (module, output, data) in outbox.take() {
                    assert_eq!(
                        (module.as_str(), output.as_str()),
                        ("sensor-filter", "alert")
                    );
                    actuator.deliver_input("alert", &data).unwrap();
                }
            }
        }
        assert_eq!(readings, 32);
        let state = actuator.call_entry("state", b"").unwrap();
        assert_eq!(
            String::from_utf8(state).unwrap(),
            r#"{"actions":2,"last":{"sensor":"t1","value":31}}"#,
            "driver, filter, actuator in {languages:?}"
        );
    }
}

#[test]
fn the_relay_passes_bytes_through_unchanged() {
    let outbox = Arc::new(Outbox::default());
    let runtime =
        Runtime::new(RuntimeConfig::new(common::identity()).with_sink(outbox.clone())).unwrap();
    let mut relay = runtime
        .load("relay", &example("relay/relay-rust.wasm"))
        .unwrap();
    assert_eq!(
        relay.measurement().to_hex(),
        listed_measurement("relay/relay-rust.wasm")
    );
    assert_eq!(relay.manifest().ports(PortKind::Input), ["in"]);
    assert_eq!(relay.manifest().ports(PortKind::Output), ["out"]);
    assert_eq!(relay.manifest().ports(PortKind::Entry), ["emit"]);
    let binary: Vec<u8> = (0..=255).collect();
    relay.deliver_input("in", &binary).unwrap();
    assert_eq!(relay.call_entry("emit", b"{\"n\":1}").unwrap(), b"");
    assert_eq!(
        outbox.take(),
        [
            ("relay".to_owned(), "out".to_owned(), binary),
            ("relay".to_owned(), "out".to_owned(), b"{\"n\":1}".to_vec()),
        ]
    );
}

/// The ports an example declares; none of them sends requests.
struct Ports {
    module: &'static str,
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    handlers: &'static [&'static str],
    entries: &'static [&'static str],
}

#[test]
fn both_languages_declare_the_same_ports_and_differ_in_measurement() {
    let runtime = common::runtime();
    let examples = [
        Ports {
            module: "sensor-filter",
            inputs: &["reading"],
            outputs: &["alert"],
            handlers: &["latest"],
            entries: &["configure", "stats"],
        },
        Ports {
            module: "sensor-driver",
            inputs: &["tick"],
            outputs: &["reading"],
            handlers: &[],
            entries: &["set", "stats"],
        },
        Ports {
            module: "actuator",
            inputs: &["alert"],
            outputs: &[],
            handlers: &[],
            entries: &["state"],
        },
    ];
    for expected in examples {
        let module = expected.module;
        let rust = runtime
            .load("m", &example(&format!("{module}/{module}-rust.wasm")))
            .unwrap();
        let c = runtime
            .load("m", &example(&format!("{module}/{module}-c.wasm")))
            .unwrap();
        assert_eq!(rust.manifest(), c.manifest(), "{module}");
        let manifest = rust.manifest();
        assert_eq!(manifest.ports(PortKind::Input), expected.inputs, "{module}");
        assert_eq!(
            manifest.ports(PortKind::Output),
            expected.outputs,
            "{module}"
        );
        assert!(manifest.ports(PortKind::Request).is_empty(), "{module}");
        assert_eq!(
            manifest.ports(PortKind::Handler),
            expected.handlers,
            "{module}"
        );
        assert_eq!(
            manifest.ports(PortKind::Entry),
            expected.entries,
            "{module}"
        );
        assert_ne!(rust.measurement(), c.measurement(), "{module}");
    }
}

/// Asserts the filter still answers on the same runtime.
fn filter_answers(filter: &mut LoadedModule) {
    let stats = filter.call_entry("stats", b"{}").unwrap();
    assert!(
        String::from_utf8(stats)
            .unwrap()
            .starts_with("{\"readings\":")
    );
}

#[test]
fn misbehaving_module_fails_its_calls_and_the_filter_keeps_answering() {
    let limits = Limits {
        fuel_per_call: Some(50_000_000),
        deadline_per_call: Some(Duration::from_secs(5)),
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let runtime = common::runtime_with(limits);
    let mut misbehave = runtime
        .load("misbehave", &example("misbehave/misbehave.wasm"))
        .unwrap();
    assert_eq!(
        misbehave.measurement().to_hex(),
        listed_measurement("misbehave/misbehave.wasm")
    );
    let mut filter = runtime
        .load(
            "sensor-filter",
            &example("sensor-filter/sensor-filter-c.wasm"),
        )
        .unwrap();

    let err = misbehave.call_entry("spin", b"").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::OutOfFuel { function, fuel: 50_000_000, .. } if function == "call-entry"),
        "{err}"
    );
    filter_answers(&mut filter);
    misbehave.restart().unwrap();

    // `grow` allocates with `try_reserve`, so the refused growth reaches it as an allocation
    // failure it reports (a guest that aborts instead gets `MemoryLimit`: limits_and_errors.rs).
    let err = misbehave.call_entry("grow", b"").unwrap_err();
    assert!(
        matches!(&err, RuntimeError::Guest { message, .. } if message.starts_with("out of memory after")),
        "{err}"
    );
    filter_answers(&mut filter);
    misbehave.restart().unwrap();

    let err = misbehave.call_entry("trap", b"").unwrap_err();
    assert!(matches!(&err, RuntimeError::Trap { .. }), "{err}");
    let err = misbehave.call_entry("trap", b"").unwrap_err();
    assert!(matches!(&err, RuntimeError::Poisoned { .. }), "{err}");
    filter_answers(&mut filter);

    let err = misbehave.call_entry("dance", b"").unwrap_err();
    assert!(matches!(&err, RuntimeError::UnknownPort { .. }), "{err}");
}

#[test]
fn sealed_configuration_survives_a_restart_and_not_a_rebuild_in_another_language() {
    let dir = tempfile::tempdir().unwrap();
    {
        let runtime = common::runtime_with_state(dir.path(), SECRET);
        let mut rust = runtime
            .load("f", &example("sensor-filter/sensor-filter-rust.wasm"))
            .unwrap();
        rust.call_entry("configure", br#"{"threshold":12.5}"#)
            .unwrap();
    }
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let mut rust = runtime
        .load("f", &example("sensor-filter/sensor-filter-rust.wasm"))
        .unwrap();
    let stats = String::from_utf8(rust.call_entry("stats", b"").unwrap()).unwrap();
    assert!(stats.contains("\"threshold\":12.5"), "{stats}");

    // Same ports, same behaviour, other bytes: another measurement, so another sealed store.
    let mut c = runtime
        .load("f", &example("sensor-filter/sensor-filter-c.wasm"))
        .unwrap();
    let stats = String::from_utf8(c.call_entry("stats", b"").unwrap()).unwrap();
    assert!(stats.contains("\"threshold\":null"), "{stats}");
}
