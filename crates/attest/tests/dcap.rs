//! SGX and TDX fixtures at their fixed times, each with its failing twins (EXPECTED.md).

#![allow(clippy::unwrap_used)]

mod common;

use attest::{Endorsements, Error, UnixTime};
use common::*;

const SGX: &str = "sgx/sgx_quote";
const SGX_COLL: &str = "sgx/sgx_quote_collateral.json";
const TDX4: &str = "tdx/tdx_quote";
const TDX4_COLL: &str = "tdx/tdx_quote_collateral.json";
const TDX5: &str = "tdx/tdx_quote_outdated";
const TDX5_COLL: &str = "tdx/tdx_quote_outdated_collateral.json";
const SGX_ACCEPTING: &str = r#"
accepted_tcb_statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]
allowed_advisories = ["INTEL-SA-00289", "INTEL-SA-00615"]
"#;

#[test]
fn sgx_verifies_with_expected_claims_under_an_accepting_policy() {
    let v = policy(SGX_ACCEPTING);
    let verified = appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025).expect("affirmed");
    let j = json(&verified);
    assert_eq!(j["platform"], "sgx");
    assert_eq!(j["simulated"], false);
    assert_eq!(j["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        j["advisory_ids"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
    assert_eq!(
        j["mrenclave"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        j["mrsigner"],
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!(j["isv_prod_id"], 0);
    assert_eq!(j["isv_svn"], 0);
    assert_eq!(j["attributes"], "0500000000000000e700000000000000");
    assert_eq!(j["debug"], false);
    let mut rd = b"Hello, world!".to_vec();
    rd.resize(64, 0);
    assert_eq!(j["report_data"], hex::encode(rd));
    assert!(
        !verified.warnings().is_empty(),
        "accepted advisories are reported as warnings"
    );
    assert!(verified.valid_until() > T_2025);
}

#[test]
fn sgx_default_policy_refuses_its_tcb_status() {
    let err = appraise(&policy(""), &read(SGX), &endorsements(&[SGX_COLL]), T_2025).unwrap_err();
    assert!(
        matches!(&err, Error::TcbStatusNotAccepted { status, .. } if status == "ConfigurationAndSWHardeningNeeded"),
        "{err}"
    );
}

#[test]
fn sgx_status_accepted_but_advisories_not() {
    let v = policy(r#"accepted_tcb_statuses = ["ConfigurationAndSWHardeningNeeded"]"#);
    let err = appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025).unwrap_err();
    assert!(
        matches!(&err, Error::AdvisoriesNotAllowed { ids } if ids.len() == 2),
        "{err}"
    );
    let v = policy(
        "accepted_tcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\nallowed_advisories = [\"*\"]",
    );
    appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025)
        .expect("wildcard allows any advisory");
}

#[test]
fn sgx_twins_are_refused() {
    let v = policy(SGX_ACCEPTING);
    let e = endorsements(&[SGX_COLL]);
    let quote = read(SGX);
    for at in [368, 439] {
        let err = appraise(&v, &flip(&quote, at), &e, T_2025).unwrap_err();
        assert!(
            matches!(err, Error::EvidenceSignatureInvalid { .. }),
            "byte {at}: {err}"
        );
    }
    // A byte inside the PCK leaf certificate embedded in the quote.
    let err = appraise(&v, &flip(&quote, 2000), &e, T_2025).unwrap_err();
    assert!(
        matches!(err, Error::CertificateChainInvalid { .. }),
        "{err}"
    );
    // A byte in the QE report.
    let err = appraise(&v, &flip(&quote, 1000), &e, T_2025).unwrap_err();
    assert!(matches!(err, Error::QuotingEnclaveInvalid { .. }), "{err}");
    let err = appraise(&v, &quote, &e, UnixTime(1_767_225_600)).unwrap_err();
    assert!(
        matches!(&err, Error::CollateralExpired { what, .. } if what == "TCB info"),
        "{err}"
    );
    let err = appraise(&v, &quote, &e, UnixTime(1_700_000_000)).unwrap_err();
    assert!(
        matches!(&err, Error::CollateralNotYetValid { what, .. } if what == "TCB info"),
        "{err}"
    );
}

#[test]
fn sgx_wrong_reference_value_and_report_data_are_refused() {
    let v = policy(&format!(
        "{SGX_ACCEPTING}\n[sgx]\nmrenclave = \"{}\"\n",
        "00".repeat(32)
    ));
    let err = appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ReferenceValueMismatch {
                field: "mrenclave",
                ..
            }
        ),
        "{err}"
    );
    let v = policy(&format!(
        "{SGX_ACCEPTING}\nreport_data = \"{}\"\n",
        "00".repeat(64)
    ));
    let err = appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025).unwrap_err();
    assert!(matches!(err, Error::ReportDataMismatch { .. }), "{err}");
    let ok = format!(
        "{SGX_ACCEPTING}\n[sgx]\nmrenclave = \"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\"\nmrsigner = [\"815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6\"]\nisv_prod_id = 0\nmin_isv_svn = 0\n"
    );
    appraise(&policy(&ok), &read(SGX), &endorsements(&[SGX_COLL]), T_2025)
        .expect("matching reference values");
}

