//! What a client may make the broker hold: a subscriber that keeps reading loses nothing (its
//! publishers wait), one that falls too far behind loses QoS 0 messages, and connections not
//! yet authenticated are bounded in size and number per address.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use mqtt::broker::{BrokerConfig, Limits};
use mqtt::{Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion, PublishQos, QoS};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::client::*;
use crate::pipelining::encode_all;

fn config(limits: Limits) -> BrokerConfig {
    BrokerConfig {
        limits,
        ..open_config()
    }
}

/// A publisher that writes `count` QoS 0 messages on `topic` as fast as the broker reads them,
/// from its own task; returns when all are written.
fn flood(
    addr: SocketAddr,
    topic: &'static str,
    payload: Vec<u8>,
    count: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let version = ProtocolVersion::V311;
        let mut client = Client::connect(addr, version, "flooder").await;
        let packet = Packet::Publish(mqtt::Publish {
            payload: payload.into(),
            ..publish(topic, "", PublishQos::AtMostOnce)
        });
        let one = encode_all(version, &[packet]);
        let per_write = (64 * 1024 / one.len()).max(1);
        let mut left = count;
        while left > 0 {
            let n = per_write.min(left);
            client.send_bytes(&one.repeat(n)).await;
            left -= n;
        }
        client.settle().await;
    })
}

