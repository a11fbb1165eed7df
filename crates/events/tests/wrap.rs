//! Connection keys wrapped to a module open only for that module's key pair and only in the
//! context they were wrapped for; the wrap never contains the key in the clear.

use events::wrap::{ModuleKeyPair, WrapContext, WrappedKey, wrap_key};
use events::{
    ConnectionId, ConnectionKey, Direction, EventError, EventReceiver, EventSender, Protection,
};

const MEASUREMENT: [u8; 32] = [0x5a; 32];

fn context(measurement: &[u8; 32]) -> WrapContext<'_> {
    WrapContext {
        app: "irrigation",
        connection: ConnectionId::new(2).expect("in range"),
        module: "valve",
        port: "command",
        measurement,
    }
}

#[test]
fn a_wrapped_key_opens_for_its_module_and_protects_events() {
    let module = ModuleKeyPair::derive(&[1u8; 32]).expect("derive");
    let key = ConnectionKey::generate().expect("randomness");
    let wrapped = wrap_key(&key, &module.public(), &context(&MEASUREMENT)).expect("wrap");
    assert_eq!(wrapped.encapsulated.len(), 32);
    assert_eq!(wrapped.ciphertext.len(), 32 + 16);
    let secret = key.danger_expose_for_tests();
    assert!(!wrapped.ciphertext.windows(32).any(|w| w == secret));

    let opened = module
        .unwrap_key(&wrapped, &context(&MEASUREMENT))
        .expect("unwrap");
    assert_eq!(opened, key);
    // Both ends now share the connection: the deployer's copy seals, the module's opens.
    let id = ConnectionId::new(2).expect("in range");
    let mut sender = EventSender::new(&key, id, Direction::Forward, Protection::Encrypted);
    let mut receiver = EventReceiver::new(&opened, id, Direction::Forward, Protection::Encrypted);
    assert_eq!(
        receiver
            .open(&sender.seal(b"water 3 min").expect("seal"))
            .map(|d| d.payload),
        Ok(b"water 3 min".to_vec())
    );
    // Every wrap is fresh, even of the same key to the same module.
    let again = wrap_key(&key, &module.public(), &context(&MEASUREMENT)).expect("wrap");
    assert_ne!(again, wrapped);
}

#[test]
fn a_wrapped_key_opens_nowhere_else() {
    let module = ModuleKeyPair::derive(&[1u8; 32]).expect("derive");
    let key = ConnectionKey::generate().expect("randomness");
    let wrapped = wrap_key(&key, &module.public(), &context(&MEASUREMENT)).expect("wrap");

    let other_module = ModuleKeyPair::derive(&[2u8; 32]).expect("derive");
    assert_eq!(
        other_module.unwrap_key(&wrapped, &context(&MEASUREMENT)),
        Err(EventError::UnwrapFailed)
    );
    let other_code = [0x5b; 32];
    let mut wrong_contexts = vec![context(&other_code)];
    wrong_contexts.push(WrapContext {
        app: "irrigation2",
        ..context(&MEASUREMENT)
    });
    wrong_contexts.push(WrapContext {
        module: "valve2",
        ..context(&MEASUREMENT)
    });
    wrong_contexts.push(WrapContext {
        port: "commands",
        ..context(&MEASUREMENT)
    });
    wrong_contexts.push(WrapContext {
        connection: ConnectionId::new(3).expect("in range"),
        ..context(&MEASUREMENT)
    });
    // Length prefixes keep field boundaries: moving a character between fields changes the info.
    wrong_contexts.push(WrapContext {
        app: "irrigationv",
        module: "alve",
        ..context(&MEASUREMENT)
    });
    for wrong in wrong_contexts {
        assert_eq!(
            module.unwrap_key(&wrapped, &wrong),
            Err(EventError::UnwrapFailed),
            "{wrong:?}"
        );
    }
    for field in 0..2 {
        for byte in 0..32 {
            let mut tampered = wrapped.clone();
            let bytes = if field == 0 {
                &mut tampered.encapsulated
            } else {
                &mut tampered.ciphertext
            };
            bytes[byte] ^= 1;
            assert_eq!(
                module.unwrap_key(&tampered, &context(&MEASUREMENT)),
                Err(EventError::UnwrapFailed)
            );
        }
    }
    let truncated = WrappedKey {
        encapsulated: wrapped.encapsulated[..31].to_vec(),
        ..wrapped
    };
    assert_eq!(
        module.unwrap_key(&truncated, &context(&MEASUREMENT)),
        Err(EventError::UnwrapFailed)
    );
}

