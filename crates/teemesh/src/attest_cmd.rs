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
    let endorsements = Endorsements::load(&args.endorsements)?;
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
