//! `teemesh mqtt pub` and `teemesh mqtt sub`: MQTT 3.1.1 and 5 clients over plain TCP, TLS or
//! (by default) attested TLS, where the broker's evidence is appraised under `--policy` and its
//! attestation result printed on stderr before any message moves.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use atls::{AtlsClient, Freshness, PeerAttestation, PeerVerifier};
use attest::{AppraisalPolicy, Endorsements, UnixTime};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use mqtt::client::{KeepAlive, KeepAliveDue};
use mqtt::{
    Acknowledgement, Connect, Disconnect, Packet, PacketId, PacketType, Properties,
    ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use serde_json::{Value, json};
use tokio::time::{Instant, timeout, timeout_at};

use crate::atls_cmd::PeerRefused;
use crate::attest_cmd::load_policy;
use crate::mqtt_conn::{Client, Transport};

/// Keep alive announced in CONNECT, seconds: `sub` pings when it has sent or heard nothing for
/// half of it, and gives up on a broker silent for 1.5 times it (`mqtt::client::KeepAlive`).
const KEEP_ALIVE: u16 = 60;
/// Packets of a resumed session kept while `sub` waits for its SUBACK.
const EARLY_PACKETS: usize = 65_536;
/// How long the connection, the handshakes and each acknowledgement may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `sub -C` waits for the PUBRELs of QoS 2 messages it already printed.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// The only packet identifier these clients use: one message or one SUBSCRIBE in flight.
const PACKET_ID: PacketId = match PacketId::new(1) {
    Some(id) => id,
    None => panic!("1 is a packet identifier"),
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TransportKind {
    /// Plain TCP.
    Tcp,
    /// TLS; the broker's certificate chains to --ca.
    Tls,
    /// Attested TLS: the broker's evidence is appraised under --policy.
    Atls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum VersionArg {
    /// MQTT 3.1.1.
    #[value(name = "311")]
    V311,
    /// MQTT 5.0.
    #[value(name = "5")]
    V5,
}

/// Where the broker is, how to reach and appraise it, and who this client is.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// The broker, HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    broker: String,
    /// How to reach it.
    #[arg(long, value_enum, default_value = "atls")]
    transport: TransportKind,
    /// Attested TLS: appraisal policy for the broker's evidence (TOML); default: the strict
    /// default policy (which refuses simulated evidence).
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Attested TLS: endorsements for the broker's evidence; repeatable.
    #[arg(long, value_name = "FILE|DIR")]
    endorsements: Vec<PathBuf>,
    /// TLS: the CA certificate(s) the broker's certificate chains to (PEM).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// TLS: the name the broker's certificate must carry (default: the host of --broker).
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,
    /// MQTT protocol version.
    #[arg(
        short = 'V',
        long = "protocol-version",
        value_enum,
        default_value = "5"
    )]
    version: VersionArg,
    /// Client identifier (default teemesh-pub-PID or teemesh-sub-PID).
    #[arg(long = "id", value_name = "CLIENT_ID")]
    client_id: Option<String>,
    /// User name.
    #[arg(short = 'u', long)]
    username: Option<String>,
    /// Password (needs --username).
    #[arg(short = 'P', long, requires = "username")]
    password: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("payload").required(true)))]
pub(crate) struct PubArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic to publish to.
    #[arg(short = 't', long)]
    topic: String,
    /// The message.
    #[arg(short = 'm', long, group = "payload")]
    message: Option<String>,
    /// Send the contents of FILE as the message (any bytes).
    #[arg(short = 'f', long, value_name = "FILE", group = "payload")]
    file: Option<std::path::PathBuf>,
    /// Send what stdin holds, to its end, as the message (any bytes).
    #[arg(short = 's', long, group = "payload")]
    stdin: bool,
    /// QoS: 0, 1 (PUBACK) or 2 (PUBREC, PUBREL, PUBCOMP).
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Ask the broker to retain the message for later subscribers.
    #[arg(short = 'r', long)]
    retain: bool,
}

