//! The broker core without sockets: packets in, bytes out to a recording outlet, at fixed
//! instants.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mqtt::broker::{
    AllowAll, BrokerCore, ClientIdentity, Counters, Limits, MemoryRetained, Outlet, QueueFull,
};
use mqtt::{
    Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion, PublishQos, QoS, ReasonCode, Subscribe,
    Subscription, SubscriptionOptions,
};

use crate::client::{connect_packet, id, publish, will};

#[derive(Default)]
pub(crate) struct Recorder {
    pub(crate) packets: Mutex<Vec<Bytes>>,
    pub(crate) closed: Mutex<Option<Option<ReasonCode>>>,
}

impl Outlet for Recorder {
    fn send(&self, packet: Bytes) -> Result<(), QueueFull> {
        self.packets.lock().expect("lock").push(packet);
        Ok(())
    }
    fn close(&self, reason: Option<ReasonCode>) {
        self.closed.lock().expect("lock").get_or_insert(reason);
    }
}

impl Recorder {
    fn take(&self, version: ProtocolVersion) -> Vec<Packet> {
        let mut decoder = Decoder::with_version(version, MAX_PACKET_SIZE);
        self.packets
            .lock()
            .expect("lock")
            .drain(..)
            .map(|bytes| decoder.decode(&bytes).expect("valid").expect("whole").0)
            .collect()
    }
}

pub(crate) fn core() -> BrokerCore {
    core_with(Limits::default())
}

pub(crate) fn core_with(limits: Limits) -> BrokerCore {
    BrokerCore::new(
        limits,
        Arc::new(AllowAll),
        Box::new(MemoryRetained::default()),
        Arc::new(Counters::default()),
    )
}

#[test]
fn session_expiry_and_will_delay_at_fixed_instants() {
    let v5 = ProtocolVersion::V5;
    let t0 = Instant::now();
    let mut core = core();
    let watcher = Arc::new(Recorder::default());
    core.connect(
        1,
        connect_packet(v5, "watcher", true),
        ClientIdentity::default(),
        watcher.clone(),
        t0,
    )
    .expect("accepted");
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        subscriptions: vec![Subscription {
            filter: "w".into(),
            options: SubscriptionOptions::new(QoS::AtMostOnce),
        }],
        properties: Default::default(),
    });
    core.handle(1, "watcher", subscribe, t0);
    assert!(matches!(
        &watcher.take(v5)[..],
        [Packet::ConnAck(_), Packet::SubAck(_)]
    ));

    let mut connect = connect_packet(v5, "dying", false);
    connect.properties.session_expiry_interval = Some(10);
    let mut delayed = will("w", "bye");
    delayed.qos = QoS::AtMostOnce;
    delayed.properties.will_delay_interval = Some(5);
    connect.will = Some(delayed);
    let dying = Arc::new(Recorder::default());
    core.connect(2, connect, ClientIdentity::default(), dying.clone(), t0)
        .expect("accepted");
    core.disconnected(2, "dying", t0);
    core.tick(t0 + Duration::from_secs(4));
    assert!(watcher.take(v5).is_empty(), "the will waits for its delay");
    core.tick(t0 + Duration::from_secs(5));
    assert!(matches!(&watcher.take(v5)[..], [Packet::Publish(p)] if p.topic == "w"));
    assert_eq!(core.session_count(), 2);
    core.tick(t0 + Duration::from_secs(10));
    assert_eq!(core.session_count(), 1, "the session expired");

    // A stale connection's packets are refused after a takeover.
    let first = Arc::new(Recorder::default());
    core.connect(
        3,
        connect_packet(v5, "twice", true),
        ClientIdentity::default(),
        first.clone(),
        t0,
    )
    .expect("accepted");
    let second = Arc::new(Recorder::default());
    core.connect(
        4,
        connect_packet(v5, "twice", true),
        ClientIdentity::default(),
        second,
        t0,
    )
    .expect("accepted");
    assert_eq!(
        *first.closed.lock().expect("lock"),
        Some(Some(ReasonCode::SessionTakenOver))
    );
    let flow = core.handle(
        3,
        "twice",
        Packet::Publish(publish("w", "x", PublishQos::AtMostOnce)),
        t0,
    );
    assert_eq!(flow, mqtt::broker::Flow::Close(None));
}