#[test]
fn module_key_pairs_are_derived_deterministically_from_enough_secret_material() {
    let a = ModuleKeyPair::derive(&[7u8; 32]).expect("derive");
    let b = ModuleKeyPair::derive(&[7u8; 32]).expect("derive");
    let c = ModuleKeyPair::derive(&[8u8; 32]).expect("derive");
    assert_eq!(a.public(), b.public());
    assert_ne!(a.public(), c.public());
    assert!(!format!("{a:?}").contains("7777"));
    assert!(matches!(
        ModuleKeyPair::derive(&[7u8; 16]),
        Err(EventError::ModuleKey(_))
    ));
}

#[test]
fn wrapped_keys_and_public_keys_travel_as_hex_json() {
    let module = ModuleKeyPair::derive(&[1u8; 32]).expect("derive");
    let key = ConnectionKey::generate().expect("randomness");
    let wrapped = wrap_key(&key, &module.public(), &context(&MEASUREMENT)).expect("wrap");
    let json = serde_json::to_string(&wrapped).expect("json");
    assert_eq!(
        serde_json::from_str::<WrappedKey>(&json).expect("back"),
        wrapped
    );
    let public = serde_json::to_string(&module.public()).expect("json");
    assert_eq!(public.len(), 66);
    assert!(serde_json::from_str::<events::wrap::ModulePublicKey>("\"abcd\"").is_err());
}

#[test]
fn a_handover_opens_only_for_its_module_key_sender_and_context() {
    use events::wrap::{HandoverContext, seal_handover};
    let recipient = ModuleKeyPair::derive(&[3; 32]).unwrap();
    let sender = ModuleKeyPair::derive(&[5; 32]).unwrap();
    let other = ModuleKeyPair::derive(&[4; 32]).unwrap();
    let measurement = [9u8; 32];
    let context = HandoverContext {
        app: "sensor-alarm",
        module: "filter",
        measurement: &measurement,
    };
    let from = sender.public();
    let sealed = seal_handover(b"state and ends", &recipient.public(), &sender, &context).unwrap();
    let opened = recipient.open_handover(&sealed, &from, &context).unwrap();
    assert_eq!(opened.as_slice(), b"state and ends");
    assert!(other.open_handover(&sealed, &from, &context).is_err());
    // Only the old instance can have sealed it: anyone else who knows the recipient's public
    // key (it is in the claims) makes a hand-over that does not open as the old instance's.
    let forged = seal_handover(b"injected", &recipient.public(), &other, &context).unwrap();
    assert!(recipient.open_handover(&forged, &from, &context).is_err());
    let other_measurement = [8u8; 32];
    for wrong in [
        HandoverContext {
            app: "other",
            ..context
        },
        HandoverContext {
            module: "actuator",
            ..context
        },
        HandoverContext {
            measurement: &other_measurement,
            ..context
        },
    ] {
        assert!(
            recipient.open_handover(&sealed, &from, &wrong).is_err(),
            "{wrong:?}"
        );
    }
    for i in 0..sealed.len() {
        let mut flipped = sealed.clone();
        flipped[i] ^= 1;
        assert!(
            recipient.open_handover(&flipped, &from, &context).is_err(),
            "byte {i}"
        );
    }
    assert!(
        recipient
            .open_handover(&sealed[..31], &from, &context)
            .is_err()
    );
}
