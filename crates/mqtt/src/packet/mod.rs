//! The control packets: [`Packet`] and one typed struct per packet, each decoding its body from
//! a fixed header's flags and encoding it back.

mod connect;
mod control;
mod publish;
mod subscribe;

pub use connect::{ConnAck, Connect, Will};
pub use control::{Auth, Disconnect};
pub use publish::{Acknowledgement, Publish, PublishQos};
pub use subscribe::{
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe,
};

use crate::codec::FixedHeader;
use crate::wire::{self, Reader};
use crate::{Error, MAX_VARIABLE_INTEGER, PacketId, PacketType, ProtocolVersion};

/// An MQTT control packet of either version.
///
/// Fields MQTT 3.1.1 cannot carry (properties, most reason codes) decode as their empty or
/// `Success` values in 3.1.1 and are dropped when encoding for 3.1.1; where dropping would change
/// what a packet says (a CONNACK refusal 3.1.1 has no code for, AUTH) encoding fails instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are the packets their structs document
pub enum Packet {
    /// Boxed: it carries two property lists and comes once per connection.
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(Acknowledgement),
    PubRec(Acknowledgement),
    PubRel(Acknowledgement),
    PubComp(Acknowledgement),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    /// MQTT 5 only.
    Auth(Auth),
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Self::Connect(_) => PacketType::Connect,
            Self::ConnAck(_) => PacketType::ConnAck,
            Self::Publish(_) => PacketType::Publish,
            Self::PubAck(_) => PacketType::PubAck,
            Self::PubRec(_) => PacketType::PubRec,
            Self::PubRel(_) => PacketType::PubRel,
            Self::PubComp(_) => PacketType::PubComp,
            Self::Subscribe(_) => PacketType::Subscribe,
            Self::SubAck(_) => PacketType::SubAck,
            Self::Unsubscribe(_) => PacketType::Unsubscribe,
            Self::UnsubAck(_) => PacketType::UnsubAck,
            Self::PingReq => PacketType::PingReq,
            Self::PingResp => PacketType::PingResp,
            Self::Disconnect(_) => PacketType::Disconnect,
            Self::Auth(_) => PacketType::Auth,
        }
    }

    /// Decodes the body of a packet whose fixed header (already checked) is `header`. Every
    /// byte of `body` must belong to the packet.
    pub(crate) fn decode_body(
        header: &FixedHeader,
        body: &[u8],
        version: ProtocolVersion,
    ) -> Result<Self, Error> {
        let packet = header.packet_type;
        let mut reader = Reader::new(body, packet);
        let r = &mut reader;
        let decoded = match packet {
            PacketType::Connect => Self::Connect(Box::new(Connect::decode(r)?)),
            PacketType::ConnAck => Self::ConnAck(ConnAck::decode(r, version)?),
            PacketType::Publish => Self::Publish(Publish::decode(r, header.flags, version)?),
            PacketType::PubAck => Self::PubAck(Acknowledgement::decode(r, packet, version)?),
            PacketType::PubRec => Self::PubRec(Acknowledgement::decode(r, packet, version)?),
            PacketType::PubRel => Self::PubRel(Acknowledgement::decode(r, packet, version)?),
            PacketType::PubComp => Self::PubComp(Acknowledgement::decode(r, packet, version)?),
            PacketType::Subscribe => Self::Subscribe(Subscribe::decode(r, version)?),
            PacketType::SubAck => Self::SubAck(SubAck::decode(r, version)?),
            PacketType::Unsubscribe => Self::Unsubscribe(Unsubscribe::decode(r, version)?),
            PacketType::UnsubAck => Self::UnsubAck(UnsubAck::decode(r, version)?),
            PacketType::PingReq => Self::PingReq,
            PacketType::PingResp => Self::PingResp,
            PacketType::Disconnect => Self::Disconnect(Disconnect::decode(r, version)?),
            PacketType::Auth => Self::Auth(Auth::decode(r)?),
        };
        reader.finish()?;
        Ok(decoded)
    }

    /// Appends the packet's bytes for a connection speaking `version` (CONNECT is always
    /// encoded in its own [`Connect::protocol`]). On error `out` is left as it was.
    ///
    /// Everything the decoder refuses, the encoder refuses too, so for every packet this
    /// encodes, [`crate::decode`] with the same version gives the packet back.
    pub fn encode(&self, version: ProtocolVersion, out: &mut Vec<u8>) -> Result<(), Error> {
        if let Self::Publish(publish) = self {
            // The head first, then the payload once: no move of a large body.
            publish.encode_head(version, out)?;
            out.extend_from_slice(&publish.payload);
            return Ok(());
        }
        let start = out.len();
        let result = self.encode_framed(version, out, start);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The packet's bytes for a connection speaking `version`; see [`Packet::encode`].
    pub fn to_bytes(&self, version: ProtocolVersion) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.encode(version, &mut out)?;
        Ok(out)
    }

    fn encode_framed(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<(), Error> {
        let packet = self.packet_type();
        let flags = match self {
            Self::Publish(publish) => publish.flags(),
            _ => packet.fixed_flags(),
        };
        match self {
            Self::Connect(connect) => connect.encode_body(out)?,
            Self::ConnAck(ack) => ack.encode_body(version, out)?,
            // `encode` takes the shorter way; this one is kept whole for clarity.
            Self::Publish(publish) => {
                publish.encode_variable_header(version, out)?;
                out.extend_from_slice(&publish.payload);
            }
            Self::PubAck(ack) | Self::PubRec(ack) | Self::PubRel(ack) | Self::PubComp(ack) => {
                ack.encode_body(packet, version, out)?;
            }
            Self::Subscribe(subscribe) => subscribe.encode_body(version, out)?,
            Self::SubAck(ack) => ack.encode_body(version, out)?,
            Self::Unsubscribe(unsubscribe) => unsubscribe.encode_body(version, out)?,
            Self::UnsubAck(ack) => ack.encode_body(version, out)?,
            Self::PingReq | Self::PingResp => {}
            Self::Disconnect(disconnect) => disconnect.encode_body(version, out)?,
            Self::Auth(auth) => auth.encode_body(version, out)?,
        }
        let body_len = out.len() - start;
        let remaining = u32::try_from(body_len)
            .ok()
            .filter(|len| *len <= MAX_VARIABLE_INTEGER)
            .ok_or(Error::RemainingLengthTooLarge(body_len))?;
        let mut header = Vec::with_capacity(5);
        header.push(((packet as u8) << 4) | flags);
        wire::put_variable_integer(&mut header, remaining);
        // The body is written first because its length is only known then; moving it once is
        // cheaper than measuring every field twice.
        out.splice(start..start, header);
        Ok(())
    }
}

/// A packet identifier, which is never 0.
pub(crate) fn read_packet_id(reader: &mut Reader<'_>) -> Result<PacketId, Error> {
    let value = reader.u16("packet identifier")?;
    PacketId::new(value).ok_or(Error::ZeroPacketId(reader.packet()))
}
