//! Choosing the attester: by name (`--platform tdx`), or by looking for a TEE interface on this
//! host. Auto-detection finds hardware TEEs only; the simulated TEE must be asked for by name.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use attest::PlatformKind;

use crate::error::PlatformError;
use crate::{Attester, ConfigfsTsm, Gramine, Simulated, configfs_tsm, gramine};

/// Which attester to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformChoice {
    /// The TEE found on this host (configfs-tsm, then Gramine); an error if there is none.
    Auto,
    /// The simulated TEE: no hardware protection.
    Sim,
    /// configfs-tsm, optionally requiring a provider (`tdx` or `snp`).
    ConfigfsTsm {
        /// The platform the provider must be, if any.
        expect: Option<PlatformKind>,
    },
    /// SGX under Gramine.
    Gramine,
}

impl FromStr for PlatformChoice {
    type Err = PlatformError;

    /// Accepts `auto`, `sim`, `tdx`, `snp`, `configfs-tsm`, `sgx` and `gramine` (any case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "sim" | "simulated" => Ok(Self::Sim),
            "tdx" => Ok(Self::ConfigfsTsm {
                expect: Some(PlatformKind::Tdx),
            }),
            "snp" | "sev-snp" => Ok(Self::ConfigfsTsm {
                expect: Some(PlatformKind::Snp),
            }),
            "configfs-tsm" | "tsm" => Ok(Self::ConfigfsTsm { expect: None }),
            "sgx" | "gramine" => Ok(Self::Gramine),
            _ => Err(PlatformError::UnknownChoice {
                given: text.to_owned(),
            }),
        }
    }
}

impl fmt::Display for PlatformChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Sim => "sim",
            Self::ConfigfsTsm {
                expect: Some(PlatformKind::Tdx),
            } => "tdx",
            Self::ConfigfsTsm {
                expect: Some(PlatformKind::Snp),
            } => "snp",
            Self::ConfigfsTsm { .. } => "configfs-tsm",
            Self::Gramine => "gramine",
        })
    }
}

/// Where the TEE interfaces live; [`Default`] is the real locations, tests point elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformRoots {
    /// The configfs-tsm report directory.
    pub configfs_tsm: PathBuf,
    /// Gramine's attestation pseudo-file directory.
    pub gramine: PathBuf,
}

impl Default for PlatformRoots {
    fn default() -> Self {
        Self {
            configfs_tsm: configfs_tsm::DEFAULT_ROOT.into(),
            gramine: gramine::DEFAULT_ROOT.into(),
        }
    }
}

impl PlatformRoots {
    /// Opens the attester `choice` names.
    pub fn open(&self, choice: PlatformChoice) -> Result<Box<dyn Attester>, PlatformError> {
        match choice {
            PlatformChoice::Auto => self.detect(),
            PlatformChoice::Sim => {
                let simulated = Simulated::for_this_executable()?;
                tracing::warn!(
                    measurement = %simulated.measurement(),
                    "using the SIMULATED TEE: its evidence has no hardware protection"
                );
                Ok(Box::new(simulated))
            }
            PlatformChoice::ConfigfsTsm { expect } => {
                let tsm = ConfigfsTsm::with_root(&self.configfs_tsm)?;
                if let Some(expected) = expect {
                    let found = crate::Attester::kind(&tsm);
                    if found != expected {
                        return Err(PlatformError::PlatformMismatch {
                            expected,
                            found,
                            what: format!("configfs-tsm at {}", self.configfs_tsm.display()),
                        });
                    }
                }
                Ok(Box::new(tsm))
            }
            PlatformChoice::Gramine => Ok(Box::new(Gramine::with_root(&self.gramine)?)),
        }
    }

    /// The hardware TEE on this host: configfs-tsm if its directory exists, else Gramine if its
    /// directory exists, else [`PlatformError::NoTeeFound`]. Never the simulated TEE.
    pub fn detect(&self) -> Result<Box<dyn Attester>, PlatformError> {
        if self.configfs_tsm.is_dir() {
            return self.open(PlatformChoice::ConfigfsTsm { expect: None });
        }
        if self.gramine.is_dir() {
            return self.open(PlatformChoice::Gramine);
        }
        Err(PlatformError::NoTeeFound {
            searched: format!(
                "TDX/SEV-SNP configfs-tsm at {}, SGX Gramine at {}",
                self.configfs_tsm.display(),
                self.gramine.display()
            ),
        })
    }
}

/// Opens the attester `choice` names, at the real locations.
pub fn open(choice: PlatformChoice) -> Result<Box<dyn Attester>, PlatformError> {
    PlatformRoots::default().open(choice)
}

/// The hardware TEE on this host (see [`PlatformRoots::detect`]); never the simulated TEE.
pub fn detect() -> Result<Box<dyn Attester>, PlatformError> {
    PlatformRoots::default().detect()
}
