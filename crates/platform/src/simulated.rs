//! The simulated TEE as an [`Attester`]: evidence signed by the public simulated vendor root, so
//! **no hardware protects it**. Verifiers refuse it unless their policy says `allow_simulated`;
//! it exists for laptops and CI and is only ever chosen by name, never as a fallback.

use attest::{Measurement384, PlatformKind, ReportData, SimulatedAttester, UnixTime};
use sha2::{Digest as _, Sha384};

use crate::Attester;
use crate::error::PlatformError;

/// SHA-384 of the running executable: what the simulated TEE reports as its measurement, so a
/// modified binary measures differently, as it would in a real TEE.
pub fn executable_measurement() -> Result<Measurement384, PlatformError> {
    let exe =
        std::env::current_exe().map_err(|source| PlatformError::ExecutableUnknown { source })?;
    let mut file = std::fs::File::open(&exe).map_err(|e| PlatformError::io(&exe, e))?;
    let mut hasher = Sha384::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| PlatformError::io(&exe, e))?;
    Ok(Measurement384(hasher.finalize().into()))
}

/// The simulated TEE: no hardware protection at all.
#[derive(Debug, Clone)]
pub struct Simulated {
    attester: SimulatedAttester,
}

impl Simulated {
    /// Reports [`executable_measurement`] of this process.
    pub fn for_this_executable() -> Result<Self, PlatformError> {
        Ok(Self::with_measurement(executable_measurement()?))
    }

    /// Reports `measurement`.
    pub fn with_measurement(measurement: Measurement384) -> Self {
        Self {
            attester: SimulatedAttester::new(measurement),
        }
    }

    /// Marks the evidence as coming from a debug TEE (for testing debug refusal).
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.attester = self.attester.with_debug(debug);
        self
    }

    /// The measurement reported.
    pub fn measurement(&self) -> Measurement384 {
        self.attester.measurement()
    }
}

impl Attester for Simulated {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sim
    }

    fn evidence(&self, report_data: &ReportData) -> Result<Vec<u8>, PlatformError> {
        Ok(self.attester.report(report_data, UnixTime::now()))
    }

    fn describe(&self) -> String {
        format!(
            "SIMULATED TEE (no hardware protection), measurement {}",
            self.measurement()
        )
    }
}
