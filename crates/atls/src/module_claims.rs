//! Module claims: what a node attests about a WebAssembly module it hosts (its name and the SHA-256
//! of its bytes), signed with the node's attested TLS key — the layer above platform evidence.
//! A verifier checks the node's evidence and the module's measurement in one step.
//!
//! Lives here rather than in `runtime` so that relying parties (peers, the deployer, MQTT ACLs)
//! verify module claims without compiling a WebAssembly runtime.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use serde::{Deserialize, Serialize};

use attest::{Digest256, Measurement256, PlatformKind, UnixTime, VerifiedClaims};

use crate::error::AtlsError;
use crate::ext::parse_certificate;
use crate::identity::{NODE_SIGNATURE_DOMAIN, NodeIdentity};
use crate::verifier::{Peer, PeerAttestation, PeerVerifier};

/// Purpose tag at the start of a signed module-claims message, so no other message the node
/// signs can be taken for module claims.
const MODULE_CLAIMS_PURPOSE: &[u8] = b"teemesh-module-claims-v1\n";

/// What a node attests about one module. Serialised as compact JSON with the fields in this
/// order; the signature covers exactly that serialisation, so it is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleClaims {
    /// The module's name in its deployment.
    pub name: String,
    /// SHA-256 of the module's exact Wasm bytes.
    pub measurement: Measurement256,
    /// The node's platform.
    pub platform: PlatformKind,
    /// True when the node runs on the simulated TEE (no hardware protection).
    pub simulated: bool,
    /// SHA-256 of the DER certificate of the node that signs these claims.
    pub node_cert_sha256: Digest256,
    /// When the node issued the claims (module load time).
    pub issued_at: UnixTime,
    /// The module's X25519 public key for connection keys (`events::wrap`): the node holds the
    /// private half for this module instance only. Absent for modules run outside a node
    /// (`teemesh run`); the field is then left out of the signed JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_key: Option<ChannelKey>,
    /// The application the node runs this module for, as its deployer named it (for example in
    /// claims an MQTT bridge presents, which a broker's ACL matches). Absent when the claims
    /// speak for the module alone; the field is then left out of the signed JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// A module's 32-byte X25519 public key, hex in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelKey(pub [u8; 32]);

impl Serialize for ChannelKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.0))
    }
}

impl<'de> Deserialize<'de> for ChannelKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(&text, &mut bytes).map_err(|e| {
            serde::de::Error::custom(format!("channel key is not 32 bytes of hex: {e}"))
        })?;
        Ok(Self(bytes))
    }
}

impl ModuleClaims {
    /// The claims `identity` makes about module `name` with `measurement`, issued at `now`.
    pub fn for_module(
        identity: &NodeIdentity,
        name: &str,
        measurement: Measurement256,
        now: UnixTime,
    ) -> Self {
        Self {
            name: name.to_owned(),
            measurement,
            platform: identity.platform(),
            simulated: identity.platform() == PlatformKind::Sim,
            node_cert_sha256: Digest256::of(identity.certificate()),
            issued_at: now,
            channel_key: None,
            app: None,
        }
    }

    /// The same claims naming the module's channel key.
    pub fn with_channel_key(mut self, key: [u8; 32]) -> Self {
        self.channel_key = Some(ChannelKey(key));
        self
    }

    /// The same claims naming the application the module runs for.
    pub fn with_app(mut self, app: &str) -> Self {
        self.app = Some(app.to_owned());
        self
    }

    /// The bytes the node signs: a purpose tag, then the compact JSON.
    fn signed_message(&self) -> Result<Vec<u8>, AtlsError> {
        let json = serde_json::to_vec(self)
            .map_err(|e| AtlsError::ModuleClaims(format!("cannot serialise: {e}")))?;
        let mut message = MODULE_CLAIMS_PURPOSE.to_vec();
        message.extend_from_slice(&json);
        Ok(message)
    }

    /// Signs these claims with `identity`'s attested key.
    pub fn sign(self, identity: &NodeIdentity) -> Result<SignedModuleClaims, AtlsError> {
        let signature = identity.sign(&self.signed_message()?);
        Ok(SignedModuleClaims {
            claims: self,
            signature: SignatureBytes(signature),
        })
    }
}

/// Module claims with the node's signature (ECDSA P-256, 64-byte `r ‖ s`, hex in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedModuleClaims {
    /// The claims.
    pub claims: ModuleClaims,
    /// The node's signature over them.
    pub signature: SignatureBytes,
}

/// The most bytes of JSON [`SignedModuleClaims::from_json`] reads.
pub const MAX_CLAIMS_JSON: usize = 16 * 1024;