#[derive(Debug, Args)]
pub(crate) struct SubArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// A topic filter (wildcards + and # allowed); repeatable.
    #[arg(short = 't', long = "topic", required = true)]
    topics: Vec<String>,
    /// The subscriptions' maximum QoS.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Exit after this many messages (default: run until interrupted).
    #[arg(short = 'C', long, value_name = "COUNT")]
    count: Option<u64>,
    /// A persistent session (clean start off; needs --id): messages that arrive while this
    /// client is away wait for it at the broker, as QoS allows.
    #[arg(short = 'c', long, requires = "client_id")]
    persistent: bool,
    /// MQTT 5: seconds the broker keeps the persistent session after a disconnection
    /// (default with -c: never expires; 3.1.1 sessions never expire).
    #[arg(short = 'x', long, value_name = "SECONDS", requires = "persistent")]
    session_expiry: Option<u32>,
}

pub(crate) fn publish(args: PubArgs) -> Result<()> {
    crate::async_runtime()?.block_on(publish_message(args))
}

pub(crate) fn subscribe(args: SubArgs) -> Result<()> {
    crate::async_runtime()?.block_on(print_messages(args))
}

async fn publish_message(args: PubArgs) -> Result<()> {
    let qos = QoS::from_bits(args.qos)?;
    let payload = match (&args.message, &args.file) {
        (Some(message), _) => message.clone().into_bytes(),
        (None, Some(file)) => std::fs::read(file)
            .with_context(|| format!("cannot read the message from {}", file.display()))?,
        (None, None) => {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
                .context("cannot read the message from stdin")?;
            bytes
        }
    };
    let mut client = open(&args.connect, "pub", None).await?;
    client.queue(&Packet::Publish(Publish {
        dup: false,
        qos: PublishQos::new(qos, PACKET_ID),
        retain: args.retain,
        topic: args.topic,
        payload: Bytes::from(payload),
        properties: Properties::default(),
    }))?;
    client.flush().await?;
    match qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => {
            acknowledgement(&mut client, PacketType::PubAck).await?;
        }
        QoS::ExactlyOnce => {
            // The broker owns the message after PUBREC; PUBREL / PUBCOMP end the exchange.
            acknowledgement(&mut client, PacketType::PubRec).await?;
            client.queue(&Packet::PubRel(success(PACKET_ID)))?;
            client.flush().await?;
            acknowledgement(&mut client, PacketType::PubComp).await?;
        }
    }
    goodbye(&mut client).await
}

