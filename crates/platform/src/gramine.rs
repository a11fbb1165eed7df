//! Intel SGX evidence from inside a Gramine enclave, through Gramine's attestation pseudo-files
//! (`/dev/attestation`): write 64 bytes to `user_report_data`, read a DCAP quote from `quote`.
//!
//! The pseudo-files are one piece of state per process, so two threads asking at once would get
//! each other's quotes: calls are serialised by a process-wide lock, and the quote's report data
//! is checked against what was written in case something else in the process writes there too.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use attest::{PlatformKind, ReportData};

use crate::binding::check_evidence;
use crate::error::PlatformError;
use crate::pseudo_file::read_bounded;
use crate::{Attester, SealingKey};

/// Where Gramine exposes its attestation pseudo-files.
pub const DEFAULT_ROOT: &str = "/dev/attestation";

/// Serialises use of the per-process pseudo-files.
static ATTESTATION_FILES: Mutex<()> = Mutex::new(());

/// SGX (DCAP) evidence through Gramine's `/dev/attestation`.
#[derive(Debug, Clone)]
pub struct Gramine {
    root: PathBuf,
}

impl Gramine {
    /// Opens [`DEFAULT_ROOT`].
    pub fn new() -> Result<Self, PlatformError> {
        Self::with_root(DEFAULT_ROOT)
    }

    /// Opens the pseudo-files under `root`; refuses unless `attestation_type` says `dcap`.
    pub fn with_root(root: impl Into<PathBuf>) -> Result<Self, PlatformError> {
        let root = root.into();
        let type_path = root.join("attestation_type");
        let attestation_type = match read_bounded(&type_path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PlatformError::Unavailable {
                    what: format!("Gramine attestation at {}", root.display()),
                    reason: format!(
                        "{} does not exist: not running inside a Gramine SGX enclave",
                        type_path.display()
                    ),
                });
            }
            Err(e) => return Err(PlatformError::io(type_path, e)),
        };
        if attestation_type != "dcap" {
            return Err(PlatformError::AttestationTypeUnsupported {
                found: attestation_type,
            });
        }
        tracing::debug!(root = %root.display(), "opened Gramine attestation (dcap)");
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Attester for Gramine {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sgx
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Vec<u8>, PlatformError> {
        let quote = {
            let _guard = ATTESTATION_FILES
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let data_path = self.root.join("user_report_data");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&data_path)
                .and_then(|mut file| file.write_all(report_data.as_bytes()))
                .map_err(|e| PlatformError::io(&data_path, e))?;
            let quote_path = self.root.join("quote");
            let quote = read_bounded(&quote_path).map_err(|e| PlatformError::io(&quote_path, e))?;
            if quote.is_empty() {
                return Err(PlatformError::OutblobEmpty { path: quote_path });
            }
            quote
        };
        check_evidence(
            &quote,
            PlatformKind::Sgx,
            report_data,
            &format!("Gramine at {}", self.root.display()),
        )?;
        Ok(quote)
    }

    fn describe(&self) -> String {
        format!("Intel SGX via Gramine (DCAP) at {}", self.root.display())
    }

    /// Gramine's `keys/_sgx_mrenclave`: the 16-byte SGX sealing key the CPU derives for this
    /// enclave's MRENCLAVE on this CPU (EGETKEY). Another enclave, or the same code outside
    /// SGX, cannot obtain it; a rebuilt node binary gets another key.
    fn sealing_key(&self) -> Result<Option<SealingKey>, PlatformError> {
        let path = self.root.join("keys").join(SEALING_KEY_NAME);
        let key = read_bounded(&path).map_err(|e| PlatformError::io(&path, e))?;
        if key.len() != SEALING_KEY_LEN {
            return Err(PlatformError::Unavailable {
                what: format!("the SGX sealing key at {}", path.display()),
                reason: format!("it has {} bytes, expected {SEALING_KEY_LEN}", key.len()),
            });
        }
        Ok(Some(SealingKey::new(
            key,
            format!("SGX MRENCLAVE sealing key ({})", path.display()),
        )))
    }
}

/// Gramine's name for the MRENCLAVE-bound sealing key under `keys/`.
const SEALING_KEY_NAME: &str = "_sgx_mrenclave";
/// Its length: an SGX key (128 bits).
const SEALING_KEY_LEN: usize = 16;
