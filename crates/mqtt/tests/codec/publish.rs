//! PUBLISH and its acknowledgements PUBACK, PUBREC, PUBREL, PUBCOMP (§3.3–3.7), with their
//! malformed twins.

use std::num::NonZeroU16;

use bytes::Bytes;
use mqtt::{
    Acknowledgement, Error, Packet, PacketType, PayloadFormat, Properties, PropertyContext,
    PropertyId, Publish, PublishQos, ReasonCode, SubscriptionId,
};

use crate::{V5, V311, accepted_non_canonical, not_encodable, pid, refused, valid};

fn publish(qos: PublishQos, topic: &str, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        payload: Bytes::from_static(payload),
        properties: Properties::default(),
    }
}

#[test]
fn v311_publish() {
    valid(
        V311,
        "30 07 0003 612f62 6869",
        Packet::Publish(publish(PublishQos::AtMostOnce, "a/b", b"hi")),
    );
    let mut resent = publish(PublishQos::AtLeastOnce(pid(10)), "a", b"x");
    resent.dup = true;
    resent.retain = true;
    valid(V311, "3b 06 0001 61 000a 78", Packet::Publish(resent));
    // An empty payload, QoS 2.
    valid(
        V311,
        "34 05 0001 61 ffff",
        Packet::Publish(publish(PublishQos::ExactlyOnce(pid(0xffff)), "a", b"")),
    );
}

#[test]
fn v5_publish() {
    valid(
        V5,
        "30 05 0001 74 00 78",
        Packet::Publish(publish(PublishQos::AtMostOnce, "t", b"x")),
    );
    let mut full = publish(PublishQos::ExactlyOnce(pid(1)), "t", b"ok");
    full.properties = Properties {
        payload_format_indicator: Some(PayloadFormat::Utf8),
        message_expiry_interval: Some(60),
        content_type: Some("ct".into()),
        response_topic: Some("r".into()),
        correlation_data: Some(Bytes::from_static(b"c")),
        subscription_identifiers: vec![
            SubscriptionId::new(1).expect("valid"),
            SubscriptionId::new(2).expect("valid"),
        ],
        topic_alias: NonZeroU16::new(5),
        ..Properties::default()
    };
    valid(
        V5,
        "34 23 0001 74 0001 1b 01 01 02 0000003c 03 0002 6374 08 0001 72 09 0001 63 0b 01 0b 02 \
         23 0005 6f6b",
        Packet::Publish(full),
    );
    // An empty topic name stands for the topic alias.
    let mut aliased = publish(PublishQos::AtMostOnce, "", b"");
    aliased.properties.topic_alias = NonZeroU16::new(5);
    valid(V5, "30 06 0000 03 23 0005", Packet::Publish(aliased));
    // A subscription identifier needing a multi-byte variable integer.
    let mut big_id = publish(PublishQos::AtMostOnce, "t", b"");
    big_id.properties.subscription_identifiers =
        vec![SubscriptionId::new(268_435_455).expect("max")];
    valid(V5, "30 09 0001 74 05 0b ffffff7f", Packet::Publish(big_id));
}

#[test]
fn publish_twins() {
    // QoS 3.
    assert_eq!(refused(V311, "36 05 0001 61 0001"), Error::InvalidQos(3));
    // DUP at QoS 0.
    assert_eq!(refused(V311, "38 03 0001 61"), Error::DupAtQos0);
    // Packet identifier 0 at QoS 1.
    let zero = refused(V311, "32 05 0001 61 0000");
    assert_eq!(zero, Error::ZeroPacketId(PacketType::Publish));
    assert_eq!(zero.reason_code(), ReasonCode::ProtocolError);
    // Wildcards in a topic name.
    for hex_text in ["30 05 0003 612f2b", "30 05 0003 612f23", "30 03 0001 23"] {
        let error = refused(V311, hex_text);
        assert!(
            matches!(error, Error::TopicNameInvalid { .. }),
            "{hex_text}: {error}"
        );
        assert_eq!(error.reason_code(), ReasonCode::TopicNameInvalid);
    }
    // An empty topic name: in 3.1.1 always, in 5.0 without a topic alias.
    assert!(matches!(
        refused(V311, "30 02 0000"),
        Error::TopicNameInvalid { .. }
    ));
    assert_eq!(refused(V5, "30 03 0000 00"), Error::EmptyTopicWithoutAlias);
    // A topic with U+0000, with a lone surrogate (CESU-8), with invalid UTF-8.
    assert_eq!(
        refused(V311, "30 04 0001 00 78"),
        Error::NullCharacter { what: "topic name" }
    );
    assert_eq!(
        refused(V311, "30 05 0003 eda080"),
        Error::InvalidUtf8 { what: "topic name" }
    );
    assert_eq!(
        refused(V311, "30 04 0001 ff 00"),
        Error::InvalidUtf8 { what: "topic name" }
    );
    // The topic length runs past the packet.
    assert!(matches!(
        refused(V311, "30 02 0005"),
        Error::Truncated {
            what: "topic name",
            ..
        }
    ));
}

