//! The MQTT load generator of `teemesh bench mqtt`: the same clients drive any broker, ours or
//! Debian's mosquitto, over plain TCP, TLS or attested TLS. Written on the `mqtt` codec, MQTT
//! 3.1.1 (which both brokers speak), so no client library's own overhead differs between runs.
//!
//! One run: `subscribers` clients subscribe to one topic, then `publishers` clients each publish
//! `messages` messages of `size` bytes to it at QoS 0 or 1 (QoS 1 with at most `WINDOW`
//! unacknowledged per publisher), as fast as they can or at a fixed `rate`. Every message
//! carries its send time, so each subscriber measures latency; throughput is messages
//! delivered to subscribers per second, from the first publish to the last delivery.
//!
//! Latency means something only at a fixed rate the broker sustains: at full speed it measures
//! how much the socket buffers on the way hold (Little's law), not the broker.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use mqtt::{
    Packet, PacketId, Properties, Publish, PublishQos, QoS, Subscribe, Subscription,
    SubscriptionOptions,
};

use crate::mqtt_conn::Client;
use crate::mqtt_conn::Transport;

/// Unacknowledged QoS 1 publications per publisher.
const WINDOW: usize = 64;
/// How long a run may wait for its last deliveries.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The topic every run publishes to.
const TOPIC: &str = "bench/load";

/// What one run should do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    pub(crate) messages: usize,
    pub(crate) size: usize,
    pub(crate) qos: QoS,
    /// Messages published per second by all publishers together; `None`: as fast as they can.
    pub(crate) rate: Option<f64>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Messages delivered to subscribers per second.
    pub(crate) per_sec: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Deliveries expected and made.
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    /// The broker's CPU time per delivery, where the caller could measure it.
    pub(crate) cpu_per_delivery: Option<Duration>,
}

impl Outcome {
    /// The median of several runs of one load, each figure on its own; `delivered` is the
    /// worst run's, so a loss in any run shows.
    pub(crate) fn median(mut runs: Vec<Outcome>) -> Outcome {
        fn middle<T: Copy + PartialOrd>(runs: &[Outcome], f: impl Fn(&Outcome) -> T) -> T {
            let mut values: Vec<T> = runs.iter().map(f).collect();
            values.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            values[values.len() / 2]
        }
        if runs.len() <= 1 {
            return runs.pop().unwrap_or(Outcome {
                per_sec: 0.0,
                p50: Duration::ZERO,
                p99: Duration::ZERO,
                expected: 0,
                delivered: 0,
                cpu_per_delivery: None,
            });
        }
        Outcome {
            per_sec: middle(&runs, |o| o.per_sec),
            p50: middle(&runs, |o| o.p50),
            p99: middle(&runs, |o| o.p99),
            expected: middle(&runs, |o| o.expected),
            delivered: runs.iter().map(|o| o.delivered).min().unwrap_or(0),
            cpu_per_delivery: middle(&runs, |o| o.cpu_per_delivery),
        }
    }
}

const FIRST_ID: PacketId = match PacketId::new(1) {
    Some(id) => id,
    None => panic!("1 is a packet identifier"),
};

fn packet_id(n: usize) -> PacketId {
    // 1..=65535, cycling; a window of WINDOW never reuses one still in flight.
    PacketId::new((n % 65_535 + 1) as u16).unwrap_or(FIRST_ID)
}

/// Runs `load` against the broker at `address` over `transport`.
pub(crate) async fn run(transport: &Transport, address: &str, load: Load) -> Result<Outcome> {
    let epoch = Instant::now();
    let expected = (load.publishers * load.messages * load.subscribers) as u64;
    let per_subscriber = (load.publishers * load.messages) as u64;
    let mut subscribers = Vec::new();
    for s in 0..load.subscribers {
        let mut client =
            crate::mqtt_conn::open(transport, address, &format!("bench-sub-{s}")).await?;
        client.queue(&Packet::Subscribe(Subscribe {
            packet_id: packet_id(0),
            subscriptions: vec![Subscription {
                filter: TOPIC.into(),
                options: SubscriptionOptions::new(load.qos),
            }],
            properties: Properties::default(),
        }))?;
        client.flush().await?;
        match client.next().await? {
            Packet::SubAck(_) => {}
            other => bail!("expected SUBACK, got {other:?}"),
        }
        subscribers.push(tokio::spawn(subscribe(client, per_subscriber, epoch)));
    }
    let mut publishers = Vec::new();
    for p in 0..load.publishers {
        let client = crate::mqtt_conn::open(transport, address, &format!("bench-pub-{p}")).await?;
        publishers.push(client);
    }
    let started = epoch.elapsed();
    let mut sending = Vec::new();
    for client in publishers {
        sending.push(tokio::spawn(publish(client, load, epoch)));
    }
    for task in sending {
        task.await.context("a publisher stopped")??;
    }
    let mut latencies = Vec::with_capacity(expected as usize);
    let mut delivered = 0u64;
    let mut last = started;
    for task in subscribers {
        let (times, at) = task.await.context("a subscriber stopped")??;
        delivered += times.len() as u64;
        latencies.extend(times);
        last = last.max(at);
    }
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    let took = last.saturating_sub(started).as_secs_f64().max(1e-9);
    Ok(Outcome {
        per_sec: delivered as f64 / took,
        p50: pick(0.50),
        p99: pick(0.99),
        expected,
        delivered,
        cpu_per_delivery: None,
    })
}

