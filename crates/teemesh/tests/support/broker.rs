//! A `teemesh mqtt broker` process for the MQTT tests.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use super::TEEMESH;

/// A running `teemesh mqtt broker`; killed (SIGKILL) when dropped.
pub struct BrokerProcess {
    pub child: Child,
    /// `(kind, host:port)` of each listener, from the broker's first stdout line.
    pub listeners: Vec<(String, String)>,
}

impl BrokerProcess {
    /// Starts `teemesh mqtt broker ARGS` and waits for the first stdout line (the bound
    /// listeners). The broker's log goes to this process's stderr when `show_log`.
    pub fn start(args: &[&str], show_log: bool) -> Self {
        let mut child = Command::new(TEEMESH)
            .args(["mqtt", "broker"])
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(if show_log {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start teemesh mqtt broker");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the broker's first line");
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("first line {line:?} is not JSON: {e}"));
        let listeners = ready["listeners"]
            .as_array()
            .unwrap_or_else(|| panic!("no listeners in {line}"))
            .iter()
            .map(|l| {
                (
                    l["kind"].as_str().expect("kind").to_owned(),
                    l["address"].as_str().expect("address").to_owned(),
                )
            })
            .collect();
        Self { child, listeners }
    }

    /// The `host:port` of the first listener of `kind` (tcp, tls, atls).
    pub fn address(&self, kind: &str) -> String {
        self.listeners
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, address)| address.clone())
            .unwrap_or_else(|| panic!("no {kind} listener in {:?}", self.listeners))
    }

    /// The port of the first listener of `kind`.
    pub fn port(&self, kind: &str) -> String {
        let address = self.address(kind);
        address.rsplit_once(':').expect("host:port").1.to_owned()
    }

    /// kill -9: no chance to flush or close anything.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("wait");
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
