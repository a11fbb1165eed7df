//! AMD SEV-SNP attestation reports (versions 2, 3 and 5). Fields are read at their fixed offsets
//! (AMD SEV-SNP ABI spec, table "ATTESTATION_REPORT"); the signed part is bytes 0..0x2A0.

use crate::claims::{PlatformClaims, SnpClaims, SnpSigningKey, SnpTcb};
use crate::error::Error;
use crate::values::{Measurement384, ReportData};

/// Size of every SNP attestation report version we accept.
pub const REPORT_LEN: usize = 0x4A0;
/// End of the signed part of the report.
pub const SIGNED_LEN: usize = 0x2A0;
/// Guest policy bit 19: debugging allowed.
pub const POLICY_DEBUG: u64 = 1 << 19;
/// End of the signature's r and s (72 bytes each); the rest of the 512-byte signature field is
/// reserved.
const SIGNATURE_END: usize = SIGNED_LEN + 2 * 72;
/// Signature algorithm 1: ECDSA P-384 with SHA-384.
const SIG_ALGO_ECDSA_P384_SHA384: u32 = 1;
const FORMAT: &str = "SEV-SNP report";

/// A parsed (not yet verified) SEV-SNP attestation report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnpReport {
    /// The claims read from the report (product unknown until the chain verifies).
    pub claims: SnpClaims,
    /// User data.
    pub report_data: ReportData,
    /// CPUID family (report v3+), used to pick the product and TCB layout.
    pub cpuid_family: Option<u8>,
    /// CPUID model (report v3+).
    pub cpuid_model: Option<u8>,
    /// Signature r and s as big-endian P-384 scalars.
    pub signature_r: [u8; 48],
    /// See `signature_r`.
    pub signature_s: [u8; 48],
}

/// True when `bytes` have the size (or more: the parser says what follows) and version of an SNP
/// report (for format detection).
pub(crate) fn looks_like_report(bytes: &[u8]) -> bool {
    bytes.len() >= REPORT_LEN
        && matches!(
            u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            2 | 3 | 5
        )
}

fn take<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N], Error> {
    bytes
        .get(offset..offset + N)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .ok_or_else(|| Error::malformed(FORMAT, format!("truncated at offset {offset:#x}")))
}

fn u32_at(bytes: &[u8], offset: usize) -> Result<u32, Error> {
    take::<4>(bytes, offset).map(u32::from_le_bytes)
}

/// SNP signatures store r and s as 72-byte little-endian integers; P-384 needs 48 big-endian
/// bytes, and the 24 high bytes must be zero.
fn scalar_from_le72(raw: [u8; 72], which: &str) -> Result<[u8; 48], Error> {
    if raw[48..].iter().any(|b| *b != 0) {
        return Err(Error::malformed(
            FORMAT,
            format!("signature {which} exceeds 384 bits"),
        ));
    }
    let mut be = [0u8; 48];
    for (dst, src) in be.iter_mut().zip(raw[..48].iter().rev()) {
        *dst = *src;
    }
    Ok(be)
}

/// Product line from CPUID family/model, for v3+ reports.
pub(crate) fn product_from_cpuid(family: u8, model: u8) -> Option<&'static str> {
    match (family, model) {
        (0x19, 0x00..=0x0F) => Some("Milan"),
        (0x19, 0x10..=0x1F) | (0x19, 0xA0..=0xAF) => Some("Genoa"),
        (0x1A, 0x00..=0x11) => Some("Turin"),
        _ => None,
    }
}

impl SnpReport {
    /// Parses a report; refuses unknown versions and signature algorithms, and any byte no
    /// signature covers: after the report, or in the signature field's reserved part.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > REPORT_LEN {
            return Err(Error::EvidenceTrailingBytes {
                format: FORMAT,
                after: "the 1184-byte report",
                trailing: bytes.len() - REPORT_LEN,
            });
        }
        if bytes.len() != REPORT_LEN {
            return Err(Error::malformed(
                FORMAT,
                format!("{} bytes, a report is exactly {REPORT_LEN}", bytes.len()),
            ));
        }
        let version = u32_at(bytes, 0)?;
        if !matches!(version, 2 | 3 | 5) {
            return Err(Error::malformed(
                FORMAT,
                format!("version {version}, expected 2, 3 or 5"),
            ));
        }
        let sig_algo = u32_at(bytes, 0x34)?;
        if sig_algo != SIG_ALGO_ECDSA_P384_SHA384 {
            return Err(Error::malformed(
                FORMAT,
                format!("signature algorithm {sig_algo}, only 1 (ECDSA P-384/SHA-384) exists"),
            ));
        }
        if bytes[SIGNATURE_END..].iter().any(|b| *b != 0) {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "reserved bytes {SIGNATURE_END:#x}..{REPORT_LEN:#x} of the signature field are set: no signature covers them"
                ),
            ));
        }
        let key_info = u32_at(bytes, 0x48)?;
        let signing_key = match (key_info >> 2) & 0x7 {
            0 => SnpSigningKey::Vcek,
            1 => SnpSigningKey::Vlek,
            7 => {
                return Err(Error::malformed(
                    FORMAT,
                    "report is unsigned (signing key 7: none)",
                ));
            }
            other => {
                return Err(Error::malformed(
                    FORMAT,
                    format!("reserved signing key value {other}"),
                ));
            }
        };
        let (cpuid_family, cpuid_model) = if version >= 3 {
            (Some(bytes[0x188]), Some(bytes[0x189]))
        } else {
            (None, None)
        };
        let turin = cpuid_family == Some(0x1A);
        let product = match (cpuid_family, cpuid_model) {
            (Some(f), Some(m)) => product_from_cpuid(f, m).map(str::to_owned),
            _ => None,
        };
        let claims = SnpClaims {
            report_version: version,
            guest_svn: u32_at(bytes, 4)?,
            policy: u64::from_le_bytes(take::<8>(bytes, 8)?),
            family_id: hex::encode(take::<16>(bytes, 0x10)?),
            image_id: hex::encode(take::<16>(bytes, 0x20)?),
            vmpl: u32_at(bytes, 0x30)?,
            measurement: Measurement384(take::<48>(bytes, 0x90)?),
            host_data: hex::encode(take::<32>(bytes, 0xC0)?),
            id_key_digest: hex::encode(take::<48>(bytes, 0xE0)?),
            author_key_digest: hex::encode(take::<48>(bytes, 0x110)?),
            reported_tcb: SnpTcb::decode(take::<8>(bytes, 0x180)?, turin),
            chip_id: hex::encode(take::<64>(bytes, 0x1A0)?),
            signing_key,
            product,
        };
        Ok(Self {
            report_data: ReportData(take::<64>(bytes, 0x50)?),
            claims,
            cpuid_family,
            cpuid_model,
            signature_r: scalar_from_le72(take::<72>(bytes, SIGNED_LEN)?, "r")?,
            signature_s: scalar_from_le72(take::<72>(bytes, SIGNED_LEN + 72)?, "s")?,
        })
    }

    /// Whether the guest policy allows debugging.
    pub fn debug(&self) -> bool {
        self.claims.policy & POLICY_DEBUG != 0
    }

    /// The platform claims.
    pub fn platform_claims(&self) -> PlatformClaims {
        PlatformClaims::Snp(self.claims.clone())
    }
}
