#![allow(clippy::unwrap_used)]
//! Module claims signed by a simulated node: the genuine claims verify in one step (node evidence
//! and module measurement), and each tampered twin is refused for its own reason.

use std::sync::Arc;

use atls::{
    AtlsError, ModuleClaims, NodeIdentity, PeerVerifier, SignedModuleClaims, verify_module_claims,
    verify_node_signature,
};
use attest::{
    AppraisalPolicy, Digest256, Endorsements, Measurement256, Measurement384, PlatformKind,
    UnixTime,
};
use platform::Simulated;

const NODE_MEASUREMENT: Measurement384 = Measurement384([0x11; 48]);
const MODULE: Measurement256 = Measurement256([0xAB; 32]);

fn identity(name: &str) -> NodeIdentity {
    let attester = Arc::new(Simulated::with_measurement(NODE_MEASUREMENT));
    NodeIdentity::generate(attester, name, UnixTime::now()).unwrap()
}

fn verifier(allow_simulated: bool) -> PeerVerifier {
    let policy = AppraisalPolicy {
        allow_simulated,
        ..AppraisalPolicy::default()
    };
    PeerVerifier::new(policy, Endorsements::default())
}

fn signed(node: &NodeIdentity) -> SignedModuleClaims {
    ModuleClaims::for_module(node, "counter", MODULE, UnixTime::now())
        .sign(node)
        .unwrap()
}

#[test]
fn genuine_claims_verify_with_node_evidence_and_measurement() {
    let node = identity("node-a");
    let signed = signed(&node);
    let verified = verify_module_claims(node.certificate(), &signed, &verifier(true)).unwrap();
    assert_eq!(verified.module().name, "counter");
    assert_eq!(verified.module().platform, PlatformKind::Sim);
    assert!(verified.module().simulated);
    assert!(verified.node_claims().is_simulated());
    assert_eq!(
        verified.module().node_cert_sha256,
        Digest256::of(node.certificate())
    );
    verified.require_measurement(&MODULE).unwrap();
    let other = Measurement256([0xCD; 32]);
    assert!(matches!(
        verified.require_measurement(&other),
        Err(AtlsError::ModuleMeasurementMismatch { .. })
    ));

    // The JSON form round-trips and still verifies (deterministic serialisation).
    let json = serde_json::to_string(&signed).unwrap();
    let back: SignedModuleClaims = serde_json::from_str(&json).unwrap();
    verify_module_claims(node.certificate(), &back, &verifier(true)).unwrap();
    assert!(json.contains(&MODULE.to_hex()), "{json}");
}

#[test]
fn simulated_node_refused_by_default_policy() {
    let node = identity("node-a");
    let err =
        verify_module_claims(node.certificate(), &signed(&node), &verifier(false)).unwrap_err();
    assert!(matches!(err, AtlsError::Appraisal(_)), "{err}");
}

#[test]
fn twin_flipped_measurement_is_refused() {
    let node = identity("node-a");
    let mut twin = signed(&node);
    twin.claims.measurement.0[0] ^= 1;
    let err = verify_module_claims(node.certificate(), &twin, &verifier(true)).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");
}

#[test]
fn twin_signed_by_another_node_is_refused() {
    let node = identity("node-a");
    let impostor = identity("node-b");
    // The impostor makes claims that name node A's certificate and signs them with its own key.
    let mut claims = ModuleClaims::for_module(&impostor, "counter", MODULE, UnixTime::now());
    claims.node_cert_sha256 = Digest256::of(node.certificate());
    let twin = claims.sign(&impostor).unwrap();
    let err = verify_module_claims(node.certificate(), &twin, &verifier(true)).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");

    // Node B's genuine claims presented with node A's certificate: wrong key as well.
    let err =
        verify_module_claims(node.certificate(), &signed(&impostor), &verifier(true)).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");
}

