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
    /// Runs of each load on each broker, alternating between them; the table shows medians
    /// (default 3, 1 with --quick).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: Option<u32>,
    /// Worker threads of our broker (default: its own default, one per CPU).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    broker_threads: Option<u16>,
    /// Only loads of this QoS (0 or 1; repeatable).
    #[arg(long, value_name = "QOS", value_parser = clap::value_parser!(u8).range(0..=1))]
    qos: Vec<u8>,
    /// Only loads of this payload size (64 or 16384 bytes; repeatable).
    #[arg(long, value_name = "BYTES", value_parser = one_of(&["64", "16384"]))]
    size: Vec<usize>,
    /// Only loads with this many publishers and subscribers (1 or 4; repeatable).
    #[arg(long, value_name = "N", value_parser = one_of(&["1", "4"]))]
    fan: Vec<usize>,
}

/// A parser accepting only `values` (listed in `--help` and in the error), as numbers.
fn one_of(values: &'static [&'static str]) -> impl clap::builder::TypedValueParser<Value = usize> {
    use clap::builder::TypedValueParser as _;
    clap::builder::PossibleValuesParser::new(values).try_map(|v| v.parse::<usize>())
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
fn start_ours(dir: &Path, pki: &Pki, threads: Option<u16>) -> Result<BrokerProcess> {
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[[listener]]\nkind = \"tls\"\naddress = \"127.0.0.1:0\"\ncert = \"{}\"\nkey = \"{}\"\n\n[[listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\nplatform = \"sim\"\n\n[limits]\nmax_queued_messages = 100000000\n",
            pki.cert.display(),
            pki.key.display()
        ),
    )?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["mqtt", "broker", "--config"]).arg(&config);
    if let Some(threads) = threads {
        command.args(["--threads", &threads.to_string()]);
    }
    let mut child = command
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
                            rate: None,
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
    let chosen: Vec<Scenario> = scenarios(args.quick)
        .into_iter()
        .filter(|s| args.transports.is_empty() || args.transports.iter().any(|t| t == s.transport))
        .filter(|s| args.qos.is_empty() || args.qos.contains(&(s.load.qos as u8)))
        .filter(|s| args.size.is_empty() || args.size.contains(&s.load.size))
        .filter(|s| args.fan.is_empty() || args.fan.contains(&s.load.publishers))
        .collect();
    if chosen.is_empty() {
        bail!("no load matches these --transport, --qos, --size and --fan choices");
    }
    let dir = tempfile::tempdir()?;
    let pki = make_pki(dir.path())?;
    let mosquitto = start_mosquitto(args, dir.path(), &pki)?;
    let ours = start_ours(dir.path(), &pki, args.broker_threads)?;
    let tls = tls_transport(&pki)?;
    let atls = attested_transport()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    let mut rows: Vec<Row> = Vec::new();
    for scenario in chosen {
        // Ours, and the peer it is compared with, each run alternating with the other so a
        // change in the machine's load hits both alike: mosquitto over the same transport, or
        // for the attested listener our own plain TLS listener.
        let (transport, ours_at, peer) = match scenario.transport {
            "tcp" => (
                &Transport::Tcp,
                &ours.tcp,
                (MOSQUITTO, &mosquitto, &mosquitto.tcp),
            ),
            "tls" => (&tls, &ours.tls, (MOSQUITTO, &mosquitto, &mosquitto.tls)),
            _ => (
                &atls,
                ours.atls
                    .as_ref()
                    .context("our broker has no attested listener")?,
                (OUR_TLS, &ours, &ours.tls),
            ),
        };
        let (peer_name, peer_broker, peer_at) = peer;
        // The peer is reached over plain TCP or plain TLS.
        let peer_transport = if scenario.transport == "tcp" {
            &Transport::Tcp
        } else {
            &tls
        };
        let measure = |load: Load| -> Result<(Outcome, Outcome)> {
            let (mut mine, mut theirs) = (Vec::new(), Vec::new());
            for _ in 0..runs {
                theirs.push(run_load(
                    &runtime,
                    peer_broker,
                    peer_transport,
                    peer_at,
                    load,
                )?);
                mine.push(run_load(&runtime, &ours, transport, ours_at, load)?);
            }
            Ok((Outcome::median(mine), Outcome::median(theirs)))
        };
        let (full, full_peer) = measure(scenario.load)?;
        // Latency at one rate for both: a share of the slower one's throughput.
        let rate =
            LATENCY_LOAD * full.per_sec.min(full_peer.per_sec) / scenario.load.subscribers as f64;
        let paced_messages = ((rate * paced_secs(args.quick)) as usize / scenario.load.publishers)
            .clamp(100, scenario.load.messages.max(100) * 4);
        let (paced, paced_peer) = measure(Load {
            rate: Some(rate),
            messages: paced_messages,
            ..scenario.load
        })?;
        if !args.json {
            eprintln!(
                "  {:<5} {}: ours {:.0}/s, {} {:.0}/s; p99 at {:.0}/s: ours {} µs, {} {} µs",
                scenario.transport,
                label(&scenario.load),
                full.per_sec,
                peer_name,
                full_peer.per_sec,
                rate * scenario.load.subscribers as f64,
                paced.p99.as_micros(),
                peer_name,
                paced_peer.p99.as_micros(),
            );
        }
        rows.push(Row {
            scenario,
            rate,
            mine: Measured { full, paced },
            peer: peer_name,
            theirs: Measured {
                full: full_peer,
                paced: paced_peer,
            },
        });
    }
    drop((mosquitto, ours));
    report(args, runs, &rows)
}

