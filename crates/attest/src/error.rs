//! The one error type of the attestation core: every refusal names what was wrong with the input
//! and what was expected, so a relying party can log a reason an operator understands.

use crate::claims::PlatformKind;
use crate::time::UnixTime;

/// Why evidence, endorsements, a policy or an attestation result was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not SGX, TDX, SEV-SNP or simulated evidence.
    #[error("unrecognised evidence ({len} bytes): {hint}")]
    EvidenceUnrecognized {
        /// Length of the input.
        len: usize,
        /// What was seen instead.
        hint: String,
    },
    /// The evidence was recognised but its structure is broken.
    #[error("malformed {format}: {reason}")]
    EvidenceMalformed {
        /// The detected format.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Bytes follow the end of the evidence's own structure (or of a structure nested in it).
    /// No signature covers them, so accepting them would give one signed statement many
    /// digests.
    #[error(
        "malformed {format}: {trailing} trailing byte{} after {after}: no signature covers them, so nothing may follow it",
        plural(*.trailing)
    )]
    EvidenceTrailingBytes {
        /// The detected format.
        format: &'static str,
        /// The structure the bytes follow (`the signature data`, `the 1184-byte report`).
        after: &'static str,
        /// How many bytes follow it.
        trailing: usize,
    },
    /// The endorsements needed to appraise this evidence were not supplied.
    #[error("missing endorsements for {platform}: {what}")]
    EndorsementsMissing {
        /// Platform of the evidence.
        platform: PlatformKind,
        /// What to supply.
        what: String,
    },
    /// An endorsement file could not be understood.
    #[error("malformed endorsement {source_name}: {reason}")]
    EndorsementMalformed {
        /// The file or field the endorsement came from.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// Collateral (TCB info, QE identity, CRL) is not valid yet at the verification time.
    #[error("{what} is not valid yet: issued {issued}, verification time {now}")]
    CollateralNotYetValid {
        /// Which collateral.
        what: String,
        /// Its issue date.
        issued: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// Collateral (TCB info, QE identity, CRL, certificate) has expired at the verification time.
    #[error("{what} expired: next update was due {next_update}, verification time {now}")]
    CollateralExpired {
        /// Which collateral.
        what: String,
        /// When it stopped being valid.
        next_update: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// Collateral is older than the policy's `max_collateral_age`.
    #[error("{what} is {age_secs} s old, policy max_collateral_age is {max_secs} s")]
    CollateralTooOld {
        /// Which collateral.
        what: String,
        /// Its age at verification time.
        age_secs: u64,
        /// The policy limit.
        max_secs: u64,
    },
    /// A certificate chain does not lead to the vendor root, or a link does not verify.
    #[error("certificate chain invalid ({chain}): {reason}")]
    CertificateChainInvalid {
        /// Which chain (e.g. "PCK", "VCEK ← ASK ← ARK").
        chain: String,
        /// What failed.
        reason: String,
    },
    /// A certificate in the chain is revoked by a CRL.
    #[error("certificate revoked ({chain}): {reason}")]
    CertificateRevoked {
        /// Which chain.
        chain: String,
        /// Details.
        reason: String,
    },
    /// The signature over the evidence body does not verify: the body or signature was altered.
    #[error("{platform} evidence signature invalid: {reason}")]
    EvidenceSignatureInvalid {
        /// Platform of the evidence.
        platform: PlatformKind,
        /// What failed.
        reason: String,
    },
    /// The quoting enclave's report or identity did not verify (DCAP).
    #[error("quoting enclave not trusted: {reason}")]
    QuotingEnclaveInvalid {
        /// What failed.
        reason: String,
    },
    /// The platform's TCB matches no level in the TCB info (DCAP).
    #[error("no matching TCB level: the platform TCB matches no level in the TCB info")]
    NoMatchingTcbLevel,
    /// The platform's TCB is revoked: refused whatever the policy says.
    #[error("TCB status is Revoked")]
    TcbRevoked,
    /// Any other refusal by the DCAP quote verification library.
    #[error("DCAP quote verification failed: {reason}")]
    DcapVerification {
        /// The library's reason.
        reason: String,
    },
    /// The TCB status is not one the policy accepts.
    #[error("TCB status {status} is not accepted (policy accepts {accepted:?})")]
    TcbStatusNotAccepted {
        /// The status of the platform.
        status: String,
        /// The statuses the policy accepts.
        accepted: Vec<String>,
    },
    /// The platform is affected by security advisories the policy does not allow.
    #[error("advisories not allowed by policy: {ids:?}")]
    AdvisoriesNotAllowed {
        /// The advisories not allowed.
        ids: Vec<String>,
    },
    /// The evidence comes from a debug TEE and the policy does not say `allow_debug`.
    #[error("{platform} evidence is from a debug TEE; the policy does not set allow_debug")]
    DebugNotAllowed {
        /// Platform of the evidence.
        platform: PlatformKind,
    },
    /// Simulated evidence and the policy does not say `allow_simulated`.
    #[error("simulated evidence is refused: the policy does not set allow_simulated")]
    SimulatedNotAllowed,
    /// A measurement or other reference value differs from the policy's.
    #[error("reference value mismatch for {field}: got {actual}, policy expects {expected}")]
    ReferenceValueMismatch {
        /// Which claim.
        field: &'static str,
        /// The value in the evidence.
        actual: String,
        /// What the policy accepts.
        expected: String,
    },
    /// A security version is below the policy's minimum.
    #[error("{field} is {actual}, policy requires at least {minimum}")]
    SecurityVersionTooLow {
        /// Which version number.
        field: &'static str,
        /// The value in the evidence.
        actual: u64,
        /// The policy minimum.
        minimum: u64,
    },
    /// The SEV-SNP guest policy has bits the appraisal policy forbids or lacks bits it requires.
    #[error("SEV-SNP guest policy {actual:#x} violates the appraisal policy: {reason}")]
    SnpGuestPolicyViolation {
        /// The guest policy in the report.
        actual: u64,
        /// Which rule failed.
        reason: String,
    },
    /// The SEV-SNP report was signed by a different kind of key (VCEK vs VLEK) than was offered.
    #[error(
        "SEV-SNP report is signed by a {report_says}, but the endorsement offered is a {offered}"
    )]
    SnpSigningKeyMismatch {
        /// What the report's signing_key field says.
        report_says: String,
        /// What kind of certificate was offered.
        offered: String,
    },
    /// The VCEK/VLEK certificate's TCB or chip id does not match the report.
    #[error("SEV-SNP endorsement key does not match the report: {reason}")]
    SnpEndorsementMismatch {
        /// What differs.
        reason: String,
    },
    /// The evidence's report_data differs from what the policy or the caller expects.
    #[error("report_data mismatch: got {actual}, expected {expected}")]
    ReportDataMismatch {
        /// In the evidence.
        actual: String,
        /// Expected.
        expected: String,
    },
    /// Evidence is older than allowed.
    #[error("evidence is {age_secs} s old, at most {max_secs} s allowed")]
    EvidenceTooOld {
        /// Age at verification time.
        age_secs: u64,
        /// The limit.
        max_secs: u64,
    },
    /// Evidence claims to be produced after the verification time.
    #[error("evidence timestamp {timestamp} is after the verification time {now}")]
    EvidenceFromFuture {
        /// The evidence's timestamp.
        timestamp: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// The appraisal policy text is invalid.
    #[error("invalid appraisal policy: {reason}")]
    PolicyInvalid {
        /// What is wrong.
        reason: String,
    },
    /// A hex value has the wrong length or characters.
    #[error("invalid {what}: {reason}")]
    InvalidValue {
        /// Which value.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// An attestation result token is malformed.
    #[error("malformed attestation result token: {reason}")]
    TokenMalformed {
        /// What is wrong.
        reason: String,
    },
    /// The attestation result token's signature does not verify with the verifier key.
    #[error("attestation result token signature invalid: {reason}")]
    TokenSignatureInvalid {
        /// What failed.
        reason: String,
    },
    /// The attestation result token has expired.
    #[error("attestation result token expired at {expired}, verification time {now}")]
    TokenExpired {
        /// Its `exp`.
        expired: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// The attestation result token is not valid yet.
    #[error("attestation result token issued at {issued}, after the verification time {now}")]
    TokenNotYetValid {
        /// Its `iat`.
        issued: UnixTime,
        /// Verification time.
        now: UnixTime,
    },
    /// A key file could not be read or parsed.
    #[error("invalid key {what}: {reason}")]
    KeyInvalid {
        /// Which key.
        what: String,
        /// What is wrong.
        reason: String,
    },
    /// Reading a file failed.
    #[error("cannot read {path}: {reason}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
}

/// `text` as one printable line: line breaks and tabs become spaces, other control characters
/// are escaped. Error messages quote untrusted input (a PEM label, a TOML line), and a log line
/// must not be split or carry terminal escapes because of it.
pub(crate) fn one_line(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.trim().chars() {
        match c {
            '\n' | '\r' | '\t' => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c if c.is_control() => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl Error {
    pub(crate) fn malformed(format: &'static str, reason: impl Into<String>) -> Self {
        Self::EvidenceMalformed {
            format,
            reason: one_line(reason.into()),
        }
    }

    pub(crate) fn endorsement(source_name: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::EndorsementMalformed {
            source_name: one_line(source_name.into()),
            reason: one_line(reason.into()),
        }
    }

    pub(crate) fn io(path: &std::path::Path, err: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            reason: err.to_string(),
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn one_line_removes_breaks_and_escapes_controls() {
        assert_eq!(one_line("a\nb\r\nc\td"), "a b c d");
        assert_eq!(one_line("x\u{0}y\u{1b}[31m"), "x\\u{0}y\\u{1b}[31m");
        assert!(!one_line("\u{7f}\u{85}").chars().any(char::is_control));
    }
}
