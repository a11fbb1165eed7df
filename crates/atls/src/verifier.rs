//! Appraising a peer: its certificate's evidence under the appraisal policy, the binding of that
//! evidence to the certificate's key, and its age; plugged into rustls as both the server and the
//! client certificate verifier, so a peer that fails never completes the handshake.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime as RustlsTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use attest::{AppraisalPolicy, Endorsements, UnixTime, VerifiedClaims, Verifier};

use crate::error::AtlsError;
use crate::ext::{BoundClaims, CertificateEvidence, ParsedCertificate, parse_certificate};

/// Seconds of clock skew tolerated between attester and verifier.
const CLOCK_SKEW_SECS: u64 = 60;

/// How a verifier makes sure a peer's evidence is recent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Right after the handshake, each attested side sends new evidence whose claims carry a TLS
    /// exporter value of this session: it cannot have been produced before the session, nor be
    /// replayed into another one. Costs one evidence generation and appraisal per connection.
    PerSession,
    /// The certificate's evidence may be reused across sessions while it is younger than this
    /// many seconds (its `issued-at` claim, bound into report_data).
    MaxAge(u64),
}

impl Freshness {
    /// The mode a policy asks for: `max_evidence_age` set means [`Freshness::MaxAge`], otherwise
    /// the stricter [`Freshness::PerSession`].
    pub fn from_policy(policy: &AppraisalPolicy) -> Self {
        match policy.max_evidence_age {
            Some(age) => Self::MaxAge(age.0),
            None => Self::PerSession,
        }
    }
}

impl std::fmt::Display for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PerSession => f.write_str("per-session evidence bound to the TLS exporter"),
            Self::MaxAge(s) => write!(f, "certificate evidence at most {s} s old"),
        }
    }
}

/// The time used for appraisals: the system clock, or a fixed instant (tests, old fixtures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// `UnixTime::now()`.
    System,
    /// Always this instant.
    Fixed(UnixTime),
}

impl Clock {
    /// The current time by this clock.
    pub fn now(self) -> UnixTime {
        match self {
            Self::System => UnixTime::now(),
            Self::Fixed(t) => t,
        }
    }
}

/// What the application learns about the other end of a connection.
#[derive(Debug, Clone)]
pub enum Peer {
    /// The peer proved what it is.
    Attested(Box<PeerAttestation>),
    /// The peer presented no evidence and this listener allows that (ordinary TLS clients).
    Unattested,
}

impl Peer {
    /// The attestation, if the peer is attested.
    pub fn attestation(&self) -> Option<&PeerAttestation> {
        match self {
            Self::Attested(a) => Some(a),
            Self::Unattested => None,
        }
    }
}

/// A peer's appraised evidence and the claims it bound to its key.
#[derive(Debug, Clone)]
pub struct PeerAttestation {
    /// The verified claims of the certificate's evidence.
    pub verified: VerifiedClaims,
    /// The claims bound into the certificate's evidence.
    pub bound: BoundClaims,
    /// True once fresh evidence bound to this session was appraised as well.
    pub fresh_in_session: bool,
}

