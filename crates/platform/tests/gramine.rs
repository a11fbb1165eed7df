//! Gramine's `/dev/attestation` played by a plain directory: the real SGX quote fixture as
//! `quote`, and its failing twins.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use attest::{Evidence, PlatformKind, ReportData};
use platform::{Attester, Gramine, PlatformError};
use support::{read, report_data_of};

const SGX_QUOTE: &str = "sgx/sgx_quote";

fn fake_gramine(root: &Path, attestation_type: &str, quote: &[u8]) {
    std::fs::write(root.join("attestation_type"), attestation_type).unwrap();
    std::fs::write(root.join("user_report_data"), b"").unwrap();
    std::fs::write(root.join("quote"), quote).unwrap();
}

#[test]
fn sgx_quote_for_the_report_data_written() {
    let root = tempfile::tempdir().unwrap();
    let quote = read(SGX_QUOTE);
    let report_data = report_data_of(&quote);
    fake_gramine(root.path(), "dcap\n", &quote);

    let gramine = Gramine::with_root(root.path()).unwrap();
    assert_eq!(gramine.kind(), PlatformKind::Sgx);
    assert!(gramine.describe().contains("Gramine (DCAP)"));
    let evidence = gramine.evidence(&report_data).unwrap();
    assert_eq!(evidence, quote);
    assert_eq!(
        Evidence::from_bytes(&evidence).unwrap().platform(),
        PlatformKind::Sgx
    );
    assert_eq!(
        std::fs::read(root.path().join("user_report_data")).unwrap(),
        report_data.as_bytes()
    );
}

#[test]
fn twin_a_quote_for_other_report_data_is_refused() {
    let root = tempfile::tempdir().unwrap();
    fake_gramine(root.path(), "dcap", &read(SGX_QUOTE));
    let err = Gramine::with_root(root.path())
        .unwrap()
        .evidence(&ReportData([0x22; 64]))
        .unwrap_err();
    assert!(
        matches!(err, PlatformError::ReportDataMismatch { .. }),
        "{err}"
    );
}

#[test]
fn twin_a_tdx_quote_is_not_sgx_evidence() {
    let root = tempfile::tempdir().unwrap();
    let quote = read("tdx/tdx_quote");
    fake_gramine(root.path(), "dcap", &quote);
    let err = Gramine::with_root(root.path())
        .unwrap()
        .evidence(&report_data_of(&quote))
        .unwrap_err();
    assert!(
        matches!(
            err,
            PlatformError::PlatformMismatch {
                expected: PlatformKind::Sgx,
                found: PlatformKind::Tdx,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn attestation_types_other_than_dcap_are_refused() {
    for attestation_type in ["none", "epid"] {
        let root = tempfile::tempdir().unwrap();
        fake_gramine(root.path(), attestation_type, &read(SGX_QUOTE));
        let err = Gramine::with_root(root.path()).unwrap_err();
        assert!(
            matches!(err, PlatformError::AttestationTypeUnsupported { .. }),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(attestation_type) && message.contains("sgx.remote_attestation"),
            "{message}"
        );
    }
}

#[test]
fn missing_root_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let err = Gramine::with_root(dir.path().join("dev/attestation")).unwrap_err();
    assert!(matches!(err, PlatformError::Unavailable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not running inside a Gramine SGX enclave"),
        "{err}"
    );
}

#[test]
fn empty_quote_is_refused() {
    let root = tempfile::tempdir().unwrap();
    fake_gramine(root.path(), "dcap", b"");
    let err = Gramine::with_root(root.path())
        .unwrap()
        .evidence(&ReportData([0; 64]))
        .unwrap_err();
    assert!(matches!(err, PlatformError::OutblobEmpty { .. }), "{err}");
}

#[test]
fn sealing_key_is_gramines_mrenclave_key_and_never_printed() {
    let root = tempfile::tempdir().unwrap();
    fake_gramine(root.path(), "dcap", &read(SGX_QUOTE));
    std::fs::create_dir(root.path().join("keys")).unwrap();
    std::fs::write(root.path().join("keys/_sgx_mrenclave"), [0xa5; 16]).unwrap();

    let gramine = Gramine::with_root(root.path()).unwrap();
    let key = gramine.sealing_key().unwrap().unwrap();
    assert_eq!(key.bytes(), [0xa5; 16]);
    assert!(key.source().contains("MRENCLAVE"), "{}", key.source());
    assert!(!format!("{key:?}").contains("a5"), "{key:?}");
    assert!(!format!("{key:?}").contains("165"), "{key:?}");
}

#[test]
fn sealing_key_of_the_wrong_size_or_missing_is_an_error() {
    let root = tempfile::tempdir().unwrap();
    fake_gramine(root.path(), "dcap", &read(SGX_QUOTE));
    let gramine = Gramine::with_root(root.path()).unwrap();

    let err = gramine.sealing_key().unwrap_err();
    assert!(matches!(err, PlatformError::Io { .. }), "{err}");
    assert!(err.to_string().contains("keys/_sgx_mrenclave"), "{err}");

    std::fs::create_dir(root.path().join("keys")).unwrap();
    std::fs::write(root.path().join("keys/_sgx_mrenclave"), [1; 32]).unwrap();
    let err = gramine.sealing_key().unwrap_err();
    assert!(err.to_string().contains("32 bytes, expected 16"), "{err}");
}

#[test]
fn the_simulated_tee_has_no_sealing_key() {
    let sim = platform::Simulated::with_measurement(attest::Measurement384([1; 48]));
    assert!(sim.sealing_key().unwrap().is_none());
}
