//! `teemesh atls serve` (an attested TLS echo endpoint) and `teemesh attest peer` (connect to an
//! attested endpoint and print what it proved).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use atls::{AtlsClient, AtlsError, AtlsServer, Clock, NodeIdentity, Peer, PeerVerifier};
use attest::{
    AppraisalPolicy, Endorsements, PlatformKind, ResultAlgorithm, ResultSigningKey, UnixTime,
    VerifiedClaims, issue_result_token,
};
use clap::{Args, Subcommand};
use platform::PlatformChoice;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::attest_cmd::{load_policy, parse_time, platform_roots};

/// How long `attest peer` waits for the TCP connection and the handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Subcommand)]
pub(crate) enum AtlsCommand {
    /// Serve an attested TLS echo endpoint; prints the bound address on the first stdout line,
    /// then one JSON line per connection.
    Serve(ServeArgs),
}

/// Who this endpoint is and how it appraises its peers.
#[derive(Debug, Args)]
pub(crate) struct EndpointArgs {
    /// This side's TEE: auto (never the simulation), tdx or snp (configfs-tsm), sgx (Gramine),
    /// or sim (simulated, no hardware protection).
    #[arg(long, value_name = "auto|sim|tdx|snp|sgx")]
    platform: Option<PlatformChoice>,
    /// Appraisal policy for the peer (TOML). `max_evidence_age` set means certificate evidence
    /// of at most that age is enough; unset means fresh evidence per session.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Endorsements for the peer's evidence (Intel collateral, AMD certificates); repeatable.
    #[arg(long, value_name = "FILE|DIR")]
    endorsements: Vec<PathBuf>,
    /// Name this side puts in its certificate claims.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    listen: String,
    /// Refuse clients that present no evidence (by default ordinary TLS clients may connect
    /// and are reported as unattested).
    #[arg(long)]
    require_client_attestation: bool,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PeerArgs {
    /// The attested endpoint, HOST:PORT.
    #[arg(value_name = "ADDR")]
    addr: String,
    /// Appraisal time (RFC 3339 or Unix seconds); default now. For evidence with old collateral.
    #[arg(long, value_name = "RFC3339|UNIX")]
    at: Option<String>,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

pub(crate) fn run(cmd: AtlsCommand) -> Result<()> {
    match cmd {
        AtlsCommand::Serve(args) => crate::async_runtime()?.block_on(serve(args)),
    }
}

pub(crate) fn peer(args: PeerArgs) -> Result<()> {
    crate::async_runtime()?.block_on(connect_peer(args))
}

/// The attested peer refused, or was refused (exit code 1).
#[derive(Debug)]
pub(crate) struct PeerRefused(pub(crate) String);

impl std::fmt::Display for PeerRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for PeerRefused {}

fn identity(
    endpoint: &EndpointArgs,
    default: PlatformChoice,
    role: &str,
) -> Result<Arc<NodeIdentity>> {
    let choice = endpoint.platform.unwrap_or(default);
    let attester = platform_roots()
        .open(choice)
        .with_context(|| format!("--platform {choice}"))?;
    if attester.kind() == PlatformKind::Sim {
        eprintln!(
            "WARNING: this {role}'s identity is SIMULATED: no hardware protects its key; peers refuse it unless their policy sets allow_simulated"
        );
    }
    let name = endpoint
        .name
        .clone()
        .unwrap_or_else(|| format!("teemesh-{role}"));
    let identity = NodeIdentity::generate(Arc::from(attester), &name, UnixTime::now())
        .context("cannot create this side's attested identity")?;
    Ok(Arc::new(identity))
}

fn verifier(endpoint: &EndpointArgs, clock: Clock) -> Result<(PeerVerifier, AppraisalPolicy)> {
    let policy = load_policy(endpoint.policy.as_ref())?;
    let endorsements = Endorsements::load(&endpoint.endorsements)?;
    Ok((
        PeerVerifier::new(policy.clone(), endorsements).with_clock(clock),
        policy,
    ))
}

async fn serve(args: ServeArgs) -> Result<()> {
    // A server should run on its TEE: `auto` finds it, and never falls back to simulation.
    let identity = identity(&args.endpoint, PlatformChoice::Auto, "server")?;
    let (verifier, _) = verifier(&args.endpoint, Clock::System)?;
    let verifier = Arc::new(verifier.allow_unattested(!args.require_client_attestation));
    tracing::info!(freshness = %verifier.freshness(), "appraising clients");
    let server = AtlsServer::new(identity, verifier)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("{addr}");
    eprintln!(
        "teemesh: attested TLS echo endpoint on {addr} ({}); Ctrl-C stops it",
        if args.require_client_attestation {
            "clients must attest"
        } else {
            "unattested clients admitted"
        }
    );
    loop {
        let (tcp, from) = tokio::select! {
            accepted = listener.accept() => accepted.context("accept failed")?,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("teemesh: stopping");
                return Ok(());
            }
        };
        // Handshake messages are small and latency-bound: Nagle's algorithm would hold them.
        let _ = tcp.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            match server.accept(tcp).await {
                Ok(mut conn) => {
                    let mut line = match &conn.peer {
                        Peer::Attested(att) => claims_json(&att.verified),
                        Peer::Unattested => Map::new(),
                    };
                    line.insert("event".into(), json!("connected"));
                    line.insert("from".into(), json!(from.to_string()));
                    line.insert(
                        "attested".into(),
                        json!(matches!(conn.peer, Peer::Attested(_))),
                    );
                    if let Peer::Attested(att) = &conn.peer {
                        line.insert("fresh_in_session".into(), json!(att.fresh_in_session));
                        line.insert("node_name".into(), json!(att.bound.node_name));
                    }
                    println!("{}", Value::Object(line));
                    let (mut rd, mut wr) = tokio::io::split(&mut conn.stream);
                    if let Err(e) = tokio::io::copy(&mut rd, &mut wr).await {
                        tracing::debug!(%from, "echo ended: {e}");
                    }
                    let _ = conn.stream.shutdown().await;
                }
                Err(e) => {
                    tracing::warn!(%from, "refused: {e}");
                    println!(
                        "{}",
                        json!({"event": "refused", "from": from.to_string(), "reason": e.to_string()})
                    );
                }
            }
        });
    }
}