#[test]
fn v5_publish_property_twins() {
    // Topic Alias 0.
    assert!(matches!(
        refused(V5, "30 07 0001 74 03 23 0000"),
        Error::InvalidPropertyValue {
            property: PropertyId::TopicAlias,
            ..
        }
    ));
    // Topic Alias twice.
    assert_eq!(
        refused(V5, "30 0a 0001 74 06 23 0001 23 0002"),
        Error::DuplicateProperty(PropertyId::TopicAlias)
    );
    // Session Expiry Interval is not a PUBLISH property.
    assert_eq!(
        refused(V5, "30 09 0001 74 05 11 00000001"),
        Error::PropertyNotAllowed {
            property: PropertyId::SessionExpiryInterval,
            context: PropertyContext::Publish
        }
    );
    // A Response Topic with a wildcard.
    assert!(matches!(
        refused(V5, "30 08 0001 74 04 08 0001 23"),
        Error::TopicNameInvalid { .. }
    ));
    // Subscription Identifier 0.
    assert!(matches!(
        refused(V5, "30 06 0001 74 02 0b 00"),
        Error::InvalidPropertyValue {
            property: PropertyId::SubscriptionIdentifier,
            ..
        }
    ));
    // Payload Format Indicator 2.
    assert!(matches!(
        refused(V5, "30 06 0001 74 02 01 02"),
        Error::InvalidPropertyValue {
            property: PropertyId::PayloadFormatIndicator,
            ..
        }
    ));
    // A property length that is not in its shortest form.
    assert!(matches!(
        refused(V5, "30 05 0001 74 80 00"),
        Error::MalformedVariableInteger { .. }
    ));
    // The property length runs past the packet.
    assert!(matches!(
        refused(V5, "30 04 0001 74 05"),
        Error::Truncated { .. }
    ));
}

#[test]
fn publish_encoding_twins() {
    let mut dup = publish(PublishQos::AtMostOnce, "t", b"");
    dup.dup = true;
    assert_eq!(not_encodable(V311, &Packet::Publish(dup)), Error::DupAtQos0);
    assert!(matches!(
        not_encodable(
            V5,
            &Packet::Publish(publish(PublishQos::AtMostOnce, "a/+", b""))
        ),
        Error::TopicNameInvalid { .. }
    ));
    // An alias is not something 3.1.1 can carry, so the empty topic is invalid there.
    let mut aliased = publish(PublishQos::AtMostOnce, "", b"");
    aliased.properties.topic_alias = NonZeroU16::new(5);
    assert!(matches!(
        not_encodable(V311, &Packet::Publish(aliased)),
        Error::TopicNameInvalid { .. }
    ));
}

#[test]
fn publish_properties_are_dropped_for_v311() {
    let mut with_properties = publish(PublishQos::AtMostOnce, "t", b"x");
    with_properties.properties.user_properties = vec![("k".into(), "v".into())];
    assert_eq!(
        Packet::Publish(with_properties)
            .to_bytes(V311)
            .expect("encodes"),
        crate::bytes("30 04 0001 74 78")
    );
}

fn ack(packet_id: u16, reason_code: ReasonCode) -> Acknowledgement {
    Acknowledgement {
        packet_id: pid(packet_id),
        reason_code,
        properties: Properties::default(),
    }
}

