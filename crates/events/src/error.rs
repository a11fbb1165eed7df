//! The crate's error type: what went wrong building, sealing or unwrapping, said so that an
//! operator can act on it. A rejected incoming event is not an error but a [`crate::Rejection`].

/// Why an event channel operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    /// The payload is larger than an event may be.
    #[error("event of {len} bytes is larger than the {max}-byte limit")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// [`crate::MAX_EVENT_LEN`].
        max: usize,
    },
    /// The sender used its last counter; the connection needs a new key.
    #[error(
        "connection {connection} ({direction}) has used all 2^64 counters; re-key it (teemesh app update) before sending more"
    )]
    CountersExhausted {
        /// The connection.
        connection: crate::ConnectionId,
        /// Its direction.
        direction: crate::Direction,
    },
    /// A receiver already accepts [`crate::MAX_PENDING_KEYS`] keys that no event proved in use.
    #[error(
        "connection {connection} ({direction}) has {pending} new keys that no event has used yet; let an event through before re-keying it again"
    )]
    TooManyKeys {
        /// The connection.
        connection: crate::ConnectionId,
        /// Its direction.
        direction: crate::Direction,
        /// Keys staged and not yet used.
        pending: usize,
    },
    /// A connection id has the bit the nonce reserves for the direction.
    #[error("connection id {0} is out of range (ids are below 2^31)")]
    ConnectionIdOutOfRange(u32),
    /// A module public key is not 32 bytes of X25519.
    #[error("module key: {0}")]
    ModuleKey(String),
    /// A wrapped connection key did not open with this module's key in this context.
    #[error(
        "wrapped connection key does not open for this module and connection (wrong module key, wrong context or altered)"
    )]
    UnwrapFailed,
    /// Wrapping failed (no randomness, or an unusable recipient key).
    #[error("cannot wrap the connection key: {0}")]
    WrapFailed(String),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Randomness(String),
}