/// Reads PUBLISH packets from `stream` in `chunk`-byte reads with `pause` after each, until
/// `count` came or nothing came for `quiet`; returns how many came.
async fn slow_reader(
    mut stream: TcpStream,
    chunk: usize,
    pause: Duration,
    count: usize,
    quiet: Duration,
) -> usize {
    let mut decoder = Decoder::with_version(ProtocolVersion::V311, MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut got = 0;
    let mut piece = vec![0u8; chunk];
    while got < count {
        match tokio::time::timeout(quiet, stream.read(&mut piece)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&piece[..n]),
            _ => break,
        }
        while let Some((packet, len)) = decoder.decode(&buf).expect("valid packets") {
            buf.advance(len);
            if matches!(packet, Packet::Publish(_)) {
                got += 1;
            }
        }
        tokio::time::sleep(pause).await;
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_that_keeps_reading_loses_no_qos0_message() {
    let broker = start(config(Limits::default())).await;
    let mut sub = Client::connect(broker.addr, ProtocolVersion::V311, "slow-reader").await;
    sub.subscribe("firehose", QoS::AtMostOnce).await;
    const COUNT: usize = 200_000;
    let publisher = flood(broker.addr, "firehose", b"reading".to_vec(), COUNT);
    // About 2 MB/s: far slower than the publisher, for several seconds.
    let got = slow_reader(
        sub.stream,
        4096,
        Duration::from_millis(2),
        COUNT,
        Duration::from_secs(10),
    )
    .await;
    publisher.await.expect("publisher");
    assert_eq!(
        got, COUNT,
        "every QoS 0 message reached the reading subscriber"
    );
    assert_eq!(broker.broker.counters().dropped_queue_full.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_beyond_the_memory_budget_is_dropped_and_counted() {
    // The smallest budget, and a stall timeout the first second cannot reach.
    let broker = start(config(Limits {
        max_outbound_bytes: 64 * 1024,
        stall_timeout_ms: 2_000,
        ..Limits::default()
    }))
    .await;
    let mut behind = Client::connect(broker.addr, ProtocolVersion::V311, "behind").await;
    behind.subscribe("big", QoS::AtMostOnce).await;
    // Each turn of the publisher queues a whole read's worth (up to 256 KiB) to the subscriber
    // that reads nothing, once its sockets are full: beyond its 64 KiB.
    let publisher = flood(broker.addr, "big", vec![b'x'; 8 * 1024], 4_000);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        broker.broker.counters().dropped_queue_full.get() > 0,
        "a subscriber over its budget loses QoS 0 messages before it counts as stalled"
    );
    // Once it has stalled, the publisher goes on.
    tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .expect("the publisher is not held back for good")
        .expect("publisher");
    drop(behind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_limited_before_connect() {
    let broker = start(config(Limits {
        max_connections_per_address: 2,
        ..Limits::default()
    }))
    .await;
    let first = Client::connect(broker.addr, ProtocolVersion::V5, "one").await;
    let _second = Client::connect(broker.addr, ProtocolVersion::V5, "two").await;
    // The third from 127.0.0.1 is closed at once, before it says anything.
    let mut third = TcpStream::connect(broker.addr).await.expect("connect");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(WAIT, third.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert_eq!(broker.broker.counters().connections_refused.get(), 1);
    // One leaves; a newcomer is admitted.
    first.disconnect().await;
    let mut again = None;
    for _ in 0..50 {
        let connect = connect_packet(ProtocolVersion::V5, "three", true);
        if let Some(client) = Client::try_connect(broker.addr, connect).await {
            again = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a slot freed by a disconnection is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_above_the_size_limit_is_refused_from_its_header() {
    let broker = start(config(Limits {
        max_connect_size: 1024,
        ..Limits::default()
    }))
    .await;
    // A CONNECT announcing about 1 MB, of which only the start is sent: closed at once, not
    // after the CONNECT timeout.
    let mut start = vec![0x10];
    let mut length = 1_000_000u32;
    while length > 0 {
        let byte = (length % 128) as u8;
        length /= 128;
        start.push(if length > 0 { byte | 0x80 } else { byte });
    }
    // Protocol name and level, flags, keep alive, then the start of a long payload.
    start.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60]);
    start.resize(4096, b'z');
    let mut stream = TcpStream::connect(broker.addr).await.expect("connect");
    stream.write_all(&start).await.expect("write");
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut byte)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert_eq!(broker.broker.counters().connections_refused.get(), 1);
    // One under the limit is accepted.
    let mut connect = connect_packet(ProtocolVersion::V311, "small", true);
    connect.will = Some(will("w", &"y".repeat(900)));
    let (_client, ack) = Client::connect_with(broker.addr, connect).await;
    assert_eq!(ack.reason_code, mqtt::ReasonCode::Success);
}

#[test]
fn limits_out_of_range_are_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = runtime.enter();
    for (limits, says) in [
        (
            Limits {
                max_connect_size: 10,
                ..Limits::default()
            },
            "max_connect_size",
        ),
        (
            Limits {
                max_outbound_bytes: 1000,
                ..Limits::default()
            },
            "max_outbound_bytes",
        ),
        (
            Limits {
                stall_timeout_ms: 0,
                ..Limits::default()
            },
            "stall_timeout_ms",
        ),
    ] {
        let error = mqtt::broker::Broker::new(&config(limits)).expect_err(says);
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_drains_too_slowly_holds_no_one_back_past_the_stall_timeout() {
    // It reads a little now and then, so it is never idle for the stall timeout; but it cannot
    // bring its queue down in that time, so it no longer counts as keeping up.
    let broker = start(config(Limits {
        stall_timeout_ms: 1_000,
        ..Limits::default()
    }))
    .await;
    let drip = Client::connect(broker.addr, ProtocolVersion::V311, "drip").await;
    let mut drip_client = drip;
    drip_client.subscribe("shared", QoS::AtMostOnce).await;
    let mut fast = Client::connect(broker.addr, ProtocolVersion::V311, "fast").await;
    fast.subscribe("shared", QoS::AtMostOnce).await;
    let mut stream = drip_client.stream;
    let dripping = tokio::spawn(async move {
        // 64 KiB every 400 ms: progress well within the stall timeout, at 160 KB/s.
        let mut byte = vec![0u8; 64 * 1024];
        loop {
            tokio::time::sleep(Duration::from_millis(400)).await;
            match stream.read(&mut byte).await {
                Ok(n) if n > 0 => {}
                _ => return,
            }
        }
    });
    const COUNT: usize = 2_000;
    let publisher = flood(broker.addr, "shared", vec![b'd'; 16 * 1024], COUNT);
    let got = tokio::time::timeout(
        Duration::from_secs(60),
        slow_reader(
            fast.stream,
            64 * 1024,
            Duration::ZERO,
            COUNT,
            Duration::from_secs(30),
        ),
    )
    .await
    .expect("the fast subscriber is not starved");
    assert_eq!(got, COUNT, "the fast subscriber gets every message");
    publisher.await.expect("publisher");
    assert!(broker.broker.counters().dropped_queue_full.get() > 0);
    dripping.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_publisher_goes_on_when_the_subscriber_it_waits_for_leaves() {
    // The publisher keeps receiving messages of its own while it waits (so its connection is
    // woken often): the subscriber it waits for leaving must still end the pause at once.
    let broker = start(config(Limits {
        stall_timeout_ms: 600_000,
        ..Limits::default()
    }))
    .await;
    let mut behind = Client::connect(broker.addr, ProtocolVersion::V311, "behind").await;
    behind.subscribe("flood", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, ProtocolVersion::V311, "busy").await;
    publisher.subscribe("tick", QoS::AtMostOnce).await;
    let ticker = tokio::spawn({
        let addr = broker.addr;
        async move {
            let mut ticker = Client::connect(addr, ProtocolVersion::V311, "ticker").await;
            for _ in 0..2_000 {
                ticker
                    .publish(publish("tick", "t", PublishQos::AtMostOnce))
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    // Far more than the sockets to the subscriber hold: the publisher ends up held back.
    let payload = vec![b'f'; 32 * 1024];
    let one = encode_all(
        ProtocolVersion::V311,
        &[Packet::Publish(mqtt::Publish {
            payload: payload.into(),
            ..publish("flood", "", PublishQos::AtMostOnce)
        })],
    );
    let mut stream = publisher.stream;
    let (mut reader, mut writer) = stream.split();
    let writing = async {
        // Far more than the kernel's buffers to the subscriber (tens of MB on loopback).
        for _ in 0..6_400 {
            writer.write_all(&one).await.expect("write");
        }
        writer
            .write_all(&encode_all(ProtocolVersion::V311, &[Packet::PingReq]))
            .await
            .expect("write PINGREQ");
    };
    let leaving = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(behind);
    };
    let answered = async {
        let mut decoder = Decoder::with_version(ProtocolVersion::V311, MAX_PACKET_SIZE);
        let mut buf = BytesMut::new();
        loop {
            while let Some((packet, len)) = decoder.decode(&buf).expect("valid packets") {
                buf.advance(len);
                if packet == Packet::PingResp {
                    return;
                }
            }
            let n = reader.read_buf(&mut buf).await.expect("read");
            assert!(n > 0, "the broker closed the publisher's connection");
        }
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        tokio::join!(writing, leaving, answered)
    })
    .await
    .expect("the publisher's PINGREQ is answered once the subscriber left");
    ticker.abort();
}