/// One run of `load` against `broker` at `address`, with the broker's CPU time per delivery.
fn run_load(
    runtime: &tokio::runtime::Runtime,
    broker: &BrokerProcess,
    transport: &Transport,
    address: &str,
    load: Load,
) -> Result<Outcome> {
    let before = cpu_time(broker.child.id());
    let mut outcome = runtime.block_on(crate::mqtt_load::run(transport, address, load))?;
    if let (Some(before), Some(after)) = (before, cpu_time(broker.child.id())) {
        outcome.cpu_per_delivery = Some(
            after.saturating_sub(before) / outcome.delivered.max(1).try_into().unwrap_or(u32::MAX),
        );
    }
    Ok(outcome)
}

/// The CPU time a process has had so far, all its threads together (Linux: the first field of
/// every `/proc/PID/task/*/schedstat`, in nanoseconds); `None` where that cannot be read.
fn cpu_time(pid: u32) -> Option<Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(Duration::from_nanos(total))
}

/// A paced run that delivered less than this share of its rate is marked in the table.
const SHORT_OF_PACE: f64 = 0.9;

/// Our broker's worker threads: as asked, else one per CPU (its default).
fn broker_threads(args: &MqttBenchArgs) -> usize {
    args.broker_threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        usize::from,
    )
}

/// The share of the slower broker's throughput the latency runs publish at.
const LATENCY_LOAD: f64 = 0.5;

/// How long a latency run publishes for.
fn paced_secs(quick: bool) -> f64 {
    if quick { 0.1 } else { 0.5 }
}

/// One broker's figures for one load: throughput at full speed, latency at the row's rate.
struct Measured {
    full: Outcome,
    paced: Outcome,
}

/// The peers a row compares ours with.
const MOSQUITTO: &str = "mosquitto";
const OUR_TLS: &str = "our TLS";

/// One load's row: ours, and its peer's at the same load.
struct Row {
    scenario: Scenario,
    /// Messages published per second in the latency runs.
    rate: f64,
    mine: Measured,
    /// [`MOSQUITTO`] or [`OUR_TLS`].
    peer: &'static str,
    theirs: Measured,
}

impl Row {
    /// Our throughput over the peer's.
    fn ratio(&self) -> f64 {
        self.mine.full.per_sec / self.theirs.full.per_sec.max(1e-9)
    }
}

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    json!({
        "messages_per_sec": outcome.per_sec.round(),
        "p50_us": outcome.p50.as_micros(),
        "p99_us": outcome.p99.as_micros(),
        "cpu_ns_per_delivery": outcome.cpu_per_delivery.map(|d| d.as_nanos()),
        "delivered": outcome.delivered,
        "expected": outcome.expected,
    })
}

fn measured_json(measured: &Measured) -> serde_json::Value {
    json!({ "full_speed": outcome_json(&measured.full), "paced": outcome_json(&measured.paced) })
}

