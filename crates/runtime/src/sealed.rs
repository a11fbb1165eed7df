//! Sealed state: a module's key-value store, encrypted under a key bound to (node sealing secret,
//! module measurement), so it survives restarts and only the same module on the same node reads it.
//!
//! One file per measurement, `<dir>/<measurement hex>.sealed`, rewritten whole and atomically
//! (temporary file, fsync, rename) on every change:
//!
//! ```text
//! "TMSEAL01" ‖ nonce (24 bytes) ‖ XChaCha20-Poly1305(key, nonce, aad, entries)
//! key     = HKDF-SHA256(ikm = node sealing secret, salt = none,
//!                       info = "teemesh-sealed-state-v1" ‖ measurement (32 bytes))
//! aad     = "TMSEAL01" ‖ measurement
//! entries = count (u32 BE), then per entry in key order: key len (u32 BE) ‖ key ‖ value len ‖ value
//! ```
//!
//! Why this shape:
//! - The whole map is one ciphertext: key names are hidden from the host, and the host cannot
//!   roll back or swap single entries, only the whole file (see the limitation below).
//! - The nonce is 192 bits and random for every write. A module's key never changes (same node,
//!   same measurement), so a counter could be rolled back with the file and repeat; 96-bit random
//!   nonces would be safe only up to about 2^32 writes. XChaCha20-Poly1305 (same crate, same
//!   cipher) makes random nonces safe for any number of writes.
//! - Another measurement derives another key. A changed module looks up its own file and sees
//!   nothing; the old module's file copied under the new name fails to decrypt, and loading
//!   refuses with [`RuntimeError::State`] rather than running the module on empty state.
//!
//! Limitation: the host can replace the file with an older version of itself (rollback) or
//! delete it. Detecting that needs a monotonic counter outside the host's reach (a TEE feature
//! or a peer), which is future work.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use attest::Measurement256;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::RuntimeError;

/// File magic and format version.
const MAGIC: &[u8; 8] = b"TMSEAL01";
/// HKDF info prefix (the measurement follows).
const KDF_INFO: &[u8] = b"teemesh-sealed-state-v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 256;
/// Largest value, in bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Largest total of keys and values for one module.
pub const MAX_TOTAL_LEN: usize = 16 << 20;
/// Most entries for one module.
pub const MAX_ENTRIES: usize = 10_000;

/// HKDF info prefix of [`NodeSecret::module_key_material`].
const MODULE_KEY_KDF_INFO: &[u8] = b"teemesh-module-channel-key-v1";

/// HKDF info of [`NodeSecret::from_platform_key`].
const PLATFORM_KDF_INFO: &[u8] = b"teemesh-node-sealing-secret-v1";

/// The node's 32-byte sealing secret, from which each module's state key is derived.
///
/// The embedder provides it: derived from the platform's sealing key where the TEE offers one
/// ([`NodeSecret::from_platform_key`]; SGX through Gramine), else kept in the node's data
/// directory with mode 0600 ([`NodeSecret::load_or_create`]; the simulated TEE, and configfs-tsm,
/// which has no sealing key — SEV-SNP `MSG_KEY_REQ` or a key broker are follow-ups). Never logged
/// (its `Debug` prints nothing) and overwritten when dropped.
pub struct NodeSecret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for NodeSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeSecret(..)")
    }
}

