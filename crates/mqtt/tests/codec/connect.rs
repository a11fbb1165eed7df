//! CONNECT and CONNACK (§3.1, §3.2), with their malformed twins.

use bytes::Bytes;
use mqtt::{
    ConnAck, Connect, Error, Packet, PayloadFormat, Properties, PropertyContext, PropertyId,
    ProtocolVersion, QoS, ReasonCode, Will,
};

use crate::{V5, V311, not_encodable, refused, valid};

fn connect(protocol: ProtocolVersion, client_id: &str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

/// "MQTT", level 4, clean session, keep alive 60, client "a".
const V311_MINIMAL: &str = "10 0d 0004 4d515454 04 02 003c 0001 61";

#[test]
fn v311_connect_minimal() {
    valid(
        V311,
        V311_MINIMAL,
        Packet::Connect(Box::new(connect(V311, "a"))),
    );
}

#[test]
fn connect_is_decoded_by_its_own_level_whatever_the_connection_version() {
    valid(
        V5,
        V311_MINIMAL,
        Packet::Connect(Box::new(connect(V311, "a"))),
    );
}

#[test]
fn v311_connect_with_will_username_password() {
    let mut expected = connect(V311, "c1");
    expected.keep_alive = 10;
    expected.will = Some(Will {
        topic: "w".into(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: Properties::default(),
    });
    expected.username = Some("u".into());
    expected.password = Some(Bytes::from_static(b"p"));
    valid(
        V311,
        "10 1c 0004 4d515454 04 ee 000a 0002 6331 0001 77 0003 627965 0001 75 0001 70",
        Packet::Connect(Box::new(expected)),
    );
}

#[test]
fn v5_connect_with_properties() {
    let mut expected = connect(V5, "a");
    expected.properties = Properties {
        session_expiry_interval: Some(3600),
        receive_maximum: std::num::NonZeroU16::new(20),
        user_properties: vec![("k".into(), "v".into())],
        ..Properties::default()
    };
    valid(
        V5,
        "10 1d 0004 4d515454 05 02 003c 0f 11 00000e10 21 0014 26 0001 6b 0001 76 0001 61",
        Packet::Connect(Box::new(expected)),
    );
}

#[test]
fn v5_connect_with_will_properties() {
    let mut expected = connect(V5, "c");
    expected.keep_alive = 0;
    expected.will = Some(Will {
        topic: "w".into(),
        payload: Bytes::from_static(b"x"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Properties {
            payload_format_indicator: Some(PayloadFormat::Utf8),
            will_delay_interval: Some(5),
            ..Properties::default()
        },
    });
    valid(
        V5,
        "10 1c 0004 4d515454 05 06 0000 00 0001 63 07 01 01 18 00000005 0001 77 0001 78",
        Packet::Connect(Box::new(expected)),
    );
}

#[test]
fn v5_allows_a_password_without_a_user_name() {
    let mut expected = connect(V5, "a");
    expected.password = Some(Bytes::from_static(b"p"));
    valid(
        V5,
        "10 11 0004 4d515454 05 42 003c 00 0001 61 0001 70",
        Packet::Connect(Box::new(expected)),
    );
}

#[test]
fn connect_twins() {
    // Protocol name "MQTX".
    assert!(matches!(
        refused(V311, "10 0d 0004 4d515458 04 02 003c 0001 61"),
        Error::InvalidProtocolName(name) if name == "MQTX"
    ));
    // MQTT 3.1 ("MQIsdp", level 3) and an unknown level 6.
    let v31 = refused(V311, "10 0f 0006 4d5149736470 03 02 003c 0001 61");
    assert_eq!(v31, Error::UnsupportedProtocolVersion(3));
    assert_eq!(v31.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    assert_eq!(
        refused(V311, "10 0d 0004 4d515454 06 02 003c 0001 61"),
        Error::UnsupportedProtocolVersion(6)
    );
    // Reserved flag bit 0.
    assert_eq!(
        refused(V311, "10 0d 0004 4d515454 04 03 003c 0001 61"),
        Error::ReservedConnectFlag
    );
    // Will QoS 1 or will retain without the will flag.
    assert_eq!(
        refused(V311, "10 0d 0004 4d515454 04 0a 003c 0001 61"),
        Error::WillFlagsWithoutWill
    );
    assert_eq!(
        refused(V5, "10 0e 0004 4d515454 05 22 003c 00 0001 61"),
        Error::WillFlagsWithoutWill
    );
    // Will QoS 3.
    assert_eq!(
        refused(
            V311,
            "10 13 0004 4d515454 04 1e 003c 0001 61 0001 77 0001 78"
        ),
        Error::InvalidQos(3)
    );
    // 3.1.1: a password without a user name.
    assert_eq!(
        refused(V311, "10 10 0004 4d515454 04 42 003c 0001 61 0001 70"),
        Error::PasswordWithoutUsername
    );
    // A will topic with a wildcard.
    assert!(matches!(
        refused(
            V311,
            "10 13 0004 4d515454 04 06 003c 0001 61 0001 23 0001 78"
        ),
        Error::TopicNameInvalid { .. }
    ));
    // A client identifier with U+0000, and one that is not UTF-8.
    assert_eq!(
        refused(V311, "10 0d 0004 4d515454 04 02 003c 0001 00"),
        Error::NullCharacter {
            what: "client identifier"
        }
    );
    assert_eq!(
        refused(V311, "10 0d 0004 4d515454 04 02 003c 0001 ff"),
        Error::InvalidUtf8 {
            what: "client identifier"
        }
    );
    // The user name flag set but the packet ends.
    assert!(matches!(
        refused(V311, "10 0d 0004 4d515454 04 82 003c 0001 61"),
        Error::Truncated {
            what: "user name",
            ..
        }
    ));
    // A byte after the last field.
    assert!(matches!(
        refused(V311, "10 0e 0004 4d515454 04 02 003c 0001 61 00"),
        Error::TrailingBytes { extra: 1, .. }
    ));
}

#[test]
fn v5_connect_property_twins() {
    // Topic Alias is a PUBLISH property.
    assert_eq!(
        refused(V5, "10 11 0004 4d515454 05 02 003c 03 23 0001 0001 61"),
        Error::PropertyNotAllowed {
            property: PropertyId::TopicAlias,
            context: PropertyContext::Connect
        }
    );
    // Session Expiry Interval twice.
    assert_eq!(
        refused(
            V5,
            "10 18 0004 4d515454 05 02 003c 0a 11 00000001 11 00000002 0001 61"
        ),
        Error::DuplicateProperty(PropertyId::SessionExpiryInterval)
    );
    // Receive Maximum 0.
    assert!(matches!(
        refused(V5, "10 11 0004 4d515454 05 02 003c 03 21 0000 0001 61"),
        Error::InvalidPropertyValue {
            property: PropertyId::ReceiveMaximum,
            value: 0,
            ..
        }
    ));
    // Request Problem Information 2.
    assert!(matches!(
        refused(V5, "10 10 0004 4d515454 05 02 003c 02 17 02 0001 61"),
        Error::InvalidPropertyValue {
            property: PropertyId::RequestProblemInformation,
            value: 2,
            ..
        }
    ));
    // Authentication Data without an Authentication Method.
    let no_method = refused(V5, "10 12 0004 4d515454 05 02 003c 04 16 0001 01 0001 61");
    assert_eq!(no_method, Error::AuthDataWithoutMethod);
    assert_eq!(no_method.reason_code(), ReasonCode::ProtocolError);
    // Property identifier 0x7f is not defined.
    let unknown = refused(V5, "10 10 0004 4d515454 05 02 003c 02 7f 00 0001 61");
    assert_eq!(unknown, Error::UnknownProperty(0x7f));
    assert_eq!(unknown.reason_code(), ReasonCode::MalformedPacket);
    // Session Expiry Interval is not a will property.
    assert_eq!(
        refused(
            V5,
            "10 1a 0004 4d515454 05 06 0000 00 0001 63 05 11 00000005 0001 77 0001 78"
        ),
        Error::PropertyNotAllowed {
            property: PropertyId::SessionExpiryInterval,
            context: PropertyContext::Will
        }
    );
    // The property length runs past the packet.
    assert!(matches!(
        refused(V5, "10 0e 0004 4d515454 05 02 003c 09 0001 61"),
        Error::Truncated {
            what: "properties",
            ..
        }
    ));
    // A user property whose value is missing.
    assert!(matches!(
        refused(V5, "10 12 0004 4d515454 05 02 003c 04 26 0001 6b 0001 61"),
        Error::Truncated { .. }
    ));
}

#[test]
fn v311_connack() {
    let ack = |session_present, reason_code| {
        Packet::ConnAck(ConnAck {
            session_present,
            reason_code,
            properties: Properties::default(),
        })
    };
    valid(V311, "20 02 00 00", ack(false, ReasonCode::Success));
    valid(V311, "20 02 01 00", ack(true, ReasonCode::Success));
    for (code, reason) in [
        (1, ReasonCode::UnsupportedProtocolVersion),
        (2, ReasonCode::ClientIdentifierNotValid),
        (3, ReasonCode::ServerUnavailable),
        (4, ReasonCode::BadUserNameOrPassword),
        (5, ReasonCode::NotAuthorized),
    ] {
        valid(V311, &format!("20 02 00 {code:02x}"), ack(false, reason));
    }
}

#[test]
fn v5_connack() {
    valid(
        V5,
        "20 03 00 00 00",
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        }),
    );
    valid(
        V5,
        "20 03 00 8a 00",
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: ReasonCode::Banned,
            properties: Properties::default(),
        }),
    );
    valid(
        V5,
        "20 0f 01 00 0c 12 0002 6964 22 000a 24 01 25 00",
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason_code: ReasonCode::Success,
            properties: Properties {
                assigned_client_identifier: Some("id".into()),
                topic_alias_maximum: Some(10),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                ..Properties::default()
            },
        }),
    );
}

