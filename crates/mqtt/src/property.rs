//! MQTT 5 properties (§2.2.2): every property identifier of the specification as a typed field
//! of [`Properties`], the table of which packet (or will) may carry which, and the rule that a
//! property appears at most once except user properties and PUBLISH's subscription identifiers.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::Bytes;

use crate::wire::{self, Reader};
use crate::{Error, PacketType, QoS, SubscriptionId, topic};

/// A property identifier, with its numeric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // the variants are the specification's property names
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// Where a property list sits: a packet's variable header, or a CONNECT's will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // one variant per packet type that has properties, plus the will
pub enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    const fn bit(self) -> u16 {
        1 << (self as u16)
    }

    /// The context of a packet type's variable header (`None` for PINGREQ and PINGRESP).
    pub const fn of(packet: PacketType) -> Option<Self> {
        Some(match packet {
            PacketType::Connect => Self::Connect,
            PacketType::ConnAck => Self::ConnAck,
            PacketType::Publish => Self::Publish,
            PacketType::PubAck => Self::PubAck,
            PacketType::PubRec => Self::PubRec,
            PacketType::PubRel => Self::PubRel,
            PacketType::PubComp => Self::PubComp,
            PacketType::Subscribe => Self::Subscribe,
            PacketType::SubAck => Self::SubAck,
            PacketType::Unsubscribe => Self::Unsubscribe,
            PacketType::UnsubAck => Self::UnsubAck,
            PacketType::Disconnect => Self::Disconnect,
            PacketType::Auth => Self::Auth,
            PacketType::PingReq | PacketType::PingResp => return None,
        })
    }
}

impl fmt::Display for PropertyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "CONNECT",
            Self::Will => "will properties",
            Self::ConnAck => "CONNACK",
            Self::Publish => "PUBLISH",
            Self::PubAck => "PUBACK",
            Self::PubRec => "PUBREC",
            Self::PubRel => "PUBREL",
            Self::PubComp => "PUBCOMP",
            Self::Subscribe => "SUBSCRIBE",
            Self::SubAck => "SUBACK",
            Self::Unsubscribe => "UNSUBSCRIBE",
            Self::UnsubAck => "UNSUBACK",
            Self::Disconnect => "DISCONNECT",
            Self::Auth => "AUTH",
        })
    }
}

const ALL_IDS: [PropertyId; 27] = {
    use PropertyId as P;
    [
        P::PayloadFormatIndicator,
        P::MessageExpiryInterval,
        P::ContentType,
        P::ResponseTopic,
        P::CorrelationData,
        P::SubscriptionIdentifier,
        P::SessionExpiryInterval,
        P::AssignedClientIdentifier,
        P::ServerKeepAlive,
        P::AuthenticationMethod,
        P::AuthenticationData,
        P::RequestProblemInformation,
        P::WillDelayInterval,
        P::RequestResponseInformation,
        P::ResponseInformation,
        P::ServerReference,
        P::ReasonString,
        P::ReceiveMaximum,
        P::TopicAliasMaximum,
        P::TopicAlias,
        P::MaximumQoS,
        P::RetainAvailable,
        P::UserProperty,
        P::MaximumPacketSize,
        P::WildcardSubscriptionAvailable,
        P::SubscriptionIdentifierAvailable,
        P::SharedSubscriptionAvailable,
    ]
};

impl PropertyId {
    /// The property identifier's value.
    pub const fn value(self) -> u8 {
        self as u8
    }

    /// The property of an identifier, if the specification defines one.
    pub fn from_value(value: u32) -> Option<Self> {
        ALL_IDS
            .iter()
            .copied()
            .find(|id| u32::from(id.value()) == value)
    }

