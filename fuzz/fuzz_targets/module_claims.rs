//! Fuzzes what an MQTT broker reads from a client claiming to speak for a module: the
//! Authentication Data, `SignedModuleClaims::from_json`, then `verify_module_claims` against a
//! simulated node's certificate. Whatever the input: no panic, refusals are one printable line,
//! and claims that parse serialise to JSON that parses back to them.
#![no_main]

use std::sync::{Arc, OnceLock};

use atls::{NodeIdentity, PeerVerifier, SignedModuleClaims, verify_module_claims};
use attest::{AppraisalPolicy, Endorsements, Measurement384, UnixTime};
use libfuzzer_sys::fuzz_target;

fn clear(message: &str) {
    assert!(!message.trim().is_empty(), "empty error message");
    assert!(
        !message.chars().any(char::is_control),
        "error message is not one printable line: {message:?}"
    );
}

/// One simulated node for the whole run (its key is fresh per run, so no seed verifies: the
/// target exercises the refusals and the parser).
fn node() -> &'static (NodeIdentity, PeerVerifier) {
    static NODE: OnceLock<(NodeIdentity, PeerVerifier)> = OnceLock::new();
    NODE.get_or_init(|| {
        let attester = Arc::new(platform::Simulated::with_measurement(Measurement384(
            [7; 48],
        )));
        let identity = NodeIdentity::generate(attester, "fuzz-node", UnixTime::now())
            .expect("a simulated identity");
        let policy = AppraisalPolicy {
            allow_simulated: true,
            ..AppraisalPolicy::default()
        };
        (identity, PeerVerifier::new(policy, Endorsements::default()))
    })
}

fuzz_target!(|data: &[u8]| {
    match SignedModuleClaims::from_json(data) {
        Err(e) => clear(&e.to_string()),
        Ok(signed) => {
            let json = serde_json::to_vec(&signed).expect("parsed claims serialise");
            let again = SignedModuleClaims::from_json(&json).expect("serialised claims parse");
            assert_eq!(again, signed);
            let (identity, verifier) = node();
            if let Err(e) = verify_module_claims(identity.certificate(), &signed, verifier) {
                clear(&e.to_string());
            }
        }
    }
});
