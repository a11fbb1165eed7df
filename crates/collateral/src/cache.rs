//! The response cache: one file per response part, named `<sha256(url)>-<human name>` so a URL
//! maps to its files without an index and a person can still tell `tcb_info.json` from `vcek.der`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// One stored file and its contents.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
}

/// A directory of cached responses.
#[derive(Debug, Clone)]
pub(crate) struct Cache {
    dir: PathBuf,
    max_age: Duration,
}

/// How a lookup went.
pub(crate) enum Lookup {
    /// Every part is present and young enough.
    Fresh(Vec<Stored>),
    /// Every part is present but older than the maximum age.
    Stale(Vec<Stored>),
    /// Some part is absent.
    Missing,
}

impl Cache {
    pub(crate) fn new(dir: PathBuf, max_age: Duration) -> Self {
        Self { dir, max_age }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding part `name` of the response to `url`.
    pub(crate) fn path(&self, url: &str, name: &str) -> PathBuf {
        let key = hex::encode(Sha256::digest(url.as_bytes()));
        self.dir.join(format!("{key}-{name}"))
    }

    /// Reads all parts of the response to `url`; the age is that of the oldest part.
    pub(crate) fn lookup(&self, url: &str, names: &[&str]) -> Result<Lookup, Error> {
        let mut parts = Vec::with_capacity(names.len());
        let mut oldest: Option<SystemTime> = None;
        for name in names {
            let path = self.path(url, name);
            let meta = match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lookup::Missing),
                Err(e) => return Err(Error::cache_io(path, e)),
            };
            let modified = meta.modified().map_err(|e| Error::cache_io(&path, e))?;
            oldest = Some(oldest.map_or(modified, |o| o.min(modified)));
            let bytes = std::fs::read(&path).map_err(|e| Error::cache_io(&path, e))?;
            parts.push(Stored { path, bytes });
        }
        // A modification time in the future (clock skew) counts as fresh.
        let age = oldest
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        Ok(if age > self.max_age {
            Lookup::Stale(parts)
        } else {
            Lookup::Fresh(parts)
        })
    }

    /// Stores the parts of the response to `url`, each written to a temporary file and renamed,
    /// so a reader never sees half a file. Returned in the order given.
    pub(crate) fn store(&self, url: &str, parts: &[(&str, &[u8])]) -> Result<Vec<Stored>, Error> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::cache_io(&self.dir, e))?;
        let mut out = Vec::with_capacity(parts.len());
        for (name, bytes) in parts {
            let path = self.path(url, name);
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            std::fs::write(&tmp, bytes).map_err(|e| Error::cache_io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::cache_io(&path, e))?;
            out.push(Stored {
                path,
                bytes: bytes.to_vec(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_then_lookup_is_fresh_and_ages_to_stale() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Cache::new(dir.path().join("cache"), Duration::from_secs(3600));
        let url = "https://example.test/a?b=c";
        assert!(matches!(cache.lookup(url, &["x.der"]), Ok(Lookup::Missing)));
        let stored = cache.store(url, &[("x.der", b"abc")]).expect("store");
        let expected = format!("{}-x.der", hex::encode(Sha256::digest(url.as_bytes())));
        assert_eq!(stored[0].path.file_name(), Some(expected.as_ref()));
        assert!(
            matches!(cache.lookup(url, &["x.der"]), Ok(Lookup::Fresh(p)) if p[0].bytes == b"abc")
        );
        assert!(matches!(
            cache.lookup(url, &["x.der", "y.pem"]),
            Ok(Lookup::Missing)
        ));
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&stored[0].path)
            .and_then(|f| f.set_modified(two_hours_ago))
            .expect("set mtime");
        assert!(matches!(
            cache.lookup(url, &["x.der"]),
            Ok(Lookup::Stale(_))
        ));
    }
}