impl NodeSecret {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The secret derived from a platform sealing key (`platform::Attester::sealing_key`, e.g.
    /// SGX's MRENCLAVE key): HKDF-SHA256 with the info `teemesh-node-sealing-secret-v1`. The same
    /// node code on the same machine derives the same secret after a restart; nothing outside the
    /// TEE can, so sealed state is bound to the TEE and not to a file on the host.
    pub fn from_platform_key(key: &[u8]) -> Self {
        let mut secret = Zeroizing::new([0u8; 32]);
        // A 32-byte output is far below HKDF-SHA256's maximum: `expand` cannot fail.
        let _ = Hkdf::<Sha256>::new(None, key).expand(PLATFORM_KDF_INFO, secret.as_mut());
        Self(secret)
    }

    /// Secret material for the channel key pair of one loaded module instance:
    /// HKDF-SHA256(node secret, info = purpose ‖ measurement ‖ instance ‖ name). The same module
    /// instance gets the same key pair after a node restart; another instance, another
    /// measurement or another node never does.
    pub fn module_key_material(
        &self,
        measurement: &Measurement256,
        instance: &[u8; 16],
        name: &str,
    ) -> Zeroizing<[u8; 32]> {
        let mut info = MODULE_KEY_KDF_INFO.to_vec();
        info.extend_from_slice(&measurement.0);
        info.extend_from_slice(instance);
        info.extend_from_slice(name.as_bytes());
        let mut material = Zeroizing::new([0u8; 32]);
        // A 32-byte output is far below HKDF-SHA256's maximum: `expand` cannot fail.
        let _ = Hkdf::<Sha256>::new(None, self.0.as_ref()).expand(&info, material.as_mut());
        material
    }

    /// 32 bytes from the operating system's random generator.
    pub fn generate() -> Result<Self, RuntimeError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())
            .map_err(|e| RuntimeError::State(format!("no randomness for a node secret: {e}")))?;
        Ok(Self(bytes))
    }

    /// Reads the secret from `path` (exactly 32 bytes), or creates it there with fresh random
    /// bytes, the file with mode 0600 and its directory with 0700.
    pub fn load_or_create(path: &Path) -> Result<Self, RuntimeError> {
        let io = |what: &str, e: std::io::Error| {
            RuntimeError::State(format!("{what} {}: {e}", path.display()))
        };
        match fs::read(path) {
            Ok(mut bytes) => {
                let secret = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                    RuntimeError::State(format!(
                        "node secret {} has {} bytes, expected 32",
                        path.display(),
                        bytes.len()
                    ))
                });
                bytes.zeroize();
                warn_if_readable_by_others(path);
                Ok(Self::from_bytes(secret?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    create_private_dir(dir)?;
                }
                let secret = Self::generate()?;
                let mut file = private_file_options()
                    .open(path)
                    .map_err(|e| io("cannot create node secret", e))?;
                file.write_all(secret.0.as_ref())
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io("cannot write node secret", e))?;
                tracing::info!(path = %path.display(), "created a node sealing secret");
                Ok(secret)
            }
            Err(e) => Err(io("cannot read node secret", e)),
        }
    }

    /// The state key of the module with `measurement`.
    fn module_key(&self, measurement: &Measurement256) -> Zeroizing<[u8; 32]> {
        let mut info = KDF_INFO.to_vec();
        info.extend_from_slice(measurement.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // A 32-byte output is far below HKDF-SHA256's 8160-byte maximum: `expand` cannot fail.
        let _ = Hkdf::<Sha256>::new(None, self.0.as_ref()).expand(&info, key.as_mut());
        key
    }
}

/// One module's sealed key-value store: decrypted in memory, written through to its file.
pub struct SealedStore {
    path: PathBuf,
    measurement: Measurement256,
    key: Zeroizing<[u8; 32]>,
    entries: BTreeMap<String, Vec<u8>>,
    total_len: usize,
}

