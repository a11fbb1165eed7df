//! `teemesh attest ...`: obtain evidence from this host's TEE; verify evidence under a policy and
//! print the verified claims as one JSON object; produce simulated evidence; verify attestation
//! result tokens.

use std::collections::HashSet;
use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use attest::{
    AppraisalPolicy, AttestationResult, Digest256, Endorsements, Evidence, Measurement384,
    PlatformKind, ReportData, ResultAlgorithm, ResultSigningKey, ResultVerifyingKey, UnixTime,
    Verifier, issue_result_token,
};
use clap::{Args, Subcommand};
use collateral::{Fetcher, FetcherConfig, SnpProduct};
use platform::{Attester as _, PlatformChoice, PlatformRoots, Simulated, SnpCertificate};
use serde_json::{Value, json};

use crate::Refused;

#[derive(Debug, Subcommand)]
pub(crate) enum AttestCommand {
    /// Obtain evidence binding REPORT_DATA from this host's TEE (TDX, SEV-SNP, SGX/Gramine) or,
    /// when asked by name, the simulated TEE.
    Evidence(EvidenceArgs),
    /// Appraise evidence; print the verified claims as JSON (exit 0) or a reason (exit 1).
    Verify(VerifyArgs),
    /// Write simulated evidence (no hardware protection) binding REPORT_DATA.
    SimEvidence(SimEvidenceArgs),
    /// Verify an attestation result token with the verifier's public key.
    ResultVerify(ResultVerifyArgs),
    /// Print the default appraisal policy as TOML (a starting point for your own).
    Policy,
    /// Connect to an attested TLS endpoint and print its attestation result as JSON (exit 0
    /// only when the policy affirms it).
    Peer(crate::atls_cmd::PeerArgs),
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
pub(crate) struct EvidenceArgs {
    /// Which TEE: auto (the one on this host, never the simulation), tdx or snp (configfs-tsm),
    /// sgx (Gramine), or sim (simulated, no hardware protection).
    #[arg(long, value_name = "auto|sim|tdx|snp|sgx", default_value = "auto")]
    platform: PlatformChoice,
    /// 64 bytes of report data as 128 hex digits.
    #[arg(long, value_name = "HEX")]
    report_data: String,
    /// Where to write the evidence.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Also write the certificates the platform handed out (SEV-SNP VCEK or VLEK, ASK, ARK) as
    /// PEM files into DIR, ready for `attest verify --endorsements DIR`.
    #[arg(long, value_name = "DIR")]
    certs_dir: Option<PathBuf>,
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
        AttestCommand::Evidence(args) => evidence(&args),
        AttestCommand::Verify(args) => verify(&args),
        AttestCommand::SimEvidence(args) => sim_evidence(&args),
        AttestCommand::ResultVerify(args) => result_verify(&args),
        AttestCommand::Policy => {
            print!("{}", AppraisalPolicy::default().to_toml());
            Ok(())
        }
        AttestCommand::Peer(args) => crate::atls_cmd::peer(args),
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

fn warn_simulated(out: &std::path::Path) {
    eprintln!(
        "WARNING: wrote SIMULATED evidence to {}: no hardware protects it; verifiers refuse it unless their policy sets allow_simulated",
        out.display()
    );
}

/// The TEE interfaces' locations. Hidden overrides, for tests that stand in a fake tree for the
/// kernel's or Gramine's files: `TEEMESH_CONFIGFS_TSM_ROOT`, `TEEMESH_GRAMINE_ROOT`.
pub(crate) fn platform_roots() -> PlatformRoots {
    let mut roots = PlatformRoots::default();
    if let Some(root) = std::env::var_os("TEEMESH_CONFIGFS_TSM_ROOT") {
        roots.configfs_tsm = root.into();
    }
    if let Some(root) = std::env::var_os("TEEMESH_GRAMINE_ROOT") {
        roots.gramine = root.into();
    }
    roots
}

fn evidence(args: &EvidenceArgs) -> Result<()> {
    let report_data = ReportData::from_hex(&args.report_data).context("--report-data")?;
    let attester = platform_roots()
        .open(args.platform)
        .with_context(|| format!("--platform {}", args.platform))?;
    tracing::info!(attester = %attester.describe(), "obtaining evidence");
    let generated = attester
        .generate(&report_data)
        .with_context(|| format!("cannot obtain evidence from {}", attester.describe()))?;
    std::fs::write(&args.out, &generated.evidence)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    let simulated = attester.kind() == PlatformKind::Sim;
    if simulated {
        warn_simulated(&args.out);
    }
    let certificates = write_certificates(&generated.certificates, args.certs_dir.as_ref())?;
    // The attester checked that it parses; the claims are unverified, shown for convenience.
    let claims = Evidence::from_bytes(&generated.evidence)?.unverified_claims();
    println!(
        "{}",
        json!({"out": args.out.display().to_string(), "platform": attester.kind(),
               "simulated": simulated, "attester": attester.describe(),
               "measurement": claims.primary_measurement_hex(),
               "report_data": report_data.to_hex(), "debug": claims.debug,
               "evidence_sha256": Digest256::of(&generated.evidence).to_hex(),
               "certificates": certificates})
    );
    Ok(())
}

/// Writes each certificate as `DIR/<role>.pem` (PEM rather than DER: it is what `openssl x509`
/// reads by default); returns `{role, path}` for every entry, `path` null when not written (no DIR given, or
/// not a certificate).
fn write_certificates(
    certificates: &[SnpCertificate],
    dir: Option<&PathBuf>,
) -> Result<Vec<Value>> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut used = HashSet::new();
    let mut out = Vec::with_capacity(certificates.len());
    for (index, certificate) in certificates.iter().enumerate() {
        let path = match (dir, certificate.to_pem()) {
            (Some(dir), Some(pem)) => {
                let stem = certificate.role.file_stem();
                let name = if used.insert(stem.clone()) {
                    format!("{stem}.pem")
                } else {
                    format!("{stem}-{index}.pem")
                };
                let path = dir.join(name);
                std::fs::write(&path, pem)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Some(path.display().to_string())
            }
            _ => None,
        };
        out.push(json!({"role": certificate.role.to_string(), "path": path}));
    }
    Ok(out)
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

fn sim_evidence(args: &SimEvidenceArgs) -> Result<()> {
    let report_data = ReportData::from_hex(&args.report_data).context("--report-data")?;
    let measurement = match &args.measurement {
        Some(hex) => Measurement384::from_hex(hex).context("--measurement")?,
        None => platform::executable_measurement()?,
    };
    let evidence = Simulated::with_measurement(measurement)
        .with_debug(args.debug)
        .evidence(&report_data)?;
    std::fs::write(&args.out, &evidence)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    warn_simulated(&args.out);
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
