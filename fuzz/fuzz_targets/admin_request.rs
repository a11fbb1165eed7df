//! Fuzzes the node's admin protocol decoder: frame splitting, `Request::decode` (what a node
//! reads from an admin client) and `Response::decode` (what the CLI reads from a node). Accepted
//! messages must re-encode to themselves; refusals must be one printable line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_protocol::frame::split_frame;
use node_protocol::{ProtocolError, Request, Response};

fn assert_one_line(err: &ProtocolError) {
    let message = err.to_string();
    assert!(!message.trim().is_empty(), "empty error message: {err:?}");
    assert!(
        !message.chars().any(char::is_control),
        "error message is not one printable line: {message:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    match split_frame(data) {
        Ok(Some((payload, used))) => assert_eq!(used, payload.len() + 4),
        Ok(None) => {}
        Err(e) => assert_one_line(&e),
    }
    match Request::decode(data) {
        Ok(request) => {
            let again = Request::decode(&request.encode())
                .unwrap_or_else(|e| panic!("a decoded request does not decode again: {e}"));
            assert_eq!(again, request);
        }
        Err(e) => assert_one_line(&e),
    }
    match Response::decode(data) {
        Ok(response) => {
            let again = Response::decode(&response.encode())
                .unwrap_or_else(|e| panic!("a decoded response does not decode again: {e}"));
            assert_eq!(again, response);
        }
        Err(e) => assert_one_line(&e),
    }
});
