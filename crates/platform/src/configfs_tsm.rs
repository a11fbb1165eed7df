//! Intel TDX and AMD SEV-SNP evidence through Linux's configfs-tsm report interface
//! (`Documentation/ABI/testing/configfs-tsm-report`, Linux 6.7+).
//!
//! One report: `mkdir` a fresh entry under the root (the kernel fills it with attribute files),
//! read `generation`, write 64 bytes to `inblob` (and the VMPL to `privlevel` on SEV-SNP), read
//! `outblob`, `provider` and, on SEV-SNP, `auxblob` (the certificate table), then read
//! `generation` again: every write bumps it by one, so any other value means someone else wrote
//! to the entry meanwhile and the report may not be ours. That attempt is discarded and retried
//! in a new entry, a bounded number of times. The entry is removed (`rmdir`) however the attempt
//! ends.
//!
//! configfs is not a plain file system: `mkdir` creates attribute files and writes regenerate the
//! report. All file operations therefore go through the [`ConfigfsIo`] seam; [`RealConfigfs`] is
//! `std::fs`, and tests substitute a fake kernel that does what configfs does on a temporary
//! directory.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use attest::{PlatformKind, ReportData};

use crate::binding::check_evidence;
use crate::error::PlatformError;
use crate::pseudo_file::read_bounded;
use crate::snp_certs::{SnpCertificate, parse_cert_table};
use crate::{Attester, GeneratedEvidence};

/// Where Linux mounts the configfs-tsm report interface.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";
/// Attempts before a persistent generation race is reported.
pub const MAX_ATTEMPTS: u32 = 3;
/// Highest SEV-SNP privilege level (VMPL).
pub const MAX_PRIVLEVEL: u32 = 3;

const PROVIDER_TDX: &str = "tdx_guest";
const PROVIDER_SNP: &str = "sev_guest";

/// The file operations the configfs-tsm protocol needs; the seam where tests put a fake kernel.
pub trait ConfigfsIo: fmt::Debug + Send + Sync {
    /// Creates a report entry directory (configfs populates it with attribute files).
    fn create_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Removes a report entry directory.
    fn remove_dir(&self, path: &Path) -> std::io::Result<()>;
    /// Reads a whole attribute.
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>>;
    /// Writes a whole attribute, in one `write` (configfs commits binary attributes on close).
    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
}

/// The real file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealConfigfs;

impl ConfigfsIo for RealConfigfs {
    fn create_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir(path)
    }

    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        read_bounded(path)
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        // No O_CREAT/O_TRUNC: attributes exist or the TSM does not offer them.
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.write_all(bytes)
    }
}

/// One configfs-tsm report, as the kernel returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsmReport {
    /// The platform, from `provider`.
    pub kind: PlatformKind,
    /// `outblob`: the TDX quote or SEV-SNP report.
    pub outblob: Vec<u8>,
    /// The SEV-SNP certificate table from `auxblob`; empty on TDX or when the host supplies none.
    pub certificates: Vec<SnpCertificate>,
    /// `generation` after the report was read.
    pub generation: u64,
}

/// TDX or SEV-SNP evidence through configfs-tsm.
#[derive(Debug, Clone)]
pub struct ConfigfsTsm {
    root: PathBuf,
    io: Arc<dyn ConfigfsIo>,
    kind: PlatformKind,
    privlevel: Option<u32>,
    max_attempts: u32,
}

impl ConfigfsTsm {
    /// Opens the interface at [`DEFAULT_ROOT`].
    pub fn new() -> Result<Self, PlatformError> {
        Self::with_root(DEFAULT_ROOT)
    }

    /// Opens the interface at `root` (a directory like `/sys/kernel/config/tsm/report`).
    pub fn with_root(root: impl Into<PathBuf>) -> Result<Self, PlatformError> {
        Self::with_io(root, Arc::new(RealConfigfs))
    }

