//! Replays `../testdata/transcript.txt` against the filter over the shared mock host; the C twin's
//! native test replays the same file. The replay itself is `examples/common/transcript_harness.rs`.

#[path = "../../../common/transcript_harness.rs"]
mod harness;

use crate::filter::{self, Claims, Host};
use harness::{Call, MockHost};

impl Host for MockHost {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
        MockHost::emit_output(self, output, data)
    }
    fn log_warn(&mut self, message: &str) {
        MockHost::log_warn(self, message);
    }
    fn now_nanos(&mut self) -> u64 {
        MockHost::now_nanos(self)
    }
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>> {
        MockHost::state_get(self, key)
    }
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        MockHost::state_set(self, key, value)
    }
    fn state_delete(&mut self, key: &str) {
        MockHost::state_delete(self, key);
    }
    fn claims(&mut self) -> Claims {
        // What the transcript's header promises; only the filter asks for claims.
        Claims {
            name: "sensor-filter".into(),
            measurement: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            platform: "sim".into(),
            simulated: true,
        }
    }
}

fn dispatch(
    host: &mut MockHost,
    call: Call,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    match call {
        Call::Input => filter::on_input(host, name, payload).map(|()| Vec::new()),
        Call::Request => filter::on_request(host, name, payload),
        Call::Entry => filter::call_entry(host, name, payload),
    }
}

#[test]
fn module_follows_the_shared_transcript() {
    harness::check_transcript(dispatch);
}
