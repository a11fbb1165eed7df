//! A packet-level MQTT test client over a real TCP socket, built on the crate's own codec, and
//! a broker started on 127.0.0.1 port 0.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use mqtt::broker::{Broker, BrokerConfig, listener};
use mqtt::{
    Acknowledgement, ConnAck, Connect, Decoder, MAX_PACKET_SIZE, Packet, PacketId, Properties,
    ProtocolVersion, Publish, PublishQos, QoS, SubAck, Subscribe, Subscription,
    SubscriptionOptions, Will,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long a test waits for a packet it expects.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) struct TestBroker {
    pub(crate) addr: SocketAddr,
    pub(crate) broker: Broker,
}

pub(crate) async fn start(config: BrokerConfig) -> TestBroker {
    let broker = Broker::new(&config).expect("broker config");
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = tcp.local_addr().expect("addr");
    tokio::spawn(listener::serve_tcp(broker.clone(), tcp, "tcp".into()));
    TestBroker { addr, broker }
}

/// The default configuration, but anonymous clients admitted (as most tests' clients are).
pub(crate) fn open_config() -> BrokerConfig {
    let mut config = BrokerConfig::default();
    config.auth.allow_anonymous = Some(true);
    config
}

pub(crate) async fn start_default() -> TestBroker {
    start(open_config()).await
}

pub(crate) fn id(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero packet id")
}

pub(crate) fn connect_packet(version: ProtocolVersion, client_id: &str, clean: bool) -> Connect {
    Connect {
        protocol: version,
        clean_start: clean,
        keep_alive: 60,
        client_id: client_id.into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

pub(crate) fn will(topic: &str, payload: &str) -> Will {
    Will {
        topic: topic.into(),
        payload: payload.to_owned().into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties::default(),
    }
}

pub(crate) fn publish(topic: &str, payload: &str, qos: PublishQos) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: topic.into(),
        payload: payload.to_owned().into(),
        properties: Properties::default(),
    }
}

pub(crate) struct Client {
    pub(crate) stream: TcpStream,
    pub(crate) version: ProtocolVersion,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    pub(crate) async fn open(addr: SocketAddr, version: ProtocolVersion) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            version,
            decoder: Decoder::with_version(version, MAX_PACKET_SIZE),
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection, sends `connect`, returns the client and the CONNACK.
    pub(crate) async fn connect_with(addr: SocketAddr, connect: Connect) -> (Self, ConnAck) {
        let mut client = Self::open(addr, connect.protocol).await;
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Opens a connection and sends `connect`: the client if the broker accepted it, `None` if
    /// it closed the connection instead.
    pub(crate) async fn try_connect(addr: SocketAddr, connect: Connect) -> Option<Self> {
        let mut client = Self::open(addr, connect.protocol).await;
        client.send(Packet::Connect(Box::new(connect))).await;
        match client.recv().await {
            Some(Packet::ConnAck(ack)) if ack.reason_code == mqtt::ReasonCode::Success => {
                Some(client)
            }
            None => None,
            other => panic!("expected CONNACK or nothing, got {other:?}"),
        }
    }

    /// Connects with a clean start; panics unless accepted.
    pub(crate) async fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
    ) -> Self {
        let (client, ack) =
            Self::connect_with(addr, connect_packet(version, client_id, true)).await;
        assert_eq!(ack.reason_code, mqtt::ReasonCode::Success, "{ack:?}");
        client
    }

