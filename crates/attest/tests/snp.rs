//! SEV-SNP fixtures (VCEK and VLEK, report versions 2 and 3) at the fixed time, with twins.

#![allow(clippy::unwrap_used)]

mod common;

use attest::{Endorsements, Error, UnixTime};
use common::*;

const REPORT: &str = "snp/test-report.bin";
const VCEK: &str = "snp/test-vcek.der";
const VLEK_REPORT: &str = "snp/test-vlek-report.bin";
const VLEK: &str = "snp/test-vlek.der";
const MILAN: &str = "snp/milan_ask_ark_asvk.pem";
const GENOA: &str = "snp/genoa_ask_ark_asvk.pem";
const TURIN: &str = "snp/turin_ask_ark_asvk.pem";
const VIRTEE_REPORT: &str = "snp/virtee_report_milan.hex";
const VIRTEE_VCEK: &str = "snp/virtee_vcek_milan.der";
const VIRTEE_CHAIN: &str = "snp/virtee_cert_chain_milan.pem";

#[test]
fn vcek_report_verifies_with_expected_claims() {
    for chain in [&[VCEK, MILAN][..], &[VCEK][..]] {
        let verified =
            appraise(&policy(""), &read(REPORT), &endorsements(chain), T_2025).expect("affirmed");
        let j = json(&verified);
        assert_eq!(j["platform"], "snp");
        assert_eq!(j["simulated"], false);
        assert_eq!(j["report_version"], 2);
        assert_eq!(
            j["measurement"],
            "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
        );
        assert_eq!(
            j["report_data"],
            format!(
                "ec6c52d7533cc2c4f45be7849cf112ab82b2009fe7bd43e71ed08c14400ad7e2{}",
                "00".repeat(32)
            )
        );
        assert_eq!(j["policy"], "0x3001f");
        assert_eq!(j["vmpl"], 0);
        assert_eq!(j["reported_tcb"], "0300000000000873");
        assert_eq!(j["reported_tcb_decoded"]["microcode"], 115);
        assert_eq!(j["signing_key"], "VCEK");
        assert_eq!(j["product"], "Milan");
        assert_eq!(j["tcb_status"], serde_json::Value::Null);
    }
}

#[test]
fn vlek_report_verifies_with_expected_claims() {
    let verified = appraise(
        &policy(""),
        &read(VLEK_REPORT),
        &endorsements(&[VLEK, MILAN]),
        T_2025,
    )
    .expect("affirmed");
    let j = json(&verified);
    assert_eq!(j["report_version"], 3);
    assert_eq!(
        j["measurement"],
        "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0"
    );
    assert_eq!(
        j["report_data"],
        "819770b7e6ea6df8dd8fd4dd146b073c0bf4f3ce5b0977ecac486e3a05ed1bd54e2a7ac1f5d1ca02e7d7d5ef9f73b8574fd9359e3a480d741a4478e8a7bc27ca"
    );
    assert_eq!(j["policy"], "0x30000");
    assert_eq!(j["vmpl"], 1);
    assert_eq!(j["reported_tcb"], "04000000000018d9");
    assert_eq!(j["signing_key"], "VLEK");
    // Without the ASVK bundle there is nothing to check a VLEK against.
    let err = appraise(
        &policy(""),
        &read(VLEK_REPORT),
        &endorsements(&[VLEK]),
        T_2025,
    )
    .unwrap_err();
    assert!(matches!(err, Error::EndorsementsMissing { .. }), "{err}");
}

#[test]
fn virtee_hex_report_verifies() {
    for chain in [&[VIRTEE_VCEK, VIRTEE_CHAIN][..], &[VIRTEE_VCEK, MILAN][..]] {
        let verified = appraise(
            &policy(""),
            &read(VIRTEE_REPORT),
            &endorsements(chain),
            T_2025,
        )
        .expect("affirmed");
        let j = json(&verified);
        assert_eq!(
            j["measurement"],
            "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c480cd81841f"
        );
        assert_eq!(
            j["report_data"],
            "d447b55d197491bfe15cf298f9de9986b7a7c4be2468b4f6e2d53b71d7c645810b0f2cdfca0040433be063fc1a8293f0f3f8dae7b79fecb3d1cd82bd6a93ebfd"
        );
        assert_eq!(j["policy"], "0x30000");
        assert_eq!(j["reported_tcb"], "0300000000000873");
    }
}

