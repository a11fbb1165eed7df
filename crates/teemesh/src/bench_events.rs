//! `teemesh bench events`: events between modules on two nodes, against the same traffic with
//! the same framing over plain TCP, in one run. Two in-process nodes (simulated TEE) each host
//! the relay module (input `in` re-emitted on output `out`), wired into a ring — A.out → B.in,
//! B.out → A.in — with fresh keys wrapped to the modules' attested channel keys, exactly as
//! `teemesh deploy` wires them. A probe on the A → B leg, itself an attested peer that passes
//! frames through unchanged, timestamps every event that goes by. The baseline is the same ring
//! of two relays and a probe over plain TCP, answering and re-sending the same frames, with no
//! TLS, no AEAD and no WebAssembly.
//!
//! Throughput: `IN_FLIGHT` events circulate; events/s counts module-to-module deliveries (two
//! per ring pass). Latency: one event circulates; one hop is half a ring round trip.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use atls::{AtlsClient, AtlsServer, NodeIdentity, PeerVerifier};
use attest::{AppraisalPolicy, Endorsements, Measurement384, UnixTime};
use clap::Args;
use node::protocol::{Bytes, CallKind, EventProtection, Op, Reply, Request, Response};
use node::{AdminClient, AdminKey};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::table::Table;
use crate::wire::{Endpoint, connection_specs, load_attested, start_sim_node};

/// The committed relay module (`examples/relay`).
const RELAY_WASM: &[u8] = include_bytes!("../../../examples/relay/relay-rust.wasm");
/// Payload sizes measured.
const SIZES: [usize; 3] = [64, 1024, 16 * 1024];
/// Events circulating during the throughput measurement.
const IN_FLIGHT: usize = 64;
/// Goals from the issue (loopback).
const GOAL_P50: Duration = Duration::from_millis(1);
const GOAL_RATE_1K: f64 = 50_000.0;

#[derive(Debug, Args)]
pub(crate) struct EventsBenchArgs {
    /// Short measurements: a smoke run whose numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// The relay component (input `in` re-emitted on `out`, entry `emit`); default: the
    /// committed examples/relay module.
    #[arg(long, value_name = "FILE")]
    module: Option<PathBuf>,
}

/// One measurement of one path at one size.
#[derive(Debug, Clone, Copy)]
struct Measured {
    events_per_sec: f64,
    p50: Duration,
    p99: Duration,
}

