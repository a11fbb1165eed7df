//! `teemesh mqtt broker` (the MQTT broker on TCP, TLS and attested TLS listeners, from a TOML
//! file or `--listen`) and `teemesh mqtt passwd` (a user's password hash for that file).

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use atls::{AtlsServer, Clock, NodeIdentity, Peer, PeerVerifier};
use attest::{Endorsements, PlatformKind, UnixTime};
use clap::{Args, Subcommand};
use mqtt::broker::{
    AclConfig, AttestedClaims, AuthConfig, Broker, BrokerConfig, Limits, PersistenceConfig,
    TransportIdentity, listener,
};
use platform::PlatformChoice;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::attest_cmd::{load_policy, platform_roots};

#[derive(Debug, Subcommand)]
pub(crate) enum MqttCommand {
    /// Run the MQTT broker (MQTT 3.1.1 and 5.0). Prints its listeners' bound addresses as JSON
    /// on the first stdout line, then logs to stderr.
    Broker(BrokerArgs),
    /// Read a password on stdin and print its argon2id hash for `[[auth.users]]`.
    Passwd,
    /// Publish one message; over attested TLS (the default) the broker's attestation result is
    /// printed on stderr first, and a broker the policy refuses gets nothing (exit 1).
    Pub(crate::mqtt_client_cmd::PubArgs),
    /// Subscribe and print one JSON line per message (topic, payload, encoding, qos, retain);
    /// over attested TLS the broker is appraised first, as for `pub`.
    Sub(crate::mqtt_client_cmd::SubArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// The broker's TOML configuration: `[[listener]]` (kind = tcp|tls|atls, address, …),
    /// `[limits]`, `[auth]`, `[acl]`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A plain TCP listener on ADDR (port 0 picks a free port), added to the configured ones.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
}

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    listener: Vec<ListenerConfig>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    auth: AuthConfig,
    acl: Option<AclConfig>,
    persistence: Option<PersistenceConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerConfig {
    kind: ListenerKind,
    address: String,
    /// TLS: the certificate chain (PEM).
    cert: Option<PathBuf>,
    /// TLS: the private key (PEM).
    key: Option<PathBuf>,
    /// Attested TLS: this broker's TEE (auto, sim, tdx, snp, sgx); default auto.
    platform: Option<String>,
    /// Attested TLS: the appraisal policy for clients (TOML); default the built-in policy.
    policy: Option<PathBuf>,
    /// Attested TLS: endorsements for the clients' evidence.
    #[serde(default)]
    endorsements: Vec<PathBuf>,
    /// Attested TLS: refuse clients without evidence (default: admit them as unattested).
    #[serde(default)]
    require_client_attestation: bool,
    /// Attested TLS: the name in this broker's certificate claims.
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum ListenerKind {
    Tcp,
    Tls,
    Atls,
}

impl ListenerKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Atls => "atls",
        }
    }
}

pub(crate) fn run(cmd: MqttCommand) -> Result<()> {
    match cmd {
        MqttCommand::Broker(args) => crate::async_runtime()?.block_on(broker(args)),
        MqttCommand::Pub(args) => crate::mqtt_client_cmd::publish(args),
        MqttCommand::Sub(args) => crate::mqtt_client_cmd::subscribe(args),
        MqttCommand::Passwd => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password on stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password on stdin");
            }
            let hash = mqtt::broker::hash_password(password.as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            #[allow(clippy::print_stdout)] // the command's output
            {
                println!("{hash}");
            }
            Ok(())
        }
    }
}

fn load_config(path: &Path) -> Result<FileConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut config: FileConfig =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    for listener in &mut config.listener {
        for file in [&mut listener.cert, &mut listener.key, &mut listener.policy]
            .into_iter()
            .flatten()
        {
            *file = base.join(&*file);
        }
        for file in &mut listener.endorsements {
            *file = base.join(&*file);
        }
    }
    if let Some(persistence) = &mut config.persistence {
        persistence.path = base.join(&persistence.path);
    }
    Ok(config)
}

