#![allow(clippy::unwrap_used)]
//! Event channels across three real `teemesh node` processes on 127.0.0.1: a source module on
//! node A emits events, a relay module on node B passes them on, a sink module on node C receives
//! them. The test plays the deployer (loads the modules, verifies their claims, generates a key
//! per connection and provisions it wrapped to both modules' attested channel keys) and puts a
//! malicious forwarder between A and B: an attested relay that both nodes accept as a peer, which
//! flips a byte, drops, replays and reorders events. Every attack is detected and reported by B,
//! nothing altered or repeated reaches a module, and the sink gets exactly the authentic events,
//! in order, once.

#[path = "../../runtime/tests/guest/mod.rs"]
mod guest;
mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atls::{
    AtlsClient, AtlsServer, NodeIdentity, PeerVerifier, SignedModuleClaims, verify_module_claims,
};
use attest::{AppraisalPolicy, Digest256, Endorsements, Measurement256, Measurement384, UnixTime};
use events::ConnectionId;
use events::wrap::{ModulePublicKey, WrapContext, wrap_key};
use node::protocol::{
    Bytes, CallKind, ConnectSpec, ConnectionEnd, ConnectionInfo, ErrorKind, EventProtection, Op,
    PROTOCOL_VERSION, Reply, Request, Response,
};
use node::{AdminClient, AdminKey, NodeError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use support::NodeProcess;

const APP: &str = "chain";
const EVENTS: u64 = 40;

fn sim_verifier() -> Arc<PeerVerifier> {
    let policy = AppraisalPolicy::from_toml("allow_simulated = true").unwrap();
    Arc::new(PeerVerifier::new(policy, Endorsements::default()))
}

/// A module the deployer loaded and whose claims it verified.
struct Deployed {
    name: String,
    measurement: [u8; 32],
    channel_key: ModulePublicKey,
}

async fn load(client: &mut AdminClient, name: &str, wasm: &[u8]) -> Deployed {
    client
        .request(Op::Load {
            name: name.into(),
            wasm: Bytes(wasm.to_vec()),
        })
        .await
        .unwrap();
    let Reply::Claims {
        signed_claims_json,
        node_certificate,
    } = client
        .request(Op::Claims {
            module: name.into(),
        })
        .await
        .unwrap()
    else {
        panic!("no claims")
    };
    let signed: SignedModuleClaims = serde_json::from_str(&signed_claims_json).unwrap();
    let verified = verify_module_claims(&node_certificate.0, &signed, &sim_verifier()).unwrap();
    let measurement = Digest256::of(wasm).0;
    verified
        .require_measurement(&Measurement256(measurement))
        .unwrap();
    let key = signed
        .claims
        .channel_key
        .expect("a node names the module's channel key");
    Deployed {
        name: name.into(),
        measurement,
        channel_key: ModulePublicKey::from_bytes(key.0),
    }
}

fn spec(
    connection: u32,
    module: &Deployed,
    port: &str,
    end: ConnectionEnd,
    key: &events::ConnectionKey,
) -> ConnectSpec {
    let wrapped = wrap_key(
        key,
        &module.channel_key,
        &WrapContext {
            app: APP,
            connection: ConnectionId::new(connection).unwrap(),
            module: &module.name,
            port,
            measurement: &module.measurement,
        },
    )
    .unwrap();
    ConnectSpec {
        app: APP.into(),
        connection,
        module: module.name.clone(),
        port: port.into(),
        end,
        protection: EventProtection::Encrypted,
        wrapped_encapsulated: Bytes(wrapped.encapsulated),
        wrapped_ciphertext: Bytes(wrapped.ciphertext),
    }
}

/// Wires `from.out` (on the node `from_client` administers) to `to.in` on the node at
/// `to_address` (which may be a forwarder in between), with a fresh key.
async fn wire(
    connection: u32,
    from_client: &mut AdminClient,
    from: &Deployed,
    to_client: &mut AdminClient,
    to: &Deployed,
    to_address: &str,
) {
    let key = events::ConnectionKey::generate().unwrap();
    to_client
        .request(Op::Connect(spec(
            connection,
            to,
            "in",
            ConnectionEnd::Receiver,
            &key,
        )))
        .await
        .unwrap();
    from_client
        .request(Op::Connect(spec(
            connection,
            from,
            "out",
            ConnectionEnd::Sender {
                peer_address: to_address.into(),
                peer_module: to.name.clone(),
            },
            &key,
        )))
        .await
        .unwrap();
}

/// What the malicious forwarder does to the n-th event (from 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    Flip,
    Drop,
    Replay,
    SwapWithNext,
}

