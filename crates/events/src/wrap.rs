//! Provisioning connection keys: the deployer wraps each fresh connection key to the attested
//! key of every module that uses the connection, with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305). The wrap is bound to its context
//! (application, connection, module, port, measurement), so a wrapped key handed to another
//! module, another port or a module with other code does not open.
//!
//! A module's key pair is held by the node that hosts it, derived from the node's sealing secret
//! and the module's load, and its public half is part of the module claims the node signs; a
//! deployer that verified those claims knows the key belongs to that code on that attested node.

use std::fmt;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use rand_core_09::{OsRng, UnwrapErr};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{ConnectionId, ConnectionKey, EventError};

type Kem = X25519HkdfSha256;

/// Domain separation of the HPKE `info`.
const WRAP_INFO_LABEL: &[u8] = b"teemesh-connection-key-v1";
/// Domain separation of the HPKE `info` of a module hand-over.
const HANDOVER_INFO_LABEL: &[u8] = b"teemesh-module-handover-v1";
/// Domain separation when deriving a module key pair from secret material.
const MODULE_KEY_LABEL: &[u8] = b"teemesh-module-key-v1";

/// A module's public key (X25519), hex in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModulePublicKey([u8; 32]);

impl ModulePublicKey {
    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for ModulePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModulePublicKey({})", hex::encode(self.0))
    }
}

impl fmt::Display for ModulePublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl Serialize for ModulePublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for ModulePublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes).map_err(|e| {
            serde::de::Error::custom(format!("module key is not 32 bytes of hex: {e}"))
        })?;
        Ok(Self(bytes))
    }
}

/// A module's key pair. The private half never leaves the node that derived it.
pub struct ModuleKeyPair {
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: ModulePublicKey,
}

impl ModuleKeyPair {
    /// The key pair derived from `secret` (at least 32 bytes of secret material, e.g. a KDF
    /// output of the node's sealing secret and the module's load), with HPKE's DeriveKeyPair.
    pub fn derive(secret: &[u8]) -> Result<Self, EventError> {
        if secret.len() < 32 {
            return Err(EventError::ModuleKey(format!(
                "key material of {} bytes; at least 32 are needed",
                secret.len()
            )));
        }
        let mut ikm = Zeroizing::new(Vec::with_capacity(MODULE_KEY_LABEL.len() + secret.len()));
        ikm.extend_from_slice(MODULE_KEY_LABEL);
        ikm.extend_from_slice(secret);
        let (secret, public) = Kem::derive_keypair(&ikm);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        Ok(Self {
            secret,
            public: ModulePublicKey(bytes),
        })
    }

    /// The public half, which goes into the module's claims.
    pub fn public(&self) -> ModulePublicKey {
        self.public
    }

    /// Opens a connection key wrapped to this module in `context`.
    pub fn unwrap_key(
        &self,
        wrapped: &WrappedKey,
        context: &WrapContext<'_>,
    ) -> Result<ConnectionKey, EventError> {
        let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrapped.encapsulated)
            .map_err(|_| EventError::UnwrapFailed)?;
        let plaintext = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &self.secret,
            &encapsulated,
            &context.info(),
            &wrapped.ciphertext,
            &[],
        )
        .map_err(|_| EventError::UnwrapFailed)?;
        let plaintext = Zeroizing::new(plaintext);
        let bytes: [u8; 32] = plaintext
            .as_slice()
            .try_into()
            .map_err(|_| EventError::UnwrapFailed)?;
        Ok(ConnectionKey::from_secret_bytes(bytes))
    }
}

impl ModuleKeyPair {
    /// Opens a hand-over sealed to this key pair by `sender` (the module's old instance, whose
    /// key the caller took from attested claims) with [`seal_handover`], for exactly `context`.
    pub fn open_handover(
        &self,
        sealed: &[u8],
        sender: &ModulePublicKey,
        context: &HandoverContext<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, EventError> {
        if sealed.len() < HANDOVER_ENCAPSULATED_LEN {
            return Err(EventError::UnwrapFailed);
        }
        let sender = <Kem as hpke::Kem>::PublicKey::from_bytes(sender.as_bytes())
            .map_err(|_| EventError::UnwrapFailed)?;
        let (encapsulated, ciphertext) = sealed.split_at(HANDOVER_ENCAPSULATED_LEN);
        let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(encapsulated)
            .map_err(|_| EventError::UnwrapFailed)?;
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Auth(sender),
            &self.secret,
            &encapsulated,
            &context.info(),
            ciphertext,
            &[],
        )
        .map(Zeroizing::new)
        .map_err(|_| EventError::UnwrapFailed)
    }
}

