#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Module claims as MQTT 5 authentication, end to end on 127.0.0.1: a broker presenting a real
//! simulated node identity (`node::mqtt`), nodes connecting over attested TLS with their own
//! simulated identities and signed module claims as Authentication Data. Genuine claims make the
//! ACL's `app`/`module` rules and `%a` pattern apply; each tampered twin is refused with 0x87
//! and its reason; an unknown method, or the method over plain TCP, with 0x8C.

use std::sync::Arc;
use std::time::Duration;

use atls::{AtlsClient, ModuleClaims, NodeIdentity, PeerVerifier, SignedModuleClaims};
use attest::{AppraisalPolicy, Digest256, Endorsements, Measurement256, UnixTime};
use mqtt::{
    Acknowledgement, ConnAck, Connect, Decoder, Packet, PacketId, Properties, ProtocolVersion,
    Publish, PublishQos, ReasonCode,
};
use node::mqtt::{
    AtlsIdentity, ListenerKind, MODULE_CLAIMS_METHOD, MqttConfig, RunningBroker, start_broker,
};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

const CONFIG: &str = r#"
[[listener]]
kind = "tcp"
address = "127.0.0.1:0"
[[listener]]
kind = "atls"
address = "127.0.0.1:0"
[acl]
default = "deny"
[[acl.rule]]
permission = "allow"
actions = ["publish"]
app = "plant"
module = "filter"
allow_simulated = true
topic = "apps/%a/#"
"#;

fn simulated_policy() -> AppraisalPolicy {
    AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    }
}

fn identity(name: &str) -> Arc<NodeIdentity> {
    let attester = Arc::new(platform::Simulated::for_this_executable().unwrap());
    Arc::new(NodeIdentity::generate(attester, name, UnixTime::now()).unwrap())
}

/// The filter module's claims as `node` signs them, for app `plant`.
fn claims(node: &NodeIdentity) -> ModuleClaims {
    ModuleClaims::for_module(node, "filter", Measurement256([0x5a; 32]), UnixTime::now())
        .with_app("plant")
}

struct Setup {
    broker: RunningBroker,
    node_a: Arc<NodeIdentity>,
    node_b: Arc<NodeIdentity>,
}

impl Setup {
    async fn start() -> Self {
        Self::with_config(CONFIG).await
    }

    async fn with_config(config: &str) -> Self {
        let config: MqttConfig = toml::from_str(config).unwrap();
        let broker = start_broker(
            &config,
            &AtlsIdentity::Node {
                identity: identity("broker-node"),
                peer_policy: Box::new(simulated_policy()),
            },
        )
        .await
        .unwrap();
        Self {
            broker,
            node_a: identity("node-a"),
            node_b: identity("node-b"),
        }
    }

    fn address(&self, kind: ListenerKind) -> std::net::SocketAddr {
        self.broker
            .listeners()
            .iter()
            .find(|l| l.kind == kind)
            .unwrap()
            .address
    }

    /// `node` over attested TLS, CONNECT with `auth` (method, data): the client and CONNACK.
    async fn connect_atls(
        &self,
        node: &Arc<NodeIdentity>,
        auth: Option<(&str, Vec<u8>)>,
    ) -> (Client<tokio_rustls::client::TlsStream<TcpStream>>, ConnAck) {
        self.connect_atls_as(node, "", auth).await
    }

    /// As [`Self::connect_atls`], with client identifier `id`.
    async fn connect_atls_as(
        &self,
        node: &Arc<NodeIdentity>,
        id: &str,
        auth: Option<(&str, Vec<u8>)>,
    ) -> (Client<tokio_rustls::client::TlsStream<TcpStream>>, ConnAck) {
        let verifier = Arc::new(PeerVerifier::new(
            simulated_policy(),
            Endorsements::default(),
        ));
        let client = AtlsClient::new(node.clone(), verifier).unwrap();
        let tcp = TcpStream::connect(self.address(ListenerKind::Atls))
            .await
            .unwrap();
        let session = client.connect(tcp).await.unwrap();
        // The broker presents the node identity it was given.
        let broker = session.peer.attestation().expect("an attested broker");
        assert_eq!(broker.bound.node_name.as_deref(), Some("broker-node"));
        Client::handshake(session.stream, id, auth).await
    }
}