async fn broker(args: BrokerArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => load_config(path)?,
        None => FileConfig::default(),
    };
    for address in &args.listen {
        config.listener.push(ListenerConfig {
            kind: ListenerKind::Tcp,
            address: address.clone(),
            cert: None,
            key: None,
            platform: None,
            policy: None,
            endorsements: Vec::new(),
            require_client_attestation: false,
            name: None,
        });
    }
    if config.listener.is_empty() {
        bail!("no listener: give --listen ADDR or [[listener]] in --config");
    }
    raise_open_file_limit();
    let broker_config = BrokerConfig {
        limits: config.limits,
        auth: config.auth,
        acl: config.acl,
        persistence: config.persistence,
    };
    let broker = Broker::new(&broker_config).context("broker configuration")?;
    let mut bound = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for listener_config in &config.listener {
        let tcp = TcpListener::bind(&listener_config.address)
            .await
            .with_context(|| format!("cannot listen on {}", listener_config.address))?;
        let addr = tcp.local_addr()?;
        let kind = listener_config.kind;
        bound.push(json!({"kind": kind.as_str(), "address": addr.to_string()}));
        let broker = broker.clone();
        match kind {
            ListenerKind::Tcp => {
                tasks.spawn(listener::serve_tcp(broker, tcp, "tcp".into()));
            }
            ListenerKind::Tls => {
                let (Some(cert), Some(key)) = (&listener_config.cert, &listener_config.key) else {
                    bail!("the tls listener on {addr} needs cert and key (PEM files)");
                };
                let acceptor = listener::tls_acceptor(cert, key)?;
                tasks.spawn(listener::serve_tls(broker, tcp, acceptor, "tls".into()));
            }
            ListenerKind::Atls => {
                let server = atls_server(listener_config)?;
                tasks.spawn(serve_atls(broker, tcp, server));
            }
        }
        tracing::info!(kind = kind.as_str(), %addr, "listening");
    }
    #[allow(clippy::print_stdout)] // the readiness line scripts and tests wait for
    {
        println!("{}", json!({ "listeners": bound }));
    }
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("stopping");
        }
        _ = tasks.join_next() => bail!("a listener stopped"),
    }
    Ok(())
}

/// 10,000 clients need 10,000 descriptors: raise the soft limit to the hard one.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
}

fn atls_server(config: &ListenerConfig) -> Result<AtlsServer> {
    let choice: PlatformChoice = match &config.platform {
        Some(text) => text
            .parse()
            .with_context(|| format!("atls listener platform {text:?}"))?,
        None => PlatformChoice::Auto,
    };
    let attester = platform_roots()
        .open(choice)
        .with_context(|| format!("atls listener platform {choice}"))?;
    if attester.kind() == PlatformKind::Sim {
        tracing::warn!(
            "the atls listener's identity is SIMULATED: no hardware protects its key; clients refuse it unless their policy sets allow_simulated"
        );
    }
    let name = config.name.clone().unwrap_or_else(|| "teemesh-mqtt".into());
    let identity = NodeIdentity::generate(Arc::from(attester), &name, UnixTime::now())
        .context("cannot create the broker's attested identity")?;
    let policy = load_policy(config.policy.as_ref())?;
    let endorsements = Endorsements::load(&config.endorsements)?;
    let verifier = PeerVerifier::new(policy, endorsements)
        .with_clock(Clock::System)
        .allow_unattested(!config.require_client_attestation);
    Ok(AtlsServer::new(Arc::new(identity), Arc::new(verifier))?)
}

async fn serve_atls(broker: Broker, tcp: TcpListener, server: AtlsServer) {
    loop {
        let (stream, remote) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("atls accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let server = server.clone();
        tokio::spawn(async move {
            let attested = match server.accept(stream).await {
                Ok(attested) => attested,
                Err(e) => {
                    tracing::info!(%remote, "attested TLS refused: {e}");
                    return;
                }
            };
            let transport = atls_transport(remote, &attested.peer, attested.peer_key_sha256);
            broker.serve_connection(attested.stream, transport).await;
        });
    }
}

/// What an attested TLS session proved, as the broker's ACLs see it. Module claims (app,
/// module) are not carried by the handshake yet.
fn atls_transport(
    remote: SocketAddr,
    peer: &Peer,
    key_sha256: Option<[u8; 32]>,
) -> TransportIdentity {
    let attested = peer.attestation().map(|att| {
        let claims = att.verified.claims();
        AttestedClaims {
            platform: claims.platform_kind().as_str().to_owned(),
            measurement: claims.primary_measurement_hex(),
            simulated: claims.is_simulated(),
            node_name: att.bound.node_name.clone(),
            app: None,
            module: None,
        }
    });
    TransportIdentity {
        remote_addr: Some(remote),
        listener: "atls".into(),
        certificate_key_sha256: key_sha256,
        attested,
    }
}
