//! The crate's error type: why bytes are not a valid packet (or a packet cannot be encoded), said
//! in one printable line, with the MQTT 5 reason code a broker sends when it disconnects for it.

use crate::{PacketType, PropertyContext, PropertyId, ProtocolVersion, ReasonCode};

/// Why a packet was refused (decoding) or cannot be sent (encoding), or why a topic is invalid.
///
/// Every variant maps to the reason code a server puts in its DISCONNECT (or CONNACK) with
/// [`Error::reason_code`], and has a short stable name ([`Error::kind`]) for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The fixed header's packet type is reserved (0, or 15 in MQTT 3.1.1).
    #[error("packet type {0} is reserved")]
    ReservedPacketType(u8),
    /// The fixed header's flags differ from what the packet type requires.
    #[error(
        "{packet} fixed header flags are 0x{flags:X}, the specification requires 0x{expected:X}"
    )]
    ReservedFlags {
        /// The packet type.
        packet: PacketType,
        /// The flags found.
        flags: u8,
        /// The flags the type requires.
        expected: u8,
    },
    /// A variable byte integer is longer than 4 bytes or not in its shortest form.
    #[error("{what} is not a variable byte integer of at most 4 bytes in its shortest form")]
    MalformedVariableInteger {
        /// Which field.
        what: &'static str,
    },
    /// The whole packet is larger than the receiver's maximum packet size.
    #[error("packet of {size} bytes is larger than the {max}-byte maximum packet size")]
    PacketTooLarge {
        /// The packet's total size (fixed header included).
        size: u64,
        /// The maximum.
        max: u32,
    },
    /// A packet to encode does not fit the 268,435,455 bytes a remaining length can say.
    #[error("packet body of {0} bytes is larger than the 268435455 bytes MQTT can frame")]
    RemainingLengthTooLarge(usize),
    /// The remaining length ends inside a field.
    #[error("{packet} ends inside its {what}")]
    Truncated {
        /// The packet type.
        packet: PacketType,
        /// The field being read.
        what: &'static str,
    },
    /// Bytes are left after a packet's last field.
    #[error("{packet} has {extra} bytes after its last field")]
    TrailingBytes {
        /// The packet type.
        packet: PacketType,
        /// How many bytes.
        extra: usize,
    },
    /// A string field is not UTF-8.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// Which field.
        what: &'static str,
    },
    /// A string field contains U+0000, which MQTT strings must not.
    #[error("{what} contains the null character U+0000")]
    NullCharacter {
        /// Which field.
        what: &'static str,
    },
    /// A string or binary field is longer than a two-byte length can say (encoding).
    #[error("{what} of {len} bytes is longer than the 65535 bytes a field can hold")]
    FieldTooLong {
        /// Which field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A QoS field holds 3.
    #[error("QoS {0} is reserved (0, 1 or 2)")]
    InvalidQos(u8),
    /// CONNECT's protocol name is not "MQTT".
    #[error("protocol name {0:?} is not \"MQTT\"")]
    InvalidProtocolName(String),
    /// CONNECT's protocol level is not 4 (3.1.1) or 5 (5.0).
    #[error("protocol level {0} is not supported (4 is MQTT 3.1.1, 5 is MQTT 5.0)")]
    UnsupportedProtocolVersion(u8),
    /// CONNECT's reserved flag (bit 0) is set.
    #[error("CONNECT sets its reserved flag bit")]
    ReservedConnectFlag,
    /// CONNECT sets will QoS or will retain without the will flag.
    #[error("CONNECT sets will QoS or will retain without the will flag")]
    WillFlagsWithoutWill,
    /// An MQTT 3.1.1 CONNECT has a password but no user name.
    #[error("MQTT 3.1.1 CONNECT has a password without a user name")]
    PasswordWithoutUsername,
    /// CONNACK's acknowledge flags set reserved bits.
    #[error("CONNACK acknowledge flags 0x{0:02X} set reserved bits")]
    ReservedConnAckFlags(u8),
    /// A CONNACK refusing the connection says a session is present.
    #[error("CONNACK refusing the connection ({0}) says a session is present")]
    SessionPresentOnRefusal(ReasonCode),
    /// A packet identifier is 0.
    #[error("{0} has packet identifier 0")]
    ZeroPacketId(PacketType),
    /// A QoS 0 PUBLISH sets DUP.
    #[error("QoS 0 PUBLISH sets the DUP flag")]
    DupAtQos0,
    /// A topic name is empty where it may not be, or contains a wildcard.
    #[error("topic name {topic:?} is invalid: {reason}")]
    TopicNameInvalid {
        /// The topic (its start, if long).
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A topic filter misplaces a wildcard, is empty, or is a malformed shared subscription.
    #[error("topic filter {filter:?} is invalid: {reason}")]
    TopicFilterInvalid {
        /// The filter (its start, if long).
        filter: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An MQTT 5 PUBLISH has an empty topic name and no topic alias.
    #[error("PUBLISH has an empty topic name and no topic alias")]
    EmptyTopicWithoutAlias,
    /// SUBSCRIBE or UNSUBSCRIBE has no topic filter.
    #[error("{0} has no topic filters")]
    NoTopicFilters(PacketType),
    /// SUBACK or (MQTT 5) UNSUBACK has no reason code.
    #[error("{0} has no reason codes")]
    NoReasonCodes(PacketType),
    /// Subscription options set reserved bits.
    #[error("subscription options 0x{0:02X} set reserved bits")]
    ReservedSubscriptionOptions(u8),
    /// Subscription options' retain handling is 3.
    #[error("retain handling 3 is reserved (0, 1 or 2)")]
    InvalidRetainHandling,
    /// A shared subscription sets no-local.
    #[error("shared subscription {0:?} sets no-local")]
    NoLocalOnSharedSubscription(String),
    /// A reason code the packet may not carry (or one the specification does not define).
    #[error("{packet} cannot carry reason code 0x{code:02X}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The code.
        code: u8,
    },
    /// A property identifier the specification does not define.
    #[error("property identifier 0x{0:02X} is not defined")]
    UnknownProperty(u32),
    /// A property the packet (or will) may not carry.
    #[error("{property} is not allowed in {context}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// Where it was found.
        context: PropertyContext,
    },
    /// A property that may appear once appears again.
    #[error("{0} appears more than once")]
    DuplicateProperty(PropertyId),
    /// A property's value is outside what the specification allows.
    #[error("{property} value {value} is not allowed ({expected})")]
    InvalidPropertyValue {
        /// The property.
        property: PropertyId,
        /// The value found.
        value: u32,
        /// What is allowed.
        expected: &'static str,
    },
    /// Authentication data without an authentication method.
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
    /// Something MQTT 3.1.1 cannot express was to be encoded for it.
    #[error("{what} cannot be sent in {version}")]
    NotInVersion {
        /// What cannot be sent.
        what: &'static str,
        /// The version.
        version: ProtocolVersion,
    },
    /// The first packet on a connection is not CONNECT.
    #[error("the first packet must be CONNECT, got {0}")]
    ExpectedConnect(PacketType),
    /// A second CONNECT on a connection.
    #[error("CONNECT on a connection that is already connected")]
    UnexpectedConnect,
}

