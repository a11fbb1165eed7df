//! A compact result digest signed with secp256k1 in the EIP-191 "personal message" form, so a
//! smart contract can check with `ecrecover` that a known verifier affirmed a platform measurement
//! and report_data until a time.
//!
//! `digest = keccak256(platform:u8 ‖ simulated:u8 ‖ keccak256(measurement) ‖ keccak256(report_data) ‖ expires_at:u64 BE)`,
//! signed as `keccak256("\x19Ethereum Signed Message:\n32" ‖ digest)`; signature `r ‖ s ‖ v` with
//! v ∈ {27, 28}.

use k256::ecdsa::{RecoveryId, Signature, SigningKey, VerifyingKey};
use sha3::{Digest, Keccak256};

use crate::claims::{Claims, PlatformKind};
use crate::error::Error;
use crate::time::UnixTime;

fn keccak(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Keccak256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

fn platform_code(p: PlatformKind) -> u8 {
    match p {
        PlatformKind::Sgx => 1,
        PlatformKind::Tdx => 2,
        PlatformKind::Snp => 3,
        PlatformKind::Sim => 0xFF,
    }
}

/// The compact digest of a result (before the EIP-191 prefix).
pub fn result_digest(claims: &Claims, expires_at: UnixTime) -> [u8; 32] {
    let measurement = hex::decode(claims.primary_measurement_hex()).unwrap_or_default();
    keccak(&[
        &[
            platform_code(claims.platform_kind()),
            u8::from(claims.is_simulated()),
        ],
        &keccak(&[&measurement]),
        &keccak(&[claims.report_data.as_bytes()]),
        &expires_at.as_secs().to_be_bytes(),
    ])
}

fn personal_message_hash(digest: &[u8; 32]) -> [u8; 32] {
    keccak(&[b"\x19Ethereum Signed Message:\n32", digest])
}

/// Signs `digest` as an EIP-191 personal message: 65 bytes `r ‖ s ‖ v`.
pub fn sign_digest(key: &SigningKey, digest: &[u8; 32]) -> Result<[u8; 65], Error> {
    let (sig, rec): (Signature, RecoveryId) = key
        .sign_prehash_recoverable(&personal_message_hash(digest))
        .map_err(|e| Error::KeyInvalid {
            what: "secp256k1 result key".into(),
            reason: e.to_string(),
        })?;
    let mut out = [0u8; 65];
    out[..64].copy_from_slice(&sig.to_bytes());
    out[64] = 27 + rec.to_byte();
    Ok(out)
}

/// The Ethereum address of a secp256k1 public key.
pub fn address(key: &VerifyingKey) -> [u8; 20] {
    let point = key.to_encoded_point(false);
    let hash = keccak(&[&point.as_bytes()[1..]]);
    let mut out = [0u8; 20];
    out.copy_from_slice(&hash[12..]);
    out
}

/// What `ecrecover` would return for this digest and signature.
pub fn recover_signer(digest: &[u8; 32], signature: &[u8; 65]) -> Result<[u8; 20], Error> {
    let bad = |reason: String| Error::TokenSignatureInvalid { reason };
    let sig = Signature::from_slice(&signature[..64]).map_err(|e| bad(e.to_string()))?;
    let rec = signature[64]
        .checked_sub(27)
        .and_then(RecoveryId::from_byte)
        .ok_or_else(|| bad(format!("v = {} is not 27 or 28", signature[64])))?;
    let key = VerifyingKey::recover_from_prehash(&personal_message_hash(digest), &sig, rec)
        .map_err(|e| bad(e.to_string()))?;
    Ok(address(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_address_and_recovery() {
        // Private key 1: its address is well known.
        let mut one = [0u8; 32];
        one[31] = 1;
        let key = SigningKey::from_bytes(&one.into()).unwrap();
        assert_eq!(
            hex::encode(address(key.verifying_key())),
            "7e5f4552091a69125d5dfcb7b8c2659029395bdf"
        );
        let digest = keccak(&[b"hello"]);
        let sig = sign_digest(&key, &digest).unwrap();
        assert_eq!(
            recover_signer(&digest, &sig).unwrap(),
            address(key.verifying_key())
        );
        let mut other = digest;
        other[0] ^= 1;
        assert_ne!(
            recover_signer(&other, &sig).unwrap(),
            address(key.verifying_key())
        );
    }
}
