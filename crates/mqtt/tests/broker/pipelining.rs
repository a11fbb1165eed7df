//! Clients that pipeline: packets sent without waiting for CONNACK or for acknowledgements, in
//! one write or split anywhere. Every request gets its reply, in order, whatever the read
//! boundaries; a client beyond the Receive Maximum reads the DISCONNECT that says so.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use mqtt::{
    Acknowledgement, Decoder, MAX_PACKET_SIZE, Packet, ProtocolVersion, PublishQos, QoS,
    ReasonCode, Subscribe, Subscription, SubscriptionOptions, Unsubscribe,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::client::*;

const BOTH: [ProtocolVersion; 2] = [ProtocolVersion::V311, ProtocolVersion::V5];
/// Requests of one kind pipelined in one write: well beyond any queue of the broker's.
const MANY: u16 = 3000;

/// `packets` encoded back to back for `version`.
pub(crate) fn encode_all(version: ProtocolVersion, packets: &[Packet]) -> Vec<u8> {
    let mut out = Vec::new();
    for packet in packets {
        packet.encode(version, &mut out).expect("encode");
    }
    out
}

pub(crate) fn subscribe(packet_id: u16, filter: &str, qos: QoS) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id: id(packet_id),
        subscriptions: vec![Subscription {
            filter: filter.into(),
            options: SubscriptionOptions::new(qos),
        }],
        properties: Default::default(),
    })
}

fn unsubscribe(packet_id: u16, filter: &str) -> Packet {
    Packet::Unsubscribe(Unsubscribe {
        packet_id: id(packet_id),
        filters: vec![filter.into()],
        properties: Default::default(),
    })
}

fn connect(version: ProtocolVersion, client_id: &str) -> Packet {
    Packet::Connect(Box::new(connect_packet(version, client_id, true)))
}