/// Publishes `load.messages` messages, each starting with its send time (nanoseconds since
/// `epoch`); at QoS 1 keeps at most `WINDOW` unacknowledged.
async fn publish(mut client: Client, load: Load, epoch: Instant) -> Result<()> {
    let mut payload = vec![0u8; load.size.max(8)];
    let mut unacked = 0usize;
    let interval = load
        .rate
        .filter(|rate| *rate > 0.0)
        .map(|rate| Duration::from_secs_f64(load.publishers as f64 / rate));
    let start = tokio::time::Instant::now();
    for n in 0..load.messages {
        if let Some(interval) = interval {
            // Paced: what is queued goes out before waiting for the next message's turn.
            let due = start + interval.mul_f64(n as f64);
            if tokio::time::Instant::now() < due {
                client.flush().await?;
                tokio::time::sleep_until(due).await;
            }
        }
        let now = epoch.elapsed().as_nanos() as u64;
        payload[..8].copy_from_slice(&now.to_be_bytes());
        let qos = match load.qos {
            QoS::AtMostOnce => PublishQos::AtMostOnce,
            _ => PublishQos::AtLeastOnce(packet_id(n)),
        };
        client.queue(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: TOPIC.into(),
            payload: Bytes::copy_from_slice(&payload),
            properties: Properties::default(),
        }))?;
        if load.qos == QoS::AtMostOnce {
            if client.queued_bytes() >= 32 << 10 || n + 1 == load.messages {
                client.flush().await?;
            }
            continue;
        }
        unacked += 1;
        if unacked >= WINDOW || n + 1 == load.messages {
            client.flush().await?;
        }
        while unacked >= WINDOW || (n + 1 == load.messages && unacked > 0) {
            match client.next().await? {
                Packet::PubAck(_) => unacked -= 1,
                other => bail!("a publisher expected PUBACK, got {other:?}"),
            }
        }
    }
    // A clean goodbye, so the broker sees no lost connection.
    client.queue(&Packet::Disconnect(mqtt::Disconnect {
        reason_code: mqtt::ReasonCode::Success,
        properties: Properties::default(),
    }))?;
    client.flush().await?;
    Ok(())
}

/// Receives up to `expected` messages (or until none came for a while); returns their
/// latencies and when the last one came (since `epoch`).
async fn subscribe(
    mut client: Client,
    expected: u64,
    epoch: Instant,
) -> Result<(Vec<Duration>, Duration)> {
    let mut latencies = Vec::with_capacity(expected as usize);
    let mut last = Duration::ZERO;
    while (latencies.len() as u64) < expected {
        let packet = match tokio::time::timeout(DRAIN_TIMEOUT, client.next()).await {
            Ok(packet) => packet?,
            Err(_) => break,
        };
        let Packet::Publish(publish) = packet else {
            continue;
        };
        let now = epoch.elapsed();
        if let Some(sent) = publish.payload.get(..8) {
            let sent = u64::from_be_bytes(sent.try_into().unwrap_or_default());
            latencies.push(now.saturating_sub(Duration::from_nanos(sent)));
        }
        last = now;
        if let PublishQos::AtLeastOnce(id) = publish.qos {
            client.queue(&Packet::PubAck(mqtt::Acknowledgement {
                packet_id: id,
                reason_code: mqtt::ReasonCode::Success,
                properties: Properties::default(),
            }))?;
        }
        // Acknowledgements go out in batches, and always before waiting for more.
        if client.queued_bytes() >= 4 << 10 || client.buffered_bytes() == 0 {
            client.flush().await?;
        }
    }
    client.flush().await?;
    Ok((latencies, last))
}
