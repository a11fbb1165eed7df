//! The one error type of `platform`: why evidence could not be obtained on this host, said so an
//! operator knows what to check (which file, which platform, what was expected).

use std::path::PathBuf;

use attest::{PlatformKind, ReportData};

/// Why a TEE could not be opened or could not produce evidence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The TEE interface is not present (or not usable) on this host.
    #[error("{what} is not available: {reason}")]
    Unavailable {
        /// The interface, e.g. "configfs-tsm at /sys/kernel/config/tsm/report".
        what: String,
        /// Why, and what to check.
        reason: String,
    },
    /// No TEE interface was found while auto-detecting.
    #[error(
        "no TEE found on this host (looked for {searched}); to run without hardware protection, \
         choose the simulated TEE explicitly (`--platform sim`)"
    )]
    NoTeeFound {
        /// What was looked for, and where.
        searched: String,
    },
    /// Reading or writing a TEE file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// Another writer changed the configfs-tsm report entry while we used it, on every attempt.
    #[error(
        "configfs-tsm report entry {} was written by someone else while in use (generation \
         {found}, expected {expected}); gave up after {attempts} attempts",
        entry.display()
    )]
    GenerationRace {
        /// The entry directory of the last attempt.
        entry: PathBuf,
        /// Generation expected after our own writes.
        expected: u64,
        /// Generation found.
        found: u64,
        /// Attempts made.
        attempts: u32,
    },
    /// configfs-tsm names a provider this crate does not know.
    #[error(
        "configfs-tsm provider {provider:?} is not supported (expected \"tdx_guest\" for TDX or \
         \"sev_guest\" for SEV-SNP)"
    )]
    ProviderUnknown {
        /// The provider's name as the kernel gave it.
        provider: String,
    },
    /// The TEE returned no evidence.
    #[error("{} is empty: the TEE returned no evidence", path.display())]
    OutblobEmpty {
        /// The file that was read.
        path: PathBuf,
    },
    /// A TEE file holds something other than what its interface specifies.
    #[error("{} is malformed: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong and what was expected.
        reason: String,
    },
    /// The SEV-SNP certificate table (configfs-tsm `auxblob`) is malformed.
    #[error("malformed SEV-SNP certificate table: {reason}")]
    CertTable {
        /// What is wrong.
        reason: String,
    },
    /// Gramine runs with an attestation type other than DCAP.
    #[error(
        "Gramine attestation type is {found:?}, teemesh needs \"dcap\" (set \
         sgx.remote_attestation = \"dcap\" in the Gramine manifest)"
    )]
    AttestationTypeUnsupported {
        /// The attestation type Gramine reports.
        found: String,
    },
    /// The TEE returned bytes that are not evidence teemesh can parse.
    #[error("{what} returned evidence teemesh cannot parse: {source}")]
    EvidenceUnparseable {
        /// Which interface returned it.
        what: String,
        /// Why parsing failed.
        source: attest::Error,
    },
    /// The evidence (or the TEE) is of another platform than expected.
    #[error("expected {expected} evidence, but {what} produced {found}")]
    PlatformMismatch {
        /// The platform asked for.
        expected: PlatformKind,
        /// The platform found.
        found: PlatformKind,
        /// Which interface.
        what: String,
    },
    /// The evidence binds other report data than was asked for: a stale report, or a concurrent
    /// writer to the same TEE interface.
    #[error(
        "{what} returned evidence for other report data (asked for {expected}, got {found}): a \
         stale report or a concurrent writer"
    )]
    ReportDataMismatch {
        /// Report data asked for (boxed: 64 bytes would make every `Result` large).
        expected: Box<ReportData>,
        /// Report data in the evidence.
        found: Box<ReportData>,
        /// Which interface.
        what: String,
    },
    /// The SEV-SNP privilege level (VMPL) is out of range.
    #[error("privilege level {level} is out of range (0..=3)")]
    PrivlevelOutOfRange {
        /// The level asked for.
        level: u32,
    },
    /// The running executable could not be located (needed for the simulated measurement).
    #[error("cannot locate the running executable: {source}")]
    ExecutableUnknown {
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A platform name (e.g. a `--platform` value) is not one this crate knows.
    #[error(
        "unknown platform {given:?}: expected auto, sim, tdx, snp, configfs-tsm, sgx or gramine"
    )]
    UnknownChoice {
        /// The name given.
        given: String,
    },
}

impl PlatformError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