/// Rejections the receiving node answered, by the event's index.
type Answers = Arc<Mutex<BTreeMap<u64, Vec<(ErrorKind, String)>>>>;

/// An attested forwarder between node A and node B that attacks events by plan. Both nodes
/// accept it as a peer: it holds a (simulated) attested identity their policy admits. It is the
/// untrusted forwarding layer of the model with every capability short of the connection key.
async fn start_forwarder(
    b_address: String,
    plan: BTreeMap<u64, Attack>,
    answers: Answers,
) -> String {
    let identity = Arc::new(
        NodeIdentity::generate(
            Arc::new(platform::Simulated::with_measurement(Measurement384(
                [7; 48],
            ))),
            "forwarder",
            UnixTime::now(),
        )
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let server = AtlsServer::new(identity.clone(), sim_verifier()).unwrap();
    let client = AtlsClient::new(identity, sim_verifier()).unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut from_a = server.accept(tcp).await.unwrap().stream;
        let tcp = tokio::net::TcpStream::connect(&b_address).await.unwrap();
        let mut to_b = client.connect(tcp).await.unwrap().stream;
        let mut next_id = 100u64;
        let mut b = |op: Op| {
            next_id += 1;
            Request { id: next_id, op }
        };
        // Greets B, and checks that an attested peer may do nothing there but deliver events.
        assert!(
            exchange(
                &mut to_b,
                b(Op::Hello {
                    version: PROTOCOL_VERSION,
                    session_evidence: false
                })
            )
            .await
            .outcome
            .is_ok()
        );
        let refused = exchange(&mut to_b, b(Op::List)).await.outcome.unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Unauthorised, "{refused}");
        let mut index = 0u64;
        let mut held: Option<(u64, Request)> = None;
        while let Some(frame) = read(&mut from_a).await {
            let request = Request::decode(&frame).unwrap();
            let reply_ok = |id| Response {
                id,
                outcome: Ok(Reply::Delivered {
                    counter: 0,
                    missing: 0,
                }),
            };
            let Op::Event { module, envelope } = request.op else {
                // The hello.
                let hello = Response {
                    id: request.id,
                    outcome: Ok(Reply::Hello {
                        version: PROTOCOL_VERSION,
                        node: "forwarder".into(),
                        platform: "sim".into(),
                        simulated: true,
                        session_evidence: None,
                    }),
                };
                write(&mut from_a, &hello.encode()).await;
                continue;
            };
            let this = index;
            index += 1;
            let mut forward = Vec::new();
            match plan.get(&this) {
                None => forward.push((this, envelope.0)),
                Some(Attack::Flip) => {
                    let mut bytes = envelope.0;
                    bytes[20] ^= 0x40;
                    forward.push((this, bytes));
                }
                Some(Attack::Drop) => {}
                Some(Attack::Replay) => {
                    forward.push((this, envelope.0.clone()));
                    forward.push((this, envelope.0));
                }
                Some(Attack::SwapWithNext) => {
                    held = Some((
                        this,
                        Request {
                            id: request.id,
                            op: Op::Event {
                                module: module.clone(),
                                envelope,
                            },
                        },
                    ));
                    write(&mut from_a, &reply_ok(request.id).encode()).await;
                    continue;
                }
            }
            if let Some((
                held_index,
                Request {
                    op: Op::Event { envelope, .. },
                    ..
                },
            )) = held.take()
            {
                forward.push((held_index, envelope.0));
            }
            for (event, bytes) in forward {
                let response = exchange(
                    &mut to_b,
                    b(Op::Event {
                        module: module.clone(),
                        envelope: Bytes(bytes),
                    }),
                )
                .await;
                if let Err(e) = response.outcome {
                    answers
                        .lock()
                        .unwrap()
                        .entry(event)
                        .or_default()
                        .push((e.kind, e.message));
                }
            }
            // A always hears "delivered": it cannot tell what the forwarder did.
            write(&mut from_a, &reply_ok(request.id).encode()).await;
        }
    });
    address
}

