//! The fetcher against a local stand-in for Intel PCS and AMD KDS serving the real fixtures:
//! fetched collateral must appraise exactly as the fixture files do, the second fetch must come
//! from the cache, and each failure must have its own readable error.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use attest::{AppraisalPolicy, Endorsements, Evidence, UnixTime, VerifiedClaims, Verifier};
use collateral::{Error, FetchedCollateral, Fetcher, FetcherConfig, SnpProduct};
use support::{Reply, Routes, VendorServer, amd_routes, fixture, intel_routes};

const T_2025: UnixTime = UnixTime(1_750_377_600);
const T_2026: UnixTime = UnixTime(1_772_323_200);
const SGX_ACCEPTING: &str = r#"
accepted_tcb_statuses = ["UpToDate", "ConfigurationAndSWHardeningNeeded"]
allowed_advisories = ["INTEL-SA-00289", "INTEL-SA-00615"]
"#;

fn config(server: &VendorServer, cache: &Path) -> FetcherConfig {
    let mut config = FetcherConfig::new(cache);
    config.intel_pcs_base = server.base_url();
    config.intel_certs_base = format!("{}/", server.base_url());
    config.amd_kds_base = server.base_url();
    config.timeout = Duration::from_secs(20);
    config
}

fn evidence(rel: &str) -> Evidence {
    Evidence::from_bytes(&std::fs::read(fixture(rel)).unwrap()).unwrap()
}

fn verifier(policy: &str) -> Verifier {
    Verifier::new(AppraisalPolicy::from_toml(policy).unwrap())
}

fn appraise(
    policy: &str,
    evidence_rel: &str,
    endorsements: &[PathBuf],
    now: UnixTime,
) -> Result<VerifiedClaims, attest::Error> {
    let e = Endorsements::load(endorsements).unwrap();
    verifier(policy).appraise_bytes(&std::fs::read(fixture(evidence_rel)).unwrap(), &e, now)
}

/// Fetches, appraises, and checks the outcome equals the one with the fixture's own files; then
/// fetches again and checks the server saw no new request. The cache lives as long as the
/// returned directory.
fn fetch_and_compare(
    routes: Routes,
    evidence_rel: &str,
    product: Option<SnpProduct>,
    fixture_endorsements: &[&str],
    policy: &str,
    now: UnixTime,
) -> (FetchedCollateral, tempfile::TempDir) {
    let server = VendorServer::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(config(&server, cache.path()));
    let fetched = fetcher.fetch(&evidence(evidence_rel), product).unwrap();
    assert_eq!(fetched.from_cache, 0);
    assert_eq!(server.request_count(), fetched.downloaded);
    for file in &fetched.files {
        assert!(file.starts_with(cache.path()), "{}", file.display());
    }

    let expected: Vec<PathBuf> = fixture_endorsements.iter().map(|r| fixture(r)).collect();
    let with_fixture = appraise(policy, evidence_rel, &expected, now);
    let with_fetched = appraise(policy, evidence_rel, &fetched.files, now);
    match (&with_fixture, &with_fetched) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a.to_flat_json(), b.to_flat_json());
            assert_eq!(a.warnings(), b.warnings());
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("fixture files gave {with_fixture:?}, fetched files {with_fetched:?}"),
    }

    let requests = server.request_count();
    let again = fetcher.fetch(&evidence(evidence_rel), product).unwrap();
    assert_eq!(
        server.request_count(),
        requests,
        "second fetch is served by the cache"
    );
    assert_eq!(again.downloaded, 0);
    assert_eq!(again.from_cache, fetched.downloaded);
    assert_eq!(again.files, fetched.files);
    (fetched, cache)
}

#[test]
fn sgx_collateral_from_pcs_affirms_like_the_fixture() {
    let (fetched, _cache) = fetch_and_compare(
        intel_routes("sgx/sgx_quote_collateral.json"),
        "sgx/sgx_quote",
        None,
        &["sgx/sgx_quote_collateral.json"],
        SGX_ACCEPTING,
        T_2025,
    );
    assert_eq!(fetched.downloaded, 4);
    // TCB info and QE identity share their issuer chain: six distinct files.
    assert_eq!(fetched.files.len(), 6, "{:?}", fetched.files);
    let verified = appraise(SGX_ACCEPTING, "sgx/sgx_quote", &fetched.files, T_2025).unwrap();
    assert_eq!(
        verified.to_flat_json()["tcb_status"],
        "ConfigurationAndSWHardeningNeeded"
    );
    // The default policy refuses it, as it refuses the fixture.
    let err = appraise("", "sgx/sgx_quote", &fetched.files, T_2025).unwrap_err();
    assert!(
        matches!(err, attest::Error::TcbStatusNotAccepted { .. }),
        "{err}"
    );
}

