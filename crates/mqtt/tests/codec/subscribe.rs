//! SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK (§3.8–3.11), with their malformed twins.

use mqtt::{
    Error, Packet, PacketType, Properties, PropertyId, QoS, ReasonCode, RetainHandling, SubAck,
    Subscribe, Subscription, SubscriptionId, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::{V5, V311, not_encodable, pid, refused, valid};

fn subscription(filter: &str, options: SubscriptionOptions) -> Subscription {
    Subscription {
        filter: filter.into(),
        options,
    }
}

#[test]
fn v311_subscribe() {
    valid(
        V311,
        "82 0e 0001 0003 612f2b 01 0003 622f23 02",
        Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            subscriptions: vec![
                subscription("a/+", SubscriptionOptions::new(QoS::AtLeastOnce)),
                subscription("b/#", SubscriptionOptions::new(QoS::ExactlyOnce)),
            ],
            properties: Properties::default(),
        }),
    );
}

#[test]
fn v5_subscribe_with_options_and_identifier() {
    valid(
        V5,
        "82 16 0002 02 0b 07 000a 247368617265 2f672f78 29 0001 79 04",
        Packet::Subscribe(Subscribe {
            packet_id: pid(2),
            subscriptions: vec![
                subscription(
                    "$share/g/x",
                    SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: false,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                ),
                subscription(
                    "y",
                    SubscriptionOptions {
                        no_local: true,
                        ..SubscriptionOptions::new(QoS::AtMostOnce)
                    },
                ),
            ],
            properties: Properties {
                subscription_identifiers: vec![SubscriptionId::new(7).expect("valid")],
                ..Properties::default()
            },
        }),
    );
}

#[test]
fn subscribe_twins() {
    // No topic filter at all.
    let empty = refused(V311, "82 02 0001");
    assert_eq!(empty, Error::NoTopicFilters(PacketType::Subscribe));
    assert_eq!(empty.reason_code(), ReasonCode::ProtocolError);
    assert_eq!(
        refused(V5, "82 03 0001 00"),
        Error::NoTopicFilters(PacketType::Subscribe)
    );
    // Packet identifier 0.
    assert_eq!(
        refused(V311, "82 06 0000 0001 61 00"),
        Error::ZeroPacketId(PacketType::Subscribe)
    );
    // SUBSCRIBE's fixed header flags are 0b0010.
    assert!(matches!(
        refused(V311, "80 06 0001 0001 61 00"),
        Error::ReservedFlags { .. }
    ));
    // 3.1.1: options other than QoS are reserved; 5.0: bits 6 and 7 are.
    assert_eq!(
        refused(V311, "82 06 0001 0001 61 04"),
        Error::ReservedSubscriptionOptions(0x04)
    );
    assert_eq!(
        refused(V5, "82 07 0001 00 0001 61 40"),
        Error::ReservedSubscriptionOptions(0x40)
    );
    // Retain handling 3, QoS 3.
    assert_eq!(
        refused(V5, "82 07 0001 00 0001 61 30"),
        Error::InvalidRetainHandling
    );
    assert_eq!(refused(V311, "82 06 0001 0001 61 03"), Error::InvalidQos(3));
    // The options byte is missing.
    assert!(matches!(
        refused(V311, "82 05 0001 0001 61"),
        Error::Truncated { .. }
    ));
    // Misplaced wildcards, empty filters, malformed shared subscriptions.
    for filter in [
        "a/#/b",
        "a#",
        "a/b+",
        "",
        "$share/g",
        "$share//x",
        "$share/g+/x",
        "$share/g/",
    ] {
        let mut hex_text = format!(
            "82 {:02x} 0001 {:04x} ",
            2 + 2 + filter.len() + 1,
            filter.len()
        );
        hex_text.push_str(&hex::encode(filter));
        hex_text.push_str(" 00");
        let error = refused(V311, &hex_text);
        assert!(
            matches!(error, Error::TopicFilterInvalid { .. }),
            "{filter:?}: {error}"
        );
        assert_eq!(error.reason_code(), ReasonCode::TopicFilterInvalid);
    }
    // No-local on a shared subscription.
    assert!(matches!(
        refused(V5, "82 10 0001 00 000a 247368617265 2f672f78 04"),
        Error::NoLocalOnSharedSubscription(_)
    ));
    // Two subscription identifiers in one SUBSCRIBE; identifier 0.
    assert_eq!(
        refused(V5, "82 0b 0001 04 0b 01 0b 02 0001 61 00"),
        Error::DuplicateProperty(PropertyId::SubscriptionIdentifier)
    );
    assert!(matches!(
        refused(V5, "82 09 0001 02 0b 00 0001 61 00"),
        Error::InvalidPropertyValue {
            property: PropertyId::SubscriptionIdentifier,
            ..
        }
    ));
}

