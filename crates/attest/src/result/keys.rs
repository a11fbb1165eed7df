//! Verifier keys for signing attestation results: Ed25519 (`EdDSA`) or P-256 (`ES256`), stored as
//! PKCS#8 PEM; relying parties hold the SPKI public key PEM.

use std::path::Path;

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::ecdsa::signature::Verifier as _;
use rand_core::OsRng;
use sha2::{Digest, Sha256};

use crate::error::Error;

/// JWS algorithm of a verifier key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultAlgorithm {
    /// Ed25519.
    EdDsa,
    /// ECDSA P-256 with SHA-256.
    Es256,
}

impl ResultAlgorithm {
    /// The JOSE `alg` name.
    pub fn jose_name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    /// Parses `ed25519`/`eddsa` or `es256`/`p256`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text.to_ascii_lowercase().as_str() {
            "ed25519" | "eddsa" => Ok(Self::EdDsa),
            "es256" | "p256" | "p-256" => Ok(Self::Es256),
            other => Err(Error::InvalidValue {
                what: "result key algorithm",
                reason: format!("{other:?}: expected ed25519 or es256"),
            }),
        }
    }
}

/// The private key a verifier signs attestation results with.
#[derive(Clone)]
pub enum ResultSigningKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// P-256.
    Es256(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for ResultSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ResultSigningKey({}, kid {})",
            self.algorithm().jose_name(),
            self.public_key().key_id()
        )
    }
}

/// The public key relying parties verify attestation results with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResultVerifyingKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// P-256.
    Es256(p256::ecdsa::VerifyingKey),
}

fn key_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::KeyInvalid {
        what: what.to_owned(),
        reason: e.to_string(),
    }
}

impl ResultSigningKey {
    /// A fresh random key.
    pub fn generate(alg: ResultAlgorithm) -> Self {
        match alg {
            ResultAlgorithm::EdDsa => {
                Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng))
            }
            ResultAlgorithm::Es256 => Self::Es256(p256::ecdsa::SigningKey::random(&mut OsRng)),
        }
    }

    /// Parses a PKCS#8 PEM private key of either algorithm.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, Error> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(Self::Es256)
            .map_err(|e| {
                key_err(
                    "result signing key",
                    format!("not a PKCS#8 Ed25519 or P-256 key: {e}"),
                )
            })
    }

    /// PKCS#8 PEM.
    pub fn to_pkcs8_pem(&self) -> Result<String, Error> {
        let pem = match self {
            Self::Ed25519(k) => k.to_pkcs8_pem(Default::default()),
            Self::Es256(k) => k.to_pkcs8_pem(Default::default()),
        }
        .map_err(|e| key_err("result signing key", e))?;
        Ok(pem.to_string())
    }

    /// Loads the key at `path`, or creates it (mode 0600) with `alg` if it does not exist.
    pub fn load_or_create(path: &Path, alg: ResultAlgorithm) -> Result<Self, Error> {
        match std::fs::read_to_string(path) {
            Ok(pem) => Self::from_pkcs8_pem(&pem).map_err(|e| match e {
                Error::KeyInvalid { reason, .. } => key_err(&path.display().to_string(), reason),
                other => other,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate(alg);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                }
                write_private(path, key.to_pkcs8_pem()?.as_bytes())?;
                tracing::info!(path = %path.display(), alg = alg.jose_name(), "created verifier result key");
                Ok(key)
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> ResultAlgorithm {
        match self {
            Self::Ed25519(_) => ResultAlgorithm::EdDsa,
            Self::Es256(_) => ResultAlgorithm::Es256,
        }
    }

    /// Its public key.
    pub fn public_key(&self) -> ResultVerifyingKey {
        match self {
            Self::Ed25519(k) => ResultVerifyingKey::Ed25519(k.verifying_key()),
            Self::Es256(k) => ResultVerifyingKey::Es256(*k.verifying_key()),
        }
    }

    /// Signs `message` (the JWS signing input).
    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Self::Es256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_bytes().to_vec()
            }
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    file.write_all(bytes).map_err(|e| Error::io(path, e))
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

impl ResultVerifyingKey {
    /// Parses an SPKI PEM public key of either algorithm.
    pub fn from_public_key_pem(pem: &str) -> Result<Self, Error> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(Self::Es256)
            .map_err(|e| {
                key_err(
                    "result verifying key",
                    format!("not an SPKI Ed25519 or P-256 public key: {e}"),
                )
            })
    }

    /// SPKI PEM.
    pub fn to_public_key_pem(&self) -> Result<String, Error> {
        match self {
            Self::Ed25519(k) => k.to_public_key_pem(Default::default()),
            Self::Es256(k) => k.to_public_key_pem(Default::default()),
        }
        .map_err(|e| key_err("result verifying key", e))
    }

    /// Its algorithm.
    pub fn algorithm(&self) -> ResultAlgorithm {
        match self {
            Self::Ed25519(_) => ResultAlgorithm::EdDsa,
            Self::Es256(_) => ResultAlgorithm::Es256,
        }
    }

    /// A short identifier: the first 16 hex digits of SHA-256 of the SPKI DER.
    pub fn key_id(&self) -> String {
        let der = match self {
            Self::Ed25519(k) => k.to_public_key_der().map(|d| d.as_bytes().to_vec()),
            Self::Es256(k) => k.to_public_key_der().map(|d| d.as_bytes().to_vec()),
        }
        .unwrap_or_default();
        hex::encode(&Sha256::digest(der)[..8])
    }

    /// Verifies a signature over `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        match self {
            Self::Ed25519(k) => {
                let sig =
                    ed25519_dalek::Signature::from_slice(signature).map_err(|e| e.to_string())?;
                k.verify_strict(message, &sig).map_err(|e| e.to_string())
            }
            Self::Es256(k) => {
                let sig =
                    p256::ecdsa::Signature::from_slice(signature).map_err(|e| e.to_string())?;
                k.verify(message, &sig).map_err(|e| e.to_string())
            }
        }
    }
}