    pub(crate) async fn send(&mut self, packet: Packet) {
        let bytes = packet.to_bytes(self.version).expect("encode");
        self.send_bytes(&bytes).await;
    }

    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next packet; `None` when the broker closed the connection. Panics after [`WAIT`].
    pub(crate) async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, self.recv_inner())
            .await
            .expect("timed out waiting for a packet")
    }

    /// The next packet if one comes within `wait`.
    pub(crate) async fn try_recv(&mut self, wait: Duration) -> Option<Option<Packet>> {
        tokio::time::timeout(wait, self.recv_inner()).await.ok()
    }

    async fn recv_inner(&mut self) -> Option<Packet> {
        loop {
            if let Some((packet, len)) = self
                .decoder
                .decode(&self.buf)
                .expect("broker sent a valid packet")
            {
                self.buf.advance(len);
                return Some(packet);
            }
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// Asserts nothing arrives for a short while.
    pub(crate) async fn expect_silence(&mut self) {
        if let Some(packet) = self.try_recv(Duration::from_millis(300)).await {
            panic!("expected nothing, got {packet:?}");
        }
    }

    /// The next PUBLISH.
    pub(crate) async fn recv_publish(&mut self) -> Publish {
        match self.recv().await {
            Some(Packet::Publish(publish)) => publish,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Expects the broker to close the connection, after a DISCONNECT (returned) or not.
    pub(crate) async fn expect_closed(&mut self) -> Option<mqtt::ReasonCode> {
        match self.recv().await {
            None => None,
            Some(Packet::Disconnect(d)) => {
                assert_eq!(
                    self.recv().await,
                    None,
                    "connection stays open after DISCONNECT"
                );
                Some(d.reason_code)
            }
            other => panic!("expected the connection to close, got {other:?}"),
        }
    }

    pub(crate) async fn subscribe_with(
        &mut self,
        packet_id: u16,
        subscriptions: Vec<Subscription>,
        properties: Properties,
    ) -> SubAck {
        self.send(Packet::Subscribe(Subscribe {
            packet_id: id(packet_id),
            subscriptions,
            properties,
        }))
        .await;
        match self.recv().await {
            Some(Packet::SubAck(ack)) => {
                assert_eq!(ack.packet_id, id(packet_id));
                ack
            }
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    pub(crate) async fn subscribe(&mut self, filter: &str, qos: QoS) -> SubAck {
        self.subscribe_with(
            1,
            vec![Subscription {
                filter: filter.into(),
                options: SubscriptionOptions::new(qos),
            }],
            Properties::default(),
        )
        .await
    }

    /// A PINGREQ / PINGRESP round trip: the broker has handled everything this client sent
    /// before (a QoS 0 PUBLISH has no acknowledgement to wait for). Only for a client that
    /// expects no other packet meanwhile.
    pub(crate) async fn settle(&mut self) {
        self.send(Packet::PingReq).await;
        assert_eq!(self.recv().await, Some(Packet::PingResp));
    }

    /// Publishes and completes the QoS flow; returns the PUBACK or PUBREC reason code.
    pub(crate) async fn publish(&mut self, publish: Publish) -> Option<mqtt::ReasonCode> {
        let qos = publish.qos;
        self.send(Packet::Publish(publish)).await;
        match qos {
            PublishQos::AtMostOnce => None,
            PublishQos::AtLeastOnce(pid) => match self.recv().await {
                Some(Packet::PubAck(ack)) if ack.packet_id == pid => Some(ack.reason_code),
                other => panic!("expected PUBACK, got {other:?}"),
            },
            PublishQos::ExactlyOnce(pid) => {
                let reason = match self.recv().await {
                    Some(Packet::PubRec(ack)) if ack.packet_id == pid => ack.reason_code,
                    other => panic!("expected PUBREC, got {other:?}"),
                };
                if reason.is_error() {
                    return Some(reason);
                }
                self.send(Packet::PubRel(Acknowledgement::success(pid)))
                    .await;
                match self.recv().await {
                    Some(Packet::PubComp(ack)) if ack.packet_id == pid => {}
                    other => panic!("expected PUBCOMP, got {other:?}"),
                }
                Some(reason)
            }
        }
    }

    /// Acknowledges a received PUBLISH as its QoS asks (QoS 2: PUBREC, PUBREL, PUBCOMP).
    pub(crate) async fn ack(&mut self, publish: &Publish) {
        match publish.qos {
            PublishQos::AtMostOnce => {}
            PublishQos::AtLeastOnce(pid) => {
                self.send(Packet::PubAck(Acknowledgement::success(pid)))
                    .await;
            }
            PublishQos::ExactlyOnce(pid) => {
                self.send(Packet::PubRec(Acknowledgement::success(pid)))
                    .await;
                match self.recv().await {
                    Some(Packet::PubRel(rel)) if rel.packet_id == pid => {}
                    other => panic!("expected PUBREL, got {other:?}"),
                }
                self.send(Packet::PubComp(Acknowledgement::success(pid)))
                    .await;
            }
        }
    }

    /// Closes the socket without DISCONNECT (a lost connection, so a will is due) and waits
    /// until the broker has closed its side, so the broker has ended the connection before
    /// the test goes on.
    pub(crate) async fn vanish(mut self) {
        let _ = self.stream.shutdown().await;
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest)).await;
    }

    pub(crate) async fn disconnect(mut self) {
        self.send(Packet::Disconnect(mqtt::Disconnect::default()))
            .await;
        let _ = self.stream.shutdown().await;
        // Wait for the broker to close its side: it has then ended the connection (and a
        // session that ends with it), so the next CONNECT does not race the disconnection.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(WAIT, self.stream.read_to_end(&mut rest)).await;
    }
}

pub(crate) fn v5_props_receive_max(max: u16) -> Properties {
    Properties {
        receive_maximum: NonZeroU16::new(max),
        ..Properties::default()
    }
}

pub(crate) fn v5_props_max_packet(max: u32) -> Properties {
    Properties {
        maximum_packet_size: NonZeroU32::new(max),
        ..Properties::default()
    }
}
