//! `teemesh bench atls`: full mutually attested TLS handshakes and bulk transfer, against plain
//! rustls mutual TLS with the same key type, measured in the same run over loopback TCP.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use atls::{AtlsClient, AtlsServer, Freshness, NodeIdentity, PeerVerifier};
use attest::policy::DurationSecs;
use attest::{AppraisalPolicy, Endorsements, Measurement384, UnixTime};
use clap::Args;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::table::Table;

/// What both simulated nodes report and both policies expect.
const MEASUREMENT: Measurement384 = Measurement384([0x5a; 48]);
/// `max_evidence_age` of the attested policies: certificate evidence is reused for this long.
const MAX_EVIDENCE_AGE_SECS: u64 = 3600;
/// Name in the plain server's certificate (the attested client sends the same SNI).
const SERVER_NAME: &str = "teemesh-node";
/// Goal from the issue: cached attested handshake latency at most this multiple of plain TLS.
const HANDSHAKE_GOAL: f64 = 1.5;
/// "Bulk throughput equal", read as: attested at least this fraction of plain (run-to-run noise
/// on a shared machine is a few per cent).
const BULK_EQUAL_WITHIN: f64 = 0.95;
/// Bulk transfers per mode, each over the same connection; the median is reported.
const BULK_ROUNDS: usize = 5;
/// Application write size for the bulk transfer.
const BULK_CHUNK: usize = 64 * 1024;
/// Request byte: echo the next byte back.
const OP_ECHO: u8 = b'e';
/// Request byte: a big-endian u64 length and that many bytes follow; acknowledge with one byte.
const OP_BULK: u8 = b'b';

#[derive(Debug, Args)]
pub(crate) struct AtlsBenchArgs {
    /// Timed handshakes per mode (after warm-up).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..))]
    iterations: u32,
    /// MiB sent client→server over one established connection, plain and attested.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    bulk_mib: u32,
}

type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;
type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;

