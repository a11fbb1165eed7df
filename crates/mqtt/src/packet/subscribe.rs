//! SUBSCRIBE and SUBACK (§3.8–3.9), UNSUBSCRIBE and UNSUBACK (§3.10–3.11), with MQTT 5
//! subscription options.

use super::publish::{read_reason_code, write_reason_code};
use super::read_packet_id;
use crate::property::{Properties, PropertyContext};
use crate::topic::TopicFilter;
use crate::wire::{self, Reader};
use crate::{Error, PacketId, PacketType, ProtocolVersion, QoS, ReasonCode};

/// When the server sends retained messages for a new subscription (MQTT 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: at every subscribe.
    #[default]
    SendOnSubscribe = 0,
    /// 1: only if the subscription did not exist.
    SendIfNew = 1,
    /// 2: never.
    DoNotSend = 2,
}

/// The options of one subscription. In 3.1.1 only `qos` exists; the others are zero on the
/// wire, so decoding gives the defaults and encoding for 3.1.1 drops them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// The maximum QoS the client accepts for this subscription.
    pub qos: QoS,
    /// Do not send the client its own publications (not allowed on shared subscriptions).
    pub no_local: bool,
    /// Keep the retain flag of forwarded publications.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options asking for `qos` with every other option off.
    pub const fn new(qos: QoS) -> Self {
        Self {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: RetainHandling::SendOnSubscribe,
        }
    }

    /// The options as MQTT 5 encodes them in one byte.
    pub fn to_v5_byte(&self) -> u8 {
        encode_options(self, ProtocolVersion::V5)
    }

    /// The options of an MQTT 5 options byte; reserved bits or retain handling 3 are refused.
    pub fn from_v5_byte(byte: u8) -> Result<Self, Error> {
        decode_options(byte, ProtocolVersion::V5)
    }
}

mod option {
    pub(super) const QOS: u8 = 0x03;
    pub(super) const NO_LOCAL: u8 = 0x04;
    pub(super) const RETAIN_AS_PUBLISHED: u8 = 0x08;
    pub(super) const RETAIN_HANDLING_SHIFT: u8 = 4;
    pub(super) const RETAIN_HANDLING: u8 = 0x30;
    pub(super) const RESERVED_V5: u8 = 0xC0;
    pub(super) const RESERVED_V311: u8 = 0xFC;
}

/// One topic filter of a SUBSCRIBE and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The topic filter, possibly a shared subscription (`$share/{group}/{filter}`).
    pub filter: String,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE: a client asks for one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier, echoed in SUBACK.
    pub packet_id: PacketId,
    /// At least one subscription.
    pub subscriptions: Vec<Subscription>,
    /// MQTT 5 properties (a Subscription Identifier, user properties).
    pub properties: Properties,
}

/// SUBACK: one reason code per subscription, in order. 3.1.1 can say granted QoS 0, 1, 2 or
/// failure: every refusal is encoded as its 0x80.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// The SUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// At least one code.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// UNSUBSCRIBE: a client drops one or more subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier, echoed in UNSUBACK.
    pub packet_id: PacketId,
    /// At least one topic filter, as it was subscribed.
    pub filters: Vec<String>,
    /// MQTT 5 properties (user properties).
    pub properties: Properties,
}

/// UNSUBACK: in MQTT 5 one reason code per filter; in 3.1.1 none (decoded empty, dropped when
/// encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// The UNSUBSCRIBE's packet identifier.
    pub packet_id: PacketId,
    /// MQTT 5: at least one code.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5 properties.
    pub properties: Properties,
}