#[test]
fn collateral_age_limit() {
    // TCB info issued 2025-06-19T10:56:11Z, QE identity 2025-06-19T10:01:18Z: about 14 h before T_2025.
    let v = policy(&format!("{SGX_ACCEPTING}\nmax_collateral_age = \"1h\""));
    let err = appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025).unwrap_err();
    assert!(matches!(err, Error::CollateralTooOld { .. }), "{err}");
    let v = policy(&format!("{SGX_ACCEPTING}\nmax_collateral_age = \"1d\""));
    appraise(&v, &read(SGX), &endorsements(&[SGX_COLL]), T_2025).expect("within a day");
}

#[test]
fn tampered_collateral_is_refused() {
    let text = String::from_utf8(read(SGX_COLL)).unwrap();
    // Raise the TCB level's date tag inside the signed TCB info text.
    let tampered = text.replacen(
        "\\\"tcbEvaluationDataNumber\\\":",
        "\\\"tcbEvaluationDataNumber\\\": ",
        1,
    );
    assert_ne!(tampered, text, "fixture layout changed");
    let mut e = Endorsements::new();
    e.add_bytes("tampered.json", tampered.as_bytes()).unwrap();
    let err = appraise(&policy(SGX_ACCEPTING), &read(SGX), &e, T_2025).unwrap_err();
    assert!(!matches!(err, Error::TcbStatusNotAccepted { .. }), "{err}");
}

#[test]
fn missing_collateral_is_a_clear_error() {
    let err = appraise(
        &policy(SGX_ACCEPTING),
        &read(SGX),
        &Endorsements::new(),
        T_2025,
    )
    .unwrap_err();
    assert!(matches!(err, Error::EndorsementsMissing { .. }), "{err}");
    assert!(err.to_string().contains("collateral"), "{err}");
}