pub(crate) fn run(args: &AtlsBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -p teemesh -- bench atls` for meaningful numbers"
        );
    }
    let runtime = crate::async_runtime()?;
    runtime.block_on(bench(args))
}

async fn bench(args: &AtlsBenchArgs) -> Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (plain_acceptor, plain_connector) = plain_pki(&provider)?;
    let now = UnixTime::now();
    let server_identity = sim_identity("bench-server", now)?;
    let client_identity = sim_identity("bench-client", now)?;
    let policy = attested_policy();
    anyhow::ensure!(
        Freshness::from_policy(&policy) == Freshness::MaxAge(MAX_EVIDENCE_AGE_SECS),
        "the attested policy should use max-age freshness"
    );

    let cached_server = shared_verifier(&policy, None);
    let cached_client = shared_verifier(&policy, None);
    let cached = Mode {
        acceptor: Acceptor::Attested(AtlsServer::new(
            server_identity.clone(),
            cached_server.clone(),
        )?),
        connector: Connector::Attested(AtlsClient::new(
            client_identity.clone(),
            cached_client.clone(),
        )?),
    };
    let per_session = Mode {
        acceptor: Acceptor::Attested(AtlsServer::new(
            server_identity.clone(),
            shared_verifier(&policy, Some(Freshness::PerSession)),
        )?),
        connector: Connector::Attested(AtlsClient::new(
            client_identity.clone(),
            shared_verifier(&policy, Some(Freshness::PerSession)),
        )?),
    };
    let modes = [
        (
            "(a) plain rustls mTLS, CA-issued P-256",
            Mode {
                acceptor: Acceptor::Plain(plain_acceptor),
                connector: Connector::Plain(plain_connector),
            },
        ),
        (
            "(b) attested, cold appraisal *",
            Mode {
                acceptor: Acceptor::Cold {
                    identity: server_identity,
                    policy: Arc::new(policy.clone()),
                },
                connector: Connector::Cold {
                    identity: client_identity,
                    policy: Arc::new(policy),
                },
            },
        ),
        ("(c) attested, cached appraisal", cached.clone()),
        ("(d) attested, per-session freshness", per_session),
    ];

    println!(
        "teemesh bench atls — {} sequential full mutual handshakes per mode over loopback TCP (127.0.0.1)",
        args.iterations
    );
    println!(
        "one handshake = TCP connect + TLS 1.3 handshake (+ attested session exchange) + 1-byte echo, so the server's verdict is included; no resumption"
    );
    println!(
        "modes take turns handshake by handshake, so background load hits them alike; handshakes/s = 1 / mean time\n"
    );

    let stats = time_handshakes(&modes, args.iterations).await?;
    let results: Vec<(&str, HandshakeStats)> =
        modes.iter().map(|(name, _)| *name).zip(stats).collect();
    let plain = results[0].1;
    let mut table = Table::new(&[
        "mode",
        "handshakes/s",
        "p50",
        "p99",
        "p50 vs (a)",
        "rate vs (a)",
    ]);
    for (name, stats) in &results {
        table.row(vec![
            (*name).to_owned(),
            format!("{:.0}", stats.per_second),
            micros(stats.p50),
            micros(stats.p99),
            format!("{:.2}×", ratio(stats.p50, plain.p50)),
            format!("{:.2}×", stats.per_second / plain.per_second.max(1e-12)),
        ]);
    }
    println!("{}", table.render());
    println!(
        "\n* (b) builds a new PeerVerifier (empty appraisal cache), AtlsServer and AtlsClient on both sides for every handshake; that construction is included in its times."
    );
    println!(
        "  (b), (c): max-age freshness ({MAX_EVIDENCE_AGE_SECS} s); (d): fresh evidence bound to the TLS exporter, made and appraised on both sides per session."
    );
    let (server_hits, server_misses) = cached_server.verifier().cache().stats();
    let (client_hits, client_misses) = cached_client.verifier().cache().stats();
    println!(
        "  appraisal cache in (c), warm-up included: server verifier {server_hits} hits / {server_misses} misses, client verifier {client_hits} hits / {client_misses} misses"
    );

    let bulk_bytes = u64::from(args.bulk_mib) * 1024 * 1024;
    let bulk = time_bulk(&[&modes[0].1, &cached], bulk_bytes)
        .await
        .context("bulk transfer")?;
    let (plain_bulk, attested_bulk) = (&bulk[0], &bulk[1]);
    println!(
        "\nbulk: {} MiB client→server over one established connection per mode, server reads and discards then acks; transfers alternate between the modes, median of {BULK_ROUNDS}",
        args.bulk_mib
    );
    let bulk_ratio = attested_bulk.mib_per_second / plain_bulk.mib_per_second.max(1e-12);
    let mut bulk_table = Table::new(&["mode", "MiB/s", "vs (a)", "cipher suite"]);
    for (name, b) in [
        ("bulk (a) plain", plain_bulk),
        ("bulk (c) attested", attested_bulk),
    ] {
        bulk_table.row(vec![
            name.to_owned(),
            format!("{:.0}", b.mib_per_second),
            format!(
                "{:.2}×",
                b.mib_per_second / plain_bulk.mib_per_second.max(1e-12)
            ),
            b.suite.clone(),
        ]);
    }
    println!("{}", bulk_table.render());

    let latency_ratio = ratio(results[2].1.p50, plain.p50);
    println!("\ngoals (informational):");
    println!(
        "  (c) ≤ {HANDSHAKE_GOAL}× (a) handshake latency (p50): {latency_ratio:.2}× — {}",
        met(latency_ratio <= HANDSHAKE_GOAL)
    );
    println!(
        "  bulk throughput equal (attested ≥ {BULK_EQUAL_WITHIN:.2}× plain): {bulk_ratio:.2}× — {}",
        met(bulk_ratio >= BULK_EQUAL_WITHIN)
    );
    Ok(())
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn ratio(ours: Duration, theirs: Duration) -> f64 {
    ours.as_secs_f64() / theirs.as_secs_f64().max(1e-12)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// A simulated node identity reporting [`MEASUREMENT`].
fn sim_identity(name: &str, now: UnixTime) -> Result<Arc<NodeIdentity>> {
    let attester = Arc::new(platform::Simulated::with_measurement(MEASUREMENT));
    Ok(Arc::new(NodeIdentity::generate(attester, name, now)?))
}

/// Simulated evidence allowed (never the default), the measurement as reference value, and a
/// maximum evidence age, so certificates' evidence is reused ([`Freshness::MaxAge`]).
fn attested_policy() -> AppraisalPolicy {
    let mut policy = AppraisalPolicy {
        allow_simulated: true,
        max_evidence_age: Some(DurationSecs(MAX_EVIDENCE_AGE_SECS)),
        ..AppraisalPolicy::default()
    };
    policy.sim.measurement.0 = vec![MEASUREMENT];
    policy
}

fn shared_verifier(policy: &AppraisalPolicy, freshness: Option<Freshness>) -> Arc<PeerVerifier> {
    let verifier = PeerVerifier::new(policy.clone(), Endorsements::default());
    Arc::new(match freshness {
        Some(f) => verifier.with_freshness(f),
        None => verifier,
    })
}

/// A CA made with rcgen issuing a server and a client certificate (all ECDSA P-256); the server
/// requires a client certificate from the CA, the client checks the server against the CA; no
/// resumption on either side, as in attested TLS.
fn plain_pki(provider: &Arc<CryptoProvider>) -> Result<(TlsAcceptor, TlsConnector)> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "teemesh bench CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| -> Result<_> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned()])?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &issuer)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        Ok((vec![CertificateDer::from(cert.der().to_vec())], key))
    };
    let (server_chain, server_key) = leaf("bench-server", ExtendedKeyUsagePurpose::ServerAuth)?;
    let (client_chain, client_key) = leaf("bench-client", ExtendedKeyUsagePurpose::ClientAuth)?;
    let mut roots = RootCertStore::empty();
    roots.add(ca_cert.der().clone())?;
    let roots = Arc::new(roots);

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server_chain, server_key)?;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(client_chain, client_key)?;
    client.resumption = rustls::client::Resumption::disabled();
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}

/// Both ends of one measured mode.
#[derive(Clone)]
struct Mode {
    acceptor: Acceptor,
    connector: Connector,
}

/// How the bench server accepts a connection.
#[derive(Clone)]
enum Acceptor {
    Plain(TlsAcceptor),
    Attested(AtlsServer),
    /// A new verifier and server for every connection: nothing cached.
    Cold {
        identity: Arc<NodeIdentity>,
        policy: Arc<AppraisalPolicy>,
    },
}

impl Acceptor {
    async fn accept(&self, tcp: TcpStream) -> Result<ServerTls> {
        Ok(match self {
            Self::Plain(acceptor) => acceptor.accept(tcp).await?,
            Self::Attested(server) => server.accept(tcp).await?.stream,
            Self::Cold { identity, policy } => {
                let verifier = shared_verifier(policy, None);
                let server = AtlsServer::new(identity.clone(), verifier)?;
                server.accept(tcp).await?.stream
            }
        })
    }
}

/// How the bench client connects.
#[derive(Clone)]
enum Connector {
    Plain(TlsConnector),
    Attested(AtlsClient),
    /// A new verifier and client for every connection: nothing cached.
    Cold {
        identity: Arc<NodeIdentity>,
        policy: Arc<AppraisalPolicy>,
    },
}

impl Connector {
    async fn connect(&self, addr: SocketAddr) -> Result<ClientTls> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        Ok(match self {
            Self::Plain(connector) => {
                connector
                    .connect(ServerName::try_from(SERVER_NAME)?, tcp)
                    .await?
            }
            Self::Attested(client) => client.connect(tcp).await?.stream,
            Self::Cold { identity, policy } => {
                let verifier = shared_verifier(policy, None);
                let client = AtlsClient::new(identity.clone(), verifier)?;
                client.connect(tcp).await?.stream
            }
        })
    }
}

/// A loopback listener serving each connection in its own task: echo and bulk requests until
/// the client goes away. Failures are collected for the client to report.
struct BenchServer {
    addr: SocketAddr,
    errors: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl BenchServer {
    async fn start(acceptor: Acceptor) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn(accept_loop(listener, acceptor, errors.clone()));
        Ok(Self { addr, errors, task })
    }

    /// `result`, with the server's reasons added when the client failed (a refusal is decided
    /// on the server; the client only sees the connection end).
    async fn check<T>(&self, result: Result<T>) -> Result<T> {
        let Err(client_error) = result else {
            return result;
        };
        // The server records its reason just after it drops the connection: give it a moment.
        for _ in 0..20 {
            if !self.server_errors().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let server_errors = self.server_errors();
        if server_errors.is_empty() {
            Err(client_error)
        } else {
            Err(client_error.context(format!("the server said: {}", server_errors.join("; "))))
        }
    }

    fn server_errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn stop(self) {
        self.task.abort();
    }
}

async fn accept_loop(listener: TcpListener, acceptor: Acceptor, errors: Arc<Mutex<Vec<String>>>) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                record(&errors, &anyhow::Error::from(e).context("accept"));
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let errors = errors.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(tcp, &acceptor).await {
                record(&errors, &e);
            }
        });
    }
}

fn record(errors: &Mutex<Vec<String>>, e: &anyhow::Error) {
    errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(format!("{e:#}"));
}

async fn serve_connection(tcp: TcpStream, acceptor: &Acceptor) -> Result<()> {
    tcp.set_nodelay(true)?;
    let mut tls = acceptor.accept(tcp).await?;
    let mut buf = vec![0u8; BULK_CHUNK];
    loop {
        let mut op = [0u8; 1];
        match tls.read(&mut op).await {
            Ok(0) => return Ok(()),
            // The bench client drops connections without close_notify once it has its answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        match op[0] {
            OP_ECHO => {
                let mut byte = [0u8; 1];
                tls.read_exact(&mut byte).await?;
                tls.write_all(&byte).await?;
                tls.flush().await?;
            }
            OP_BULK => {
                let mut len = [0u8; 8];
                tls.read_exact(&mut len).await?;
                let mut left = u64::from_be_bytes(len);
                while left > 0 {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let n = tls.read(&mut buf[..want]).await?;
                    anyhow::ensure!(n > 0, "the client stopped {left} bytes short");
                    left -= n as u64;
                }
                tls.write_all(&[OP_BULK]).await?;
                tls.flush().await?;
            }
            other => anyhow::bail!("unknown request byte {other:#04x}"),
        }
    }
}

/// Sequential handshake times of one mode: p50, p99 and handshakes per second.
#[derive(Debug, Clone, Copy)]
struct HandshakeStats {
    p50: Duration,
    p99: Duration,
    per_second: f64,
}

/// Times `iterations` handshakes of every mode, after a warm-up, one at a time: the modes take
/// turns so that a change in background load over the run affects all of them alike.
async fn time_handshakes(modes: &[(&str, Mode)], iterations: u32) -> Result<Vec<HandshakeStats>> {
    let mut servers = Vec::with_capacity(modes.len());
    for (_, mode) in modes {
        servers.push(BenchServer::start(mode.acceptor.clone()).await?);
    }
    let mut samples = vec![Vec::with_capacity(iterations as usize); modes.len()];
    let warm_up = iterations.div_ceil(10).max(3);
    for round in 0..warm_up + iterations {
        for (i, (name, mode)) in modes.iter().enumerate() {
            let start = Instant::now();
            servers[i]
                .check(handshake_and_echo(servers[i].addr, &mode.connector).await)
                .await
                .with_context(|| format!("{name}: handshake failed"))?;
            if round >= warm_up {
                samples[i].push(start.elapsed());
            }
        }
    }
    for server in servers {
        server.stop();
    }
    Ok(samples
        .into_iter()
        .map(|mut samples| {
            samples.sort();
            let total: Duration = samples.iter().sum();
            let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
            HandshakeStats {
                p50: p(0.5),
                p99: p(0.99),
                per_second: samples.len() as f64 / total.as_secs_f64().max(1e-12),
            }
        })
        .collect())
}

async fn handshake_and_echo(addr: SocketAddr, connector: &Connector) -> Result<()> {
    let mut tls = connector.connect(addr).await?;
    tls.write_all(&[OP_ECHO, 0x42]).await?;
    tls.flush().await?;
    let mut back = [0u8; 1];
    tls.read_exact(&mut back).await?;
    anyhow::ensure!(back == [0x42], "the server echoed {back:?}");
    Ok(())
}

/// Bulk transfer result of one mode.
#[derive(Debug, Clone)]
struct BulkStats {
    mib_per_second: f64,
    suite: String,
}

/// Opens one connection per mode, then sends `bytes` over each in turn, [`BULK_ROUNDS`] times.
async fn time_bulk(modes: &[&Mode], bytes: u64) -> Result<Vec<BulkStats>> {
    let mut servers = Vec::with_capacity(modes.len());
    let mut connections = Vec::with_capacity(modes.len());
    for mode in modes {
        let server = BenchServer::start(mode.acceptor.clone()).await?;
        let tls = server
            .check(mode.connector.connect(server.addr).await)
            .await?;
        servers.push(server);
        connections.push(tls);
    }
    let mut rates = vec![Vec::with_capacity(BULK_ROUNDS); modes.len()];
    for _ in 0..BULK_ROUNDS {
        for (i, tls) in connections.iter_mut().enumerate() {
            let elapsed = servers[i].check(send_bulk(tls, bytes).await).await?;
            rates[i].push(bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-12));
        }
    }
    for server in servers {
        server.stop();
    }
    Ok(connections
        .iter()
        .zip(rates)
        .map(|(tls, mut rates)| {
            rates.sort_by(f64::total_cmp);
            BulkStats {
                mib_per_second: rates[rates.len() / 2],
                suite: tls
                    .get_ref()
                    .1
                    .negotiated_cipher_suite()
                    .map(|s| format!("{:?}", s.suite()))
                    .unwrap_or_default(),
            }
        })
        .collect())
}

/// Sends `bytes` and waits for the server's acknowledgement that it read them all.
async fn send_bulk(tls: &mut ClientTls, bytes: u64) -> Result<Duration> {
    let chunk = vec![0xa5u8; BULK_CHUNK];
    let start = Instant::now();
    let mut head = [0u8; 9];
    head[0] = OP_BULK;
    head[1..].copy_from_slice(&bytes.to_be_bytes());
    tls.write_all(&head).await?;
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(chunk.len());
        tls.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    tls.flush().await?;
    let mut ack = [0u8; 1];
    tls.read_exact(&mut ack).await?;
    anyhow::ensure!(ack == [OP_BULK], "the server acknowledged with {ack:?}");
    Ok(start.elapsed())
}
