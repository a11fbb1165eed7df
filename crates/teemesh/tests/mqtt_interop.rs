//! Interoperability of `teemesh mqtt broker` with clients we did not write: Debian's
//! `mosquitto_pub` / `mosquitto_sub` (MQTT 3.1.1 and 5, plain TCP and TLS) and Python paho-mqtt.
//! The clients are required: a machine without them fails here with the package to install
//! (scripts/test.sh installs them).

use std::io::{BufRead as _, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

mod support;

use support::broker::BrokerProcess;

/// Fails (never skips) when a client is missing.
fn require(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing: install the Debian package {package} (apt-get install {package}; scripts/test.sh does it)"
    );
}

fn mosquitto_pub(port: &str, version: &str, extra: &[&str], topic: &str, message: &str) {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", port, "-V", version, "-q", "1"])
        .args(extra)
        .args(["-t", topic, "-m", message])
        .status()
        .expect("run mosquitto_pub");
    assert!(
        status.success(),
        "mosquitto_pub -V {version} {extra:?} failed"
    );
}

struct Subscriber {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Subscriber {
    fn start(port: &str, version: &str, extra: &[&str], filter: &str, count: usize) -> Self {
        let mut child = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-V",
                version,
                "-q",
                "2",
                "-v",
            ])
            .args(extra)
            .args(["-t", filter, "-C", &count.to_string(), "-W", "20"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("run mosquitto_sub");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Self { child, lines }
    }

    fn next(&mut self) -> String {
        self.lines
            .next()
            .expect("mosquitto_sub ended before the message")
            .expect("read mosquitto_sub")
    }

    fn finish(mut self) {
        let status = self.child.wait().expect("mosquitto_sub exit");
        assert!(status.success(), "mosquitto_sub failed: {status}");
    }
}

/// A retained message first (it arrives as soon as the subscription exists, so no sleep is
/// needed to know the subscriber is ready), then a live one.
fn round_trip(port: &str, version: &str, extra: &[&str], tag: &str) {
    let topic = format!("interop/{tag}/{version}");
    let mut retained_args = extra.to_vec();
    retained_args.push("-r");
    mosquitto_pub(port, version, &retained_args, &topic, "retained");
    let mut sub = Subscriber::start(port, version, extra, "interop/#", 2);
    assert_eq!(sub.next(), format!("{topic} retained"));
    mosquitto_pub(port, version, extra, &topic, "live");
    assert_eq!(sub.next(), format!("{topic} live"));
    sub.finish();
    // Delete the retained message: a later subscriber gets nothing for this topic.
    let mut delete_args = extra.to_vec();
    delete_args.extend(["-r", "-n"]);
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", port, "-V", version])
        .args(&delete_args)
        .args(["-t", &topic])
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success());
}

#[test]
fn mosquitto_clients_over_tcp_both_versions() {
    require("mosquitto_pub", "mosquitto-clients");
    require("mosquitto_sub", "mosquitto-clients");
    let broker = BrokerProcess::start(&["--listen", "127.0.0.1:0"], true);
    let port = broker.port("tcp");
    for version in ["mqttv311", "mqttv5"] {
        round_trip(&port, version, &[], "tcp");
    }
}

fn write_tls_config(dir: &Path) -> std::path::PathBuf {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "teemesh mqtt test");
    let cert = params.self_signed(&key).expect("certificate");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
    let config = dir.join("broker.toml");
    std::fs::write(
        &config,
        r#"
[[listener]]
kind = "tls"
address = "127.0.0.1:0"
cert = "cert.pem"
key = "key.pem"

[[listener]]
kind = "tcp"
address = "127.0.0.1:0"
"#,
    )
    .expect("write config");
    config
}

#[test]
fn mosquitto_clients_over_tls_both_versions() {
    require("mosquitto_pub", "mosquitto-clients");
    require("mosquitto_sub", "mosquitto-clients");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_tls_config(dir.path());
    let broker = BrokerProcess::start(&["--config", config.to_str().expect("utf-8 path")], true);
    let port = broker.port("tls");
    let cafile = dir.path().join("cert.pem");
    let cafile = cafile.to_str().expect("utf-8 path");
    for version in ["mqttv311", "mqttv5"] {
        round_trip(&port, version, &["--cafile", cafile], "tls");
    }
}

const PAHO_SCRIPT: &str = r#"
import sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

