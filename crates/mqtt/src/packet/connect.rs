//! CONNECT (§3.1) with its will, and CONNACK (§3.2). CONNECT is read the same way in every
//! version: its protocol level says which version the rest of it, and the connection, speaks.

use bytes::Bytes;

use crate::property::{Properties, PropertyContext};
use crate::wire::{self, Reader};
use crate::{Error, PacketType, ProtocolVersion, QoS, ReasonCode, topic};

/// CONNECT: a client opens a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The version the client speaks; CONNECT is always encoded in it.
    pub protocol: ProtocolVersion,
    /// Clean Start (5.0) / Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The client identifier; may be empty (the server then assigns one, or refuses).
    pub client_id: String,
    /// The will message, published if the connection ends without DISCONNECT.
    pub will: Option<Will>,
    /// User name.
    pub username: Option<String>,
    /// Password (binary data).
    pub password: Option<Bytes>,
    /// MQTT 5 properties (empty in 3.1.1).
    pub properties: Properties,
}

/// The will message a CONNECT carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Topic name (no wildcards).
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// QoS to publish it with.
    pub qos: QoS,
    /// Whether to publish it retained.
    pub retain: bool,
    /// MQTT 5 will properties (empty in 3.1.1).
    pub properties: Properties,
}

/// CONNACK: the server's answer to CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session (never with a refusal).
    pub session_present: bool,
    /// The outcome. MQTT 3.1.1 can only say [`ReasonCode::Success`],
    /// `UnsupportedProtocolVersion`, `ClientIdentifierNotValid`, `ServerUnavailable`,
    /// `BadUserNameOrPassword` and `NotAuthorized` (its return codes 0 to 5).
    pub reason_code: ReasonCode,
    /// MQTT 5 properties (empty in 3.1.1).
    pub properties: Properties,
}

const PROTOCOL_NAME: &[u8] = b"MQTT";
/// MQTT 3.1's protocol name, recognised to refuse 3.1 as an unsupported version.
const PROTOCOL_NAME_V31: &[u8] = b"MQIsdp";

mod flag {
    pub(super) const RESERVED: u8 = 0x01;
    pub(super) const CLEAN_START: u8 = 0x02;
    pub(super) const WILL: u8 = 0x04;
    pub(super) const WILL_QOS_SHIFT: u8 = 3;
    pub(super) const WILL_QOS: u8 = 0x18;
    pub(super) const WILL_RETAIN: u8 = 0x20;
    pub(super) const PASSWORD: u8 = 0x40;
    pub(super) const USERNAME: u8 = 0x80;
}

