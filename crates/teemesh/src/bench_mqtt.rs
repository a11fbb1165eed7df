//! `teemesh bench mqtt`: our broker against Debian's mosquitto, both driven in one run by the
//! same load generator (`mqtt_load`): QoS 0 and 1, 64 B and 16 KiB payloads, 1 → 1 and 4 → 4
//! (four publishers, four subscribers of their topic), over plain TCP and TLS, and for ours
//! attested TLS too (mosquitto has no such listener). Each broker runs as its own process with
//! a TLS certificate from a CA made for the run. Prints messages per second delivered to
//! subscribers, p50/p99 publish-to-delivery latency, and ratios.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use mqtt::QoS;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use serde_json::json;

use crate::mqtt_conn::Transport;
use crate::mqtt_load::{Load, Outcome};
use crate::table::Table;

/// The TLS server name of both brokers' certificates.
const SERVER_NAME: &str = "localhost";
/// Goals from the issue.
const GOAL_THROUGHPUT: f64 = 1.5;
const GOAL_ATTESTED: f64 = 0.95;

#[derive(Debug, Args)]
pub(crate) struct MqttBenchArgs {
    /// Short runs: a smoke test whose numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// The mosquitto executable (default: /usr/sbin/mosquitto, else `mosquitto` on PATH).
    #[arg(long, value_name = "FILE")]
    mosquitto: Option<PathBuf>,
    /// Only these transports (tcp, tls, atls; repeatable); default all three.
    #[arg(long = "transport", value_name = "KIND", value_parser = ["tcp", "tls", "atls"])]
    transports: Vec<String>,
}

/// A broker process, killed when dropped.
struct BrokerProcess {
    child: Child,
    tcp: String,
    tls: String,
    atls: Option<String>,
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run's TLS material: a CA, and a server certificate for `localhost` / 127.0.0.1 it issued,
/// written as PEM files for the brokers; the clients trust the CA.
struct Pki {
    ca: rustls::pki_types::CertificateDer<'static>,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path) -> Result<Pki> {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "teemesh bench mqtt CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(vec![SERVER_NAME.to_owned(), "127.0.0.1".to_owned()])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "bench broker");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer)?;
    let cert_path = dir.join("broker.pem");
    let key_path = dir.join("broker-key.pem");
    std::fs::write(&cert_path, cert.pem())?;
    std::fs::write(&key_path, key.serialize_pem())?;
    Ok(Pki {
        ca: ca_cert.der().clone(),
        cert: cert_path,
        key: key_path,
    })
}

fn tls_transport(pki: &Pki) -> Result<Transport> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Transport::Tls {
        config: Arc::new(config),
        server_name: rustls::pki_types::ServerName::try_from(SERVER_NAME)?.to_owned(),
    })
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits until something accepts connections at `address`.
fn wait_for(address: &str, what: &str, child: &mut Child) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(address).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited ({status}) before listening on {address}");
        }
        if Instant::now() > deadline {
            bail!("{what} does not listen on {address} after 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn start_mosquitto(args: &MqttBenchArgs, dir: &Path, pki: &Pki) -> Result<BrokerProcess> {
    let program = match &args.mosquitto {
        Some(path) => path.clone(),
        None => ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("mosquitto")),
    };
    let (tcp, tls) = (free_port()?, free_port()?);
    let config = dir.join("mosquitto.conf");
    // Defaults otherwise, but no persistence and no limit on queued messages, as ours.
    std::fs::write(
        &config,
        format!(
            "persistence false\nallow_anonymous true\nmax_queued_messages 0\nlog_type error\nlistener {tcp} 127.0.0.1\nlistener {tls} 127.0.0.1\ncertfile {}\nkeyfile {}\n",
            pki.cert.display(),
            pki.key.display()
        ),
    )?;
    let mut child = Command::new(&program)
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (install it: apt-get install mosquitto, or give --mosquitto FILE)",
                program.display()
            )
        })?;
    let tcp = format!("127.0.0.1:{tcp}");
    let tls = format!("127.0.0.1:{tls}");
    wait_for(&tcp, "mosquitto", &mut child)?;
    wait_for(&tls, "mosquitto", &mut child)?;
    Ok(BrokerProcess {
        child,
        tcp,
        tls,
        atls: None,
    })
}