    /// Whether a property list in `context` may carry this property (§2.2.2.2's table).
    pub const fn is_allowed_in(self, context: PropertyContext) -> bool {
        use PropertyContext as C;
        let contexts: &[PropertyContext] = match self {
            Self::PayloadFormatIndicator
            | Self::MessageExpiryInterval
            | Self::ContentType
            | Self::ResponseTopic
            | Self::CorrelationData => &[C::Publish, C::Will],
            Self::SubscriptionIdentifier => &[C::Publish, C::Subscribe],
            Self::SessionExpiryInterval => &[C::Connect, C::ConnAck, C::Disconnect],
            Self::AssignedClientIdentifier
            | Self::ServerKeepAlive
            | Self::ResponseInformation
            | Self::MaximumQoS
            | Self::RetainAvailable
            | Self::WildcardSubscriptionAvailable
            | Self::SubscriptionIdentifierAvailable
            | Self::SharedSubscriptionAvailable => &[C::ConnAck],
            Self::AuthenticationMethod | Self::AuthenticationData => {
                &[C::Connect, C::ConnAck, C::Auth]
            }
            Self::RequestProblemInformation | Self::RequestResponseInformation => &[C::Connect],
            Self::WillDelayInterval => &[C::Will],
            Self::ServerReference => &[C::ConnAck, C::Disconnect],
            Self::ReasonString => &[
                C::ConnAck,
                C::PubAck,
                C::PubRec,
                C::PubRel,
                C::PubComp,
                C::SubAck,
                C::UnsubAck,
                C::Disconnect,
                C::Auth,
            ],
            Self::ReceiveMaximum | Self::TopicAliasMaximum | Self::MaximumPacketSize => {
                &[C::Connect, C::ConnAck]
            }
            Self::TopicAlias => &[C::Publish],
            Self::UserProperty => return true,
        };
        let mut mask = 0u16;
        let mut index = 0;
        while index < contexts.len() {
            mask |= contexts[index].bit();
            index += 1;
        }
        mask & context.bit() != 0
    }

    /// Whether the property may appear more than once in `context`.
    pub const fn may_repeat_in(self, context: PropertyContext) -> bool {
        matches!(
            (self, context),
            (Self::UserProperty, _) | (Self::SubscriptionIdentifier, PropertyContext::Publish)
        )
    }

    /// The property's name as the specification writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::PayloadFormatIndicator => "Payload Format Indicator",
            Self::MessageExpiryInterval => "Message Expiry Interval",
            Self::ContentType => "Content Type",
            Self::ResponseTopic => "Response Topic",
            Self::CorrelationData => "Correlation Data",
            Self::SubscriptionIdentifier => "Subscription Identifier",
            Self::SessionExpiryInterval => "Session Expiry Interval",
            Self::AssignedClientIdentifier => "Assigned Client Identifier",
            Self::ServerKeepAlive => "Server Keep Alive",
            Self::AuthenticationMethod => "Authentication Method",
            Self::AuthenticationData => "Authentication Data",
            Self::RequestProblemInformation => "Request Problem Information",
            Self::WillDelayInterval => "Will Delay Interval",
            Self::RequestResponseInformation => "Request Response Information",
            Self::ResponseInformation => "Response Information",
            Self::ServerReference => "Server Reference",
            Self::ReasonString => "Reason String",
            Self::ReceiveMaximum => "Receive Maximum",
            Self::TopicAliasMaximum => "Topic Alias Maximum",
            Self::TopicAlias => "Topic Alias",
            Self::MaximumQoS => "Maximum QoS",
            Self::RetainAvailable => "Retain Available",
            Self::UserProperty => "User Property",
            Self::MaximumPacketSize => "Maximum Packet Size",
            Self::WildcardSubscriptionAvailable => "Wildcard Subscription Available",
            Self::SubscriptionIdentifierAvailable => "Subscription Identifier Available",
            Self::SharedSubscriptionAvailable => "Shared Subscription Available",
        }
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.value())
    }
}

/// The Payload Format Indicator: whether a payload is declared to be UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    Unspecified = 0,
    /// 1: UTF-8 encoded character data.
    Utf8 = 1,
}

