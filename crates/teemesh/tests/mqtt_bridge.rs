#![allow(clippy::unwrap_used)]
//! Topic ends of an application, end to end with real processes: `teemesh mqtt broker` with an
//! attested TLS listener (simulated), a `teemesh node`, and `teemesh deploy` of the committed
//! sensor filter whose input subscribes to `plant/readings` and whose output publishes on
//! `plant/alerts`, both at QoS 1. Readings published with `teemesh mqtt pub` reach the module
//! through the node's MQTT client; its alerts reach a `teemesh mqtt sub`: exact counts, none
//! lost, and the node's log names the simulated broker and never a payload. The broker is then
//! killed and started again on the same address: the client reconnects and messages flow again.

mod support;

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::broker::BrokerProcess;
use support::{NodeProcess, TEEMESH, ok, teemesh};

/// A broker process with one attested TLS listener on the simulated TEE, which admits simulated
/// clients, and an ACL under which only the module `filter` of app `plant`, as its node's signed
/// module claims prove, may publish under `plant/`; killed on drop.
struct Broker {
    _process: BrokerProcess,
    atls: String,
}

impl Broker {
    /// Starts the broker on `address` (`127.0.0.1:0` for any port).
    fn start(dir: &Path, address: &str) -> Self {
        let config = dir.join("broker.toml");
        // The nodes' clients are attested (simulated): the listener's policy must allow that.
        std::fs::write(
            dir.join("broker-client-policy.toml"),
            "allow_simulated = true\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            format!(
                "[[listener]]\nkind = \"atls\"\naddress = \"{address}\"\nplatform = \"sim\"\n\
                 policy = \"broker-client-policy.toml\"\n\n\
                 [acl]\ndefault = \"deny\"\n\
                 # The module itself: publishes its alerts, subscribes to its readings.\n\
                 [[acl.rule]]\npermission = \"allow\"\napp = \"plant\"\nmodule = \"filter\"\n\
                 allow_simulated = true\ntopic = \"%a/#\"\n\
                 # Everyone else: reads the alerts, feeds the readings.\n\
                 [[acl.rule]]\npermission = \"allow\"\nactions = [\"subscribe\"]\ntopic = \"plant/alerts\"\n\
                 [[acl.rule]]\npermission = \"allow\"\nactions = [\"publish\"]\ntopic = \"plant/readings\"\n"
            ),
        )
        .unwrap();
        let process = BrokerProcess::start(&["--config", config.to_str().unwrap()], false);
        Self {
            atls: process.address("atls"),
            _process: process,
        }
    }
}

fn descriptor(node: &NodeProcess, broker: &Broker, filter_wasm: &Path) -> String {
    format!(
        r#"app: plant
appraisal:
  require_reference_values: false
nodes:
  - {{name: node-a, address: "{node}", platform: sim, policy: {{allow_simulated: true}}}}
brokers:
  - name: plant-broker
    address: "{broker}"
modules:
  - name: filter
    wasm: "{wasm}"
    node: node-a
    inputs: [reading]
    outputs: [alert]
    entries: [configure, stats]
    config: {{threshold: 30}}
connections:
  - from: {{broker: plant-broker, topic: plant/readings, qos: 1}}
    to: filter.reading
  - from: filter.alert
    to: {{broker: plant-broker, topic: plant/alerts, qos: 1}}
expose: [filter.stats]
"#,
        node = node.admin,
        broker = broker.atls,
        wasm = filter_wasm.display(),
    )
}

/// The topic ends `teemesh app status` reports for the filter.
fn topic_ends(home: &Path) -> Vec<Value> {
    let status: Value = serde_json::from_str(&ok(&teemesh(home, &["app", "status"]))).unwrap();
    status["modules"][0]["topics"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn end<'a>(ends: &'a [Value], direction: &str) -> &'a Value {
    ends.iter()
        .find(|e| e["direction"] == direction)
        .unwrap_or_else(|| panic!("no {direction} end in {ends:?}"))
}

