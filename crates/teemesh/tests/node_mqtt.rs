#![allow(clippy::unwrap_used)]
//! The broker inside the node: the real `teemesh node` with `[mqtt]` (a TCP and an attested TLS
//! listener on 127.0.0.1 port 0, simulated TEE), reached by the real `teemesh mqtt pub`/`sub`.
//! The attested listener presents the node's own identity (name and measurement as the admin
//! listener's); the ready line and `admin status` list the broker's addresses; a bad `[mqtt]`
//! section is refused with its line.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;

use support::TEEMESH;

const MQTT: &str = "[[mqtt.listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n\
                    [[mqtt.listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\n";

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("sim-policy.toml"), "allow_simulated = true\n").unwrap();
        env
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes node.toml (simulated, peers' simulated evidence allowed, this env's admin key)
    /// with `extra` appended.
    fn config(&self, extra: &str) -> PathBuf {
        let out = Command::new(TEEMESH)
            .args(["admin", "key"])
            .env("TEEMESH_HOME", self.path("operator"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let text = format!(
            "name = \"node-mqtt\"\ndata_dir = \"data\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\npeer_policy = \"sim-policy.toml\"\n\n[admin]\nauthorized_keys = [\"{key}\"]\n\n{extra}"
        );
        let path = self.path("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

struct Node {
    child: Child,
    ready: Value,
}

impl Node {
    fn start(env: &Env, config: &Path) -> Self {
        let (child, ready) = support::spawn_node(config, &env.path("node.stderr"), &["-v"]);
        Self { child, ready }
    }

    /// The node's Prometheus metrics.
    fn metrics(&self) -> String {
        let address = self.ready["metrics"].as_str().expect("a metrics listener");
        let mut tcp = std::net::TcpStream::connect(address).unwrap();
        std::io::Write::write_all(&mut tcp, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).unwrap();
        text
    }

    fn mqtt(&self, kind: &str) -> String {
        self.ready["mqtt"]
            .as_array()
            .unwrap_or_else(|| panic!("no mqtt listeners in {}", self.ready))
            .iter()
            .find(|l| l["kind"] == kind)
            .and_then(|l| l["address"].as_str())
            .unwrap_or_else(|| panic!("no {kind} listener in {}", self.ready))
            .to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The measurement in a client's "affirmed: …, measurement HEX, …" line.
fn affirmed_measurement(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.contains("affirmed"))
        .unwrap_or_else(|| panic!("no attestation result: {stderr}"));
    line.split("measurement ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no measurement in {line}"))
        .to_owned()
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_node_runs_the_broker_on_its_own_attested_identity() {
    let env = Env::new();
    let node = Node::start(&env, &env.config(MQTT));
    let atls = node.mqtt("atls");
    let tcp = node.mqtt("tcp");
    assert_ne!(atls, tcp);

    // `admin status` lists the broker's listeners; its appraisal gives the node's measurement.
    let status = Command::new(TEEMESH)
        .args([
            "admin",
            "--node",
            node.ready["admin"].as_str().unwrap(),
            "--policy",
        ])
        .arg(env.path("sim-policy.toml"))
        .arg("status")
        .env("TEEMESH_HOME", env.path("operator"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_ok("admin status", &status);
    let admin_stderr = String::from_utf8_lossy(&status.stderr).into_owned();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        status["mqtt_listeners"],
        json!([{"kind": "tcp", "address": tcp}, {"kind": "atls", "address": atls}])
    );
    let node_measurement = affirmed_measurement(&admin_stderr);

    let mut sub = Command::new(TEEMESH)
        .args(["mqtt", "sub", "--broker", &atls, "--policy"])
        .arg(env.path("sim-policy.toml"))
        .args(["-V", "5", "-q", "1", "-t", "plant/#", "-C", "1"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sub_stderr = String::new();
    let mut lines = BufReader::new(sub.stderr.take().unwrap()).lines();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("mqtt sub ended before subscribing:\n{sub_stderr}"))
            .unwrap();
        sub_stderr.push_str(&line);
        sub_stderr.push('\n');
        if line.starts_with("teemesh: subscribed to") {
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));

    let publish = Command::new(TEEMESH)
        .args(["mqtt", "pub", "--broker", &atls, "--policy"])
        .arg(env.path("sim-policy.toml"))
        .args(["-q", "1", "-t", "plant/temperature", "-m", "21.5"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_ok("mqtt pub", &publish);
    let pub_stderr = String::from_utf8_lossy(&publish.stderr).into_owned();

    // Both clients appraised the node itself: its name and its measurement.
    for stderr in [&sub_stderr, &pub_stderr] {
        assert!(
            stderr.contains("broker \"node-mqtt\"") && stderr.contains("SIMULATED"),
            "the broker is the node's identity: {stderr}"
        );
        assert_eq!(affirmed_measurement(stderr), node_measurement, "{stderr}");
    }

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = sub.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mqtt sub got no message");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    sub.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(status.success(), "mqtt sub: {status}");
    let message: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        message,
        json!({"topic": "plant/temperature", "payload": "21.5", "encoding": "utf8", "qos": 1, "retain": false})
    );

    // The node logged its listeners (at -v).
    let log = std::fs::read_to_string(env.path("node.stderr")).unwrap();
    assert!(log.contains("mqtt listener ready"), "{log}");

    // The node's metrics count the broker's work: two clients, one message in, one out.
    let metrics = node.metrics();
    for line in [
        "teemesh_mqtt_connections_total 2",
        "teemesh_mqtt_messages_in_total 1",
        "teemesh_mqtt_messages_out_total 1",
        "teemesh_mqtt_dropped_queue_full_total 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
}

#[test]
fn a_node_without_mqtt_says_so_and_bad_mqtt_sections_are_refused_with_their_line() {
    let env = Env::new();
    let node = Node::start(&env, &env.config(""));
    assert_eq!(node.ready["mqtt"], Value::Null, "{}", node.ready);
    drop(node);

    // Env::config writes 10 lines before `extra`.
    for (extra, line, says) in [
        (
            "[[mqtt.listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\nplatform = \"sim\"\n",
            14,
            "node's own attested identity",
        ),
        (
            "[[mqtt.listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\nport = 1883\n",
            14,
            "unknown field `port`",
        ),
        (
            "[mqtt.limits]\nmax_packet_size = \"big\"\n",
            12,
            "invalid type",
        ),
    ] {
        let config = env.config(extra);
        let stderr = support::node_refuses(&config, extra);
        let expected = format!("{}: line {line}:", config.display());
        assert!(
            stderr.contains(&expected) && stderr.contains(says),
            "{extra}: expected {expected:?} and {says:?} in {stderr}"
        );
    }
}