/// The properties of one packet or will. A field left `None` (or empty) is absent on the wire;
/// [`PropertyId::is_allowed_in`] says which fields a given packet may set, and the decoder and
/// the encoder both enforce it. MQTT 3.1.1 packets always have empty properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    /// 0x01, PUBLISH and will.
    pub payload_format_indicator: Option<PayloadFormat>,
    /// 0x02, seconds; PUBLISH and will.
    pub message_expiry_interval: Option<u32>,
    /// 0x03, PUBLISH and will.
    pub content_type: Option<String>,
    /// 0x08, a topic name (no wildcards); PUBLISH and will.
    pub response_topic: Option<String>,
    /// 0x09, PUBLISH and will.
    pub correlation_data: Option<Bytes>,
    /// 0x0B: one in SUBSCRIBE; any number in PUBLISH (server to client, one per matching
    /// subscription).
    pub subscription_identifiers: Vec<SubscriptionId>,
    /// 0x11, seconds; CONNECT, CONNACK, DISCONNECT.
    pub session_expiry_interval: Option<u32>,
    /// 0x12, CONNACK.
    pub assigned_client_identifier: Option<String>,
    /// 0x13, seconds; CONNACK.
    pub server_keep_alive: Option<u16>,
    /// 0x15, CONNECT, CONNACK, AUTH.
    pub authentication_method: Option<String>,
    /// 0x16, CONNECT, CONNACK, AUTH; only with an authentication method.
    pub authentication_data: Option<Bytes>,
    /// 0x17, CONNECT.
    pub request_problem_information: Option<bool>,
    /// 0x18, seconds; will only.
    pub will_delay_interval: Option<u32>,
    /// 0x19, CONNECT.
    pub request_response_information: Option<bool>,
    /// 0x1A, CONNACK.
    pub response_information: Option<String>,
    /// 0x1C, CONNACK, DISCONNECT.
    pub server_reference: Option<String>,
    /// 0x1F, every acknowledgement, DISCONNECT and AUTH.
    pub reason_string: Option<String>,
    /// 0x21, CONNECT, CONNACK; 0 is a protocol error, so it cannot be held.
    pub receive_maximum: Option<NonZeroU16>,
    /// 0x22, CONNECT, CONNACK.
    pub topic_alias_maximum: Option<u16>,
    /// 0x23, PUBLISH; 0 is a protocol error, so it cannot be held.
    pub topic_alias: Option<NonZeroU16>,
    /// 0x24, CONNACK; QoS 0 or 1 (2 is what its absence means, and sending 2 is an error).
    pub maximum_qos: Option<QoS>,
    /// 0x25, CONNACK.
    pub retain_available: Option<bool>,
    /// 0x26, name–value pairs in order, allowed in every packet with properties.
    pub user_properties: Vec<(String, String)>,
    /// 0x27, bytes; CONNECT, CONNACK; 0 is a protocol error, so it cannot be held.
    pub maximum_packet_size: Option<NonZeroU32>,
    /// 0x28, CONNACK.
    pub wildcard_subscription_available: Option<bool>,
    /// 0x29, CONNACK.
    pub subscription_identifier_available: Option<bool>,
    /// 0x2A, CONNACK.
    pub shared_subscription_available: Option<bool>,
}

impl Properties {
    /// Whether no property is present.
    pub fn is_empty(&self) -> bool {
        self.present().next().is_none()
    }

