#![allow(clippy::unwrap_used)]
//! `teemesh run` on the real binary with a test component: one JSON object on stdout with the
//! measurement, manifest, result, outputs and node-signed module claims (which verify); exit 1
//! when the guest returns an error, 2 with a one-line reason for load, limit and trap errors.

#[path = "../../runtime/tests/guest/mod.rs"]
mod guest;

use std::path::Path;
use std::process::{Command, Output};

use atls::{PeerVerifier, SignedModuleClaims, verify_module_claims};
use attest::{AppraisalPolicy, Endorsements};
use base64::Engine as _;
use serde_json::{Value, json};

fn teemesh(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .arg("run")
        .args(args)
        .env("TEEMESH_HOME", home)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn json_of(out: &Output) -> Value {
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(stdout.trim()).unwrap()
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

/// Exit 2, nothing on stdout, and a last stderr line starting `teemesh:` (returned).
fn error_line(out: &Output) -> String {
    let stderr = stderr_of(out);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let last = stderr.trim().lines().last().unwrap().to_owned();
    assert!(last.starts_with("teemesh: "), "{stderr}");
    last
}

fn write_guest(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("probe.wasm");
    std::fs::write(&path, guest::component()).unwrap();
    path
}

#[test]
fn run_prints_result_measurement_manifest_and_verifiable_claims() {
    let home = tempfile::tempdir().unwrap();
    let module = write_guest(home.path());
    let out = teemesh(
        home.path(),
        &[
            module.to_str().unwrap(),
            "--entry",
            "echo",
            "--arg",
            r#"{"x":1}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert!(stderr_of(&out).contains("SIMULATED"));
    let report = json_of(&out);
    let measurement = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(&module).unwrap()))
    };
    assert_eq!(report["module"], "probe");
    assert_eq!(report["measurement"], measurement);
    assert_eq!(report["entry"], "echo");
    assert_eq!(report["result"], json!({"x": 1}));
    assert_eq!(report["result_encoding"], "json");
    assert_eq!(report["outputs"], json!([]));
    assert_eq!(report["logs"], 0);
    assert_eq!(report["simulated"], true);
    assert_eq!(report["manifest"]["handlers"], json!(["answer"]));

    // The claims verify against the node certificate, with the module's measurement.
    let claims = &report["module_claims"];
    let cert = base64::engine::general_purpose::STANDARD
        .decode(claims["node_certificate"].as_str().unwrap())
        .unwrap();
    let signed: SignedModuleClaims = serde_json::from_value(json!({
        "claims": claims["claims"],
        "signature": claims["signature"],
    }))
    .unwrap();
    let policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    let verified = verify_module_claims(
        &cert,
        &signed,
        &PeerVerifier::new(policy, Endorsements::default()),
    )
    .unwrap();
    assert_eq!(verified.module().measurement.to_hex(), measurement);
    assert_eq!(verified.module().name, "probe");
}

#[test]
fn run_collects_outputs_and_logs() {
    let home = tempfile::tempdir().unwrap();
    let module = write_guest(home.path());
    let path = module.to_str().unwrap();
    let out = teemesh(home.path(), &[path, "--entry", "emit", "--arg", "[1,2]"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = json_of(&out);
    assert_eq!(
        report["outputs"],
        json!([{"output": "out", "data": [1, 2], "encoding": "json"}])
    );
    let out = teemesh(
        home.path(),
        &[
            path, "--entry", "log", "--arg", "\"hi\"", "--name", "chatty",
        ],
    );
    let report = json_of(&out);
    assert_eq!(report["module"], "chatty");
    assert_eq!(report["logs"], 1);
    // Empty result bytes are not JSON: shown as hex.
    assert_eq!(report["result"], "");
    assert_eq!(report["result_encoding"], "hex");
}

#[test]
fn sealed_state_persists_between_runs() {
    let home = tempfile::tempdir().unwrap();
    let module = write_guest(home.path());
    let path = module.to_str().unwrap();
    let state = home.path().join("state");
    let state = state.to_str().unwrap();
    let out = teemesh(
        home.path(),
        &[
            path,
            "--entry",
            "state-set",
            "--arg",
            "\"count=7\"",
            "--state-dir",
            state,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    // The guest's key is the text before `=`: here `"count` (the JSON quote included).
    let out = teemesh(
        home.path(),
        &[
            path,
            "--entry",
            "state-get",
            "--arg",
            "\"count=\"",
            "--state-dir",
            state,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    let report = json_of(&out);
    assert_eq!(report["result"], hex::encode(b"7\""));
    assert_eq!(report["result_encoding"], "hex");
    // Another state directory: another node secret and no state.
    let other = home.path().join("other");
    let out = teemesh(
        home.path(),
        &[
            path,
            "--entry",
            "state-get",
            "--arg",
            "\"count=\"",
            "--state-dir",
            other.to_str().unwrap(),
        ],
    );
    // The guest's error: exit 1, still one JSON object.
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    let report = json_of(&out);
    assert_eq!(report["error"], "absent");
    assert!(
        stderr_of(&out)
            .trim()
            .lines()
            .last()
            .unwrap()
            .contains("absent")
    );
    let out = teemesh(
        home.path(),
        &[
            path,
            "--entry",
            "state-get",
            "--arg",
            "not json",
            "--state-dir",
            state,
        ],
    );
    assert!(error_line(&out).contains("--arg is not JSON"));
    assert!(home.path().join("state/node-sealing-secret").exists());
    let sealed = std::fs::read_dir(home.path().join("state"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sealed")
        })
        .count();
    assert_eq!(sealed, 1);
}

#[test]
fn guest_error_exits_1_with_the_json() {
    let home = tempfile::tempdir().unwrap();
    let module = write_guest(home.path());
    let out = teemesh(home.path(), &[module.to_str().unwrap(), "--entry", "fail"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json_of(&out);
    assert_eq!(report["error"], "guest says no");
    assert_eq!(report["result"], Value::Null);
}

#[test]
fn out_of_range_limits_are_usage_errors_naming_flag_value_and_range() {
    let home = tempfile::tempdir().unwrap();
    let module = write_guest(home.path());
    let path = module.to_str().unwrap();
    for (flag, value, range) in [
        ("--memory-mib", "999999999", "expected 1 to 4096 MiB"),
        ("--memory-mib", "0", "expected 1 to 4096 MiB"),
        ("--fuel", "1000000000001", "expected 1 to 1000000000000"),
        ("--fuel", "0", "expected 1 to 1000000000000"),
    ] {
        let out = teemesh(home.path(), &[path, "--entry", "echo", flag, value]);
        let stderr = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(out.stdout.is_empty(), "nothing on stdout: {stderr}");
        assert!(
            stderr.contains(&format!("invalid value '{value}' for '{flag} <N>'")),
            "{stderr}"
        );
        assert!(stderr.contains(range), "{stderr}");
        assert!(
            !stderr.contains("SIMULATED"),
            "refused before anything runs: {stderr}"
        );
    }
    // The ends of the ranges run.
    for (flag, value) in [
        ("--memory-mib", "4096"),
        ("--memory-mib", "1"),
        ("--fuel", "1000000000000"),
    ] {
        let out = teemesh(home.path(), &[path, "--entry", "echo", flag, value]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{flag} {value}: {}",
            stderr_of(&out)
        );
    }
}

#[test]
fn limits_traps_and_bad_modules_exit_2_with_one_line() {
    let home = tempfile::tempdir().unwrap();
    let module = write_guest(home.path());
    let path = module.to_str().unwrap();

    let out = teemesh(home.path(), &[path, "--entry", "loop", "--fuel", "1000000"]);
    assert!(error_line(&out).contains("ran out of fuel"));

    let out = teemesh(home.path(), &[path, "--entry", "trap"]);
    assert!(error_line(&out).contains("unreachable"));

    let out = teemesh(home.path(), &[path, "--entry", "grow", "--memory-mib", "2"]);
    assert!(error_line(&out).contains("memory limit"));

    let out = teemesh(home.path(), &[path, "--entry", "nope"]);
    assert!(error_line(&out).contains("declares no entry named \"nope\""));

    let core = home.path().join("core.wasm");
    std::fs::write(&core, wat::parse_str("(module)").unwrap()).unwrap();
    let out = teemesh(home.path(), &[core.to_str().unwrap(), "--entry", "run"]);
    let line = error_line(&out);
    assert!(line.contains("core WebAssembly module"), "{line}");
    assert_eq!(
        stderr_of(&out).trim().lines().count(),
        1,
        "no warning before load"
    );
}
