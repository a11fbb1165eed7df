#![allow(clippy::unwrap_used)]
//! `teemesh app update` and `teemesh app rekey` on three real node processes while events flow:
//! the relay in the middle of source → relay → sink is replaced by a new version (another
//! measurement) while a client keeps emitting at the source and asking the relay's handler.
//! Counted end to end afterwards: every event emitted reached the relay and the sink exactly
//! once, none missing, replayed or forged; the relay's sealed state was handed to the new
//! version; every connection of the relay has a new key. A version that cannot serve the
//! relay's connections, or whose measurement is not the one given, is refused and the running
//! version stays.

#[path = "../../runtime/tests/guest/mod.rs"]
mod guest;
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{NodeProcess, ok, teemesh};

fn descriptor(nodes: [&NodeProcess; 3]) -> String {
    descriptor_with(nodes, "")
}

fn descriptor_with(nodes: [&NodeProcess; 3], more_nodes: &str) -> String {
    format!(
        r#"app: relay-update
appraisal:
  require_reference_values: false
nodes:
  - {{name: node-a, address: "{a}", platform: sim, policy: {{allow_simulated: true}}}}
  - {{name: node-b, address: "{b}", platform: sim, policy: {{allow_simulated: true}}}}
  - {{name: node-c, address: "{c}", platform: sim, policy: {{allow_simulated: true}}}}
{more_nodes}modules:
  - {{name: source, wasm: guest.wasm, node: node-a, outputs: [out], requests: [query], entries: [emit, ask]}}
  - {{name: relay, wasm: guest.wasm, node: node-b, inputs: [in], outputs: [out], handlers: [answer], entries: [state-set, state-get]}}
  - {{name: sink, wasm: guest.wasm, node: node-c, inputs: [in]}}
connections:
  - {{from: source.out, to: relay.in}}
  - {{from: relay.out, to: sink.in, protection: authenticated}}
  - {{from: source.query, to: relay.answer}}
expose: [source.emit, source.ask, relay.state-set, relay.state-get, relay.answer]
"#,
        a = nodes[0].admin,
        b = nodes[1].admin,
        c = nodes[2].admin,
    )
}

/// The receiving ends' counters of `module` in `app status`, by connection id.
fn receivers(status: &Value, module: &str) -> Vec<Value> {
    let entry = status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == module)
        .unwrap();
    entry["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["end"] == "receiver")
        .cloned()
        .collect()
}

