//! The CLI contract of `teemesh attest`, exercised on the real binary: one JSON object on stdout
//! and exit 0 when affirmed; exit 1 and a one-line reason on stderr when refused.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../collateral/tests/support/mod.rs"]
mod vendor_server;

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/fixtures")
        .join(rel)
}

fn teemesh(home: &Path, args: &[&str]) -> Output {
    teemesh_with_env(home, args, &[])
}

fn teemesh_with_env(home: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_teemesh"));
    command
        .args(args)
        .env("TEEMESH_HOME", home)
        .env_remove("RUST_LOG");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Fails unless `out` is a usage/environment error: exit 2, nothing on stdout, one line on
/// stderr (returned).
fn error_line(out: &Output) -> String {
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line reason: {stderr}"
    );
    stderr
}

fn json_of(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON object on one line: {stdout}"
    );
    serde_json::from_str(stdout.trim()).unwrap()
}

fn refused_line(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "refusal exits 1; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "nothing on stdout when refused");
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line reason: {stderr}"
    );
    stderr
}

#[test]
fn verify_tdx_prints_the_contract_json() {
    let home = tempfile::tempdir().unwrap();
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "verify",
            "--evidence",
            fixture("tdx/tdx_quote").to_str().unwrap(),
            "--endorsements",
            fixture("tdx/tdx_quote_collateral.json").to_str().unwrap(),
            "--at",
            "2025-06-20T00:00:00Z",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["platform"], "tdx");
    assert_eq!(j["simulated"], false);
    assert_eq!(j["tcb_status"], "UpToDate");
    assert_eq!(j["advisory_ids"], serde_json::json!([]));
    assert_eq!(
        j["mrtd"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(j["rtmr3"], "00".repeat(48));
    assert!(j["report_data"].as_str().unwrap().starts_with("9a9d48e7"));

    // The token verifies with the same local verifier key, and a tampered one does not.
    let token = j["result_token"].as_str().unwrap();
    let out = teemesh(
        home.path(),
        &["attest", "result-verify", token, "--at", "1750377700"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["mrtd"], j["mrtd"]);
    let mut forged = token.to_owned();
    let mid = forged.len() / 2;
    forged.replace_range(
        mid..mid + 1,
        if &token[mid..mid + 1] == "A" {
            "B"
        } else {
            "A"
        },
    );
    let line = refused_line(&teemesh(
        home.path(),
        &["attest", "result-verify", &forged, "--at", "1750377700"],
    ));
    assert!(line.contains("token"), "{line}");
}

#[test]
fn verify_snp_with_repeated_endorsements() {
    let home = tempfile::tempdir().unwrap();
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "verify",
            "--evidence",
            fixture("snp/test-vlek-report.bin").to_str().unwrap(),
            "--endorsements",
            fixture("snp/test-vlek.der").to_str().unwrap(),
            "--endorsements",
            fixture("snp/milan_ask_ark_asvk.pem").to_str().unwrap(),
            "--at",
            "1750377600",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["platform"], "snp");
    assert_eq!(
        j["measurement"],
        "8922ebbdd00ec2c541f36a6e7a82a8773a7accb451ed67bc94e740dbe92c93c4e8c9af857f5ceeb5a493df2a570d7bf0"
    );
    assert_eq!(j["reported_tcb"], "04000000000018d9");
}

#[test]
fn sgx_is_refused_by_the_default_policy_and_affirmed_by_an_accepting_one() {
    let home = tempfile::tempdir().unwrap();
    let base = [
        "attest".to_owned(),
        "verify".into(),
        "--evidence".into(),
        fixture("sgx/sgx_quote").display().to_string(),
        "--endorsements".into(),
        fixture("sgx").display().to_string(),
        "--at".into(),
        "2025-06-20T00:00:00Z".into(),
    ];
    let args: Vec<&str> = base.iter().map(String::as_str).collect();
    let line = refused_line(&teemesh(home.path(), &args));
    assert!(
        line.contains("ConfigurationAndSWHardeningNeeded is not accepted"),
        "{line}"
    );

    let policy = home.path().join("policy.toml");
    std::fs::write(&policy, "accepted_tcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\nallowed_advisories = [\"INTEL-SA-00289\", \"INTEL-SA-00615\"]\n").unwrap();
    let mut with_policy = args.clone();
    with_policy.extend(["--policy", policy.to_str().unwrap()]);
    let out = teemesh(home.path(), &with_policy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(
        j["mrenclave"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(
        j["mrsigner"],
        "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
    );
    assert_eq!(
        j["advisory_ids"],
        serde_json::json!(["INTEL-SA-00289", "INTEL-SA-00615"])
    );
}

#[test]
fn simulated_evidence_round_trip_with_warning() {
    let home = tempfile::tempdir().unwrap();
    let evidence = home.path().join("sim.bin");
    let rd = "ab".repeat(64);
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "sim-evidence",
            "--report-data",
            &rd,
            "--out",
            evidence.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIMULATED"));

    let line = refused_line(&teemesh(
        home.path(),
        &["attest", "verify", "--evidence", evidence.to_str().unwrap()],
    ));
    assert!(line.contains("allow_simulated"), "{line}");

    let policy = home.path().join("sim.toml");
    std::fs::write(&policy, "allow_simulated = true\n").unwrap();
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "verify",
            "--evidence",
            evidence.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: SIMULATED TEE"));
    let j = json_of(&out);
    assert_eq!(j["platform"], "sim");
    assert_eq!(j["simulated"], true);
    assert_eq!(j["report_data"], rd);
}

#[test]
fn bad_inputs_get_one_line_reasons() {
    let home = tempfile::tempdir().unwrap();
    let junk = home.path().join("junk.bin");
    std::fs::write(&junk, b"not evidence at all").unwrap();
    let line = refused_line(&teemesh(
        home.path(),
        &["attest", "verify", "--evidence", junk.to_str().unwrap()],
    ));
    assert!(line.contains("unrecognised evidence"), "{line}");
    // Usage errors exit 2.
    let out = teemesh(
        home.path(),
        &["attest", "verify", "--evidence", "/nonexistent/q"],
    );
    assert_eq!(out.status.code(), Some(2));
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "sim-evidence",
            "--report-data",
            "abcd",
            "--out",
            "/tmp/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected 64 bytes"));
}

#[test]
fn demo_runs_and_matches_its_expectations() {
    let home = tempfile::tempdir().unwrap();
    let out = teemesh(home.path(), &["demo"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SIMULATED TEE"));
    assert!(stdout.contains("mallory (modified binary)"));
    assert!(stdout.contains("[8/8] The attested MQTT broker inside a node"));
    assert!(
        stdout.contains("affirmed as \"node-m\", platform sim"),
        "{stdout}"
    );
    assert_eq!(
        stdout.matches("subscriber ← plant/alerts: ").count(),
        3,
        "{stdout}"
    );
    assert!(
        stdout.contains("REFUSED by the broker, PUBACK NotAuthorized (0x87)"),
        "{stdout}"
    );
    assert!(stdout.contains("a forged alert was refused"), "{stdout}");
    assert!(stdout.contains("Summary:"));
}

#[test]
fn bench_atls_measures_every_mode_and_the_bulk_transfer() {
    let home = tempfile::tempdir().unwrap();
    let out = teemesh(
        home.path(),
        &["bench", "atls", "--iterations", "5", "--bulk-mib", "1"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Only the shape of the report: timings depend on the machine and are never asserted.
    for row in [
        "(a) plain rustls mTLS",
        "(b) attested, cold appraisal",
        "(c) attested, cached appraisal",
        "(d) attested, per-session freshness",
        "bulk (a) plain",
        "bulk (c) attested",
    ] {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.trim_start().starts_with(row))
                .count(),
            1,
            "one row {row:?} in:\n{stdout}"
        );
    }
    assert!(stdout.contains("bulk: 1 MiB"), "{stdout}");
    assert!(
        stdout.contains("(c) ≤ 1.5× (a) handshake latency"),
        "{stdout}"
    );
    assert!(stdout.contains("bulk throughput equal"), "{stdout}");
}

#[test]
fn evidence_from_the_simulated_platform_round_trips_through_verify() {
    let home = tempfile::tempdir().unwrap();
    let evidence = home.path().join("evidence.bin");
    let rd = "cd".repeat(64);
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "evidence",
            "--platform",
            "sim",
            "--report-data",
            &rd,
            "--out",
            evidence.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: wrote SIMULATED evidence"));
    let summary = json_of(&out);
    assert_eq!(summary["platform"], "sim");
    assert_eq!(summary["simulated"], true);
    assert_eq!(summary["report_data"], rd);
    assert!(
        summary["attester"]
            .as_str()
            .unwrap()
            .starts_with("SIMULATED TEE")
    );

    let line = refused_line(&teemesh(
        home.path(),
        &["attest", "verify", "--evidence", evidence.to_str().unwrap()],
    ));
    assert!(line.contains("allow_simulated"), "{line}");

    let policy = home.path().join("sim.toml");
    std::fs::write(&policy, "allow_simulated = true\n").unwrap();
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "verify",
            "--evidence",
            evidence.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = json_of(&out);
    assert_eq!(verified["platform"], "sim");
    assert_eq!(verified["report_data"], rd);
    assert_eq!(verified["measurement"], summary["measurement"]);
}

#[test]
fn evidence_without_the_named_tee_is_a_readable_error() {
    let home = tempfile::tempdir().unwrap();
    let evidence = home.path().join("evidence.bin");
    let missing_tsm = home.path().join("no/tsm/report");
    let missing_gramine = home.path().join("no/attestation");
    let env = [
        ("TEEMESH_CONFIGFS_TSM_ROOT", missing_tsm.as_path()),
        ("TEEMESH_GRAMINE_ROOT", missing_gramine.as_path()),
    ];
    let rd = "00".repeat(64);
    let args = |platform: &'static str| {
        [
            "attest".to_owned(),
            "evidence".into(),
            "--platform".into(),
            platform.into(),
            "--report-data".into(),
            rd.clone(),
            "--out".into(),
            evidence.display().to_string(),
        ]
    };

    let tdx = args("tdx");
    let tdx: Vec<&str> = tdx.iter().map(String::as_str).collect();
    let line = error_line(&teemesh_with_env(home.path(), &tdx, &env));
    assert!(
        line.contains("--platform tdx")
            && line.contains("configfs-tsm")
            && line.contains("not a TDX or SEV-SNP guest")
            && line.contains(&missing_tsm.display().to_string()),
        "{line}"
    );

    // Auto-detection finds nothing and says how to ask for the simulation; it never picks it.
    let auto = args("auto");
    let auto: Vec<&str> = auto.iter().map(String::as_str).collect();
    let line = error_line(&teemesh_with_env(home.path(), &auto, &env));
    assert!(
        line.contains("no TEE found") && line.contains("--platform sim"),
        "{line}"
    );
    assert!(!evidence.exists(), "no evidence file on failure");

    let bogus = args("sev");
    let bogus: Vec<&str> = bogus.iter().map(String::as_str).collect();
    let out = teemesh_with_env(home.path(), &bogus, &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown platform"));
}

/// SGX through a fake Gramine tree (a plain directory behaves like `/dev/attestation` for one
/// writer), with the real quote fixture, then verified with its collateral. (configfs-tsm cannot
/// be faked across processes this way: its writes must bump `generation`, which a plain
/// directory does not do; the `platform` crate tests it against an in-process fake kernel.)
#[test]
fn evidence_from_a_fake_gramine_tree_verifies() {
    let home = tempfile::tempdir().unwrap();
    let gramine = home.path().join("dev/attestation");
    std::fs::create_dir_all(&gramine).unwrap();
    let quote = std::fs::read(fixture("sgx/sgx_quote")).unwrap();
    std::fs::write(gramine.join("attestation_type"), "dcap\n").unwrap();
    std::fs::write(gramine.join("user_report_data"), b"").unwrap();
    std::fs::write(gramine.join("quote"), &quote).unwrap();
    let rd = attest::Evidence::from_bytes(&quote)
        .unwrap()
        .report_data()
        .to_hex();
    let evidence = home.path().join("quote.bin");
    let out = teemesh_with_env(
        home.path(),
        &[
            "attest",
            "evidence",
            "--platform",
            "sgx",
            "--report-data",
            &rd,
            "--out",
            evidence.to_str().unwrap(),
        ],
        &[("TEEMESH_GRAMINE_ROOT", gramine.as_path())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "no simulation warning for hardware evidence"
    );
    let summary = json_of(&out);
    assert_eq!(summary["platform"], "sgx");
    assert_eq!(summary["simulated"], false);
    assert_eq!(
        summary["measurement"],
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(std::fs::read(&evidence).unwrap(), quote);
    assert_eq!(
        std::fs::read(gramine.join("user_report_data")).unwrap(),
        hex::decode(&rd).unwrap()
    );

    let policy = home.path().join("policy.toml");
    std::fs::write(&policy, "accepted_tcb_statuses = [\"ConfigurationAndSWHardeningNeeded\"]\nallowed_advisories = [\"INTEL-SA-00289\", \"INTEL-SA-00615\"]\n").unwrap();
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "verify",
            "--evidence",
            evidence.to_str().unwrap(),
            "--endorsements",
            fixture("sgx/sgx_quote_collateral.json").to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--at",
            "2025-06-20T00:00:00Z",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["report_data"], rd);

    // A quote for other report data (stale, or another writer's) is refused at the attester.
    let other = "ee".repeat(64);
    let line = error_line(&teemesh_with_env(
        home.path(),
        &[
            "attest",
            "evidence",
            "--platform",
            "sgx",
            "--report-data",
            &other,
            "--out",
            home.path().join("other.bin").to_str().unwrap(),
        ],
        &[("TEEMESH_GRAMINE_ROOT", gramine.as_path())],
    ));
    assert!(line.contains("other report data"), "{line}");
}

#[test]
fn verify_fetches_collateral_only_when_asked_and_caches_it() {
    let home = tempfile::tempdir().unwrap();
    let pcs = vendor_server::VendorServer::start(vendor_server::intel_routes(
        "tdx/tdx_quote_collateral.json",
    ));
    let quote = fixture("tdx/tdx_quote").display().to_string();
    let base = [
        "attest",
        "verify",
        "--evidence",
        &quote,
        "--at",
        "2025-06-20T00:00:00Z",
    ];

    // Off by default: no endorsements, no fetch, a refusal that says collateral is missing.
    let line = refused_line(&teemesh(home.path(), &base));
    assert!(line.contains("collateral"), "{line}");
    assert_eq!(pcs.request_count(), 0);

    let url = pcs.base_url();
    let mut fetching = base.to_vec();
    fetching.extend([
        "--fetch-collateral",
        "--pcs-url",
        &url,
        "--intel-certs-url",
        &url,
    ]);
    let out = teemesh(home.path(), &fetching);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["tcb_status"], "UpToDate");
    assert_eq!(
        j["mrtd"],
        "91eb2b44d141d4ece09f0c75c2c53d247a3c68edd7fafe8a3520c942a604a407de03ae6dc5f87f27428b2538873118b7"
    );
    assert_eq!(pcs.request_count(), 4);
    // The default cache is under the teemesh home; the second run is served from it.
    assert!(home.path().join("collateral").read_dir().unwrap().count() >= 6);
    let out = teemesh(home.path(), &fetching);
    assert!(out.status.success());
    assert_eq!(pcs.request_count(), 4);

    // Offline with an empty cache: a usage/I-O failure (exit 2) naming the missing URL.
    let empty = home.path().join("empty-cache");
    let mut offline = fetching.clone();
    offline.extend([
        "--collateral-cache",
        empty.to_str().unwrap(),
        "--collateral-offline",
    ]);
    let out = teemesh(home.path(), &offline);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("offline") && stderr.contains("/tdx/certification/v4/tcb?fmspc="),
        "{stderr}"
    );
    assert_eq!(pcs.request_count(), 4);

    // Fetch options without --fetch-collateral are a usage error.
    let mut stray = base.to_vec();
    stray.extend(["--pcs-url", &url]);
    assert_eq!(teemesh(home.path(), &stray).status.code(), Some(2));
}

#[test]
fn verify_fetches_a_vcek_from_kds() {
    let home = tempfile::tempdir().unwrap();
    let kds = vendor_server::VendorServer::start(vendor_server::amd_routes(
        "snp/test-vcek.der",
        "snp/virtee_cert_chain_milan.pem",
    ));
    let report = fixture("snp/test-report.bin").display().to_string();
    let url = kds.base_url();
    let out = teemesh(
        home.path(),
        &[
            "attest",
            "verify",
            "--evidence",
            &report,
            "--at",
            "1750377600",
            "--fetch-collateral",
            "--kds-url",
            &url,
            "--snp-product",
            "milan",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json_of(&out);
    assert_eq!(j["platform"], "snp");
    assert_eq!(j["product"], "Milan");
    assert_eq!(j["reported_tcb"], "0300000000000873");
    assert_eq!(kds.request_count(), 2);
}
