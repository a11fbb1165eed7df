#![allow(clippy::unwrap_used)]
//! The node daemon as operators run it: the real `teemesh node` binary on 127.0.0.1 port 0 with
//! a temporary data directory, driven by the real `teemesh admin` over attested TLS. The
//! committed Rust and C sensor filters through every interface kind, the misbehaving module
//! (loop, OOM, trap) failing only its own calls, refusals in both directions, metrics, SIGTERM,
//! restart recovery with sealed state, and sealed state refused to other bytes under the same name.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

const TEEMESH: &str = env!("CARGO_BIN_EXE_teemesh");

mod support;

fn example(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(rel)
}

fn rust_filter() -> PathBuf {
    example("sensor-filter/sensor-filter-rust.wasm")
}

fn c_filter() -> PathBuf {
    example("sensor-filter/sensor-filter-c.wasm")
}

/// A test environment: an operator home (admin key, policies) and a node data directory.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("sim-policy.toml"), "allow_simulated = true\n").unwrap();
        std::fs::write(env.path("strict-policy.toml"), "").unwrap();
        env
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("operator")
    }

    /// The operator's admin key hash (created on first use).
    fn admin_key(&self, home: &Path) -> String {
        let out = Command::new(TEEMESH)
            .args(["admin", "key"])
            .env("TEEMESH_HOME", home)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Writes node.toml authorising this env's operator, with extra TOML appended.
    fn config(&self, extra: &str) -> PathBuf {
        let key = self.admin_key(&self.home());
        let text = format!(
            "name = \"node-test\"\ndata_dir = \"data\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n{extra}\n[admin]\nauthorized_keys = [\"{key}\"]\n"
        );
        let path = self.path("node.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A running `teemesh node`; killed when dropped.
struct Node {
    child: Child,
    ready: Value,
    admin: String,
    metrics: String,
}

impl Node {
    fn start(env: &Env, config: &Path) -> Self {
        let stderr = std::fs::File::create(env.path("node.stderr")).unwrap();
        let mut child = Command::new(TEEMESH)
            .args(["node", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        // Readiness: the one JSON line on stdout.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "no ready line ({e}): {line:?}; stderr: {}",
                std::fs::read_to_string(env.path("node.stderr")).unwrap_or_default()
            )
        });
        let admin = ready["admin"].as_str().unwrap().to_owned();
        let metrics = ready["metrics"].as_str().unwrap().to_owned();
        Self {
            child,
            ready,
            admin,
            metrics,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn metrics(&self) -> String {
        let mut tcp = TcpStream::connect(&self.metrics).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        text
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `teemesh admin --node ADDR --policy POLICY ARGS` as the operator of `home`.
fn admin_as(env: &Env, home: &Path, node: &Node, policy: &str, args: &[&str]) -> Output {
    Command::new(TEEMESH)
        .args(["admin", "--node", &node.admin, "--policy"])
        .arg(env.path(policy))
        .args(args)
        .env("TEEMESH_HOME", home)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn admin(env: &Env, node: &Node, args: &[&str]) -> Output {
    admin_as(env, &env.home(), node, "sim-policy.toml", args)
}

/// Exit 0 and the JSON object on stdout.
fn ok(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(
        stderr.contains("affirmed"),
        "the node's appraisal is reported: {stderr}"
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The exit code and the last stderr line (the one-line reason).
fn failure(out: &Output) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default().to_owned();
    assert!(last.starts_with("teemesh: "), "{stderr}");
    (out.status.code().unwrap(), last)
}

fn exercise_sensor_filter(env: &Env, node: &Node, name: &str, wasm: &Path) {
    let loaded = ok(&admin(env, node, &["load", name, wasm.to_str().unwrap()]));
    assert_eq!(loaded["loaded"]["name"], name);
    assert_eq!(
        loaded["loaded"]["manifest"],
        json!({"inputs": ["reading"], "outputs": ["alert"], "requests": [], "handlers": ["latest"], "entries": ["configure", "stats"]})
    );
    let expected_measurement = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(wasm).unwrap()))
    };
    assert_eq!(
        loaded["loaded"]["measurement"],
        expected_measurement.as_str()
    );

    // Entry.
    let configured = ok(&admin(
        env,
        node,
        &["call", name, "configure", "--arg", r#"{"threshold": 30}"#],
    ));
    assert_eq!(configured["result"], json!({"threshold": 30}));
    // Input below, then above the threshold: one alert.
    let below = ok(&admin(
        env,
        node,
        &[
            "input",
            name,
            "reading",
            r#"{"sensor": "t1", "value": 21.5}"#,
        ],
    ));
    assert_eq!(below["outputs"], 0);
    let above = ok(&admin(
        env,
        node,
        &[
            "input",
            name,
            "reading",
            r#"{"sensor": "t1", "value": 31.5}"#,
        ],
    ));
    assert_eq!(above["outputs"], 1);
    // Handler.
    let latest = ok(&admin(env, node, &["request", name, "latest"]));
    assert_eq!(latest["result"]["sensor"], "t1");
    assert_eq!(latest["result"]["value"], 31.5);
    // Outputs: the alert, then nothing.
    let outputs = ok(&admin(env, node, &["outputs", name]));
    assert_eq!(outputs["dropped"], 0);
    let events = outputs["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{outputs}");
    assert_eq!(events[0]["output"], "alert");
    assert_eq!(events[0]["data"]["threshold"], 30);
    assert_eq!(events[0]["data"]["count"], 1);
    assert_eq!(
        ok(&admin(env, node, &["outputs", name]))["events"],
        json!([])
    );
    let stats = ok(&admin(env, node, &["call", name, "stats"]));
    assert_eq!(stats["result"]["readings"], 2);
    assert_eq!(stats["result"]["alerts"], 1);
    assert_eq!(stats["result"]["claims"]["name"], name);
    assert_eq!(stats["result"]["claims"]["simulated"], true);
    // A guest error: exit 1 with the module's message.
    let (code, line) = failure(&admin(
        env,
        node,
        &["call", name, "configure", "--arg", r#"{"hysteresis": 1}"#],
    ));
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("unknown field \\\"hysteresis\\\"") || line.contains("hysteresis"),
        "{line}"
    );
    // Module claims, verified by the CLI against the node's evidence.
    let claims = ok(&admin(env, node, &["claims", name]));
    assert_eq!(claims["verified"], true);
    assert_eq!(claims["claims"]["name"], name);
    assert_eq!(
        claims["claims"]["measurement"],
        expected_measurement.as_str()
    );
    assert_eq!(claims["claims"]["simulated"], true);
}

#[test]
fn rust_and_c_sensor_filters_through_every_interface_kind() {
    let env = Env::new();
    let node = Node::start(&env, &env.config(""));
    assert_eq!(node.ready["simulated"], true);
    // The simulated TEE has no sealing key: the secret is a file in the data directory.
    assert_eq!(node.ready["sealing"], "file");
    assert_eq!(node.ready["platform"], "sim");
    let stderr = std::fs::read_to_string(env.path("node.stderr")).unwrap();
    assert!(
        stderr.contains("WARNING") && stderr.contains("SIMULATED"),
        "{stderr}"
    );

    exercise_sensor_filter(&env, &node, "sensor-rust", &rust_filter());
    exercise_sensor_filter(&env, &node, "sensor-c", &c_filter());

    let list = ok(&admin(&env, &node, &["list"]));
    let modules = list["modules"].as_array().unwrap();
    assert_eq!(modules.len(), 2);
    assert!(
        modules
            .iter()
            .all(|m| m["calls"] == 6 && m["failures"] == 1),
        "{list}"
    );
    let status = ok(&admin(&env, &node, &["status"]));
    assert_eq!(status["modules"], 2);
    assert_eq!(status["node"], "node-test");

    // A taken name, an unknown module, an unknown entry: clear errors, exit 2.
    let (code, line) = failure(&admin(
        &env,
        &node,
        &["load", "sensor-c", rust_filter().to_str().unwrap()],
    ));
    assert_eq!(code, 2);
    assert!(line.contains("already loaded"), "{line}");
    let (code, line) = failure(&admin(&env, &node, &["call", "nothing", "stats"]));
    assert_eq!(code, 2);
    assert!(line.contains("no module named \"nothing\""), "{line}");
    let (_, line) = failure(&admin(&env, &node, &["call", "sensor-c", "reset"]));
    assert!(line.contains("declares no entry named \"reset\""), "{line}");
    // Unload: gone from the list.
    ok(&admin(&env, &node, &["unload", "sensor-c"]));
    assert_eq!(
        ok(&admin(&env, &node, &["list"]))["modules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let metrics = node.metrics();
    assert!(metrics.contains("teemesh_node_simulated 1\n"), "{metrics}");
    assert!(
        metrics.contains("teemesh_node_modules_loaded 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "teemesh_node_calls_total{module=\"sensor-rust\",kind=\"input\",outcome=\"ok\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "teemesh_node_calls_total{module=\"sensor-c\",kind=\"entry\",outcome=\"guest_error\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("teemesh_node_call_duration_seconds_count{kind=\"handler\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("teemesh_node_admin_requests_total{op=\"load\",outcome=\"ok\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("teemesh_node_build_info{"), "{metrics}");
}

/// Starts `call misbehave spin` in the background and waits until the node reports the call
/// running (the `list` answering then already shows the admin API serving during the loop).
fn spin_in_background(env: &Env, node: &Node) -> Child {
    let mut spin = Command::new(TEEMESH)
        .args(["admin", "--node", &node.admin, "--policy"])
        .arg(env.path("sim-policy.toml"))
        .args(["call", "misbehave", "spin"])
        .env("TEEMESH_HOME", env.home())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        let list = ok(&admin(env, node, &["list"]));
        let busy = list["modules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "misbehave" && m["busy"] == true);
        if busy {
            return spin;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = spin.kill();
    let _ = spin.wait();
    panic!("the spin call never showed as running");
}

#[test]
fn out_of_range_limits_are_refused_naming_file_line_key_and_range() {
    let env = Env::new();
    // Env::config writes 5 lines before `extra`: the value is on line 7.
    for (key, value, range) in [
        ("memory_mib", "999999999", "expected 1 to 4096 MiB"),
        (
            "fuel_per_call",
            "1000000000000000",
            "expected 1 to 1000000000000",
        ),
        ("deadline_ms", "0", "expected 1 to 3600000 ms"),
    ] {
        let config = env.config(&format!("[limits]\n{key} = {value}"));
        let stderr = support::node_refuses(&config, key);
        let expected = format!("{}: line 7: limits.{key}: {value}", config.display());
        assert!(
            stderr.contains(&expected) && stderr.contains(range),
            "expected {expected:?} and {range:?} in {stderr}"
        );
    }
}

#[test]
fn misbehaving_module_fails_only_its_own_calls() {
    let env = Env::new();
    // The most fuel a node allows (about a quarter of an hour of guest code), so the loop is
    // stopped by the wall-clock deadline.
    let config =
        env.config("[limits]\nfuel_per_call = 1000000000000\ndeadline_ms = 4000\nmemory_mib = 32");
    let node = Node::start(&env, &config);
    ok(&admin(
        &env,
        &node,
        &["load", "sensor", rust_filter().to_str().unwrap()],
    ));
    ok(&admin(
        &env,
        &node,
        &[
            "load",
            "misbehave",
            example("misbehave/misbehave.wasm").to_str().unwrap(),
        ],
    ));

    // The infinite loop, in the background.
    let spin = spin_in_background(&env, &node);
    // Another module is served meanwhile.
    let stats = ok(&admin(&env, &node, &["call", "sensor", "stats"]));
    assert_eq!(stats["result"]["readings"], 0);
    let spun = spin.wait_with_output().unwrap();
    let (code, line) = failure(&spun);
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("interrupted after its 4s deadline"), "{line}");

    // Out of memory: the module reports the failed allocation; the node carries on.
    let (code, line) = failure(&admin(&env, &node, &["call", "misbehave", "grow"]));
    assert_eq!(code, 1, "{line}");
    assert!(line.contains("out of memory after"), "{line}");
    // A trap: a clear error, and the module is restarted for the next call.
    let (code, line) = failure(&admin(&env, &node, &["call", "misbehave", "trap"]));
    assert_eq!(code, 2, "{line}");
    assert!(
        line.contains("trapped") && line.contains("restarted"),
        "{line}"
    );
    let (_, line) = failure(&admin(&env, &node, &["call", "misbehave", "trap"]));
    assert!(
        line.contains("trapped"),
        "the restarted instance runs again: {line}"
    );
    ok(&admin(&env, &node, &["call", "sensor", "stats"]));

    // Bytes that are not a module.
    let junk = env.path("junk.wasm");
    std::fs::write(&junk, b"definitely not wasm").unwrap();
    let (code, line) = failure(&admin(
        &env,
        &node,
        &["load", "junk", junk.to_str().unwrap()],
    ));
    assert_eq!(code, 2);
    assert!(line.contains("not a WebAssembly binary"), "{line}");
    let (_, line) = failure(&admin(
        &env,
        &node,
        &["load", "../escape", rust_filter().to_str().unwrap()],
    ));
    assert!(line.contains("module name"), "{line}");

    let list = ok(&admin(&env, &node, &["list"]));
    let mis = list["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "misbehave")
        .cloned()
        .unwrap();
    assert_eq!(mis["failures"], 4, "{list}");
    assert!(
        mis["last_error"].as_str().unwrap().contains("trapped"),
        "{list}"
    );
    let metrics = node.metrics();
    for outcome in ["deadline", "guest_error", "trap"] {
        assert!(
            metrics.contains(&format!("teemesh_node_calls_total{{module=\"misbehave\",kind=\"entry\",outcome=\"{outcome}\"}}")),
            "{outcome}: {metrics}"
        );
    }

    // SIGTERM while a call runs: the call finishes (here: at its deadline) and its caller gets
    // the answer, then the node exits 0.
    let spin = spin_in_background(&env, &node);
    let mut node = node;
    node.signal("-TERM");
    let (code, line) = failure(&spin.wait_with_output().unwrap());
    assert_eq!(code, 2, "{line}");
    assert!(line.contains("interrupted after its 4s deadline"), "{line}");
    assert_eq!(node.child.wait().unwrap().code(), Some(0));
}

#[test]
fn refusals_in_both_directions() {
    let env = Env::new();
    let node = Node::start(&env, &env.config(""));
    // An operator whose key the node does not list.
    let stranger = env.path("stranger");
    let (code, line) = failure(&admin_as(
        &env,
        &stranger,
        &node,
        "sim-policy.toml",
        &["status"],
    ));
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("is not in this node's admin.authorized_keys"),
        "{line}"
    );
    let stranger_log = std::fs::read_to_string(env.path("node.stderr")).unwrap();
    assert!(
        stranger_log.contains("admin client refused"),
        "{stranger_log}"
    );
    // An operator whose policy refuses the node (simulated evidence not allowed).
    let out = admin_as(&env, &env.home(), &node, "strict-policy.toml", &["status"]);
    let (code, line) = failure(&out);
    assert_eq!(code, 1, "{line}");
    assert!(
        line.contains("refused") && line.contains("allow_simulated"),
        "{line}"
    );
    assert!(out.stdout.is_empty());
    // The authorised operator still gets in.
    ok(&admin(&env, &node, &["status"]));
    // The node counts the refused handshake when it reads the client's alert: wait for it.
    let mut metrics = node.metrics();
    for _ in 0..200 {
        if metrics.contains("teemesh_node_admin_connections_refused_total 2\n") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        metrics = node.metrics();
    }
    assert!(
        metrics.contains("teemesh_node_admin_connections_refused_total 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("teemesh_node_admin_connections_accepted_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn restart_recovers_modules_and_sealed_state() {
    let env = Env::new();
    let config = env.config("");
    let node = Node::start(&env, &config);
    assert_eq!(node.ready["modules_restored"], 0);
    ok(&admin(
        &env,
        &node,
        &["load", "sensor", rust_filter().to_str().unwrap()],
    ));
    ok(&admin(
        &env,
        &node,
        &[
            "call",
            "sensor",
            "configure",
            "--arg",
            r#"{"threshold": 42}"#,
        ],
    ));

    // SIGTERM: graceful stop, exit 0.
    let mut node = node;
    node.signal("-TERM");
    let status = node.child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{}",
        std::fs::read_to_string(env.path("node.stderr")).unwrap()
    );

    let node = Node::start(&env, &config);
    assert_eq!(node.ready["modules_restored"], 1);
    let stats = ok(&admin(&env, &node, &["call", "sensor", "stats"]));
    assert_eq!(
        stats["result"]["threshold"], 42,
        "sealed state survived the restart"
    );

    // kill -9: nothing was being written, and the next start finds everything again.
    let mut node = node;
    node.signal("-KILL");
    let _ = node.child.wait();
    let node = Node::start(&env, &config);
    assert_eq!(node.ready["modules_restored"], 1);
    let stats = ok(&admin(&env, &node, &["call", "sensor", "stats"]));
    assert_eq!(stats["result"]["threshold"], 42);

    // Other bytes under the same name: a different measurement, so no access to the state.
    ok(&admin(&env, &node, &["unload", "sensor"]));
    ok(&admin(
        &env,
        &node,
        &["load", "sensor", c_filter().to_str().unwrap()],
    ));
    let stats = ok(&admin(&env, &node, &["call", "sensor", "stats"]));
    assert_eq!(stats["result"]["threshold"], Value::Null, "{stats}");
    assert_eq!(stats["result"]["readings"], 0);
}
