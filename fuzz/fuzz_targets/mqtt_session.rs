//! Fuzzes what one client connection makes the broker do: the input (after its first byte) is
//! a client's bytes, fed through a connection `Decoder` and the sans-IO `BrokerCore` as the
//! connection task feeds them (CONNECT first, then every whole packet, in order). The first byte
//! picks where the bytes are split into two reads. Nothing may panic; the replies, and how the
//! connection ends, must not depend on the split; refusals are one printable line.
#![no_main]

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mqtt::broker::{
    AllowAll, BrokerCore, ClientIdentity, Counters, Flow, Limits, MemoryRetained, Outlet, QueueFull,
};
use mqtt::{Decoder, Packet, ReasonCode};

/// Records what the core queues to the client.
#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<u8>>,
    closed: Mutex<Option<Option<ReasonCode>>>,
}

impl Outlet for Recorder {
    fn send(&self, packet: Bytes) -> Result<(), QueueFull> {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(&packet);
        Ok(())
    }

    fn close(&self, reason: Option<ReasonCode>) {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert(reason);
    }
}

/// How a connection ended: its replies, the core's close request, and the flow or decoding
/// error that ended it.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    sent: Vec<u8>,
    closed: Option<Option<ReasonCode>>,
    ended: Option<String>,
}

fn session(bytes: &[u8], cut: usize) -> Outcome {
    let t0 = Instant::now();
    let limits = Limits::default();
    let mut core = BrokerCore::new(
        limits.clone(),
        Arc::new(AllowAll),
        Box::new(MemoryRetained::default()),
        Arc::new(Counters::default()),
    );
    let outlet = Arc::new(Recorder::default());
    let mut decoder = Decoder::new(limits.max_packet_size);
    let mut buf = Vec::new();
    let mut client_id = None;
    let mut ended = None;
    'reads: for piece in [&bytes[..cut], &bytes[cut..]] {
        buf.extend_from_slice(piece);
        let mut offset = 0;
        loop {
            let (packet, used) = match decoder.decode(&buf[offset..]) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(error) => {
                    let message = error.to_string();
                    assert!(
                        !message.trim().is_empty() && !message.chars().any(char::is_control),
                        "error message is not one printable line: {message:?}"
                    );
                    ended = Some(format!("refused: {}", error.kind()));
                    break 'reads;
                }
            };
            offset += used;
            match (packet, &client_id) {
                (Packet::Connect(connect), None) => {
                    match core.connect(1, *connect, ClientIdentity::default(), outlet.clone(), t0) {
                        Some(accepted) => client_id = Some(accepted.client_id),
                        None => {
                            ended = Some("CONNECT refused".into());
                            break 'reads;
                        }
                    }
                }
                (packet, Some(id)) => {
                    let flow = core.handle(1, id, packet, t0);
                    if flow != Flow::Continue {
                        ended = Some(format!("{flow:?}"));
                        break 'reads;
                    }
                }
                (packet, None) => panic!("the decoder let {packet:?} through before CONNECT"),
            }
        }
        buf.drain(..offset);
    }
    let sent = std::mem::take(&mut *outlet.sent.lock().unwrap_or_else(|e| e.into_inner()));
    let closed = *outlet.closed.lock().unwrap_or_else(|e| e.into_inner());
    Outcome {
        sent,
        closed,
        ended,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) * bytes.len() / 255;
    assert_eq!(session(bytes, cut), session(bytes, 0), "split at {cut}");
});