async fn print_messages(args: SubArgs) -> Result<()> {
    let qos = QoS::from_bits(args.qos)?;
    let session = args
        .persistent
        .then(|| args.session_expiry.unwrap_or(u32::MAX));
    let mut client = open(&args.connect, "sub", session).await?;
    client.queue(&Packet::Subscribe(Subscribe {
        packet_id: PACKET_ID,
        subscriptions: args
            .topics
            .iter()
            .map(|filter| Subscription {
                filter: filter.clone(),
                options: SubscriptionOptions::new(qos),
            })
            .collect(),
        properties: Properties::default(),
    }))?;
    client.flush().await?;
    // A resumed persistent session gets what was kept for it right after CONNACK, before the
    // SUBACK: kept, and handled first below.
    let mut early = std::collections::VecDeque::new();
    let ack = loop {
        match step(client.next()).await? {
            Packet::SubAck(ack) => break ack,
            Packet::PingResp => {}
            packet @ (Packet::Publish(_) | Packet::PubRel(_)) if early.len() < EARLY_PACKETS => {
                early.push_back(packet);
            }
            other => bail!("expected SUBACK, got {}", other.packet_type()),
        }
    };
    for (filter, code) in args.topics.iter().zip(&ack.reason_codes) {
        match code.granted_qos() {
            // The readiness line: messages published from now on reach this client.
            Some(granted) => eprintln!("teemesh: subscribed to {filter} (QoS {})", granted as u8),
            None => {
                return Err(PeerRefused(format!(
                    "the broker refused the subscription to {filter}: {}",
                    suback_code(*code, client.version())
                ))
                .into());
            }
        }
    }
    let mut keep_alive = KeepAlive::new(
        Duration::from_secs(u64::from(KEEP_ALIVE)),
        std::time::Instant::now(),
    );
    let mut printed = 0u64;
    // QoS 2 messages printed whose PUBREL has not come: a resent PUBLISH with one of these
    // identifiers is the same message and is not printed twice.
    let mut unreleased: HashSet<PacketId> = HashSet::new();
    let mut release_deadline = None;
    loop {
        let done = args.count.is_some_and(|count| printed >= count);
        if done && unreleased.is_empty() {
            break;
        }
        let deadline = if done {
            *release_deadline.get_or_insert_with(|| Instant::now() + RELEASE_TIMEOUT)
        } else {
            match keep_alive.poll(std::time::Instant::now()) {
                KeepAliveDue::Nothing { until } => Instant::from_std(until),
                KeepAliveDue::Ping => {
                    client.queue(&Packet::PingReq)?;
                    client.flush().await?;
                    keep_alive.pinged(std::time::Instant::now());
                    continue;
                }
                KeepAliveDue::BrokerSilent { silent } => bail!(
                    "the broker answered nothing for {} s (1.5 × the keep alive of {KEEP_ALIVE} s): giving up",
                    silent.as_secs()
                ),
            }
        };
        let next = async {
            match early.pop_front() {
                Some(packet) => Ok(packet),
                None => client.next().await,
            }
        };
        let packet = match timeout_at(deadline, next).await {
            Ok(packet) => packet?,
            Err(_) if done => {
                tracing::warn!(
                    pending = unreleased.len(),
                    "no PUBREL for printed QoS 2 messages; leaving"
                );
                break;
            }
            // Keep alive is due: asked again at the top.
            Err(_) => continue,
        };
        keep_alive.heard(std::time::Instant::now());
        match packet {
            Packet::Publish(publish) if done => {
                // Beyond -C: neither printed nor acknowledged, except a resent QoS 2 message
                // already printed, whose PUBREC may have been lost.
                if let PublishQos::ExactlyOnce(id) = publish.qos
                    && unreleased.contains(&id)
                {
                    client.queue(&Packet::PubRec(success(id)))?;
                }
            }
            Packet::Publish(publish) => {
                let first_delivery = match publish.qos {
                    PublishQos::AtMostOnce => true,
                    PublishQos::AtLeastOnce(id) => {
                        client.queue(&Packet::PubAck(success(id)))?;
                        true
                    }
                    PublishQos::ExactlyOnce(id) => {
                        client.queue(&Packet::PubRec(success(id)))?;
                        unreleased.insert(id)
                    }
                };
                if first_delivery {
                    #[allow(clippy::print_stdout)] // the command's output
                    {
                        println!("{}", message_json(&publish));
                    }
                    printed += 1;
                }
            }
            Packet::PubRel(release) => {
                unreleased.remove(&release.packet_id);
                client.queue(&Packet::PubComp(success(release.packet_id)))?;
            }
            Packet::PingResp => {}
            Packet::Disconnect(disconnect) => bail!(
                "the broker disconnected: {}{}",
                disconnect.reason_code,
                reason_string(&disconnect.properties)
            ),
            other => bail!("unexpected {} from the broker", other.packet_type()),
        }
        if client.queued_bytes() > 0 {
            client.flush().await?;
            keep_alive.sent(std::time::Instant::now());
        }
    }
    goodbye(&mut client).await
}

/// Connects, appraises the broker (attested TLS) and reports it on stderr, then sends CONNECT.
/// Connects as `args` say; `session`: a persistent session that the broker keeps this many
/// seconds after a disconnection (MQTT 5; a 3.1.1 persistent session never expires), `None` a
/// clean one.
async fn open(args: &ConnectArgs, role: &str, session: Option<u32>) -> Result<Client> {
    let (transport, freshness) = transport(args)?;
    let (stream, attestation) = step(transport.connect(&args.broker)).await?;
    if let (Some(attestation), Some(freshness)) = (&attestation, freshness) {
        report_attestation(&args.broker, attestation, freshness);
    }
    let connect = Connect {
        protocol: match args.version {
            VersionArg::V311 => ProtocolVersion::V311,
            VersionArg::V5 => ProtocolVersion::V5,
        },
        clean_start: session.is_none(),
        keep_alive: KEEP_ALIVE,
        client_id: args
            .client_id
            .clone()
            .unwrap_or_else(|| format!("teemesh-{role}-{}", std::process::id())),
        will: None,
        username: args.username.clone(),
        password: args.password.clone().map(|p| Bytes::from(p.into_bytes())),
        properties: Properties {
            session_expiry_interval: session.filter(|_| args.version == VersionArg::V5),
            ..Properties::default()
        },
    };
    let plain = matches!(args.transport, TransportKind::Tcp);
    let (client, ack) = step(Client::handshake(
        stream,
        connect,
        crate::mqtt_conn::MAX_PACKET,
    ))
    .await
    .map_err(|e| {
        // A TLS listener answers plain MQTT with a TLS alert, which reads as a bad packet.
        let bad_packet = e
            .chain()
            .any(|c| c.downcast_ref::<mqtt::client::ConnectionError>().is_some_and(|e| matches!(e, mqtt::client::ConnectionError::BadPacket(_))));
        if plain && bad_packet {
            e.context(format!(
                "{} did not answer in MQTT: is it a TLS or attested TLS listener? (--transport tls | atls)",
                args.broker
            ))
        } else {
            e
        }
    })?;
    if ack.reason_code.is_error() {
        return Err(PeerRefused(format!(
            "the broker refused the connection: {}{}",
            connack_code(ack.reason_code, client.version()),
            reason_string(&ack.properties)
        ))
        .into());
    }
    Ok(client)
}

