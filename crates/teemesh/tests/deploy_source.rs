#![allow(clippy::unwrap_used)]
//! `teemesh deploy` of modules given as `source:`: `examples/apps/sensor-alarm-source.yaml`
//! (a Rust and two C modules) is built with scripts/build-module.sh and deployed on three real
//! nodes, and every built component has the measurement committed in `examples/SHA256SUMS`.
//! Twins: a pinned measurement the build does not give is refused, a compile error names the
//! module and shows the compiler's output, a missing toolchain names what to install.
//!
//! The `source_build_*` tests need the Debian Wasm toolchain (`bash scripts/build-examples.sh
//! --install`, which scripts/test.sh runs first); without it they fail, naming what is missing.
//! Builds are cached in `target/tmp/source-builds` across runs.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{NodeProcess, TEEMESH};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .canonicalize()
        .unwrap()
}

fn build_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("source-builds")
}

fn teemesh(home: &Path, args: &[&str]) -> Output {
    Command::new(TEEMESH)
        .args(args)
        .env("TEEMESH_HOME", home)
        .env("TEEMESH_BUILD_DIR", build_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}\n(building modules from source needs the Debian Wasm toolchain: bash scripts/build-examples.sh --install)",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The committed measurement of `examples/<component>`.
fn committed_measurement(component: &str) -> String {
    let sums = std::fs::read_to_string(examples().join("SHA256SUMS")).unwrap();
    sums.lines()
        .find_map(|line| line.strip_suffix(&format!("  {component}")))
        .unwrap_or_else(|| panic!("{component} is not in examples/SHA256SUMS"))
        .to_owned()
}

/// A one-module descriptor whose module `name` is built from `source`; no node is reached, since
/// modules are built before any node is contacted.
fn one_module(name: &str, source: &Path, language: &str, measurement: &str) -> String {
    format!(
        "app: {name}\nappraisal: {{require_reference_values: false}}\nnodes:\n  - {{name: n, address: \"127.0.0.1:9\", platform: sim, policy: {{allow_simulated: true}}}}\nmodules:\n  - {{name: {name}, source: \"{}\", language: {language}, measurement: \"{measurement}\", node: n}}\n",
        source.display()
    )
}

#[test]
fn source_build_deploys_the_example_with_the_committed_measurements() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let key = ok(&teemesh(&home, &["admin", "key"])).trim().to_owned();
    let nodes = [
        NodeProcess::start(dir.path(), "node-a", &key),
        NodeProcess::start(dir.path(), "node-b", &key),
        NodeProcess::start(dir.path(), "node-c", &key),
    ];
    // The example as it is, but for the addresses of this test's nodes and its relative source
    // paths, made absolute since the copy lives elsewhere.
    let mut descriptor =
        std::fs::read_to_string(examples().join("apps/sensor-alarm-source.yaml")).unwrap();
    for (port, node) in ["7401", "7402", "7403"].iter().zip(&nodes) {
        descriptor = descriptor.replace(&format!("127.0.0.1:{port}"), &node.admin);
    }
    let descriptor =
        descriptor.replace("source: ../", &format!("source: {}/", examples().display()));
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, descriptor).unwrap();

    let started = Instant::now();
    let out = teemesh(&home, &["deploy", app.to_str().unwrap()]);
    let summary: Value = serde_json::from_str(&ok(&out)).unwrap();
    let progress = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "deploy from source: {:.1} s\n{progress}",
        started.elapsed().as_secs_f64()
    );
    for (module, component) in [
        ("sensor", "sensor-driver/sensor-driver-rust.wasm"),
        ("filter", "sensor-filter/sensor-filter-c.wasm"),
        ("actuator", "actuator/actuator-c.wasm"),
    ] {
        assert!(
            progress.contains(&format!("built {module} in ")),
            "{progress}"
        );
        let deployed = summary["modules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == module)
            .unwrap();
        let measurement = committed_measurement(component);
        assert_eq!(deployed["measurement"], measurement.as_str(), "{module}");
        assert!(
            build_dir()
                .join(format!("components/{measurement}.wasm"))
                .is_file()
        );
    }

    // The built modules run: a reading injected at the sensor crosses the filter's threshold, and
    // the actuator acts on the filter's authentic alert.
    ok(&teemesh(
        &home,
        &["app", "call", "sensor", "set", r#"{"value": 35}"#],
    ));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state: Value =
            serde_json::from_str(&ok(&teemesh(&home, &["app", "call", "actuator", "state"])))
                .unwrap();
        if state["result"]["actions"].as_u64().unwrap_or(0) >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the actuator never acted: {state}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn source_build_refuses_a_pinned_measurement_the_build_does_not_give() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app.yaml");
    let wrong = "00".repeat(32);
    std::fs::write(
        &app,
        one_module(
            "actuator-pinned",
            &examples().join("actuator/c"),
            "c",
            &wrong,
        ),
    )
    .unwrap();
    let out = teemesh(&dir.path().join("home"), &["deploy", app.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let built = committed_measurement("actuator/actuator-c.wasm");
    assert!(
        stderr.contains(&format!(
            "module actuator-pinned: the file has measurement {built}, the descriptor pins {wrong}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("built actuator-pinned in "), "{stderr}");
}

#[test]
fn source_build_failure_names_the_module_and_shows_the_compiler() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("broken");
    std::fs::create_dir(&source).unwrap();
    let shared = examples().join("sensor-filter/c");
    std::fs::write(
        source.join("build.conf"),
        format!(
            "bindings {}\ninclude {}\nsource broken.c\n",
            shared.join("bindings").display(),
            shared.display()
        ),
    )
    .unwrap();
    std::fs::write(
        source.join("broken.c"),
        "int broken(void) { return undefined_thing; }\n",
    )
    .unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(&app, one_module("broken", &source, "c", &"00".repeat(32))).unwrap();
    let out = teemesh(&dir.path().join("home"), &["deploy", app.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("use of undeclared identifier 'undefined_thing'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("teemesh: module broken: building its c source "),
        "{stderr}"
    );
    assert!(stderr.contains("logs/broken.log"), "{stderr}");
}

#[test]
fn a_missing_toolchain_is_named_with_what_installs_it() {
    // A PATH with bash and nothing else, and an empty cargo home: no clang-14, no wasm-ld-14,
    // no wasm-tools.
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let bash = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|dir| dir.join("bash"))
        .find(|path| path.is_file())
        .unwrap();
    std::os::unix::fs::symlink(bash, bin.join("bash")).unwrap();
    let app = dir.path().join("app.yaml");
    std::fs::write(
        &app,
        one_module(
            "lonely",
            &examples().join("actuator/c"),
            "c",
            &"00".repeat(32),
        ),
    )
    .unwrap();
    let out = Command::new(TEEMESH)
        .args(["deploy", app.to_str().unwrap()])
        .env("TEEMESH_HOME", dir.path().join("home"))
        .env("PATH", &bin)
        .env("CARGO_HOME", dir.path().join("cargo-home"))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for expected in [
        "teemesh: module lonely: cannot build its c source: the Wasm toolchain is incomplete: ",
        "missing: clang-14 (Debian package clang)",
        "missing: wasm-ld-14 (Debian package lld)",
        "missing: wasm-tools 1.254.2 (cargo install --locked ",
        "install with: apt-get install clang lld",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    }
}
