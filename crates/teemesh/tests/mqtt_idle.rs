//! 10,000 concurrent idle MQTT 3.1.1 connections held by a `teemesh mqtt broker` process, after
//! which a fresh client still subscribes and receives; then 1,000 half-open connections, each
//! part way through a CONNECT as large as the broker accepts. Prints the broker's resident
//! memory per idle and per half-open connection. Fails (never skips) when the open-file limit
//! cannot fit them.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Command, Stdio};
use std::time::Instant;

use mqtt::{Connect, Packet, Properties, ProtocolVersion};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

mod support;

use support::TEEMESH;
use support::broker::BrokerProcess;

const CONNECTIONS: usize = 10_000;
/// Connections opened at once.
const BATCH: usize = 500;
/// Descriptors beyond the connections: stdio, the runtime, the listener, the child's pipes.
const FD_MARGIN: u64 = 300;

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The open-file limit this process (and the broker, which inherits it) needs, or a failure
/// naming the hard limit. Each process holds one end of every connection, so each needs
/// CONNECTIONS descriptors plus a margin, not twice that.
fn raise_open_file_limit() {
    let needed = (CONNECTIONS + HALF_OPEN) as u64 + FD_MARGIN;
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).expect("getrlimit");
    assert!(
        hard >= needed,
        "RLIMIT_NOFILE hard limit is {hard}, below the {needed} descriptors this test and the broker each need for {CONNECTIONS} connections; raise it (ulimit -Hn {needed} as root, LimitNOFILE= in a unit, nofile in limits.conf)"
    );
    let soft = rlimit::increase_nofile_limit(needed).expect("raise RLIMIT_NOFILE");
    assert!(soft >= needed, "RLIMIT_NOFILE soft limit stayed at {soft}");
}

/// One MQTT 3.1.1 client that connects and then says nothing (keep alive 0: no pings needed).
async fn idle_client(address: String, id: usize) -> TcpStream {
    let mut connect = Vec::new();
    Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 0,
        client_id: format!("idle-{id}"),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }))
    .encode(ProtocolVersion::V311, &mut connect)
    .expect("encode CONNECT");
    let mut stream = TcpStream::connect(&address)
        .await
        .unwrap_or_else(|e| panic!("connection {id}: {e}"));
    stream.write_all(&connect).await.expect("send CONNECT");
    // A 3.1.1 CONNACK is 4 bytes: type, length 2, session present, return code.
    let mut connack = [0u8; 4];
    stream
        .read_exact(&mut connack)
        .await
        .unwrap_or_else(|e| panic!("connection {id}: no CONNACK: {e}"));
    assert_eq!(connack, [0x20, 2, 0, 0], "connection {id}: CONNACK");
    stream
}

/// Opens CONNECTIONS idle clients, BATCH at a time, and keeps them.
async fn connect_all(address: &str) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(CONNECTIONS);
    while streams.len() < CONNECTIONS {
        let mut batch = tokio::task::JoinSet::new();
        for id in streams.len()..(streams.len() + BATCH).min(CONNECTIONS) {
            batch.spawn(idle_client(address.to_owned(), id));
        }
        while let Some(stream) = batch.join_next().await {
            streams.push(stream.expect("a client task"));
        }
    }
    streams
}

/// `teemesh mqtt sub` and `pub` over TCP: the broker still serves a newcomer.
fn fresh_client_round_trip(address: &str) {
    let mut sub = Command::new(TEEMESH)
        .args(["mqtt", "sub", "--transport", "tcp", "--broker", address])
        .args(["-V", "311", "-q", "1", "-t", "idle/check", "-C", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mqtt sub");
    let mut stderr = BufReader::new(sub.stderr.take().expect("stderr"));
    let mut line = String::new();
    while !line.starts_with("teemesh: subscribed to") {
        line.clear();
        let n = stderr.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "mqtt sub ended before subscribing");
    }
    let out = Command::new(TEEMESH)
        .args(["mqtt", "pub", "--transport", "tcp", "--broker", address])
        .args(["-q", "1", "-t", "idle/check", "-m", "still here"])
        .output()
        .expect("run mqtt pub");
    assert!(
        out.status.success(),
        "mqtt pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut stdout = String::new();
    sub.stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert!(sub.wait().expect("wait").success(), "mqtt sub failed");
    let message: Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    assert_eq!(message["topic"], "idle/check");
    assert_eq!(message["payload"], "still here");
}

#[test]
fn ten_thousand_idle_connections_and_a_fresh_client_still_works() {
    raise_open_file_limit();
    // Every connection comes from 127.0.0.1: beyond the default limit per address.
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[limits]\nmax_connections_per_address = 0\n",
    )
    .expect("write the broker's configuration");
    let config = config.to_str().expect("a UTF-8 path");
    let broker = BrokerProcess::start(&["--config", config], true);
    let address = broker.address("tcp");
    let pid = broker.child.id();
    let before = rss_kb(pid);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let streams = runtime.block_on(connect_all(&address));
    let took = started.elapsed();
    assert_eq!(streams.len(), CONNECTIONS);
    let after = rss_kb(pid);
    println!(
        "broker RSS: {before} kB before, {after} kB with {CONNECTIONS} idle connections (+{} kB, {} bytes each); connected in {:.1} s",
        after.saturating_sub(before),
        after.saturating_sub(before) * 1024 / CONNECTIONS as u64,
        took.as_secs_f64()
    );

    fresh_client_round_trip(&address);
    // The idle clients are still connected: none was dropped to make room for the newcomer.
    runtime.block_on(async {
        for (id, stream) in streams.iter().enumerate() {
            let mut probe = [0u8; 1];
            match stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("idle connection {id} was closed or spoke: {other:?}"),
            }
        }
    });

    // Half-open: each connection announces a CONNECT of the largest size accepted (the default
    // limits.max_connect_size, 64 KiB) and sends all of it but the last byte.
    let before = rss_kb(pid);
    let half_open = runtime.block_on(half_open_all(&address));
    let after = rss_kb(pid);
    println!(
        "broker RSS: +{} kB with {HALF_OPEN} half-open connections ({} bytes each)",
        after.saturating_sub(before),
        after.saturating_sub(before) * 1024 / HALF_OPEN as u64,
    );
    drop(half_open);
    drop(streams);
}

const HALF_OPEN: usize = 1_000;

/// Opens HALF_OPEN connections, each sending all but the last byte of a 64 KiB CONNECT.
async fn half_open_all(address: &str) -> Vec<TcpStream> {
    let size: usize = 64 * 1024;
    // Fixed header (type, a 3-byte remaining length), then a 3.1.1 variable header.
    let rest = size - 4;
    let mut bytes = vec![
        0x10,
        (rest % 128) as u8 | 0x80,
        ((rest / 128) % 128) as u8 | 0x80,
        (rest / 16384) as u8,
    ];
    bytes.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 0]);
    bytes.resize(size - 1, b'h');
    let mut streams = Vec::with_capacity(HALF_OPEN);
    for id in 0..HALF_OPEN {
        let mut stream = TcpStream::connect(address)
            .await
            .unwrap_or_else(|e| panic!("half-open connection {id}: {e}"));
        stream
            .write_all(&bytes)
            .await
            .expect("send most of a CONNECT");
        streams.push(stream);
    }
    // Let the broker read what was sent.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    streams
}
