//! The values that name and protect one connection: its id, its two directions, its protection
//! mode and its 256-bit key. The key is zeroised on drop and never printed.

use std::fmt;

use chacha20poly1305::{ChaCha20Poly1305, KeyInit as _};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore as _};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::EventError;

/// Identifies a connection within a deployment. Below 2^31: the nonce keeps the top bit of its
/// first word for the [`Direction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ConnectionId(u32);

impl ConnectionId {
    /// The largest id.
    pub const MAX: u32 = (1 << 31) - 1;

    /// The id `value`, which must be at most [`Self::MAX`].
    pub fn new(value: u32) -> Result<Self, EventError> {
        if value > Self::MAX {
            return Err(EventError::ConnectionIdOutOfRange(value));
        }
        Ok(Self(value))
    }

    /// The id as a number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for ConnectionId {
    type Error = EventError;
    fn try_from(value: u32) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<ConnectionId> for u32 {
    fn from(id: ConnectionId) -> Self {
        id.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Which way an event travels on its connection. Each direction has its own key and counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Output to input, or request to handler.
    Forward,
    /// A handler's response back to the request that asked.
    Reverse,
}

impl Direction {
    pub(crate) fn bit(self) -> u32 {
        match self {
            Self::Forward => 0,
            Self::Reverse => 1,
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Forward => "forward",
            Self::Reverse => "reverse",
        })
    }
}

/// What a connection's AEAD protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Payload confidential and authentic (the default).
    #[default]
    Encrypted,
    /// Payload authentic but readable by the forwarding layer (for data that is public anyway
    /// and must be inspectable, e.g. by a gateway).
    Authenticated,
}

impl Protection {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::Encrypted => 1,
            Self::Authenticated => 2,
        }
    }
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encrypted => "encrypted",
            Self::Authenticated => "authenticated",
        })
    }
}

/// Domain separation for the per-direction AEAD keys.
const DIRECTION_KEY_SALT: &[u8] = b"teemesh-event-key-v1";

/// A connection's 256-bit key: fresh from the operating system's generator for every connection
/// and every re-key, never derived from anything the descriptor holds.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ConnectionKey([u8; 32]);

impl ConnectionKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, EventError> {
        let mut bytes = [0u8; 32];
        OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| EventError::Randomness(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// A key from bytes that are already secret: a test vector, or a key opened from its wrap.
    /// Never from anything a descriptor or a configuration file holds.
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key's bytes. Only for tests that prove the key appears nowhere it must not (state
    /// files, logs); nothing in teemesh stores or sends them unwrapped.
    pub fn danger_expose_for_tests(&self) -> &[u8; 32] {
        &self.0
    }

    /// The AEAD for one direction of connection `id` under `protection`: the key is
    /// HKDF-SHA256(salt = purpose, ikm = connection key, info = id ‖ direction ‖ protection), so
    /// the two directions, and the two protection modes, never share an AEAD key.
    pub(crate) fn direction_cipher(
        &self,
        id: ConnectionId,
        direction: Direction,
        protection: Protection,
    ) -> ChaCha20Poly1305 {
        let mut info = [0u8; 6];
        info[..4].copy_from_slice(&id.get().to_be_bytes());
        info[4] = direction.bit() as u8;
        info[5] = protection.code();
        let mut okm = [0u8; 32];
        Hkdf::<Sha256>::new(Some(DIRECTION_KEY_SALT), &self.0)
            .expand(&info, &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let cipher = ChaCha20Poly1305::new(&okm.into());
        okm.zeroize();
        cipher
    }
}

impl fmt::Debug for ConnectionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectionKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_ids_leave_the_direction_bit_free() {
        assert!(ConnectionId::new(ConnectionId::MAX).is_ok());
        assert_eq!(
            ConnectionId::new(1 << 31),
            Err(EventError::ConnectionIdOutOfRange(1 << 31))
        );
        assert!(serde_json::from_str::<ConnectionId>("2147483648").is_err());
        assert_eq!(
            serde_json::from_str::<ConnectionId>("7").ok(),
            ConnectionId::new(7).ok()
        );
    }

    #[test]
    fn keys_are_fresh_and_never_printed() {
        let a = ConnectionKey::generate().expect("randomness");
        let b = ConnectionKey::generate().expect("randomness");
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "ConnectionKey(<redacted>)");
    }
}
