//! The libraries this crate builds on, called directly with no teemesh code in between, so
//! benchmarks can report our appraisal time as a ratio to theirs measured in the same run. Nothing
//! here applies a policy: these are baselines, not verifiers to rely on.

use sev::certs::snp::Verifiable as _;
use sev::parser::ByteParser as _;

/// dcap-qvl's own verification of a quote against pre-parsed collateral.
pub struct DcapQvlBaseline {
    collateral: dcap_qvl::QuoteCollateralV3,
}

impl DcapQvlBaseline {
    /// Parses `QuoteCollateralV3` JSON once.
    pub fn new(collateral_json: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(collateral_json)
            .map(|collateral| Self { collateral })
            .map_err(|e| e.to_string())
    }

    /// `dcap_qvl::verify::QuoteVerifier::verify`; returns the TCB status.
    pub fn verify(&self, quote: &[u8], now_secs: u64) -> Result<String, String> {
        dcap_qvl::verify::QuoteVerifier::new_prod()
            .verify(quote, &self.collateral, now_secs)
            .map(|r| r.status)
            .map_err(|e| format!("{e:#}"))
    }
}

/// The sev crate's verification of a report against an ARK → ASK → VCEK chain.
pub struct SevBaseline {
    chain: sev::certs::snp::Chain,
}

impl SevBaseline {
    /// Builds the chain once from the VCEK (DER) and an ASK+ARK PEM bundle (ASK first).
    pub fn new(vcek_der: &[u8], ask_ark_pem: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(ask_ark_pem).map_err(|e| e.to_string())?;
        let blocks = crate::endorsements::pem_blocks(text);
        let (Some(ask), Some(ark)) = (blocks.first(), blocks.get(1)) else {
            return Err("expected ASK and ARK certificates".into());
        };
        let ca = sev::certs::snp::ca::Chain::from_pem(ark.as_bytes(), ask.as_bytes())
            .map_err(|e| e.to_string())?;
        let vek = sev::certs::snp::Certificate::from_der(vcek_der).map_err(|e| e.to_string())?;
        Ok(Self {
            chain: sev::certs::snp::Chain { ca, vek },
        })
    }

    /// Parses the report and verifies chain and signature.
    pub fn verify(&self, report: &[u8]) -> Result<(), String> {
        let report = sev::firmware::guest::AttestationReport::from_bytes(report)
            .map_err(|e| e.to_string())?;
        (&self.chain, &report).verify().map_err(|e| e.to_string())
    }
}
