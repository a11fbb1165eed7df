//! A property of the sans-IO core with its decoder: the replies to one session's bytes are the
//! same however the bytes are split into reads.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf as _, BytesMut};
use mqtt::broker::{ClientIdentity, Flow};
use mqtt::{Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion};
use proptest::prelude::*;

use crate::core::{Recorder, core};
use crate::pipelining::{encode_all, session_script};

/// Feeds `bytes` to a decoder and a core in the pieces that the cut points make, as the
/// connection task does (CONNECT first, then every whole packet), and returns the bytes the core
/// queued to the client, joined, and how the connection ended.
fn replies(bytes: &[u8], cuts: &[usize]) -> (Vec<u8>, Option<Flow>) {
    let t0 = Instant::now();
    let mut core = core();
    let outlet = Arc::new(Recorder::default());
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut client_id = None;
    let mut ended = None;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    bounds.push(bytes.len());
    bounds.sort_unstable();
    let mut start = 0;
    'reads: for end in bounds {
        buf.extend_from_slice(&bytes[start..end]);
        start = end;
        while let Some((packet, len)) = decoder.decode(&buf).expect("a valid script") {
            buf.advance(len);
            match (packet, &client_id) {
                (Packet::Connect(connect), None) => {
                    let accepted = core
                        .connect(1, *connect, ClientIdentity::default(), outlet.clone(), t0)
                        .expect("accepted");
                    client_id = Some(accepted.client_id);
                }
                (packet, Some(id)) => {
                    let flow = core.handle(1, id, packet, t0);
                    if flow != Flow::Continue {
                        ended = Some(flow);
                        break 'reads;
                    }
                }
                (other, None) => panic!("{other:?} before CONNECT"),
            }
        }
    }
    let sent = outlet.packets.lock().expect("lock").concat();
    (sent, ended)
}

proptest! {
    #[test]
    fn the_cores_replies_do_not_depend_on_read_boundaries(
        v5 in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..48),
    ) {
        let version = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
        let bytes = encode_all(version, &session_script(version, "prop"));
        let whole = replies(&bytes, &[]);
        prop_assert!(whole.1.is_some(), "the script ends with DISCONNECT");
        prop_assert!(whole.0.len() > 20);
        let one_by_one: Vec<usize> = (0..bytes.len()).collect();
        prop_assert_eq!(&replies(&bytes, &one_by_one), &whole);
        prop_assert_eq!(&replies(&bytes, &cuts), &whole);
    }
}