impl std::fmt::Debug for SealedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedStore")
            .field("path", &self.path)
            .field("measurement", &self.measurement)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl SealedStore {
    /// Opens the store of `measurement` in `dir` (created 0700 if missing), unsealing its file
    /// if there is one. A file that does not decrypt — sealed by another node or for another
    /// module, or tampered with — is an error, not an empty store.
    pub fn open(
        dir: &Path,
        secret: &NodeSecret,
        measurement: Measurement256,
    ) -> Result<Self, RuntimeError> {
        create_private_dir(dir)?;
        let path = dir.join(format!("{}.sealed", measurement.to_hex()));
        let mut store = Self {
            path,
            measurement,
            key: secret.module_key(&measurement),
            entries: BTreeMap::new(),
            total_len: 0,
        };
        match fs::read(&store.path) {
            Ok(sealed) => {
                store.entries = store.unseal(&sealed)?;
                store.total_len = store.entries.iter().map(|(k, v)| k.len() + v.len()).sum();
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RuntimeError::State(format!(
                    "cannot read {}: {e}",
                    store.path.display()
                )));
            }
        }
        Ok(store)
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.entries.get(key).map(Vec::as_slice)
    }

    /// Stores `value` under `key` and persists; on error nothing changes.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        check_entry(key, value)?;
        let old = self.entries.get(key).map_or(0, |v| key.len() + v.len());
        let total = self.total_len - old + key.len() + value.len();
        if total > MAX_TOTAL_LEN {
            return Err(format!(
                "sealed state would hold {total} bytes, more than the {MAX_TOTAL_LEN} allowed"
            ));
        }
        if old == 0 && self.entries.len() >= MAX_ENTRIES {
            return Err(format!("sealed state holds {MAX_ENTRIES} keys already"));
        }
        let previous = self.entries.insert(key.to_owned(), value.to_vec());
        if let Err(e) = self.persist() {
            match previous {
                Some(v) => self.entries.insert(key.to_owned(), v),
                None => self.entries.remove(key),
            };
            return Err(e);
        }
        self.total_len = total;
        Ok(())
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.entries
    }

    /// Replaces every entry with `entries` (state handed over from another version of the
    /// module) and persists; on error nothing changes. The same limits as [`Self::set`] apply.
    pub fn replace(&mut self, entries: BTreeMap<String, Vec<u8>>) -> Result<(), String> {
        if entries.len() > MAX_ENTRIES {
            return Err(format!(
                "{} state keys are more than the {MAX_ENTRIES} allowed",
                entries.len()
            ));
        }
        let mut total = 0usize;
        for (key, value) in &entries {
            check_entry(key, value)?;
            total += key.len() + value.len();
        }
        if total > MAX_TOTAL_LEN {
            return Err(format!(
                "sealed state would hold {total} bytes, more than the {MAX_TOTAL_LEN} allowed"
            ));
        }
        let previous = std::mem::replace(&mut self.entries, entries);
        if let Err(e) = self.persist() {
            self.entries = previous;
            return Err(e);
        }
        self.total_len = total;
        Ok(())
    }

    /// Removes `key` and persists; on error nothing changes.
    pub fn delete(&mut self, key: &str) -> Result<(), String> {
        let Some(previous) = self.entries.remove(key) else {
            return Ok(());
        };
        if let Err(e) = self.persist() {
            self.entries.insert(key.to_owned(), previous);
            return Err(e);
        }
        self.total_len -= key.len() + previous.len();
        Ok(())
    }

    fn aad(&self) -> Vec<u8> {
        let mut aad = MAGIC.to_vec();
        aad.extend_from_slice(self.measurement.as_bytes());
        aad
    }

    fn persist(&self) -> Result<(), String> {
        let mut plaintext = Zeroizing::new(encode_entries(&self.entries));
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| format!("no randomness for a nonce: {e}"))?;
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let aad = self.aad();
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| "encryption failed".to_owned())?;
        plaintext.zeroize();
        let mut file_bytes = Vec::with_capacity(MAGIC.len() + NONCE_LEN + ciphertext.len());
        file_bytes.extend_from_slice(MAGIC);
        file_bytes.extend_from_slice(&nonce);
        file_bytes.extend_from_slice(&ciphertext);
        write_atomically(&self.path, &file_bytes)
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }

    fn unseal(&self, sealed: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, RuntimeError> {
        let refuse = |why: &str| {
            RuntimeError::State(format!("cannot unseal {}: {why}", self.path.display()))
        };
        let body = sealed
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| refuse("not a teemesh sealed-state file (bad magic)"))?;
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(refuse("file is truncated"));
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| refuse("file is truncated"))?;
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let aad = self.aad();
        let plaintext = Zeroizing::new(
            cipher
                .decrypt(
                    &XNonce::from(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| {
                    refuse(
                        "authentication failed: it was sealed by another node or for another \
                         module measurement, or it was modified",
                    )
                })?,
        );
        decode_entries(&plaintext).map_err(|e| refuse(&e))
    }
}

