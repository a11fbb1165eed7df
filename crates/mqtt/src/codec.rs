//! Framing: the fixed header (§2.1), the streaming [`decode`] function that turns the front of a
//! byte buffer into a packet, and the per-connection [`Decoder`] that learns the version from
//! CONNECT.

use crate::wire::parse_variable_integer;
use crate::{Error, Packet, PacketType, ProtocolVersion};

/// The largest packet MQTT can frame: a type byte, four length bytes and 268,435,455 bytes of
/// body. Pass it as `max_packet_size` for "no limit of our own".
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + crate::MAX_VARIABLE_INTEGER;

/// A checked fixed header: the packet type, its flags and the length of what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedHeader {
    /// The packet type.
    pub packet_type: PacketType,
    /// The low nibble of the first byte (PUBLISH's DUP, QoS, RETAIN; fixed for the others).
    pub flags: u8,
    /// The remaining length: the bytes after the fixed header.
    pub remaining_length: u32,
    /// The fixed header's own length (2 to 5 bytes).
    pub header_len: usize,
}

impl FixedHeader {
    /// The whole packet's length, fixed header included.
    pub fn packet_len(&self) -> usize {
        // u32 → usize is lossless on every platform this crate builds for (16-bit is not one).
        self.header_len + self.remaining_length as usize
    }
}

/// Reads and checks the fixed header at the start of `buf`, as soon as its bytes are there:
/// `Ok(None)` means more bytes are needed. A reserved packet type, wrong flags, a QoS of 3, a
/// malformed remaining length and a packet larger than `max_packet_size` (counted with its fixed
/// header) are refused here, before the caller buffers the body.
pub fn parse_fixed_header(
    buf: &[u8],
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<FixedHeader>, Error> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (packet_type, flags) = parse_first_byte(first, version)?;
    let Some((remaining_length, len_bytes)) =
        parse_variable_integer(&buf[1..], "remaining length")?
    else {
        return Ok(None);
    };
    let header = FixedHeader {
        packet_type,
        flags,
        remaining_length,
        header_len: 1 + len_bytes,
    };
    let size = header.packet_len() as u64;
    if size > u64::from(max_packet_size) {
        return Err(Error::PacketTooLarge {
            size,
            max: max_packet_size,
        });
    }
    Ok(Some(header))
}

/// The packet type and flags of a fixed header's first byte, checked.
fn parse_first_byte(first: u8, version: ProtocolVersion) -> Result<(PacketType, u8), Error> {
    let nibble = first >> 4;
    let flags = first & 0x0F;
    let packet_type = PacketType::from_nibble(nibble)
        .filter(|packet| !(*packet == PacketType::Auth && version == ProtocolVersion::V311))
        .ok_or(Error::ReservedPacketType(nibble))?;
    if packet_type == PacketType::Publish {
        crate::QoS::from_bits((flags >> 1) & 0x03)?;
    } else if flags != packet_type.fixed_flags() {
        return Err(Error::ReservedFlags {
            packet: packet_type,
            flags,
            expected: packet_type.fixed_flags(),
        });
    }
    Ok((packet_type, flags))
}

/// Decodes the packet at the start of `buf` for a connection speaking `version`.
///
/// `Ok(None)`: `buf` holds only part of a packet (never an error; read more and call again).
/// `Ok(Some((packet, len)))`: the packet and how many bytes of `buf` it took. CONNECT is decoded
/// by its own protocol level whatever `version` says; every other packet by `version`. Anything
/// else in the packet that the specification forbids is an [`Error`], whose
/// [`Error::reason_code`] is what to disconnect with.
pub fn decode(
    buf: &[u8],
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<(Packet, usize)>, Error> {
    let Some(header) = parse_fixed_header(buf, version, max_packet_size)? else {
        return Ok(None);
    };
    let Some(packet_bytes) = buf.get(..header.packet_len()) else {
        return Ok(None);
    };
    let packet = Packet::decode_body(&header, &packet_bytes[header.header_len..], version)?;
    Ok(Some((packet, header.packet_len())))
}

/// The decoder of one connection: refuses anything but CONNECT first, learns the protocol
/// version from it, then decodes every later packet with that version and refuses another
/// CONNECT.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

impl Decoder {
    /// A server-side decoder awaiting CONNECT, refusing packets above `max_packet_size` bytes.
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            version: None,
            max_packet_size,
        }
    }

    /// A decoder for a connection whose version is known (a client, after sending CONNECT).
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            version: Some(version),
            max_packet_size,
        }
    }

    /// The connection's version, once CONNECT has been decoded.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The maximum packet size enforced.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the maximum packet size (e.g. after CONNACK announced a smaller one).
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Checks the fixed header at the start of `buf` (see [`parse_fixed_header`]), including
    /// the CONNECT-first rule, so a caller can refuse a packet before buffering its body.
    pub fn fixed_header(&self, buf: &[u8]) -> Result<Option<FixedHeader>, Error> {
        // Before CONNECT the version is unknown; only CONNECT is accepted, which reads the same
        // in both, so any version serves to check its header.
        let version = self.version.unwrap_or(ProtocolVersion::V5);
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        // Judged on the first byte, before the rest of the header arrives.
        let (packet_type, _) = parse_first_byte(first, version)?;
        let is_connect = packet_type == PacketType::Connect;
        match self.version {
            None if !is_connect => return Err(Error::ExpectedConnect(packet_type)),
            Some(_) if is_connect => return Err(Error::UnexpectedConnect),
            _ => {}
        }
        parse_fixed_header(buf, version, self.max_packet_size)
    }

    /// Decodes the packet at the start of `buf`, as [`decode`] does, under the connection's
    /// rules.
    pub fn decode(&mut self, buf: &[u8]) -> Result<Option<(Packet, usize)>, Error> {
        let Some(header) = self.fixed_header(buf)? else {
            return Ok(None);
        };
        let Some(packet_bytes) = buf.get(..header.packet_len()) else {
            return Ok(None);
        };
        let version = self.version.unwrap_or(ProtocolVersion::V5);
        let packet = Packet::decode_body(&header, &packet_bytes[header.header_len..], version)?;
        if let Packet::Connect(connect) = &packet {
            self.version = Some(connect.protocol);
        }
        Ok(Some((packet, header.packet_len())))
    }
}
