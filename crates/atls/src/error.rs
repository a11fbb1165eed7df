//! Why an attested TLS connection was refused or failed.

use attest::UnixTime;

use crate::ext::ExtensionError;

/// Every way an attested connection can fail, each with a one-line reason.
#[derive(Debug, thiserror::Error)]
pub enum AtlsError {
    /// The peer's certificate carries no evidence and this side requires attestation.
    #[error("the peer presented no attestation evidence and this endpoint requires it")]
    NoEvidence,
    /// The certificate or its evidence extension could not be read.
    #[error(transparent)]
    Extension(#[from] ExtensionError),
    /// The evidence's `pubkey-hash` claim is not the hash of the certificate's key: the
    /// extension was copied from another certificate.
    #[error(
        "the evidence does not bind this certificate's key (pubkey-hash differs): it was made for another key"
    )]
    KeyNotBound,
    /// The evidence's report_data does not commit to the claims buffer (and so to the key).
    #[error(
        "the evidence's report_data does not bind the certificate's key and claims: got {actual}, expected {expected}"
    )]
    ReportDataNotBound {
        /// What binding the claims would require.
        expected: String,
        /// What the evidence carries.
        actual: String,
    },
    /// The evidence was refused by the appraisal.
    #[error("appraisal refused the peer's evidence: {0}")]
    Appraisal(#[from] attest::Error),
    /// The claims carry no `issued-at`, which max-age freshness needs.
    #[error("the evidence carries no issued-at claim, so its age cannot be checked")]
    MissingIssuedAt,
    /// The evidence is older than the policy allows.
    #[error("the peer's evidence is {age} s old, more than the {max} s the policy allows")]
    EvidenceTooOld {
        /// Age in seconds.
        age: u64,
        /// Maximum in seconds.
        max: u64,
    },
    /// The evidence claims to come from the future.
    #[error("the peer's evidence claims to be issued at {issued_at}, in the future")]
    EvidenceFromFuture {
        /// The claimed time.
        issued_at: UnixTime,
    },
    /// The certificate's validity window has ended.
    #[error("the peer's certificate expired at {not_after}")]
    CertificateExpired {
        /// End of the window.
        not_after: UnixTime,
    },
    /// The certificate's validity window has not begun.
    #[error("the peer's certificate is not valid before {not_before}")]
    CertificateNotYetValid {
        /// Start of the window.
        not_before: UnixTime,
    },
    /// Session evidence carries another session's exporter value: replayed.
    #[error(
        "the peer's session evidence is bound to another TLS session (nonce differs from this session's exporter): replayed"
    )]
    SessionNonceMismatch,
    /// The session-freshness exchange failed.
    #[error("session attestation failed: {0}")]
    SessionFrame(String),
    /// The TLS handshake failed (for a refused peer, the reason is inside).
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    /// rustls refused a configuration or an operation.
    #[error("TLS error: {0}")]
    Tls(#[from] rustls::Error),
    /// Creating the identity failed.
    #[error("cannot create the attested identity: {0}")]
    Identity(String),
    /// The platform could not produce evidence.
    #[error("cannot obtain evidence: {0}")]
    Platform(#[from] platform::PlatformError),
    /// A node signature does not verify.
    #[error("the node signature is not valid: {0}")]
    NodeSignature(String),
    /// Module claims could not be read or written.
    #[error("module claims are malformed: {0}")]
    ModuleClaims(String),
    /// Module claims name another node's certificate than the one presented.
    #[error(
        "the module claims were issued for node certificate {claimed}, not for the one presented ({actual})"
    )]
    ModuleClaimsOtherNode {
        /// `node_cert_sha256` in the claims.
        claimed: String,
        /// SHA-256 of the certificate presented.
        actual: String,
    },
    /// Module claims state another platform than the node's evidence proves.
    #[error("the module claims say platform {claimed}, but the node's evidence proves {proven}")]
    ModuleClaimsPlatform {
        /// Platform in the claims.
        claimed: attest::PlatformKind,
        /// Platform of the appraised evidence.
        proven: attest::PlatformKind,
    },
    /// The module is not the one the relying party expects.
    #[error("module measurement {actual} is not the expected {expected}")]
    ModuleMeasurementMismatch {
        /// Reference value.
        expected: String,
        /// Measurement in the claims.
        actual: String,
    },
    /// Reading or writing the connection failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

impl AtlsError {
    pub(crate) fn handshake(e: std::io::Error) -> Self {
        // tokio-rustls wraps rustls errors in io::Error, and rustls wraps our refusal in
        // `OtherError`: dig it out so the reason reads as ours, not as nested Debug output.
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) = tls
                && let Some(ours) = other.0.downcast_ref::<AtlsError>()
            {
                return Self::Handshake(format!("the peer's attestation was refused: {ours}"));
            }
            return Self::Handshake(match tls {
                rustls::Error::AlertReceived(alert) => {
                    format!("the peer refused this side (TLS alert {alert:?}); its log says why")
                }
                other => other.to_string(),
            });
        }
        Self::Handshake(e.to_string())
    }
}
