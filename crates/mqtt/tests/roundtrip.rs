//! decode(encode(p)) == p over many packets from a small deterministic generator: every packet
//! type, both versions, random properties (each one its context allows), multi-byte strings,
//! shared subscriptions and payloads that need multi-byte remaining lengths.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;
use mqtt::{
    Acknowledgement, Auth, ConnAck, Connect, Decoder, Disconnect, MAX_PACKET_SIZE, Packet,
    PacketId, PacketType, PayloadFormat, Properties, PropertyContext, PropertyId, ProtocolVersion,
    Publish, PublishQos, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionId, SubscriptionOptions, UnsubAck, Unsubscribe, Will, decode,
};

/// SplitMix64: small, deterministic, good enough to pick shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn u16(&mut self) -> u16 {
        self.next() as u16
    }

    fn u32(&mut self) -> u32 {
        self.next() as u32
    }

    fn bool(&mut self) -> bool {
        self.chance(50)
    }

    fn qos(&mut self) -> QoS {
        self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
    }

    fn packet_id(&mut self) -> PacketId {
        PacketId::new(self.u16().max(1)).expect("non-zero")
    }

    /// Text of up to `max` characters, some outside ASCII, never U+0000, `+`, `#` or `/`.
    fn word(&mut self, max: usize) -> String {
        const CHARS: &[char] = &['a', 'b', 'z', '0', '9', '-', '_', ' ', '$', 'é', '€', '😀'];
        (0..self.below(max + 1)).map(|_| self.pick(CHARS)).collect()
    }

    fn text(&mut self) -> String {
        let mut text = self.word(12);
        if self.chance(20) {
            text.push_str("/+#");
        }
        text
    }

    fn topic_name(&mut self) -> String {
        let levels = 1 + self.below(4);
        let mut topic: Vec<String> = (0..levels).map(|_| self.word(6)).collect();
        if topic.iter().all(String::is_empty) {
            topic[0] = "t".into();
        }
        topic.join("/")
    }

    fn topic_filter(&mut self) -> String {
        let levels = 1 + self.below(4);
        let mut filter: Vec<String> = (0..levels)
            .map(|_| {
                if self.chance(25) {
                    "+".into()
                } else {
                    self.word(5)
                }
            })
            .collect();
        if self.chance(25) {
            filter.push("#".into());
        }
        let mut filter = filter.join("/");
        if filter.is_empty() {
            filter.push('f');
        }
        if self.chance(15) {
            let group = self.word(4);
            let group = if group.is_empty() { "g".into() } else { group };
            return format!("$share/{group}/{filter}");
        }
        filter
    }

    fn bytes(&mut self, max: usize) -> Bytes {
        let len = self.below(max + 1);
        (0..len)
            .map(|_| self.next() as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    fn reason(&mut self, packet: PacketType) -> ReasonCode {
        let allowed: Vec<ReasonCode> = (0..=255u8)
            .filter_map(ReasonCode::from_value)
            .filter(|code| code.is_allowed_in(packet))
            .collect();
        self.pick(&allowed)
    }

    fn properties(&mut self, version: ProtocolVersion, context: PropertyContext) -> Properties {
        let mut properties = Properties::default();
        if version == ProtocolVersion::V311 {
            return properties;
        }
        let ids: Vec<PropertyId> = (0..=0x2Au32)
            .filter_map(PropertyId::from_value)
            .filter(|id| id.is_allowed_in(context))
            .collect();
        for id in ids {
            if !self.chance(30) {
                continue;
            }
            use PropertyId as P;
            match id {
                P::PayloadFormatIndicator => {
                    properties.payload_format_indicator =
                        Some(self.pick(&[PayloadFormat::Unspecified, PayloadFormat::Utf8]));
                }
                P::MessageExpiryInterval => properties.message_expiry_interval = Some(self.u32()),
                P::ContentType => properties.content_type = Some(self.text()),
                P::ResponseTopic => properties.response_topic = Some(self.topic_name()),
                P::CorrelationData => properties.correlation_data = Some(self.bytes(20)),
                P::SubscriptionIdentifier => {
                    let count = if id.may_repeat_in(context) {
                        1 + self.below(3)
                    } else {
                        1
                    };
                    properties.subscription_identifiers = (0..count)
                        .map(|_| {
                            let value = self.pick(&[1, 127, 128, 16_383, 16_384, 268_435_455]);
                            SubscriptionId::new(value).expect("in range")
                        })
                        .collect();
                }
                P::SessionExpiryInterval => properties.session_expiry_interval = Some(self.u32()),
                P::AssignedClientIdentifier => {
                    properties.assigned_client_identifier = Some(self.text());
                }
                P::ServerKeepAlive => properties.server_keep_alive = Some(self.u16()),
                P::AuthenticationMethod => properties.authentication_method = Some(self.text()),
                P::AuthenticationData => {
                    if properties.authentication_method.is_some() {
                        properties.authentication_data = Some(self.bytes(16));
                    }
                }
                P::RequestProblemInformation => {
                    properties.request_problem_information = Some(self.bool());
                }
                P::WillDelayInterval => properties.will_delay_interval = Some(self.u32()),
                P::RequestResponseInformation => {
                    properties.request_response_information = Some(self.bool());
                }
                P::ResponseInformation => properties.response_information = Some(self.text()),
                P::ServerReference => properties.server_reference = Some(self.text()),
                P::ReasonString => properties.reason_string = Some(self.text()),
                P::ReceiveMaximum => {
                    properties.receive_maximum = NonZeroU16::new(self.u16().max(1))
                }
                P::TopicAliasMaximum => properties.topic_alias_maximum = Some(self.u16()),
                P::TopicAlias => properties.topic_alias = NonZeroU16::new(self.u16().max(1)),
                P::MaximumQoS => {
                    properties.maximum_qos = Some(self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce]));
                }
                P::RetainAvailable => properties.retain_available = Some(self.bool()),
                P::UserProperty => {
                    properties.user_properties = (0..1 + self.below(3))
                        .map(|_| (self.text(), self.text()))
                        .collect();
                }
                P::MaximumPacketSize => {
                    properties.maximum_packet_size = NonZeroU32::new(self.u32().max(1));
                }
                P::WildcardSubscriptionAvailable => {
                    properties.wildcard_subscription_available = Some(self.bool());
                }
                P::SubscriptionIdentifierAvailable => {
                    properties.subscription_identifier_available = Some(self.bool());
                }
                P::SharedSubscriptionAvailable => {
                    properties.shared_subscription_available = Some(self.bool());
                }
            }
        }
        properties
    }

    fn ack(&mut self, version: ProtocolVersion, packet: PacketType) -> Acknowledgement {
        let context = PropertyContext::of(packet).expect("acknowledgements have properties");
        match version {
            ProtocolVersion::V311 => Acknowledgement::success(self.packet_id()),
            ProtocolVersion::V5 => Acknowledgement {
                packet_id: self.packet_id(),
                reason_code: self.reason(packet),
                properties: self.properties(version, context),
            },
        }
    }

    fn packet(&mut self, version: ProtocolVersion) -> Packet {
        let v5 = version == ProtocolVersion::V5;
        match self.below(if v5 { 15 } else { 14 }) {
            0 => {
                let username = self.chance(50).then(|| self.text());
                let password = (v5 || username.is_some())
                    .then(|| self.bytes(12))
                    .filter(|_| self.bool());
                let will = self.chance(40).then(|| Will {
                    topic: self.topic_name(),
                    payload: self.bytes(30),
                    qos: self.qos(),
                    retain: self.bool(),
                    properties: self.properties(version, PropertyContext::Will),
                });
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start: self.bool(),
                    keep_alive: self.u16(),
                    client_id: self.word(23),
                    will,
                    username,
                    password,
                    properties: self.properties(version, PropertyContext::Connect),
                }))
            }
            1 => {
                let reason_code = if v5 {
                    self.reason(PacketType::ConnAck)
                } else {
                    self.pick(&[
                        ReasonCode::Success,
                        ReasonCode::UnsupportedProtocolVersion,
                        ReasonCode::ClientIdentifierNotValid,
                        ReasonCode::ServerUnavailable,
                        ReasonCode::BadUserNameOrPassword,
                        ReasonCode::NotAuthorized,
                    ])
                };
                Packet::ConnAck(ConnAck {
                    session_present: reason_code == ReasonCode::Success && self.bool(),
                    reason_code,
                    properties: self.properties(version, PropertyContext::ConnAck),
                })
            }
            2 => {
                let qos = PublishQos::new(self.qos(), self.packet_id());
                let properties = self.properties(version, PropertyContext::Publish);
                let topic = if properties.topic_alias.is_some() && self.bool() {
                    String::new()
                } else {
                    self.topic_name()
                };
                // Now and then a payload that needs a three-byte remaining length.
                let payload = if self.chance(5) {
                    Bytes::from(vec![0x5A; 20_000 + self.below(1000)])
                } else {
                    self.bytes(300)
                };
                Packet::Publish(Publish {
                    dup: qos != PublishQos::AtMostOnce && self.bool(),
                    qos,
                    retain: self.bool(),
                    topic,
                    payload,
                    properties,
                })
            }
            3 => Packet::PubAck(self.ack(version, PacketType::PubAck)),
            4 => Packet::PubRec(self.ack(version, PacketType::PubRec)),
            5 => Packet::PubRel(self.ack(version, PacketType::PubRel)),
            6 => Packet::PubComp(self.ack(version, PacketType::PubComp)),
            7 => {
                let subscriptions = (0..1 + self.below(4))
                    .map(|_| {
                        let filter = self.topic_filter();
                        let shared = filter.starts_with("$share/");
                        let options = if v5 {
                            SubscriptionOptions {
                                qos: self.qos(),
                                no_local: !shared && self.bool(),
                                retain_as_published: self.bool(),
                                retain_handling: self.pick(&[
                                    RetainHandling::SendOnSubscribe,
                                    RetainHandling::SendIfNew,
                                    RetainHandling::DoNotSend,
                                ]),
                            }
                        } else {
                            SubscriptionOptions::new(self.qos())
                        };
                        Subscription { filter, options }
                    })
                    .collect();
                Packet::Subscribe(Subscribe {
                    packet_id: self.packet_id(),
                    subscriptions,
                    properties: self.properties(version, PropertyContext::Subscribe),
                })
            }
            8 => {
                let reason_codes = (0..1 + self.below(4))
                    .map(|_| {
                        if v5 {
                            self.reason(PacketType::SubAck)
                        } else {
                            self.pick(&[
                                ReasonCode::Success,
                                ReasonCode::GrantedQoS1,
                                ReasonCode::GrantedQoS2,
                                ReasonCode::UnspecifiedError,
                            ])
                        }
                    })
                    .collect();
                Packet::SubAck(SubAck {
                    packet_id: self.packet_id(),
                    reason_codes,
                    properties: self.properties(version, PropertyContext::SubAck),
                })
            }
            9 => Packet::Unsubscribe(Unsubscribe {
                packet_id: self.packet_id(),
                filters: (0..1 + self.below(4))
                    .map(|_| self.topic_filter())
                    .collect(),
                properties: self.properties(version, PropertyContext::Unsubscribe),
            }),
            10 => Packet::UnsubAck(UnsubAck {
                packet_id: self.packet_id(),
                reason_codes: if v5 {
                    (0..1 + self.below(4))
                        .map(|_| self.reason(PacketType::UnsubAck))
                        .collect()
                } else {
                    Vec::new()
                },
                properties: self.properties(version, PropertyContext::UnsubAck),
            }),
            11 => Packet::PingReq,
            12 => Packet::PingResp,
            13 => Packet::Disconnect(if v5 {
                Disconnect {
                    reason_code: self.reason(PacketType::Disconnect),
                    properties: self.properties(version, PropertyContext::Disconnect),
                }
            } else {
                Disconnect::default()
            }),
            _ => Packet::Auth(Auth {
                reason_code: self.reason(PacketType::Auth),
                properties: self.properties(version, PropertyContext::Auth),
            }),
        }
    }
}

