//! Fuzzes the SEV-SNP appraisal path: mutated reports against a real VCEK and AMD's Milan
//! ASK/ARK/ASVK bundle at a fixed time (report parsing, key selection, chain and signature checks).
#![no_main]

use std::sync::LazyLock;

use attest::{AppraisalPolicy, Endorsements, UnixTime, Verifier};
use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

/// Inside the validity of every SNP fixture certificate (2025-06-20T00:00:00Z).
const NOW: UnixTime = UnixTime(1_750_377_600);

static SETUP: LazyLock<(Verifier, Endorsements)> = LazyLock::new(|| {
    let mut endorsements = Endorsements::new();
    endorsements
        .add_bytes(
            "test-vcek.der",
            include_bytes!("../../testdata/fixtures/snp/test-vcek.der"),
        )
        .expect("the VCEK fixture loads");
    endorsements
        .add_bytes(
            "milan_ask_ark_asvk.pem",
            include_bytes!("../../testdata/fixtures/snp/milan_ask_ark_asvk.pem"),
        )
        .expect("the Milan bundle loads");
    (Verifier::new(AppraisalPolicy::default()), endorsements)
});

fuzz_target!(|data: &[u8]| {
    let (verifier, endorsements) = &*SETUP;
    let _ = check(verifier.appraise_bytes(data, endorsements, NOW));
});
