//! Fuzzes endorsement loading: JSON collateral, Intel PCS responses, PEM bundles and DER
//! certificates/CRLs through `Endorsements::add_bytes`, then assembling DCAP collateral from them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

fuzz_target!(|data: &[u8]| {
    let mut endorsements = attest::Endorsements::new();
    if check(endorsements.add_bytes("fuzz", data)).is_none() {
        return;
    }
    if let Some(Some(collateral)) = check(endorsements.dcap_collateral()) {
        let _ = collateral.valid_until();
    }
    // Accepted AMD certificates are read again at appraisal: their extensions must not panic.
    for cert in endorsements.amd_certs() {
        let _ = cert.vek_tcb();
        let _ = cert.validity();
    }
});