pub(crate) fn run(args: &EventsBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) && !args.quick {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -p teemesh -- bench events` for meaningful numbers"
        );
    }
    let wasm = match &args.module {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        None => RELAY_WASM.to_vec(),
    };
    let window = if args.quick {
        Duration::from_millis(300)
    } else {
        Duration::from_secs(2)
    };
    let runtime = crate::async_runtime()?;
    let mut rows = Vec::new();
    for size in SIZES {
        let teemesh = runtime.block_on(measure_teemesh(&wasm, size, window))?;
        let plain = runtime.block_on(measure_plain(size, window))?;
        rows.push((size, teemesh, plain));
    }
    report(args, &rows)
}

fn report(args: &EventsBenchArgs, rows: &[(usize, Measured, Measured)]) -> Result<()> {
    if args.json {
        let sizes: Vec<_> = rows
            .iter()
            .map(|(size, ours, plain)| {
                json!({
                    "payload_bytes": size,
                    "teemesh": {"events_per_sec": ours.events_per_sec, "p50_us": micros(ours.p50), "p99_us": micros(ours.p99)},
                    "plain_tcp": {"events_per_sec": plain.events_per_sec, "p50_us": micros(plain.p50), "p99_us": micros(plain.p99)},
                    "throughput_ratio": ours.events_per_sec / plain.events_per_sec,
                })
            })
            .collect();
        println!(
            "{}",
            json!({"simulated": true, "in_flight": IN_FLIGHT, "sizes": sizes})
        );
        return Ok(());
    }
    println!(
        "events between modules on two nodes (SIMULATED TEE, loopback; {IN_FLIGHT} in flight for events/s, one for latency)"
    );
    let mut table = Table::new(&[
        "payload",
        "path",
        "events/s",
        "p50 hop",
        "p99 hop",
        "vs plain TCP",
    ]);
    for (size, ours, plain) in rows {
        table.row(vec![
            format!("{size} B"),
            "teemesh (aTLS + AEAD + Wasm)".into(),
            format!("{:.0}", ours.events_per_sec),
            format!("{:.0} µs", micros(ours.p50)),
            format!("{:.0} µs", micros(ours.p99)),
            format!(
                "{:.2}× throughput",
                ours.events_per_sec / plain.events_per_sec
            ),
        ]);
        table.row(vec![
            String::new(),
            "plain TCP, same framing".into(),
            format!("{:.0}", plain.events_per_sec),
            format!("{:.0} µs", micros(plain.p50)),
            format!("{:.0} µs", micros(plain.p99)),
            String::new(),
        ]);
    }
    println!("{}", table.render());
    if let Some((_, one_k, _)) = rows.iter().find(|(size, _, _)| *size == 1024) {
        println!(
            "goals for 1 KiB: p50 under {} µs ({}), at least {GOAL_RATE_1K:.0} events/s ({})",
            GOAL_P50.as_micros(),
            if one_k.p50 < GOAL_P50 {
                "met"
            } else {
                "missed"
            },
            if one_k.events_per_sec >= GOAL_RATE_1K {
                "met"
            } else {
                "missed"
            },
        );
    }
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Times the probe saw events pass.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

async fn measure_teemesh(wasm: &[u8], size: usize, window: Duration) -> Result<Measured> {
    let throughput = teemesh_ring(wasm, size, IN_FLIGHT, window).await?;
    let latency = teemesh_ring(wasm, size, 1, window).await?;
    Ok(summarise(&throughput, &latency, window))
}

async fn measure_plain(size: usize, window: Duration) -> Result<Measured> {
    let throughput = plain_ring(size, IN_FLIGHT, window).await?;
    let latency = plain_ring(size, 1, window).await?;
    Ok(summarise(&throughput, &latency, window))
}

fn summarise(throughput: &[Instant], latency: &[Instant], window: Duration) -> Measured {
    // Each probe passage is one ring pass: two module-to-module deliveries.
    let events_per_sec = 2.0 * throughput.len() as f64 / window.as_secs_f64();
    let mut hops: Vec<Duration> = latency.windows(2).map(|w| (w[1] - w[0]) / 2).collect();
    hops.sort();
    let pick = |q: f64| {
        hops.get(((hops.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    Measured {
        events_per_sec,
        p50: pick(0.5),
        p99: pick(0.99),
    }
}

/// Keeps the arrivals of the measurement window only.
async fn observe(arrivals: &Arrivals, window: Duration) -> Vec<Instant> {
    tokio::time::sleep(window / 3).await;
    let start = Instant::now();
    tokio::time::sleep(window).await;
    let end = Instant::now();
    let seen = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    seen.iter()
        .copied()
        .filter(|t| *t >= start && *t < end)
        .collect()
}

fn sim_verifier() -> Arc<PeerVerifier> {
    let policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    Arc::new(PeerVerifier::new(policy, Endorsements::default()))
}

/// The ring on two teemesh nodes; the probe's arrivals during the window.
async fn teemesh_ring(
    wasm: &[u8],
    size: usize,
    in_flight: usize,
    window: Duration,
) -> Result<Vec<Instant>> {
    let dir = tempfile::tempdir()?;
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem"))?;
    std::fs::write(
        dir.path().join("sim-policy.toml"),
        "allow_simulated = true\n",
    )?;
    let a = start_sim_node(dir.path(), "bench-a", &key, "sim-policy.toml").await?;
    let b = start_sim_node(dir.path(), "bench-b", &key, "sim-policy.toml").await?;
    let verifier = sim_verifier();
    let mut admin_a =
        AdminClient::connect(&a.admin_addr.to_string(), &key, verifier.clone()).await?;
    let mut admin_b =
        AdminClient::connect(&b.admin_addr.to_string(), &key, verifier.clone()).await?;
    let ping = load_attested(&mut admin_a, &verifier, "ping", wasm).await?;
    let pong = load_attested(&mut admin_b, &verifier, "pong", wasm).await?;

    let arrivals = Arrivals::default();
    let probe = start_attested_probe(b.admin_addr.to_string(), arrivals.clone()).await?;
    let legs = [
        (1, &ping, &pong, probe.clone()),
        (2, &pong, &ping, a.admin_addr.to_string()),
    ];
    for (id, from, to, address) in legs {
        let (receiver, sender) = connection_specs(
            "bench",
            id,
            EventProtection::Encrypted,
            &Endpoint {
                module: from,
                port: "out",
            },
            &Endpoint {
                module: to,
                port: "in",
            },
            &address,
        )?;
        let (to_admin, from_admin) = if id == 1 {
            (&mut admin_b, &mut admin_a)
        } else {
            (&mut admin_a, &mut admin_b)
        };
        to_admin.request(Op::Connect(receiver)).await?;
        from_admin.request(Op::Connect(sender)).await?;
    }
    let payload = vec![b'x'; size];
    for _ in 0..in_flight {
        // The ring keeps the module's queue full; an admin call finding it full is refused as
        // busy, and tried again.
        let reply = loop {
            match admin_a
                .request(Op::Call {
                    module: "ping".into(),
                    kind: CallKind::Entry,
                    port: "emit".into(),
                    data: Bytes(payload.clone()),
                })
                .await
            {
                Err(node::NodeError::Remote(e)) if e.kind == node::protocol::ErrorKind::Busy => {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                other => break other?,
            }
        };
        if !matches!(reply, Reply::Called { outputs: 1, .. }) {
            bail!("the relay module did not emit one event per `emit` call: {reply:?}");
        }
    }
    let seen = observe(&arrivals, window).await;
    drop((admin_a, admin_b));
    tokio::join!(a.shutdown(), b.shutdown());
    if seen.len() < 2 {
        bail!(
            "no events went round the ring of nodes (is the module a relay: input `in` re-emitted on `out`, entry `emit`?)"
        );
    }
    Ok(seen)
}

/// An attested peer that passes frames between node A and node B unchanged, timestamping each
/// event from A. Both nodes admit it as a simulated peer.
async fn start_attested_probe(next_hop: String, arrivals: Arrivals) -> Result<String> {
    let identity = Arc::new(NodeIdentity::generate(
        Arc::new(platform::Simulated::with_measurement(Measurement384(
            [5; 48],
        ))),
        "bench-probe",
        UnixTime::now(),
    )?);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = AtlsServer::new(identity.clone(), sim_verifier())?;
    let client = AtlsClient::new(identity, sim_verifier())?;
    tokio::spawn(async move {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(from) = server.accept(tcp).await else {
            return;
        };
        let Ok(tcp) = TcpStream::connect(&next_hop).await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(to) = client.connect(tcp).await else {
            return;
        };
        relay_through(from.stream, to.stream, arrivals).await;
    });
    Ok(address)
}

/// Frames from `from` go to `to` (timestamped), answers from `to` go back.
async fn relay_through<A, B>(from: A, to: B, arrivals: Arrivals)
where
    A: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut from_read, mut from_write) = tokio::io::split(from);
    let (mut to_read, mut to_write) = tokio::io::split(to);
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut to_read, &mut from_write).await;
    });
    while let Some(frame) = read_frame(&mut from_read).await {
        arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Instant::now());
        if write_frame(&mut to_write, &frame).await.is_err() {
            break;
        }
    }
    back.abort();
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).await.ok()?;
    let len = u32::from_be_bytes(header) as usize;
    if len > node::protocol::MAX_FRAME_LEN {
        return None;
    }
    let mut frame = vec![0u8; len];
    reader.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, payload: &[u8]) -> std::io::Result<()> {
    let frame = node::protocol::encode_frame(payload)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    writer.write_all(&frame).await?;
    writer.flush().await
}

/// The same ring over plain TCP: two relays that answer each event frame and send an event
/// frame of the same size on, and a probe between them.
async fn plain_ring(size: usize, in_flight: usize, window: Duration) -> Result<Vec<Instant>> {
    let relay_a = TcpListener::bind("127.0.0.1:0").await?;
    let relay_b = TcpListener::bind("127.0.0.1:0").await?;
    let probe = TcpListener::bind("127.0.0.1:0").await?;
    let (a_addr, b_addr, probe_addr) = (
        relay_a.local_addr()?.to_string(),
        relay_b.local_addr()?.to_string(),
        probe.local_addr()?.to_string(),
    );
    let arrivals = Arrivals::default();
    let mut tasks = tokio::task::JoinSet::new();
    // A receives from B and sends to the probe; B receives from the probe and sends to A.
    tasks.spawn(plain_relay(relay_a, probe_addr.clone(), "pong", size));
    tasks.spawn(plain_relay(relay_b, a_addr.clone(), "ping", size));
    let probe_arrivals = arrivals.clone();
    tasks.spawn(async move {
        let Ok((from, _)) = probe.accept().await else {
            return;
        };
        let _ = from.set_nodelay(true);
        let Ok(to) = TcpStream::connect(&b_addr).await else {
            return;
        };
        let _ = to.set_nodelay(true);
        relay_through(from, to, probe_arrivals).await;
    });
    // The first events enter at A, as `emit` calls put them into the teemesh ring.
    let mut inject = TcpStream::connect(&a_addr).await?;
    inject.set_nodelay(true)?;
    for id in 0..in_flight {
        write_frame(&mut inject, &event_request(id as u64, "ping", size)).await?;
    }
    let seen = observe(&arrivals, window).await;
    tasks.abort_all();
    drop(inject);
    Ok(seen)
}

fn event_request(id: u64, module: &str, size: usize) -> Vec<u8> {
    Request {
        id,
        op: Op::Event {
            module: module.into(),
            envelope: Bytes(vec![
                0x5a;
                size + events::ENVELOPE_HEADER_LEN + events::TAG_LEN
            ]),
        },
    }
    .encode()
}

/// A plain relay: every event frame on any accepted connection is answered and an event frame
/// of the same size goes on to `next_hop` (for `next_module`).
async fn plain_relay(
    listener: TcpListener,
    next_hop: String,
    next_module: &'static str,
    size: usize,
) {
    let Ok(next) = TcpStream::connect(&next_hop).await else {
        return;
    };
    let _ = next.set_nodelay(true);
    let (mut next_read, next_write) = tokio::io::split(next);
    // Answers from the next hop are read and dropped.
    tokio::spawn(async move { while read_frame(&mut next_read).await.is_some() {} });
    let next_write = Arc::new(tokio::sync::Mutex::new(next_write));
    let answer = Response {
        id: 0,
        outcome: Ok(Reply::Delivered {
            counter: 0,
            missing: 0,
        }),
    }
    .encode();
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            return;
        };
        let _ = conn.set_nodelay(true);
        let next_write = next_write.clone();
        let answer = answer.clone();
        let (mut read, mut write) = tokio::io::split(conn);
        tokio::spawn(async move {
            let mut sent = 0u64;
            while let Some(frame) = read_frame(&mut read).await {
                let Ok(request) = Request::decode(&frame) else {
                    return;
                };
                if write_frame(&mut write, &answer).await.is_err() {
                    return;
                }
                sent += 1;
                let Op::Event { .. } = request.op else {
                    continue;
                };
                let out = event_request(sent, next_module, size);
                if write_frame(&mut *next_write.lock().await, &out)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}
