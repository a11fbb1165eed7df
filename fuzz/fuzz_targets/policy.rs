//! Fuzzes appraisal policy parsing: `AppraisalPolicy::from_toml` on any UTF-8 text, and checks
//! that an accepted policy survives `to_toml` unchanged (a printed policy is the policy in force).
#![no_main]

use attest::AppraisalPolicy;
use libfuzzer_sys::fuzz_target;
use teemesh_fuzz::check;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(policy) = check(AppraisalPolicy::from_toml(text)) else {
        return;
    };
    let printed = policy.to_toml();
    let reparsed = AppraisalPolicy::from_toml(&printed)
        .unwrap_or_else(|e| panic!("to_toml output does not parse: {e}\n{printed}"));
    assert_eq!(reparsed, policy, "to_toml changed the policy:\n{printed}");
    let _ = policy.digest();
});