    /// The identifiers of the properties present, in identifier order, once each.
    pub fn present(&self) -> impl Iterator<Item = PropertyId> + '_ {
        ALL_IDS.iter().copied().filter(|id| self.has(*id))
    }

    fn has(&self, id: PropertyId) -> bool {
        use PropertyId as P;
        match id {
            P::PayloadFormatIndicator => self.payload_format_indicator.is_some(),
            P::MessageExpiryInterval => self.message_expiry_interval.is_some(),
            P::ContentType => self.content_type.is_some(),
            P::ResponseTopic => self.response_topic.is_some(),
            P::CorrelationData => self.correlation_data.is_some(),
            P::SubscriptionIdentifier => !self.subscription_identifiers.is_empty(),
            P::SessionExpiryInterval => self.session_expiry_interval.is_some(),
            P::AssignedClientIdentifier => self.assigned_client_identifier.is_some(),
            P::ServerKeepAlive => self.server_keep_alive.is_some(),
            P::AuthenticationMethod => self.authentication_method.is_some(),
            P::AuthenticationData => self.authentication_data.is_some(),
            P::RequestProblemInformation => self.request_problem_information.is_some(),
            P::WillDelayInterval => self.will_delay_interval.is_some(),
            P::RequestResponseInformation => self.request_response_information.is_some(),
            P::ResponseInformation => self.response_information.is_some(),
            P::ServerReference => self.server_reference.is_some(),
            P::ReasonString => self.reason_string.is_some(),
            P::ReceiveMaximum => self.receive_maximum.is_some(),
            P::TopicAliasMaximum => self.topic_alias_maximum.is_some(),
            P::TopicAlias => self.topic_alias.is_some(),
            P::MaximumQoS => self.maximum_qos.is_some(),
            P::RetainAvailable => self.retain_available.is_some(),
            P::UserProperty => !self.user_properties.is_empty(),
            P::MaximumPacketSize => self.maximum_packet_size.is_some(),
            P::WildcardSubscriptionAvailable => self.wildcard_subscription_available.is_some(),
            P::SubscriptionIdentifierAvailable => self.subscription_identifier_available.is_some(),
            P::SharedSubscriptionAvailable => self.shared_subscription_available.is_some(),
        }
    }

    /// Checks the rules the types cannot hold: placement, repetition, value ranges.
    pub(crate) fn validate(&self, context: PropertyContext) -> Result<(), Error> {
        for id in self.present() {
            if !id.is_allowed_in(context) {
                return Err(Error::PropertyNotAllowed {
                    property: id,
                    context,
                });
            }
        }
        if self.subscription_identifiers.len() > 1
            && !PropertyId::SubscriptionIdentifier.may_repeat_in(context)
        {
            return Err(Error::DuplicateProperty(PropertyId::SubscriptionIdentifier));
        }
        if self.maximum_qos == Some(QoS::ExactlyOnce) {
            return Err(Error::InvalidPropertyValue {
                property: PropertyId::MaximumQoS,
                value: 2,
                expected: "0 or 1",
            });
        }
        if let Some(response_topic) = &self.response_topic {
            topic::validate_topic_name(response_topic)?;
        }
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(Error::AuthDataWithoutMethod);
        }
        Ok(())
    }

    /// Reads a property list (its length, then the properties) for `context`.
    pub(crate) fn decode(reader: &mut Reader<'_>, context: PropertyContext) -> Result<Self, Error> {
        let len = reader.variable_integer("property length")?;
        // A length beyond the packet is caught by `sub_reader`; u32 → usize is lossless here.
        let mut list = reader.sub_reader(len as usize, "properties")?;
        let mut properties = Self::default();
        while !list.is_empty() {
            let raw_id = list.variable_integer("property identifier")?;
            let id = PropertyId::from_value(raw_id).ok_or(Error::UnknownProperty(raw_id))?;
            if !id.is_allowed_in(context) {
                return Err(Error::PropertyNotAllowed {
                    property: id,
                    context,
                });
            }
            if properties.has(id) && !id.may_repeat_in(context) {
                return Err(Error::DuplicateProperty(id));
            }
            properties.read_value(&mut list, id)?;
        }
        properties.validate(context)?;
        Ok(properties)
    }

    fn read_value(&mut self, list: &mut Reader<'_>, id: PropertyId) -> Result<(), Error> {
        use PropertyId as P;
        let what = id.name();
        match id {
            P::PayloadFormatIndicator => {
                self.payload_format_indicator = Some(match list.u8(what)? {
                    0 => PayloadFormat::Unspecified,
                    1 => PayloadFormat::Utf8,
                    other => return Err(invalid_value(id, other.into(), "0 or 1")),
                });
            }
            P::MessageExpiryInterval => self.message_expiry_interval = Some(list.u32(what)?),
            P::ContentType => self.content_type = Some(list.string(what)?),
            P::ResponseTopic => self.response_topic = Some(list.string(what)?),
            P::CorrelationData => self.correlation_data = Some(list.binary(what)?),
            P::SubscriptionIdentifier => {
                let value = list.variable_integer(what)?;
                let sub_id = SubscriptionId::new(value)
                    .ok_or_else(|| invalid_value(id, value, "1 to 268435455"))?;
                self.subscription_identifiers.push(sub_id);
            }
            P::SessionExpiryInterval => self.session_expiry_interval = Some(list.u32(what)?),
            P::AssignedClientIdentifier => {
                self.assigned_client_identifier = Some(list.string(what)?);
            }
            P::ServerKeepAlive => self.server_keep_alive = Some(list.u16(what)?),
            P::AuthenticationMethod => self.authentication_method = Some(list.string(what)?),
            P::AuthenticationData => self.authentication_data = Some(list.binary(what)?),
            P::RequestProblemInformation => {
                self.request_problem_information = Some(read_bool(list, id)?);
            }
            P::WillDelayInterval => self.will_delay_interval = Some(list.u32(what)?),
            P::RequestResponseInformation => {
                self.request_response_information = Some(read_bool(list, id)?);
            }
            P::ResponseInformation => self.response_information = Some(list.string(what)?),
            P::ServerReference => self.server_reference = Some(list.string(what)?),
            P::ReasonString => self.reason_string = Some(list.string(what)?),
            P::ReceiveMaximum => {
                let value = list.u16(what)?;
                self.receive_maximum =
                    Some(NonZeroU16::new(value).ok_or_else(|| invalid_value(id, 0, "1 to 65535"))?);
            }
            P::TopicAliasMaximum => self.topic_alias_maximum = Some(list.u16(what)?),
            P::TopicAlias => {
                let value = list.u16(what)?;
                self.topic_alias =
                    Some(NonZeroU16::new(value).ok_or_else(|| invalid_value(id, 0, "1 to 65535"))?);
            }
            P::MaximumQoS => {
                self.maximum_qos = Some(match list.u8(what)? {
                    0 => QoS::AtMostOnce,
                    1 => QoS::AtLeastOnce,
                    other => return Err(invalid_value(id, other.into(), "0 or 1")),
                });
            }
            P::RetainAvailable => self.retain_available = Some(read_bool(list, id)?),
            P::UserProperty => {
                let name = list.string("User Property name")?;
                let value = list.string("User Property value")?;
                self.user_properties.push((name, value));
            }
            P::MaximumPacketSize => {
                let value = list.u32(what)?;
                self.maximum_packet_size =
                    Some(NonZeroU32::new(value).ok_or_else(|| invalid_value(id, 0, "1 or more"))?);
            }
            P::WildcardSubscriptionAvailable => {
                self.wildcard_subscription_available = Some(read_bool(list, id)?);
            }
            P::SubscriptionIdentifierAvailable => {
                self.subscription_identifier_available = Some(read_bool(list, id)?);
            }
            P::SharedSubscriptionAvailable => {
                self.shared_subscription_available = Some(read_bool(list, id)?);
            }
        }
        Ok(())
    }

    /// Appends the property list (length, then the properties in identifier order) after
    /// checking it is valid for `context`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, context: PropertyContext) -> Result<(), Error> {
        self.validate(context)?;
        let start = out.len();
        for id in self.present() {
            self.write_value(out, id)?;
        }
        let len = out.len() - start;
        let len = u32::try_from(len)
            .ok()
            .filter(|len| *len <= crate::MAX_VARIABLE_INTEGER)
            .ok_or(Error::RemainingLengthTooLarge(len))?;
        let mut prefix = Vec::with_capacity(4);
        wire::put_variable_integer(&mut prefix, len);
        out.splice(start..start, prefix);
        Ok(())
    }

    fn write_value(&self, out: &mut Vec<u8>, id: PropertyId) -> Result<(), Error> {
        use PropertyId as P;
        let what = id.name();
        let tag = |out: &mut Vec<u8>| out.push(id.value());
        let put_u8 = |out: &mut Vec<u8>, value: u8| {
            tag(out);
            out.push(value);
        };
        let put_u16 = |out: &mut Vec<u8>, value: u16| {
            tag(out);
            out.extend_from_slice(&value.to_be_bytes());
        };
        let put_u32 = |out: &mut Vec<u8>, value: u32| {
            tag(out);
            out.extend_from_slice(&value.to_be_bytes());
        };
        let put_string = |out: &mut Vec<u8>, value: &Option<String>| -> Result<(), Error> {
            if let Some(text) = value {
                tag(out);
                wire::put_string(out, text, what)?;
            }
            Ok(())
        };
        let put_binary = |out: &mut Vec<u8>, value: &Option<Bytes>| -> Result<(), Error> {
            if let Some(data) = value {
                tag(out);
                wire::put_binary(out, data, what)?;
            }
            Ok(())
        };
        let put_bool = |out: &mut Vec<u8>, value: Option<bool>| {
            if let Some(flag) = value {
                put_u8(out, u8::from(flag));
            }
        };
        match id {
            P::PayloadFormatIndicator => {
                if let Some(format) = self.payload_format_indicator {
                    put_u8(out, format as u8);
                }
            }
            P::MessageExpiryInterval => {
                self.message_expiry_interval.map_or((), |v| put_u32(out, v))
            }
            P::ContentType => put_string(out, &self.content_type)?,
            P::ResponseTopic => put_string(out, &self.response_topic)?,
            P::CorrelationData => put_binary(out, &self.correlation_data)?,
            P::SubscriptionIdentifier => {
                for sub_id in &self.subscription_identifiers {
                    tag(out);
                    wire::put_variable_integer(out, sub_id.get());
                }
            }
            P::SessionExpiryInterval => {
                self.session_expiry_interval.map_or((), |v| put_u32(out, v))
            }
            P::AssignedClientIdentifier => put_string(out, &self.assigned_client_identifier)?,
            P::ServerKeepAlive => self.server_keep_alive.map_or((), |v| put_u16(out, v)),
            P::AuthenticationMethod => put_string(out, &self.authentication_method)?,
            P::AuthenticationData => put_binary(out, &self.authentication_data)?,
            P::RequestProblemInformation => put_bool(out, self.request_problem_information),
            P::WillDelayInterval => self.will_delay_interval.map_or((), |v| put_u32(out, v)),
            P::RequestResponseInformation => put_bool(out, self.request_response_information),
            P::ResponseInformation => put_string(out, &self.response_information)?,
            P::ServerReference => put_string(out, &self.server_reference)?,
            P::ReasonString => put_string(out, &self.reason_string)?,
            P::ReceiveMaximum => self.receive_maximum.map_or((), |v| put_u16(out, v.get())),
            P::TopicAliasMaximum => self.topic_alias_maximum.map_or((), |v| put_u16(out, v)),
            P::TopicAlias => self.topic_alias.map_or((), |v| put_u16(out, v.get())),
            P::MaximumQoS => self.maximum_qos.map_or((), |v| put_u8(out, v as u8)),
            P::RetainAvailable => put_bool(out, self.retain_available),
            P::UserProperty => {
                for (name, value) in &self.user_properties {
                    tag(out);
                    wire::put_string(out, name, "User Property name")?;
                    wire::put_string(out, value, "User Property value")?;
                }
            }
            P::MaximumPacketSize => self
                .maximum_packet_size
                .map_or((), |v| put_u32(out, v.get())),
            P::WildcardSubscriptionAvailable => put_bool(out, self.wildcard_subscription_available),
            P::SubscriptionIdentifierAvailable => {
                put_bool(out, self.subscription_identifier_available);
            }
            P::SharedSubscriptionAvailable => put_bool(out, self.shared_subscription_available),
        }
        Ok(())
    }
}

fn read_bool(list: &mut Reader<'_>, id: PropertyId) -> Result<bool, Error> {
    match list.u8(id.name())? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(invalid_value(id, other.into(), "0 or 1")),
    }
}

fn invalid_value(property: PropertyId, value: u32, expected: &'static str) -> Error {
    Error::InvalidPropertyValue {
        property,
        value,
        expected,
    }
}