fn signed_json(signed: &SignedModuleClaims) -> Vec<u8> {
    serde_json::to_vec(signed).unwrap()
}

/// A packet-level MQTT 5 client on any stream, on the crate's own codec.
struct Client<S> {
    stream: S,
    buf: Vec<u8>,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn handshake(stream: S, id: &str, auth: Option<(&str, Vec<u8>)>) -> (Self, ConnAck) {
        let mut properties = Properties::default();
        if let Some((method, data)) = auth {
            properties.authentication_method = Some(method.to_owned());
            properties.authentication_data = Some(data.into());
        }
        let mut client = Self {
            stream,
            buf: Vec::new(),
            decoder: Decoder::with_version(ProtocolVersion::V5, 1 << 20),
        };
        client
            .send(Packet::Connect(Box::new(Connect {
                protocol: ProtocolVersion::V5,
                clean_start: true,
                keep_alive: 60,
                client_id: id.to_owned(),
                will: None,
                username: None,
                password: None,
                properties,
            })))
            .await;
        match client.next().await {
            Packet::ConnAck(ack) => (client, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = Vec::new();
        packet.encode(ProtocolVersion::V5, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    async fn next(&mut self) -> Packet {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some((packet, used)) = self.decoder.decode(&self.buf).unwrap() {
                    self.buf.drain(..used);
                    return packet;
                }
                let mut chunk = [0u8; 4096];
                let n = self.stream.read(&mut chunk).await.unwrap();
                assert!(n > 0, "the broker closed the connection");
                self.buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .expect("a packet within the wait")
    }

    /// Publishes at QoS 1 and returns the PUBACK's reason code.
    async fn publish(&mut self, topic: &str) -> ReasonCode {
        let id = PacketId::new(1).unwrap();
        self.send(Packet::Publish(Publish {
            dup: false,
            qos: PublishQos::AtLeastOnce(id),
            retain: false,
            topic: topic.into(),
            payload: b"21.5".to_vec().into(),
            properties: Properties::default(),
        }))
        .await;
        match self.next().await {
            Packet::PubAck(Acknowledgement { reason_code, .. }) => reason_code,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
}

fn assert_refused(ack: &ConnAck, reason: ReasonCode, says: &str) {
    assert_eq!(ack.reason_code, reason, "{ack:?}");
    let text = ack.properties.reason_string.as_deref().unwrap_or_default();
    assert!(
        text.contains(says),
        "reason string {text:?} should say {says:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genuine_module_claims_make_the_app_and_module_rules_apply() {
    let setup = Setup::start().await;
    let genuine = claims(&setup.node_a).sign(&setup.node_a).unwrap();
    let (mut module, ack) = setup
        .connect_atls(
            &setup.node_a,
            Some((MODULE_CLAIMS_METHOD, signed_json(&genuine))),
        )
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}");
    // Accepted (0x10: accepted, nobody subscribed), not refused (0x87).
    assert_eq!(
        module.publish("apps/plant/temperature").await,
        ReasonCode::NoMatchingSubscribers
    );
    // `%a` is the module's app: another app's topics stay closed.
    assert_eq!(
        module.publish("apps/other/temperature").await,
        ReasonCode::NotAuthorized
    );

    // The same attested node without claims is only a node: the module rule does not match.
    let (mut node_only, ack) = setup.connect_atls(&setup.node_a, None).await;
    assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}");
    assert_eq!(
        node_only.publish("apps/plant/temperature").await,
        ReasonCode::NotAuthorized
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_claims_are_refused_with_not_authorized() {
    let setup = Setup::start().await;
    let (a, b) = (&setup.node_a, &setup.node_b);

    // The app changed after signing.
    let mut changed_app = claims(a).sign(a).unwrap();
    changed_app.claims.app = Some("other-plant".into());
    // Node B's genuine claims presented over node A's session.
    let from_b = claims(b).sign(b).unwrap();
    // Signed by A, naming B's certificate.
    let mut naming_b = claims(a);
    naming_b.node_cert_sha256 = Digest256::of(b.certificate());
    let naming_b = naming_b.sign(a).unwrap();

    for (what, signed, says) in [
        ("app changed after signing", &changed_app, "signature"),
        (
            "another node's claims",
            &from_b,
            "not the one of this TLS session",
        ),
        (
            "claims naming another certificate",
            &naming_b,
            "not the one of this TLS session",
        ),
    ] {
        let (_, ack) = setup
            .connect_atls(a, Some((MODULE_CLAIMS_METHOD, signed_json(signed))))
            .await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::NotAuthorized,
            "{what}: {ack:?}"
        );
        assert_refused(&ack, ReasonCode::NotAuthorized, says);
    }
    // Not claims at all.
    let (_, ack) = setup
        .connect_atls(a, Some((MODULE_CLAIMS_METHOD, b"{}".to_vec())))
        .await;
    assert_refused(&ack, ReasonCode::NotAuthorized, "not signed module claims");

    // The genuine claims still pass on the same broker (the refusals left nothing behind).
    let (_, ack) = setup
        .connect_atls(
            a,
            Some((
                MODULE_CLAIMS_METHOD,
                signed_json(&claims(a).sign(a).unwrap()),
            )),
        )
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_methods_and_plain_tcp_are_refused_with_bad_authentication_method() {
    let setup = Setup::start().await;
    let a = &setup.node_a;
    let genuine = signed_json(&claims(a).sign(a).unwrap());

    let (_, ack) = setup
        .connect_atls(a, Some(("SCRAM-SHA-256", b"n,,n=user".to_vec())))
        .await;
    assert_refused(
        &ack,
        ReasonCode::BadAuthenticationMethod,
        MODULE_CLAIMS_METHOD,
    );

    // Over plain TCP nothing proves which node is speaking: the method is not offered there.
    let tcp = TcpStream::connect(setup.address(ListenerKind::Tcp))
        .await
        .unwrap();
    let (_, ack) = Client::handshake(tcp, "", Some((MODULE_CLAIMS_METHOD, genuine))).await;
    assert_refused(
        &ack,
        ReasonCode::BadAuthenticationMethod,
        "not offered on this listener",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_claims_authenticate_where_anonymous_clients_are_refused() {
    let setup = Setup::with_config(&format!("{CONFIG}[auth]\nallow_anonymous = false\n")).await;
    let a = &setup.node_a;
    let genuine = signed_json(&claims(a).sign(a).unwrap());
    let (_, ack) = setup
        .connect_atls(a, Some((MODULE_CLAIMS_METHOD, genuine)))
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}");
    // Twin: the same attested node without claims and without a user name.
    let (_, ack) = setup.connect_atls(a, None).await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "{ack:?}");
}

/// A module's session belongs to it: another node, even one that signs claims naming the same
/// app and module, and the same node without the module's claims, are refused its client
/// identifier, and the module's connection is not taken over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_cannot_take_over_a_modules_session() {
    let setup = Setup::start().await;
    let id = "tm-node-a-plant-filter-0000";
    let genuine = claims(&setup.node_a).sign(&setup.node_a).unwrap();
    let (mut module, ack) = setup
        .connect_atls_as(
            &setup.node_a,
            id,
            Some((MODULE_CLAIMS_METHOD, signed_json(&genuine))),
        )
        .await;
    assert_eq!(ack.reason_code, ReasonCode::Success, "{ack:?}");

    let lookalike = claims(&setup.node_b).sign(&setup.node_b).unwrap();
    let (_b, ack) = setup
        .connect_atls_as(
            &setup.node_b,
            id,
            Some((MODULE_CLAIMS_METHOD, signed_json(&lookalike))),
        )
        .await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "{ack:?}");
    let (_a, ack) = setup.connect_atls_as(&setup.node_a, id, None).await;
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized, "{ack:?}");

    // The module is still connected and still the module.
    assert_eq!(
        module.publish("apps/plant/temperature").await,
        ReasonCode::NoMatchingSubscribers
    );
}