fn report(args: &MqttBenchArgs, runs: u32, rows: &[Row]) -> Result<()> {
    if args.json {
        let out: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                let s = &r.scenario;
                json!({
                    "transport": s.transport,
                    "qos": s.load.qos as u8,
                    "size": s.load.size,
                    "publishers": s.load.publishers,
                    "subscribers": s.load.subscribers,
                    "paced_deliveries_per_sec": (r.rate * s.load.subscribers as f64).round(),
                    "teemesh": measured_json(&r.mine),
                    "peer": r.peer,
                    "peer_figures": measured_json(&r.theirs),
                    "ratio": r.ratio(),
                })
            })
            .collect();
        println!(
            "{}",
            json!({ "mqtt": out, "runs": runs, "broker_threads": broker_threads(args) })
        );
        return Ok(());
    }
    let mut table = Table::new(&[
        "path",
        "load",
        "ours msg/s",
        "peer",
        "peer msg/s",
        "ratio",
        "CPU/msg",
        "peer's",
        "paced msg/s",
        "ours p50",
        "ours p99",
        "peer p50",
        "peer p99",
    ]);
    let us = |d: Duration| format!("{} µs", d.as_micros());
    let cpu = |o: &Outcome| {
        o.cpu_per_delivery
            .map(|d| format!("{} ns", d.as_nanos()))
            .unwrap_or_else(|| "—".into())
    };
    let lost = |o: &Outcome| {
        if o.delivered < o.expected {
            format!(" ({} lost)", o.expected - o.delivered)
        } else {
            String::new()
        }
    };
    // A paced run that fell short of the rate says so: its latency is not at that rate.
    let short = |o: &Outcome, target: f64| {
        if o.per_sec < SHORT_OF_PACE * target {
            format!(" (at {:.0}/s)", o.per_sec)
        } else {
            String::new()
        }
    };
    for r in rows {
        let (s, mine, theirs) = (&r.scenario, &r.mine, &r.theirs);
        let target = r.rate * s.load.subscribers as f64;
        let p99 = |o: &Outcome| format!("{}{}{}", us(o.p99), lost(o), short(o, target));
        table.row(vec![
            s.transport.to_owned(),
            label(&s.load),
            format!("{:.0}{}", mine.full.per_sec, lost(&mine.full)),
            r.peer.to_owned(),
            format!("{:.0}{}", theirs.full.per_sec, lost(&theirs.full)),
            format!("{:.2}×", r.ratio()),
            cpu(&mine.full),
            cpu(&theirs.full),
            format!("{:.0}", r.rate * s.load.subscribers as f64),
            us(mine.paced.p50),
            p99(&mine.paced),
            us(theirs.paced.p50),
            p99(&theirs.paced),
        ]);
    }
    let threads = match (args.broker_threads, broker_threads(args)) {
        (_, 1) => "1 worker thread".to_owned(),
        (Some(_), n) => format!("{n} worker threads"),
        (None, n) => format!("{n} worker threads, one per CPU"),
    };
    let runs_said = match runs {
        1 => "one run each".to_owned(),
        n => format!("medians of {n} runs each"),
    };
    println!(
        "MQTT brokers on loopback, one process each (ours on {threads}; mosquitto is single-threaded), driven by the same client (MQTT 3.1.1); {runs_said}",
    );
    println!(
        "msg/s: deliveries to subscribers per second at full speed; CPU/msg: the broker's CPU time per delivery then; latency: publish to delivery, with both paced at the same rate ({:.0}% of the slower one's throughput)",
        LATENCY_LOAD * 100.0
    );
    println!("{}", table.render());
    let against = |peer: &'static str| rows.iter().filter(move |r| r.peer == peer);
    let ratios: Vec<f64> = against(MOSQUITTO).map(Row::ratio).collect();
    let attested: Vec<f64> = against(OUR_TLS).map(Row::ratio).collect();
    // "lowest R: met | missed", or "not measured" when no load of that kind ran.
    let verdict = |v: &[f64], goal: f64| match v.iter().copied().reduce(f64::min) {
        Some(lowest) if lowest >= goal => format!("lowest {lowest:.2}: met"),
        Some(lowest) => format!("lowest {lowest:.2}: missed"),
        None => "not measured".to_owned(),
    };
    let compared = against(MOSQUITTO).count();
    let p99_missed = against(MOSQUITTO)
        .filter(|r| r.mine.paced.p99 > r.theirs.paced.p99)
        .count();
    let p99 = match (compared, p99_missed) {
        (0, _) => "not measured".to_owned(),
        (_, 0) => "met".to_owned(),
        (n, missed) => format!("missed in {missed} of {n} loads"),
    };
    println!(
        "goals: throughput ≥ {GOAL_THROUGHPUT}× mosquitto ({}), attested TLS ≥ {GOAL_ATTESTED}× our TLS ({}), p99 ≤ mosquitto's at the same rate ({p99}){}",
        verdict(&ratios, GOAL_THROUGHPUT),
        verdict(&attested, GOAL_ATTESTED),
        if args.quick {
            "; a --quick run is too short for these to mean anything"
        } else {
            ""
        },
    );
    Ok(())
}
