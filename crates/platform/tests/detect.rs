//! Choosing an attester: names, auto-detection (hardware only, never the simulated TEE), and the
//! simulated backend's measurement.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use attest::{Evidence, Measurement384, PlatformClaims, PlatformKind, ReportData};
use platform::{
    Attester, PlatformChoice, PlatformError, PlatformRoots, Simulated, executable_measurement,
};
use sha2::Digest as _;

fn roots(dir: &Path) -> PlatformRoots {
    PlatformRoots {
        configfs_tsm: dir.join("sys/kernel/config/tsm/report"),
        gramine: dir.join("dev/attestation"),
    }
}

#[test]
fn choices_parse_from_cli_names() {
    for (name, choice) in [
        ("auto", PlatformChoice::Auto),
        ("sim", PlatformChoice::Sim),
        (
            "tdx",
            PlatformChoice::ConfigfsTsm {
                expect: Some(PlatformKind::Tdx),
            },
        ),
        (
            "SNP",
            PlatformChoice::ConfigfsTsm {
                expect: Some(PlatformKind::Snp),
            },
        ),
        ("configfs-tsm", PlatformChoice::ConfigfsTsm { expect: None }),
        ("sgx", PlatformChoice::Gramine),
        ("gramine", PlatformChoice::Gramine),
    ] {
        assert_eq!(name.parse::<PlatformChoice>().unwrap(), choice, "{name}");
        assert_eq!(
            choice.to_string().parse::<PlatformChoice>().unwrap(),
            choice
        );
    }
    let err = "sev".parse::<PlatformChoice>().unwrap_err();
    assert!(matches!(err, PlatformError::UnknownChoice { .. }));
    assert!(err.to_string().contains("auto, sim, tdx, snp"), "{err}");
}

#[test]
fn auto_without_a_tee_is_an_error_never_the_simulation() {
    let dir = tempfile::tempdir().unwrap();
    let roots = roots(dir.path());
    let err = roots.open(PlatformChoice::Auto).err().unwrap();
    assert!(matches!(err, PlatformError::NoTeeFound { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("--platform sim"), "{message}");
    assert!(
        message.contains(&roots.configfs_tsm.display().to_string())
            && message.contains(&roots.gramine.display().to_string()),
        "{message}"
    );
}

#[test]
fn named_hardware_without_its_interface_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let roots = roots(dir.path());
    for name in ["tdx", "snp", "configfs-tsm", "sgx"] {
        let err = roots.open(name.parse().unwrap()).err().unwrap();
        assert!(
            matches!(err, PlatformError::Unavailable { .. }),
            "{name}: {err}"
        );
    }
}

#[test]
fn auto_finds_gramine() {
    let dir = tempfile::tempdir().unwrap();
    let roots = roots(dir.path());
    std::fs::create_dir_all(&roots.gramine).unwrap();
    std::fs::write(roots.gramine.join("attestation_type"), "dcap").unwrap();
    let attester = roots.open(PlatformChoice::Auto).unwrap();
    assert_eq!(attester.kind(), PlatformKind::Sgx);
}

#[test]
fn auto_prefers_configfs_tsm_and_reports_its_failure() {
    let dir = tempfile::tempdir().unwrap();
    let roots = roots(dir.path());
    std::fs::create_dir_all(&roots.gramine).unwrap();
    std::fs::write(roots.gramine.join("attestation_type"), "dcap").unwrap();
    // A plain directory is no configfs: the entry has no `provider`. Auto says so instead of
    // quietly using the next interface.
    std::fs::create_dir_all(&roots.configfs_tsm).unwrap();
    let err = roots.open(PlatformChoice::Auto).err().unwrap();
    assert!(matches!(err, PlatformError::Io { .. }), "{err}");
    assert!(err.to_string().contains("provider"), "{err}");
    assert!(support::is_empty_dir(&roots.configfs_tsm), "entry removed");
}

#[test]
fn the_simulated_tee_only_by_name_and_it_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let attester = roots(dir.path()).open(PlatformChoice::Sim).unwrap();
    assert_eq!(attester.kind(), PlatformKind::Sim);
    assert!(attester.describe().starts_with("SIMULATED TEE"));
    let report_data = ReportData([0x5a; 64]);
    let evidence = Evidence::from_bytes(&attester.evidence(&report_data).unwrap()).unwrap();
    assert_eq!(evidence.platform(), PlatformKind::Sim);
    assert_eq!(evidence.report_data(), &report_data);
}

#[test]
fn executable_measurement_is_sha384_of_this_binary() {
    let exe = std::env::current_exe().unwrap();
    let expected = Measurement384(sha2::Sha384::digest(std::fs::read(exe).unwrap()).into());
    assert_eq!(executable_measurement().unwrap(), expected);
    assert_eq!(
        Simulated::for_this_executable().unwrap().measurement(),
        expected
    );
}

#[test]
fn simulated_with_explicit_measurement_and_debug() {
    let measurement = Measurement384([9; 48]);
    let attester = Simulated::with_measurement(measurement).with_debug(true);
    let evidence = Evidence::from_bytes(&attester.evidence(&ReportData([0; 64])).unwrap()).unwrap();
    let claims = evidence.unverified_claims();
    assert!(claims.debug);
    match claims.platform {
        PlatformClaims::Sim(sim) => assert_eq!(sim.measurement, measurement),
        other => panic!("expected simulated claims, got {other:?}"),
    }
}
