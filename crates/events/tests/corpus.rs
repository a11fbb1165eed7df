//! The fuzz seeds in `fuzz/corpus/event_envelope` are fixed known-answer vectors: each `seed-*`
//! is what a sender with the fuzz target's key produces (so a change to the wire format or the
//! key schedule shows up here), and each `bad-<kind>-*` is rejected with that kind and a clear
//! one-line reason. `EVENTS_BLESS=1 cargo test -p events --test corpus` rewrites the files.

use std::path::PathBuf;

use events::{ConnectionId, ConnectionKey, Direction, EventReceiver, EventSender, Protection};

/// The fuzz target's key and connection.
const FUZZ_KEY: [u8; 32] = [0x42; 32];
const PAYLOAD: &[u8] = br#"{"moisture":41}"#;

fn id(n: u32) -> ConnectionId {
    ConnectionId::new(n).expect("in range")
}

fn sender(connection: u32, direction: Direction, protection: Protection) -> EventSender {
    EventSender::new(
        &ConnectionKey::from_secret_bytes(FUZZ_KEY),
        id(connection),
        direction,
        protection,
    )
}

fn receiver(protection: Protection) -> EventReceiver {
    EventReceiver::new(
        &ConnectionKey::from_secret_bytes(FUZZ_KEY),
        id(1),
        Direction::Forward,
        protection,
    )
}

fn expected_files() -> Vec<(&'static str, Vec<u8>)> {
    let encrypted = sender(1, Direction::Forward, Protection::Encrypted)
        .seal(PAYLOAD)
        .expect("seal");
    let authenticated = sender(1, Direction::Forward, Protection::Authenticated)
        .seal(PAYLOAD)
        .expect("seal");
    let resumed = EventSender::resume(
        &ConnectionKey::from_secret_bytes(FUZZ_KEY),
        id(1),
        Direction::Forward,
        Protection::Encrypted,
        1024,
    )
    .seal(PAYLOAD)
    .expect("seal");
    let flip = |mut bytes: Vec<u8>, at: usize| {
        bytes[at] ^= 0x01;
        bytes
    };
    let mut wrong_version = encrypted.clone();
    wrong_version[0] = 2;
    let mut unknown_flags = encrypted.clone();
    unknown_flags[1] |= 0x80;
    let mut rerouted = sender(2, Direction::Forward, Protection::Encrypted)
        .seal(PAYLOAD)
        .expect("seal");
    rerouted[2..6].copy_from_slice(&1u32.to_be_bytes());
    let last = encrypted.len() - 1;
    vec![
        ("seed-encrypted", encrypted.clone()),
        ("seed-authenticated", authenticated.clone()),
        ("seed-resumed", resumed),
        ("bad-malformed-short", encrypted[..20].to_vec()),
        ("bad-malformed-version", wrong_version),
        ("bad-malformed-flags", unknown_flags),
        ("bad-forged-body", flip(encrypted.clone(), 16)),
        ("bad-forged-tag", flip(encrypted.clone(), last)),
        ("bad-forged-counter", flip(encrypted, 13)),
        ("bad-forged-rerouted", rerouted),
        (
            "bad-misrouted-reverse",
            sender(1, Direction::Reverse, Protection::Encrypted)
                .seal(PAYLOAD)
                .expect("seal"),
        ),
        ("bad-protection_mismatch-authenticated", authenticated),
    ]
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/event_envelope")
}

#[test]
fn seeds_are_the_known_answers_and_bad_inputs_are_rejected_for_their_reason() {
    let dir = corpus_dir();
    let bless = std::env::var_os("EVENTS_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).expect("corpus dir");
    }
    for (name, bytes) in expected_files() {
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, &bytes).expect("write seed");
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            hex::encode(&committed),
            hex::encode(&bytes),
            "{name} differs from what the sender produces (EVENTS_BLESS=1 to accept a deliberate format change)"
        );

        if let Some(rest) = name.strip_prefix("bad-") {
            let kind = rest.rsplit_once('-').map_or(rest, |(kind, _)| kind);
            let rejection = receiver(Protection::Encrypted)
                .open(&committed)
                .expect_err(name);
            assert_eq!(rejection.kind(), kind, "{name}: {rejection}");
            let message = rejection.to_string();
            assert!(!message.chars().any(char::is_control), "{message:?}");
        } else {
            let protection = if name == "seed-authenticated" {
                Protection::Authenticated
            } else {
                Protection::Encrypted
            };
            let delivered = receiver(protection).open(&committed).expect(name);
            assert_eq!(delivered.payload, PAYLOAD);
        }
    }
}

#[test]
fn the_known_answer_does_not_depend_on_anything_but_key_connection_and_counter() {
    // The first event of connection 1 under the fuzz key, as the wire format fixes it.
    let sealed = sender(1, Direction::Forward, Protection::Encrypted)
        .seal(PAYLOAD)
        .expect("seal");
    assert_eq!(
        &sealed[..14],
        hex::decode("0101000000010000000000000000").expect("hex")
    );
    let again = sender(1, Direction::Forward, Protection::Encrypted)
        .seal(PAYLOAD)
        .expect("seal");
    assert_eq!(sealed, again);
}