fn measurement_in(status: &Value, module: &str) -> String {
    status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == module)
        .unwrap()["measurement"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A client that keeps the application busy from a thread of its own: events through source →
/// relay → sink, and (with `ask_every`) a request to the relay's handler every so many events.
struct Client {
    stop: Arc<AtomicBool>,
    emitted: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Client {
    fn start(home: &Path, ask_every: Option<u64>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let emitted = Arc::new(AtomicU64::new(0));
        let thread = {
            let (home, stop, emitted) = (home.to_owned(), stop.clone(), emitted.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    ok(&teemesh(
                        &home,
                        &["app", "call", "source", "emit", &format!("{n}")],
                    ));
                    emitted.fetch_add(1, Ordering::Relaxed);
                    if ask_every.is_some_and(|every| n % every == every - 1) {
                        let asked: Value = serde_json::from_str(&ok(&teemesh(
                            &home,
                            &["app", "call", "source", "ask", "ping"],
                        )))
                        .unwrap();
                        assert_eq!(
                            hex::decode(asked["result"].as_str().unwrap()).unwrap(),
                            b"answer:ping",
                            "{asked}"
                        );
                    }
                    n += 1;
                }
            })
        };
        Self {
            stop,
            emitted,
            thread,
        }
    }

    fn emitted(&self) -> u64 {
        self.emitted.load(Ordering::Relaxed)
    }

    /// Waits until `more` further events were emitted.
    fn wait_for(&self, more: u64) {
        let target = self.emitted() + more;
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.emitted() < target {
            assert!(Instant::now() < deadline, "the client stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the client; returns how many events it emitted.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.emitted.load(Ordering::Relaxed)
    }
}

/// `app status` once the sink counted `total` events (or after 30 s).
fn status_once_sink_has(home: &Path, total: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = serde_json::from_str(&ok(&teemesh(home, &["app", "status"]))).unwrap();
        if receivers(&status, "sink")[0]["events"] == total || Instant::now() > deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every event arrived once at both hops: `total` at the relay's event input and at the sink,
/// nothing missing, forged, replayed or malformed.
fn assert_counted_once(status: &Value, total: u64) {
    let relay = receivers(status, "relay");
    let sink = receivers(status, "sink");
    let events_in = relay.iter().find(|r| r["connection"] == 1).unwrap();
    assert_eq!(events_in["events"], total, "relay: {relay:?}");
    assert_eq!(sink[0]["events"], total, "sink: {sink:?}");
    for end in relay.iter().chain(&sink) {
        for counter in ["missing", "forged", "replayed", "malformed"] {
            assert_eq!(end[counter], 0, "{counter} in {end}");
        }
    }
}

#[test]
fn a_module_is_updated_and_rekeyed_while_events_flow_with_none_lost_or_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = ok(&teemesh(&home, &["admin", "key"])).trim().to_owned();
    let a = NodeProcess::start(dir.path(), "node-a", &key);
    let b = NodeProcess::start(dir.path(), "node-b", &key);
    let c = NodeProcess::start(dir.path(), "node-c", &key);
    std::fs::write(dir.path().join("guest.wasm"), guest::component()).unwrap();
    let v1 = guest::build(&guest::Options {
        variant: 1,
        ..guest::Options::default()
    });
    let v1_path = dir.path().join("relay-v1.wasm");
    std::fs::write(&v1_path, &v1).unwrap();
    let v1_measurement = hex::encode(attest::Digest256::of(&v1).0);
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, descriptor([&a, &b, &c])).unwrap();
    ok(&teemesh(&home, &["deploy", app.to_str().unwrap()]));
    ok(&teemesh(
        &home,
        &["app", "call", "relay", "state-set", "count=7"],
    ));
    // An exposed handler takes requests from users too.
    let answered: Value = serde_json::from_str(&ok(&teemesh(
        &home,
        &["app", "request", "relay", "answer", "hello"],
    )))
    .unwrap();
    assert_eq!(
        hex::decode(answered["result"].as_str().unwrap()).unwrap(),
        b"answer:hello"
    );
    let out = teemesh(&home, &["app", "request", "relay", "in", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not exposed"));

    // A client keeps the application busy: events through source → relay → sink, and every
    // fourth call a request to the relay's handler.
    let client = Client::start(&home, Some(4));
    client.wait_for(4);

    // The update itself, while the client runs.
    let out = teemesh(
        &home,
        &["app", "update", "relay", v1_path.to_str().unwrap()],
    );
    let updated: Value = serde_json::from_str(&ok(&out)).unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    for n in 1..=4 {
        assert!(progress.contains(&format!("[{n}/4]")), "{progress}");
    }
    assert_eq!(updated["measurement"], v1_measurement.as_str());
    assert_eq!(
        updated["rekeyed"],
        serde_json::json!([1, 2, 3]),
        "{updated}"
    );
    client.wait_for(4);

    // A key rotation of every connection, also while the client runs.
    let rotated: Value = serde_json::from_str(&ok(&teemesh(&home, &["app", "rekey"]))).unwrap();
    assert_eq!(rotated["rekeyed"], serde_json::json!([1, 2, 3]));
    client.wait_for(4);
    let total = client.stop();

    // Counted end to end: every event arrived at the relay and at the sink once.
    let status = status_once_sink_has(&home, total);
    assert_counted_once(&status, total);
    assert_eq!(measurement_in(&status, "relay"), v1_measurement);
    // Every connection has an end at the relay, so each end was re-keyed twice: by the update
    // and by the rotation.
    for module in ["relay", "sink"] {
        let entry = status["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == module)
            .unwrap();
        for end in entry["connections"].as_array().unwrap() {
            assert_eq!(end["rekeys"], 2, "{module}: {end}");
        }
    }

    // The sealed state went with the update.
    let count: Value = serde_json::from_str(&ok(&teemesh(
        &home,
        &["app", "call", "relay", "state-get", "count"],
    )))
    .unwrap();
    assert_eq!(count["result"], 7, "{count}");

    // A version that lacks the relay's connected ports is refused; the relay keeps running.
    let filter = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/sensor-filter/sensor-filter-rust.wasm");
    let out = teemesh(&home, &["app", "update", "relay", filter.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("declares no"), "{stderr}");
    assert!(stderr.contains("the running version stays"), "{stderr}");
    // So is a file whose measurement is not the reference value given.
    let out = teemesh(
        &home,
        &[
            "app",
            "update",
            "relay",
            v1_path.to_str().unwrap(),
            "--measurement",
            &"00".repeat(32),
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--measurement"));
    ok(&teemesh(&home, &["app", "call", "source", "emit", "last"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = serde_json::from_str(&ok(&teemesh(&home, &["app", "status"]))).unwrap();
        let sink = receivers(&status, "sink");
        if sink[0]["events"] == total + 1 {
            assert_eq!(measurement_in(&status, "relay"), v1_measurement);
            break;
        }
        assert!(Instant::now() < deadline, "{sink:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_module_migrates_to_another_node_while_events_flow_with_none_lost_or_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = ok(&teemesh(&home, &["admin", "key"])).trim().to_owned();
    let a = NodeProcess::start(dir.path(), "node-a", &key);
    let b = NodeProcess::start(dir.path(), "node-b", &key);
    let c = NodeProcess::start(dir.path(), "node-c", &key);
    let d = NodeProcess::start(dir.path(), "node-d", &key);
    std::fs::write(dir.path().join("guest.wasm"), guest::component()).unwrap();
    let app = dir.path().join("app.yaml");
    let node_d = format!(
        "  - {{name: node-d, address: \"{}\", platform: sim, policy: {{allow_simulated: true}}}}\n",
        d.admin
    );
    std::fs::write(&app, descriptor_with([&a, &b, &c], &node_d)).unwrap();
    ok(&teemesh(&home, &["deploy", app.to_str().unwrap()]));
    ok(&teemesh(
        &home,
        &["app", "call", "relay", "state-set", "count=7"],
    ));

    let client = Client::start(&home, None);
    client.wait_for(4);
    let out = teemesh(&home, &["app", "migrate", "relay", "--to", "node-d"]);
    let migrated: Value = serde_json::from_str(&ok(&out)).unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    for n in 1..=6 {
        assert!(progress.contains(&format!("[{n}/6]")), "{progress}");
    }
    assert_eq!(migrated["from"], "node-b");
    assert_eq!(migrated["to"], "node-d");
    assert_eq!(
        migrated["retargeted"],
        serde_json::json!([1, 3]),
        "{migrated}"
    );
    assert_eq!(
        migrated["rekeyed"],
        serde_json::json!([1, 2, 3]),
        "{migrated}"
    );
    client.wait_for(6);
    let total = client.stop();

    let status = status_once_sink_has(&home, total);
    let relay_entry = status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "relay")
        .unwrap();
    assert_eq!(relay_entry["node"], "node-d", "{relay_entry}");
    // The counts moved with the connection ends: one sequence across both nodes.
    assert_counted_once(&status, total);
    let count: Value = serde_json::from_str(&ok(&teemesh(
        &home,
        &["app", "call", "relay", "state-get", "count"],
    )))
    .unwrap();
    assert_eq!(count["result"], 7, "{count}");
    // The old node hosts it no more; a request still finds the handler on its new node.
    let listed: Value = serde_json::from_str(&ok(&teemesh(
        &home,
        &[
            "admin",
            "--node",
            &b.admin,
            "--policy",
            dir.path().join("sim-policy.toml").to_str().unwrap(),
            "list",
        ],
    )))
    .unwrap();
    assert_eq!(listed["modules"], serde_json::json!([]), "{listed}");
    let asked: Value = serde_json::from_str(&ok(&teemesh(
        &home,
        &["app", "call", "source", "ask", "ping"],
    )))
    .unwrap();
    assert_eq!(
        hex::decode(asked["result"].as_str().unwrap()).unwrap(),
        b"answer:ping"
    );
}

#[test]
fn a_node_hands_a_module_over_only_to_and_from_a_verified_instance_of_it() {
    use node::protocol::{Bytes, ErrorKind, Op, Reply};
    use node::{AdminClient, AdminKey, NodeError};

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = ok(&teemesh(&home, &["admin", "key"])).trim().to_owned();
    let a = NodeProcess::start(dir.path(), "node-a", &key);
    let b = NodeProcess::start(dir.path(), "node-b", &key);
    let c = NodeProcess::start(dir.path(), "node-c", &key);
    std::fs::write(dir.path().join("guest.wasm"), guest::component()).unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, descriptor([&a, &b, &c])).unwrap();
    ok(&teemesh(&home, &["deploy", app.to_str().unwrap()]));

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let admin = AdminKey::load_or_create(&home.join("admin-key.pem")).unwrap();
        let verifier = std::sync::Arc::new(atls::PeerVerifier::new(
            attest::AppraisalPolicy::from_toml("allow_simulated = true").unwrap(),
            attest::Endorsements::default(),
        ));
        let mut node_b = AdminClient::connect(&b.admin, &admin, verifier.clone())
            .await
            .unwrap();
        let mut node_c = AdminClient::connect(&c.admin, &admin, verifier)
            .await
            .unwrap();
        let claims_of = |reply: Reply| match reply {
            Reply::Claims {
                signed_claims_json,
                node_certificate,
            } => (signed_claims_json, node_certificate),
            other => panic!("{other:?}"),
        };
        // The sink on node C runs the same code as the relay, under another name.
        let (sink_claims, c_cert) = claims_of(
            node_c
                .request(Op::Claims {
                    module: "sink".into(),
                })
                .await
                .unwrap(),
        );
        let refused = |outcome: Result<Reply, NodeError>, why: &str| match outcome {
            Err(NodeError::Remote(e)) => {
                assert_eq!(e.kind, ErrorKind::Unauthorised, "{e:?}");
                assert!(e.message.contains(why), "{}", e.message);
            }
            other => panic!("not refused: {other:?}"),
        };
        let export = |claims: &str, cert: &Bytes| Op::Export {
            module: "relay".into(),
            app: "relay-update".into(),
            recipient_claims: claims.to_owned(),
            recipient_certificate: cert.clone(),
        };
        refused(
            node_b.request(export(&sink_claims, &c_cert)).await,
            "its claims are for module \"sink\"",
        );
        // Claims edited to name the relay, or to name another channel key (someone's who
        // would read the hand-over), no longer verify: the node signed what they said.
        let mut renamed: serde_json::Value = serde_json::from_str(&sink_claims).unwrap();
        renamed["claims"]["name"] = "relay".into();
        refused(
            node_b.request(export(&renamed.to_string(), &c_cert)).await,
            "the node signature is not valid",
        );
        let mut rekeyed: serde_json::Value = serde_json::from_str(&sink_claims).unwrap();
        rekeyed["claims"]["channel_key"] = "ab".repeat(32).into();
        refused(
            node_b.request(export(&rekeyed.to_string(), &c_cert)).await,
            "the node signature is not valid",
        );
        // A hand-over that the old instance did not seal is not taken over.
        let load = node_c
            .request(Op::Load {
                name: "relay".into(),
                wasm: Bytes(guest::component()),
            })
            .await
            .unwrap();
        assert!(matches!(load, Reply::Module(_)));
        let (relay_b_claims, b_cert) = claims_of(
            node_b
                .request(Op::Claims {
                    module: "relay".into(),
                })
                .await
                .unwrap(),
        );
        let import = node_c
            .request(Op::Import {
                module: "relay".into(),
                app: "relay-update".into(),
                handover: Bytes(vec![7; 200]),
                sender_claims: relay_b_claims,
                sender_certificate: b_cert,
            })
            .await;
        match import {
            Err(NodeError::Remote(e)) => {
                assert_eq!(e.kind, ErrorKind::BadRequest, "{e:?}");
                assert!(e.message.contains("does not open"), "{}", e.message);
            }
            other => panic!("not refused: {other:?}"),
        }
    });
    // The relay was never frozen: events still go through it.
    ok(&teemesh(&home, &["app", "call", "source", "emit", "after"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: Value = serde_json::from_str(&ok(&teemesh(&home, &["app", "status"]))).unwrap();
        if receivers(&status, "sink")[0]["events"] == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