#[test]
fn subscribe_encoding_twins() {
    let empty = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        subscriptions: Vec::new(),
        properties: Properties::default(),
    });
    assert_eq!(
        not_encodable(V5, &empty),
        Error::NoTopicFilters(PacketType::Subscribe)
    );
    let two_ids = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        subscriptions: vec![subscription("a", SubscriptionOptions::new(QoS::AtMostOnce))],
        properties: Properties {
            subscription_identifiers: vec![
                SubscriptionId::new(1).expect("valid"),
                SubscriptionId::new(2).expect("valid"),
            ],
            ..Properties::default()
        },
    });
    assert_eq!(
        not_encodable(V5, &two_ids),
        Error::DuplicateProperty(PropertyId::SubscriptionIdentifier)
    );
    let bad_filter = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        subscriptions: vec![subscription(
            "a/#/b",
            SubscriptionOptions::new(QoS::AtMostOnce),
        )],
        properties: Properties::default(),
    });
    assert!(matches!(
        not_encodable(V311, &bad_filter),
        Error::TopicFilterInvalid { .. }
    ));
}

#[test]
fn suback() {
    valid(
        V311,
        "90 04 0001 01 80",
        Packet::SubAck(SubAck {
            packet_id: pid(1),
            reason_codes: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
            properties: Properties::default(),
        }),
    );
    valid(
        V5,
        "90 05 0002 00 02 a2",
        Packet::SubAck(SubAck {
            packet_id: pid(2),
            reason_codes: vec![
                ReasonCode::GrantedQoS2,
                ReasonCode::WildcardSubscriptionsNotSupported,
            ],
            properties: Properties::default(),
        }),
    );
    // 3.1.1 has one failure code: every refusal becomes 0x80.
    let refusal = Packet::SubAck(SubAck {
        packet_id: pid(1),
        reason_codes: vec![ReasonCode::NotAuthorized, ReasonCode::Success],
        properties: Properties::default(),
    });
    assert_eq!(
        refusal.to_bytes(V311).expect("encodes"),
        crate::bytes("90 04 0001 80 00")
    );
}

#[test]
fn suback_twins() {
    assert!(matches!(
        refused(V311, "90 03 0001 03"),
        Error::InvalidReasonCode { code: 3, .. }
    ));
    assert_eq!(
        refused(V311, "90 02 0001"),
        Error::NoReasonCodes(PacketType::SubAck)
    );
    assert!(matches!(
        refused(V5, "90 04 0001 00 92"),
        Error::InvalidReasonCode { code: 0x92, .. }
    ));
    assert_eq!(
        refused(V5, "90 03 0001 00"),
        Error::NoReasonCodes(PacketType::SubAck)
    );
}

#[test]
fn unsubscribe() {
    valid(
        V311,
        "a2 05 0003 0001 61",
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(3),
            filters: vec!["a".into()],
            properties: Properties::default(),
        }),
    );
    valid(
        V5,
        "a2 0b 0003 00 0001 61 0003 622f23",
        Packet::Unsubscribe(Unsubscribe {
            packet_id: pid(3),
            filters: vec!["a".into(), "b/#".into()],
            properties: Properties::default(),
        }),
    );
}

#[test]
fn unsubscribe_twins() {
    assert_eq!(
        refused(V311, "a2 02 0003"),
        Error::NoTopicFilters(PacketType::Unsubscribe)
    );
    assert!(matches!(
        refused(V311, "a2 06 0003 0002 2b2b"),
        Error::TopicFilterInvalid { .. }
    ));
    assert!(matches!(
        refused(V311, "a0 05 0003 0001 61"),
        Error::ReservedFlags { .. }
    ));
    assert_eq!(
        refused(V311, "a2 05 0000 0001 61"),
        Error::ZeroPacketId(PacketType::Unsubscribe)
    );
}

#[test]
fn unsuback() {
    valid(
        V311,
        "b0 02 0003",
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(3),
            reason_codes: Vec::new(),
            properties: Properties::default(),
        }),
    );
    valid(
        V5,
        "b0 05 0003 00 00 11",
        Packet::UnsubAck(UnsubAck {
            packet_id: pid(3),
            reason_codes: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            properties: Properties::default(),
        }),
    );
}

#[test]
fn unsuback_twins() {
    assert!(matches!(
        refused(V311, "b0 03 0003 00"),
        Error::TrailingBytes { .. }
    ));
    assert_eq!(
        refused(V5, "b0 03 0003 00"),
        Error::NoReasonCodes(PacketType::UnsubAck)
    );
    assert!(matches!(
        refused(V5, "b0 04 0003 00 01"),
        Error::InvalidReasonCode { code: 1, .. }
    ));
}
