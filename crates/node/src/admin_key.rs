//! The operator's admin key: a P-256 key created once (PKCS#8 PEM, mode 0600, never printed),
//! presented in a plain self-signed certificate. Nodes authorise it by the SHA-256 of its
//! SubjectPublicKeyInfo, like an SSH key in `authorized_keys`.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use attest::UnixTime;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PublicKeyData as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};

use crate::config::format_key_hash;
use crate::error::NodeError;

/// An operator's admin key.
pub struct AdminKey {
    key: KeyPair,
    path: PathBuf,
}

impl std::fmt::Debug for AdminKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminKey")
            .field("path", &self.path)
            .field("hash", &self.hash_string())
            .finish_non_exhaustive()
    }
}

impl AdminKey {
    /// Reads the key at `path`, or creates it (directory 0700, file 0600).
    pub fn load_or_create(path: &Path) -> Result<Self, NodeError> {
        let fail = |message: String| NodeError::AdminKey {
            path: path.to_owned(),
            message,
        };
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                if let Ok(meta) = std::fs::metadata(path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(path = %path.display(), "the admin key is readable by others; chmod 600 it");
                }
                let key = KeyPair::from_pem(&pem)
                    .map_err(|e| fail(format!("not a PKCS#8 PEM private key: {e}")))?;
                Ok(Self {
                    key,
                    path: path.to_owned(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| fail(format!("cannot create its directory: {e}")))?;
                }
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
                    .map_err(|e| fail(format!("cannot generate: {e}")))?;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| fail(format!("cannot create: {e}")))?;
                file.write_all(key.serialize_pem().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| fail(format!("cannot write: {e}")))?;
                tracing::info!(path = %path.display(), "created an admin key");
                Ok(Self {
                    key,
                    path: path.to_owned(),
                })
            }
            Err(e) => Err(fail(format!("cannot read: {e}"))),
        }
    }

    /// SHA-256 of the key's SubjectPublicKeyInfo.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.key.subject_public_key_info()).into()
    }

    /// `sha256:<hex>`, the line a node's `admin.authorized_keys` lists.
    pub fn hash_string(&self) -> String {
        format_key_hash(&self.hash())
    }

    /// A fresh self-signed certificate for this key (no evidence) and the key for rustls.
    pub fn certificate(
        &self,
    ) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), NodeError> {
        let cert = atls::self_signed(&self.key, "teemesh-admin", UnixTime::now(), None)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()));
        Ok((cert, key))
    }
}
