//! The attestation core of teemesh, in RATS (RFC 9334) terms: parse **evidence** (SGX DCAP quote
//! v3, TDX quote v4/v5, SEV-SNP report, simulated report), load **endorsements** (Intel collateral,
//! AMD certificates), appraise under an **appraisal policy** with **reference values**, and produce
//! [`VerifiedClaims`] and a signed, expiring **attestation result** for relying parties.
//!
//! ```no_run
//! use attest::{AppraisalPolicy, Endorsements, UnixTime, Verifier};
//! let evidence = std::fs::read("quote")?;
//! let endorsements = Endorsements::load(&["collateral.json"])?;
//! let verifier = Verifier::new(AppraisalPolicy::default());
//! let verified = verifier.appraise_bytes(&evidence, &endorsements, UnixTime::now())?;
//! println!("{}", verified.primary_measurement_hex());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod appraisal;
pub mod baseline;
pub mod claims;
pub mod endorsements;
pub mod error;
pub mod evidence;
pub mod policy;
pub mod result;
pub mod time;
pub mod values;

pub use appraisal::{AppraisalCache, Verifier};
pub use claims::{Claims, PlatformClaims, PlatformKind, VerifiedClaims};
pub use endorsements::Endorsements;
pub use error::{Error, Result};
pub use evidence::{Evidence, SimulatedAttester};
pub use policy::AppraisalPolicy;
pub use result::{
    AttestationResult, ResultAlgorithm, ResultSigningKey, ResultVerifyingKey, issue_result_token,
};
pub use time::UnixTime;
pub use values::{Digest256, Measurement256, Measurement384, ReportData};
