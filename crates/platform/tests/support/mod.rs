//! Test support: the repo's vendor fixtures, and a fake configfs-tsm kernel that behaves like the
//! real one on a temporary directory (attribute files appear on mkdir, writes bump `generation`).
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use attest::{Evidence, ReportData};
use platform::ConfigfsIo;

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(rel)
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The report data a fixture's evidence binds (so a fake TEE can be asked for exactly that).
pub fn report_data_of(evidence: &[u8]) -> ReportData {
    *Evidence::from_bytes(evidence).unwrap().report_data()
}

/// What a configfs-tsm provider does, played on a real directory.
#[derive(Debug)]
pub struct FakeTsmKernel {
    provider: String,
    outblob: Vec<u8>,
    auxblob: Option<Vec<u8>>,
    /// How many upcoming `outblob` reads another writer disturbs (it bumps `generation`).
    races: AtomicU32,
    /// Every `inblob` written, in order.
    pub inblobs: Mutex<Vec<Vec<u8>>>,
    /// Every `privlevel` written, in order.
    pub privlevels: Mutex<Vec<String>>,
}

impl FakeTsmKernel {
    pub fn new(provider: &str, outblob: Vec<u8>) -> Self {
        Self {
            provider: format!("{provider}\n"),
            outblob,
            auxblob: None,
            races: AtomicU32::new(0),
            inblobs: Mutex::new(Vec::new()),
            privlevels: Mutex::new(Vec::new()),
        }
    }

    pub fn with_auxblob(mut self, auxblob: Vec<u8>) -> Self {
        self.auxblob = Some(auxblob);
        self
    }

    pub fn with_races(self, races: u32) -> Self {
        self.races.store(races, Ordering::SeqCst);
        self
    }

    fn bump_generation(entry: &Path) -> std::io::Result<()> {
        let path = entry.join("generation");
        let now: u64 = std::fs::read_to_string(&path)?.trim().parse().unwrap();
        std::fs::write(&path, format!("{}\n", now + 1))
    }

    fn entry_and_name(path: &Path) -> (&Path, &str) {
        (
            path.parent().unwrap(),
            path.file_name().unwrap().to_str().unwrap(),
        )
    }
}

impl ConfigfsIo for FakeTsmKernel {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)?;
        std::fs::write(path.join("generation"), "0\n")?;
        std::fs::write(path.join("provider"), &self.provider)?;
        std::fs::write(path.join("inblob"), b"")?;
        std::fs::write(path.join("outblob"), b"")?;
        if self.provider.trim() == "sev_guest" {
            std::fs::write(path.join("privlevel"), b"")?;
            std::fs::write(path.join("privlevel_floor"), b"0\n")?;
        }
        if let Some(auxblob) = &self.auxblob {
            std::fs::write(path.join("auxblob"), auxblob)?;
        }
        Ok(())
    }

    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        // configfs removes the attributes with the item; here they are real files.
        std::fs::remove_dir_all(path)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        let (entry, name) = Self::entry_and_name(path);
        if name == "outblob"
            && self
                .races
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            // Someone else writes to our entry between our inblob and our outblob read.
            Self::bump_generation(entry)?;
        }
        std::fs::read(path)
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let (entry, name) = Self::entry_and_name(path);
        if !path.exists() {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        match name {
            "inblob" => {
                if bytes.len() > 64 {
                    return Err(std::io::ErrorKind::InvalidInput.into());
                }
                self.inblobs.lock().unwrap().push(bytes.to_vec());
                std::fs::write(path, bytes)?;
                // The report is generated for this inblob.
                std::fs::write(entry.join("outblob"), &self.outblob)?;
            }
            "privlevel" => {
                self.privlevels
                    .lock()
                    .unwrap()
                    .push(String::from_utf8(bytes.to_vec()).unwrap());
                std::fs::write(path, bytes)?;
            }
            _ => return Err(std::io::ErrorKind::PermissionDenied.into()),
        }
        Self::bump_generation(entry)
    }
}

/// True when `root` holds no entries (every attempt cleaned up after itself).
pub fn is_empty_dir(root: &Path) -> bool {
    std::fs::read_dir(root).unwrap().next().is_none()
}
