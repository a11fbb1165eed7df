//! Why bytes are not a valid frame or message.

/// A malformed frame or message; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The frame's length prefix exceeds the cap.
    #[error("frame of {len} bytes is larger than the {max} allowed")]
    FrameTooLarge {
        /// The announced length.
        len: u64,
        /// The cap.
        max: usize,
    },
    /// The payload is not CBOR of the expected shape.
    #[error("malformed {what}: {detail}")]
    Malformed {
        /// Request or response.
        what: &'static str,
        /// The decoder's reason.
        detail: String,
    },
    /// The request names an operation this node does not know (its id is known).
    #[error("unsupported request (protocol version {version}): {detail}")]
    Unsupported {
        /// The request's id.
        id: u64,
        /// This side's protocol version.
        version: u32,
        /// The decoder's reason.
        detail: String,
    },
    /// A field is out of bounds (too long, bad characters).
    #[error("{0}")]
    Invalid(String),
}