#[test]
fn tdx_collateral_from_pcs_affirms_like_the_fixture() {
    let (fetched, _cache) = fetch_and_compare(
        intel_routes("tdx/tdx_quote_collateral.json"),
        "tdx/tdx_quote",
        None,
        &["tdx/tdx_quote_collateral.json"],
        "",
        T_2025,
    );
    let verified = appraise("", "tdx/tdx_quote", &fetched.files, T_2025).unwrap();
    let j = verified.to_flat_json();
    assert_eq!(j["tcb_status"], "UpToDate");
    assert_eq!(
        j["mrtd"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
}

#[test]
fn tdx_v5_collateral_from_pcs_refuses_like_the_fixture() {
    let (fetched, _cache) = fetch_and_compare(
        intel_routes("tdx/tdx_quote_outdated_collateral.json"),
        "tdx/tdx_quote_outdated",
        None,
        &["tdx/tdx_quote_outdated_collateral.json"],
        "",
        T_2026,
    );
    let err = appraise("", "tdx/tdx_quote_outdated", &fetched.files, T_2026).unwrap_err();
    assert!(err.to_string().contains("no matching TCB level"), "{err}");
}

#[test]
fn snp_vcek_and_chain_from_kds_affirm_like_the_fixture() {
    for (report, vcek, chain) in [
        (
            "snp/test-report.bin",
            "snp/test-vcek.der",
            "snp/virtee_cert_chain_milan.pem",
        ),
        (
            "snp/virtee_report_milan.hex",
            "snp/virtee_vcek_milan.der",
            "snp/virtee_cert_chain_milan.pem",
        ),
    ] {
        let (fetched, _cache) = fetch_and_compare(
            amd_routes(vcek, chain),
            report,
            Some(SnpProduct::Milan),
            &[vcek, chain],
            "",
            T_2025,
        );
        assert_eq!(fetched.downloaded, 2);
        let verified = appraise("", report, &fetched.files, T_2025).unwrap();
        assert_eq!(verified.to_flat_json()["product"], "Milan");
    }
}

#[test]
fn snp_product_must_be_known_and_vlek_is_not_fetchable() {
    let server = VendorServer::start(amd_routes(
        "snp/test-vcek.der",
        "snp/virtee_cert_chain_milan.pem",
    ));
    let cache = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(config(&server, cache.path()));

    // A version 2 report does not say its product.
    let err = fetcher
        .fetch(&evidence("snp/test-report.bin"), None)
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedEvidence { .. }), "{err}");
    assert!(err.to_string().contains("milan, genoa or turin"), "{err}");

    // The wrong product: KDS has no such VCEK.
    let err = fetcher
        .fetch(&evidence("snp/test-report.bin"), Some(SnpProduct::Genoa))
        .unwrap_err();
    assert!(
        matches!(&err, Error::HttpStatus { status: 404, url, .. } if url.contains("/vcek/v1/Genoa/")),
        "{err}"
    );

    let err = fetcher
        .fetch(
            &evidence("snp/test-vlek-report.bin"),
            Some(SnpProduct::Milan),
        )
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedEvidence { .. }), "{err}");
    assert!(err.to_string().contains("VLEK"), "{err}");

    let sim = attest::SimulatedAttester::new(attest::Measurement384([7; 48]))
        .report(&attest::ReportData([0; 64]), T_2025);
    let err = fetcher
        .fetch(&Evidence::from_bytes(&sim).unwrap(), None)
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedEvidence { .. }), "{err}");
}

