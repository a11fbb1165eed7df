//! Newtypes for fixed-size security values. Each has exactly one length: parsing refuses any other
//! length instead of padding or truncating, and two kinds of value cannot be confused.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

macro_rules! fixed_bytes {
    ($(#[$doc:meta])* $name:ident, $len:expr, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            /// Length in bytes.
            pub const LEN: usize = $len;

            /// Takes exactly `LEN` bytes.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, Error> {
                <[u8; $len]>::try_from(bytes).map(Self).map_err(|_| Error::InvalidValue {
                    what: $what,
                    reason: format!("expected {} bytes, got {}", $len, bytes.len()),
                })
            }

            /// Parses exactly `2 * LEN` hex digits (an optional `0x` prefix is allowed).
            pub fn from_hex(text: &str) -> Result<Self, Error> {
                let text = text.trim();
                let text = text.strip_prefix("0x").unwrap_or(text);
                let bytes = hex::decode(text).map_err(|e| Error::InvalidValue {
                    what: $what,
                    reason: format!("not hex: {e}"),
                })?;
                Self::from_slice(&bytes)
            }

            /// Lower-case hex.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// True when every byte is zero (e.g. an unused RTMR).
            pub fn is_zero(&self) -> bool {
                self.0.iter().all(|b| *b == 0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::from_hex(&text).map_err(D::Error::custom)
            }
        }
    };
}

fixed_bytes!(
    /// A 48-byte measurement (SHA-384): TDX MRTD/RTMRs, SEV-SNP launch measurement, simulated TEE.
    Measurement384,
    48,
    "48-byte measurement"
);
fixed_bytes!(
    /// A 32-byte measurement (SHA-256): SGX MRENCLAVE and MRSIGNER, Wasm module hashes.
    Measurement256,
    32,
    "32-byte measurement"
);
fixed_bytes!(
    /// The 64 bytes of caller data a TEE signs into its evidence (binds keys and nonces).
    ReportData,
    64,
    "64-byte report_data"
);
fixed_bytes!(
    /// A 32-byte SHA-256 digest used as an identifier (evidence, endorsements, policy).
    Digest256,
    32,
    "32-byte digest"
);

impl Digest256 {
    /// SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_exact() {
        assert!(ReportData::from_hex(&"00".repeat(64)).is_ok());
        let short = ReportData::from_hex(&"00".repeat(63)).unwrap_err();
        assert!(
            short.to_string().contains("expected 64 bytes, got 63"),
            "{short}"
        );
        assert!(ReportData::from_hex(&"00".repeat(65)).is_err());
        assert!(Measurement384::from_hex("zz").is_err());
    }

    #[test]
    fn serde_is_lower_hex() {
        let m = Measurement256([0xAB; 32]);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        let back: Measurement256 = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
    }
}
