//! The admin protocol between a teemesh node and its operators (the `teemesh admin` command
//! line today, the deployer next), spoken inside an attested TLS session. Sans-IO: this crate
//! turns messages into bytes and bytes into messages; the node and the client own the sockets.
//!
//! - **Frames** ([`frame`]): `u32` big-endian length, then that many bytes of CBOR; at most
//!   [`MAX_FRAME_LEN`] bytes, so a peer cannot make the other side allocate more.
//! - **Messages** ([`message`]): a [`Request`] carries an id and an [`Op`]; the [`Response`]
//!   echoes the id with a [`Reply`] or an [`ErrorReply`]. The first request of a session is
//!   [`Op::Hello`] with the client's [`PROTOCOL_VERSION`]; new operations get new `Op`
//!   variants, and a node answers one it does not know with [`ErrorKind::Unsupported`] (the id
//!   survives), so older nodes and newer clients fail clearly.
//!
//! Binary data (Wasm bytes, event payloads) travels as CBOR byte strings ([`Bytes`]).
#![forbid(unsafe_code)]

mod bytes;
mod error;
pub mod frame;
pub mod message;

pub use bytes::Bytes;
pub use error::ProtocolError;
pub use frame::{MAX_FRAME_LEN, encode_frame, frame_len};
pub use message::{
    CallKind, ConnectSpec, ConnectionEnd, ConnectionInfo, ErrorKind, ErrorReply, EventProtection,
    MAX_ENVELOPE_LEN, MAX_MODULE_LEN, MAX_NAME_LEN, MAX_PAYLOAD_LEN, MAX_TOPIC_LEN, ModuleInfo,
    ModuleManifest, MqttListener, Op, OutputEvent, PROTOCOL_VERSION, Reply, Request, Response,
    StatusReply, TopicDirection, TopicEndInfo, TopicSpec, check_module_name,
};
