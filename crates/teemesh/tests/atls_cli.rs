//! `teemesh atls serve` and `teemesh attest peer` on the real binary: who gets a session, what
//! the client prints, and that an ordinary TLS client (openssl s_client) is admitted only where
//! the listener allows unattested clients.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `teemesh atls serve`, killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(home: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_teemesh"))
            .args([
                "atls",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--platform",
                "sim",
            ])
            .args(extra)
            .env("TEEMESH_HOME", home)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut first)
            .unwrap();
        let addr = first.trim().to_owned();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "first stdout line is the address: {first:?}"
        );
        Self { child, addr }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn peer(home: &Path, addr: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args(["attest", "peer", addr])
        .args(extra)
        .env("TEEMESH_HOME", home)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn write_policy(home: &Path, name: &str, toml: &str) -> String {
    let path = home.join(name);
    std::fs::write(&path, toml).unwrap();
    path.display().to_string()
}

#[test]
fn peer_prints_the_servers_attestation_only_when_the_policy_allows_it() {
    let home = tempfile::tempdir().unwrap();
    let sim = write_policy(home.path(), "sim.toml", "allow_simulated = true\n");
    let server = Server::start(home.path(), &["--policy", &sim]);

    let out = peer(home.path(), &server.addr, &["--policy", &sim]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("SIMULATED"),
        "the simulation is announced: {stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "{stdout}");
    let j: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(j["platform"], "sim");
    assert_eq!(j["simulated"], true);
    assert_eq!(j["fresh_in_session"], true);
    assert_eq!(j["node_name"], "teemesh-server");
    assert_eq!(j["measurement"].as_str().unwrap().len(), 96);
    assert!(
        j["report_data"]
            .as_str()
            .unwrap()
            .ends_with(&"00".repeat(32))
    );
    assert!(j["result_token"].as_str().unwrap().split('.').count() == 3);

    // The same server under the default policy: refused, exit 1, the reason on the last line.
    let out = peer(home.path(), &server.addr, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim().lines().last().unwrap();
    assert!(
        last.starts_with("teemesh: refused:") && last.contains("simulated"),
        "{stderr}"
    );

    // A wrong reference value for the measurement: refused with the mismatch named.
    let wrong = write_policy(
        home.path(),
        "wrong.toml",
        &format!(
            "allow_simulated = true\n[sim]\nmeasurement = \"{}\"\n",
            "ab".repeat(48)
        ),
    );
    let out = peer(home.path(), &server.addr, &["--policy", &wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("reference value mismatch"));
}

#[test]
fn a_server_requiring_attestation_refuses_a_client_its_policy_rejects() {
    let home = tempfile::tempdir().unwrap();
    let sim = write_policy(home.path(), "sim.toml", "allow_simulated = true\n");
    let strict = write_policy(
        home.path(),
        "strict.toml",
        &format!(
            "allow_simulated = true\n[sim]\nmeasurement = \"{}\"\n",
            "cd".repeat(48)
        ),
    );
    let server = Server::start(
        home.path(),
        &["--policy", &strict, "--require-client-attestation"],
    );
    let out = peer(home.path(), &server.addr, &["--policy", &sim]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused"));
}

/// Runs `openssl s_client` against `addr`, sends a line and returns everything it printed on
/// stdout within a few seconds (it does not exit by itself while the server keeps the session).
fn s_client_echo(addr: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-quiet", "-verify_quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl is installed (scripts/test.sh installs it)");
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello teemesh\n")
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 256];
        let mut seen = Vec::new();
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(13).any(|w| w == b"hello teemesh") {
                break;
            }
        }
        let _ = tx.send(seen);
    });
    let seen = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn openssl_s_client_connects_only_where_unattested_clients_are_allowed() {
    let home = tempfile::tempdir().unwrap();
    let open = Server::start(home.path(), &[]);
    assert!(s_client_echo(&open.addr).contains("hello teemesh"));

    let closed = Server::start(home.path(), &["--require-client-attestation"]);
    assert!(!s_client_echo(&closed.addr).contains("hello teemesh"));
}
