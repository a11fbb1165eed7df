//! The simulated TEE: refused without `allow_simulated`, labelled when accepted, and as strict as
//! the real platforms about signatures, debug mode and reference values.

#![allow(clippy::unwrap_used)]

mod common;

use attest::{Endorsements, Error, Measurement384, ReportData, SimulatedAttester, UnixTime};
use common::*;

const NOW: UnixTime = UnixTime(1_750_377_600);

fn attester() -> SimulatedAttester {
    SimulatedAttester::new(Measurement384([0x42; 48]))
}

fn evidence(debug: bool) -> Vec<u8> {
    attester()
        .with_debug(debug)
        .report(&ReportData([7; 64]), NOW)
}

#[test]
fn simulated_evidence_needs_opt_in() {
    let err = appraise(&policy(""), &evidence(false), &Endorsements::new(), NOW).unwrap_err();
    assert_eq!(err, Error::SimulatedNotAllowed);
}

#[test]
fn simulated_evidence_is_labelled_when_accepted() {
    let verified = appraise(
        &policy("allow_simulated = true"),
        &evidence(false),
        &Endorsements::new(),
        NOW,
    )
    .unwrap();
    let j = json(&verified);
    assert_eq!(j["platform"], "sim");
    assert_eq!(j["simulated"], true);
    assert_eq!(j["measurement"], "42".repeat(48));
    assert_eq!(j["report_data"], "07".repeat(64));
    assert!(verified.warnings().iter().any(|w| w.contains("SIMULATED")));
    assert_eq!(verified.valid_until(), NOW.plus(3600));
}

#[test]
fn simulated_twins_are_refused() {
    let v = policy("allow_simulated = true");
    let good = evidence(false);
    for at in [30, 100, 150, 199] {
        let err = appraise(&v, &flip(&good, at), &Endorsements::new(), NOW).unwrap_err();
        assert!(
            matches!(err, Error::EvidenceSignatureInvalid { .. }),
            "byte {at}: {err}"
        );
    }
    let err = appraise(&v, &evidence(true), &Endorsements::new(), NOW).unwrap_err();
    assert!(matches!(err, Error::DebugNotAllowed { .. }), "{err}");
    appraise(
        &policy("allow_simulated = true\nallow_debug = true"),
        &evidence(true),
        &Endorsements::new(),
        NOW,
    )
    .expect("debug allowed explicitly");
    let wrong = format!(
        "allow_simulated = true\n[sim]\nmeasurement = \"{}\"",
        "43".repeat(48)
    );
    let err = appraise(&policy(&wrong), &good, &Endorsements::new(), NOW).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReferenceValueMismatch {
                field: "measurement",
                ..
            }
        ),
        "{err}"
    );
    let aged = "allow_simulated = true\nmax_evidence_age = \"5m\"";
    let err = appraise(&policy(aged), &good, &Endorsements::new(), NOW.plus(301)).unwrap_err();
    assert!(matches!(err, Error::EvidenceTooOld { .. }), "{err}");
    let err = appraise(
        &policy("allow_simulated = true"),
        &good,
        &Endorsements::new(),
        UnixTime(NOW.0 - 3600),
    )
    .unwrap_err();
    assert!(matches!(err, Error::EvidenceFromFuture { .. }), "{err}");
}

#[test]
fn cached_reappraisal_honours_expiry() {
    let v = policy("allow_simulated = true\nresult_ttl = 60");
    let e = Endorsements::new();
    let first = v.appraise_cached(&evidence(false), &e, NOW).unwrap();
    let second = v
        .appraise_cached(&evidence(false), &e, NOW.plus(30))
        .unwrap();
    assert_eq!(first, second, "served from the cache");
    assert_eq!(v.cache().stats(), (1, 1));
    // After valid_until the cache must not answer: the appraisal runs again at the new time.
    let third = v
        .appraise_cached(&evidence(false), &e, NOW.plus(120))
        .unwrap();
    assert_eq!(third.appraised_at(), NOW.plus(120));
    assert_eq!(v.cache().stats(), (1, 2));
    // Refusals are never cached.
    let strict = policy("");
    assert!(strict.appraise_cached(&evidence(false), &e, NOW).is_err());
    assert!(strict.appraise_cached(&evidence(false), &e, NOW).is_err());
    assert_eq!(strict.cache().stats(), (0, 2));
}
