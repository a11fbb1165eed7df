//! Appraising SGX/TDX quotes: our own checks of the collateral's validity windows (so expiry is
//! reported with dates), then dcap-qvl for the PCK chain, CRLs, QE identity, signatures and the TCB
//! level, with its errors sorted into our variants.

use dcap_qvl::verify::QuoteVerifier;

use crate::claims::{PlatformKind, TcbVerdict};
use crate::endorsements::DcapCollateral;
use crate::endorsements::dcap::Window;
use crate::error::Error;
use crate::time::UnixTime;

/// What the DCAP checks established.
pub(crate) struct DcapOutcome {
    pub(crate) tcb: TcbVerdict,
    pub(crate) collateral_issued: UnixTime,
    pub(crate) valid_until: UnixTime,
}

fn expired(what: &str, w: Window, now: UnixTime) -> Result<(), Error> {
    if now > w.next_update {
        return Err(Error::CollateralExpired {
            what: what.to_owned(),
            next_update: w.next_update,
            now,
        });
    }
    Ok(())
}

fn not_yet_valid(what: &str, w: Window, now: UnixTime) -> Result<(), Error> {
    if now < w.issued {
        return Err(Error::CollateralNotYetValid {
            what: what.to_owned(),
            issued: w.issued,
            now,
        });
    }
    Ok(())
}

/// Checks validity windows in the order Intel's verification walks them: the root CA CRL (checked
/// against the root first), the TCB info and QE identity windows, then the PCK CRL. When several
/// items are out of date, the first in this order is reported.
pub(crate) fn check_windows(c: &DcapCollateral, now: UnixTime) -> Result<(), Error> {
    expired("root CA CRL", c.root_ca_crl, now)?;
    not_yet_valid("TCB info", c.tcb_info, now)?;
    expired("TCB info", c.tcb_info, now)?;
    not_yet_valid("QE identity", c.qe_identity, now)?;
    expired("QE identity", c.qe_identity, now)?;
    expired("PCK CRL", c.pck_crl, now)?;
    not_yet_valid("root CA CRL", c.root_ca_crl, now)?;
    not_yet_valid("PCK CRL", c.pck_crl, now)
}

/// Verifies a quote with dcap-qvl against Intel's built-in root. Debug enclaves are let through
/// here on purpose: whether debug is acceptable is the policy's decision, made afterwards.
pub(crate) fn verify_quote(
    raw: &[u8],
    platform: PlatformKind,
    collateral: &DcapCollateral,
    now: UnixTime,
) -> Result<DcapOutcome, Error> {
    check_windows(collateral, now)?;
    let report = QuoteVerifier::new_prod()
        .allow_debug(true)
        .verify(raw, &collateral.collateral, now.as_secs())
        .map_err(|e| classify(platform, &e))?;
    Ok(DcapOutcome {
        tcb: TcbVerdict {
            status: report.status,
            advisory_ids: report.advisory_ids,
        },
        collateral_issued: collateral
            .tcb_info
            .issued
            .min(collateral.qe_identity.issued),
        valid_until: collateral.valid_until(),
    })
}

/// Sorts dcap-qvl's (string) errors into distinct variants. The mapping is pinned by the fixture
/// twins in tests/dcap.rs, and dcap-qvl is pinned to an exact version.
pub(crate) fn classify(platform: PlatformKind, err: &dyn std::fmt::Display) -> Error {
    let reason = crate::error::one_line(format!("{err:#}"));
    let lower = reason.to_ascii_lowercase();
    if lower.contains("isv enclave report signature") {
        Error::EvidenceSignatureInvalid { platform, reason }
    } else if lower.contains("no matching tcb level") {
        Error::NoMatchingTcbLevel
    } else if lower.contains("tcb status is invalid: revoked") {
        Error::TcbRevoked
    } else if lower.contains("revoked") {
        Error::CertificateRevoked {
            chain: "PCK".into(),
            reason,
        }
    } else if lower.contains("qe_report")
        || lower.contains("qe report")
        || lower.contains("qe identity")
    {
        Error::QuotingEnclaveInvalid { reason }
    } else if lower.contains("certificate")
        || lower.contains("cert chain")
        || lower.contains("root ca")
        || lower.contains("issuer")
        || lower.contains("pck")
    {
        Error::CertificateChainInvalid {
            chain: "PCK ← PCK CA ← Intel SGX Root CA".into(),
            reason,
        }
    } else {
        Error::DcapVerification { reason }
    }
}
