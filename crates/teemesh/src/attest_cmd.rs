//! `teemesh attest ...`: verify evidence under a policy and print the verified claims as one JSON
//! object; produce simulated evidence; verify attestation result tokens.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use attest::{
    AppraisalPolicy, AttestationResult, Endorsements, Measurement384, ReportData, ResultAlgorithm,
    ResultSigningKey, ResultVerifyingKey, SimulatedAttester, UnixTime, Verifier,
    issue_result_token,
};
use clap::{Args, Subcommand};
use collateral::{Fetcher, FetcherConfig, SnpProduct};
use serde_json::{Value, json};

use crate::Refused;

#[derive(Debug, Subcommand)]
pub(crate) enum AttestCommand {
    /// Appraise evidence; print the verified claims as JSON (exit 0) or a reason (exit 1).
    Verify(VerifyArgs),
    /// Write simulated evidence (no hardware protection) binding REPORT_DATA.
    SimEvidence(SimEvidenceArgs),
    /// Verify an attestation result token with the verifier's public key.
    ResultVerify(ResultVerifyArgs),
    /// Print the default appraisal policy as TOML (a starting point for your own).
    Policy,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The evidence: SGX/TDX quote, SEV-SNP report (binary or hex), or simulated report.
    #[arg(long, value_name = "FILE")]
    evidence: PathBuf,
    /// Endorsements (collateral JSON, PCS responses, VCEK/VLEK, ASK/ARK bundles); files or
    /// directories; repeatable.
    #[arg(long, value_name = "FILE|DIR")]
    endorsements: Vec<PathBuf>,
    /// Appraisal policy (TOML); the default refuses simulation, debug, and anything not UpToDate.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Verification time (RFC 3339 or Unix seconds); default now.
    #[arg(long, value_name = "RFC3339|UNIX")]
    at: Option<String>,
    /// Verifier key that signs the attestation result (PKCS#8 PEM; created if missing).
    #[arg(long, value_name = "FILE")]
    result_key: Option<PathBuf>,
    /// Algorithm for a newly created result key.
    #[arg(long, value_name = "ed25519|es256", default_value = "ed25519")]
    result_alg: String,
    #[command(flatten)]
    collateral: Box<CollateralArgs>,
}

/// Fetching endorsements from the vendors: off unless `--fetch-collateral` is given.
#[derive(Debug, Args)]
pub(crate) struct CollateralArgs {
    /// Fetch the evidence's endorsements from Intel PCS or AMD KDS (through a cache) and add
    /// them to --endorsements.
    #[arg(long)]
    fetch_collateral: bool,
    /// Intel PCS (or PCCS) base URL [default: https://api.trustedservices.intel.com].
    #[arg(long, value_name = "URL", requires = "fetch_collateral")]
    pcs_url: Option<String>,
    /// Base URL serving IntelSGXRootCA.der, the root CA CRL
    /// [default: https://certificates.trustedservices.intel.com].
    #[arg(long, value_name = "URL", requires = "fetch_collateral")]
    intel_certs_url: Option<String>,
    /// AMD KDS base URL [default: https://kdsintf.amd.com].
    #[arg(long, value_name = "URL", requires = "fetch_collateral")]
    kds_url: Option<String>,
    /// Cache of fetched responses [default: $TEEMESH_HOME/collateral].
    #[arg(long, value_name = "DIR", requires = "fetch_collateral")]
    collateral_cache: Option<PathBuf>,
    /// Use only the collateral cache; never touch the network.
    #[arg(long, requires = "fetch_collateral")]
    collateral_offline: bool,
    /// Product line of an SEV-SNP report older than version 3 (newer ones say it themselves).
    #[arg(long, value_name = "milan|genoa|turin", requires = "fetch_collateral")]
    snp_product: Option<SnpProduct>,
}

