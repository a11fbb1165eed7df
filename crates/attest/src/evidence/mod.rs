//! Evidence: what an attester's TEE signed about it. `Evidence::from_bytes` detects the format
//! (DCAP quote, SEV-SNP report, simulated report, or any of them as hex text) and parses it without
//! verifying anything; appraisal happens in [`crate::Verifier`].

pub mod dcap;
pub mod sim;
pub mod snp;

use crate::claims::{Claims, PlatformClaims, PlatformKind};
use crate::error::Error;
use crate::values::{Digest256, ReportData};

pub use dcap::{DcapQuote, PckCa, PckPlatform};
pub use sim::{SimReport, SimulatedAttester};
pub use snp::SnpReport;

/// The parsed form of the evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvidenceFormat {
    /// SGX or TDX DCAP quote.
    Dcap(DcapQuote),
    /// SEV-SNP attestation report.
    Snp(SnpReport),
    /// Simulated report.
    Sim(SimReport),
}

/// Raw evidence bytes together with their parsed, **unverified** contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    raw: Vec<u8>,
    digest: Digest256,
    format: EvidenceFormat,
}

/// Largest evidence we look at (a TDX quote with its PCK chain is ~5 KiB).
pub const MAX_EVIDENCE_LEN: usize = 64 * 1024;

impl Evidence {
    /// Detects the format and parses. Hex text (as produced by some tools) is decoded first.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_EVIDENCE_LEN.saturating_mul(2) {
            return Err(Error::EvidenceUnrecognized {
                len: bytes.len(),
                hint: format!("larger than any evidence format ({MAX_EVIDENCE_LEN} bytes max)"),
            });
        }
        if let Some(decoded) = decode_hex_text(bytes) {
            return Self::from_binary(decoded);
        }
        Self::from_binary(bytes.to_vec())
    }

    fn from_binary(mut raw: Vec<u8>) -> Result<Self, Error> {
        if raw.len() > MAX_EVIDENCE_LEN {
            return Err(Error::EvidenceUnrecognized {
                len: raw.len(),
                hint: format!("larger than any evidence format ({MAX_EVIDENCE_LEN} bytes max)"),
            });
        }
        let format = if sim::looks_like_report(&raw) {
            EvidenceFormat::Sim(SimReport::parse(&raw)?)
        } else if dcap::looks_like_quote(&raw) {
            EvidenceFormat::Dcap(DcapQuote::parse(&raw)?)
        } else if snp::looks_like_report(&raw) {
            EvidenceFormat::Snp(SnpReport::parse(&raw)?)
        } else {
            return Err(Error::EvidenceUnrecognized {
                len: raw.len(),
                hint: describe_unknown(&raw),
            });
        };
        // The digest names the signed statement: a quote's zero padding (the only thing its parser
        // lets follow it) is not part of it.
        if let EvidenceFormat::Dcap(quote) = &format {
            raw.truncate(quote.len);
        }
        Ok(Self {
            digest: Digest256::of(&raw),
            raw,
            format,
        })
    }

    /// The raw evidence bytes (binary, after hex decoding, without a DCAP quote's zero padding).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// SHA-256 of the raw bytes.
    pub fn digest(&self) -> Digest256 {
        self.digest
    }

    /// The parsed format.
    pub fn format(&self) -> &EvidenceFormat {
        &self.format
    }

    /// Which platform produced it.
    pub fn platform(&self) -> PlatformKind {
        match &self.format {
            EvidenceFormat::Dcap(q) => match q.body {
                dcap::QuoteBody::Sgx(_) => PlatformKind::Sgx,
                dcap::QuoteBody::Tdx(_) => PlatformKind::Tdx,
            },
            EvidenceFormat::Snp(_) => PlatformKind::Snp,
            EvidenceFormat::Sim(_) => PlatformKind::Sim,
        }
    }

    /// For a DCAP quote, the FMSPC and PCK CA named by the PCK certificate it carries (what a
    /// collateral fetcher asks Intel PCS for); `None` for other formats. **Unverified.**
    pub fn pck_platform(&self) -> Result<Option<PckPlatform>, Error> {
        match &self.format {
            EvidenceFormat::Dcap(_) => dcap::pck_platform(&self.raw).map(Some),
            EvidenceFormat::Snp(_) | EvidenceFormat::Sim(_) => Ok(None),
        }
    }

    /// The report_data the attester bound into the evidence (unverified until appraised).
    pub fn report_data(&self) -> &ReportData {
        match &self.format {
            EvidenceFormat::Dcap(q) => &q.report_data,
            EvidenceFormat::Snp(r) => &r.report_data,
            EvidenceFormat::Sim(r) => &r.report_data,
        }
    }

    /// The claims as the evidence states them, **before** any signature is checked. Useful to
    /// show what a refused piece of evidence said; never a basis for trust.
    pub fn unverified_claims(&self) -> Claims {
        let (platform, debug): (PlatformClaims, bool) = match &self.format {
            EvidenceFormat::Dcap(q) => (q.platform_claims(), q.debug),
            EvidenceFormat::Snp(r) => (r.platform_claims(), r.debug()),
            EvidenceFormat::Sim(r) => (r.platform_claims(), r.debug),
        };
        Claims {
            platform,
            report_data: *self.report_data(),
            debug,
            tcb: None,
            evidence_digest: self.digest,
        }
    }
}

