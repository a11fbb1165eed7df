//! The check every backend makes before handing evidence out: it parses, it is from the expected
//! platform, and it binds the report data that was asked for. Cheap, and it turns a stale or
//! raced report into an error at the attester instead of a puzzling refusal at the verifier.

use attest::{Evidence, PlatformKind, ReportData};

use crate::error::PlatformError;

pub(crate) fn check_evidence(
    raw: &[u8],
    expected: PlatformKind,
    report_data: &ReportData,
    what: &str,
) -> Result<(), PlatformError> {
    let evidence =
        Evidence::from_bytes(raw).map_err(|source| PlatformError::EvidenceUnparseable {
            what: what.to_owned(),
            source,
        })?;
    if evidence.platform() != expected {
        return Err(PlatformError::PlatformMismatch {
            expected,
            found: evidence.platform(),
            what: what.to_owned(),
        });
    }
    if evidence.report_data() != report_data {
        return Err(PlatformError::ReportDataMismatch {
            expected: Box::new(*report_data),
            found: Box::new(*evidence.report_data()),
            what: what.to_owned(),
        });
    }
    Ok(())
}
