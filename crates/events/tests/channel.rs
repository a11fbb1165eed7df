//! The receiver delivers exactly the authentic events, in order, once; every attack the
//! forwarding layer can mount (flip, drop, replay, reorder, misroute, downgrade, re-key) is
//! detected and reported with what happened.

use events::{
    ConnectionId, ConnectionKey, Delivered, Direction, ENVELOPE_HEADER_LEN, EventError,
    EventReceiver, EventSender, Protection, Rejection, TAG_LEN,
};

fn id(n: u32) -> ConnectionId {
    ConnectionId::new(n).expect("in range")
}

fn pair(protection: Protection) -> (EventSender, EventReceiver) {
    let key = ConnectionKey::generate().expect("randomness");
    (
        EventSender::new(&key, id(7), Direction::Forward, protection),
        EventReceiver::new(&key, id(7), Direction::Forward, protection),
    )
}

fn delivered(payload: &[u8], counter: u64, missing: u64) -> Delivered {
    Delivered {
        payload: payload.to_vec(),
        counter,
        missing,
        sender_resumed: false,
    }
}

#[test]
fn events_arrive_in_order_in_both_modes() {
    for protection in [Protection::Encrypted, Protection::Authenticated] {
        let (mut sender, mut receiver) = pair(protection);
        for n in 0..100u64 {
            let payload = format!("reading {n}").into_bytes();
            let envelope = sender.seal(&payload).expect("seal");
            assert_eq!(
                envelope.len(),
                ENVELOPE_HEADER_LEN + payload.len() + TAG_LEN
            );
            let visible = envelope.windows(payload.len()).any(|w| w == payload);
            assert_eq!(
                visible,
                protection == Protection::Authenticated,
                "{protection}"
            );
            assert_eq!(receiver.open(&envelope), Ok(delivered(&payload, n, 0)));
        }
        assert_eq!(receiver.expected(), Some(100));
        assert_eq!(sender.next_counter(), Some(100));
    }
}

#[test]
fn every_flipped_bit_is_rejected_and_nothing_is_delivered() {
    for protection in [Protection::Encrypted, Protection::Authenticated] {
        let (mut sender, mut receiver) = pair(protection);
        let envelope = sender.seal(b"open the valve").expect("seal");
        for byte in 0..envelope.len() {
            for bit in 0..8 {
                let mut tampered = envelope.clone();
                tampered[byte] ^= 1 << bit;
                let rejection = receiver
                    .open(&tampered)
                    .expect_err("a tampered event must be rejected");
                // The header's shape is checked first, then routing, then the tag.
                let expected_kinds: &[&str] = match byte {
                    0 => &["malformed"],
                    1 => &["malformed", "misrouted", "protection_mismatch", "forged"],
                    2..6 => &["malformed", "misrouted"],
                    _ => &["forged"],
                };
                assert!(
                    expected_kinds.contains(&rejection.kind()),
                    "{protection}: byte {byte} bit {bit}: {rejection}"
                );
            }
        }
        // The untouched event still arrives: rejections did not move the receiver.
        assert_eq!(
            receiver.open(&envelope),
            Ok(delivered(b"open the valve", 0, 0))
        );
    }
}

#[test]
fn replayed_and_reordered_events_are_rejected_and_drops_are_counted() {
    let (mut sender, mut receiver) = pair(Protection::Encrypted);
    let events: Vec<Vec<u8>> = (0..6).map(|n| sender.seal(&[n]).expect("seal")).collect();
    assert!(receiver.open(&events[0]).is_ok());
    // Replay.
    assert_eq!(
        receiver.open(&events[0]),
        Err(Rejection::Replayed {
            counter: 0,
            expected: 1
        })
    );
    // Reorder: 2 overtakes 1; 2 is delivered with one event missing, 1 is then too old.
    assert_eq!(receiver.open(&events[2]), Ok(delivered(&[2], 2, 1)));
    assert_eq!(
        receiver.open(&events[1]),
        Err(Rejection::Replayed {
            counter: 1,
            expected: 3
        })
    );
    // Drop: 3 and 4 never arrive.
    assert_eq!(receiver.open(&events[5]), Ok(delivered(&[5], 5, 2)));
    let message = receiver.open(&events[4]).expect_err("late").to_string();
    assert_eq!(
        message,
        "replayed or reordered event: counter 4, but only counters from 6 on are acceptable"
    );
}

