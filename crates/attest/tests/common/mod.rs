//! Helpers shared by the fixture tests: paths into the repo's copy of the vendor fixtures and the
//! fixed verification times from their README.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

use attest::{AppraisalPolicy, Endorsements, Error, UnixTime, VerifiedClaims, Verifier};

/// Inside the validity window of the SGX and TDX v4 collateral (2025-06-20T00:00:00Z).
pub const T_2025: UnixTime = UnixTime(1_750_377_600);
/// Inside the window of the TDX v5 collateral (2026-03-01T00:00:00Z).
pub const T_2026: UnixTime = UnixTime(1_772_323_200);

pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(rel)
}

pub fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn endorsements(rels: &[&str]) -> Endorsements {
    let paths: Vec<PathBuf> = rels.iter().map(|r| fixture(r)).collect();
    Endorsements::load(&paths).expect("fixture endorsements load")
}

pub fn policy(toml: &str) -> Verifier {
    Verifier::new(AppraisalPolicy::from_toml(toml).expect("test policy parses"))
}

pub fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 0x01;
    out
}

pub fn appraise(
    v: &Verifier,
    evidence: &[u8],
    e: &Endorsements,
    now: UnixTime,
) -> Result<VerifiedClaims, Error> {
    v.appraise_bytes(evidence, e, now)
}

pub fn json(v: &VerifiedClaims) -> serde_json::Map<String, serde_json::Value> {
    v.to_flat_json()
}
