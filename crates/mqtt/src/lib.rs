//! MQTT for teemesh: a sans-IO codec for MQTT 3.1.1 and 5.0, topic validation and matching, and
//! the subscription tree a broker fans messages out with. No sockets, no clock, no runtime: the
//! broker moves the bytes.
//!
//! # Decoding
//!
//! A connection's bytes go through a [`Decoder`] (or the free function [`decode`]): it returns
//! `Ok(None)` until a whole packet is buffered, then the typed [`Packet`] and its length. The
//! fixed header is checked as soon as it arrives ([`Decoder::fixed_header`]), so a packet above
//! the maximum packet size is refused before its body is buffered. The first packet must be
//! CONNECT, whose protocol level fixes the [`ProtocolVersion`] of the rest of the connection.
//!
//! Decoding is strict: reserved flags and bits, QoS 3, packet identifier 0, strings that are not
//! UTF-8 or contain U+0000, wildcards in topic names, misplaced wildcards in topic filters,
//! SUBSCRIBE and UNSUBSCRIBE without filters, CONNECT flag combinations the specification
//! forbids, reason codes a packet may not carry, properties a packet may not carry or carries
//! twice, and bytes after a packet's last field are all refused. Each refusal is an [`Error`]
//! with a one-line message and the MQTT 5 [`ReasonCode`] to disconnect with
//! ([`Error::reason_code`]).
//!
//! # Encoding
//!
//! [`Packet::encode`] appends a packet's bytes for a version and refuses what the decoder would
//! refuse, so `decode(encode(p)) == p` for every packet it encodes. Encoding for 3.1.1 drops what
//! 3.1.1 cannot carry (properties, acknowledgement reason codes).
//!
//! ```
//! use mqtt::{Packet, ProtocolVersion, Publish, PublishQos, Properties, PacketId, Decoder};
//!
//! let publish = Packet::Publish(Publish {
//!     dup: false,
//!     qos: PublishQos::AtLeastOnce(PacketId::new(7).expect("non-zero")),
//!     retain: false,
//!     topic: "sensors/t1".into(),
//!     payload: "21.5".into(),
//!     properties: Properties::default(),
//! });
//! let bytes = publish.to_bytes(ProtocolVersion::V5)?;
//! let mut decoder = Decoder::with_version(ProtocolVersion::V5, mqtt::MAX_PACKET_SIZE);
//! assert_eq!(decoder.decode(&bytes[..3])?, None); // partial: need more bytes
//! assert_eq!(decoder.decode(&bytes)?, Some((publish, bytes.len())));
//! # Ok::<(), mqtt::Error>(())
//! ```
//!
//! # Topics
//!
//! [`topic`] validates topic names and filters, matches them ([`topic::matches`]) and parses
//! shared subscriptions ([`topic::TopicFilter`]); [`TopicTree`] maps filters to values and finds
//! every value whose filter matches a topic.

#![forbid(unsafe_code)]

#[cfg(feature = "broker")]
pub mod broker;
#[cfg(feature = "client")]
pub mod client;
mod codec;
mod error;
mod packet;
mod property;
mod reason;
pub mod topic;
mod tree;
mod types;
mod wire;

pub use codec::{Decoder, FixedHeader, MAX_PACKET_SIZE, decode, parse_fixed_header};
pub use error::Error;
pub use packet::{
    Acknowledgement, Auth, ConnAck, Connect, Disconnect, Packet, Publish, PublishQos,
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, UnsubAck, Unsubscribe,
    Will,
};
pub use property::{PayloadFormat, Properties, PropertyContext, PropertyId};
pub use reason::ReasonCode;
pub use tree::TopicTree;
pub use types::{PacketId, PacketType, ProtocolVersion, QoS, SubscriptionId};

/// The largest value of a variable byte integer (remaining length, property length,
/// subscription identifier).
pub const MAX_VARIABLE_INTEGER: u32 = 268_435_455;