/// Length of the encapsulated key that starts a sealed hand-over.
const HANDOVER_ENCAPSULATED_LEN: usize = 32;

/// What a module hand-over (its sealed state and connection ends, moving to another node) is
/// bound to: the application, the module's name and its measurement, which the new instance
/// shares with the old one (a migration moves the same code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverContext<'a> {
    /// The application's name.
    pub app: &'a str,
    /// The module's name.
    pub module: &'a str,
    /// SHA-256 of the module's Wasm bytes.
    pub measurement: &'a [u8; 32],
}

impl HandoverContext<'_> {
    fn info(&self) -> Vec<u8> {
        let mut info = HANDOVER_INFO_LABEL.to_vec();
        for field in [self.app.as_bytes(), self.module.as_bytes()] {
            info.extend_from_slice(&(field.len() as u32).to_be_bytes());
            info.extend_from_slice(field);
        }
        info.extend_from_slice(self.measurement);
        info
    }
}

/// Seals `plaintext` (a module's hand-over) from `sender` (the old instance's key pair) to the
/// new instance's attested channel key for exactly `context`: HPKE auth mode, so only the new
/// instance opens it and it opens only as coming from the old one. The encapsulated key is
/// followed by the ciphertext.
pub fn seal_handover(
    plaintext: &[u8],
    recipient: &ModulePublicKey,
    sender: &ModuleKeyPair,
    context: &HandoverContext<'_>,
) -> Result<Vec<u8>, EventError> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|e| EventError::ModuleKey(format!("{e:?}")))?;
    let sender_public = <Kem as hpke::Kem>::PublicKey::from_bytes(sender.public.as_bytes())
        .map_err(|e| EventError::ModuleKey(format!("{e:?}")))?;
    let (encapsulated, ciphertext) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
            &OpModeS::Auth((sender.secret.clone(), sender_public)),
            &recipient,
            &context.info(),
            plaintext,
            &[],
            &mut UnwrapErr(OsRng),
        )
        .map_err(|e| EventError::WrapFailed(format!("{e:?}")))?;
    let mut sealed = encapsulated.to_bytes().to_vec();
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

impl fmt::Debug for ModuleKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModuleKeyPair({:?}, <private redacted>)", self.public)
    }
}

/// What a wrapped key is for. Both sides build it from their own knowledge: the deployer from
/// the descriptor and the verified claims, the node from the module it hosts and the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrapContext<'a> {
    /// The application's name.
    pub app: &'a str,
    /// The connection.
    pub connection: ConnectionId,
    /// The module the key is wrapped to.
    pub module: &'a str,
    /// The port of that module the connection attaches to.
    pub port: &'a str,
    /// SHA-256 of the module's Wasm bytes.
    pub measurement: &'a [u8; 32],
}

impl WrapContext<'_> {
    /// The HPKE `info`: a label, then every field length-prefixed so no two contexts share it.
    fn info(&self) -> Vec<u8> {
        let mut info = WRAP_INFO_LABEL.to_vec();
        for field in [
            self.app.as_bytes(),
            self.module.as_bytes(),
            self.port.as_bytes(),
        ] {
            info.extend_from_slice(&(field.len() as u32).to_be_bytes());
            info.extend_from_slice(field);
        }
        info.extend_from_slice(&self.connection.get().to_be_bytes());
        info.extend_from_slice(self.measurement);
        info
    }
}

/// A connection key wrapped to one module: HPKE's encapsulated key and the ciphertext (the 32-byte
/// key and a 16-byte tag). Hex in JSON; safe to store and log, useless without the module's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The sender's ephemeral X25519 public key.
    #[serde(with = "hex_bytes")]
    pub encapsulated: Vec<u8>,
    /// The sealed connection key.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Wraps `key` to the module whose public key is `recipient`, for `context`.
pub fn wrap_key(
    key: &ConnectionKey,
    recipient: &ModulePublicKey,
    context: &WrapContext<'_>,
) -> Result<WrappedKey, EventError> {
    let recipient = <Kem as hpke::Kem>::PublicKey::from_bytes(recipient.as_bytes())
        .map_err(|e| EventError::ModuleKey(format!("{e:?}")))?;
    let (encapsulated, ciphertext) =
        hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
            &OpModeS::Base,
            &recipient,
            &context.info(),
            key.as_bytes(),
            &[],
            &mut UnwrapErr(OsRng),
        )
        .map_err(|e| EventError::WrapFailed(format!("{e:?}")))?;
    Ok(WrappedKey {
        encapsulated: encapsulated.to_bytes().to_vec(),
        ciphertext,
    })
}

mod hex_bytes {
    pub(super) fn serialize<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}