    /// Opens the interface at `root` through `io` (tests pass a fake kernel). Creates and
    /// removes one entry to learn the provider.
    pub fn with_io(
        root: impl Into<PathBuf>,
        io: Arc<dyn ConfigfsIo>,
    ) -> Result<Self, PlatformError> {
        let root = root.into();
        let entry = Entry::create(&root, io.as_ref())?;
        let provider_path = entry.path.join("provider");
        let provider = io
            .read(&provider_path)
            .map_err(|e| PlatformError::io(&provider_path, e))?;
        let kind = provider_kind(&provider)?;
        drop(entry);
        tracing::debug!(root = %root.display(), %kind, "opened configfs-tsm");
        Ok(Self {
            root,
            io,
            kind,
            privlevel: None,
            max_attempts: MAX_ATTEMPTS,
        })
    }

    /// Asks for reports at SEV-SNP privilege level `level` (VMPL 0..=3), written to `privlevel`.
    /// TDX has no privilege levels: its reports then fail with an error naming `privlevel`.
    pub fn with_privlevel(mut self, level: u32) -> Result<Self, PlatformError> {
        if level > MAX_PRIVLEVEL {
            return Err(PlatformError::PrivlevelOutOfRange { level });
        }
        self.privlevel = Some(level);
        Ok(self)
    }

