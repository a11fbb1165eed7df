//! A node's TLS identity: a key generated in this process (inside the TEE), a self-signed
//! certificate whose evidence extension binds that key, and the attester that produces fresh
//! evidence for per-session freshness.

use std::sync::Arc;

use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::DecodePrivateKey as _;
use rcgen::{CertificateParams, CustomExtension, DnType, KeyPair, PKCS_ECDSA_P256_SHA256};
use rcgen::{PublicKeyData as _, date_time_ymd};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use attest::{PlatformKind, UnixTime};
use platform::Attester;

use crate::error::AtlsError;
use crate::ext::{BoundClaims, OID_TAGGED_EVIDENCE_ARCS, TaggedEvidence};

/// How long a node certificate is valid. Freshness comes from the evidence age or the session
/// exchange, not from this window; it only keeps a forgotten certificate from living forever.
const CERT_LIFETIME_SECS: u64 = 7 * 24 * 3600;

/// Prefixed to every message [`NodeIdentity::sign`] signs. The same key signs TLS handshakes, so
/// it must never sign caller bytes raw: with this prefix no signed message can be taken for a
/// TLS 1.3 `CertificateVerify` (64 spaces first) or a TLS 1.2 `ServerKeyExchange` (the peer's
/// random first).
pub const NODE_SIGNATURE_DOMAIN: &[u8] = b"teemesh node signature v1\0";

/// A node's attested TLS identity. The private key exists only in this process's memory: it is
/// never written to a file and never leaves the TEE.
pub struct NodeIdentity {
    name: String,
    cert: CertificateDer<'static>,
    key_pkcs8: Vec<u8>,
    /// The same key for application signatures (module claims). p256 zeroizes it on drop.
    signing_key: SigningKey,
    spki_der: Vec<u8>,
    attester: Arc<dyn Attester>,
    issued_at: UnixTime,
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("name", &self.name)
            .field("platform", &self.attester.kind())
            .field("issued_at", &self.issued_at)
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// Generates a P-256 key, asks `attester` for evidence binding it (with `name` and `now` as
    /// claims) and issues the self-signed RA-TLS certificate.
    pub fn generate(
        attester: Arc<dyn Attester>,
        name: &str,
        now: UnixTime,
    ) -> Result<Self, AtlsError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AtlsError::Identity(format!("key generation failed: {e}")))?;
        let spki_der = key.subject_public_key_info();
        let claims = BoundClaims {
            issued_at: Some(now),
            node_name: Some(name.to_owned()),
            ..BoundClaims::for_key(&spki_der)
        };
        let tagged = evidence_for(attester.as_ref(), &claims)?;
        let cert = self_signed(&key, name, now, Some(tagged.encode()))?;
        let key_pkcs8 = key.serialize_der();
        let signing_key = SigningKey::from_pkcs8_der(&key_pkcs8)
            .map_err(|e| AtlsError::Identity(format!("cannot load the key for signing: {e}")))?;
        tracing::info!(
            node = name,
            platform = %attester.kind(),
            "generated an attested TLS identity ({} byte certificate)",
            cert.len()
        );
        Ok(Self {
            name: name.to_owned(),
            cert,
            key_pkcs8,
            signing_key,
            spki_der,
            attester,
            issued_at: now,
        })
    }

    /// The name the node gave itself.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The platform producing this identity's evidence.
    pub fn platform(&self) -> PlatformKind {
        self.attester.kind()
    }

    /// When the certificate's evidence was produced.
    pub fn issued_at(&self) -> UnixTime {
        self.issued_at
    }

    /// The certificate (DER).
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// DER of the certificate's SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Signs `message` with the node's attested key: ECDSA P-256 with SHA-256 over
    /// [`NODE_SIGNATURE_DOMAIN`] ‖ `message`, as the fixed 64-byte `r ‖ s` (as in JWS ES256).
    /// Anyone holding the node certificate checks it with [`crate::verify_node_signature`];
    /// callers put their own purpose tag at the start of `message`.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signed = Vec::with_capacity(NODE_SIGNATURE_DOMAIN.len() + message.len());
        signed.extend_from_slice(NODE_SIGNATURE_DOMAIN);
        signed.extend_from_slice(message);
        let signature: Signature = self.signing_key.sign(&signed);
        signature.to_bytes().to_vec()
    }

    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_pkcs8.clone()))
    }

    /// Fresh evidence binding this identity's key and `nonce` (a TLS exporter of the session).
    pub fn session_evidence(&self, nonce: &[u8], now: UnixTime) -> Result<Vec<u8>, AtlsError> {
        let claims = BoundClaims {
            nonce: Some(nonce.to_vec()),
            issued_at: Some(now),
            node_name: Some(self.name.clone()),
            ..BoundClaims::for_key(&self.spki_der)
        };
        Ok(evidence_for(self.attester.as_ref(), &claims)?.encode())
    }
}

impl Drop for NodeIdentity {
    fn drop(&mut self) {
        // Best effort: overwrite our copy of the private key before the memory is freed.
        self.key_pkcs8.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.key_pkcs8);
    }
}

fn evidence_for(
    attester: &dyn Attester,
    claims: &BoundClaims,
) -> Result<TaggedEvidence, AtlsError> {
    let buffer = claims.encode();
    let report_data = BoundClaims::report_data(&buffer);
    let evidence = attester.evidence(&report_data)?;
    Ok(TaggedEvidence::new(attester.kind(), evidence, buffer))
}

/// A self-signed certificate for `key`, optionally carrying an evidence extension. Public so
/// tests and tools can build certificates with arbitrary extensions (e.g. to check refusals).
pub fn self_signed(
    key: &KeyPair,
    name: &str,
    now: UnixTime,
    tagged_evidence: Option<Vec<u8>>,
) -> Result<CertificateDer<'static>, AtlsError> {
    self_signed_with(
        key,
        name,
        now,
        tagged_evidence.map(|v| (OID_TAGGED_EVIDENCE_ARCS, v)),
    )
}

/// Like [`self_signed`] with an extension of any OID.
pub fn self_signed_with(
    key: &KeyPair,
    name: &str,
    now: UnixTime,
    extension: Option<(&[u64], Vec<u8>)>,
) -> Result<CertificateDer<'static>, AtlsError> {
    let mut params = CertificateParams::new(vec!["teemesh-node".to_owned()])
        .map_err(|e| AtlsError::Identity(e.to_string()))?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.not_before = to_offset(now.as_secs().saturating_sub(300));
    params.not_after = to_offset(now.as_secs().saturating_add(CERT_LIFETIME_SECS));
    if let Some((oid, value)) = extension {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, value));
    }
    let cert = params
        .self_signed(key)
        .map_err(|e| AtlsError::Identity(format!("cannot sign the certificate: {e}")))?;
    Ok(cert.der().clone())
}

fn to_offset(secs: u64) -> time::OffsetDateTime {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(|| date_time_ymd(2100, 1, 1))
}
