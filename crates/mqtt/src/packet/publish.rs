//! PUBLISH (§3.3) and the four acknowledgements of its QoS flows: PUBACK, PUBREC, PUBREL and
//! PUBCOMP (§3.4–3.7), which share one shape.

use bytes::Bytes;

use super::read_packet_id;
use crate::property::{Properties, PropertyContext};
use crate::wire::{self, Reader};
use crate::{Error, PacketId, PacketType, ProtocolVersion, QoS, ReasonCode, topic};

/// A PUBLISH's QoS with the packet identifier QoS 1 and 2 need, so one cannot exist without
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishQos {
    /// QoS 0, no packet identifier.
    AtMostOnce,
    /// QoS 1.
    AtLeastOnce(PacketId),
    /// QoS 2.
    ExactlyOnce(PacketId),
}

impl PublishQos {
    /// The QoS level.
    pub const fn qos(self) -> QoS {
        match self {
            Self::AtMostOnce => QoS::AtMostOnce,
            Self::AtLeastOnce(_) => QoS::AtLeastOnce,
            Self::ExactlyOnce(_) => QoS::ExactlyOnce,
        }
    }

    /// The packet identifier (QoS 1 and 2).
    pub const fn packet_id(self) -> Option<PacketId> {
        match self {
            Self::AtMostOnce => None,
            Self::AtLeastOnce(id) | Self::ExactlyOnce(id) => Some(id),
        }
    }

    /// The QoS level `qos` with `packet_id` (ignored for QoS 0).
    pub const fn new(qos: QoS, packet_id: PacketId) -> Self {
        match qos {
            QoS::AtMostOnce => Self::AtMostOnce,
            QoS::AtLeastOnce => Self::AtLeastOnce(packet_id),
            QoS::ExactlyOnce => Self::ExactlyOnce(packet_id),
        }
    }
}

/// PUBLISH: an application message, in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// A re-delivery of an earlier attempt (QoS 1 and 2 only).
    pub dup: bool,
    /// QoS and packet identifier.
    pub qos: PublishQos,
    /// Retain flag.
    pub retain: bool,
    /// Topic name; empty only in MQTT 5 with a [`Properties::topic_alias`].
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// MQTT 5 properties (empty in 3.1.1).
    pub properties: Properties,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier, and in MQTT 5 a reason code and
/// properties (3.1.1 carries neither: decoding gives `Success` and no properties, encoding drops
/// them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// The PUBLISH (or PUBREL) acknowledged.
    pub packet_id: PacketId,
    /// The outcome.
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: Properties,
}

impl Acknowledgement {
    /// A successful acknowledgement of `packet_id` without properties.
    pub fn success(packet_id: PacketId) -> Self {
        Self {
            packet_id,
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        }
    }
}

mod flag {
    pub(super) const DUP: u8 = 0x08;
    pub(super) const QOS_SHIFT: u8 = 1;
    pub(super) const QOS: u8 = 0x06;
    pub(super) const RETAIN: u8 = 0x01;
}

impl Publish {
    /// The fixed header's flags nibble.
    pub(crate) fn flags(&self) -> u8 {
        let mut flags = (self.qos.qos() as u8) << flag::QOS_SHIFT;
        if self.dup {
            flags |= flag::DUP;
        }
        if self.retain {
            flags |= flag::RETAIN;
        }
        flags
    }