fn encode_entries(entries: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    // Limits above keep every length and the count far below u32::MAX.
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len32(entries.len()));
    for (key, value) in entries {
        out.extend_from_slice(&len32(key.len()));
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(&len32(value.len()));
        out.extend_from_slice(value);
    }
    out
}

/// Decodes authenticated plaintext; still bounds-checked, since a bug must not become a panic.
fn decode_entries(mut bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err("entries are truncated".to_owned());
        }
        let (head, tail) = bytes.split_at(n);
        *bytes = tail;
        Ok(head)
    }
    fn take_len(bytes: &mut &[u8]) -> Result<usize, String> {
        let raw = take(bytes, 4)?;
        let n = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        usize::try_from(n).map_err(|_| "length does not fit".to_owned())
    }
    let count = take_len(&mut bytes)?;
    if count > MAX_ENTRIES {
        return Err(format!("{count} entries, at most {MAX_ENTRIES} allowed"));
    }
    let mut entries = BTreeMap::new();
    for _ in 0..count {
        let key_len = take_len(&mut bytes)?;
        let key = std::str::from_utf8(take(&mut bytes, key_len)?)
            .map_err(|_| "a key is not UTF-8".to_owned())?;
        let value_len = take_len(&mut bytes)?;
        let value = take(&mut bytes, value_len)?;
        entries.insert(key.to_owned(), value.to_vec());
    }
    if !bytes.is_empty() {
        return Err(format!("{} bytes after the last entry", bytes.len()));
    }
    Ok(entries)
}

/// The limits on one entry.
fn check_entry(key: &str, value: &[u8]) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(format!("state key must have 1 to {MAX_KEY_LEN} bytes"));
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "state value of {} bytes is larger than the {MAX_VALUE_LEN} allowed",
            value.len()
        ));
    }
    Ok(())
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Make the rename itself durable; not every filesystem supports syncing a directory.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), RuntimeError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| RuntimeError::State(format!("cannot create {}: {e}", dir.display())))
}

