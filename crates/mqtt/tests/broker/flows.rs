//! Both versions: QoS 0/1/2 in both directions, retained messages, wildcards and `$` topics,
//! wills, keep alive, takeover, persistent sessions, malformed packets.

use std::time::Duration;

use mqtt::broker::{BrokerConfig, Limits};
use mqtt::{Packet, ProtocolVersion, PublishQos, QoS, ReasonCode};

use crate::client::*;

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pub_sub_every_qos_both_versions() {
    let broker = start_default().await;
    for version in BOTH {
        for sub_qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let mut sub = Client::connect(broker.addr, version, "sub").await;
            let ack = sub.subscribe("a/b", sub_qos).await;
            assert_eq!(ack.reason_codes, vec![ReasonCode::granted(sub_qos)]);
            let mut publisher = Client::connect(broker.addr, version, "pub").await;
            for (n, pub_qos) in [
                PublishQos::AtMostOnce,
                PublishQos::AtLeastOnce(id(1)),
                PublishQos::ExactlyOnce(id(2)),
            ]
            .into_iter()
            .enumerate()
            {
                let payload = format!("{version} {n}");
                let reason = publisher.publish(publish("a/b", &payload, pub_qos)).await;
                if let Some(reason) = reason {
                    assert_eq!(reason, ReasonCode::Success);
                }
                let got = sub.recv_publish().await;
                assert_eq!(got.topic, "a/b");
                assert_eq!(&got.payload[..], payload.as_bytes());
                assert_eq!(got.qos.qos(), pub_qos.qos().min(sub_qos), "{version}");
                assert!(!got.retain && !got.dup);
                sub.ack(&got).await;
            }
            sub.expect_silence().await;
            sub.disconnect().await;
            publisher.disconnect().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_resend_is_delivered_once() {
    let broker = start_default().await;
    let mut sub = Client::connect(broker.addr, ProtocolVersion::V5, "sub").await;
    sub.subscribe("x", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(broker.addr, ProtocolVersion::V5, "pub").await;
    let mut first = publish("x", "once", PublishQos::ExactlyOnce(id(9)));
    publisher.send(Packet::Publish(first.clone())).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
    first.dup = true;
    publisher.send(Packet::Publish(first)).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(_))));
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"once");
    sub.ack(&got).await;
    sub.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_both_versions() {
    let broker = start_default().await;
    for version in BOTH {
        let mut publisher = Client::connect(broker.addr, version, "pub").await;
        let mut retained = publish("r/one", "kept", PublishQos::AtLeastOnce(id(1)));
        retained.retain = true;
        publisher.publish(retained).await;
        let mut sub = Client::connect(broker.addr, version, "sub").await;
        sub.subscribe("r/+", QoS::AtLeastOnce).await;
        let got = sub.recv_publish().await;
        assert!(
            got.retain,
            "a retained message sent for a subscription has retain set"
        );
        assert_eq!(&got.payload[..], b"kept");
        sub.ack(&got).await;
        // A live publication of a retained message reaches existing subscribers without
        // the retain flag (no retain-as-published).
        let mut update = publish("r/one", "new", PublishQos::AtMostOnce);
        update.retain = true;
        publisher.publish(update).await;
        let live = sub.recv_publish().await;
        assert!(!live.retain);
        // An empty retained payload deletes.
        let mut delete = publish("r/one", "", PublishQos::AtMostOnce);
        delete.retain = true;
        publisher.publish(delete).await;
        let _ = sub.recv_publish().await;
        let mut late = Client::connect(broker.addr, version, "late").await;
        late.subscribe("r/#", QoS::AtMostOnce).await;
        late.expect_silence().await;
        for c in [publisher, sub, late] {
            c.disconnect().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_and_dollar_topics() {
    let broker = start_default().await;
    let mut sub = Client::connect(broker.addr, ProtocolVersion::V311, "sub").await;
    sub.subscribe("sport/+/player1", QoS::AtMostOnce).await;
    sub.subscribe("#", QoS::AtMostOnce).await;
    let mut dollar = Client::connect(broker.addr, ProtocolVersion::V311, "dollar").await;
    dollar.subscribe("$SYS/#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, ProtocolVersion::V311, "pub").await;
    publisher
        .publish(publish("sport/tennis/player1", "1", PublishQos::AtMostOnce))
        .await;
    // Two matching filters, one delivery.
    assert_eq!(sub.recv_publish().await.topic, "sport/tennis/player1");
    sub.expect_silence().await;
    publisher
        .publish(publish("$SYS/uptime", "2", PublishQos::AtMostOnce))
        .await;
    assert_eq!(dollar.recv_publish().await.topic, "$SYS/uptime");
    sub.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_on_lost_connection_not_on_disconnect() {
    let broker = start_default().await;
    for version in BOTH {
        let mut watcher = Client::connect(broker.addr, version, "watcher").await;
        watcher.subscribe("will/#", QoS::AtLeastOnce).await;

        let mut with_will = connect_packet(version, "dies", true);
        with_will.will = Some(will("will/dies", "gone"));
        let (client, _) = Client::connect_with(broker.addr, with_will.clone()).await;
        drop(client); // the socket closes without DISCONNECT
        let got = watcher.recv_publish().await;
        assert_eq!(
            (got.topic.as_str(), &got.payload[..]),
            ("will/dies", &b"gone"[..])
        );
        watcher.ack(&got).await;

        let (client, _) = Client::connect_with(broker.addr, with_will).await;
        client.disconnect().await;
        watcher.expect_silence().await;
        watcher.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_timeout_closes_and_publishes_the_will() {
    let broker = start_default().await;
    for version in BOTH {
        let mut watcher = Client::connect(broker.addr, version, "watcher").await;
        watcher.subscribe("ka", QoS::AtMostOnce).await;
        let mut connect = connect_packet(version, "idle", true);
        connect.keep_alive = 1;
        connect.will = Some(will("ka", "timed out"));
        let (mut idle, _) = Client::connect_with(broker.addr, connect).await;
        let started = std::time::Instant::now();
        let reason = idle.expect_closed().await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1400),
            "closed after {waited:?}"
        );
        match version {
            ProtocolVersion::V5 => assert_eq!(reason, Some(ReasonCode::KeepAliveTimeout)),
            ProtocolVersion::V311 => assert_eq!(reason, None),
        }
        assert_eq!(&watcher.recv_publish().await.payload[..], b"timed out");

        // A client that pings stays.
        let mut connect = connect_packet(version, "pinger", true);
        connect.keep_alive = 1;
        let (mut pinger, _) = Client::connect_with(broker.addr, connect).await;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(700)).await;
            pinger.send(Packet::PingReq).await;
            assert_eq!(pinger.recv().await, Some(Packet::PingResp));
        }
        watcher.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_takeover() {
    let broker = start_default().await;
    for version in BOTH {
        let mut first = Client::connect(broker.addr, version, "same").await;
        let mut second = Client::connect(broker.addr, version, "same").await;
        let reason = first.expect_closed().await;
        match version {
            ProtocolVersion::V5 => assert_eq!(reason, Some(ReasonCode::SessionTakenOver)),
            ProtocolVersion::V311 => assert_eq!(reason, None),
        }
        second.send(Packet::PingReq).await;
        assert_eq!(second.recv().await, Some(Packet::PingResp));
        second.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_resends_with_dup_and_queues_while_offline() {
    let broker = start_default().await;
    for version in BOTH {
        let mut connect = connect_packet(version, "durable", false);
        if version == ProtocolVersion::V5 {
            connect.properties.session_expiry_interval = Some(300);
        }
        // Start from nothing (a clean 3.1.1 session ends with its connection), then subscribe
        // in a persistent session.
        let mut fresh = connect.clone();
        fresh.clean_start = true;
        let (sub, _) = Client::connect_with(broker.addr, fresh).await;
        sub.disconnect().await;
        let (mut sub, ack) = Client::connect_with(broker.addr, connect.clone()).await;
        assert_eq!(ack.session_present, version == ProtocolVersion::V5);
        sub.subscribe("d/#", QoS::AtLeastOnce).await;
        let mut publisher = Client::connect(broker.addr, version, "pub").await;
        publisher
            .publish(publish("d/1", "unacked", PublishQos::AtLeastOnce(id(1))))
            .await;
        let first = sub.recv_publish().await;
        assert!(!first.dup);
        sub.vanish().await; // gone without PUBACK; the broker has noticed when this returns
        publisher
            .publish(publish("d/2", "offline", PublishQos::AtLeastOnce(id(2))))
            .await;
        publisher
            .publish(publish("d/3", "qos0 offline", PublishQos::AtMostOnce))
            .await;
        // The broker handled the QoS 0 message while the subscriber was offline.
        publisher.settle().await;

        let (mut sub, ack) = Client::connect_with(broker.addr, connect.clone()).await;
        assert!(ack.session_present, "{version}");
        let resent = sub.recv_publish().await;
        assert!(resent.dup);
        assert_eq!(resent.qos, first.qos, "same packet identifier");
        assert_eq!(&resent.payload[..], b"unacked");
        sub.ack(&resent).await;
        let queued = sub.recv_publish().await;
        assert_eq!(&queued.payload[..], b"offline");
        sub.ack(&queued).await;
        sub.expect_silence().await;
        sub.disconnect().await;

        // Clean start discards the session.
        let mut clean = connect;
        clean.clean_start = true;
        let (sub, ack) = Client::connect_with(broker.addr, clean).await;
        assert!(!ack.session_present);
        sub.disconnect().await;
        publisher.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packet_disconnects_only_that_client() {
    let broker = start_default().await;
    let mut sub = Client::connect(broker.addr, ProtocolVersion::V5, "healthy").await;
    sub.subscribe("ok", QoS::AtMostOnce).await;
    for version in BOTH {
        let mut bad = Client::connect(broker.addr, version, "bad").await;
        // PUBLISH with QoS 3.
        bad.send_bytes(&[0x36, 0x03, 0x00, 0x01, b'x']).await;
        let reason = bad.expect_closed().await;
        match version {
            ProtocolVersion::V5 => assert_eq!(reason, Some(ReasonCode::MalformedPacket)),
            ProtocolVersion::V311 => assert_eq!(reason, None),
        }
        let mut bad = Client::connect(broker.addr, version, "bad2").await;
        // SUBSCRIBE with a misplaced '#'.
        match version {
            ProtocolVersion::V311 => {
                bad.send_bytes(&[0x82, 0x09, 0, 1, 0, 4, b'a', b'/', b'#', b'b', 0])
                    .await;
            }
            ProtocolVersion::V5 => {
                bad.send_bytes(&[0x82, 0x0A, 0, 1, 0, 0, 4, b'a', b'/', b'#', b'b', 0])
                    .await;
            }
        }
        let _ = bad.expect_closed().await;
    }
    let mut publisher = Client::connect(broker.addr, ProtocolVersion::V311, "pub").await;
    publisher
        .publish(publish("ok", "still here", PublishQos::AtMostOnce))
        .await;
    assert_eq!(&sub.recv_publish().await.payload[..], b"still here");
    assert!(broker.broker.counters().protocol_errors.get() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_connect_first_and_bad_protocol_version() {
    let broker = start_default().await;
    let mut client = Client::open(broker.addr, ProtocolVersion::V311).await;
    client.send(Packet::PingReq).await;
    assert_eq!(client.expect_closed().await, None);
    let mut client = Client::open(broker.addr, ProtocolVersion::V311).await;
    // CONNECT with protocol level 3 (MQTT 3.1).
    client
        .send_bytes(&[
            0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x03, 0x02, 0x00, 0x3C, 0x00, 0x02,
            b'i', b'd',
        ])
        .await;
    match client.recv().await {
        Some(Packet::ConnAck(ack)) => {
            assert_eq!(ack.reason_code, ReasonCode::UnsupportedProtocolVersion)
        }
        other => panic!("expected CONNACK 1, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_packet_too_large_and_receive_maximum() {
    let config = BrokerConfig {
        limits: Limits {
            max_packet_size: 256,
            receive_maximum: 2,
            ..Limits::default()
        },
        ..open_config()
    };
    let broker = start(config).await;
    let (mut client, ack) = Client::connect_with(
        broker.addr,
        connect_packet(ProtocolVersion::V5, "big", true),
    )
    .await;
    assert_eq!(
        ack.properties.maximum_packet_size.map(|m| m.get()),
        Some(256)
    );
    assert_eq!(ack.properties.receive_maximum.map(|m| m.get()), Some(2));
    client
        .send(Packet::Publish(publish(
            "t",
            &"x".repeat(300),
            PublishQos::AtMostOnce,
        )))
        .await;
    assert_eq!(
        client.expect_closed().await,
        Some(ReasonCode::PacketTooLarge)
    );

    let mut client = Client::connect(broker.addr, ProtocolVersion::V5, "eager").await;
    for n in 1..=3 {
        client
            .send(Packet::Publish(publish(
                "t",
                "q2",
                PublishQos::ExactlyOnce(id(n)),
            )))
            .await;
    }
    assert!(matches!(client.recv().await, Some(Packet::PubRec(_))));
    assert!(matches!(client.recv().await, Some(Packet::PubRec(_))));
    assert_eq!(
        client.expect_closed().await,
        Some(ReasonCode::ReceiveMaximumExceeded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_consumer_loses_qos0_and_holds_no_one_back_past_the_stall_timeout() {
    let config = BrokerConfig {
        limits: Limits {
            stall_timeout_ms: 300,
            ..Limits::default()
        },
        ..open_config()
    };
    let broker = start(config).await;
    let mut slow = Client::connect(broker.addr, ProtocolVersion::V311, "slow").await;
    slow.subscribe("flood", QoS::AtMostOnce).await;
    let mut fast = Client::connect(broker.addr, ProtocolVersion::V311, "fast").await;
    fast.subscribe("ping", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, ProtocolVersion::V311, "pub").await;
    let payload = "x".repeat(60_000);
    for _ in 0..400 {
        publisher
            .publish(publish("flood", &payload, PublishQos::AtMostOnce))
            .await;
    }
    publisher
        .publish(publish("ping", "pong", PublishQos::AtMostOnce))
        .await;
    assert_eq!(&fast.recv_publish().await.payload[..], b"pong");
    assert!(
        broker.broker.counters().dropped_queue_full.get() > 0,
        "a consumer that reads nothing loses QoS 0 messages once stalled"
    );
    drop(slow);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_mqtt5_clients_and_closes_every_connection() {
    let broker = start_default().await;
    let mut v5 = Client::connect(broker.addr, ProtocolVersion::V5, "five").await;
    let mut v311 = Client::connect(broker.addr, ProtocolVersion::V311, "three").await;
    broker.broker.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        v5.expect_closed().await,
        Some(ReasonCode::ServerShuttingDown)
    );
    assert_eq!(v311.expect_closed().await, None);
    assert_eq!(broker.broker.live_connections(), 0);
}