/// Evidence given as hex text (optionally with whitespace), e.g. virtee's `*.hex` reports.
fn decode_hex_text(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.is_empty()
        || !bytes
            .iter()
            .all(|b| b.is_ascii_hexdigit() || b.is_ascii_whitespace())
    {
        return None;
    }
    let compact: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return None;
    }
    hex::decode(compact).ok()
}

/// For text that starts as hex but does not decode: what is wrong with it.
fn broken_hex_text(raw: &[u8]) -> Option<String> {
    let text: Vec<(usize, u8)> = raw
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_whitespace())
        .collect();
    // Printable text opening with at least 16 hex digits: meant as hex.
    if text.len() < 16
        || !text.iter().all(|(_, b)| b.is_ascii_graphic())
        || !text[..16].iter().all(|(_, b)| b.is_ascii_hexdigit())
    {
        return None;
    }
    Some(match text.iter().find(|(_, b)| !b.is_ascii_hexdigit()) {
        Some((at, b)) => format!(
            "this looks like hex text but byte {at} ({}) is not a hex digit",
            std::ascii::escape_default(*b)
        ),
        None => format!(
            "this looks like hex text but has an odd number of hex digits ({})",
            text.len()
        ),
    })
}

fn describe_unknown(raw: &[u8]) -> String {
    let head = hex::encode(&raw[..raw.len().min(8)]);
    if raw.is_empty() {
        "empty input".into()
    } else if raw.starts_with(b"-----BEGIN") {
        "this is PEM (a certificate?); pass it with --endorsements".into()
    } else if raw.first() == Some(&b'{') {
        "this is JSON (collateral?); pass it with --endorsements".into()
    } else if let Some(why) = broken_hex_text(raw) {
        why
    } else if raw.first() == Some(&0x30) {
        "this looks like DER (a certificate or CRL?); pass it with --endorsements".into()
    } else {
        format!(
            "starts with {head}; expected a DCAP quote (version 3/4/5, key type 2), a {}-byte SEV-SNP report (version 2/3/5) or a simulated report (TMSIMEV1)",
            snp::REPORT_LEN
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_refused_with_a_hint() {
        for (input, needle) in [
            (&b""[..], "empty"),
            (b"-----BEGIN CERTIFICATE-----", "PEM"),
            (b"{\"tcb_info\":1}", "JSON"),
            (b"\x00\x01\x02\x03\x04\x05\x06\x07\x08", "starts with 0001"),
        ] {
            let err = Evidence::from_bytes(input).unwrap_err();
            assert!(matches!(err, Error::EvidenceUnrecognized { .. }), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn truncated_quote_header_is_malformed_not_a_panic() {
        let mut q = vec![0u8; 60];
        q[0] = 3;
        q[2] = 2;
        let err = Evidence::from_bytes(&q).unwrap_err();
        assert!(matches!(err, Error::EvidenceMalformed { .. }), "{err}");
    }
}
