//! The fuzz seeds in `fuzz/corpus/mqtt_packet` are fixed known answers: each `seed-<version>-*`
//! is what the encoder produces for a packet written out here (so a change to the wire format
//! shows up), and each `bad-<version>-<kind>-<what>` is refused in that version with that error
//! kind and a one-line message. `MQTT_BLESS=1 cargo test -p mqtt --test corpus` rewrites them.

use std::num::NonZeroU16;
use std::path::PathBuf;

use bytes::Bytes;
use mqtt::{
    Acknowledgement, Auth, ConnAck, Connect, Disconnect, Packet, PacketId, PayloadFormat,
    Properties, ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, Subscription, SubscriptionId, SubscriptionOptions, UnsubAck, Unsubscribe, Will,
    decode,
};

/// The maximum packet size the fuzz target decodes with.
const FUZZ_MAX_PACKET_SIZE: u32 = 1 << 20;

fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

fn connect(protocol: ProtocolVersion) -> Connect {
    let v5 = protocol == ProtocolVersion::V5;
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 30,
        client_id: "sensor-1".into(),
        will: Some(Will {
            topic: "status/sensor-1".into(),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: if v5 {
                Properties {
                    will_delay_interval: Some(10),
                    payload_format_indicator: Some(PayloadFormat::Utf8),
                    ..Properties::default()
                }
            } else {
                Properties::default()
            },
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"secret")),
        properties: if v5 {
            Properties {
                session_expiry_interval: Some(3600),
                receive_maximum: NonZeroU16::new(100),
                maximum_packet_size: std::num::NonZeroU32::new(1 << 20),
                topic_alias_maximum: Some(16),
                user_properties: vec![("app".into(), "demo".into())],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    }
}

fn publish(version: ProtocolVersion) -> Publish {
    Publish {
        dup: false,
        qos: PublishQos::AtLeastOnce(pid(1)),
        retain: false,
        topic: "sensors/t1/reading".into(),
        payload: Bytes::from_static(br#"{"value":21.5}"#),
        properties: if version == ProtocolVersion::V5 {
            Properties {
                message_expiry_interval: Some(60),
                content_type: Some("application/json".into()),
                response_topic: Some("replies/sensor-1".into()),
                correlation_data: Some(Bytes::from_static(b"req-1")),
                topic_alias: NonZeroU16::new(3),
                subscription_identifiers: vec![SubscriptionId::new(5).expect("valid")],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    }
}

fn subscribe(version: ProtocolVersion) -> Subscribe {
    let v5 = version == ProtocolVersion::V5;
    Subscribe {
        packet_id: pid(2),
        subscriptions: vec![
            Subscription {
                filter: "sensors/+/reading".into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    no_local: v5,
                    retain_as_published: v5,
                    retain_handling: if v5 {
                        RetainHandling::SendIfNew
                    } else {
                        RetainHandling::SendOnSubscribe
                    },
                },
            },
            Subscription {
                filter: "$share/workers/jobs/#".into(),
                options: SubscriptionOptions::new(QoS::ExactlyOnce),
            },
        ],
        properties: if v5 {
            Properties {
                subscription_identifiers: vec![SubscriptionId::new(5).expect("valid")],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    }
}

fn seeds(version: ProtocolVersion) -> Vec<(&'static str, Packet)> {
    let v5 = version == ProtocolVersion::V5;
    let reason = |code| if v5 { code } else { ReasonCode::Success };
    let mut seeds = vec![
        ("connect", Packet::Connect(Box::new(connect(version)))),
        (
            "connack",
            Packet::ConnAck(ConnAck {
                session_present: true,
                reason_code: ReasonCode::Success,
                properties: if v5 {
                    Properties {
                        assigned_client_identifier: Some("auto-1".into()),
                        maximum_qos: Some(QoS::AtLeastOnce),
                        retain_available: Some(true),
                        shared_subscription_available: Some(true),
                        server_keep_alive: Some(60),
                        ..Properties::default()
                    }
                } else {
                    Properties::default()
                },
            }),
        ),
        ("publish", Packet::Publish(publish(version))),
        (
            "puback",
            Packet::PubAck(Acknowledgement {
                packet_id: pid(1),
                reason_code: reason(ReasonCode::NoMatchingSubscribers),
                properties: Properties::default(),
            }),
        ),
        ("pubrec", Packet::PubRec(Acknowledgement::success(pid(4)))),
        ("pubrel", Packet::PubRel(Acknowledgement::success(pid(4)))),
        ("pubcomp", Packet::PubComp(Acknowledgement::success(pid(4)))),
        ("subscribe", Packet::Subscribe(subscribe(version))),
        (
            "suback",
            Packet::SubAck(SubAck {
                packet_id: pid(2),
                reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
                properties: Properties::default(),
            }),
        ),
        (
            "unsubscribe",
            Packet::Unsubscribe(Unsubscribe {
                packet_id: pid(3),
                filters: vec!["sensors/+/reading".into()],
                properties: Properties::default(),
            }),
        ),
        (
            "unsuback",
            Packet::UnsubAck(UnsubAck {
                packet_id: pid(3),
                reason_codes: if v5 {
                    vec![ReasonCode::Success]
                } else {
                    Vec::new()
                },
                properties: Properties::default(),
            }),
        ),
        ("pingreq", Packet::PingReq),
        ("pingresp", Packet::PingResp),
        (
            "disconnect",
            Packet::Disconnect(Disconnect::new(reason(
                ReasonCode::DisconnectWithWillMessage,
            ))),
        ),
    ];
    if v5 {
        seeds.push((
            "auth",
            Packet::Auth(Auth {
                reason_code: ReasonCode::ContinueAuthentication,
                properties: Properties {
                    authentication_method: Some("SCRAM-SHA-256".into()),
                    authentication_data: Some(Bytes::from_static(b"client-first")),
                    ..Properties::default()
                },
            }),
        ));
    }
    seeds
}

/// (name, hex): refused in the name's version for the name's kind.
const BAD: &[(&str, &str)] = &[
    ("bad-v5-reserved_packet_type-zero", "00 00"),
    ("bad-v311-reserved_packet_type-auth", "f0 00"),
    ("bad-v5-reserved_flags-pingreq", "c1 00"),
    ("bad-v311-reserved_flags-pubrel", "60 02 000b"),
    ("bad-v5-invalid_qos-publish", "36 05 0001 61 0001"),
    (
        "bad-v5-malformed_variable_integer-fivebytes",
        "30 ff ff ff ff 7f",
    ),
    ("bad-v5-malformed_variable_integer-overlong", "c0 80 00"),
    ("bad-v5-packet_too_large-header", "30 ff ff 7f"),
    ("bad-v5-truncated-topic", "30 02 0005"),
    ("bad-v311-trailing_bytes-pingreq", "c0 01 00"),
    ("bad-v311-invalid_utf8-surrogate", "30 05 0003 eda080"),
    ("bad-v311-null_character-topic", "30 04 0001 00 78"),
    (
        "bad-v311-invalid_protocol_name-mqtx",
        "10 0d 0004 4d515458 04 02 003c 0001 61",
    ),
    (
        "bad-v311-unsupported_protocol_version-mqisdp",
        "10 0f 0006 4d5149736470 03 02 003c 0001 61",
    ),
    (
        "bad-v311-reserved_connect_flag-bit0",
        "10 0d 0004 4d515454 04 03 003c 0001 61",
    ),
    (
        "bad-v311-will_flags_without_will-qos",
        "10 0d 0004 4d515454 04 0a 003c 0001 61",
    ),
    (
        "bad-v311-password_without_username-flags",
        "10 10 0004 4d515454 04 42 003c 0001 61 0001 70",
    ),
    ("bad-v311-reserved_connack_flags-bit1", "20 02 02 00"),
    (
        "bad-v311-session_present_on_refusal-notauthorized",
        "20 02 01 05",
    ),
    ("bad-v311-zero_packet_id-publish", "32 05 0001 61 0000"),
    ("bad-v311-dup_at_qos0-publish", "38 03 0001 61"),
    ("bad-v311-topic_name_invalid-wildcard", "30 05 0003 612f2b"),
    (
        "bad-v311-topic_filter_invalid-hashmiddle",
        "82 0a 0001 0005 612f232f62 00",
    ),
    ("bad-v5-empty_topic_without_alias-publish", "30 03 0000 00"),
    ("bad-v311-no_topic_filters-subscribe", "82 02 0001"),
    ("bad-v5-no_reason_codes-unsuback", "b0 03 0003 00"),
    (
        "bad-v311-reserved_subscription_options-nolocal",
        "82 06 0001 0001 61 04",
    ),
    (
        "bad-v5-invalid_retain_handling-three",
        "82 07 0001 00 0001 61 30",
    ),
    (
        "bad-v5-no_local_on_shared_subscription-share",
        "82 10 0001 00 000a 247368617265 2f672f78 04",
    ),
    ("bad-v5-invalid_reason_code-puback", "40 03 000a 92"),
    (
        "bad-v5-unknown_property-connect",
        "10 10 0004 4d515454 05 02 003c 02 7f 00 0001 61",
    ),
    (
        "bad-v5-property_not_allowed-topicalias",
        "10 11 0004 4d515454 05 02 003c 03 23 0001 0001 61",
    ),
    (
        "bad-v5-duplicate_property-sessionexpiry",
        "10 18 0004 4d515454 05 02 003c 0a 11 00000001 11 00000002 0001 61",
    ),
    (
        "bad-v5-invalid_property_value-receivemaximum",
        "10 11 0004 4d515454 05 02 003c 03 21 0000 0001 61",
    ),
    (
        "bad-v5-auth_data_without_method-connect",
        "10 12 0004 4d515454 05 02 003c 04 16 0001 01 0001 61",
    ),
];

/// What pipelining clients send in one write: CONNECT and requests straight after it, and
/// runs of one request without waiting for the answers (the shapes that once lost replies).
fn pipelined(version: ProtocolVersion) -> Vec<(&'static str, Vec<Packet>)> {
    let connect = || Packet::Connect(Box::new(connect(version)));
    let qos1 = |n: u16| {
        Packet::Publish(Publish {
            qos: PublishQos::AtLeastOnce(pid(n)),
            ..publish(version)
        })
    };
    let qos2 = |n: u16| {
        Packet::Publish(Publish {
            qos: PublishQos::ExactlyOnce(pid(n)),
            ..publish(version)
        })
    };
    let ids = 1..=200u16;
    vec![
        (
            "connect-subscribe",
            vec![connect(), Packet::Subscribe(subscribe(version))],
        ),
        ("connect-pingreq", vec![connect(), Packet::PingReq]),
        ("connect-publish", vec![connect(), qos1(1)]),
        (
            "pingreqs",
            std::iter::once(connect())
                .chain(ids.clone().map(|_| Packet::PingReq))
                .collect(),
        ),
        (
            "qos1-publishes",
            std::iter::once(connect())
                .chain(ids.clone().map(qos1))
                .collect(),
        ),
        (
            "qos2-publishes-and-pubrels",
            std::iter::once(connect())
                .chain(
                    ids.clone()
                        .flat_map(|n| [qos2(n), Packet::PubRel(Acknowledgement::success(pid(n)))]),
                )
                .collect(),
        ),
        (
            "subscribes-and-unsubscribes",
            std::iter::once(connect())
                .chain(ids.flat_map(|n| {
                    [
                        Packet::Subscribe(Subscribe {
                            packet_id: pid(n),
                            ..subscribe(version)
                        }),
                        Packet::Unsubscribe(Unsubscribe {
                            packet_id: pid(n),
                            filters: vec!["sensors/+/reading".into()],
                            properties: Properties::default(),
                        }),
                    ]
                }))
                .collect(),
        ),
    ]
}

fn version_named(name: &str) -> ProtocolVersion {
    match name {
        "v311" => ProtocolVersion::V311,
        "v5" => ProtocolVersion::V5,
        other => panic!("unknown version {other:?} in a corpus file name"),
    }
}

fn expected_files() -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for (label, version) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        let mut stream = Vec::new();
        for (name, packet) in seeds(version) {
            let wire = packet.to_bytes(version).expect("seed encodes");
            stream.extend_from_slice(&wire);
            files.push((format!("seed-{label}-{name}"), wire));
        }
        // A whole session in one input, for the fuzzer to splice.
        files.push((format!("seed-{label}-stream"), stream));
        for (name, packets) in pipelined(version) {
            let mut wire = Vec::new();
            for packet in packets {
                wire.extend_from_slice(&packet.to_bytes(version).expect("seed encodes"));
            }
            files.push((format!("seed-{label}-pipelined-{name}"), wire));
        }
    }
    for (name, hex_text) in BAD {
        let compact: String = hex_text.split_whitespace().collect();
        files.push(((*name).to_owned(), hex::decode(compact).expect("hex")));
    }
    files
}

/// The names of the files in `dir`.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("corpus dir")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/mqtt_packet")
}

#[test]
fn seeds_are_the_known_answers_and_bad_inputs_are_refused_for_their_reason() {
    let dir = corpus_dir();
    let bless = std::env::var_os("MQTT_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).expect("corpus dir");
    }
    for (name, bytes) in expected_files() {
        let path = dir.join(&name);
        if bless {
            std::fs::write(&path, &bytes).expect("write seed");
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            hex::encode(&committed),
            hex::encode(&bytes),
            "{name} differs from what the encoder produces (MQTT_BLESS=1 to accept a deliberate change)"
        );
        let (label, rest) = name
            .split_once('-')
            .and_then(|(_, rest)| rest.split_once('-'))
            .unwrap_or_else(|| panic!("{name}: expected <seed|bad>-<version>-…"));
        let version = version_named(label);
        if name.starts_with("bad-") {
            let kind = rest.rsplit_once('-').map_or(rest, |(kind, _)| kind);
            let refusal = decode(&committed, version, FUZZ_MAX_PACKET_SIZE).expect_err(&name);
            assert_eq!(refusal.kind(), kind, "{name}: {refusal}");
            let message = refusal.to_string();
            assert!(!message.chars().any(char::is_control), "{message:?}");
        } else {
            let mut offset = 0;
            while offset < committed.len() {
                let (packet, used) = decode(&committed[offset..], version, FUZZ_MAX_PACKET_SIZE)
                    .unwrap_or_else(|e| panic!("{name} at {offset}: {e}"))
                    .unwrap_or_else(|| panic!("{name} at {offset}: incomplete"));
                assert_eq!(
                    packet.to_bytes(version).expect("re-encodes"),
                    committed[offset..offset + used]
                );
                offset += used;
            }
        }
    }
}

/// The `mqtt_session` target's seeds: a split byte (the middle), then one client's session,
/// as every `seed-*-stream` and `seed-*-pipelined-*` of `mqtt_packet` has it.
fn session_seeds() -> Vec<(String, Vec<u8>)> {
    expected_files()
        .into_iter()
        .filter(|(name, _)| name.ends_with("-stream") || name.contains("-pipelined-"))
        .map(|(name, wire)| {
            let mut seed = vec![0x80];
            seed.extend_from_slice(&wire);
            (name, seed)
        })
        .collect()
}

#[test]
fn the_session_seeds_are_the_packet_seeds_with_a_split_byte() {
    let dir = corpus_dir().join("../mqtt_session");
    let bless = std::env::var_os("MQTT_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).expect("corpus dir");
    }
    let expected = session_seeds();
    for (name, bytes) in &expected {
        let path = dir.join(name);
        if bless {
            std::fs::write(&path, bytes).expect("write seed");
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == *bytes,
            "{name} differs from what the encoder produces (MQTT_BLESS=1 to accept a deliberate change)"
        );
    }
    for name in file_names(&dir) {
        assert!(
            expected.iter().any(|(n, _)| *n == name),
            "{name} is committed but not produced by this test"
        );
    }
}

#[test]
fn the_corpus_holds_nothing_unexplained() {
    let expected: std::collections::BTreeSet<String> =
        expected_files().into_iter().map(|(name, _)| name).collect();
    for name in file_names(&corpus_dir()) {
        assert!(
            expected.contains(&name) || !(name.starts_with("seed-") || name.starts_with("bad-")),
            "{name} is committed but not produced by this test"
        );
    }
}
