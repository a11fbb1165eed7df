//! Replays `../testdata/transcript.txt` against the driver over a mock host and checks that the
//! module does exactly what the transcript records; the C twin's native test replays the same file.
//!
//! Set `UPDATE_TRANSCRIPT=1` to rewrite the file from what the Rust module does (then review it).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::driver::{self, Host};

const TRANSCRIPT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/transcript.txt");

/// An in-memory node: sealed state in a map, and a log of what the module emitted.
struct MockHost {
    state: BTreeMap<String, Vec<u8>>,
    emit_error: Option<String>,
    events: String,
}

impl Host for MockHost {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
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
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.state.get(key).cloned()
    }
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        self.state.insert(key.to_string(), value.to_vec());
        Ok(())
    }
    fn state_delete(&mut self, key: &str) {
        self.state.remove(key);
    }
}

fn replay(transcript: &str) -> String {
    let mut host = MockHost {
        state: BTreeMap::new(),
        emit_error: None,
        events: String::new(),
    };
    let mut out = String::new();
    for line in transcript.lines() {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (name, payload) = rest.split_once(' ').unwrap_or((rest, ""));
        let result = match verb {
            "emit" | "ok" | "err" => continue, // recorded results: regenerated below
            "input" => driver::on_input(&mut host, name, payload.as_bytes()).map(|()| Vec::new()),
            "request" => driver::on_request(&mut host, name, payload.as_bytes()),
            "entry" => driver::call_entry(&mut host, name, payload.as_bytes()),
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

#[test]
fn module_follows_the_shared_transcript() {
    let expected = std::fs::read_to_string(TRANSCRIPT_PATH).expect("read the transcript");
    let actual = replay(&expected);
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
