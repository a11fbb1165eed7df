//! Persistence of `teemesh mqtt broker` (`[persistence] path`): retained messages, persistent
//! sessions and their unacknowledged QoS 1/2 messages survive the broker being killed with
//! SIGKILL once it acknowledged them, and restarted on the same file. Real processes, a
//! packet-level client on the crate's own codec.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mqtt::{
    Acknowledgement, ConnAck, Connect, Disconnect, MAX_PACKET_SIZE, Packet, PacketId, Properties,
    ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions,
};

mod support;

use support::broker::BrokerProcess;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A broker process on `config` (its TCP listener first); SIGKILLed on drop.
fn start(config: &Path) -> BrokerProcess {
    BrokerProcess::start(&["--config", config.to_str().expect("utf-8 path")], true)
}

/// A config with one TCP listener on port 0 and the store next to it (a relative path).
fn config(dir: &Path) -> PathBuf {
    let path = dir.join("broker.toml");
    std::fs::write(
        &path,
        "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n\n[persistence]\npath = \"broker.redb\"\n",
    )
    .expect("write config");
    path
}

fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero")
}

struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    /// Connects (MQTT 5) with `session_expiry` seconds; returns the client and the CONNACK.
    fn connect(
        broker: &BrokerProcess,
        client_id: &str,
        clean: bool,
        session_expiry: u32,
    ) -> (Self, ConnAck) {
        let stream = TcpStream::connect(broker.address("tcp")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut client = Self {
            stream,
            buf: Vec::new(),
        };
        client.send(Packet::Connect(Box::new(Connect {
            protocol: V5,
            clean_start: clean,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: Properties {
                session_expiry_interval: Some(session_expiry),
                ..Properties::default()
            },
        })));
        match client.recv() {
            Some(Packet::ConnAck(ack)) => {
                assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}");
                (client, ack)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn send(&mut self, packet: Packet) {
        let bytes = packet.to_bytes(V5).expect("encode");
        self.stream.write_all(&bytes).expect("write");
    }

    /// The next packet; `None` when the connection closed or nothing came within 5 s.
    fn recv(&mut self) -> Option<Packet> {
        self.recv_within(Duration::from_secs(5))
    }

    fn recv_within(&mut self, wait: Duration) -> Option<Packet> {
        self.stream.set_read_timeout(Some(wait)).expect("timeout");
        loop {
            if let Some((packet, len)) =
                mqtt::decode(&self.buf, V5, MAX_PACKET_SIZE).expect("a valid packet")
            {
                self.buf.drain(..len);
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: id(1),
            subscriptions: vec![Subscription {
                filter: filter.into(),
                options: SubscriptionOptions::new(qos),
            }],
            properties: Properties::default(),
        }));
        match self.recv() {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.reason_codes, vec![ReasonCode::granted(qos)]);
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// Publishes and waits for the PUBACK / PUBREC (the broker's promise).
    fn publish(&mut self, publish: Publish) {
        let qos = publish.qos;
        self.send(Packet::Publish(publish));
        match (qos, self.recv()) {
            (PublishQos::AtLeastOnce(sent), Some(Packet::PubAck(ack)))
            | (PublishQos::ExactlyOnce(sent), Some(Packet::PubRec(ack))) => {
                assert_eq!(ack.packet_id, sent);
                assert!(!ack.reason_code.is_error(), "{ack:?}");
            }
            (_, other) => panic!("expected the acknowledgement of {qos:?}, got {other:?}"),
        }
    }

    fn recv_publish(&mut self) -> Publish {
        match self.recv() {
            Some(Packet::Publish(publish)) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    fn expect_silence(&mut self) {
        if let Some(packet) = self.recv_within(Duration::from_millis(500)) {
            panic!("expected nothing, got {packet:?}");
        }
    }

    fn disconnect(mut self) {
        self.send(Packet::Disconnect(Disconnect::new(ReasonCode::Success)));
        // The broker closes after DISCONNECT: wait for it, so the session is offline.
        assert!(self.recv().is_none());
    }
}

fn message(topic: &str, payload: &str, qos: PublishQos, retain: bool) -> Publish {
    Publish {
        dup: false,
        qos,
        retain,
        topic: topic.into(),
        payload: payload.to_owned().into(),
        properties: Properties::default(),
    }
}

#[test]
fn retained_message_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let broker = start(&config);
    let (mut publisher, _) = Client::connect(&broker, "pub", true, 0);
    publisher.publish(message(
        "status/a",
        "up",
        PublishQos::AtLeastOnce(id(1)),
        true,
    ));
    publisher.publish(message(
        "status/b",
        "gone",
        PublishQos::AtLeastOnce(id(2)),
        true,
    ));
    // An empty retained payload deletes; that too must be kept.
    publisher.publish(message(
        "status/b",
        "",
        PublishQos::AtLeastOnce(id(3)),
        true,
    ));
    broker.kill_9();
    assert!(
        dir.path().join("broker.redb").exists(),
        "the store is next to the config"
    );

    let broker = start(&config);
    let (mut subscriber, _) = Client::connect(&broker, "sub", true, 0);
    subscriber.subscribe("status/#", QoS::AtLeastOnce);
    let retained = subscriber.recv_publish();
    assert_eq!(retained.topic, "status/a");
    assert_eq!(&retained.payload[..], b"up");
    assert!(retained.retain);
    if let PublishQos::AtLeastOnce(packet_id) = retained.qos {
        subscriber.send(Packet::PubAck(Acknowledgement::success(packet_id)));
    }
    subscriber.expect_silence();
}

#[test]
fn offline_qos1_message_and_subscription_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let broker = start(&config);
    let (mut subscriber, ack) = Client::connect(&broker, "sub", true, 3600);
    assert!(!ack.session_present);
    subscriber.subscribe("jobs/+", QoS::AtLeastOnce);
    subscriber.disconnect();
    let (mut publisher, _) = Client::connect(&broker, "pub", true, 0);
    // PUBACK: from here the broker has promised the message to the offline session.
    publisher.publish(message(
        "jobs/1",
        "first",
        PublishQos::AtLeastOnce(id(1)),
        false,
    ));
    broker.kill_9();

    let broker = start(&config);
    let (mut subscriber, ack) = Client::connect(&broker, "sub", false, 3600);
    assert!(ack.session_present, "the persistent session survived");
    let delivered = subscriber.recv_publish();
    assert_eq!(delivered.topic, "jobs/1");
    assert_eq!(&delivered.payload[..], b"first");
    let PublishQos::AtLeastOnce(packet_id) = delivered.qos else {
        panic!("expected QoS 1, got {:?}", delivered.qos);
    };
    subscriber.send(Packet::PubAck(Acknowledgement::success(packet_id)));
    // The subscription itself survived: a new message is routed to it.
    let (mut publisher, _) = Client::connect(&broker, "pub", true, 0);
    publisher.publish(message(
        "jobs/2",
        "second",
        PublishQos::AtLeastOnce(id(1)),
        false,
    ));
    let delivered = subscriber.recv_publish();
    assert_eq!(&delivered.payload[..], b"second");
    if let PublishQos::AtLeastOnce(packet_id) = delivered.qos {
        subscriber.send(Packet::PubAck(Acknowledgement::success(packet_id)));
    }
    subscriber.expect_silence();
    // Acknowledged messages are not delivered again after another kill.
    drop(subscriber);
    broker.kill_9();
    let broker = start(&config);
    let (mut subscriber, ack) = Client::connect(&broker, "sub", false, 3600);
    assert!(ack.session_present);
    subscriber.expect_silence();
}

#[test]
fn inflight_qos2_message_is_delivered_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let broker = start(&config);
    let (mut subscriber, _) = Client::connect(&broker, "sub", true, 3600);
    subscriber.subscribe("orders/#", QoS::ExactlyOnce);
    let (mut publisher, _) = Client::connect(&broker, "pub", true, 3600);
    // PUBREC received; the publisher is killed with the broker before it sends PUBREL.
    publisher.publish(message(
        "orders/1",
        "one",
        PublishQos::ExactlyOnce(id(7)),
        false,
    ));
    // The subscriber receives it and answers PUBREC; the broker's PUBREL is its promise.
    let delivered = subscriber.recv_publish();
    assert_eq!(&delivered.payload[..], b"one");
    let PublishQos::ExactlyOnce(out_id) = delivered.qos else {
        panic!("expected QoS 2, got {:?}", delivered.qos);
    };
    subscriber.send(Packet::PubRec(Acknowledgement::success(out_id)));
    match subscriber.recv() {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, out_id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    drop(subscriber);
    drop(publisher);
    broker.kill_9();

    let broker = start(&config);
    // The subscriber's side: the broker resends PUBREL, never the PUBLISH.
    let (mut subscriber, ack) = Client::connect(&broker, "sub", false, 3600);
    assert!(ack.session_present);
    match subscriber.recv() {
        Some(Packet::PubRel(rel)) => assert_eq!(rel.packet_id, out_id),
        other => panic!("expected the PUBREL resent, got {other:?}"),
    }
    subscriber.send(Packet::PubComp(Acknowledgement::success(out_id)));
    // The publisher's side: it did not see PUBREC before dying, so it resends the PUBLISH
    // with DUP; the broker remembers identifier 7 and only acknowledges it again.
    let (mut publisher, ack) = Client::connect(&broker, "pub", false, 3600);
    assert!(ack.session_present);
    let mut resent = message("orders/1", "one", PublishQos::ExactlyOnce(id(7)), false);
    resent.dup = true;
    publisher.publish(resent);
    publisher.send(Packet::PubRel(Acknowledgement::success(id(7))));
    match publisher.recv() {
        Some(Packet::PubComp(comp)) => {
            assert_eq!(comp.packet_id, id(7));
            assert_eq!(comp.reason_code, ReasonCode::Success, "7 was known");
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
    subscriber.expect_silence();
}

#[test]
fn expired_session_and_message_are_gone_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let broker = start(&config);
    let (mut short, _) = Client::connect(&broker, "short-lived", true, 1);
    short.subscribe("t", QoS::AtLeastOnce);
    short.disconnect();
    let (mut long, _) = Client::connect(&broker, "long-lived", true, 3600);
    long.subscribe("t", QoS::AtLeastOnce);
    long.disconnect();
    let (mut publisher, _) = Client::connect(&broker, "pub", true, 0);
    let mut expiring = message("t", "stale", PublishQos::AtLeastOnce(id(1)), false);
    expiring.properties.message_expiry_interval = Some(1);
    publisher.publish(expiring);
    broker.kill_9();
    // Both the 1 s session expiry and the 1 s message expiry pass while the broker is down.
    std::thread::sleep(Duration::from_millis(2100));

    let broker = start(&config);
    let (_, ack) = Client::connect(&broker, "short-lived", false, 0);
    assert!(!ack.session_present, "the expired session was dropped");
    let (mut long, ack) = Client::connect(&broker, "long-lived", false, 3600);
    assert!(ack.session_present);
    long.expect_silence();
}
