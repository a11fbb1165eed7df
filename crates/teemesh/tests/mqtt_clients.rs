//! `teemesh mqtt pub` and `teemesh mqtt sub` against `teemesh mqtt broker` with an attested TLS
//! listener on the simulated TEE and a plain TCP one: messages at every QoS and both protocol
//! versions, from our clients and from mosquitto_pub; the broker's attestation result on stderr;
//! a policy that refuses simulated evidence refuses the broker; retained messages.

use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::TEEMESH;
use support::broker::BrokerProcess;

/// A running broker with an attested TLS and a TCP listener, and the policies its clients use.
struct Broker {
    /// Kept for its lifetime: the broker stops when this is dropped.
    _process: BrokerProcess,
    atls: String,
    tcp: String,
    dir: tempfile::TempDir,
}

impl Broker {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("broker.toml");
        std::fs::write(
            &config,
            "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n\
             [[listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\nplatform = \"sim\"\n",
        )
        .expect("write broker.toml");
        std::fs::write(dir.path().join("sim.toml"), "allow_simulated = true\n").expect("policy");
        std::fs::write(dir.path().join("no-sim.toml"), "allow_simulated = false\n")
            .expect("policy");
        let process =
            BrokerProcess::start(&["--config", config.to_str().expect("utf-8 path")], false);
        Self {
            atls: process.address("atls"),
            tcp: process.address("tcp"),
            _process: process,
            dir,
        }
    }

    fn policy(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `teemesh mqtt pub` over attested TLS under `policy`.
    fn publish(&self, policy: Option<&Path>, args: &[&str]) -> Output {
        let mut command = Command::new(TEEMESH);
        command
            .args(["mqtt", "pub", "--broker", &self.atls])
            .args(args)
            .env_remove("RUST_LOG");
        if let Some(policy) = policy {
            command.arg("--policy").arg(policy);
        }
        command.output().expect("run teemesh mqtt pub")
    }
}

/// A running `teemesh mqtt sub -C COUNT`, subscribed (its readiness line was seen).
struct Subscriber {
    child: Child,
    /// Its stderr up to the readiness line.
    stderr: String,
}

impl Subscriber {
    fn start(broker: &Broker, version: &str, filter: &str, count: usize) -> Self {
        Self::start_with(broker, version, filter, count, &[])
    }

    /// As [`Self::start`], with `extra` arguments.
    fn start_with(
        broker: &Broker,
        version: &str,
        filter: &str,
        count: usize,
        extra: &[&str],
    ) -> Self {
        let mut child = Command::new(TEEMESH)
            .args(["mqtt", "sub", "--broker", &broker.atls, "--policy"])
            .arg(broker.policy("sim.toml"))
            .args([
                "-V",
                version,
                "-q",
                "2",
                "-t",
                filter,
                "-C",
                &count.to_string(),
            ])
            .args(extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run teemesh mqtt sub");
        let mut stderr = String::new();
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        loop {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("mqtt sub ended before subscribing:\n{stderr}"))
                .expect("read stderr");
            stderr.push_str(&line);
            stderr.push('\n');
            if line.starts_with("teemesh: subscribed to") {
                break;
            }
        }
        // Drain the rest so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Self { child, stderr }
    }