#[test]
fn twin_naming_another_certificate_is_refused() {
    let node = identity("node-a");
    let mut claims = ModuleClaims::for_module(&node, "counter", MODULE, UnixTime::now());
    claims.node_cert_sha256 = Digest256([0x55; 32]);
    let twin = claims.sign(&node).unwrap();
    let err = verify_module_claims(node.certificate(), &twin, &verifier(true)).unwrap_err();
    assert!(
        matches!(err, AtlsError::ModuleClaimsOtherNode { .. }),
        "{err}"
    );
}

#[test]
fn twin_claiming_hardware_on_a_simulated_node_is_refused() {
    let node = identity("node-a");
    let mut claims = ModuleClaims::for_module(&node, "counter", MODULE, UnixTime::now());
    claims.platform = PlatformKind::Tdx;
    claims.simulated = false;
    let twin = claims.sign(&node).unwrap();
    let err = verify_module_claims(node.certificate(), &twin, &verifier(true)).unwrap_err();
    assert!(
        matches!(
            err,
            AtlsError::ModuleClaimsPlatform {
                claimed: PlatformKind::Tdx,
                proven: PlatformKind::Sim
            }
        ),
        "{err}"
    );
}

#[test]
fn node_signatures_are_domain_separated() {
    let node = identity("node-a");
    let signature = node.sign(b"hello");
    assert_eq!(signature.len(), 64);
    verify_node_signature(node.certificate(), b"hello", &signature).unwrap();
    assert!(verify_node_signature(node.certificate(), b"hellO", &signature).is_err());
    assert!(verify_node_signature(node.certificate(), b"hello", &signature[..63]).is_err());

    // The signature is not over the raw message: a plain ECDSA check of `hello` fails.
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(node.spki_der()).unwrap();
    let sig = p256::ecdsa::Signature::from_slice(&signature).unwrap();
    assert!(key.verify(b"hello", &sig).is_err());
}

#[test]
fn app_name_is_signed_and_a_twin_naming_another_app_is_refused() {
    let node = identity("node-a");
    let signed = ModuleClaims::for_module(&node, "counter", MODULE, UnixTime::now())
        .with_app("plant")
        .sign(&node)
        .unwrap();
    let verified = verify_module_claims(node.certificate(), &signed, &verifier(true)).unwrap();
    assert_eq!(verified.module().app.as_deref(), Some("plant"));
    let json = serde_json::to_string(&signed).unwrap();
    assert!(json.contains("\"app\":\"plant\""), "{json}");

    let mut twin = signed.clone();
    twin.claims.app = Some("other".to_owned());
    let err = verify_module_claims(node.certificate(), &twin, &verifier(true)).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");
    // Dropping the app name changes the signed bytes too.
    let mut twin = signed;
    twin.claims.app = None;
    let err = verify_module_claims(node.certificate(), &twin, &verifier(true)).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");
}

/// The fuzz corpus of `fuzz/fuzz_targets/module_claims.rs`: each `seed-*` reads as signed
/// claims (which do not verify: their signature is forged) and each `bad-*` is refused with one
/// printable line, whatever control characters it holds.
#[test]
fn corpus_seeds_read_and_bad_inputs_are_refused_with_one_clear_line() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/module_claims");
    let node = identity("node-a");
    let (mut seeds, mut bad) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        match SignedModuleClaims::from_json(&bytes) {
            Ok(signed) if name.starts_with("seed-") => {
                seeds += 1;
                let err =
                    verify_module_claims(node.certificate(), &signed, &verifier(true)).unwrap_err();
                assert!(matches!(err, AtlsError::NodeSignature(_)), "{name}: {err}");
            }
            Err(err) if name.starts_with("bad-") => {
                bad += 1;
                let message = err.to_string();
                assert!(
                    matches!(err, AtlsError::ModuleClaims(_))
                        && !message.chars().any(char::is_control),
                    "{name}: {message:?}"
                );
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    assert!(seeds >= 2 && bad >= 4, "{seeds} seeds, {bad} bad inputs");
    // Over the size bound: refused before parsing.
    let big = vec![b' '; atls::MAX_CLAIMS_JSON + 1];
    assert!(matches!(
        SignedModuleClaims::from_json(&big),
        Err(AtlsError::ModuleClaims(_))
    ));
}