/// A CONNACK code as the protocol in use says it: MQTT 3.1.1 has return codes 1 to 5, not
/// MQTT 5's reason codes.
fn connack_code(code: ReasonCode, version: ProtocolVersion) -> String {
    let v311 = match code.to_v311_connack() {
        Some(1) => "unacceptable protocol version",
        Some(2) => "identifier rejected",
        Some(3) => "server unavailable",
        Some(4) => "bad user name or password",
        Some(5) => "not authorized",
        _ => return code.to_string(),
    };
    match version {
        ProtocolVersion::V311 => format!(
            "{v311} (MQTT 3.1.1 return code {})",
            code.to_v311_connack().unwrap_or_default()
        ),
        ProtocolVersion::V5 => code.to_string(),
    }
}

/// A SUBACK refusal as the protocol in use says it: MQTT 3.1.1 has one, 0x80 "failure".
fn suback_code(code: ReasonCode, version: ProtocolVersion) -> String {
    match version {
        ProtocolVersion::V311 => "failure (MQTT 3.1.1 return code 0x80)".to_owned(),
        ProtocolVersion::V5 => code.to_string(),
    }
}

/// The transport `args` ask for and, for attested TLS, how the policy wants evidence fresh.
fn transport(args: &ConnectArgs) -> Result<(Transport, Option<Freshness>)> {
    let attested_only = args.policy.is_some() || !args.endorsements.is_empty();
    let tls_only = args.ca.is_some() || args.server_name.is_some();
    match args.transport {
        TransportKind::Tcp | TransportKind::Tls if attested_only => {
            bail!("--policy and --endorsements apply to --transport atls only")
        }
        TransportKind::Tcp | TransportKind::Atls if tls_only => {
            bail!("--ca and --server-name apply to --transport tls only")
        }
        TransportKind::Tcp => Ok((Transport::Tcp, None)),
        TransportKind::Tls => Ok((tls_transport(args)?, None)),
        TransportKind::Atls => {
            let policy = load_policy(args.policy.as_ref())?;
            let freshness = Freshness::from_policy(&policy);
            let endorsements = Endorsements::load(&args.endorsements)?;
            Ok((unattested_atls(policy, endorsements)?, Some(freshness)))
        }
    }
}

/// Attested TLS from outside any TEE: the client appraises the broker under `policy` and
/// presents a fresh self-signed certificate, so the broker sees an unattested client.
pub(crate) fn unattested_atls(
    policy: AppraisalPolicy,
    endorsements: Endorsements,
) -> Result<Transport> {
    let verifier = Arc::new(PeerVerifier::new(policy, endorsements));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let certificate = atls::self_signed(&key, "teemesh-mqtt-client", UnixTime::now(), None)?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok(Transport::Attested(AtlsClient::unattested(
        certificate,
        private,
        verifier,
    )?))
}