/// Polls `app status` until `done` holds for the topic ends (10 s at most).
fn wait_for(home: &Path, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ends = topic_ends(home);
        if done(&ends) {
            return ends;
        }
        assert!(Instant::now() < deadline, "{what}: {ends:#?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_module_publishes_its_output_and_subscribes_its_input_through_an_attested_broker() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = ok(&teemesh(&home, &["admin", "key"])).trim().to_owned();
    let broker = Broker::start(dir.path(), "127.0.0.1:0");
    let node = NodeProcess::start(dir.path(), "node-a", &key);
    let filter_wasm: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/sensor-filter/sensor-filter-rust.wasm")
        .canonicalize()
        .unwrap();
    let app = dir.path().join("plant.yaml");
    std::fs::write(&app, descriptor(&node, &broker, &filter_wasm)).unwrap();
    let policy = dir.path().join("sim-policy.toml");

    // A subscriber outside any TEE, for the alerts the module publishes.
    const ALERTS: usize = 5;
    let subscriber = subscribe_alerts(&broker, &policy, ALERTS);

    let out = teemesh(&home, &["deploy", app.to_str().unwrap()]);
    let summary: Value = serde_json::from_str(&ok(&out)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("topic plant/readings → filter.reading (qos 1, plant-broker at"),
        "{stderr}"
    );
    assert!(
        stderr.contains("topic filter.alert → plant/alerts (qos 1, plant-broker at"),
        "{stderr}"
    );
    let topics = summary["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 2, "{summary}");
    assert_eq!(topics[0]["direction"], "subscribe");
    assert_eq!(topics[1]["port"], "filter.alert");
    let state: Value =
        serde_json::from_slice(&std::fs::read(home.join("apps/plant.json")).unwrap()).unwrap();
    assert_eq!(state["topics"], summary["topics"]);

    // Both ends are live once the broker accepted the module and granted its subscription.
    wait_for(&home, "the topic ends connect", |ends| {
        ends.len() == 2 && ends.iter().all(|e| e["connected"] == true)
    });

    // Five readings above the threshold (one alert each: one sensor each) and two below.
    let readings = [
        ("s1", 40),
        ("s2", 41),
        ("low-1", 10),
        ("s3", 42),
        ("s4", 43),
        ("low-2", 20),
        ("s5", 44),
    ];
    publish_readings(&broker, &policy, &readings);

    // The subscriber gets exactly the five alerts, in order.
    let alerts = subscriber.alerts(&home, &node);
    assert_eq!(alerts.len(), ALERTS);
    for (alert, sensor) in alerts.iter().zip(["s1", "s2", "s3", "s4", "s5"]) {
        assert_eq!(alert["topic"], "plant/alerts");
        let payload: Value = serde_json::from_str(alert["payload"].as_str().unwrap()).unwrap();
        assert_eq!(payload["sensor"], sensor, "{alert}");
        assert_eq!(payload["threshold"], 30);
    }

    // A client that is not the module (no module claims) cannot publish a forged alert: the
    // broker's ACL admits publications under plant/ only from app plant's module filter.
    let out = Command::new(TEEMESH)
        .args(["mqtt", "pub", "--broker", &broker.atls, "--policy"])
        .arg(&policy)
        .args(["-V", "5", "-q", "1", "-t", "plant/alerts", "-m", "forged"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("NotAuthorized"), "{stderr}");

    // Exact counts on both ends: nothing lost, dropped or left waiting.
    let ends = wait_for(&home, "the counts settle", |ends| {
        ends.len() == 2
            && end(ends, "subscribe")["delivered"] == 7
            && end(ends, "publish")["published"] == 5
            && end(ends, "publish")["pending"] == 0
    });
    for e in &ends {
        assert_eq!(e["dropped"], 0, "{e}");
        assert_eq!(e["reconnects"], 0, "{e}");
        assert_eq!(e["last_error"], Value::Null, "{e}");
    }
    assert_eq!(end(&ends, "subscribe")["published"], 0);
    assert_eq!(end(&ends, "publish")["delivered"], 0);
    // The module saw every reading once.
    let stats: Value =
        serde_json::from_str(&ok(&teemesh(&home, &["app", "call", "filter", "stats"]))).unwrap();
    let stats: Value = match &stats["result"] {
        Value::String(text) => serde_json::from_str(text).unwrap(),
        other => other.clone(),
    };
    assert_eq!(
        (stats["readings"].clone(), stats["alerts"].clone()),
        (7.into(), 5.into()),
        "{stats}"
    );

    // The input takes only its subscription's messages.
    let out = teemesh(
        &home,
        &[
            "admin",
            "input",
            "--node",
            &node.admin,
            "--policy",
            policy.to_str().unwrap(),
            "filter",
            "reading",
            r#"{"sensor":"forged","value":99}"#,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("is fed by a topic"),
        "{stderr}"
    );

    // The node's log (warnings by default) says loudly that the broker is simulated, and holds
    // no payload.
    let log = node.log();
    assert!(
        log.contains("MQTT bridge: the broker is SIMULATED"),
        "{log}"
    );
    assert!(
        !log.contains("\"value\":4"),
        "a payload in the node's log:\n{log}"
    );

    // The broker goes away: the ends say so, and the client reconnects when it is back (on the
    // same address; a broker without persistence, so the client subscribes again).
    let address = broker.atls.clone();
    drop(broker);
    wait_for(&home, "the ends see the broker gone", |ends| {
        ends.iter()
            .all(|e| e["connected"] == false && e["last_error"] != Value::Null)
    });
    let broker = Broker::start(dir.path(), &address);
    wait_for(&home, "the client reconnects", |ends| {
        ends.iter()
            .all(|e| e["connected"] == true && e["reconnects"] == 1)
    });
    let subscriber = subscribe_alerts(&broker, &policy, 2);
    publish_readings(&broker, &policy, &[("s6", 50), ("s7", 51)]);
    let alerts = subscriber.alerts(&home, &node);
    let sensors: Vec<Value> = alerts
        .iter()
        .map(|a| {
            serde_json::from_str::<Value>(a["payload"].as_str().unwrap()).unwrap()["sensor"].clone()
        })
        .collect();
    assert_eq!(sensors, ["s6", "s7"]);
    let ends = wait_for(&home, "the counts settle after the reconnect", |ends| {
        end(ends, "subscribe")["delivered"] == 9 && end(ends, "publish")["published"] == 7
    });
    for e in &ends {
        assert_eq!(e["dropped"], 0, "{e}");
        assert_eq!(e["pending"], 0, "{e}");
    }

    // An update keeps the ends: the client reconnects with claims for the new measurement (the
    // C filter, its sealed threshold handed over) and messages flow again.
    let c_filter = filter_wasm.with_file_name("sensor-filter-c.wasm");
    ok(&teemesh(
        &home,
        &["app", "update", "filter", c_filter.to_str().unwrap()],
    ));
    wait_for(&home, "the client reconnects as the new version", |ends| {
        ends.iter()
            .all(|e| e["connected"] == true && e["reconnects"] == 2)
    });
    let subscriber = subscribe_alerts(&broker, &policy, 1);
    publish_readings(&broker, &policy, &[("s8", 60)]);
    let alerts = subscriber.alerts(&home, &node);
    let payload: Value = serde_json::from_str(alerts[0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["sensor"], "s8");
    wait_for(&home, "the counts settle after the update", |ends| {
        end(ends, "subscribe")["delivered"] == 10 && end(ends, "publish")["published"] == 8
    });

    // Resetting the application unloads the module, and its topic ends with it.
    ok(&teemesh(&home, &["app", "reset"]));
}

/// A running `teemesh mqtt sub -C COUNT` on `plant/alerts`, subscribed; killed on drop.
struct Subscriber(Child);

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn subscribe_alerts(broker: &Broker, policy: &Path, count: usize) -> Subscriber {
    let mut child = Command::new(TEEMESH)
        .args(["mqtt", "sub", "--broker", &broker.atls, "--policy"])
        .arg(policy)
        .args(["-q", "1", "-t", "plant/alerts", "-C", &count.to_string()])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("mqtt sub ended early").unwrap();
        if line.starts_with("teemesh: subscribed to") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    Subscriber(child)
}

impl Subscriber {
    /// Its messages, once it got them all and exited (20 s at most).
    fn alerts(mut self, home: &Path, node: &NodeProcess) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.0.kill();
                panic!(
                    "the subscriber did not get its alerts; topic ends: {:#?}\nnode log:\n{}",
                    topic_ends(home),
                    node.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        self.0
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        assert!(status.success(), "{stdout}");
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

/// `teemesh mqtt pub -q 1` of one reading per (sensor, value) on `plant/readings`.
fn publish_readings(broker: &Broker, policy: &Path, readings: &[(&str, u32)]) {
    for (sensor, value) in readings {
        let message = format!(r#"{{"sensor":"{sensor}","value":{value}}}"#);
        let out = Command::new(TEEMESH)
            .args(["mqtt", "pub", "--broker", &broker.atls, "--policy"])
            .arg(policy)
            .args(["-q", "1", "-t", "plant/readings", "-m", &message])
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