async fn read<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await.ok()?;
    let mut frame = vec![0u8; u32::from_be_bytes(header) as usize];
    stream.read_exact(&mut frame).await.ok()?;
    Some(frame)
}

async fn write<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, payload: &[u8]) {
    stream
        .write_all(&node::protocol::encode_frame(payload).unwrap())
        .await
        .unwrap();
    stream.flush().await.unwrap();
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    stream: &mut S,
    request: Request,
) -> Response {
    write(stream, &request.encode()).await;
    Response::decode(&read(stream).await.unwrap()).unwrap()
}

fn connection(client_list: &Reply, module: &str) -> ConnectionInfo {
    let Reply::Modules(modules) = client_list else {
        panic!("not a list")
    };
    let module = modules.iter().find(|m| m.name == module).unwrap();
    let receivers: Vec<_> = module
        .connections
        .iter()
        .filter(|c| c.end == "receiver")
        .collect();
    assert_eq!(receivers.len(), 1, "{:?}", module.connections);
    receivers[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_three_nodes_and_every_forwarding_attack_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem")).unwrap();
    let a = NodeProcess::start(dir.path(), "node-a", &key.hash_string());
    let b = NodeProcess::start(dir.path(), "node-b", &key.hash_string());
    let c = NodeProcess::start(dir.path(), "node-c", &key.hash_string());
    let mut admin_a = AdminClient::connect(&a.admin, &key, sim_verifier())
        .await
        .unwrap();
    let mut admin_b = AdminClient::connect(&b.admin, &key, sim_verifier())
        .await
        .unwrap();
    let mut admin_c = AdminClient::connect(&c.admin, &key, sim_verifier())
        .await
        .unwrap();

    let wasm = guest::component();
    let source = load(&mut admin_a, "source", &wasm).await;
    let relay = load(&mut admin_b, "relay", &wasm).await;
    let sink = load(&mut admin_c, "sink", &wasm).await;
    // Each module instance has its own channel key, even with the same code.
    assert_ne!(source.channel_key, relay.channel_key);

    // A key wrapped to one module does not open at another, even on the same port.
    let stray = events::ConnectionKey::generate().unwrap();
    let mut misdirected = spec(9, &relay, "in", ConnectionEnd::Receiver, &stray);
    misdirected.module = "sink".into();
    let refused = admin_c.request(Op::Connect(misdirected)).await.unwrap_err();
    let NodeError::Remote(refused) = refused else {
        panic!("{refused}")
    };
    assert_eq!(refused.kind, ErrorKind::BadRequest);
    assert!(
        refused.message.contains("does not open"),
        "{}",
        refused.message
    );

    let plan = BTreeMap::from([
        (5, Attack::Flip),
        (11, Attack::Drop),
        (17, Attack::Replay),
        (23, Attack::SwapWithNext),
    ]);
    let answers = Answers::default();
    let forwarder = start_forwarder(b.admin.clone(), plan.clone(), answers.clone()).await;
    wire(1, &mut admin_a, &source, &mut admin_b, &relay, &forwarder).await;
    wire(2, &mut admin_b, &relay, &mut admin_c, &sink, &c.admin).await;

    // The relay's input is fed by a connection now: an admin cannot inject events there.
    let injected = admin_b
        .request(Op::Call {
            module: "relay".into(),
            kind: CallKind::Input,
            port: "in".into(),
            data: Bytes(b"event-999".to_vec()),
        })
        .await
        .unwrap_err();
    assert!(
        injected.to_string().contains("is fed by a connection"),
        "{injected}"
    );

    for n in 0..EVENTS {
        let reply = admin_a
            .request(Op::Call {
                module: "source".into(),
                kind: CallKind::Entry,
                port: "emit".into(),
                data: Bytes(format!("event-{n}").into_bytes()),
            })
            .await
            .unwrap();
        assert!(matches!(reply, Reply::Called { outputs: 1, .. }));
    }

    // What reaches the sink: every event the forwarder left alone, in order, once. The flipped
    // and the dropped ones never arrive; of the swapped pair only the one that came first counts.
    let expected: Vec<String> = (0..EVENTS)
        .filter(|n| {
            !matches!(
                plan.get(n),
                Some(Attack::Flip | Attack::Drop | Attack::SwapWithNext)
            )
        })
        .map(|n| format!("event-{n}"))
        .collect();
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.len() < expected.len() && Instant::now() < deadline {
        let Reply::Outputs { events, .. } = admin_c
            .request(Op::Outputs {
                module: "sink".into(),
                max: 1000,
            })
            .await
            .unwrap()
        else {
            panic!("no outputs")
        };
        received.extend(
            events
                .into_iter()
                .map(|e| String::from_utf8(e.data.0).unwrap()),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(received, expected, "node B log: {}", b.log());

    // Node B detected each attack and said which it was.
    let answers = answers.lock().unwrap().clone();
    let kinds = |n: u64| -> Vec<String> {
        answers
            .get(&n)
            .map(|v| v.iter().map(|(_, m)| m.clone()).collect())
            .unwrap_or_default()
    };
    assert!(
        kinds(5)[0].starts_with("forged or altered event (counter 5)"),
        "{answers:?}"
    );
    assert_eq!(
        kinds(11),
        Vec::<String>::new(),
        "a drop is seen at the next event, not answered"
    );
    assert_eq!(
        kinds(17).len(),
        1,
        "the first copy is delivered, the second refused: {answers:?}"
    );
    assert!(
        kinds(17)[0].starts_with("replayed or reordered event: counter 17"),
        "{answers:?}"
    );
    assert!(
        kinds(23)[0].starts_with("replayed or reordered event: counter 23"),
        "{answers:?}"
    );
    assert!(
        answers
            .values()
            .flatten()
            .all(|(kind, _)| *kind == ErrorKind::EventRejected)
    );
    assert_eq!(answers.len(), 3, "{answers:?}");

    let at_b = connection(&admin_b.request(Op::List).await.unwrap(), "relay");
    assert_eq!(
        (at_b.events, at_b.forged, at_b.replayed, at_b.missing),
        (EVENTS - 3, 1, 2, 3),
        "{at_b:?}"
    );
    let at_c = connection(&admin_c.request(Op::List).await.unwrap(), "sink");
    assert_eq!(
        (
            at_c.events,
            at_c.forged,
            at_c.replayed,
            at_c.missing,
            at_c.malformed
        ),
        (EVENTS - 3, 0, 0, 0, 0),
        "{at_c:?}"
    );
    assert!(
        b.metrics()
            .contains("teemesh_node_events_rejected_total{module=\"relay\"} 3"),
        "{}",
        b.metrics()
    );
    let log = b.log();
    assert!(log.contains("event rejected"), "{log}");
    assert!(log.contains("events missing before this one"), "{log}");
    // No key material in any node's log.
    for node in [&a, &b, &c] {
        assert!(
            !node
                .log()
                .contains(&hex::encode(stray.danger_expose_for_tests()))
        );
    }
}