#[test]
fn offline_uses_only_the_cache() {
    let server = VendorServer::start(intel_routes("tdx/tdx_quote_collateral.json"));
    let cache = tempfile::tempdir().unwrap();
    let mut offline = config(&server, cache.path());
    offline.offline = true;
    let err = Fetcher::new(offline.clone())
        .fetch(&evidence("tdx/tdx_quote"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotCached { url, .. } if url.contains("/tdx/certification/v4/tcb?fmspc=")),
        "{err}"
    );
    assert!(err.to_string().contains("offline"), "{err}");
    assert_eq!(
        server.request_count(),
        0,
        "offline never touches the network"
    );

    let online = Fetcher::new(config(&server, cache.path()))
        .fetch(&evidence("tdx/tdx_quote"), None)
        .unwrap();
    let requests = server.request_count();

    // Offline, even responses older than the maximum age are used.
    age_all_files(cache.path(), Duration::from_secs(7 * 24 * 3600));
    let cached = Fetcher::new(offline)
        .fetch(&evidence("tdx/tdx_quote"), None)
        .unwrap();
    assert_eq!(cached.files, online.files);
    assert_eq!(server.request_count(), requests);

    // Online, they are fetched again.
    let refreshed = Fetcher::new(config(&server, cache.path()))
        .fetch(&evidence("tdx/tdx_quote"), None)
        .unwrap();
    assert_eq!(refreshed.downloaded, 4);
    assert_eq!(server.request_count(), requests + 4);
    appraise("", "tdx/tdx_quote", &refreshed.files, T_2025).unwrap();
}

fn age_all_files(dir: &Path, by: Duration) {
    let then = SystemTime::now() - by;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(then))
            .unwrap();
    }
}

#[test]
fn http_404_is_its_own_error_with_url_and_body() {
    let server = VendorServer::start(Routes::new());
    let cache = tempfile::tempdir().unwrap();
    let err = Fetcher::new(config(&server, cache.path()))
        .fetch(&evidence("sgx/sgx_quote"), None)
        .unwrap_err();
    let Error::HttpStatus {
        url,
        status,
        body_excerpt,
    } = &err
    else {
        panic!("{err}");
    };
    assert_eq!(*status, 404);
    assert!(
        url.ends_with("/sgx/certification/v4/tcb?fmspc=00A067110000"),
        "{url}"
    );
    assert!(body_excerpt.contains("no route"), "{body_excerpt}");
    assert!(
        err.to_string()
            .starts_with("HTTP 404 from http://127.0.0.1:"),
        "{err}"
    );
}

#[test]
fn missing_issuer_chain_header_is_a_clear_error_and_nothing_is_cached() {
    let mut routes = intel_routes("sgx/sgx_quote_collateral.json");
    for reply in routes.values_mut() {
        reply
            .headers
            .retain(|(name, _)| name != "TCB-Info-Issuer-Chain");
    }
    let server = VendorServer::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let err = Fetcher::new(config(&server, cache.path()))
        .fetch(&evidence("sgx/sgx_quote"), None)
        .unwrap_err();
    assert!(
        matches!(&err, Error::MissingHeader { header: "TCB-Info-Issuer-Chain", url } if url.contains("/tcb?")),
        "{err}"
    );
    assert!(err.to_string().contains("TCB-Info-Issuer-Chain"), "{err}");
    assert!(!cache.path().exists() || std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

#[test]
fn an_error_page_with_status_200_is_refused_and_not_cached() {
    let mut routes = amd_routes("snp/test-vcek.der", "snp/virtee_cert_chain_milan.pem");
    for reply in routes.values_mut() {
        *reply = Reply::ok(b"<html>please log in</html>".to_vec());
    }
    let server = VendorServer::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let err = Fetcher::new(config(&server, cache.path()))
        .fetch(&evidence("snp/test-report.bin"), Some(SnpProduct::Milan))
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err}");
    assert!(std::fs::read_dir(cache.path()).unwrap().next().is_none());
}

#[test]
fn an_unreachable_server_is_a_network_error() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = tempfile::tempdir().unwrap();
    let mut config = FetcherConfig::new(cache.path());
    config.intel_pcs_base = format!("http://127.0.0.1:{port}");
    let err = Fetcher::new(config)
        .fetch(&evidence("sgx/sgx_quote"), None)
        .unwrap_err();
    assert!(matches!(err, Error::Network { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}