async fn connect_peer(args: PeerArgs) -> Result<()> {
    let clock = match &args.at {
        Some(at) => Clock::Fixed(parse_time(Some(at))?),
        None => Clock::System,
    };
    // The client side is simulated unless configured: it only proves itself to the server.
    let identity = identity(&args.endpoint, PlatformChoice::Sim, "client")?;
    let (verifier, policy) = verifier(&args.endpoint, clock)?;
    let client = AtlsClient::new(identity, Arc::new(verifier))?;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let tcp = tokio::net::TcpStream::connect(&args.addr)
            .await
            .with_context(|| format!("cannot connect to {}", args.addr))?;
        let _ = tcp.set_nodelay(true);
        client.connect(tcp).await.map_err(|e| match e {
            AtlsError::Io(io) => anyhow::Error::new(io).context("connection failed"),
            refused => anyhow::Error::new(PeerRefused(refused.to_string())),
        })
    })
    .await
    .with_context(|| {
        format!(
            "no attested session with {} within {} s",
            args.addr,
            CONNECT_TIMEOUT.as_secs()
        )
    })??;
    let Peer::Attested(att) = &conn.peer else {
        return Err(PeerRefused("the peer presented no evidence".into()).into());
    };
    for w in att.verified.warnings() {
        eprintln!("WARNING: {w}");
    }
    let mut out = claims_json(&att.verified);
    let key = ResultSigningKey::load_or_create(
        &crate::home::default_result_key(),
        ResultAlgorithm::EdDsa,
    )?;
    let (token, expires) = issue_result_token(&att.verified, &key, policy.result_ttl.0)?;
    out.insert("peer".into(), json!(args.addr));
    out.insert("node_name".into(), json!(att.bound.node_name));
    out.insert("fresh_in_session".into(), json!(att.fresh_in_session));
    out.insert("result_token".into(), json!(token));
    out.insert("result_expires_at".into(), json!(expires.to_string()));
    out.insert("verifier_key_id".into(), json!(key.public_key().key_id()));
    println!("{}", Value::Object(out));
    let mut stream = conn.stream;
    let _ = stream.shutdown().await;
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read_to_end(&mut rest)).await;
    Ok(())
}

fn claims_json(verified: &VerifiedClaims) -> Map<String, Value> {
    let mut out = verified.to_flat_json();
    out.insert(
        "appraised_at".into(),
        json!(verified.appraised_at().to_string()),
    );
    out.insert("warnings".into(), json!(verified.warnings()));
    out
}