/// Our broker as its own process (`teemesh mqtt broker`), with a TCP, a TLS and an attested TLS
/// listener (on the simulated TEE: this is a benchmark). Its queues are as large as mosquitto's
/// are here (unlimited queued messages), so neither drops what the other would keep.
fn start_ours(dir: &Path, pki: &Pki) -> Result<BrokerProcess> {
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[[listener]]\nkind = \"tls\"\naddress = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n\n[[listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\nplatform = \"sim\"\n\n[limits]\nmax_queued_messages = 100000000\noutbound_queue = 1000000\n",
            pki.cert.display(),
            pki.key.display()
        ),
    )?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["mqtt", "broker", "--config"])
        .arg(&config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start teemesh mqtt broker")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("no stdout")?;
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
    let ready: serde_json::Value = serde_json::from_str(&line)
        .with_context(|| format!("teemesh mqtt broker printed no ready line: {line:?}"))?;
    let address = |kind: &str| {
        ready["listeners"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["kind"] == kind))
            .and_then(|l| l["address"].as_str())
            .map(str::to_owned)
            .with_context(|| format!("no {kind} listener in {line}"))
    };
    Ok(BrokerProcess {
        tcp: address("tcp")?,
        tls: address("tls")?,
        atls: Some(address("atls")?),
        child,
    })
}

/// An ordinary client of the attested listener: it appraises the broker (simulated evidence
/// allowed, this is a benchmark) and presents a plain certificate.
fn attested_transport() -> Result<Transport> {
    let key = rcgen::KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let certificate = atls::self_signed(&key, "bench-client", attest::UnixTime::now(), None)?;
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(
        rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()),
    );
    let policy = attest::AppraisalPolicy::from_toml("allow_simulated = true")?;
    let verifier = Arc::new(atls::PeerVerifier::new(
        policy,
        attest::Endorsements::default(),
    ));
    Ok(Transport::Attested(atls::AtlsClient::unattested(
        certificate,
        private,
        verifier,
    )?))
}

/// One scenario of the matrix.
#[derive(Debug, Clone, Copy)]
struct Scenario {
    transport: &'static str,
    load: Load,
}

fn scenarios(quick: bool) -> Vec<Scenario> {
    let mut out = Vec::new();
    for transport in ["tcp", "tls", "atls"] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            for size in [64, 16 * 1024] {
                for (publishers, subscribers) in [(1, 1), (4, 4)] {
                    let messages = match (quick, size) {
                        (true, 64) => 2_000,
                        (true, _) => 200,
                        (false, 64) => 50_000 / publishers,
                        (false, _) => 5_000 / publishers,
                    };
                    out.push(Scenario {
                        transport,
                        load: Load {
                            publishers,
                            subscribers,
                            messages,
                            size,
                            qos,
                        },
                    });
                }
            }
        }
    }
    out
}

fn label(load: &Load) -> String {
    format!(
        "QoS {} {:>5} B {}→{}",
        load.qos as u8, load.size, load.publishers, load.subscribers
    )
}

pub(crate) fn run(args: &MqttBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build (our broker runs as this executable): run `cargo run --release -p teemesh -- bench mqtt` for meaningful ratios"
        );
    }
    let dir = tempfile::tempdir()?;
    let pki = make_pki(dir.path())?;
    let mosquitto = start_mosquitto(args, dir.path(), &pki)?;
    let ours = start_ours(dir.path(), &pki)?;
    let tls = tls_transport(&pki)?;
    let atls = attested_transport()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    for scenario in scenarios(args.quick)
        .into_iter()
        .filter(|s| args.transports.is_empty() || args.transports.iter().any(|t| t == s.transport))
    {
        let (transport, theirs_at, ours_at) = match scenario.transport {
            "tcp" => (Transport::Tcp, Some(&mosquitto.tcp), ours.tcp.clone()),
            "tls" => (tls.clone(), Some(&mosquitto.tls), ours.tls.clone()),
            _ => (
                atls.clone(),
                None,
                ours.atls
                    .clone()
                    .context("our broker has no attested listener")?,
            ),
        };
        let theirs = match theirs_at {
            Some(address) => {
                Some(runtime.block_on(crate::mqtt_load::run(&transport, address, scenario.load))?)
            }
            None => None,
        };
        let mine = runtime.block_on(crate::mqtt_load::run(&transport, &ours_at, scenario.load))?;
        if !args.json {
            eprintln!(
                "  {:<5} {}: ours {:.0}/s{}",
                scenario.transport,
                label(&scenario.load),
                mine.per_sec,
                theirs
                    .as_ref()
                    .map(|t| format!(", mosquitto {:.0}/s", t.per_sec))
                    .unwrap_or_default()
            );
        }
        rows.push((scenario, mine, theirs));
    }
    drop((mosquitto, ours));
    report(args, &rows)
}

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    json!({
        "messages_per_sec": outcome.per_sec.round(),
        "p50_us": outcome.p50.as_micros(),
        "p99_us": outcome.p99.as_micros(),
        "delivered": outcome.delivered,
        "expected": outcome.expected,
    })
}