#[test]
fn events_of_another_connection_direction_or_key_are_rejected() {
    let key = ConnectionKey::generate().expect("randomness");
    let mut forward = EventSender::new(&key, id(7), Direction::Forward, Protection::Encrypted);
    let mut reverse = EventSender::new(&key, id(7), Direction::Reverse, Protection::Encrypted);
    let mut other = EventSender::new(&key, id(8), Direction::Forward, Protection::Encrypted);
    let mut receiver = EventReceiver::new(&key, id(7), Direction::Forward, Protection::Encrypted);

    assert_eq!(
        receiver.open(&reverse.seal(b"x").expect("seal")),
        Err(Rejection::Misrouted {
            connection: id(7),
            direction: Direction::Reverse
        })
    );
    assert_eq!(
        receiver.open(&other.seal(b"x").expect("seal")),
        Err(Rejection::Misrouted {
            connection: id(8),
            direction: Direction::Forward
        })
    );
    // Rewriting the header to this receiver's connection or direction breaks the tag: the
    // connection id and direction are in the nonce and the associated data.
    let mut rerouted = other.seal(b"x").expect("seal");
    rerouted[2..6].copy_from_slice(&7u32.to_be_bytes());
    assert_eq!(
        receiver.open(&rerouted),
        Err(Rejection::Forged { counter: 1 })
    );
    let mut turned = reverse.seal(b"x").expect("seal");
    turned[1] &= !0b0100;
    assert_eq!(
        receiver.open(&turned),
        Err(Rejection::Forged { counter: 1 })
    );

    // Another key (another deployment of the same connection) is a forgery.
    let stranger = ConnectionKey::generate().expect("randomness");
    let mut foreign = EventSender::new(&stranger, id(7), Direction::Forward, Protection::Encrypted);
    assert_eq!(
        receiver.open(&foreign.seal(b"x").expect("seal")),
        Err(Rejection::Forged { counter: 0 })
    );
    assert!(receiver.open(&forward.seal(b"x").expect("seal")).is_ok());
}

#[test]
fn a_protection_downgrade_is_refused() {
    let key = ConnectionKey::generate().expect("randomness");
    let mut plain = EventSender::new(&key, id(1), Direction::Forward, Protection::Authenticated);
    let mut receiver = EventReceiver::new(&key, id(1), Direction::Forward, Protection::Encrypted);
    assert_eq!(
        receiver.open(&plain.seal(b"secret").expect("seal")),
        Err(Rejection::ProtectionMismatch {
            claimed: Protection::Authenticated,
            expected: Protection::Encrypted
        })
    );
    // And claiming the right mode on an authenticated-only body fails the tag: the two modes
    // use different keys.
    let mut relabelled = plain.seal(b"secret").expect("seal");
    relabelled[1] = (relabelled[1] & !0b11) | 1;
    assert_eq!(
        receiver.open(&relabelled),
        Err(Rejection::Forged { counter: 1 })
    );
}

#[test]
fn counters_never_wrap() {
    let key = ConnectionKey::generate().expect("randomness");
    let mut sender = EventSender::resume(
        &key,
        id(3),
        Direction::Forward,
        Protection::Encrypted,
        u64::MAX - 1,
    );
    let mut receiver = EventReceiver::resume(
        &key,
        id(3),
        Direction::Forward,
        Protection::Encrypted,
        u64::MAX - 1,
    );
    let second_last = sender.seal(b"a").expect("seal");
    let last = sender.seal(b"b").expect("seal");
    assert_eq!(sender.next_counter(), None);
    assert_eq!(
        sender.seal(b"c"),
        Err(EventError::CountersExhausted {
            connection: id(3),
            direction: Direction::Forward
        })
    );
    assert!(receiver.open(&second_last).is_ok());
    assert_eq!(receiver.open(&last).map(|d| d.counter), Ok(u64::MAX));
    assert_eq!(receiver.expected(), None);
    assert_eq!(
        receiver.open(&last),
        Err(Rejection::Replayed {
            counter: u64::MAX,
            expected: u64::MAX
        })
    );
}

#[test]
fn a_resumed_sender_says_so_once() {
    let key = ConnectionKey::generate().expect("randomness");
    let mut receiver = EventReceiver::new(&key, id(4), Direction::Forward, Protection::Encrypted);
    let mut sender = EventSender::new(&key, id(4), Direction::Forward, Protection::Encrypted);
    assert!(receiver.open(&sender.seal(b"0").expect("seal")).is_ok());
    // The node had reserved counters up to 1024 before it crashed.
    let mut sender =
        EventSender::resume(&key, id(4), Direction::Forward, Protection::Encrypted, 1024);
    let first = receiver.open(&sender.seal(b"after").expect("seal"));
    assert_eq!(
        first,
        Ok(Delivered {
            payload: b"after".to_vec(),
            counter: 1024,
            missing: 1023,
            sender_resumed: true,
        })
    );
    assert_eq!(
        receiver.open(&sender.seal(b"next").expect("seal")),
        Ok(delivered(b"next", 1025, 0))
    );
}

#[test]
fn oversized_payloads_are_refused_before_sealing() {
    let (mut sender, _) = pair(Protection::Encrypted);
    let big = vec![0u8; events::MAX_EVENT_LEN + 1];
    assert!(matches!(
        sender.seal(&big),
        Err(EventError::TooLarge { .. })
    ));
    assert_eq!(sender.next_counter(), Some(0));
}