#[test]
fn every_generated_packet_decodes_to_itself() {
    let mut rng = Rng(0x7EE_0E5B);
    let mut seen = std::collections::HashSet::new();
    for round in 0..20_000 {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let packet = rng.packet(version);
            seen.insert((version, packet.packet_type()));
            let wire = packet
                .to_bytes(version)
                .unwrap_or_else(|e| panic!("round {round}: {packet:?} does not encode: {e}"));
            let decoded = decode(&wire, version, MAX_PACKET_SIZE)
                .unwrap_or_else(|e| panic!("round {round}: {packet:?} ({}): {e}", hex(&wire)));
            assert_eq!(decoded, Some((packet.clone(), wire.len())), "round {round}");
            // A connection's decoder agrees, and a truncated copy only asks for more bytes.
            let mut decoder = Decoder::with_version(version, MAX_PACKET_SIZE);
            if let Packet::Connect(_) = packet {
                decoder = Decoder::new(MAX_PACKET_SIZE);
            }
            assert_eq!(decoder.decode(&wire), Ok(Some((packet, wire.len()))));
            let cut = rng.below(wire.len());
            assert_eq!(decode(&wire[..cut], version, MAX_PACKET_SIZE), Ok(None));
        }
    }
    // Every packet type of each version came up.
    assert_eq!(seen.len(), 14 + 15);
}

#[test]
fn packets_concatenated_in_a_stream_decode_one_by_one() {
    let mut rng = Rng(42);
    let version = ProtocolVersion::V5;
    let packets: Vec<Packet> = (0..200).map(|_| rng.packet(version)).collect();
    let mut stream = Vec::new();
    for packet in &packets {
        packet.encode(version, &mut stream).expect("encodes");
    }
    let mut offset = 0;
    for expected in &packets {
        let (packet, used) = decode(&stream[offset..], version, MAX_PACKET_SIZE)
            .expect("valid")
            .expect("complete");
        assert_eq!(&packet, expected);
        offset += used;
    }
    assert_eq!(offset, stream.len());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
