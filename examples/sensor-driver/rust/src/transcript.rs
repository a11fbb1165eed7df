//! Replays `../testdata/transcript.txt` against the driver over the shared mock host; the C twin's
//! native test replays the same file. The replay itself is `examples/common/transcript_harness.rs`.

#[path = "../../../common/transcript_harness.rs"]
mod harness;

use crate::driver::{self, Host};
use harness::{Call, MockHost};

impl Host for MockHost {
    fn emit_output(&mut self, output: &str, data: &[u8]) -> Result<(), String> {
        MockHost::emit_output(self, output, data)
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
}

fn dispatch(
    host: &mut MockHost,
    call: Call,
    name: &str,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    match call {
        Call::Input => driver::on_input(host, name, payload).map(|()| Vec::new()),
        Call::Request => driver::on_request(host, name, payload),
        Call::Entry => driver::call_entry(host, name, payload),
    }
}

#[test]
fn module_follows_the_shared_transcript() {
    harness::check_transcript(dispatch);
}
