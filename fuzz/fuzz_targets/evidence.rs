//! Fuzzes evidence detection and parsing: `Evidence::from_bytes` on any bytes (SGX/TDX quotes,
//! SEV-SNP reports, simulated reports, and each of them as hex text) must parse or refuse clearly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

fuzz_target!(|data: &[u8]| {
    if let Some(evidence) = check(attest::Evidence::from_bytes(data)) {
        // What a refused piece of evidence said is shown to humans: it must be computable.
        let claims = evidence.unverified_claims();
        assert_eq!(claims.platform_kind(), evidence.platform());
        assert_eq!(evidence.digest(), attest::Digest256::of(evidence.raw()));
        let _ = claims.primary_measurement_hex();
    }
});
