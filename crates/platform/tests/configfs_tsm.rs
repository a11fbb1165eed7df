//! configfs-tsm against a fake kernel on a temporary directory, with the real TDX quote and
//! SEV-SNP report fixtures as `outblob`, and their failing twins.

#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use attest::{
    AppraisalPolicy, Endorsements, Evidence, PlatformKind, ReportData, UnixTime, Verifier,
};
use platform::snp_certs::encode_cert_table;
use platform::{Attester, ConfigfsTsm, PlatformError, SnpCertRole, SnpCertificate};
use support::{FakeTsmKernel, is_empty_dir, read, report_data_of};
use x509_cert::der::Encode as _;

const TDX_QUOTE: &str = "tdx/tdx_quote";
const SNP_REPORT: &str = "snp/test-report.bin";
const SNP_VCEK: &str = "snp/test-vcek.der";
const MILAN_CHAIN: &str = "snp/milan_ask_ark_asvk.pem";

fn open(kernel: FakeTsmKernel) -> (tempfile::TempDir, Arc<FakeTsmKernel>, ConfigfsTsm) {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(kernel);
    let tsm = ConfigfsTsm::with_io(root.path(), kernel.clone()).unwrap();
    (root, kernel, tsm)
}

/// VCEK from its fixture, ASK and ARK from the Milan bundle (its first two certificates).
fn snp_certificates() -> Vec<SnpCertificate> {
    let chain = x509_cert::Certificate::load_pem_chain(&read(MILAN_CHAIN)).unwrap();
    vec![
        SnpCertificate {
            role: SnpCertRole::Vcek,
            der: read(SNP_VCEK),
        },
        SnpCertificate {
            role: SnpCertRole::Ask,
            der: chain[0].to_der().unwrap(),
        },
        SnpCertificate {
            role: SnpCertRole::Ark,
            der: chain[1].to_der().unwrap(),
        },
    ]
}