fn tls_transport(args: &ConnectArgs) -> Result<Transport> {
    let ca = args.ca.as_ref().context(
        "--transport tls needs --ca FILE (the CA certificate the broker's certificate chains to, PEM)",
    )?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("cannot read {}", ca.display()))?
    {
        roots.add(cert.with_context(|| format!("{}: not a PEM certificate", ca.display()))?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = match &args.server_name {
        Some(name) => name.as_str(),
        None => args
            .broker
            .rsplit_once(':')
            .map_or(args.broker.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']'),
    };
    let server_name = ServerName::try_from(host.to_owned())
        .with_context(|| format!("{host:?} is not a server name (give --server-name)"))?;
    Ok(Transport::Tls {
        config: Arc::new(config),
        server_name,
    })
}

/// The broker's attestation result on stderr, as `teemesh admin` prints a node's.
fn report_attestation(broker: &str, attestation: &PeerAttestation, freshness: Freshness) {
    let verified = &attestation.verified;
    for w in verified.warnings() {
        eprintln!("WARNING: {w}");
    }
    let claims = verified.claims();
    let simulated = claims.is_simulated();
    // This client presents no evidence, so no per-session evidence is exchanged: say how old
    // the broker's certificate evidence is, and whether the policy bounded that age.
    let age = attestation
        .bound
        .issued_at
        .map(|at| UnixTime::now().as_secs().saturating_sub(at.as_secs()));
    let freshness = match (freshness, age) {
        (Freshness::MaxAge(max), Some(age)) => {
            format!("certificate evidence {age} s old (policy: at most {max} s)")
        }
        (Freshness::PerSession, Some(age)) => format!(
            "certificate evidence {age} s old (its age is not bounded: set max_evidence_age in the policy)"
        ),
        (_, None) => "certificate evidence of unknown age".to_owned(),
    };
    eprintln!(
        "teemesh: broker {:?} at {broker} affirmed: platform {}, measurement {}, simulated {}, {freshness}",
        attestation.bound.node_name.as_deref().unwrap_or("?"),
        claims.platform_kind(),
        claims.primary_measurement_hex(),
        if simulated {
            "yes (SIMULATED: no hardware protects it)"
        } else {
            "no"
        },
    );
    tracing::info!(%broker, simulated, "broker affirmed");
}

/// Waits for the acknowledgement `kind` of the message in flight; a refusal is exit code 1.
async fn acknowledgement(client: &mut Client, kind: PacketType) -> Result<Acknowledgement> {
    loop {
        let ack = match (kind, step(client.next()).await?) {
            (PacketType::PubAck, Packet::PubAck(ack))
            | (PacketType::PubRec, Packet::PubRec(ack))
            | (PacketType::PubComp, Packet::PubComp(ack)) => ack,
            (_, Packet::PingResp) => continue,
            (_, Packet::Disconnect(disconnect)) => bail!(
                "the broker disconnected: {}{}",
                disconnect.reason_code,
                reason_string(&disconnect.properties)
            ),
            (_, other) => bail!("expected {kind}, got {}", other.packet_type()),
        };
        if ack.packet_id != PACKET_ID {
            bail!(
                "{kind} for packet {}, expected {}",
                ack.packet_id,
                PACKET_ID
            );
        }
        if ack.reason_code.is_error() {
            return Err(PeerRefused(format!(
                "the broker refused the message ({kind}): {}{}",
                ack.reason_code,
                reason_string(&ack.properties)
            ))
            .into());
        }
        return Ok(ack);
    }
}

/// A clean DISCONNECT (no will), then the TLS close.
async fn goodbye(client: &mut Client) -> Result<()> {
    client.queue(&Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::Success,
        properties: Properties::default(),
    }))?;
    client.flush().await?;
    client.shutdown().await;
    Ok(())
}

fn success(packet_id: PacketId) -> Acknowledgement {
    Acknowledgement {
        packet_id,
        reason_code: ReasonCode::Success,
        properties: Properties::default(),
    }
}

/// `: reason` when an MQTT 5 packet carries a reason string.
fn reason_string(properties: &Properties) -> String {
    properties
        .reason_string
        .as_deref()
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default()
}

/// One step of the exchange, bounded so a silent broker cannot hang the command.
async fn step<T, E: Into<anyhow::Error>>(future: impl Future<Output = Result<T, E>>) -> Result<T> {
    timeout(STEP_TIMEOUT, future)
        .await
        .with_context(|| {
            format!(
                "the broker did not answer within {} s",
                STEP_TIMEOUT.as_secs()
            )
        })?
        .map_err(Into::into)
}

/// One line of `sub`'s output: the payload as text when it is UTF-8, else hex.
fn message_json(publish: &Publish) -> Value {
    let (payload, encoding) = match std::str::from_utf8(&publish.payload) {
        Ok(text) => (json!(text), "utf8"),
        Err(_) => (json!(hex::encode(&publish.payload)), "hex"),
    };
    json!({
        "topic": publish.topic,
        "payload": payload,
        "encoding": encoding,
        "qos": publish.qos.qos() as u8,
        "retain": publish.retain,
    })
}