    /// Its JSON lines, once it exited successfully after COUNT messages.
    fn messages(mut self) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("mqtt sub did not get all its messages within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut stdout)
            .expect("read stdout");
        assert!(status.success(), "mqtt sub: {status}; stdout: {stdout}");
        stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

fn assert_ok(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The attestation result is on stderr before anything else, with the simulation named.
fn assert_simulated_broker_reported(stderr: &str) {
    assert!(
        stderr.contains("affirmed: platform sim"),
        "no attestation result: {stderr}"
    );
    assert!(
        stderr.contains("SIMULATED"),
        "no SIMULATED warning: {stderr}"
    );
}

#[test]
fn attested_subscribers_receive_every_qos_and_version_and_mosquitto_over_tcp() {
    let broker = Broker::start();
    let sim = broker.policy("sim.toml");
    // 6 from `mqtt pub`, one text and one binary from mosquitto_pub.
    let expected = 8;
    let subscribers = [
        Subscriber::start(&broker, "5", "clients/#", expected),
        Subscriber::start(&broker, "311", "clients/#", expected),
    ];
    for subscriber in &subscribers {
        assert_simulated_broker_reported(&subscriber.stderr);
    }
    for version in ["311", "5"] {
        for qos in ["0", "1", "2"] {
            let topic = format!("clients/v{version}/q{qos}");
            let message = format!("hello {version} {qos}");
            let out = broker.publish(
                Some(&sim),
                &["-V", version, "-q", qos, "-t", &topic, "-m", &message],
            );
            assert_ok("mqtt pub", &out);
            assert_simulated_broker_reported(&String::from_utf8_lossy(&out.stderr));
        }
    }
    let port = broker.tcp.rsplit_once(':').expect("host:port").1;
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", port, "-q", "2"])
        .args(["-t", "clients/mosquitto", "-m", "from mosquitto"])
        .status()
        .expect("run mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(status.success(), "mosquitto_pub: {status}");
    let binary = broker.dir.path().join("binary");
    std::fs::write(&binary, [0xff, 0x00, 0x7f]).expect("write");
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", port, "-q", "1"])
        .args(["-t", "clients/binary", "-f"])
        .arg(&binary)
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success(), "mosquitto_pub -f: {status}");

    for subscriber in subscribers {
        let mut messages = subscriber.messages();
        messages.sort_by_key(|m| m["topic"].as_str().unwrap_or_default().to_owned());
        let mut want = Vec::new();
        want.push(serde_json::json!({"topic": "clients/binary", "payload": "ff007f", "encoding": "hex", "qos": 1, "retain": false}));
        want.push(serde_json::json!({"topic": "clients/mosquitto", "payload": "from mosquitto", "encoding": "utf8", "qos": 2, "retain": false}));
        for version in ["311", "5"] {
            for qos in 0..3 {
                want.push(serde_json::json!({
                    "topic": format!("clients/v{version}/q{qos}"),
                    "payload": format!("hello {version} {qos}"),
                    "encoding": "utf8",
                    "qos": qos,
                    "retain": false,
                }));
            }
        }
        assert_eq!(messages, want);
    }
}

#[test]
fn a_policy_that_refuses_simulated_evidence_refuses_the_broker() {
    let broker = Broker::start();
    for policy in [None, Some(broker.policy("no-sim.toml"))] {
        let out = broker.publish(policy.as_deref(), &["-q", "1", "-t", "t", "-m", "m"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "policy {policy:?}: {stderr}");
        let reason = stderr.lines().last().unwrap_or_default();
        assert!(
            reason.starts_with("teemesh: refused:") && reason.contains("simulated"),
            "policy {policy:?}: the reason should name the simulation: {stderr}"
        );
        assert!(
            !stderr.contains("affirmed"),
            "a refused broker is not affirmed: {stderr}"
        );
    }
}

#[test]
fn a_retained_message_reaches_a_later_subscriber() {
    let broker = Broker::start();
    let sim = broker.policy("sim.toml");
    let out = broker.publish(
        Some(&sim),
        &["-q", "1", "--retain", "-t", "state/door", "-m", "open"],
    );
    assert_ok("mqtt pub --retain", &out);
    let later = Subscriber::start(&broker, "5", "state/#", 1);
    assert_eq!(
        later.messages(),
        [
            serde_json::json!({"topic": "state/door", "payload": "open", "encoding": "utf8", "qos": 1, "retain": true})
        ]
    );
}

#[test]
fn a_persistent_subscriber_gets_what_came_while_away_and_pub_sends_files_and_stdin() {
    let broker = Broker::start();
    let sim = broker.policy("sim.toml");
    let binary = broker.dir.path().join("reading.bin");
    std::fs::write(&binary, [0x00, 0xfe, 0x41]).expect("write");
    for version in ["311", "5"] {
        let id = format!("durable-{version}");
        let topic = format!("away/{version}");
        let persistent = ["-c", "--id", id.as_str()];
        // Subscribe in a persistent session, get one message, and go.
        let first = Subscriber::start_with(&broker, version, &topic, 1, &persistent);
        assert_ok(
            "mqtt pub -m",
            &broker.publish(Some(&sim), &["-q", "1", "-t", &topic, "-m", "before"]),
        );
        assert_eq!(first.messages()[0]["payload"], "before");
        // While it is away: a file (any bytes) and stdin.
        assert_ok(
            "mqtt pub -f",
            &broker.publish(
                Some(&sim),
                &[
                    "-q",
                    "1",
                    "-t",
                    &topic,
                    "-f",
                    binary.to_str().expect("utf-8"),
                ],
            ),
        );
        let mut stdin_pub = Command::new(TEEMESH)
            .args(["mqtt", "pub", "--broker", &broker.atls, "--policy"])
            .arg(&sim)
            .args(["-q", "1", "-t", &topic, "-s"])
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mqtt pub -s");
        std::io::Write::write_all(&mut stdin_pub.stdin.take().expect("stdin"), b"from stdin\n")
            .expect("write stdin");
        assert_ok("mqtt pub -s", &stdin_pub.wait_with_output().expect("wait"));
        // Back in the same session: both were kept for it, in order.
        let back = Subscriber::start_with(&broker, version, &topic, 2, &persistent);
        let messages = back.messages();
        assert_eq!(
            (&messages[0]["payload"], &messages[0]["encoding"]),
            (&serde_json::json!("00fe41"), &serde_json::json!("hex")),
            "{version}"
        );
        assert_eq!(messages[1]["payload"], "from stdin\n", "{version}");
    }
    // -c without --id is refused by the command line.
    let out = Command::new(TEEMESH)
        .args(["mqtt", "sub", "--broker", &broker.atls, "-t", "x", "-c"])
        .output()
        .expect("run mqtt sub");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_refused_connection_is_explained_in_the_clients_protocol_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n[auth]\nallow_anonymous = false\n",
    )
    .expect("write broker.toml");
    let process = BrokerProcess::start(&["--config", config.to_str().expect("utf-8 path")], false);
    let tcp = process.address("tcp");
    for (version, expected) in [
        ("311", "not authorized (MQTT 3.1.1 return code 5)"),
        ("5", "NotAuthorized (0x87)"),
    ] {
        let out = Command::new(TEEMESH)
            .args(["mqtt", "pub", "--transport", "tcp", "--broker", &tcp])
            .args(["-V", version, "-t", "t", "-m", "m"])
            .env_remove("RUST_LOG")
            .output()
            .expect("run teemesh mqtt pub");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "MQTT {version}: {stderr}");
        assert!(
            stderr.contains(&format!("the broker refused the connection: {expected}")),
            "MQTT {version}: {stderr}"
        );
    }
}