#[test]
fn connack_twins() {
    // 3.1.1 return code 6 does not exist; 0x87 is an MQTT 5 code.
    assert!(matches!(
        refused(V311, "20 02 00 06"),
        Error::InvalidReasonCode { code: 6, .. }
    ));
    assert!(matches!(
        refused(V311, "20 02 00 87"),
        Error::InvalidReasonCode { code: 0x87, .. }
    ));
    // Reserved acknowledge flag bits.
    assert_eq!(refused(V311, "20 02 02 00"), Error::ReservedConnAckFlags(2));
    // A refusal with a session present.
    assert_eq!(
        refused(V311, "20 02 01 05"),
        Error::SessionPresentOnRefusal(ReasonCode::NotAuthorized)
    );
    // 0x10 (No matching subscribers) is not a CONNACK code.
    assert!(matches!(
        refused(V5, "20 03 00 10 00"),
        Error::InvalidReasonCode { code: 0x10, .. }
    ));
    // MQTT 5 CONNACK always has a property length.
    assert!(matches!(
        refused(V5, "20 02 00 00"),
        Error::Truncated { .. }
    ));
    // Maximum QoS 2 is not sent: its absence says it.
    assert!(matches!(
        refused(V5, "20 05 00 00 02 24 02"),
        Error::InvalidPropertyValue {
            property: PropertyId::MaximumQoS,
            ..
        }
    ));
}

#[test]
fn encoding_refuses_what_the_version_cannot_say() {
    let banned = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: ReasonCode::Banned,
        properties: Properties::default(),
    });
    assert!(matches!(
        not_encodable(V311, &banned),
        Error::NotInVersion { .. }
    ));
    let mut bad = connect(V311, "a");
    bad.password = Some(Bytes::from_static(b"p"));
    assert_eq!(
        not_encodable(V311, &Packet::Connect(Box::new(bad))),
        Error::PasswordWithoutUsername
    );
    let mut long = connect(V311, "a");
    long.client_id = "x".repeat(70_000);
    assert!(matches!(
        not_encodable(V311, &Packet::Connect(Box::new(long))),
        Error::FieldTooLong { len: 70_000, .. }
    ));
    let mut misplaced = connect(V5, "a");
    misplaced.properties.topic_alias = std::num::NonZeroU16::new(1);
    assert!(matches!(
        not_encodable(V5, &Packet::Connect(Box::new(misplaced))),
        Error::PropertyNotAllowed { .. }
    ));
}
