//! The data directory: uploaded modules, content-addressed (`modules/<sha256>.wasm`) with one
//! small metadata file per name (`modules/<name>.module.json`), the sealing secret and the
//! sealed state. Every write is atomic (temporary file in the same directory, fsync, rename,
//! fsync of the directory), and the metadata file is written last: it is the commit point, so a
//! node killed at any instant finds either the old or the new module, never a torn one.

use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::NodeError;

const MODULES_DIR: &str = "modules";
const METADATA_SUFFIX: &str = ".module.json";

/// What is stored about a module besides its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredModule {
    /// Its name on the node.
    pub name: String,
    /// SHA-256 of its bytes, hex: also the name of its Wasm file.
    pub measurement: String,
    /// Unix seconds when it was loaded.
    pub loaded_at: u64,
}

/// A stored module with its bytes, or why it cannot be restored.
pub type Restored = Result<(StoredModule, Vec<u8>), NodeError>;

/// The node's data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Opens (creating, mode 0700) the data directory at `root`.
    pub fn open(root: &Path) -> Result<Self, NodeError> {
        for dir in [root.to_owned(), root.join(MODULES_DIR)] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| NodeError::io("cannot create", &dir, e))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The node's sealing secret file.
    pub fn sealing_secret(&self) -> PathBuf {
        self.root.join("node-sealing-secret")
    }

    /// The sealed-state directory.
    pub fn sealed_dir(&self) -> PathBuf {
        self.root.join("sealed")
    }

    fn modules(&self) -> PathBuf {
        self.root.join(MODULES_DIR)
    }

    fn metadata_path(&self, name: &str) -> PathBuf {
        self.modules().join(format!("{name}{METADATA_SUFFIX}"))
    }

    fn wasm_path(&self, measurement: &str) -> PathBuf {
        self.modules().join(format!("{measurement}.wasm"))
    }

    /// Stores `bytes` as module `name` (the bytes first, then the metadata that commits them).
    pub fn save(
        &self,
        name: &str,
        bytes: &[u8],
        loaded_at: u64,
    ) -> Result<StoredModule, NodeError> {
        let measurement = hex::encode(Sha256::digest(bytes));
        write_atomically(&self.wasm_path(&measurement), bytes)?;
        let stored = StoredModule {
            name: name.to_owned(),
            measurement,
            loaded_at,
        };
        let json = serde_json::to_vec_pretty(&stored)
            .map_err(|e| NodeError::Store(format!("cannot serialise metadata: {e}")))?;
        write_atomically(&self.metadata_path(name), &json)?;
        Ok(stored)
    }

    /// Stores `bytes` as the new version of module `name`, then drops the old version's bytes
    /// unless another name uses them.
    pub fn replace(
        &self,
        name: &str,
        bytes: &[u8],
        loaded_at: u64,
    ) -> Result<StoredModule, NodeError> {
        let stored = self.save(name, bytes, loaded_at)?;
        self.collect_garbage()?;
        Ok(stored)
    }

    /// Forgets module `name`: its metadata goes (the commit point), then its bytes unless
    /// another name uses them. Sealed state is kept: it belongs to the measurement.
    pub fn remove(&self, name: &str) -> Result<(), NodeError> {
        let path = self.metadata_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(NodeError::io("cannot remove", &path, e)),
        }
        sync_dir(&self.modules())?;
        self.collect_garbage()
    }

    /// Every stored module with its bytes, checked against its measurement. A module whose
    /// bytes are missing or altered is skipped with an error in the list, not loaded.
    pub fn load_all(&self) -> Result<Vec<Restored>, NodeError> {
        let mut out = Vec::new();
        for path in self.metadata_files()? {
            out.push(self.load_one(&path));
        }
        self.collect_garbage()?;
        Ok(out)
    }

    fn load_one(&self, path: &Path) -> Result<(StoredModule, Vec<u8>), NodeError> {
        let json = std::fs::read(path).map_err(|e| NodeError::io("cannot read", path, e))?;
        let stored: StoredModule = serde_json::from_slice(&json)
            .map_err(|e| NodeError::Store(format!("{}: {e}", path.display())))?;
        let wasm_path = self.wasm_path(&stored.measurement);
        let bytes =
            std::fs::read(&wasm_path).map_err(|e| NodeError::io("cannot read", &wasm_path, e))?;
        if hex::encode(Sha256::digest(&bytes)) != stored.measurement {
            return Err(NodeError::Store(format!(
                "{}: the bytes do not match their measurement; not loading module {:?}",
                wasm_path.display(),
                stored.name
            )));
        }
        Ok((stored, bytes))
    }

    fn metadata_files(&self) -> Result<Vec<PathBuf>, NodeError> {
        let dir = self.modules();
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| NodeError::io("cannot list", &dir, e))? {
            let entry = entry.map_err(|e| NodeError::io("cannot list", &dir, e))?;
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(METADATA_SUFFIX) {
                files.push(entry.path());
            }
        }
        files.sort();
        Ok(files)
    }

    /// Removes Wasm files no metadata refers to and leftover temporary files (from a crash
    /// between writing bytes and committing them).
    fn collect_garbage(&self) -> Result<(), NodeError> {
        let mut referenced = std::collections::HashSet::new();
        for path in self.metadata_files()? {
            if let Ok(json) = std::fs::read(&path)
                && let Ok(stored) = serde_json::from_slice::<StoredModule>(&json)
            {
                referenced.insert(format!("{}.wasm", stored.measurement));
            }
        }
        let dir = self.modules();
        for entry in std::fs::read_dir(&dir).map_err(|e| NodeError::io("cannot list", &dir, e))? {
            let Ok(entry) = entry else { continue };
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan_wasm = name.ends_with(".wasm") && !referenced.contains(&name);
            if orphan_wasm || name.starts_with(".tmp") {
                tracing::debug!(file = %name, "removing an unreferenced file from the data directory");
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), NodeError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| NodeError::io("cannot create a temporary file in", dir, e))?;
    temp.write_all(bytes)
        .and_then(|()| temp.as_file().sync_all())
        .map_err(|e| NodeError::io("cannot write", temp.path(), e))?;
    temp.persist(path)
        .map_err(|e| NodeError::io("cannot rename into place", path, e.error))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| NodeError::io("cannot sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_survive_reopen_and_garbage_is_collected() {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = DataDir::open(temp.path()).unwrap_or_else(|e| panic!("{e}"));
        let saved = store
            .save("a", b"first", 1)
            .unwrap_or_else(|e| panic!("{e}"));
        store
            .save("b", b"second", 2)
            .unwrap_or_else(|e| panic!("{e}"));
        // A crash after the bytes were written but before their metadata: an orphan.
        std::fs::write(store.wasm_path("00"), b"orphan").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(store.modules().join(".tmpXYZ"), b"torn").unwrap_or_else(|e| panic!("{e}"));
        let reopened = DataDir::open(temp.path()).unwrap_or_else(|e| panic!("{e}"));
        let all: Vec<_> = reopened
            .load_all()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|r| r.unwrap_or_else(|e| panic!("{e}")))
            .collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], (saved, b"first".to_vec()));
        assert!(!store.wasm_path("00").exists());
        assert!(!store.modules().join(".tmpXYZ").exists());
        reopened.remove("a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reopened.load_all().map(|v| v.len()).unwrap_or(0), 1);
    }

    #[test]
    fn altered_bytes_are_not_loaded() {
        let temp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let store = DataDir::open(temp.path()).unwrap_or_else(|e| panic!("{e}"));
        let saved = store
            .save("a", b"first", 1)
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(store.wasm_path(&saved.measurement), b"evil")
            .unwrap_or_else(|e| panic!("{e}"));
        let all = store.load_all().unwrap_or_else(|e| panic!("{e}"));
        let err = all[0].as_ref().unwrap_err().to_string();
        assert!(err.contains("do not match their measurement"), "{err}");
    }
}