#[test]
fn v311_acknowledgements() {
    valid(
        V311,
        "40 02 000a",
        Packet::PubAck(ack(10, ReasonCode::Success)),
    );
    valid(
        V311,
        "50 02 000b",
        Packet::PubRec(ack(11, ReasonCode::Success)),
    );
    valid(
        V311,
        "62 02 000b",
        Packet::PubRel(ack(11, ReasonCode::Success)),
    );
    valid(
        V311,
        "70 02 000b",
        Packet::PubComp(ack(11, ReasonCode::Success)),
    );
}

#[test]
fn v5_acknowledgements() {
    valid(
        V5,
        "40 02 000a",
        Packet::PubAck(ack(10, ReasonCode::Success)),
    );
    valid(
        V5,
        "40 03 000a 10",
        Packet::PubAck(ack(10, ReasonCode::NoMatchingSubscribers)),
    );
    let mut with_reason = ack(10, ReasonCode::NotAuthorized);
    with_reason.properties.reason_string = Some("no".into());
    valid(
        V5,
        "40 09 000a 87 05 1f 0002 6e6f",
        Packet::PubAck(with_reason),
    );
    valid(
        V5,
        "50 03 000b 97",
        Packet::PubRec(ack(11, ReasonCode::QuotaExceeded)),
    );
    valid(
        V5,
        "62 03 000b 92",
        Packet::PubRel(ack(11, ReasonCode::PacketIdentifierNotFound)),
    );
    valid(
        V5,
        "70 03 000b 92",
        Packet::PubComp(ack(11, ReasonCode::PacketIdentifierNotFound)),
    );
    // Success written out with an empty property list: the same packet.
    accepted_non_canonical(
        V5,
        "40 04 000a 00 00",
        Packet::PubAck(ack(10, ReasonCode::Success)),
    );
    accepted_non_canonical(
        V5,
        "40 03 000a 00",
        Packet::PubAck(ack(10, ReasonCode::Success)),
    );
}

#[test]
fn acknowledgement_twins() {
    assert_eq!(
        refused(V311, "40 02 0000"),
        Error::ZeroPacketId(PacketType::PubAck)
    );
    // 3.1.1 acknowledgements are exactly two bytes.
    assert!(matches!(
        refused(V311, "40 03 000a 00"),
        Error::TrailingBytes { extra: 1, .. }
    ));
    // PUBREL's flags are 0b0010.
    assert_eq!(
        refused(V311, "60 02 000b"),
        Error::ReservedFlags {
            packet: PacketType::PubRel,
            flags: 0,
            expected: 2
        }
    );
    assert!(matches!(
        refused(V311, "42 02 000b"),
        Error::ReservedFlags { .. }
    ));
    // 0x92 belongs to PUBREL/PUBCOMP, 0x10 to PUBACK/PUBREC, 0x03 to nothing.
    assert!(matches!(
        refused(V5, "40 03 000a 92"),
        Error::InvalidReasonCode { code: 0x92, .. }
    ));
    assert!(matches!(
        refused(V5, "62 03 000a 10"),
        Error::InvalidReasonCode { code: 0x10, .. }
    ));
    assert!(matches!(
        refused(V5, "40 03 000a 03"),
        Error::InvalidReasonCode { code: 0x03, .. }
    ));
    // A Topic Alias in PUBACK.
    assert_eq!(
        refused(V5, "40 07 000a 00 03 23 0001"),
        Error::PropertyNotAllowed {
            property: PropertyId::TopicAlias,
            context: PropertyContext::PubAck
        }
    );
    // Too short for a packet identifier.
    assert!(matches!(refused(V5, "40 01 00"), Error::Truncated { .. }));
}

#[test]
fn acknowledgement_reason_codes_are_checked_when_encoding() {
    assert!(matches!(
        not_encodable(V5, &Packet::PubRel(ack(1, ReasonCode::NotAuthorized))),
        Error::InvalidReasonCode { .. }
    ));
    // 3.1.1 has no reason codes: the acknowledgement is just the identifier.
    assert_eq!(
        Packet::PubAck(ack(1, ReasonCode::NotAuthorized))
            .to_bytes(V311)
            .expect("encodes"),
        crate::bytes("40 02 0001")
    );
}
