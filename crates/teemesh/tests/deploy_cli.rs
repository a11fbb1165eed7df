#![allow(clippy::unwrap_used)]
//! `teemesh deploy` and `teemesh app` as a user runs them, against three real node processes:
//! the deployment attests nodes and modules, wires the connections, writes a state file with no
//! secret in it (every hex value in it is checked to be a public one), then events flow from an
//! exposed entry on node A through node B to node C. A node whose measurement is not the one the
//! descriptor's policy pins is refused at deploy time and leaves nothing behind.

#[path = "../../runtime/tests/guest/mod.rs"]
mod guest;
mod support;

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{NodeProcess, ok, teemesh};

fn descriptor(nodes: &[&NodeProcess; 3], measurement: &str, node_policy: &str) -> String {
    format!(
        r#"app: relay-chain
appraisal:
  require_reference_values: true
nodes:
  - {{name: node-a, address: "{a}", platform: sim, policy: {node_policy}}}
  - {{name: node-b, address: "{b}", platform: sim, policy: {node_policy}}}
  - {{name: node-c, address: "{c}", platform: sim, policy: {node_policy}}}
modules:
  - {{name: source, wasm: guest.wasm, measurement: "{measurement}", node: node-a, inputs: [in], outputs: [out], requests: [query], entries: [emit, ask]}}
  - {{name: relay, wasm: guest.wasm, measurement: "{measurement}", node: node-b, inputs: [in], outputs: [out], handlers: [answer]}}
  - {{name: sink, wasm: guest.wasm, measurement: "{measurement}", node: node-c, inputs: [in]}}
connections:
  - {{from: source.out, to: relay.in}}
  - {{from: relay.out, to: sink.in, protection: authenticated}}
  - {{from: source.query, to: relay.answer}}
expose: [source.emit, source.ask]
"#,
        a = nodes[0].admin,
        b = nodes[1].admin,
        c = nodes[2].admin,
    )
}

