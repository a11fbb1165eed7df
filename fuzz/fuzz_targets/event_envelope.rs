//! Fuzzes what a node does with an event that arrives from the network: `Envelope::parse` and
//! `EventReceiver::open` under a fixed connection key, in both protection modes. Nothing the
//! fuzzer makes without the key may be delivered except the seeds' own authentic events; every
//! rejection is one printable line; sealing the input as a payload opens back to it.
#![no_main]

use events::{
    ConnectionId, ConnectionKey, Direction, Envelope, EventReceiver, EventSender, Protection,
};
use libfuzzer_sys::fuzz_target;

/// The key the committed seeds in fuzz/corpus/event_envelope were sealed with.
const FUZZ_KEY: [u8; 32] = [0x42; 32];

fuzz_target!(|data: &[u8]| {
    let key = ConnectionKey::from_secret_bytes(FUZZ_KEY);
    let connection = ConnectionId::new(1).expect("in range");
    if let Ok(envelope) = Envelope::parse(data) {
        assert_eq!(envelope.payload_len() + 30, data.len());
    }
    for protection in [Protection::Encrypted, Protection::Authenticated] {
        let mut receiver = EventReceiver::new(&key, connection, Direction::Forward, protection);
        match receiver.open(data) {
            Ok(delivered) => {
                assert_eq!(delivered.payload.len() + 30, data.len());
                // Delivered once, never twice.
                assert!(receiver.open(data).is_err());
            }
            Err(rejection) => {
                let message = rejection.to_string();
                assert!(!message.trim().is_empty());
                assert!(!message.chars().any(char::is_control), "{message:?}");
            }
        }
        let mut sender = EventSender::new(&key, connection, Direction::Forward, protection);
        let mut fresh = EventReceiver::new(&key, connection, Direction::Forward, protection);
        let sealed = sender
            .seal(data)
            .expect("fuzz inputs are below the size limit");
        let opened = fresh
            .open(&sealed)
            .expect("an event sealed with the key opens");
        assert_eq!(opened.payload, data);
    }
});