/// Writes `bytes` in pieces of the sizes `splits` gives (the rest in one), while reading, and
/// returns every packet the broker sent until it closed the connection or `count` packets
/// came (then the client closes).
async fn exchange(
    addr: SocketAddr,
    version: ProtocolVersion,
    bytes: Vec<u8>,
    splits: Vec<usize>,
    count: usize,
) -> Vec<Packet> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let mut rest = &bytes[..];
        for split in splits {
            let piece = split.min(rest.len());
            if writer.write_all(&rest[..piece]).await.is_err() {
                return writer;
            }
            rest = &rest[piece..];
        }
        let _ = writer.write_all(rest).await;
        writer
    });
    let mut decoder = Decoder::with_version(version, MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut packets = Vec::new();
    let reading = async {
        while packets.len() < count {
            if let Some((packet, len)) = decoder.decode(&buf).expect("broker sent a valid packet") {
                buf.advance(len);
                packets.push(packet);
                continue;
            }
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    if tokio::time::timeout(WAIT * 4, reading).await.is_err() {
        panic!(
            "{version}: {} of {count} packets within {:?}",
            packets.len(),
            WAIT * 4
        );
    }
    drop(writing.await.expect("writer task"));
    packets
}

/// Counts the packets of each reply kind, in order of kind.
fn kinds(packets: &[Packet]) -> Vec<(String, usize)> {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for packet in packets {
        let kind = packet.packet_type().to_string();
        match kinds.last_mut() {
            Some((last, n)) if *last == kind => *n += 1,
            _ => kinds.push((kind, 1)),
        }
    }
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_comes_in_the_same_write_as_connect_is_handled() {
    let broker = start_default().await;
    for version in BOTH {
        let mut watcher = Client::connect(broker.addr, version, "watcher").await;
        watcher.subscribe("piped/#", QoS::AtLeastOnce).await;
        let cases: [(&str, Packet, &str); 3] = [
            ("SUBSCRIBE", subscribe(1, "x", QoS::AtMostOnce), "SUBACK"),
            ("PINGREQ", Packet::PingReq, "PINGRESP"),
            (
                "PUBLISH",
                Packet::Publish(publish(
                    "piped/one",
                    "with connect",
                    PublishQos::AtLeastOnce(id(1)),
                )),
                "PUBACK",
            ),
        ];
        for (what, follower, reply) in cases {
            let bytes = encode_all(version, &[connect(version, "eager"), follower]);
            let got = exchange(broker.addr, version, bytes, vec![], 2).await;
            let got: Vec<String> = got.iter().map(|p| p.packet_type().to_string()).collect();
            assert_eq!(got, ["CONNACK", reply], "{version}: CONNECT+{what}");
        }
        let delivered = watcher.recv_publish().await;
        assert_eq!(&delivered.payload[..], b"with connect");
        watcher.ack(&delivered).await;

        // Twenty clients, each sending CONNECT and a QoS 1 PUBLISH in one write.
        for n in 0..20u16 {
            let client_id = format!("burst-{n}");
            let message = publish(
                "piped/burst",
                &n.to_string(),
                PublishQos::AtLeastOnce(id(n + 1)),
            );
            let bytes = encode_all(
                version,
                &[connect(version, &client_id), Packet::Publish(message)],
            );
            let got = exchange(broker.addr, version, bytes, vec![], 2).await;
            assert!(
                matches!(&got[..], [Packet::ConnAck(_), Packet::PubAck(ack)] if ack.packet_id == id(n + 1)),
                "{version}: {client_id}: {got:?}"
            );
        }
        for n in 0..20u16 {
            let delivered = watcher.recv_publish().await;
            assert_eq!(
                &delivered.payload[..],
                n.to_string().as_bytes(),
                "{version}"
            );
            watcher.ack(&delivered).await;
        }
        watcher.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_pipelined_requests_of_every_kind_are_each_answered() {
    let broker = start_default().await;
    for version in BOTH {
        let many: Vec<u16> = (1..=MANY).collect();
        let requests: [Requests; 5] = [
            (
                "PINGREQ",
                many.iter().map(|_| Packet::PingReq).collect(),
                vec![("PINGRESP", MANY.into())],
            ),
            (
                "PUBLISH QoS 1",
                many.iter()
                    .map(|&n| Packet::Publish(publish("p/1", "x", PublishQos::AtLeastOnce(id(n)))))
                    .collect(),
                vec![("PUBACK", MANY.into())],
            ),
            (
                "PUBLISH QoS 2 and PUBREL",
                many.iter()
                    .flat_map(|&n| {
                        [
                            Packet::Publish(publish("p/2", "x", PublishQos::ExactlyOnce(id(n)))),
                            Packet::PubRel(Acknowledgement::success(id(n))),
                        ]
                    })
                    .collect(),
                many.iter()
                    .flat_map(|_| [("PUBREC", 1), ("PUBCOMP", 1)])
                    .collect(),
            ),
            (
                "SUBSCRIBE",
                many.iter()
                    .map(|&n| subscribe(n, &format!("s/{n}"), QoS::AtLeastOnce))
                    .collect(),
                vec![("SUBACK", MANY.into())],
            ),
            (
                "UNSUBSCRIBE",
                many.iter()
                    .map(|&n| unsubscribe(n, &format!("s/{n}")))
                    .collect(),
                vec![("UNSUBACK", MANY.into())],
            ),
        ];
        for (what, packets, expected) in requests {
            let mut all = vec![connect(version, "pipeliner")];
            all.extend(packets);
            let bytes = encode_all(version, &all);
            let count = 1 + expected.iter().map(|(_, n)| n).sum::<usize>();
            let got = exchange(broker.addr, version, bytes, vec![], count).await;
            let mut want = vec![("CONNACK".to_owned(), 1)];
            want.extend(expected.iter().map(|(k, n)| ((*k).to_owned(), *n)));
            // Runs of one kind are merged, as `kinds` counts them.
            let want = kinds_of(&want);
            assert_eq!(kinds(&got), want, "{version}: {MANY} × {what} in one write");
            // Each answers its own request, in order.
            let ids: Vec<u16> = got
                .iter()
                .filter_map(|p| match p {
                    Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubComp(a) => {
                        Some(a.packet_id.get())
                    }
                    Packet::SubAck(a) => Some(a.packet_id.get()),
                    Packet::UnsubAck(a) => Some(a.packet_id.get()),
                    _ => None,
                })
                .collect();
            let expected_ids: Vec<u16> = match what {
                "PUBLISH QoS 2 and PUBREL" => many.iter().flat_map(|&n| [n, n]).collect(),
                "PINGREQ" => Vec::new(),
                _ => many.clone(),
            };
            assert_eq!(ids, expected_ids, "{version}: {what}: packet identifiers");
        }
    }
    assert_eq!(broker.broker.counters().protocol_errors.get(), 0);
}

/// What a test pipelines: its name, the packets, and the replies expected as runs of a kind.
type Requests = (&'static str, Vec<Packet>, Vec<(&'static str, usize)>);

/// Merges adjacent runs of one kind.
fn kinds_of(runs: &[(String, usize)]) -> Vec<(String, usize)> {
    let mut merged: Vec<(String, usize)> = Vec::new();
    for (kind, n) in runs {
        match merged.last_mut() {
            Some((last, m)) if last == kind => *m += n,
            _ => merged.push((kind.clone(), *n)),
        }
    }
    merged
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_beyond_the_receive_maximum_reads_the_disconnect() {
    let broker = start_default().await;
    let maximum = mqtt::broker::Limits::default().receive_maximum;
    let version = ProtocolVersion::V5;
    let mut all = vec![connect(version, "greedy")];
    // QoS 2 messages never released: the one after the Receive Maximum is one too many.
    all.extend(
        (1..=MANY).map(|n| Packet::Publish(publish("r", "x", PublishQos::ExactlyOnce(id(n))))),
    );
    let bytes = encode_all(version, &all);
    let got = exchange(broker.addr, version, bytes, vec![], usize::MAX).await;
    let want = vec![
        ("CONNACK".to_owned(), 1),
        ("PUBREC".to_owned(), usize::from(maximum)),
        ("DISCONNECT".to_owned(), 1),
    ];
    assert_eq!(kinds(&got), want);
    assert!(
        matches!(got.last(), Some(Packet::Disconnect(d)) if d.reason_code == ReasonCode::ReceiveMaximumExceeded),
        "{:?}",
        got.last()
    );
}

/// One session's requests, whose replies do not depend on timing: the client subscribes to
/// what it publishes, at every QoS, and ends with DISCONNECT.
pub(crate) fn session_script(version: ProtocolVersion, client_id: &str) -> Vec<Packet> {
    vec![
        connect(version, client_id),
        subscribe(1, "split/#", QoS::ExactlyOnce),
        Packet::Publish(publish("split/0", "zero", PublishQos::AtMostOnce)),
        Packet::Publish(publish("split/1", "one", PublishQos::AtLeastOnce(id(2)))),
        Packet::Publish(publish("split/2", "two", PublishQos::ExactlyOnce(id(3)))),
        Packet::PubRel(Acknowledgement::success(id(3))),
        Packet::PingReq,
        subscribe(4, "other", QoS::AtMostOnce),
        unsubscribe(5, "split/#"),
        Packet::Publish(publish("split/3", "three", PublishQos::AtLeastOnce(id(6)))),
        Packet::PingReq,
        Packet::Disconnect(mqtt::Disconnect::new(ReasonCode::Success)),
    ]
}

/// A small deterministic generator (xorshift), so a failing split can be replayed by seed.
pub(crate) fn splits(seed: u64, len: usize) -> Vec<usize> {
    let mut state = seed.max(1);
    let mut pieces = Vec::new();
    let mut total = 0;
    while total < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let piece = usize::try_from(state % 9).unwrap_or(0) + 1;
        pieces.push(piece);
        total += piece;
    }
    pieces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_do_not_depend_on_how_the_input_is_split() {
    let broker = start_default().await;
    for version in BOTH {
        let bytes = encode_all(version, &session_script(version, "splitter"));
        let whole = exchange(broker.addr, version, bytes.clone(), vec![], usize::MAX).await;
        assert!(
            whole.len() >= 10,
            "{version}: the session's replies: {whole:?}"
        );
        let one_by_one = vec![1; bytes.len()];
        let mut ways = vec![("one byte per write".to_owned(), one_by_one)];
        for seed in 1..=8u64 {
            ways.push((
                format!("random splits, seed {seed}"),
                splits(seed, bytes.len()),
            ));
        }
        for (how, split) in ways {
            let got = exchange(broker.addr, version, bytes.clone(), split, usize::MAX).await;
            assert_eq!(got, whole, "{version}: {how}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_is_not_closed_for_keep_alive_while_the_broker_holds_it_back() {
    // A subscriber that reads slowly holds its publisher back; the publisher's own packets
    // then wait unread in the socket, which must not count as a silent client.
    let config = mqtt::broker::BrokerConfig {
        limits: mqtt::broker::Limits {
            stall_timeout_ms: 60_000,
            ..mqtt::broker::Limits::default()
        },
        ..open_config()
    };
    let broker = start(config).await;
    let mut slow = Client::connect(broker.addr, ProtocolVersion::V5, "slow").await;
    slow.subscribe("held", QoS::AtMostOnce).await;
    let mut connect = connect_packet(ProtocolVersion::V5, "held-back", true);
    connect.keep_alive = 1;
    let payload = "x".repeat(32 * 1024);
    // Far more than the sockets between broker and subscriber hold.
    const FLOOD: usize = 1280;
    let mut packets = vec![Packet::Connect(Box::new(connect))];
    packets.extend(
        (0..FLOOD).map(|_| Packet::Publish(publish("held", &payload, PublishQos::AtMostOnce))),
    );
    packets.push(Packet::PingReq);
    let bytes = encode_all(ProtocolVersion::V5, &packets);
    let publisher = tokio::spawn(exchange(broker.addr, ProtocolVersion::V5, bytes, vec![], 2));
    // Longer than 1.5 × the keep alive with the publisher held back (the subscriber reads
    // nothing, but has not stalled), then the subscriber catches up.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for _ in 0..FLOOD {
        let got = slow.recv_publish().await;
        assert_eq!(got.payload.len(), payload.len());
    }
    let replies = publisher.await.expect("publisher");
    let kinds: Vec<String> = replies
        .iter()
        .map(|p| p.packet_type().to_string())
        .collect();
    assert_eq!(kinds, ["CONNACK", "PINGRESP"]);
    assert_eq!(broker.broker.counters().dropped_queue_full.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_subscribed_to_what_it_pipelines_is_never_held_back_for_itself() {
    // Far more QoS 1 messages than its quota and the backlog at which publishers wait: were it
    // held back for its own session, its acknowledgements would wait unread behind the pause.
    let broker = start_default().await;
    let version = ProtocolVersion::V311;
    let mut client = Client::connect(broker.addr, version, "narcissus").await;
    client.subscribe("self/t", QoS::AtLeastOnce).await;
    let flood: Vec<Packet> = (1..=MANY)
        .map(|n| Packet::Publish(publish("self/t", "me", PublishQos::AtLeastOnce(id(n)))))
        .collect();
    client.send_bytes(&encode_all(version, &flood)).await;
    let (mut acks, mut delivered) = (0, 0);
    let all = async {
        while acks < MANY || delivered < MANY {
            match client.recv().await {
                Some(Packet::PubAck(_)) => acks += 1,
                Some(Packet::Publish(message)) => {
                    delivered += 1;
                    client.ack(&message).await;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    // Well below the stall timeout (5 s) per quota's worth that a self-pause would cost.
    tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("every PUBACK and delivery");
}
