//! Attestation result tokens: issued from verified claims, verified by relying parties, refused
//! when tampered with, expired, or checked with the wrong key or algorithm.

#![allow(clippy::unwrap_used)]

mod common;

use attest::result::eip191;
use attest::{
    AttestationResult, Endorsements, Error, Measurement384, ReportData, ResultAlgorithm,
    ResultSigningKey, SimulatedAttester, UnixTime, issue_result_token,
};
use base64::Engine as _;
use common::*;

fn verified_sgx() -> attest::VerifiedClaims {
    let v = policy(
        "accepted_tcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\nallowed_advisories = [\"*\"]",
    );
    appraise(
        &v,
        &read("sgx/sgx_quote"),
        &endorsements(&["sgx/sgx_quote_collateral.json"]),
        T_2025,
    )
    .unwrap()
}

#[test]
fn tokens_round_trip_for_both_algorithms() {
    let verified = verified_sgx();
    for alg in [ResultAlgorithm::EdDsa, ResultAlgorithm::Es256] {
        let key = ResultSigningKey::generate(alg);
        let (token, exp) = issue_result_token(&verified, &key, 600).unwrap();
        assert_eq!(exp, T_2025.plus(600));
        let result = AttestationResult::verify(&token, &key.public_key(), T_2025.plus(10)).unwrap();
        assert_eq!(result.claims(), verified.claims());
        assert_eq!(result.expires_at(), exp);
        assert_eq!(result.key_id(), key.public_key().key_id());

        let err = AttestationResult::verify(&token, &key.public_key(), exp.plus(1)).unwrap_err();
        assert!(matches!(err, Error::TokenExpired { .. }), "{err}");
        let err = AttestationResult::verify(&token, &key.public_key(), UnixTime(T_2025.0 - 3600))
            .unwrap_err();
        assert!(matches!(err, Error::TokenNotYetValid { .. }), "{err}");
        let other = ResultSigningKey::generate(alg);
        let err = AttestationResult::verify(&token, &other.public_key(), T_2025).unwrap_err();
        assert!(matches!(err, Error::TokenSignatureInvalid { .. }), "{err}");
    }
}

#[test]
fn token_lifetime_is_capped_by_the_collateral() {
    let verified = verified_sgx();
    let key = ResultSigningKey::generate(ResultAlgorithm::EdDsa);
    let (_, exp) = issue_result_token(&verified, &key, 365 * 86_400).unwrap();
    assert_eq!(exp, verified.valid_until());
}

#[test]
fn tampered_tokens_are_refused() {
    let key = ResultSigningKey::generate(ResultAlgorithm::EdDsa);
    let (token, _) = issue_result_token(&verified_sgx(), &key, 600).unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
    let forged_payload = payload
        .replace("\"simulated\":false", "\"simulated\":true")
        .replace("33d8736d", "00000000");
    assert_ne!(forged_payload, payload);
    let forged = format!("{}.{}.{}", parts[0], b64.encode(forged_payload), parts[2]);
    let err = AttestationResult::verify(&forged, &key.public_key(), T_2025).unwrap_err();
    assert!(matches!(err, Error::TokenSignatureInvalid { .. }), "{err}");
    // alg confusion: claim ES256 on an EdDSA token.
    let header = b64.encode(r#"{"alg":"ES256","typ":"JWT","kid":"x"}"#);
    let err = AttestationResult::verify(
        &format!("{header}.{}.{}", parts[1], parts[2]),
        &key.public_key(),
        T_2025,
    )
    .unwrap_err();
    assert!(matches!(err, Error::TokenSignatureInvalid { .. }), "{err}");
    let none = b64.encode(r#"{"alg":"none","typ":"JWT","kid":"x"}"#);
    let err =
        AttestationResult::verify(&format!("{none}.{}.", parts[1]), &key.public_key(), T_2025)
            .unwrap_err();
    assert!(matches!(err, Error::TokenSignatureInvalid { .. }), "{err}");
    for junk in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
        assert!(
            AttestationResult::verify(junk, &key.public_key(), T_2025).is_err(),
            "{junk}"
        );
    }
}

#[test]
fn simulated_results_say_so() {
    let v = policy("allow_simulated = true");
    let ev = SimulatedAttester::new(Measurement384([1; 48])).report(&ReportData([0; 64]), T_2025);
    let verified = appraise(&v, &ev, &Endorsements::new(), T_2025).unwrap();
    let key = ResultSigningKey::generate(ResultAlgorithm::EdDsa);
    let (token, _) = issue_result_token(&verified, &key, 60).unwrap();
    let result = AttestationResult::verify(&token, &key.public_key(), T_2025).unwrap();
    assert!(result.claims().is_simulated());
    assert_eq!(result.status(), attest::result::ResultStatus::Warning);
    assert!(result.warnings().iter().any(|w| w.contains("SIMULATED")));
}

#[test]
fn keys_persist_as_pkcs8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("verifier.pem");
    let a = ResultSigningKey::load_or_create(&path, ResultAlgorithm::Es256).unwrap();
    let b = ResultSigningKey::load_or_create(&path, ResultAlgorithm::EdDsa).unwrap();
    assert_eq!(
        a.public_key(),
        b.public_key(),
        "the existing key is loaded, not replaced"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let pem = a.public_key().to_public_key_pem().unwrap();
    assert_eq!(
        attest::ResultVerifyingKey::from_public_key_pem(&pem).unwrap(),
        a.public_key()
    );
}

#[test]
fn eip191_digest_binds_the_result() {
    let verified = verified_sgx();
    let key = k256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap();
    let digest = eip191::result_digest(verified.claims(), verified.valid_until());
    let sig = eip191::sign_digest(&key, &digest).unwrap();
    assert_eq!(
        eip191::recover_signer(&digest, &sig).unwrap(),
        eip191::address(key.verifying_key())
    );
    let later = eip191::result_digest(verified.claims(), verified.valid_until().plus(1));
    assert_ne!(later, digest);
}

/// Found by the fuzzer: serde_json quotes the offending value, here with a DEL character, and
/// the refusal must still be one printable line.
#[test]
fn a_signed_payload_with_control_characters_is_refused_in_one_printable_line() {
    use ed25519_dalek::Signer as _;
    let signing = ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]);
    let key = attest::ResultVerifyingKey::Ed25519(signing.verifying_key());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let (token, _) = issue_result_token(
        &verified_sgx(),
        &ResultSigningKey::generate(ResultAlgorithm::EdDsa),
        600,
    )
    .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    let header = b64.encode(br#"{"alg":"EdDSA","typ":"JWT","kid":"k"}"#);
    let genuine = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
    let forged = genuine.replace("\"ear.status\":\"", "\"ear.status\":\"\u{7f}");
    assert_ne!(forged, genuine);
    let payload = b64.encode(forged);
    let input = format!("{header}.{payload}");
    let signature = b64.encode(signing.sign(input.as_bytes()).to_bytes());
    let err = AttestationResult::verify(&format!("{input}.{signature}"), &key, T_2025).unwrap_err();
    assert!(matches!(err, Error::TokenMalformed { .. }), "{err}");
    let message = err.to_string();
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(message.contains("unknown variant `\\u{7f}"), "{message:?}");
}