fn report(args: &MqttBenchArgs, rows: &[(Scenario, Outcome, Option<Outcome>)]) -> Result<()> {
    // Attested TLS against our own plain TLS at the same load.
    let our_tls = |load: &Load| {
        rows.iter()
            .find(|(s, _, _)| {
                s.transport == "tls"
                    && s.load.qos == load.qos
                    && s.load.size == load.size
                    && s.load.publishers == load.publishers
            })
            .map(|(_, mine, _)| mine.per_sec)
    };
    if args.json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|(s, mine, theirs)| {
                json!({
                    "transport": s.transport,
                    "qos": s.load.qos as u8,
                    "size": s.load.size,
                    "publishers": s.load.publishers,
                    "subscribers": s.load.subscribers,
                    "teemesh": outcome_json(mine),
                    "mosquitto": theirs.as_ref().map(outcome_json),
                    "ratio": theirs.as_ref().map(|t| mine.per_sec / t.per_sec.max(1e-9)),
                })
            })
            .collect();
        println!("{}", json!({ "mqtt": out }));
        return Ok(());
    }
    let mut table = Table::new(&[
        "path",
        "load",
        "ours msg/s",
        "p50",
        "p99",
        "mosquitto msg/s",
        "p50",
        "p99",
        "ratio",
    ]);
    let us = |d: Duration| format!("{} µs", d.as_micros());
    for (s, mine, theirs) in rows {
        let ratio = match theirs {
            Some(t) => format!("{:.2}× mosquitto", mine.per_sec / t.per_sec.max(1e-9)),
            None => our_tls(&s.load)
                .map(|tls| format!("{:.2}× our TLS", mine.per_sec / tls.max(1e-9)))
                .unwrap_or_default(),
        };
        let lost = |o: &Outcome| {
            if o.delivered < o.expected {
                format!(" ({} lost)", o.expected - o.delivered)
            } else {
                String::new()
            }
        };
        table.row(vec![
            s.transport.to_owned(),
            label(&s.load),
            format!("{:.0}{}", mine.per_sec, lost(mine)),
            us(mine.p50),
            us(mine.p99),
            theirs
                .as_ref()
                .map(|t| format!("{:.0}{}", t.per_sec, lost(t)))
                .unwrap_or_else(|| "—".into()),
            theirs.as_ref().map(|t| us(t.p50)).unwrap_or_default(),
            theirs.as_ref().map(|t| us(t.p99)).unwrap_or_default(),
            ratio,
        ]);
    }
    println!("MQTT brokers on loopback, one process each, driven by the same client (MQTT 3.1.1)");
    println!("{}", table.render());
    let ratios: Vec<f64> = rows
        .iter()
        .filter_map(|(_, mine, theirs)| theirs.as_ref().map(|t| mine.per_sec / t.per_sec.max(1e-9)))
        .collect();
    let attested: Vec<f64> = rows
        .iter()
        .filter(|(s, _, _)| s.transport == "atls")
        .filter_map(|(s, mine, _)| our_tls(&s.load).map(|tls| mine.per_sec / tls.max(1e-9)))
        .collect();
    // "lowest R: met | missed", or "not measured" when no load of that kind ran.
    let verdict = |v: &[f64], goal: f64| match v.iter().copied().reduce(f64::min) {
        Some(lowest) if lowest >= goal => format!("lowest {lowest:.2}: met"),
        Some(lowest) => format!("lowest {lowest:.2}: missed"),
        None => "not measured".to_owned(),
    };
    let compared = rows
        .iter()
        .filter(|(_, _, theirs)| theirs.is_some())
        .count();
    let p99_missed = rows
        .iter()
        .filter_map(|(_, mine, theirs)| theirs.as_ref().map(|t| mine.p99 <= t.p99))
        .filter(|ok| !ok)
        .count();
    let p99 = match (compared, p99_missed) {
        (0, _) => "not measured".to_owned(),
        (_, 0) => "met".to_owned(),
        (_, missed) => format!("missed in {missed} of {compared} loads"),
    };
    println!(
        "goals: throughput ≥ {GOAL_THROUGHPUT}× mosquitto ({}), attested TLS ≥ {GOAL_ATTESTED}× our TLS ({}), p99 ≤ mosquitto's ({p99})",
        verdict(&ratios, GOAL_THROUGHPUT),
        verdict(&attested, GOAL_ATTESTED),
    );
    Ok(())
}