fn decode_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, Error> {
    let reserved = match version {
        ProtocolVersion::V311 => option::RESERVED_V311,
        ProtocolVersion::V5 => option::RESERVED_V5,
    };
    if byte & reserved != 0 {
        return Err(Error::ReservedSubscriptionOptions(byte));
    }
    let retain_handling = match (byte & option::RETAIN_HANDLING) >> option::RETAIN_HANDLING_SHIFT {
        0 => RetainHandling::SendOnSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(Error::InvalidRetainHandling),
    };
    Ok(SubscriptionOptions {
        qos: QoS::from_bits(byte & option::QOS)?,
        no_local: byte & option::NO_LOCAL != 0,
        retain_as_published: byte & option::RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

fn encode_options(options: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = options.qos as u8;
    if version == ProtocolVersion::V5 {
        if options.no_local {
            byte |= option::NO_LOCAL;
        }
        if options.retain_as_published {
            byte |= option::RETAIN_AS_PUBLISHED;
        }
        byte |= (options.retain_handling as u8) << option::RETAIN_HANDLING_SHIFT;
    }
    byte
}

/// A subscription's filter is valid, and a shared one does not ask for no-local.
fn check_subscription(subscription: &Subscription) -> Result<(), Error> {
    let filter = TopicFilter::parse(&subscription.filter)?;
    if filter.is_shared() && subscription.options.no_local {
        return Err(Error::NoLocalOnSharedSubscription(crate::error::excerpt(
            &subscription.filter,
        )));
    }
    Ok(())
}

fn decode_properties(
    reader: &mut Reader<'_>,
    version: ProtocolVersion,
    context: PropertyContext,
) -> Result<Properties, Error> {
    match version {
        ProtocolVersion::V5 => Properties::decode(reader, context),
        ProtocolVersion::V311 => Ok(Properties::default()),
    }
}

fn encode_properties(
    properties: &Properties,
    out: &mut Vec<u8>,
    version: ProtocolVersion,
    context: PropertyContext,
) -> Result<(), Error> {
    match version {
        ProtocolVersion::V5 => properties.encode(out, context),
        ProtocolVersion::V311 => Ok(()),
    }
}

impl Subscribe {
    pub(crate) fn decode(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, Error> {
        let packet_id = read_packet_id(reader)?;
        let properties = decode_properties(reader, version, PropertyContext::Subscribe)?;
        let mut subscriptions = Vec::new();
        while !reader.is_empty() {
            let filter = reader.string("topic filter")?;
            let options = decode_options(reader.u8("subscription options")?, version)?;
            let subscription = Subscription { filter, options };
            check_subscription(&subscription)?;
            subscriptions.push(subscription);
        }
        if subscriptions.is_empty() {
            return Err(Error::NoTopicFilters(PacketType::Subscribe));
        }
        Ok(Self {
            packet_id,
            subscriptions,
            properties,
        })
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.subscriptions.is_empty() {
            return Err(Error::NoTopicFilters(PacketType::Subscribe));
        }
        out.extend_from_slice(&self.packet_id.get().to_be_bytes());
        encode_properties(&self.properties, out, version, PropertyContext::Subscribe)?;
        for subscription in &self.subscriptions {
            check_subscription(subscription)?;
            wire::put_string(out, &subscription.filter, "topic filter")?;
            out.push(encode_options(&subscription.options, version));
        }
        Ok(())
    }
}

impl SubAck {
    pub(crate) fn decode(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, Error> {
        let packet_id = read_packet_id(reader)?;
        let properties = decode_properties(reader, version, PropertyContext::SubAck)?;
        let mut reason_codes = Vec::with_capacity(reader.remaining());
        while !reader.is_empty() {
            let reason = match version {
                ProtocolVersion::V5 => read_reason_code(reader, PacketType::SubAck)?,
                ProtocolVersion::V311 => match reader.u8("return code")? {
                    0x00 => ReasonCode::Success,
                    0x01 => ReasonCode::GrantedQoS1,
                    0x02 => ReasonCode::GrantedQoS2,
                    0x80 => ReasonCode::UnspecifiedError,
                    code => {
                        return Err(Error::InvalidReasonCode {
                            packet: PacketType::SubAck,
                            code,
                        });
                    }
                },
            };
            reason_codes.push(reason);
        }
        if reason_codes.is_empty() {
            return Err(Error::NoReasonCodes(PacketType::SubAck));
        }
        Ok(Self {
            packet_id,
            reason_codes,
            properties,
        })
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.reason_codes.is_empty() {
            return Err(Error::NoReasonCodes(PacketType::SubAck));
        }
        out.extend_from_slice(&self.packet_id.get().to_be_bytes());
        encode_properties(&self.properties, out, version, PropertyContext::SubAck)?;
        for &reason in &self.reason_codes {
            match version {
                ProtocolVersion::V5 => write_reason_code(out, reason, PacketType::SubAck)?,
                ProtocolVersion::V311 => {
                    if !reason.is_allowed_in(PacketType::SubAck) {
                        return Err(Error::InvalidReasonCode {
                            packet: PacketType::SubAck,
                            code: reason.value(),
                        });
                    }
                    // 3.1.1 has one failure code.
                    out.push(if reason.is_error() {
                        0x80
                    } else {
                        reason.value()
                    });
                }
            }
        }
        Ok(())
    }
}

impl Unsubscribe {
    pub(crate) fn decode(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, Error> {
        let packet_id = read_packet_id(reader)?;
        let properties = decode_properties(reader, version, PropertyContext::Unsubscribe)?;
        let mut filters = Vec::new();
        while !reader.is_empty() {
            let filter = reader.string("topic filter")?;
            TopicFilter::parse(&filter)?;
            filters.push(filter);
        }
        if filters.is_empty() {
            return Err(Error::NoTopicFilters(PacketType::Unsubscribe));
        }
        Ok(Self {
            packet_id,
            filters,
            properties,
        })
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.filters.is_empty() {
            return Err(Error::NoTopicFilters(PacketType::Unsubscribe));
        }
        out.extend_from_slice(&self.packet_id.get().to_be_bytes());
        encode_properties(&self.properties, out, version, PropertyContext::Unsubscribe)?;
        for filter in &self.filters {
            TopicFilter::parse(filter)?;
            wire::put_string(out, filter, "topic filter")?;
        }
        Ok(())
    }
}

impl UnsubAck {
    pub(crate) fn decode(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, Error> {
        let packet_id = read_packet_id(reader)?;
        let mut ack = Self {
            packet_id,
            reason_codes: Vec::new(),
            properties: Properties::default(),
        };
        if version == ProtocolVersion::V311 {
            return Ok(ack);
        }
        ack.properties = Properties::decode(reader, PropertyContext::UnsubAck)?;
        while !reader.is_empty() {
            ack.reason_codes
                .push(read_reason_code(reader, PacketType::UnsubAck)?);
        }
        if ack.reason_codes.is_empty() {
            return Err(Error::NoReasonCodes(PacketType::UnsubAck));
        }
        Ok(ack)
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        out.extend_from_slice(&self.packet_id.get().to_be_bytes());
        if version == ProtocolVersion::V311 {
            return Ok(());
        }
        if self.reason_codes.is_empty() {
            return Err(Error::NoReasonCodes(PacketType::UnsubAck));
        }
        self.properties.encode(out, PropertyContext::UnsubAck)?;
        for &reason in &self.reason_codes {
            write_reason_code(out, reason, PacketType::UnsubAck)?;
        }
        Ok(())
    }
}