#[test]
fn flipped_report_bytes_are_refused() {
    let e = endorsements(&[VCEK, MILAN]);
    let report = read(REPORT);
    for at in [0x50, 0x90, 0x2A0 + 3, 0x2A0 + 72 + 10] {
        let err = appraise(&policy(""), &flip(&report, at), &e, T_2025).unwrap_err();
        assert!(
            matches!(err, Error::EvidenceSignatureInvalid { .. }),
            "byte {at:#x}: {err}"
        );
    }
}

#[test]
fn bytes_no_signature_covers_are_refused_and_the_untouched_report_verifies() {
    let e = endorsements(&[VCEK, MILAN]);
    let report = read(REPORT);
    for appended in [1, 100] {
        for fill in [0x00, 0xA5] {
            let mut longer = report.clone();
            longer.extend(std::iter::repeat_n(fill, appended));
            let err = appraise(&policy(""), &longer, &e, T_2025).unwrap_err();
            assert!(
                matches!(
                    &err,
                    Error::EvidenceTrailingBytes { after: "the 1184-byte report", trailing, .. }
                        if *trailing == appended
                ),
                "{appended} x {fill:#x}: {err}"
            );
        }
    }
    // The signature field's reserved part, after r and s, is signed by nobody.
    for at in [0x2A0 + 144, 0x4A0 - 1] {
        let err = appraise(&policy(""), &flip(&report, at), &e, T_2025).unwrap_err();
        assert!(
            matches!(&err, Error::EvidenceMalformed { reason, .. } if reason.contains("reserved bytes 0x330..0x4a0")),
            "byte {at:#x}: {err}"
        );
    }
    appraise(&policy(""), &report, &e, T_2025).expect("the untouched report is affirmed");
}

#[test]
fn wrong_product_chains_are_refused() {
    for chain in [GENOA, TURIN] {
        let err = appraise(
            &policy(""),
            &read(REPORT),
            &endorsements(&[VCEK, chain]),
            T_2025,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::CertificateChainInvalid { .. }),
            "{chain}: {err}"
        );
        let err = appraise(
            &policy(""),
            &read(VLEK_REPORT),
            &endorsements(&[VLEK, chain]),
            T_2025,
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::CertificateChainInvalid { .. }),
            "{chain}: {err}"
        );
    }
}

#[test]
fn invalid_vceks_are_refused() {
    for vcek in [
        "snp/test-vcek-invalid-legacy.der",
        "snp/test-vcek-invalid-new.der",
    ] {
        for chain in [&[vcek, MILAN][..], &[vcek][..]] {
            let err =
                appraise(&policy(""), &read(REPORT), &endorsements(chain), T_2025).unwrap_err();
            assert!(
                matches!(err, Error::CertificateChainInvalid { .. }),
                "{chain:?}: {err}"
            );
        }
    }
}

#[test]
fn flipped_certificate_byte_is_refused() {
    let vcek = read(VCEK);
    // The last bytes of a certificate are its signature.
    let mut e = Endorsements::new();
    e.add_bytes("flipped-vcek.der", &flip(&vcek, vcek.len() - 5))
        .unwrap();
    e.add_path(&fixture(MILAN)).unwrap();
    let err = appraise(&policy(""), &read(REPORT), &e, T_2025).unwrap_err();
    assert!(
        matches!(err, Error::CertificateChainInvalid { .. }),
        "{err}"
    );
}