port = int(sys.argv[1])
for proto, name in ((mqtt.MQTTv311, "v311"), (mqtt.MQTTv5, "v5")):
    got = []
    done = threading.Event()
    subscribed = threading.Event()
    client = mqtt.Client(client_id="paho-" + name, protocol=proto)
    def on_subscribe(c, u, mid, granted, *rest):
        subscribed.set()
    def on_message(c, u, msg):
        props = getattr(msg, "properties", None)
        user = getattr(props, "UserProperty", None) if props is not None else None
        got.append((msg.topic, msg.payload.decode(), msg.qos, user))
        if len(got) == 3:
            done.set()
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    client.subscribe("paho/#", qos=2)
    assert subscribed.wait(10), "no SUBACK"
    for qos in (0, 1, 2):
        if proto == mqtt.MQTTv5:
            props = Properties(PacketTypes.PUBLISH)
            props.UserProperty = [("qos", str(qos))]
            info = client.publish("paho/" + name, "m%d" % qos, qos=qos, properties=props)
        else:
            info = client.publish("paho/" + name, "m%d" % qos, qos=qos)
        info.wait_for_publish(10)
    assert done.wait(10), "messages missing: %r" % got
    got.sort(key=lambda m: m[1])
    assert [(t, p, q) for t, p, q, _ in got] == [("paho/" + name, "m%d" % i, i) for i in range(3)], got
    if proto == mqtt.MQTTv5:
        assert [u for _, _, _, u in got] == [[("qos", str(i))] for i in range(3)], got
    client.disconnect()
    client.loop_stop()
print("paho ok")
"#;

/// Debian's interpreter, where python3-paho-mqtt installs (a pyenv or venv `python3` earlier
/// on PATH would not see it).
fn debian_python() -> &'static str {
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[test]
fn python_paho_both_versions() {
    let python = debian_python();
    let has_paho = Command::new(python)
        .args(["-c", "import paho.mqtt.client"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_paho,
        "python3 cannot import paho.mqtt: install the Debian package python3-paho-mqtt (scripts/test.sh does it)"
    );
    let broker = BrokerProcess::start(&["--listen", "127.0.0.1:0"], true);
    let out = Command::new(python)
        .args(["-c", PAHO_SCRIPT, &broker.port("tcp")])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "paho script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "paho ok");
}

/// paho-mqtt the way its users write it: `connect()` then `subscribe()` at once (the SUBSCRIBE
/// follows CONNECT before any CONNACK), a subscriber reading in Python while `mosquitto_pub -l`
/// publishes 200,000 QoS 0 lines as fast as it can; then 5,000 QoS 1 messages with 5,000 in
/// flight. Every message must arrive and every PUBLISH be acknowledged.
const PAHO_FIREHOSE_SCRIPT: &str = r#"
import subprocess, sys, threading
import paho.mqtt.client as mqtt

port, count, inflight = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
got = [0]
done = threading.Event()
subscribed = threading.Event()
sub = mqtt.Client(client_id="paho-firehose")
def on_message(c, u, msg):
    got[0] += 1
    if got[0] == count:
        done.set()
sub.on_message = on_message
sub.on_subscribe = lambda *args: subscribed.set()
sub.connect("127.0.0.1", port, keepalive=60)
sub.subscribe("firehose", qos=0)
sub.loop_start()
assert subscribed.wait(10), "no SUBACK for the SUBSCRIBE sent straight after CONNECT"
lines = "".join("line %d\n" % i for i in range(count)).encode()
subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "0",
                "-t", "firehose", "-l"], input=lines, check=True)
done.wait(120)
print("received %d of %d" % (got[0], count))
sub.disconnect()
sub.loop_stop()

publisher = mqtt.Client(client_id="paho-inflight")
publisher.max_inflight_messages_set(inflight)
publisher.connect("127.0.0.1", port, keepalive=60)
publisher.loop_start()
infos = [publisher.publish("inflight/%d" % i, "m", qos=1) for i in range(inflight)]
for info in infos:
    info.wait_for_publish(30)
print("acknowledged %d of %d" % (sum(1 for i in infos if i.is_published()), inflight))
publisher.disconnect()
publisher.loop_stop()
"#;

#[test]
fn paho_subscriber_and_mosquitto_pub_lose_nothing_and_every_publish_is_acknowledged() {
    require("mosquitto_pub", "mosquitto-clients");
    let python = debian_python();
    let broker = BrokerProcess::start(&["--listen", "127.0.0.1:0"], true);
    let out = Command::new(python)
        .args([
            "-c",
            PAHO_FIREHOSE_SCRIPT,
            &broker.port("tcp"),
            "200000",
            "5000",
        ])
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["received 200000 of 200000", "acknowledged 5000 of 5000"]
    );
}
