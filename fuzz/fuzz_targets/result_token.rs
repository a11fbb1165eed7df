//! Fuzzes attestation result token verification with a fixed verifier key. Input starting with
//! `{` is taken as a payload and signed here, so the fuzzer reaches the claims parser behind the
//! signature check; anything else is verified as a token as it is.
#![no_main]

use std::sync::LazyLock;

use attest::{AttestationResult, ResultVerifyingKey, UnixTime};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::Signer as _;
use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

/// Seed of the fixed verifier key; the corpus tokens are signed with it.
const KEY_SEED: [u8; 32] = [0x42; 32];
const NOW: UnixTime = UnixTime(1_750_377_600);

static KEY: LazyLock<ed25519_dalek::SigningKey> =
    LazyLock::new(|| ed25519_dalek::SigningKey::from_bytes(&KEY_SEED));

fn signed_token(payload: &[u8]) -> String {
    let header = B64.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"fuzz"}"#);
    let signing_input = format!("{header}.{}", B64.encode(payload));
    let signature = KEY.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(signature.to_bytes()))
}

fuzz_target!(|data: &[u8]| {
    let token = if data.first() == Some(&b'{') {
        signed_token(data)
    } else {
        match std::str::from_utf8(data) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        }
    };
    let key = ResultVerifyingKey::Ed25519(KEY.verifying_key());
    if let Some(result) = check(AttestationResult::verify(&token, &key, NOW)) {
        assert!(result.expires_at() >= NOW, "accepted an expired token");
        assert!(
            result.issued_at() <= NOW.plus(60),
            "accepted a token from the future"
        );
    }
});
