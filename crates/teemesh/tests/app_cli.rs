#![allow(clippy::unwrap_used)]
//! `teemesh app check` on the real binary: the example descriptor is summarised (exit 0); a bad
//! one gives one line with file:line:column, field and reason (exit 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn app_check(descriptor: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args(["app", "check"])
        .arg(descriptor)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn the_example_is_summarised() {
    let out = app_check(&repo().join("examples/apps/sensor-alarm.yaml"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.starts_with("sensor-alarm: 3 nodes, 3 modules, 2 connections"),
        "{stdout}"
    );
    for line in [
        "  node-b  tdx  10.0.0.12:7400         policy policies/tdx.toml",
        "  sensor    on node-a (sgx)  wasm ../sensor-driver/sensor-driver-rust.wasm (measurement matches)",
        "  filter    on node-b (tdx)  wasm ../sensor-filter/sensor-filter-rust.wasm (measurement matches)",
        "  actuator  on node-c (snp)  wasm ../actuator/actuator-c.wasm (measurement matches)",
        "  sensor.reading -> filter.reading  encrypted",
        "  filter.alert -> actuator.alert  authenticated",
        "exposed entries: filter.configure, filter.stats, sensor.stats, actuator.state",
        "periodic: sensor.tick every 1000 ms",
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "missing {line:?} in\n{stdout}"
        );
    }
}

#[test]
fn simulated_nodes_are_announced() {
    let out = app_check(&repo().join("examples/apps/sensor-alarm-sim.yaml"));
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("node node-a is SIMULATED"), "{stderr}");
}

#[test]
fn a_bad_descriptor_is_one_line_with_its_position() {
    let path = repo().join("testdata/bad-descriptors/unknown-node.yaml");
    let out = app_check(&path);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "teemesh: {}:22:11: modules[1].node: no node named \"nodeB\" (nodes: node-a, node-c)\n",
        path.display()
    );
    assert_eq!(stderr, expected);
}

#[test]
fn a_component_that_does_not_match_its_measurement_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo().join("examples/apps/sensor-alarm-sim.yaml"))
        .unwrap()
        .replace("../sensor-filter/sensor-filter-c.wasm", "filter.wasm");
    std::fs::write(dir.path().join("filter.wasm"), b"not the filter").unwrap();
    let path = dir.path().join("app.yaml");
    std::fs::write(&path, example).unwrap();
    let out = app_check(&path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(":24:18: modules[1].measurement: filter.wasm has measurement "),
        "{stderr}"
    );
}