#[test]
fn tdx_v4_verifies_with_expected_claims() {
    let verified = appraise(
        &policy(""),
        &read(TDX4),
        &endorsements(&[TDX4_COLL]),
        T_2025,
    )
    .expect("affirmed");
    let j = json(&verified);
    assert_eq!(j["platform"], "tdx");
    assert_eq!(j["tcb_status"], "UpToDate");
    assert_eq!(j["advisory_ids"], serde_json::json!([]));
    assert_eq!(
        j["mrtd"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(
        j["rtmr0"],
        "44c0197b39157fdd7a4dcc44767f9d6b0bb3977c7a8e347b8492f827fe9d9e5c48aca29b220b80b6a540cf994b9bc9c0"
    );
    assert_eq!(
        j["rtmr1"],
        "0084452c01668329d4bc06acdf58a7205c26743304509973949e5619bf81a6a7aea8c323c173019b3093d54e579e9378"
    );
    assert_eq!(
        j["rtmr2"],
        "d833feef2cd945148aa38ead2c53e9b7f138190aaaebfc551dccd829fc207aa3ba80b70870d7330733642e01d48c3132"
    );
    assert_eq!(j["rtmr3"], "00".repeat(48));
    assert_eq!(j["td_attributes"], "0000001000000000");
    assert_eq!(j["xfam"], "e702060000000000");
    assert_eq!(
        j["report_data"],
        "9a9d48e7f6799642d3d1b34e1e5e1742d4bb02dd6ddd551862c1211d35c304f9eca3efdbb481601c163cf52493d6e44aed55d51ec39b7e518fadb92c2b523f20"
    );
    assert!(verified.warnings().is_empty());
}

#[test]
fn tdx_v4_twins_are_refused() {
    let v = policy("");
    let e = endorsements(&[TDX4_COLL]);
    let quote = read(TDX4);
    for at in [568, 639] {
        let err = appraise(&v, &flip(&quote, at), &e, T_2025).unwrap_err();
        assert!(
            matches!(err, Error::EvidenceSignatureInvalid { .. }),
            "byte {at}: {err}"
        );
    }
    let err = appraise(&v, &quote, &e, UnixTime(1_767_225_600)).unwrap_err();
    assert!(
        matches!(&err, Error::CollateralExpired { what, .. } if what == "TCB info"),
        "{err}"
    );
    let rtmr = format!("[tdx]\nrtmr2 = \"{}\"\n", "11".repeat(48));
    let err = appraise(&policy(&rtmr), &quote, &e, T_2025).unwrap_err();
    assert!(
        matches!(err, Error::ReferenceValueMismatch { field: "rtmr2", .. }),
        "{err}"
    );
    // SGX collateral cannot vouch for a TDX quote.
    let err = appraise(&v, &quote, &endorsements(&[SGX_COLL]), T_2025).unwrap_err();
    assert!(!err.to_string().is_empty());
}

#[test]
fn tdx_v5_has_no_matching_tcb_level_whatever_the_policy() {
    let quote = read(TDX5);
    let e = endorsements(&[TDX5_COLL]);
    let lax = "accepted_tcb_statuses = [\"UpToDate\", \"OutOfDate\", \"SWHardeningNeeded\", \"ConfigurationNeeded\", \"ConfigurationAndSWHardeningNeeded\", \"OutOfDateConfigurationNeeded\"]\nallowed_advisories = [\"*\"]\nallow_debug = true";
    for p in ["", lax] {
        let err = appraise(&policy(p), &quote, &e, T_2026).unwrap_err();
        assert_eq!(err, Error::NoMatchingTcbLevel, "{err}");
    }
    // The parsed (unverified) body still reads as EXPECTED.md says.
    let ev = attest::Evidence::from_bytes(&quote).unwrap();
    let j = ev.unverified_claims().to_flat_json();
    assert_eq!(j["quote_version"], 5);
    assert_eq!(
        j["mrtd"],
        "273828c46252fcbdd8ad2dd907130222b03466d52a2911d70c1a5950895d6bd1ae451d382d5a9b1b4c0ed0e5ae9a3dbd"
    );
    assert_eq!(
        j["report_data"],
        format!(
            "d2142b643598eb5fae2bc8529dd79a558b29f868ccbb6531cb28dab9dce47728{}",
            "00".repeat(32)
        )
    );
    for at in [574, 709] {
        let err = appraise(&policy(lax), &flip(&quote, at), &e, T_2026).unwrap_err();
        assert!(
            matches!(err, Error::EvidenceSignatureInvalid { .. }),
            "byte {at}: {err}"
        );
    }
    // Every item has expired by then; like dcap-qvl, the CRL checked first (the root CA's) is named.
    let err = appraise(&policy(lax), &quote, &e, UnixTime(1_780_000_000)).unwrap_err();
    assert!(
        matches!(&err, Error::CollateralExpired { what, .. } if what.ends_with("CRL")),
        "{err}"
    );
}

/// Splits QuoteCollateralV3 into the files Intel PCS serves, and loads them from a directory.
#[test]
fn raw_pcs_responses_assemble_into_collateral() {
    let c: serde_json::Value = serde_json::from_slice(&read(TDX4_COLL)).unwrap();
    let s = |k: &str| c[k].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes).unwrap();
    w(
        "tcb_info.json",
        format!(
            "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
            s("tcb_info"),
            s("tcb_info_signature")
        )
        .as_bytes(),
    );
    w(
        "qe_identity.json",
        format!(
            "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
            s("qe_identity"),
            s("qe_identity_signature")
        )
        .as_bytes(),
    );
    w(
        "tcb_info_issuer_chain.pem",
        s("tcb_info_issuer_chain").as_bytes(),
    );
    w(
        "pck_crl_issuer_chain.pem",
        s("pck_crl_issuer_chain").as_bytes(),
    );
    w("pck_crl.der", &hex::decode(s("pck_crl")).unwrap());
    w("root_ca_crl.der", &hex::decode(s("root_ca_crl")).unwrap());
    let e = Endorsements::load(&[dir.path()]).unwrap();
    assert_eq!(e.sources().len(), 6);
    let verified =
        appraise(&policy(""), &read(TDX4), &e, T_2025).expect("raw PCS collateral verifies");
    assert_eq!(json(&verified)["tcb_status"], "UpToDate");

    std::fs::remove_file(dir.path().join("pck_crl.der")).unwrap();
    let e = Endorsements::load(&[dir.path()]).unwrap();
    let err = appraise(&policy(""), &read(TDX4), &e, T_2025).unwrap_err();
    assert!(err.to_string().contains("PCK CRL is missing"), "{err}");
}

#[test]
fn pck_platform_names_what_pcs_serves_collateral_for() {
    use attest::Evidence;
    use attest::evidence::{PckCa, PckPlatform};
    for (quote, coll) in [(SGX, SGX_COLL), (TDX4, TDX4_COLL), (TDX5, TDX5_COLL)] {
        let c: serde_json::Value = serde_json::from_slice(&read(coll)).unwrap();
        let tcb_info: serde_json::Value =
            serde_json::from_str(c["tcb_info"].as_str().unwrap()).unwrap();
        let pck = Evidence::from_bytes(&read(quote))
            .unwrap()
            .pck_platform()
            .unwrap()
            .unwrap();
        assert_eq!(
            hex::encode_upper(pck.fmspc),
            tcb_info["fmspc"].as_str().unwrap(),
            "{quote}"
        );
        // The PCK CRL in the collateral is the one of the CA that issued the PCK certificate.
        let pck_crl = hex::decode(c["pck_crl"].as_str().unwrap()).unwrap();
        let issuer = if pck_crl.windows(9).any(|w| w == b"Processor") {
            PckCa::Processor
        } else {
            PckCa::Platform
        };
        assert_eq!(pck.ca, issuer, "{quote}");
    }
    let snp = Evidence::from_bytes(&read("snp/test-report.bin")).unwrap();
    assert_eq!(snp.pck_platform().unwrap(), None::<PckPlatform>);
}

/// Where a fixture quote's signature data ends (its declared length; the TDX v4 sample carries
/// 70 zero bytes of padding after it).
const SGX_END: usize = 4600;
const TDX4_END: usize = 4936;

/// `bytes` with `extra` inserted at `at` and each little-endian u32 size field at `sizes`
/// grown to match: a quote whose framing admits the extra bytes as its own.
fn with_inserted(bytes: &[u8], at: usize, extra: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    for &field in sizes {
        let size = u32::from_le_bytes(out[field..field + 4].try_into().unwrap());
        let grown = size + u32::try_from(extra.len()).unwrap();
        out[field..field + 4].copy_from_slice(&grown.to_le_bytes());
    }
    out.splice(at..at, extra.iter().copied());
    out
}

fn trailing_bytes(err: &Error) -> Option<(&'static str, usize)> {
    match err {
        Error::EvidenceTrailingBytes {
            after, trailing, ..
        } => Some((after, *trailing)),
        _ => None,
    }
}

#[test]
fn bytes_appended_to_a_quote_are_refused_and_the_untouched_quotes_still_verify() {
    use attest::Evidence;
    let cases = [
        (SGX, SGX_COLL, SGX_ACCEPTING, T_2025, 0),
        (TDX4, TDX4_COLL, "", T_2025, 70),
        (TDX5, TDX5_COLL, "", T_2026, 0),
    ];
    for (name, coll, accepting, now, padding) in cases {
        let quote = read(name);
        let v = policy(accepting);
        let e = endorsements(&[coll]);
        for appended in [1, 100] {
            let mut longer = quote.clone();
            longer.extend(std::iter::repeat_n(0xA5, appended));
            let err = Evidence::from_bytes(&longer).unwrap_err();
            assert_eq!(
                trailing_bytes(&err),
                Some(("the signature data", padding + appended)),
                "{name} + {appended}: {err}"
            );
            assert!(
                err.to_string()
                    .contains(&format!("{} trailing byte", padding + appended)),
                "{err}"
            );
            let err = appraise(&v, &longer, &e, now).unwrap_err();
            assert!(trailing_bytes(&err).is_some(), "{name} + {appended}: {err}");
            // The same as hex text, as some tools write quotes.
            let err = Evidence::from_bytes(hex::encode(&longer).as_bytes()).unwrap_err();
            assert!(trailing_bytes(&err).is_some(), "{name} + {appended}: {err}");
        }
        // The untouched twin: affirmed (TDX v5: refused for its TCB level only, as EXPECTED.md says).
        match appraise(&v, &quote, &e, now) {
            Ok(_) => assert_ne!(name, TDX5),
            Err(err) => assert_eq!((name, err), (TDX5, Error::NoMatchingTcbLevel)),
        }
    }
}

#[test]
fn zero_padding_is_not_part_of_the_quote_or_its_digest() {
    use attest::{Digest256, Evidence};
    let tdx = read(TDX4);
    assert_eq!(tdx.len(), TDX4_END + 70, "fixture changed");
    let evidence = Evidence::from_bytes(&tdx).unwrap();
    assert_eq!(evidence.raw(), &tdx[..TDX4_END]);
    assert_eq!(evidence.digest(), Digest256::of(&tdx[..TDX4_END]));
    let verified = appraise(&policy(""), &tdx, &endorsements(&[TDX4_COLL]), T_2025).unwrap();
    let unpadded = appraise(
        &policy(""),
        &tdx[..TDX4_END],
        &endorsements(&[TDX4_COLL]),
        T_2025,
    )
    .unwrap();
    assert_eq!(
        json(&verified)["evidence_digest"],
        json(&unpadded)["evidence_digest"]
    );

    let sgx = read(SGX);
    let mut padded = sgx.clone();
    padded.resize(sgx.len() + 100, 0);
    assert_eq!(
        Evidence::from_bytes(&padded).unwrap().digest(),
        Evidence::from_bytes(&sgx).unwrap().digest()
    );
}

#[test]
fn unsigned_slack_inside_the_signature_data_is_refused() {
    use attest::Evidence;
    let sgx = read(SGX);
    // SGX v3: signature data length at 432; PCK certification data size at 1048, its chain
    // running to the end of the signature data.
    let cases = [
        (
            with_inserted(&sgx, SGX_END, &[0], &[432]),
            "the signature data",
            1,
        ),
        (
            with_inserted(&sgx, SGX_END, b"X", &[432, 1048]),
            "the PCK certificate chain",
            1,
        ),
        (
            with_inserted(&sgx, SGX_END, b"\n\0", &[432, 1048]),
            "the PCK certificate chain",
            2,
        ),
    ];
    // TDX v4: signature data length at 632; certification data (type 6) size at 766; inside it,
    // the PCK certification data size at 1254, all three ending together.
    let tdx = read(TDX4);
    let tdx = &tdx[..TDX4_END];
    let tdx_cases = [
        (
            with_inserted(tdx, TDX4_END, &[0; 3], &[632]),
            "the signature data",
            3,
        ),
        (
            with_inserted(tdx, TDX4_END, &[0; 2], &[632, 766]),
            "the QE report certification data",
            2,
        ),
        (
            with_inserted(tdx, TDX4_END, b"junk", &[632, 766, 1254]),
            "the PCK certificate chain",
            4,
        ),
    ];
    for (quote, after, trailing) in cases.into_iter().chain(tdx_cases) {
        let err = Evidence::from_bytes(&quote).unwrap_err();
        assert_eq!(trailing_bytes(&err), Some((after, trailing)), "{err}");
    }
    // The framing this test relies on is the fixtures': untouched, they parse.
    Evidence::from_bytes(&sgx).unwrap();
    Evidence::from_bytes(tdx).unwrap();
}

#[test]
fn pem_blocks_added_to_the_pck_chain_are_refused() {
    use attest::Evidence;
    // PEM readers skip what they cannot finish and the chain check ignores certificates it does
    // not need, so dcap-qvl alone affirms these; the parser refuses them. Inserted before the
    // chain's NUL terminator (offset 4599), sizes at 432 and 1048 grown to match.
    let sgx = read(SGX);
    for extra in [
        &b"-----BEGIN CERTIFICATE-----\nAAAA\n"[..],
        b"-----BEGIN X-----\n",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    ] {
        let quote = with_inserted(&sgx, SGX_END - 1, extra, &[432, 1048]);
        let err = Evidence::from_bytes(&quote).unwrap_err();
        // The NUL terminator, no longer right after the last certificate, is counted too.
        assert_eq!(
            trailing_bytes(&err),
            Some(("the PCK certificate chain", extra.len() + 1)),
            "{err}"
        );
    }
    // Text before the chain or between its certificates.
    let chain_start = 1052;
    let quote = with_inserted(&sgx, chain_start, b"note\n", &[432, 1048]);
    let err = Evidence::from_bytes(&quote).unwrap_err();
    assert!(
        matches!(&err, Error::EvidenceMalformed { reason, .. } if reason.contains("certificate 1 of 3 does not start")),
        "{err}"
    );
    let end_line = b"-----END CERTIFICATE-----\n";
    let second = chain_start
        + sgx[chain_start..]
            .windows(end_line.len())
            .position(|w| w == end_line)
            .unwrap()
        + end_line.len();
    let quote = with_inserted(&sgx, second, b"\n", &[432, 1048]);
    let err = Evidence::from_bytes(&quote).unwrap_err();
    assert!(
        matches!(&err, Error::EvidenceMalformed { reason, .. } if reason.contains("certificate 2 of 3")),
        "{err}"
    );
}