impl Error {
    /// The MQTT 5 reason code for this error: what a server sends in the DISCONNECT (or the
    /// CONNACK, before the connection is accepted) that closes the connection.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::ReservedPacketType(_)
            | Self::ReservedFlags { .. }
            | Self::MalformedVariableInteger { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::InvalidUtf8 { .. }
            | Self::NullCharacter { .. }
            | Self::FieldTooLong { .. }
            | Self::InvalidQos(_)
            | Self::ReservedConnectFlag
            | Self::WillFlagsWithoutWill
            | Self::PasswordWithoutUsername
            | Self::ReservedConnAckFlags(_)
            | Self::DupAtQos0
            | Self::ReservedSubscriptionOptions(_)
            | Self::InvalidReasonCode { .. }
            | Self::UnknownProperty(_) => ReasonCode::MalformedPacket,
            Self::PacketTooLarge { .. } | Self::RemainingLengthTooLarge(_) => {
                ReasonCode::PacketTooLarge
            }
            Self::InvalidProtocolName(_) | Self::UnsupportedProtocolVersion(_) => {
                ReasonCode::UnsupportedProtocolVersion
            }
            Self::TopicNameInvalid { .. } => ReasonCode::TopicNameInvalid,
            Self::TopicFilterInvalid { .. } => ReasonCode::TopicFilterInvalid,
            Self::SessionPresentOnRefusal(_)
            | Self::ZeroPacketId(_)
            | Self::EmptyTopicWithoutAlias
            | Self::NoTopicFilters(_)
            | Self::NoReasonCodes(_)
            | Self::InvalidRetainHandling
            | Self::NoLocalOnSharedSubscription(_)
            | Self::PropertyNotAllowed { .. }
            | Self::DuplicateProperty(_)
            | Self::InvalidPropertyValue { .. }
            | Self::AuthDataWithoutMethod
            | Self::NotInVersion { .. }
            | Self::ExpectedConnect(_)
            | Self::UnexpectedConnect => ReasonCode::ProtocolError,
        }
    }

    /// A short stable name for the error (snake case), for logs, metrics and test corpora.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ReservedPacketType(_) => "reserved_packet_type",
            Self::ReservedFlags { .. } => "reserved_flags",
            Self::MalformedVariableInteger { .. } => "malformed_variable_integer",
            Self::PacketTooLarge { .. } => "packet_too_large",
            Self::RemainingLengthTooLarge(_) => "remaining_length_too_large",
            Self::Truncated { .. } => "truncated",
            Self::TrailingBytes { .. } => "trailing_bytes",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::NullCharacter { .. } => "null_character",
            Self::FieldTooLong { .. } => "field_too_long",
            Self::InvalidQos(_) => "invalid_qos",
            Self::InvalidProtocolName(_) => "invalid_protocol_name",
            Self::UnsupportedProtocolVersion(_) => "unsupported_protocol_version",
            Self::ReservedConnectFlag => "reserved_connect_flag",
            Self::WillFlagsWithoutWill => "will_flags_without_will",
            Self::PasswordWithoutUsername => "password_without_username",
            Self::ReservedConnAckFlags(_) => "reserved_connack_flags",
            Self::SessionPresentOnRefusal(_) => "session_present_on_refusal",
            Self::ZeroPacketId(_) => "zero_packet_id",
            Self::DupAtQos0 => "dup_at_qos0",
            Self::TopicNameInvalid { .. } => "topic_name_invalid",
            Self::TopicFilterInvalid { .. } => "topic_filter_invalid",
            Self::EmptyTopicWithoutAlias => "empty_topic_without_alias",
            Self::NoTopicFilters(_) => "no_topic_filters",
            Self::NoReasonCodes(_) => "no_reason_codes",
            Self::ReservedSubscriptionOptions(_) => "reserved_subscription_options",
            Self::InvalidRetainHandling => "invalid_retain_handling",
            Self::NoLocalOnSharedSubscription(_) => "no_local_on_shared_subscription",
            Self::InvalidReasonCode { .. } => "invalid_reason_code",
            Self::UnknownProperty(_) => "unknown_property",
            Self::PropertyNotAllowed { .. } => "property_not_allowed",
            Self::DuplicateProperty(_) => "duplicate_property",
            Self::InvalidPropertyValue { .. } => "invalid_property_value",
            Self::AuthDataWithoutMethod => "auth_data_without_method",
            Self::NotInVersion { .. } => "not_in_version",
            Self::ExpectedConnect(_) => "expected_connect",
            Self::UnexpectedConnect => "unexpected_connect",
        }
    }
}

/// The start of an untrusted string for an error message: at most 64 characters, so one
/// refusal never carries a 64 KiB topic into a log line.
pub(crate) fn excerpt(text: &str) -> String {
    const MAX_CHARS: usize = 64;
    match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