/// Every string in `value`, with its JSON path.
fn strings(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => out.push((path.to_owned(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                strings(item, &format!("{path}.{key}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn deploy_wires_three_nodes_and_the_state_file_holds_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = ok(&teemesh(&home, &["admin", "key"])).trim().to_owned();
    let a = NodeProcess::start(dir.path(), "node-a", &key);
    let b = NodeProcess::start(dir.path(), "node-b", &key);
    let c = NodeProcess::start(dir.path(), "node-c", &key);
    let wasm = guest::component();
    std::fs::write(dir.path().join("guest.wasm"), &wasm).unwrap();
    let measurement = hex::encode(sha2_256(&wasm));

    // A policy pinning another node measurement refuses every node, and nothing is loaded.
    let wrong = format!(
        "{{allow_simulated: true, sim: {{measurement: \"{}\"}}}}",
        "ab".repeat(48)
    );
    std::fs::write(
        dir.path().join("wrong.yaml"),
        descriptor(&[&a, &b, &c], &measurement, &wrong),
    )
    .unwrap();
    let out = teemesh(
        &home,
        &["deploy", dir.path().join("wrong.yaml").to_str().unwrap()],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("node node-a"), "{stderr}");
    assert!(stderr.contains("measurement"), "{stderr}");
    assert!(!home.join("apps/relay-chain.json").exists());

    // The right reference value: the measurement the (simulated) nodes prove, which is the
    // teemesh binary's.
    let sim_policy = dir.path().join("sim-policy.toml");
    let out = teemesh(
        &home,
        &[
            "admin",
            "--node",
            &a.admin,
            "--policy",
            sim_policy.to_str().unwrap(),
            "status",
        ],
    );
    ok(&out);
    let node_measurement = affirmed_measurement(&out);
    let pinned = format!("{{allow_simulated: true, sim: {{measurement: \"{node_measurement}\"}}}}");
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, descriptor(&[&a, &b, &c], &measurement, &pinned)).unwrap();
    let out = teemesh(&home, &["deploy", app.to_str().unwrap()]);
    let summary: Value = serde_json::from_str(&ok(&out)).unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    for n in 1..=6 {
        assert!(progress.contains(&format!("[{n}/6]")), "{progress}");
    }
    assert!(progress.contains("SIMULATED"), "{progress}");
    assert_eq!(summary["deployed"], "relay-chain");
    assert_eq!(summary["simulated"], true);

    // The state file: only public values. Every long hex string is a module measurement, a
    // channel key the nodes' signed claims name, or a node measurement the nodes prove.
    let state_path = home.join("apps/relay-chain.json");
    let state: Value = serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    let mut public = vec![measurement.clone()];
    for (node, module) in [(&a, "source"), (&b, "relay"), (&c, "sink")] {
        let out = teemesh(
            &home,
            &[
                "admin",
                "--node",
                &node.admin,
                "--policy",
                dir.path().join("sim-policy.toml").to_str().unwrap(),
                "claims",
                module,
            ],
        );
        let claims: Value = serde_json::from_str(&ok(&out)).unwrap();
        public.push(claims["claims"]["channel_key"].as_str().unwrap().to_owned());
        public.push(affirmed_measurement(&out));
    }
    let mut values = Vec::new();
    strings(&state, "", &mut values);
    for (path, value) in &values {
        let hexish = value.len() >= 32 && value.chars().all(|c| c.is_ascii_hexdigit());
        assert!(
            !hexish || public.contains(value),
            "{path} = {value} is not a known public value"
        );
        assert!(
            !path.contains("wrapped") && !path.contains("secret") && !path.contains("private"),
            "{path}"
        );
    }
    let modes = std::fs::metadata(&state_path).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&modes.permissions()) & 0o077,
        0
    );

    // Events through the exposed entry arrive at the sink, in order, once.
    for n in 0..5 {
        ok(&teemesh(
            &home,
            &[
                "app",
                "call",
                "source",
                "emit",
                &format!("{{\"reading\":{n}}}"),
            ],
        ));
    }
    let out = teemesh(&home, &["app", "call", "relay", "in", "forged"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not exposed by app relay-chain"));
    let mut received = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.len() < 5 && Instant::now() < deadline {
        for line in ok(&teemesh(&home, &["app", "output", "sink"])).lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["encoding"], "json", "{line}");
            received.push(event["data"]["reading"].as_u64().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(received, (0..5).collect::<Vec<u64>>());

    // A request from node A's module answered by node B's handler, both ways sealed.
    let asked: Value = serde_json::from_str(&ok(&teemesh(
        &home,
        &["app", "call", "source", "ask", "ping"],
    )))
    .unwrap();
    assert_eq!(asked["result_encoding"], "hex", "{asked}");
    assert_eq!(
        hex::decode(asked["result"].as_str().unwrap()).unwrap(),
        b"answer:ping"
    );

    let status: Value = serde_json::from_str(&ok(&teemesh(&home, &["app", "status"]))).unwrap();
    let sink = status["modules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "sink")
        .unwrap();
    let incoming = &sink["connections"][0];
    assert_eq!(incoming["end"], "receiver");
    assert_eq!(incoming["events"], 5);
    assert_eq!(incoming["forged"], 0);
    assert_eq!(incoming["missing"], 0);
    // Disable stops every module and keeps the state file; reset forgets the application, and
    // it can be deployed again (with new keys for new module instances).
    let disabled: Value = serde_json::from_str(&ok(&teemesh(&home, &["app", "disable"]))).unwrap();
    assert_eq!(
        disabled["stopped"].as_array().unwrap().len(),
        3,
        "{disabled}"
    );
    let out = teemesh(&home, &["app", "call", "source", "emit", "{}"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is disabled"));
    ok(&teemesh(&home, &["app", "reset"]));
    assert!(!state_path.exists());
    // This time a timer in node A also feeds the source's unconnected input every 50 ms.
    let with_timer = dir.path().join("app-timer.yaml");
    std::fs::write(
        &with_timer,
        descriptor(&[&a, &b, &c], &measurement, &pinned)
            + "periodic:\n  - {to: source.in, every: 50ms, payload: {tick: true}}\n",
    )
    .unwrap();
    ok(&teemesh(&home, &["deploy", with_timer.to_str().unwrap()]));
    ok(&teemesh(
        &home,
        &["app", "call", "source", "emit", r#"{"reading":7}"#],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut readings, mut ticks) = (Vec::new(), 0);
    while (readings.is_empty() || ticks < 3) && Instant::now() < deadline {
        for line in ok(&teemesh(&home, &["app", "output", "sink"])).lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            if event["data"]["tick"] == true {
                ticks += 1;
            } else {
                readings.push(event["data"]["reading"].as_u64().unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(readings, [7]);
    assert!(ticks >= 3, "{ticks} periodic events arrived");

    // The nodes' logs, like the state file, hold no long hex value but public ones (and the
    // admin key's hash, which names the operator in every request's log line).
    public.push(key.trim_start_matches("sha256:").to_owned());
    for node in [&a, &b, &c] {
        let log = node.log();
        for line in log.lines() {
            for token in line.split(|c: char| !c.is_ascii_hexdigit()) {
                assert!(
                    token.len() < 32 || public.iter().any(|p| p == token),
                    "unknown hex value in a node log: {token} in {line}"
                );
            }
        }
    }
}

/// The node measurement `teemesh admin` reports in its "affirmed" line.
fn affirmed_measurement(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .split("measurement ")
        .nth(1)
        .and_then(|rest| rest.split([',', ' ']).next())
        .unwrap()
        .to_owned()
}

fn sha2_256(bytes: &[u8]) -> [u8; 32] {
    attest::Digest256::of(bytes).0
}
