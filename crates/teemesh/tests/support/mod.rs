#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]
//! Helpers shared by the tests that run real `teemesh node` and `teemesh mqtt broker` processes.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub mod broker;

pub const TEEMESH: &str = env!("CARGO_BIN_EXE_teemesh");

/// Runs `teemesh ARGS` with `$TEEMESH_HOME` set to `home`.
pub fn teemesh(home: &Path, args: &[&str]) -> Output {
    Command::new(TEEMESH)
        .args(args)
        .env("TEEMESH_HOME", home)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Runs `teemesh node --config CONFIG`, which must refuse the configuration (exit 2, no ready
/// line); returns its stderr. `what` names the case in a failure.
pub fn node_refuses(config: &Path, what: &str) -> String {
    let out = Command::new(TEEMESH)
        .args(["node", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
    assert!(out.stdout.is_empty(), "{what}: no ready line: {stderr}");
    stderr
}

/// The stdout of a command that must have succeeded; its exit code and outputs otherwise.
pub fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Starts `teemesh GLOBAL_ARGS node --config CONFIG` with its log in `stderr`, and returns it
/// with its ready line (the first stdout line, JSON).
pub fn spawn_node(
    config: &Path,
    stderr: &Path,
    global_args: &[&str],
) -> (Child, serde_json::Value) {
    let mut child = Command::new(TEEMESH)
        .args(global_args)
        .args(["node", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready = serde_json::from_str(&line).unwrap_or_else(|e| {
        panic!(
            "{}: no ready line ({e}): {line:?}; stderr: {}",
            config.display(),
            std::fs::read_to_string(stderr).unwrap_or_default()
        )
    });
    (child, ready)
}

/// A running `teemesh node`; killed when dropped.
pub struct NodeProcess {
    child: Child,
    pub admin: String,
    pub metrics: String,
    stderr: PathBuf,
}

impl NodeProcess {
    /// Starts node `name` on the simulated TEE in `dir` (config `<name>.toml`, data directory
    /// `<name>-data`), admitting `admin_key` and simulated peers; waits for its ready line.
    pub fn start(dir: &Path, name: &str, admin_key: &str) -> Self {
        std::fs::write(dir.join("sim-policy.toml"), "allow_simulated = true\n").unwrap();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "name = \"{name}\"\ndata_dir = \"{name}-data\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\npeer_policy = \"sim-policy.toml\"\n[admin]\nauthorized_keys = [\"{admin_key}\"]\n"
            ),
        )
        .unwrap();
        let stderr = dir.join(format!("{name}.stderr"));
        let (child, ready) = spawn_node(&config, &stderr, &[]);
        Self {
            child,
            admin: ready["admin"].as_str().unwrap().to_owned(),
            metrics: ready["metrics"].as_str().unwrap().to_owned(),
            stderr,
        }
    }

    pub fn metrics(&self) -> String {
        let mut tcp = std::net::TcpStream::connect(&self.metrics).unwrap();
        tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        tcp.read_to_string(&mut text).unwrap();
        text
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