#[test]
fn a_subscriber_over_its_quota_holds_publishers_back_until_it_acknowledges() {
    let v5 = ProtocolVersion::V5;
    let t0 = Instant::now();
    // Publishers are held back at half of max_queued_messages waiting, and go on at a quarter.
    let limits = Limits {
        max_queued_messages: 8,
        ..Limits::default()
    };
    assert_eq!(limits.backlog_high(), 4);
    let mut core = core_with(limits);
    // The subscriber takes one QoS 1 message at a time.
    let mut connect = connect_packet(v5, "slow", true);
    connect.properties.receive_maximum = std::num::NonZeroU16::new(1);
    let slow = Arc::new(Recorder::default());
    core.connect(1, connect, ClientIdentity::default(), slow.clone(), t0)
        .expect("accepted");
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        subscriptions: vec![Subscription {
            filter: "t".into(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        }],
        properties: Default::default(),
    });
    core.handle(1, "slow", subscribe, t0);
    let publisher = Arc::new(Recorder::default());
    core.connect(
        2,
        connect_packet(v5, "pub", true),
        ClientIdentity::default(),
        publisher,
        t0,
    )
    .expect("accepted");
    slow.take(v5);

    // The first goes out within the quota, the next three wait: no congestion yet.
    for n in 1..=4 {
        let message = publish("t", &n.to_string(), PublishQos::AtLeastOnce(id(n)));
        core.handle(2, "pub", Packet::Publish(message), t0);
        assert!(core.take_congested().is_empty(), "message {n}");
    }
    let sent = slow.take(v5);
    let [Packet::Publish(delivered)] = &sent[..] else {
        panic!("expected one PUBLISH, got {sent:?}");
    };
    // The fifth makes four wait: the publisher is held back, and nothing has drained.
    let fifth = publish("t", "5", PublishQos::AtLeastOnce(id(5)));
    core.handle(2, "pub", Packet::Publish(fifth), t0);
    let fed = core.take_congested();
    assert_eq!(fed.iter().map(|c| &**c).collect::<Vec<_>>(), ["slow"]);
    assert!(!core.take_drained());
    assert!(slow.take(v5).is_empty());
    // It holds the publisher back while it may still acknowledge; one that acknowledges
    // nothing for the stall timeout holds no one back.
    let stall = Limits::default().stall_timeout();
    assert!(core.any_congested(&fed, t0 + stall / 2));
    assert!(!core.any_congested(&fed, t0 + stall));

    // Each PUBACK lets the next out; the queue has drained once one message is left waiting.
    let mut delivered = delivered.clone();
    for n in 2..=5 {
        let PublishQos::AtLeastOnce(delivered_id) = delivered.qos else {
            panic!("expected QoS 1, got {delivered:?}");
        };
        let ack = Packet::PubAck(mqtt::Acknowledgement {
            packet_id: delivered_id,
            reason_code: ReasonCode::Success,
            properties: Default::default(),
        });
        core.handle(1, "slow", ack, t0);
        // Waiting after this acknowledgement: 5 - n.
        assert_eq!(core.take_drained(), n == 4, "after message {n} went out");
        assert_eq!(core.any_congested(&fed, t0), n < 4);
        let sent = slow.take(v5);
        let [Packet::Publish(next)] = &sent[..] else {
            panic!("expected one PUBLISH, got {sent:?}");
        };
        assert_eq!(next.payload, n.to_string().as_bytes());
        delivered = next.clone();
    }
}