impl SignedModuleClaims {
    /// Reads signed module claims from untrusted JSON (at most [`MAX_CLAIMS_JSON`] bytes): the
    /// shape only, the signature is [`verify_module_claims`]'s. A refusal is one printable line,
    /// whatever the input holds.
    pub fn from_json(bytes: &[u8]) -> Result<Self, AtlsError> {
        if bytes.len() > MAX_CLAIMS_JSON {
            return Err(AtlsError::ModuleClaims(format!(
                "{} bytes of JSON, more than the {MAX_CLAIMS_JSON} signed module claims may take",
                bytes.len()
            )));
        }
        serde_json::from_slice(bytes).map_err(|e| {
            // serde's messages quote the input (an unknown field's name): escaped, so no
            // control character from a client reaches a log line or a Reason String.
            let mut message = String::new();
            for c in e.to_string().chars() {
                if c.is_control() {
                    message.extend(c.escape_default());
                } else {
                    message.push(c);
                }
            }
            AtlsError::ModuleClaims(format!("not signed module claims: {message}"))
        })
    }
}

/// Signature bytes, hex in JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBytes(pub Vec<u8>);

impl Serialize for SignatureBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SignatureBytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(&text)
            .map(Self)
            .map_err(|e| serde::de::Error::custom(format!("signature is not hex: {e}")))
    }
}

/// Module claims whose signature and node were checked; built only by [`verify_module_claims`].
#[derive(Debug, Clone)]
pub struct VerifiedModuleClaims {
    node: PeerAttestation,
    module: ModuleClaims,
}

impl VerifiedModuleClaims {
    /// The node's appraised evidence and the claims bound to its key.
    pub fn node(&self) -> &PeerAttestation {
        &self.node
    }

    /// The node's verified platform claims.
    pub fn node_claims(&self) -> &VerifiedClaims {
        &self.node.verified
    }

    /// The module's claims, signed by that node.
    pub fn module(&self) -> &ModuleClaims {
        &self.module
    }

    /// Refuses unless the module is exactly the one expected (the reference value).
    pub fn require_measurement(&self, expected: &Measurement256) -> Result<(), AtlsError> {
        if &self.module.measurement == expected {
            Ok(())
        } else {
            Err(AtlsError::ModuleMeasurementMismatch {
                expected: expected.to_hex(),
                actual: self.module.measurement.to_hex(),
            })
        }
    }
}

/// Checks module claims in one step: appraises the node certificate with `verifier` (evidence
/// under its policy, bound to the certificate's key), checks the signature with that key, that
/// the claims name this certificate, and that their platform is the one the evidence proves.
pub fn verify_module_claims(
    node_cert_der: &[u8],
    signed: &SignedModuleClaims,
    verifier: &PeerVerifier,
) -> Result<VerifiedModuleClaims, AtlsError> {
    let node = match verifier.appraise_certificate(node_cert_der)? {
        Peer::Attested(node) => *node,
        // A verifier that admits unattested TLS clients still cannot vouch for a module.
        Peer::Unattested => return Err(AtlsError::NoEvidence),
    };
    verify_node_signature(
        node_cert_der,
        &signed.claims.signed_message()?,
        &signed.signature.0,
    )?;
    let claims = &signed.claims;
    let cert_hash = Digest256::of(node_cert_der);
    if claims.node_cert_sha256 != cert_hash {
        return Err(AtlsError::ModuleClaimsOtherNode {
            claimed: claims.node_cert_sha256.to_hex(),
            actual: cert_hash.to_hex(),
        });
    }
    let proven = node.verified.platform_kind();
    if claims.platform != proven || claims.simulated != node.verified.is_simulated() {
        return Err(AtlsError::ModuleClaimsPlatform {
            claimed: claims.platform,
            proven,
        });
    }
    Ok(VerifiedModuleClaims {
        node,
        module: signed.claims.clone(),
    })
}

/// Checks a signature made by [`NodeIdentity::sign`] with the key of `node_cert_der`. Checks the
/// signature only: the certificate's evidence is appraised by [`verify_module_claims`] or by
/// [`PeerVerifier::appraise_certificate`].
pub fn verify_node_signature(
    node_cert_der: &[u8],
    message: &[u8],
    signature: &[u8],
) -> Result<(), AtlsError> {
    let cert = parse_certificate(node_cert_der)?;
    let key = VerifyingKey::from_public_key_der(&cert.spki_der).map_err(|e| {
        AtlsError::NodeSignature(format!("the certificate's key is not P-256: {e}"))
    })?;
    let signature = Signature::from_slice(signature).map_err(|_| {
        AtlsError::NodeSignature(format!(
            "expected a 64-byte P-256 signature, got {} bytes",
            signature.len()
        ))
    })?;
    let mut signed = NODE_SIGNATURE_DOMAIN.to_vec();
    signed.extend_from_slice(message);
    key.verify(&signed, &signature).map_err(|_| {
        AtlsError::NodeSignature(
            "it does not verify with the node certificate's key (tampered, or signed by another node)"
                .to_owned(),
        )
    })
}
