#![allow(clippy::unwrap_used)]
//! The fuzz seeds in `fuzz/corpus/admin_request` are what they claim to be: every request seed
//! decodes (alone and framed), the future operation is refused with its id, responses decode.

use std::path::PathBuf;

use node_protocol::frame::split_frame;
use node_protocol::{ProtocolError, Request, Response};

fn seed(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus/admin_request")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn request_seeds_decode() {
    for op in [
        "hello", "status", "list", "load", "unload", "call", "outputs", "claims", "connect",
        "event", "update", "rekey", "export", "import", "thaw", "retarget", "topic",
    ] {
        let bare = seed(&format!("seed-{op}"));
        let request = Request::decode(&bare).unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(request.op.name(), op);
        let framed = seed(&format!("seed-frame-{op}"));
        let (payload, used) = split_frame(&framed).unwrap().unwrap();
        assert_eq!(used, framed.len());
        assert_eq!(Request::decode(payload).unwrap(), request);
    }
    match Request::decode(&seed("seed-future-op")) {
        Err(ProtocolError::Unsupported { id: 9, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn response_seeds_decode() {
    assert!(
        Response::decode(&seed("seed-response-called"))
            .unwrap()
            .outcome
            .is_ok()
    );
    assert!(
        Response::decode(&seed("seed-response-error"))
            .unwrap()
            .outcome
            .is_err()
    );
}