impl Connect {
    pub(crate) fn decode(reader: &mut Reader<'_>) -> Result<Self, Error> {
        let name = reader.binary_slice("protocol name")?;
        let level = reader.u8("protocol level")?;
        if name != PROTOCOL_NAME {
            if name == PROTOCOL_NAME_V31 {
                return Err(Error::UnsupportedProtocolVersion(level));
            }
            return Err(Error::InvalidProtocolName(crate::error::excerpt(
                &String::from_utf8_lossy(name),
            )));
        }
        let protocol =
            ProtocolVersion::from_level(level).ok_or(Error::UnsupportedProtocolVersion(level))?;
        let flags = reader.u8("connect flags")?;
        if flags & flag::RESERVED != 0 {
            return Err(Error::ReservedConnectFlag);
        }
        let has_will = flags & flag::WILL != 0;
        let will_qos = QoS::from_bits((flags & flag::WILL_QOS) >> flag::WILL_QOS_SHIFT)?;
        let will_retain = flags & flag::WILL_RETAIN != 0;
        if !has_will && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(Error::WillFlagsWithoutWill);
        }
        let has_username = flags & flag::USERNAME != 0;
        let has_password = flags & flag::PASSWORD != 0;
        if protocol == ProtocolVersion::V311 && has_password && !has_username {
            return Err(Error::PasswordWithoutUsername);
        }
        let keep_alive = reader.u16("keep alive")?;
        let properties = match protocol {
            ProtocolVersion::V5 => Properties::decode(reader, PropertyContext::Connect)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let client_id = reader.string("client identifier")?;
        let will = if has_will {
            let properties = match protocol {
                ProtocolVersion::V5 => Properties::decode(reader, PropertyContext::Will)?,
                ProtocolVersion::V311 => Properties::default(),
            };
            let topic = reader.string("will topic")?;
            topic::validate_topic_name(&topic)?;
            let payload = reader.binary("will payload")?;
            Some(Will {
                topic,
                payload,
                qos: will_qos,
                retain: will_retain,
                properties,
            })
        } else {
            None
        };
        let username = has_username
            .then(|| reader.string("user name"))
            .transpose()?;
        let password = has_password
            .then(|| reader.binary("password"))
            .transpose()?;
        Ok(Self {
            protocol,
            clean_start: flags & flag::CLEAN_START != 0,
            keep_alive,
            client_id,
            will,
            username,
            password,
            properties,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), Error> {
        let v5 = self.protocol == ProtocolVersion::V5;
        if !v5 && self.password.is_some() && self.username.is_none() {
            return Err(Error::PasswordWithoutUsername);
        }
        wire::put_binary(out, PROTOCOL_NAME, "protocol name")?;
        out.push(self.protocol.level());
        let mut flags = 0;
        if self.clean_start {
            flags |= flag::CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= flag::WILL | ((will.qos as u8) << flag::WILL_QOS_SHIFT);
            if will.retain {
                flags |= flag::WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= flag::USERNAME;
        }
        if self.password.is_some() {
            flags |= flag::PASSWORD;
        }
        out.push(flags);
        out.extend_from_slice(&self.keep_alive.to_be_bytes());
        if v5 {
            self.properties.encode(out, PropertyContext::Connect)?;
        }
        wire::put_string(out, &self.client_id, "client identifier")?;
        if let Some(will) = &self.will {
            if v5 {
                will.properties.encode(out, PropertyContext::Will)?;
            }
            topic::validate_topic_name(&will.topic)?;
            wire::put_string(out, &will.topic, "will topic")?;
            wire::put_binary(out, &will.payload, "will payload")?;
        }
        if let Some(username) = &self.username {
            wire::put_string(out, username, "user name")?;
        }
        if let Some(password) = &self.password {
            wire::put_binary(out, password, "password")?;
        }
        Ok(())
    }
}

const SESSION_PRESENT: u8 = 0x01;

impl ConnAck {
    pub(crate) fn decode(reader: &mut Reader<'_>, version: ProtocolVersion) -> Result<Self, Error> {
        let flags = reader.u8("acknowledge flags")?;
        if flags & !SESSION_PRESENT != 0 {
            return Err(Error::ReservedConnAckFlags(flags));
        }
        let code = reader.u8("reason code")?;
        let invalid = Error::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        };
        let reason_code = match version {
            ProtocolVersion::V311 => ReasonCode::from_v311_connack(code).ok_or(invalid)?,
            ProtocolVersion::V5 => ReasonCode::from_value(code)
                .filter(|reason| reason.is_allowed_in(PacketType::ConnAck))
                .ok_or(invalid)?,
        };
        let session_present = flags & SESSION_PRESENT != 0;
        if session_present && reason_code != ReasonCode::Success {
            return Err(Error::SessionPresentOnRefusal(reason_code));
        }
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(reader, PropertyContext::ConnAck)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        Ok(Self {
            session_present,
            reason_code,
            properties,
        })
    }

    pub(crate) fn encode_body(
        &self,
        version: ProtocolVersion,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        if self.session_present && self.reason_code != ReasonCode::Success {
            return Err(Error::SessionPresentOnRefusal(self.reason_code));
        }
        out.push(if self.session_present {
            SESSION_PRESENT
        } else {
            0
        });
        match version {
            ProtocolVersion::V311 => {
                let code = self
                    .reason_code
                    .to_v311_connack()
                    .ok_or(Error::NotInVersion {
                        what: "this CONNACK reason code",
                        version,
                    })?;
                out.push(code);
            }
            ProtocolVersion::V5 => {
                if !self.reason_code.is_allowed_in(PacketType::ConnAck) {
                    return Err(Error::InvalidReasonCode {
                        packet: PacketType::ConnAck,
                        code: self.reason_code.value(),
                    });
                }
                out.push(self.reason_code.value());
                self.properties.encode(out, PropertyContext::ConnAck)?;
            }
        }
        Ok(())
    }
}