fn private_file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the node sealing secret is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const M1: Measurement256 = Measurement256([1; 32]);
    const M2: Measurement256 = Measurement256([2; 32]);

    #[test]
    fn platform_derived_secret_is_stable_and_key_specific() {
        let dir = tempfile::tempdir().unwrap();
        let sgx_key = [0xa5; 16];
        let mut store =
            SealedStore::open(dir.path(), &NodeSecret::from_platform_key(&sgx_key), M1).unwrap();
        store.set("k", b"v").unwrap();
        drop(store);
        // After a restart the same key derives the same secret ...
        let again =
            SealedStore::open(dir.path(), &NodeSecret::from_platform_key(&sgx_key), M1).unwrap();
        assert_eq!(again.get("k"), Some(&b"v"[..]));
        // ... another enclave's key (or the raw key used directly) opens nothing.
        assert!(
            SealedStore::open(dir.path(), &NodeSecret::from_platform_key(&[0x5a; 16]), M1).is_err()
        );
        let mut raw = [0u8; 32];
        raw[..16].copy_from_slice(&sgx_key);
        assert!(SealedStore::open(dir.path(), &NodeSecret::from_bytes(raw), M1).is_err());
    }

    #[test]
    fn round_trip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let secret = NodeSecret::from_bytes([7; 32]);
        let mut store = SealedStore::open(dir.path(), &secret, M1).unwrap();
        store.set("a", b"one").unwrap();
        store.set("b", b"").unwrap();
        store.set("a", b"two").unwrap();
        store.delete("b").unwrap();
        let file = fs::read(store.path()).unwrap();
        assert!(!file.windows(3).any(|w| w == b"two"), "value in clear");
        let reopened = SealedStore::open(dir.path(), &secret, M1).unwrap();
        assert_eq!(reopened.get("a"), Some(&b"two"[..]));
        assert_eq!(reopened.get("b"), None);
    }

    #[test]
    fn other_secret_or_measurement_cannot_unseal() {
        let dir = tempfile::tempdir().unwrap();
        let secret = NodeSecret::from_bytes([7; 32]);
        let mut store = SealedStore::open(dir.path(), &secret, M1).unwrap();
        store.set("a", b"one").unwrap();
        let other_node = NodeSecret::from_bytes([8; 32]);
        let err = SealedStore::open(dir.path(), &other_node, M1).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
        // The file of M1 put where M2 looks for its own.
        fs::copy(
            store.path(),
            dir.path().join(format!("{}.sealed", M2.to_hex())),
        )
        .unwrap();
        let err = SealedStore::open(dir.path(), &secret, M2).unwrap_err();
        assert!(err.to_string().contains("authentication failed"), "{err}");
    }

    #[test]
    fn tampered_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = NodeSecret::from_bytes([7; 32]);
        let mut store = SealedStore::open(dir.path(), &secret, M1).unwrap();
        store.set("a", b"one").unwrap();
        let mut file = fs::read(store.path()).unwrap();
        let last = file.len() - 1;
        file[last] ^= 1;
        fs::write(store.path(), &file).unwrap();
        assert!(SealedStore::open(dir.path(), &secret, M1).is_err());
        fs::write(store.path(), b"TMSEAL01short").unwrap();
        assert!(SealedStore::open(dir.path(), &secret, M1).is_err());
    }

    #[test]
    fn limits_are_enforced() {
        let dir = tempfile::tempdir().unwrap();
        let secret = NodeSecret::from_bytes([7; 32]);
        let mut store = SealedStore::open(dir.path(), &secret, M1).unwrap();
        assert!(store.set("", b"x").is_err());
        assert!(store.set(&"k".repeat(MAX_KEY_LEN + 1), b"x").is_err());
        assert!(store.set("k", &vec![0; MAX_VALUE_LEN + 1]).is_err());
        assert_eq!(store.get("k"), None);
    }

    #[test]
    fn handed_over_state_is_resealed_under_the_new_measurement() {
        let dir = tempfile::tempdir().unwrap();
        let secret = NodeSecret::from_bytes([7; 32]);
        let mut old = SealedStore::open(dir.path(), &secret, M1).unwrap();
        old.set("count", b"41").unwrap();
        old.set("threshold", b"30").unwrap();
        let mut new = SealedStore::open(dir.path(), &secret, M2).unwrap();
        new.set("stale", b"x").unwrap();
        new.replace(old.entries().clone()).unwrap();
        let reopened = SealedStore::open(dir.path(), &secret, M2).unwrap();
        assert_eq!(reopened.entries(), old.entries(), "exactly the old entries");
        assert_eq!(reopened.get("stale"), None);
        // Refused hand-overs change nothing.
        let mut too_big = BTreeMap::new();
        too_big.insert("k".to_owned(), vec![0; MAX_VALUE_LEN + 1]);
        assert!(new.replace(too_big).is_err());
        let mut empty_key = BTreeMap::new();
        empty_key.insert(String::new(), b"v".to_vec());
        assert!(new.replace(empty_key).is_err());
        let reopened = SealedStore::open(dir.path(), &secret, M2).unwrap();
        assert_eq!(reopened.get("count"), Some(&b"41"[..]));
    }

    #[test]
    fn secret_file_is_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/node-secret");
        let a = NodeSecret::load_or_create(&path).unwrap();
        let b = NodeSecret::load_or_create(&path).unwrap();
        assert_eq!(a.0.as_ref(), b.0.as_ref());
        assert_eq!(format!("{a:?}"), "NodeSecret(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        fs::write(&path, b"short").unwrap();
        assert!(NodeSecret::load_or_create(&path).is_err());
    }
}
