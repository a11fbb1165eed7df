//! Fuzzes the DCAP appraisal path: mutated SGX/TDX quotes against Intel's real SGX collateral at
//! its fixed time, which drives our quote parser and dcap-qvl's parser and checks behind it.
#![no_main]

use std::sync::LazyLock;

use attest::{AppraisalPolicy, Endorsements, UnixTime, Verifier};
use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

/// Inside the validity window of the SGX collateral (2025-06-20T00:00:00Z).
const NOW: UnixTime = UnixTime(1_750_377_600);

static SETUP: LazyLock<(Verifier, Endorsements)> = LazyLock::new(|| {
    let mut endorsements = Endorsements::new();
    endorsements
        .add_bytes(
            "sgx_quote_collateral.json",
            include_bytes!("../../testdata/fixtures/sgx/sgx_quote_collateral.json"),
        )
        .expect("the SGX fixture collateral loads");
    (Verifier::new(AppraisalPolicy::default()), endorsements)
});

fuzz_target!(|data: &[u8]| {
    let (verifier, endorsements) = &*SETUP;
    let _ = check(verifier.appraise_bytes(data, endorsements, NOW));
});
