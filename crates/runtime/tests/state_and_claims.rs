#![allow(clippy::unwrap_used)]
//! Sealed state survives a restart of the node and is unreadable to a changed module; module
//! claims signed by the node verify together with its evidence, and tampered twins do not.

mod common;
mod guest;

use std::fs;

use atls::{AtlsError, PeerVerifier, verify_module_claims};
use attest::{AppraisalPolicy, Digest256, Endorsements, PlatformKind};
use runtime::RuntimeError;

const SECRET: [u8; 32] = [0x5e; 32];

fn get(module: &mut runtime::LoadedModule, key: &str) -> Option<Vec<u8>> {
    match module.call_entry("state-get", key.as_bytes()) {
        Ok(value) => Some(value),
        Err(RuntimeError::Guest { message, .. }) if message == "absent" => None,
        Err(e) => panic!("state-get failed: {e}"),
    }
}

#[test]
fn state_survives_a_restart_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = guest::component();
    {
        let runtime = common::runtime_with_state(dir.path(), SECRET);
        let mut module = runtime.load("counter", &bytes).unwrap();
        assert_eq!(get(&mut module, "count"), None);
        module.call_entry("state-set", b"count=41").unwrap();
        module.call_entry("state-set", b"count=42").unwrap();
        module.call_entry("state-set", b"tmp=x").unwrap();
        module.call_entry("state-delete", b"tmp").unwrap();
        assert_eq!(get(&mut module, "count").unwrap(), b"42");
    }
    // A new runtime (a restarted node: same secret, same directory).
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let mut module = runtime.load("counter", &bytes).unwrap();
    assert_eq!(get(&mut module, "count").unwrap(), b"42");
    assert_eq!(get(&mut module, "tmp"), None);

    // On disk: one file for the measurement, no plaintext.
    let file = dir
        .path()
        .join(format!("{}.sealed", module.measurement().to_hex()));
    let sealed = fs::read(&file).unwrap();
    assert!(!sealed.windows(5).any(|w| w == b"count"));
}

#[test]
fn instances_of_one_module_share_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let bytes = guest::component();
    let mut first = runtime.load("one", &bytes).unwrap();
    let mut second = runtime.load("two", &bytes).unwrap();
    first.call_entry("state-set", b"a=1").unwrap();
    second.call_entry("state-set", b"b=2").unwrap();
    assert_eq!(get(&mut first, "b").unwrap(), b"2");
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let mut again = runtime.load("one", &bytes).unwrap();
    assert_eq!(get(&mut again, "a").unwrap(), b"1");
    assert_eq!(get(&mut again, "b").unwrap(), b"2");
}

#[test]
fn a_changed_module_cannot_read_the_old_state() {
    let dir = tempfile::tempdir().unwrap();
    let original = guest::component();
    let changed = guest::build(&guest::Options {
        variant: 1,
        ..guest::Options::default()
    });
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let mut old = runtime.load("app", &original).unwrap();
    old.call_entry("state-set", b"secret=hunter2").unwrap();
    let mut new = runtime.load("app", &changed).unwrap();
    assert_ne!(old.measurement(), new.measurement());
    // Same name, same node, different bytes: its own (empty) state.
    assert_eq!(get(&mut new, "secret"), None);
    drop(new);

    // Even given the old module's file under its own name, it cannot decrypt it.
    let old_file = dir
        .path()
        .join(format!("{}.sealed", old.measurement().to_hex()));
    let changed_measurement = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&changed))
    };
    fs::copy(
        &old_file,
        dir.path().join(format!("{changed_measurement}.sealed")),
    )
    .unwrap();
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let err = runtime.load("app", &changed).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::State(detail) if detail.contains("authentication failed")),
        "{err}"
    );
}

#[test]
fn another_node_cannot_read_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = guest::component();
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let mut module = runtime.load("app", &bytes).unwrap();
    module.call_entry("state-set", b"k=v").unwrap();
    let other_node = common::runtime_with_state(dir.path(), [0x01; 32]);
    let err = other_node.load("app", &bytes).unwrap_err();
    assert!(matches!(err, RuntimeError::State(_)), "{err}");
}

fn sim_verifier() -> PeerVerifier {
    let policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    PeerVerifier::new(policy, Endorsements::default())
}

#[test]
fn module_claims_verify_with_the_node_evidence_in_one_step() {
    let runtime = common::runtime();
    let module = runtime.load("attested", &guest::component()).unwrap();
    let node_cert = runtime.identity().certificate();
    let signed = module.signed_claims();
    let verified = verify_module_claims(node_cert, signed, &sim_verifier()).unwrap();
    verified.require_measurement(&module.measurement()).unwrap();
    assert_eq!(verified.module().name, "attested");
    assert_eq!(verified.module().platform, PlatformKind::Sim);
    assert!(verified.module().simulated);
    assert_eq!(verified.module().node_cert_sha256, Digest256::of(node_cert));
    assert_eq!(
        verified.node_claims().primary_measurement_hex(),
        common::NODE_MEASUREMENT.to_hex()
    );
}

#[test]
fn tampered_module_claims_are_refused() {
    let runtime = common::runtime();
    let module = runtime.load("attested", &guest::component()).unwrap();
    let node_cert = runtime.identity().certificate();

    // Twin 1: the measurement of another module, same signature.
    let mut flipped = module.signed_claims().clone();
    flipped.claims.measurement.0[31] ^= 0x80;
    let err = verify_module_claims(node_cert, &flipped, &sim_verifier()).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");

    // Twin 2: claims from another node, presented with this node's certificate.
    let other_runtime = common::runtime();
    let other = other_runtime.load("attested", &guest::component()).unwrap();
    let err = verify_module_claims(node_cert, other.signed_claims(), &sim_verifier()).unwrap_err();
    assert!(matches!(err, AtlsError::NodeSignature(_)), "{err}");

    // The genuine claims under a policy that refuses simulation.
    let err = verify_module_claims(
        node_cert,
        module.signed_claims(),
        &PeerVerifier::new(AppraisalPolicy::default(), Endorsements::default()),
    )
    .unwrap_err();
    assert!(matches!(err, AtlsError::Appraisal(_)), "{err}");
}

#[test]
fn state_is_handed_to_a_new_version_and_never_over_a_sharing_module() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = common::runtime_with_state(dir.path(), SECRET);
    let v0 = guest::component();
    let v1 = guest::build(&guest::Options {
        variant: 1,
        ..guest::Options::default()
    });
    let mut old = runtime.load("counter", &v0).unwrap();
    old.call_entry("state-set", b"count=7").unwrap();
    let mut new = runtime.load("counter", &v1).unwrap();
    assert_eq!(
        get(&mut new, "count"),
        None,
        "another measurement, other state"
    );
    new.take_over_state(old.sealed_entries().unwrap()).unwrap();
    assert_eq!(get(&mut new, "count").unwrap(), b"7");
    // A second module running v1 shares the store: a hand-over would overwrite its state.
    let mut sharing = runtime.load("other", &v1).unwrap();
    sharing.call_entry("state-set", b"mine=1").unwrap();
    let err = new
        .take_over_state(old.sealed_entries().unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("shares its sealed state"), "{err}");
    assert_eq!(get(&mut sharing, "mine").unwrap(), b"1");
}