    pub(crate) fn decode(
        reader: &mut Reader<'_>,
        flags: u8,
        version: ProtocolVersion,
    ) -> Result<Self, Error> {
        let qos = QoS::from_bits((flags & flag::QOS) >> flag::QOS_SHIFT)?;
        let dup = flags & flag::DUP != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(Error::DupAtQos0);
        }
        let topic = reader.string("topic name")?;
        let qos = match qos {
            QoS::AtMostOnce => PublishQos::AtMostOnce,
            level => PublishQos::new(level, read_packet_id(reader)?),
        };
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(reader, PropertyContext::Publish)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        check_topic(&topic, &properties, version)?;
        let payload = Bytes::copy_from_slice(reader.rest());
        Ok(Self {
            dup,
            qos,
            retain: flags & flag::RETAIN != 0,
            topic,
            payload,
            properties,
        })
    }

    /// The PUBLISH without its payload: the fixed header (whose remaining length counts the
    /// payload), topic, packet identifier and properties. Followed by `self.payload` these are
    /// exactly [`crate::Packet::encode`]'s bytes, so a payload shared by many deliveries is
    /// written from where it is instead of being copied into each one.
    pub fn encode_head(&self, version: ProtocolVersion, out: &mut Vec<u8>) -> Result<(), Error> {
        let start = out.len();
        let result = self.encode_head_at(version, out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_head_at(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), Error> {
        self.encode_variable_header(version, out)?;
        let body_len = out.len() - start + self.payload.len();
        let remaining = u32::try_from(body_len)
            .ok()
            .filter(|len| *len <= crate::MAX_VARIABLE_INTEGER)
            .ok_or(Error::RemainingLengthTooLarge(body_len))?;
        let mut header = Vec::with_capacity(5);
        header.push(((PacketType::Publish as u8) << 4) | self.flags());
        wire::put_variable_integer(&mut header, remaining);
        // Only the variable header moves, never the payload.
        out.splice(start..start, header);
        Ok(())
    }

    /// Topic, packet identifier and properties.
    pub(crate) fn encode_variable_header(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.dup && self.qos == PublishQos::AtMostOnce {
            return Err(Error::DupAtQos0);
        }
        // A 3.1.1 receiver gets no properties, so no topic alias either.
        let properties = match version {
            ProtocolVersion::V5 => &self.properties,
            ProtocolVersion::V311 => &Properties::default(),
        };
        check_topic(&self.topic, properties, version)?;
        wire::put_string(out, &self.topic, "topic name")?;
        if let Some(id) = self.qos.packet_id() {
            out.extend_from_slice(&id.get().to_be_bytes());
        }
        if version == ProtocolVersion::V5 {
            self.properties.encode(out, PropertyContext::Publish)?;
        }
        Ok(())
    }
}

/// A topic name is valid, or empty in MQTT 5 with a topic alias standing for it.
fn check_topic(
    topic: &str,
    properties: &Properties,
    version: ProtocolVersion,
) -> Result<(), Error> {
    if topic.is_empty() && version == ProtocolVersion::V5 {
        return match properties.topic_alias {
            Some(_) => Ok(()),
            None => Err(Error::EmptyTopicWithoutAlias),
        };
    }
    topic::validate_topic_name(topic)
}

impl Acknowledgement {
    pub(crate) fn decode(
        reader: &mut Reader<'_>,
        packet: PacketType,
        version: ProtocolVersion,
    ) -> Result<Self, Error> {
        let packet_id = read_packet_id(reader)?;
        let mut ack = Self::success(packet_id);
        if version == ProtocolVersion::V311 || reader.is_empty() {
            return Ok(ack);
        }
        ack.reason_code = read_reason_code(reader, packet)?;
        if !reader.is_empty() {
            ack.properties = Properties::decode(reader, context(packet))?;
        }
        Ok(ack)
    }

    pub(crate) fn encode_body(
        &self,
        packet: PacketType,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        out.extend_from_slice(&self.packet_id.get().to_be_bytes());
        if version == ProtocolVersion::V311 {
            return Ok(());
        }
        write_reason_code(out, self.reason_code, packet)?;
        if self.properties.is_empty() {
            // The shortest form: no property length, and no reason code for Success.
            if self.reason_code == ReasonCode::Success {
                out.pop();
            }
            return Ok(());
        }
        self.properties.encode(out, context(packet))
    }
}

fn context(packet: PacketType) -> PropertyContext {
    PropertyContext::of(packet).unwrap_or(PropertyContext::PubAck)
}

/// A one-byte reason code that `packet` may carry in MQTT 5.
pub(crate) fn read_reason_code(
    reader: &mut Reader<'_>,
    packet: PacketType,
) -> Result<ReasonCode, Error> {
    let code = reader.u8("reason code")?;
    ReasonCode::from_value(code)
        .filter(|reason| reason.is_allowed_in(packet))
        .ok_or(Error::InvalidReasonCode { packet, code })
}

/// Appends `reason` after checking `packet` may carry it.
pub(crate) fn write_reason_code(
    out: &mut Vec<u8>,
    reason: ReasonCode,
    packet: PacketType,
) -> Result<(), Error> {
    if !reason.is_allowed_in(packet) {
        return Err(Error::InvalidReasonCode {
            packet,
            code: reason.value(),
        });
    }
    out.push(reason.value());
    Ok(())
}
