//! Obtaining **evidence** on the host, in RATS (RFC 9334) terms the *attester* side: ask the TEE
//! this process runs in to sign 64 bytes of report data, and hand back the raw evidence that
//! [`attest::Evidence::from_bytes`] parses and [`attest::Verifier`] appraises.
//!
//! Backends, each behind the [`Attester`] trait:
//! - [`ConfigfsTsm`]: Intel TDX and AMD SEV-SNP guests through Linux's configfs-tsm report interface
//!   (`/sys/kernel/config/tsm/report`, Linux 6.7+), with the SEV-SNP certificate table (VCEK or
//!   VLEK, ASK, ARK) from `auxblob` as [`SnpCertificate`]s.
//! - [`Gramine`]: Intel SGX enclaves under Gramine with DCAP (`/dev/attestation`).
//! - [`Simulated`]: the simulated TEE, no hardware protection at all. Only ever chosen explicitly:
//!   [`detect()`] never falls back to it.
//!
//! Every backend checks what it got before returning it: the evidence must parse, come from the
//! platform the backend speaks to, and bind exactly the report data that was asked for, so a
//! stale or raced report is an error here rather than a refusal at the verifier.
//!
//! ```no_run
//! use attest::ReportData;
//! // TDX or SEV-SNP (configfs-tsm) or SGX (Gramine); an error if there is no TEE.
//! let attester = platform::detect()?;
//! let evidence = attester.evidence(&ReportData([0x42; 64]))?;
//! std::fs::write("evidence.bin", &evidence)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The simulated TEE, for laptops and CI, chosen by name:
//!
//! ```
//! use attest::{Evidence, Measurement384, PlatformKind, ReportData};
//! use platform::{Attester, Simulated};
//! let attester = Simulated::with_measurement(Measurement384([7; 48]));
//! let evidence = Evidence::from_bytes(&attester.evidence(&ReportData([1; 64]))?)?;
//! assert_eq!(evidence.platform(), PlatformKind::Sim);
//! assert_eq!(evidence.report_data(), &ReportData([1; 64]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Not here yet: **sealing keys** (TDX/SNP derived keys, SGX `EGETKEY` through Gramine's
//! `/dev/attestation/keys`). They will live in this crate, behind their own trait, when a caller
//! needs them.
#![forbid(unsafe_code)]

mod binding;
pub mod configfs_tsm;
pub mod detect;
pub mod error;
pub mod gramine;
mod pseudo_file;
pub mod simulated;
pub mod snp_certs;

pub use attest::{PlatformKind, ReportData};
pub use configfs_tsm::{ConfigfsIo, ConfigfsTsm, RealConfigfs, TsmReport};
pub use detect::{PlatformChoice, PlatformRoots, detect, open};
pub use error::PlatformError;
pub use gramine::Gramine;
pub use simulated::{Simulated, executable_measurement};
pub use snp_certs::{SnpCertRole, SnpCertificate};

/// A TEE this process runs in, able to sign report data into evidence.
///
/// Implementations are cheap to share between threads; each call to [`Attester::evidence`]
/// produces fresh evidence.
pub trait Attester: Send + Sync {
    /// Which platform's evidence this attester produces.
    fn kind(&self) -> PlatformKind;

    /// Fresh evidence binding `report_data`: raw bytes that [`attest::Evidence::from_bytes`]
    /// parses, checked to come from [`Attester::kind`] and to carry exactly `report_data`.
    fn evidence(&self, report_data: &ReportData) -> Result<Vec<u8>, PlatformError>;

    /// Evidence together with the endorsements the platform handed out with it (today: the
    /// SEV-SNP certificate table). The default has none.
    fn generate(&self, report_data: &ReportData) -> Result<GeneratedEvidence, PlatformError> {
        Ok(GeneratedEvidence {
            evidence: self.evidence(report_data)?,
            certificates: Vec::new(),
        })
    }

    /// One line for logs and the CLI: the platform, the interface and where it lives.
    fn describe(&self) -> String;

    /// A key the TEE derives for this code on this machine and releases only to it (SGX: the
    /// MRENCLAVE sealing key), from which the node derives its sealing secret. `None` when the
    /// platform's interface offers none (configfs-tsm today, the simulated TEE).
    fn sealing_key(&self) -> Result<Option<SealingKey>, PlatformError> {
        Ok(None)
    }
}

/// A platform sealing key (see [`Attester::sealing_key`]). Never logged (its `Debug` prints
/// only where it came from) and overwritten when dropped.
pub struct SealingKey {
    key: zeroize::Zeroizing<Vec<u8>>,
    source: String,
}

impl SealingKey {
    /// Wraps key bytes and a description of where they came from.
    pub fn new(key: Vec<u8>, source: impl Into<String>) -> Self {
        Self {
            key: zeroize::Zeroizing::new(key),
            source: source.into(),
        }
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// Where the key came from, e.g. "SGX MRENCLAVE sealing key (Gramine /dev/attestation/keys)".
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What [`Attester::generate`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedEvidence {
    /// The raw evidence, as [`Attester::evidence`] returns it.
    pub evidence: Vec<u8>,
    /// Certificates the platform supplied alongside (SEV-SNP VCEK/VLEK, ASK, ARK), in the order
    /// the platform gave them; empty when it supplied none.
    pub certificates: Vec<SnpCertificate>,
}

impl<A: Attester + ?Sized> Attester for Box<A> {
    fn kind(&self) -> PlatformKind {
        (**self).kind()
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Vec<u8>, PlatformError> {
        (**self).evidence(report_data)
    }

    fn generate(&self, report_data: &ReportData) -> Result<GeneratedEvidence, PlatformError> {
        (**self).generate(report_data)
    }

    fn describe(&self) -> String {
        (**self).describe()
    }

    fn sealing_key(&self) -> Result<Option<SealingKey>, PlatformError> {
        (**self).sealing_key()
    }
}