#[test]
fn tdx_evidence_is_the_outblob_for_the_report_data_written() {
    let quote = read(TDX_QUOTE);
    let report_data = report_data_of(&quote);
    let (root, kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", quote.clone()));
    assert_eq!(tsm.kind(), PlatformKind::Tdx);
    assert!(tsm.describe().starts_with("Intel TDX via configfs-tsm at "));

    let evidence = tsm.evidence(&report_data).unwrap();
    assert_eq!(evidence, quote);
    let parsed = Evidence::from_bytes(&evidence).unwrap();
    assert_eq!(parsed.platform(), PlatformKind::Tdx);
    assert_eq!(parsed.report_data(), &report_data);
    assert_eq!(
        kernel.inblobs.lock().unwrap().as_slice(),
        [report_data.as_bytes().to_vec()]
    );
    assert!(kernel.privlevels.lock().unwrap().is_empty());
    assert!(is_empty_dir(root.path()), "report entries are removed");

    let report = tsm.report(&report_data).unwrap();
    assert_eq!(report.kind, PlatformKind::Tdx);
    assert_eq!(report.generation, 1);
    assert!(report.certificates.is_empty());
}

#[test]
fn tdx_twin_other_report_data_is_refused() {
    let quote = read(TDX_QUOTE);
    let (root, _kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", quote));
    let err = tsm.evidence(&ReportData([0x11; 64])).unwrap_err();
    assert!(
        matches!(err, PlatformError::ReportDataMismatch { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("other report data"), "{err}");
    assert!(is_empty_dir(root.path()));
}

#[test]
fn snp_evidence_comes_with_its_certificate_table() {
    let report = read(SNP_REPORT);
    let report_data = report_data_of(&report);
    let certificates = snp_certificates();
    let (root, kernel, tsm) = open(
        FakeTsmKernel::new("sev_guest", report.clone())
            .with_auxblob(encode_cert_table(&certificates).unwrap()),
    );
    let tsm = tsm.with_privlevel(0).unwrap();
    assert_eq!(tsm.kind(), PlatformKind::Snp);
    assert!(tsm.describe().contains("AMD SEV-SNP"), "{}", tsm.describe());

    let generated = tsm.generate(&report_data).unwrap();
    assert_eq!(generated.evidence, report);
    assert_eq!(generated.certificates, certificates);
    assert_eq!(kernel.privlevels.lock().unwrap().as_slice(), ["0"]);
    assert!(is_empty_dir(root.path()));

    // The table's certificates are the endorsements the verifier needs. (As PEM: `attest`
    // trims ASCII whitespace off endorsement bytes, which breaks DER ending in 0x09 — like this
    // ARK.)
    let mut endorsements = Endorsements::new();
    for certificate in &generated.certificates {
        endorsements
            .add_bytes(
                &certificate.role.to_string(),
                certificate.to_pem().unwrap().as_bytes(),
            )
            .unwrap();
    }
    assert_eq!(endorsements.amd_certs().len(), 3);
    let verifier = Verifier::new(AppraisalPolicy::from_toml("").unwrap());
    let verified = verifier
        .appraise_bytes(&generated.evidence, &endorsements, UnixTime(1_750_377_600))
        .unwrap();
    assert_eq!(verified.to_flat_json()["signing_key"], "VCEK");
}

#[test]
fn snp_twin_truncated_certificate_table_is_refused() {
    let report = read(SNP_REPORT);
    let report_data = report_data_of(&report);
    let mut table = encode_cert_table(&snp_certificates()).unwrap();
    table.truncate(table.len() - 100);
    let (root, _kernel, tsm) = open(FakeTsmKernel::new("sev_guest", report).with_auxblob(table));
    let err = tsm.evidence(&report_data).unwrap_err();
    assert!(matches!(err, PlatformError::CertTable { .. }), "{err}");
    assert!(
        err.to_string().contains("entry 2 (ARK)") && err.to_string().contains("past the end"),
        "{err}"
    );
    assert!(is_empty_dir(root.path()));
}

#[test]
fn snp_without_auxblob_has_no_certificates() {
    let report = read(SNP_REPORT);
    let report_data = report_data_of(&report);
    let (_root, _kernel, tsm) = open(FakeTsmKernel::new("sev_guest", report));
    assert!(tsm.generate(&report_data).unwrap().certificates.is_empty());
}

#[test]
fn a_generation_race_is_retried_in_a_fresh_entry() {
    let quote = read(TDX_QUOTE);
    let report_data = report_data_of(&quote);
    let (root, kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", quote.clone()).with_races(2));
    assert_eq!(tsm.evidence(&report_data).unwrap(), quote);
    assert_eq!(
        kernel.inblobs.lock().unwrap().len(),
        3,
        "two raced attempts"
    );
    assert!(is_empty_dir(root.path()));
}

#[test]
fn a_persistent_generation_race_is_an_error() {
    let quote = read(TDX_QUOTE);
    let report_data = report_data_of(&quote);
    let (root, kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", quote).with_races(10));
    let err = tsm.evidence(&report_data).unwrap_err();
    match &err {
        PlatformError::GenerationRace {
            expected,
            found,
            attempts,
            ..
        } => {
            assert_eq!((*expected, *found, *attempts), (1, 2, 3));
        }
        other => panic!("expected a generation race, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("written by someone else") && message.contains("after 3 attempts"),
        "{message}"
    );
    assert_eq!(kernel.inblobs.lock().unwrap().len(), 3);
    assert!(is_empty_dir(root.path()));

    let once = tsm.with_max_attempts(1);
    assert!(matches!(
        once.evidence(&report_data),
        Err(PlatformError::GenerationRace { attempts: 1, .. })
    ));
}

#[test]
fn missing_root_is_unavailable_with_a_readable_message() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("sys/kernel/config/tsm/report");
    let err = ConfigfsTsm::with_root(&root).unwrap_err();
    assert!(matches!(err, PlatformError::Unavailable { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains(&root.display().to_string()), "{message}");
    assert!(message.contains("not a TDX or SEV-SNP guest"), "{message}");
}

#[test]
fn unknown_provider_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeTsmKernel::new("arm_cca_guest", read(TDX_QUOTE)));
    let err = ConfigfsTsm::with_io(root.path(), kernel).unwrap_err();
    assert!(
        matches!(err, PlatformError::ProviderUnknown { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("\"arm_cca_guest\"") && message.contains("tdx_guest"),
        "{message}"
    );
    assert!(is_empty_dir(root.path()));
}

#[test]
fn provider_and_evidence_must_agree() {
    let quote = read(TDX_QUOTE);
    let report_data = report_data_of(&quote);
    let (_root, _kernel, tsm) = open(FakeTsmKernel::new("sev_guest", quote));
    let err = tsm.evidence(&report_data).unwrap_err();
    assert!(
        matches!(
            err,
            PlatformError::PlatformMismatch {
                expected: PlatformKind::Snp,
                found: PlatformKind::Tdx,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn empty_or_garbage_outblob_is_refused() {
    let (_root, _kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", Vec::new()));
    let err = tsm.evidence(&ReportData([0; 64])).unwrap_err();
    assert!(matches!(err, PlatformError::OutblobEmpty { .. }), "{err}");
    assert!(err.to_string().contains("outblob is empty"), "{err}");

    let (_root, _kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", b"garbage".to_vec()));
    let err = tsm.evidence(&ReportData([0; 64])).unwrap_err();
    assert!(
        matches!(err, PlatformError::EvidenceUnparseable { .. }),
        "{err}"
    );
}

#[test]
fn privlevel_is_bounded_and_snp_only() {
    let quote = read(TDX_QUOTE);
    let report_data = report_data_of(&quote);
    let (_root, _kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", quote));
    assert!(matches!(
        tsm.clone().with_privlevel(4),
        Err(PlatformError::PrivlevelOutOfRange { level: 4 })
    ));
    let err = tsm
        .with_privlevel(1)
        .unwrap()
        .evidence(&report_data)
        .unwrap_err();
    assert!(matches!(err, PlatformError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("no privilege levels"), "{err}");
}

#[test]
fn concurrent_callers_use_their_own_entries() {
    let quote = read(TDX_QUOTE);
    let report_data = report_data_of(&quote);
    let (root, kernel, tsm) = open(FakeTsmKernel::new("tdx_guest", quote.clone()));
    let tsm = Arc::new(tsm);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let tsm = tsm.clone();
            std::thread::spawn(move || tsm.evidence(&report_data))
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), quote);
    }
    assert_eq!(kernel.inblobs.lock().unwrap().len(), 4);
    assert!(is_empty_dir(root.path()));
}
