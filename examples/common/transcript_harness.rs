//! The replay half of every example's transcript test: a mock node and the loop that replays
//! `../testdata/transcript.txt` through a module and checks it does exactly what the file records.
//!
//! Each example crate includes this file with `#[path]` under `#[cfg(test)]` (each is its own
//! workspace, so a shared crate would be one more thing to vendor) and keeps only what is its own:
//! its `Host` trait impl for [`MockHost`] and the [`Dispatch`] from a call to its entry points.
//! The C twins replay the same files through `transcript.c` next to this file.
//!
//! Set `UPDATE_TRANSCRIPT=1` to rewrite the file from what the Rust module does (then review it).

// Each module's `Host` trait is a different subset of the node, so each uses only some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The transcript of the crate that includes this file: `env!` expands there.
const TRANSCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/transcript.txt");

/// An in-memory node: sealed state in a map, a clock that ticks 1 µs per read, and a log of
/// what the module emitted and logged since the last call. The methods are the node's side of
/// the `Host` traits, which the examples' impls forward to.
pub(crate) struct MockHost {
    state: BTreeMap<String, Vec<u8>>,
    clock: u64,
    emit_error: Option<String>,
    events: String,
}

impl MockHost {
    fn new() -> Self {
        MockHost {
            state: BTreeMap::new(),
            // The start the transcripts' headers promise, so timestamps in them are stable.
            clock: 1_700_000_000_000_000_000,
            emit_error: None,
            events: String::new(),
        }
    }

    pub(crate) fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
        if let Some(error) = &self.emit_error {
            return Err(error.clone());
        }
        let _ = writeln!(
            self.events,
            "emit {output} {}",
            String::from_utf8_lossy(data)
        );
        Ok(())
    }
    pub(crate) fn log_warn(&mut self, message: &str) {
        let _ = writeln!(self.events, "log warn {message}");
    }
    pub(crate) fn now_nanos(&mut self) -> u64 {
        self.clock += 1_000;
        self.clock
    }
    pub(crate) fn state_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }
    pub(crate) fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.state.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    pub(crate) fn state_delete(&mut self, key: &str) {
        self.state.remove(key);
    }
}

/// Which of the module's entry points a transcript line calls.
pub(crate) enum Call {
    Input,
    Request,
    Entry,
}

/// How an example reaches its module: `(host, call, name, payload)` to what the call returned
/// (an empty answer for `input`, which returns none).
pub(crate) type Dispatch = fn(&mut MockHost, Call, &str, &[u8]) -> Result<Vec<u8>, String>;

/// Replays the crate's transcript through `dispatch` and fails on the first line that differs.
pub(crate) fn check_transcript(dispatch: Dispatch) {
    let expected = std::fs::read_to_string(TRANSCRIPT_PATH).expect("read the transcript");
    let actual = replay(&expected, dispatch);
    if std::env::var_os("UPDATE_TRANSCRIPT").is_some() {
        std::fs::write(TRANSCRIPT_PATH, &actual).expect("write the transcript");
        return;
    }
    for (number, (want, got)) in expected.lines().zip(actual.lines()).enumerate() {
        assert_eq!(want, got, "transcript line {}", number + 1);
    }
    assert_eq!(
        expected.lines().count(),
        actual.lines().count(),
        "transcript length"
    );
}

/// Echoes the calls, directives and comments of `transcript` and regenerates, after each call,
/// the results it records (events, then `ok` or `err`) from what the module does now.
fn replay(transcript: &str, dispatch: Dispatch) -> String {
    let mut host = MockHost::new();
    let mut out = String::new();
    for line in transcript.lines() {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (name, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        let call = match verb {
            "emit" | "log" | "ok" | "err" => continue, // recorded results: regenerated below
            "input" => Call::Input,
            "request" => Call::Request,
            "entry" => Call::Entry,
            "host" => {
                match name {
                    "emit-fails" => host.emit_error = Some(payload.to_string()),
                    "emit-ok" => host.emit_error = None,
                    "state-set" => {
                        let (key, value) = payload.split_once(' ').unwrap_or((payload, ""));
                        host.state
                            .insert(key.to_string(), value.as_bytes().to_vec());
                    }
                    _ => panic!("unknown host directive: {line}"),
                }
                let _ = writeln!(out, "{line}");
                continue;
            }
            _ => {
                let _ = writeln!(out, "{line}"); // comments and blank lines
                continue;
            }
        };
        let result = dispatch(&mut host, call, name, payload.as_bytes());
        let _ = writeln!(out, "{line}");
        out.push_str(&std::mem::take(&mut host.events));
        match result {
            Ok(data) if data.is_empty() => out.push_str("ok\n"),
            Ok(data) => {
                let _ = writeln!(out, "ok {}", String::from_utf8_lossy(&data));
            }
            Err(message) => {
                let _ = writeln!(out, "err {message}");
            }
        }
    }
    out
}
