//! The simulated TEE's evidence: a report signed by a *simulated vendor root* whose private key is
//! public (derived from a fixed, published seed). Anyone can forge it, which is the point: it lets
//! laptops and CI exercise every attestation path, and it is refused unless a policy says
//! `allow_simulated`, and every result produced from it says `simulated: true`.
//!
//! Layout (200 bytes, little-endian):
//! `magic "TMSIMEV1" | version u16 = 1 | flags u16 (bit 0 debug) | reserved u32 = 0 |
//!  timestamp u64 | measurement [48] | report_data [64] | Ed25519 signature [64]` — the signature
//! covers every byte before it.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::claims::{PlatformClaims, PlatformKind, SimClaims};
use crate::error::Error;
use crate::time::UnixTime;
use crate::values::{Measurement384, ReportData};

/// First bytes of every simulated report.
pub const MAGIC: &[u8; 8] = b"TMSIMEV1";
/// Total length of a simulated report.
pub const REPORT_LEN: usize = 200;
const SIGNED_LEN: usize = REPORT_LEN - 64;
const VERSION: u16 = 1;
const FLAG_DEBUG: u16 = 1;
const FORMAT: &str = "simulated report";
/// The published seed of the simulated vendor root. Not a secret, by design.
const INSECURE_SIM_ROOT_SEED_LABEL: &[u8] =
    b"teemesh simulated TEE vendor root -- INSECURE, public, for tests and laptops only";

/// A parsed (not yet verified) simulated report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// Claims of the report.
    pub claims: SimClaims,
    /// User data.
    pub report_data: ReportData,
    /// Debug flag.
    pub debug: bool,
    signed: [u8; SIGNED_LEN],
    signature: [u8; 64],
}

/// True when `bytes` start with the simulated report magic.
pub(crate) fn looks_like_report(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC)
}

fn simulated_vendor_root() -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(INSECURE_SIM_ROOT_SEED_LABEL).into())
}

/// The public key of the simulated vendor root, which verifiers trust for simulated evidence
/// (only under `allow_simulated`).
pub fn simulated_vendor_root_public_key() -> VerifyingKey {
    simulated_vendor_root().verifying_key()
}

/// Issues simulated reports, as a TEE's firmware would. The name says what it is: nothing it
/// produces is protected by hardware.
#[derive(Debug, Clone)]
pub struct SimulatedAttester {
    measurement: Measurement384,
    debug: bool,
}

impl SimulatedAttester {
    /// An attester reporting `measurement` (normally SHA-384 of the running executable).
    pub fn new(measurement: Measurement384) -> Self {
        Self {
            measurement,
            debug: false,
        }
    }

    /// Marks the reports as coming from a debug TEE (for testing debug refusal).
    pub fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// The measurement this attester reports.
    pub fn measurement(&self) -> Measurement384 {
        self.measurement
    }

    /// Produces a signed simulated report binding `report_data`, stamped `now`.
    pub fn report(&self, report_data: &ReportData, now: UnixTime) -> Vec<u8> {
        let mut out = Vec::with_capacity(REPORT_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let flags = if self.debug { FLAG_DEBUG } else { 0 };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&now.as_secs().to_le_bytes());
        out.extend_from_slice(self.measurement.as_bytes());
        out.extend_from_slice(report_data.as_bytes());
        let signature = simulated_vendor_root().sign(&out);
        out.extend_from_slice(&signature.to_bytes());
        out
    }
}

impl SimReport {
    /// Parses a simulated report.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > REPORT_LEN {
            return Err(Error::EvidenceTrailingBytes {
                format: FORMAT,
                after: "the 200-byte report",
                trailing: bytes.len() - REPORT_LEN,
            });
        }
        if bytes.len() != REPORT_LEN {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "{} bytes, a simulated report is exactly {REPORT_LEN}",
                    bytes.len()
                ),
            ));
        }
        if !bytes.starts_with(MAGIC) {
            return Err(Error::malformed(FORMAT, "missing TMSIMEV1 magic"));
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(Error::malformed(
                FORMAT,
                format!("version {version}, expected {VERSION}"),
            ));
        }
        let flags = u16::from_le_bytes([bytes[10], bytes[11]]);
        if flags & !FLAG_DEBUG != 0 || bytes[12..16] != [0; 4] {
            return Err(Error::malformed(
                FORMAT,
                format!("unknown flags {flags:#x} or reserved bytes set"),
            ));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&bytes[16..24]);
        let mut signed = [0u8; SIGNED_LEN];
        signed.copy_from_slice(&bytes[..SIGNED_LEN]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[SIGNED_LEN..]);
        Ok(Self {
            claims: SimClaims {
                timestamp: UnixTime(u64::from_le_bytes(ts)),
                measurement: Measurement384::from_slice(&bytes[24..72])?,
            },
            report_data: ReportData::from_slice(&bytes[72..136])?,
            debug: flags & FLAG_DEBUG != 0,
            signed,
            signature,
        })
    }

    /// Checks the signature against the simulated vendor root.
    pub fn verify_signature(&self) -> Result<(), Error> {
        simulated_vendor_root_public_key()
            .verify(&self.signed, &Signature::from_bytes(&self.signature))
            .map_err(|e| Error::EvidenceSignatureInvalid {
                platform: PlatformKind::Sim,
                reason: format!("not signed by the simulated vendor root: {e}"),
            })
    }

    /// The platform claims.
    pub fn platform_claims(&self) -> PlatformClaims {
        PlatformClaims::Sim(self.claims.clone())
    }
}