#[test]
fn vcek_and_vlek_are_not_interchangeable() {
    let err = appraise(
        &policy(""),
        &read(REPORT),
        &endorsements(&[VLEK, MILAN]),
        T_2025,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SnpSigningKeyMismatch { .. }), "{err}");
    let err = appraise(
        &policy(""),
        &read(VLEK_REPORT),
        &endorsements(&[VCEK, MILAN]),
        T_2025,
    )
    .unwrap_err();
    assert!(matches!(err, Error::SnpSigningKeyMismatch { .. }), "{err}");
    // The other fixture's VCEK is a genuine Milan VCEK, but of another chip: the signature fails.
    let err = appraise(
        &policy(""),
        &read(REPORT),
        &endorsements(&[VIRTEE_VCEK, MILAN]),
        T_2025,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Error::EvidenceSignatureInvalid { .. } | Error::SnpEndorsementMismatch { .. }
        ),
        "{err}"
    );
}

#[test]
fn snp_policy_reference_values() {
    let e = endorsements(&[VCEK, MILAN]);
    let report = read(REPORT);
    let cases = [
        (
            format!("[snp]\nmeasurement = \"{}\"", "00".repeat(48)),
            "measurement",
        ),
        ("[snp]\nvmpl = [1, 2]".to_owned(), "vmpl"),
        (
            "[snp]\nmin_reported_tcb = { microcode = 200 }".to_owned(),
            "microcode",
        ),
        (
            "[snp]\npolicy_forbidden_bits = 0x10000".to_owned(),
            "forbidden",
        ),
        (
            "[snp]\npolicy_required_bits = 0x100000".to_owned(),
            "required",
        ),
    ];
    for (toml, needle) in cases {
        let err = appraise(&policy(&toml), &report, &e, T_2025).unwrap_err();
        assert!(err.to_string().contains(needle), "{toml}: {err}");
    }
    let ok = "[snp]\nmeasurement = [\"a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c\"]\nvmpl = 0\nmin_reported_tcb = { bootloader = 3, snp = 8, microcode = 115 }\npolicy_required_bits = 0x30000\npolicy_forbidden_bits = 0x40000";
    appraise(&policy(ok), &report, &e, T_2025).expect("reference values match");
}

#[test]
fn certificate_validity_is_checked() {
    // AMD's Milan ARK was issued in 2020: a verification time before it is refused.
    let err = appraise(
        &policy(""),
        &read(REPORT),
        &endorsements(&[VCEK, MILAN]),
        UnixTime(1_000_000_000),
    )
    .unwrap_err();
    assert!(matches!(err, Error::CollateralNotYetValid { .. }), "{err}");
}

#[test]
fn missing_vcek_is_a_clear_error() {
    let err = appraise(&policy(""), &read(REPORT), &endorsements(&[MILAN]), T_2025).unwrap_err();
    assert!(matches!(err, Error::EndorsementsMissing { .. }), "{err}");
    assert!(err.to_string().contains("VCEK"), "{err}");
}

/// DER certificates are loaded byte for byte: the Milan ARK's last byte is 0x09 (a tab), which
/// an ASCII-whitespace trim would cut off. This is how an SNP host's certificate table arrives.
#[test]
fn der_chain_files_ending_in_whitespace_bytes_load() {
    use base64::Engine as _;
    let pem = String::from_utf8(read(MILAN)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut last_bytes = Vec::new();
    let mut files = vec![fixture(VCEK)];
    for (i, block) in pem.split("-----BEGIN CERTIFICATE-----").skip(1).enumerate() {
        let body: String = block
            .split("-----END CERTIFICATE-----")
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap();
        last_bytes.push(*der.last().unwrap());
        let path = dir.path().join(format!("cert{i}.der"));
        std::fs::write(&path, der).unwrap();
        files.push(path);
    }
    assert!(
        last_bytes.iter().any(|b| b.is_ascii_whitespace()),
        "{last_bytes:?}"
    );
    let endorsements = Endorsements::load(&files).unwrap();
    appraise(&policy(""), &read(REPORT), &endorsements, T_2025).expect("affirmed");
}