#[derive(Debug, Args)]
pub(crate) struct SimEvidenceArgs {
    /// 64 bytes of report data as 128 hex digits.
    #[arg(long, value_name = "HEX")]
    report_data: String,
    /// Where to write the evidence.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Measurement to report (96 hex digits); default SHA-384 of this executable.
    #[arg(long, value_name = "HEX")]
    measurement: Option<String>,
    /// Mark the evidence as coming from a debug TEE.
    #[arg(long)]
    debug: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ResultVerifyArgs {
    /// The token, `@FILE` to read it from a file, or `-` for stdin.
    token: String,
    /// The verifier's key: SPKI public key PEM, or its PKCS#8 private key PEM; default the local
    /// verifier key used by `attest verify`.
    #[arg(long, value_name = "FILE")]
    verifier_key: Option<PathBuf>,
    /// Verification time (RFC 3339 or Unix seconds); default now.
    #[arg(long, value_name = "RFC3339|UNIX")]
    at: Option<String>,
}

pub(crate) fn run(cmd: AttestCommand) -> Result<()> {
    match cmd {
        AttestCommand::Verify(args) => verify(&args),
        AttestCommand::SimEvidence(args) => sim_evidence(&args),
        AttestCommand::ResultVerify(args) => result_verify(&args),
        AttestCommand::Policy => {
            print!("{}", AppraisalPolicy::default().to_toml());
            Ok(())
        }
    }
}

pub(crate) fn parse_time(at: Option<&str>) -> Result<UnixTime> {
    match at {
        Some(text) => UnixTime::parse(text).context("--at"),
        None => Ok(UnixTime::now()),
    }
}

pub(crate) fn load_policy(path: Option<&PathBuf>) -> Result<AppraisalPolicy> {
    match path {
        Some(p) => Ok(AppraisalPolicy::load(p)?),
        None => Ok(AppraisalPolicy::default()),
    }
}

fn warn_all(warnings: &[String]) {
    for w in warnings {
        eprintln!("WARNING: {w}");
    }
}

fn verify(args: &VerifyArgs) -> Result<()> {
    let now = parse_time(args.at.as_deref())?;
    let policy = load_policy(args.policy.as_ref())?;
    let evidence = std::fs::read(&args.evidence)
        .with_context(|| format!("cannot read evidence {}", args.evidence.display()))?;
    let mut endorsement_paths = args.endorsements.clone();
    if args.collateral.fetch_collateral {
        endorsement_paths.extend(fetch_collateral(&args.collateral, &evidence)?);
    }
    let endorsements = Endorsements::load(&endorsement_paths)?;
    let ttl = policy.result_ttl.0;
    let verifier = Verifier::new(policy);
    let verified = verifier
        .appraise_bytes(&evidence, &endorsements, now)
        .map_err(Refused)?;
    warn_all(verified.warnings());
    let key_path = args
        .result_key
        .clone()
        .unwrap_or_else(crate::home::default_result_key);
    let key =
        ResultSigningKey::load_or_create(&key_path, ResultAlgorithm::parse(&args.result_alg)?)?;
    let (token, expires) = issue_result_token(&verified, &key, ttl)?;
    let mut out = verified.to_flat_json();
    out.insert("appraised_at".into(), json!(now.to_string()));
    out.insert("warnings".into(), json!(verified.warnings()));
    out.insert("result_token".into(), json!(token));
    out.insert("result_expires_at".into(), json!(expires.to_string()));
    out.insert("verifier_key_id".into(), json!(key.public_key().key_id()));
    println!("{}", Value::Object(out));
    Ok(())
}

/// The endorsement files the vendors serve for `evidence`, from the cache or the network.
fn fetch_collateral(args: &CollateralArgs, evidence: &[u8]) -> Result<Vec<PathBuf>> {
    // Unrecognised evidence is refused the same way appraisal would refuse it.
    let evidence = attest::Evidence::from_bytes(evidence).map_err(Refused)?;
    let cache = args
        .collateral_cache
        .clone()
        .unwrap_or_else(|| crate::home::teemesh_home().join("collateral"));
    let mut config = FetcherConfig::new(cache);
    config.offline = args.collateral_offline;
    if let Some(url) = &args.pcs_url {
        config.intel_pcs_base.clone_from(url);
    }
    if let Some(url) = &args.intel_certs_url {
        config.intel_certs_base.clone_from(url);
    }
    if let Some(url) = &args.kds_url {
        config.amd_kds_base.clone_from(url);
    }
    let fetched = Fetcher::new(config)
        .fetch(&evidence, args.snp_product)
        .context("--fetch-collateral")?;
    tracing::info!(
        downloaded = fetched.downloaded,
        from_cache = fetched.from_cache,
        files = fetched.files.len(),
        "collateral ready"
    );
    Ok(fetched.files)
}

/// SHA-384 of the running executable: the simulated TEE's measurement.
pub(crate) fn executable_measurement() -> Result<Measurement384> {
    use sha2::Digest as _;
    let exe = std::env::current_exe().context("cannot locate the running executable")?;
    let bytes = std::fs::read(&exe).with_context(|| format!("cannot read {}", exe.display()))?;
    Ok(Measurement384(sha2::Sha384::digest(bytes).into()))
}

fn sim_evidence(args: &SimEvidenceArgs) -> Result<()> {
    let report_data = ReportData::from_hex(&args.report_data).context("--report-data")?;
    let measurement = match &args.measurement {
        Some(hex) => Measurement384::from_hex(hex).context("--measurement")?,
        None => executable_measurement()?,
    };
    let evidence = SimulatedAttester::new(measurement)
        .with_debug(args.debug)
        .report(&report_data, UnixTime::now());
    std::fs::write(&args.out, &evidence)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    eprintln!(
        "WARNING: wrote SIMULATED evidence to {}: no hardware protects it; verifiers refuse it unless their policy sets allow_simulated",
        args.out.display()
    );
    println!(
        "{}",
        json!({"out": args.out.display().to_string(), "platform": "sim", "simulated": true,
               "measurement": measurement.to_hex(), "report_data": report_data.to_hex(), "debug": args.debug})
    );
    Ok(())
}

fn read_token(arg: &str) -> Result<String> {
    if arg == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the token from stdin")?;
        return Ok(text.trim().to_owned());
    }
    if let Some(path) = arg.strip_prefix('@') {
        return Ok(std::fs::read_to_string(path)
            .with_context(|| format!("cannot read token file {path}"))?
            .trim()
            .to_owned());
    }
    Ok(arg.trim().to_owned())
}

fn load_verifying_key(path: &std::path::Path) -> Result<ResultVerifyingKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read verifier key {}", path.display()))?;
    if pem.contains("PRIVATE KEY") {
        return Ok(ResultSigningKey::from_pkcs8_pem(&pem)?.public_key());
    }
    Ok(ResultVerifyingKey::from_public_key_pem(&pem)?)
}

fn result_verify(args: &ResultVerifyArgs) -> Result<()> {
    let now = parse_time(args.at.as_deref())?;
    let token = read_token(&args.token)?;
    let key_path = args
        .verifier_key
        .clone()
        .unwrap_or_else(crate::home::default_result_key);
    let key = load_verifying_key(&key_path)?;
    let result = AttestationResult::verify(&token, &key, now).map_err(Refused)?;
    warn_all(result.warnings());
    let mut out = result.claims().to_flat_json();
    out.insert("status".into(), json!(result.status()));
    out.insert("issued_at".into(), json!(result.issued_at().to_string()));
    out.insert("expires_at".into(), json!(result.expires_at().to_string()));
    out.insert("verifier_key_id".into(), json!(result.key_id()));
    out.insert("warnings".into(), json!(result.warnings()));
    println!("{}", Value::Object(out));
    Ok(())
}