/// Appraises peers for one listener or client: the appraisal policy and its endorsements, the
/// freshness mode, and whether peers without evidence may connect.
pub struct PeerVerifier {
    verifier: Verifier,
    endorsements: Endorsements,
    freshness: Freshness,
    allow_unattested: bool,
    clock: Clock,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for PeerVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerVerifier")
            .field("freshness", &self.freshness)
            .field("allow_unattested", &self.allow_unattested)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl PeerVerifier {
    /// A verifier appraising under `policy` with `endorsements` (Intel collateral, AMD
    /// certificates; simulated evidence needs none), freshness chosen by the policy, peers without
    /// evidence refused, system clock.
    pub fn new(policy: AppraisalPolicy, endorsements: Endorsements) -> Self {
        let freshness = Freshness::from_policy(&policy);
        Self {
            verifier: Verifier::new(policy),
            endorsements,
            freshness,
            allow_unattested: false,
            clock: Clock::System,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }

    /// Overrides the freshness mode.
    pub fn with_freshness(mut self, freshness: Freshness) -> Self {
        self.freshness = freshness;
        self
    }

    /// Lets peers without evidence connect; the application then sees [`Peer::Unattested`].
    pub fn allow_unattested(mut self, allow: bool) -> Self {
        self.allow_unattested = allow;
        self
    }

    /// Appraises at the instants of `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The freshness mode.
    pub fn freshness(&self) -> Freshness {
        self.freshness
    }

    /// Whether peers without evidence may connect.
    pub fn allows_unattested(&self) -> bool {
        self.allow_unattested
    }

    /// The clock.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// The appraisal policy.
    pub fn policy(&self) -> &AppraisalPolicy {
        self.verifier.policy()
    }

    /// The underlying verifier (its cache statistics).
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub(crate) fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Appraises a peer certificate: parses it, checks its validity window, appraises its
    /// evidence (cached by evidence hash, within the result's validity), then checks that the
    /// evidence binds this certificate's key and is fresh enough for the mode.
    pub fn appraise_certificate(&self, der: &[u8]) -> Result<Peer, AtlsError> {
        let now = self.clock.now();
        let cert = parse_certificate(der)?;
        let Some(evidence) = &cert.evidence else {
            return if self.allow_unattested {
                Ok(Peer::Unattested)
            } else {
                Err(AtlsError::NoEvidence)
            };
        };
        if now.as_secs() < cert.not_before.as_secs() {
            return Err(AtlsError::CertificateNotYetValid {
                not_before: cert.not_before,
            });
        }
        if now.as_secs() > cert.not_after.as_secs() {
            return Err(AtlsError::CertificateExpired {
                not_after: cert.not_after,
            });
        }
        let (verified, bound) = match evidence {
            CertificateEvidence::Tagged(tagged) => {
                let bound = tagged.claims()?;
                check_binding(&cert, &bound)?;
                let verified =
                    self.verifier
                        .appraise_cached(&tagged.evidence, &self.endorsements, now)?;
                let expected = BoundClaims::report_data(&tagged.claims_buffer);
                if verified.report_data != expected {
                    return Err(AtlsError::ReportDataNotBound {
                        expected: expected.to_hex(),
                        actual: verified.report_data.to_hex(),
                    });
                }
                (verified, bound)
            }
            CertificateEvidence::GramineLegacy { quote } => {
                let verified = self
                    .verifier
                    .appraise_cached(quote, &self.endorsements, now)?;
                let bound = BoundClaims::for_key(&cert.spki_der);
                if verified.report_data.0[..32] != bound.pubkey_hash.1[..] {
                    return Err(AtlsError::ReportDataNotBound {
                        expected: hex::encode(&bound.pubkey_hash.1),
                        actual: hex::encode(&verified.report_data.0[..32]),
                    });
                }
                (verified, bound)
            }
        };
        if let Freshness::MaxAge(max) = self.freshness {
            check_age(bound.issued_at, now, max)?;
        }
        Ok(Peer::Attested(Box::new(PeerAttestation {
            verified,
            bound,
            fresh_in_session: false,
        })))
    }

    /// Appraises session evidence: it must bind the same key as the peer's certificate, carry
    /// this session's exporter value as its nonce, and pass the policy.
    pub fn appraise_session_evidence(
        &self,
        peer_cert_der: &[u8],
        frame: &[u8],
        exporter: &[u8],
    ) -> Result<VerifiedClaims, AtlsError> {
        let now = self.clock.now();
        let cert = parse_certificate(peer_cert_der)?;
        let tagged = crate::ext::TaggedEvidence::decode(frame)?;
        let bound = tagged.claims()?;
        check_binding(&cert, &bound)?;
        if bound.nonce.as_deref() != Some(exporter) {
            return Err(AtlsError::SessionNonceMismatch);
        }
        check_age(bound.issued_at, now, CLOCK_SKEW_SECS.max(300))?;
        let verified = self
            .verifier
            .appraise_bytes(&tagged.evidence, &self.endorsements, now)?;
        let expected = BoundClaims::report_data(&tagged.claims_buffer);
        if verified.report_data != expected {
            return Err(AtlsError::ReportDataNotBound {
                expected: expected.to_hex(),
                actual: verified.report_data.to_hex(),
            });
        }
        Ok(verified)
    }

    /// The handshake signature, checked with the certificate's key: this proves the peer holds
    /// the private key its evidence is bound to.
    fn check_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
        tls13: bool,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        if tls13 {
            verify_tls13_signature(message, cert, dss, algorithms)
        } else {
            verify_tls12_signature(message, cert, dss, algorithms)
        }
    }

    fn refuse(&self, side: &str, e: AtlsError) -> rustls::Error {
        tracing::warn!("refused the {side}'s attestation: {e}");
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
    }
}

fn check_binding(cert: &ParsedCertificate, bound: &BoundClaims) -> Result<(), AtlsError> {
    if bound.binds_key(&cert.spki_der) {
        Ok(())
    } else {
        Err(AtlsError::KeyNotBound)
    }
}

fn check_age(issued_at: Option<UnixTime>, now: UnixTime, max: u64) -> Result<(), AtlsError> {
    let issued_at = issued_at.ok_or(AtlsError::MissingIssuedAt)?;
    if issued_at.as_secs() > now.as_secs().saturating_add(CLOCK_SKEW_SECS) {
        return Err(AtlsError::EvidenceFromFuture { issued_at });
    }
    let age = now.as_secs().saturating_sub(issued_at.as_secs());
    if age > max {
        return Err(AtlsError::EvidenceTooOld { age, max });
    }
    Ok(())
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: RustlsTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The server's identity is what its evidence proves, not a DNS name: the name is ignored.
        // A client never accepts a server without evidence, whatever `allow_unattested` says:
        // that switch is for listeners admitting ordinary clients.
        match self.appraise_certificate(end_entity) {
            Ok(Peer::Attested(_)) => Ok(ServerCertVerified::assertion()),
            Ok(Peer::Unattested) => Err(self.refuse("server", AtlsError::NoEvidence)),
            Err(e) => Err(self.refuse("server", e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        !self.allow_unattested
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: RustlsTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.appraise_certificate(end_entity) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(e) => Err(self.refuse("client", e)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.check_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
