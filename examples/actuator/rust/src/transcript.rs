//! Replays `../testdata/transcript.txt` against the actuator over the shared mock host; the C
//! twin's native test replays the same file. The replay is `examples/common/transcript_harness.rs`.

#[path = "../../../common/transcript_harness.rs"]
mod harness;

use crate::actuator::{self, Host};
use harness::{Call, MockHost};

impl Host for MockHost {
    fn log_warn(&mut self, message: &str) {
        MockHost::log_warn(self, message);
    }
    fn state_get(&mut self, key: &str) -> Option<Vec<u8>> {
        MockHost::state_get(self, key)
    }
    fn state_set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        MockHost::state_set(self, key, value)
    }
}

fn dispatch(
    host: &mut MockHost,
    call: Call,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    match call {
        Call::Input => actuator::on_input(host, name, payload).map(|()| Vec::new()),
        Call::Request => actuator::on_request(host, name, payload),
        Call::Entry => actuator::call_entry(host, name, payload),
    }
}

#[test]
fn module_follows_the_shared_transcript() {
    harness::check_transcript(dispatch);
}
