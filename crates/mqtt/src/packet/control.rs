//! DISCONNECT (§3.14) and AUTH (§3.15): a reason code and properties that MQTT 5 may leave out
//! entirely when they are Success and none. (PINGREQ and PINGRESP have no body at all.)

use super::publish::{read_reason_code, write_reason_code};
use crate::property::{Properties, PropertyContext};
use crate::wire::Reader;
use crate::{Error, PacketType, ProtocolVersion, ReasonCode};

/// DISCONNECT: the end of a connection, from either side. 3.1.1 carries no reason code or
/// properties (decoded as `Success` and none, dropped when encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why (0x00 is a normal disconnection).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties.
    pub properties: Properties,
}

/// AUTH (MQTT 5 only): a step of enhanced authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason_code: ReasonCode,
    /// Authentication method and data, reason string, user properties.
    pub properties: Properties,
}

impl Default for Disconnect {
    fn default() -> Self {
        Self {
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        }
    }
}

impl Disconnect {
    /// A disconnection for `reason_code` without properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Self {
            reason_code,
            properties: Properties::default(),
        }
    }
}

/// Reads the optional reason code and properties of DISCONNECT or AUTH.
fn decode_optional(
    reader: &mut Reader<'_>,
    packet: PacketType,
    context: PropertyContext,
) -> Result<(ReasonCode, Properties), Error> {
    if reader.is_empty() {
        return Ok((ReasonCode::Success, Properties::default()));
    }
    let reason = read_reason_code(reader, packet)?;
    let properties = if reader.is_empty() {
        Properties::default()
    } else {
        Properties::decode(reader, context)?
    };
    Ok((reason, properties))
}

fn encode_optional(
    out: &mut Vec<u8>,
    reason: ReasonCode,
    properties: &Properties,
    packet: PacketType,
    context: PropertyContext,
) -> Result<(), Error> {
    if reason == ReasonCode::Success && properties.is_empty() {
        return Ok(());
    }
    write_reason_code(out, reason, packet)?;
    if !properties.is_empty() {
        properties.encode(out, context)?;
    }
    Ok(())
}

impl Disconnect {
    pub(crate) fn decode(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, Error> {
        if version == ProtocolVersion::V311 {
            return Ok(Self::default());
        }
        let (reason_code, properties) =
            decode_optional(reader, PacketType::Disconnect, PropertyContext::Disconnect)?;
        Ok(Self {
            reason_code,
            properties,
        })
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        match version {
            ProtocolVersion::V311 => Ok(()),
            ProtocolVersion::V5 => encode_optional(
                out,
                self.reason_code,
                &self.properties,
                PacketType::Disconnect,
                PropertyContext::Disconnect,
            ),
        }
    }
}

impl Auth {
    pub(crate) fn decode(reader: &mut Reader<'_>) -> Result<Self, Error> {
        let (reason_code, properties) =
            decode_optional(reader, PacketType::Auth, PropertyContext::Auth)?;
        Ok(Self {
            reason_code,
            properties,
        })
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if version == ProtocolVersion::V311 {
            return Err(Error::NotInVersion {
                what: "AUTH",
                version,
            });
        }
        encode_optional(
            out,
            self.reason_code,
            &self.properties,
            PacketType::Auth,
            PropertyContext::Auth,
        )
    }
}