#[test]
fn a_rekey_keeps_one_counter_order_and_retires_the_old_key() {
    for protection in [Protection::Encrypted, Protection::Authenticated] {
        let old = ConnectionKey::generate().expect("randomness");
        let new = ConnectionKey::generate().expect("randomness");
        let mut sender = EventSender::new(&old, id(7), Direction::Forward, protection);
        let mut receiver = EventReceiver::new(&old, id(7), Direction::Forward, protection);
        let before: Vec<Vec<u8>> = (0..3)
            .map(|n| sender.seal(format!("old {n}").as_bytes()).expect("seal"))
            .collect();
        // The receiver learns the new key first; the sender switches while events sealed
        // under the old key are still on their way.
        receiver.stage_key(&new).unwrap();
        sender.rekey(&new);
        let after: Vec<Vec<u8>> = (3..6)
            .map(|n| sender.seal(format!("new {n}").as_bytes()).expect("seal"))
            .collect();
        assert_eq!(sender.next_counter(), Some(6), "counters continue");

        assert_eq!(receiver.open(&before[0]), Ok(delivered(b"old 0", 0, 0)));
        assert_eq!(receiver.open(&before[1]), Ok(delivered(b"old 1", 1, 0)));
        assert_eq!(receiver.pending_keys(), 1);
        // Event 2 under the old key is lost on the way; the first new-key event reports it
        // missing and retires the old key.
        assert_eq!(receiver.open(&after[0]), Ok(delivered(b"new 3", 3, 1)));
        assert_eq!(receiver.pending_keys(), 0);
        assert_eq!(
            receiver.open(&before[2]),
            Err(Rejection::Forged { counter: 2 }),
            "the old key is retired: its events no longer authenticate"
        );
        // A replay under the new key is a replay, and order holds across the change.
        assert_eq!(
            receiver.open(&after[0]),
            Err(Rejection::Replayed {
                counter: 3,
                expected: 4
            })
        );
        assert_eq!(
            receiver.open(&after[2]),
            Ok(delivered(b"new 5", 5, 1)),
            "{protection}"
        );
        assert_eq!(
            receiver.open(&after[1]),
            Err(Rejection::Replayed {
                counter: 4,
                expected: 6
            })
        );
    }
}

#[test]
fn a_new_key_nobody_staged_is_forged_and_a_staged_key_alone_moves_nothing() {
    let old = ConnectionKey::generate().expect("randomness");
    let new = ConnectionKey::generate().expect("randomness");
    let other = ConnectionKey::generate().expect("randomness");
    let protection = Protection::Encrypted;
    let mut sender = EventSender::new(&old, id(7), Direction::Forward, protection);
    let mut receiver = EventReceiver::new(&old, id(7), Direction::Forward, protection);
    sender.rekey(&new);
    let early = sender.seal(b"too early").expect("seal");
    assert_eq!(receiver.open(&early), Err(Rejection::Forged { counter: 0 }));
    assert_eq!(receiver.expected(), Some(0), "a forged event moves nothing");

    // A staged key that is not the sender's changes nothing either.
    receiver.stage_key(&other).unwrap();
    assert_eq!(receiver.open(&early), Err(Rejection::Forged { counter: 0 }));
    assert_eq!(receiver.pending_keys(), 1);
    // Staging the sender's key as well: its event retires every older key.
    receiver.stage_key(&new).unwrap();
    assert_eq!(receiver.open(&early), Ok(delivered(b"too early", 0, 0)));
    assert_eq!(receiver.pending_keys(), 0);
}

#[test]
fn two_rekeys_of_a_quiet_connection_lose_nothing() {
    let keys: Vec<ConnectionKey> = (0..3)
        .map(|_| ConnectionKey::generate().expect("randomness"))
        .collect();
    let protection = Protection::Encrypted;
    let mut sender = EventSender::new(&keys[0], id(7), Direction::Forward, protection);
    let mut receiver = EventReceiver::new(&keys[0], id(7), Direction::Forward, protection);
    assert_eq!(
        receiver.open(&sender.seal(b"a").expect("seal")),
        Ok(delivered(b"a", 0, 0))
    );
    // Re-key 1 is staged and activated, but nothing is sent under it.
    receiver.stage_key(&keys[1]).unwrap();
    sender.rekey(&keys[1]);
    // Re-key 2 is staged at the receiver; the sender still uses key 1.
    receiver.stage_key(&keys[2]).unwrap();
    assert_eq!(receiver.pending_keys(), 2);
    assert_eq!(
        receiver.open(&sender.seal(b"b").expect("seal")),
        Ok(delivered(b"b", 1, 0)),
        "an event under the first re-key's key still opens"
    );
    assert_eq!(
        receiver.pending_keys(),
        1,
        "key 0 is retired, key 2 still waits"
    );
    sender.rekey(&keys[2]);
    assert_eq!(
        receiver.open(&sender.seal(b"c").expect("seal")),
        Ok(delivered(b"c", 2, 0))
    );
    assert_eq!(receiver.pending_keys(), 0);
    // Staged keys are bounded.
    for _ in 0..events::MAX_PENDING_KEYS {
        receiver
            .stage_key(&ConnectionKey::generate().expect("randomness"))
            .unwrap();
    }
    assert!(matches!(
        receiver.stage_key(&keys[0]),
        Err(EventError::TooManyKeys { pending: 4, .. })
    ));
}