    /// How many attempts a generation race may cost before it is an error (at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Produces a report binding `report_data`, retrying on generation races.
    pub fn report(&self, report_data: &ReportData) -> Result<TsmReport, PlatformError> {
        let mut attempt = 1;
        loop {
            match self.attempt(report_data) {
                Err(PlatformError::GenerationRace {
                    entry,
                    expected,
                    found,
                    ..
                }) => {
                    tracing::warn!(
                        entry = %entry.display(), expected, found, attempt,
                        "configfs-tsm generation race; another writer used the entry"
                    );
                    if attempt >= self.max_attempts {
                        return Err(PlatformError::GenerationRace {
                            entry,
                            expected,
                            found,
                            attempts: attempt,
                        });
                    }
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn attempt(&self, report_data: &ReportData) -> Result<TsmReport, PlatformError> {
        let entry = Entry::create(&self.root, self.io.as_ref())?;
        let first = self.read_generation(&entry)?;
        let mut writes = 0u64;
        self.write_attribute(&entry, "inblob", report_data.as_bytes())?;
        writes += 1;
        if let Some(level) = self.privlevel {
            self.write_attribute(&entry, "privlevel", level.to_string().as_bytes())?;
            writes += 1;
        }
        let outblob_path = entry.path.join("outblob");
        let outblob = self.read_attribute(&outblob_path)?;
        if outblob.is_empty() {
            return Err(PlatformError::OutblobEmpty { path: outblob_path });
        }
        let kind = provider_kind(&self.read_attribute(&entry.path.join("provider"))?)?;
        if kind != self.kind {
            return Err(PlatformError::PlatformMismatch {
                expected: self.kind,
                found: kind,
                what: format!("configfs-tsm provider at {}", entry.path.display()),
            });
        }
        let certificates = if kind == PlatformKind::Snp {
            self.read_certificates(&entry)?
        } else {
            Vec::new()
        };
        let last = self.read_generation(&entry)?;
        let expected = first.saturating_add(writes);
        if last != expected {
            return Err(PlatformError::GenerationRace {
                entry: entry.path.clone(),
                expected,
                found: last,
                attempts: 1,
            });
        }
        Ok(TsmReport {
            kind,
            outblob,
            certificates,
            generation: last,
        })
    }

    fn read_certificates(&self, entry: &Entry<'_>) -> Result<Vec<SnpCertificate>, PlatformError> {
        let path = entry.path.join("auxblob");
        match self.io.read(&path) {
            Ok(table) if table.is_empty() => Ok(Vec::new()),
            Ok(table) => parse_cert_table(&table),
            // Older kernels and hosts without certificates have no auxblob.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(PlatformError::io(path, e)),
        }
    }

    fn read_generation(&self, entry: &Entry<'_>) -> Result<u64, PlatformError> {
        let path = entry.path.join("generation");
        let bytes = self.read_attribute(&path)?;
        std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .ok_or_else(|| PlatformError::Malformed {
                reason: format!(
                    "expected a decimal counter, found {:?}",
                    String::from_utf8_lossy(&bytes)
                ),
                path,
            })
    }

    fn read_attribute(&self, path: &Path) -> Result<Vec<u8>, PlatformError> {
        self.io.read(path).map_err(|e| PlatformError::io(path, e))
    }

    fn write_attribute(
        &self,
        entry: &Entry<'_>,
        name: &str,
        bytes: &[u8],
    ) -> Result<(), PlatformError> {
        let path = entry.path.join(name);
        self.io.write(&path, bytes).map_err(|e| {
            if name == "privlevel" && e.kind() == std::io::ErrorKind::NotFound {
                PlatformError::Unavailable {
                    what: format!("privlevel at {}", path.display()),
                    reason: format!("the {} TSM has no privilege levels", self.kind),
                }
            } else {
                PlatformError::io(&path, e)
            }
        })
    }
}

impl Attester for ConfigfsTsm {
    fn kind(&self) -> PlatformKind {
        self.kind
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Vec<u8>, PlatformError> {
        Ok(self.generate(report_data)?.evidence)
    }

    fn generate(&self, report_data: &ReportData) -> Result<GeneratedEvidence, PlatformError> {
        let report = self.report(report_data)?;
        check_evidence(
            &report.outblob,
            self.kind,
            report_data,
            &format!("configfs-tsm at {}", self.root.display()),
        )?;
        Ok(GeneratedEvidence {
            evidence: report.outblob,
            certificates: report.certificates,
        })
    }

    fn describe(&self) -> String {
        let provider = match self.kind {
            PlatformKind::Tdx => "Intel TDX",
            PlatformKind::Snp => "AMD SEV-SNP",
            other => other.as_str(),
        };
        match self.privlevel {
            Some(level) => format!(
                "{provider} via configfs-tsm at {} (privlevel {level})",
                self.root.display()
            ),
            None => format!("{provider} via configfs-tsm at {}", self.root.display()),
        }
    }
}

fn provider_kind(bytes: &[u8]) -> Result<PlatformKind, PlatformError> {
    let provider = String::from_utf8_lossy(bytes);
    match provider.trim() {
        PROVIDER_TDX => Ok(PlatformKind::Tdx),
        PROVIDER_SNP => Ok(PlatformKind::Snp),
        other => Err(PlatformError::ProviderUnknown {
            provider: other.to_owned(),
        }),
    }
}

/// A report entry directory of our own, removed when dropped.
struct Entry<'a> {
    path: PathBuf,
    io: &'a dyn ConfigfsIo,
}

impl<'a> Entry<'a> {
    fn create(root: &Path, io: &'a dyn ConfigfsIo) -> Result<Self, PlatformError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        // Unique within this process; a leftover of an earlier process with the same pid (one
        // that crashed before its rmdir) is skipped, a few times at most.
        let mut tries = 0;
        let (path, created) = loop {
            let path = root.join(format!(
                "teemesh-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let created = io.create_dir(&path);
            tries += 1;
            match &created {
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 8 => {}
                _ => break (path, created),
            }
        };
        created.map_err(|e| {
            let what = format!("configfs-tsm at {}", root.display());
            match e.kind() {
                std::io::ErrorKind::NotFound => PlatformError::Unavailable {
                    what,
                    reason: "no such directory: not a TDX or SEV-SNP guest, or a kernel older \
                             than 6.7, or configfs is not mounted (mount -t configfs none \
                             /sys/kernel/config)"
                        .into(),
                },
                std::io::ErrorKind::PermissionDenied => PlatformError::Unavailable {
                    what,
                    reason: format!(
                        "permission denied creating {} (creating report entries needs root or \
                         write access to {})",
                        path.display(),
                        root.display()
                    ),
                },
                _ => PlatformError::io(&path, e),
            }
        })?;
        Ok(Self { path, io })
    }
}

impl Drop for Entry<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.io.remove_dir(&self.path) {
            tracing::warn!(entry = %self.path.display(), error = %e, "cannot remove configfs-tsm report entry");
        }
    }
}
