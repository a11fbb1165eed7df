//! A module's ports (its manifest, as `describe` returns it) and the embedder's side of the
//! wiring: where emitted events go ([`EventSink`]) and who answers requests ([`RequestRouter`]).

use std::fmt;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Most ports of one kind a module may declare.
pub const MAX_PORTS_PER_KIND: usize = 256;
/// Longest port name, in bytes.
pub const MAX_PORT_NAME_LEN: usize = 128;

/// The kinds of port a manifest declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortKind {
    /// Incoming one-way events.
    Input,
    /// Outgoing one-way events.
    Output,
    /// Outgoing requests.
    Request,
    /// Incoming requests.
    Handler,
    /// Called by the deployer or a user.
    Entry,
}

impl PortKind {
    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::Request => "request",
            Self::Handler => "handler",
            Self::Entry => "entry",
        }
    }
}

impl fmt::Display for PortKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ports a module declares (the WIT `manifest` record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Incoming one-way events.
    pub inputs: Vec<String>,
    /// Outgoing one-way events.
    pub outputs: Vec<String>,
    /// Outgoing requests.
    pub requests: Vec<String>,
    /// Incoming requests.
    pub handlers: Vec<String>,
    /// Entries.
    pub entries: Vec<String>,
}

impl Manifest {
    /// The names of one kind of port.
    pub fn ports(&self, kind: PortKind) -> &[String] {
        match kind {
            PortKind::Input => &self.inputs,
            PortKind::Output => &self.outputs,
            PortKind::Request => &self.requests,
            PortKind::Handler => &self.handlers,
            PortKind::Entry => &self.entries,
        }
    }

    /// True when the module declares a port of `kind` named `name`.
    pub fn declares(&self, kind: PortKind, name: &str) -> bool {
        self.ports(kind).iter().any(|p| p == name)
    }

    /// The names of one kind, comma-separated (for messages); `none` when empty.
    pub fn list(&self, kind: PortKind) -> String {
        let ports = self.ports(kind);
        if ports.is_empty() {
            "none".to_owned()
        } else {
            ports.join(", ")
        }
    }

    /// Checks what a guest declared: names non-empty, at most [`MAX_PORT_NAME_LEN`] bytes of
    /// printable characters, unique within a kind, at most [`MAX_PORTS_PER_KIND`] per kind.
    pub fn validate(&self) -> Result<(), String> {
        for kind in [
            PortKind::Input,
            PortKind::Output,
            PortKind::Request,
            PortKind::Handler,
            PortKind::Entry,
        ] {
            let ports = self.ports(kind);
            if ports.len() > MAX_PORTS_PER_KIND {
                return Err(format!(
                    "{} {kind}s declared, at most {MAX_PORTS_PER_KIND} allowed",
                    ports.len()
                ));
            }
            for (i, name) in ports.iter().enumerate() {
                if name.is_empty() || name.len() > MAX_PORT_NAME_LEN {
                    return Err(format!(
                        "{kind} name {name:?} must have 1 to {MAX_PORT_NAME_LEN} bytes"
                    ));
                }
                if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(format!(
                        "{kind} name {:?} contains whitespace or control characters",
                        name.escape_debug().to_string()
                    ));
                }
                if ports[..i].contains(name) {
                    return Err(format!("{kind} {name:?} is declared twice"));
                }
            }
        }
        Ok(())
    }
}

/// Where a module's emitted events go. The runtime has already checked that the output is
/// declared; the embedder routes it (to other modules' inputs, over the network) or stores it.
/// Returning `Err` hands the message back to the guest as `emit-output`'s error.
pub trait EventSink: Send + Sync {
    /// Module `module` emitted `data` on its output `output`.
    fn emit(&self, module: &str, output: &str, data: &[u8]) -> Result<(), String>;
}

/// Who answers a module's requests. The runtime has already checked that the request port is
/// declared; the embedder calls the handler it is connected to (typically another module's
/// [`crate::LoadedModule::handle_request`]) and returns its response, or `Err` with a reason.
///
/// The call is synchronous and made while the requesting module is inside a host call: a router
/// that routes a module to itself through a lock it already holds deadlocks, so wire cycles
/// through a queue instead.
pub trait RequestRouter: Send + Sync {
    /// Module `module` sends `data` on its request port `request`.
    fn route(&self, module: &str, request: &str, data: &[u8]) -> Result<Vec<u8>, String>;
}

/// An event a module emitted, as [`CollectingSink`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedEvent {
    /// The emitting module.
    pub module: String,
    /// Its output port.
    pub output: String,
    /// The payload.
    pub data: Vec<u8>,
}

/// Keeps every emitted event in memory (for `teemesh run` and tests).
#[derive(Debug, Default)]
pub struct CollectingSink {
    events: Mutex<Vec<EmittedEvent>>,
}

impl CollectingSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the events collected so far.
    pub fn take(&self) -> Vec<EmittedEvent> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl EventSink for CollectingSink {
    fn emit(&self, module: &str, output: &str, data: &[u8]) -> Result<(), String> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(EmittedEvent {
                module: module.to_owned(),
                output: output.to_owned(),
                data: data.to_vec(),
            });
        Ok(())
    }
}

/// Drops every event (an output nobody listens to), logging it at debug level.
#[derive(Debug, Default, Clone, Copy)]
pub struct DiscardSink;

impl EventSink for DiscardSink {
    fn emit(&self, module: &str, output: &str, data: &[u8]) -> Result<(), String> {
        tracing::debug!(
            module,
            output,
            bytes = data.len(),
            "event dropped: output not connected"
        );
        Ok(())
    }
}

/// Answers every request with an error: no request port is connected.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unconnected;

impl RequestRouter for Unconnected {
    fn route(&self, module: &str, request: &str, _data: &[u8]) -> Result<Vec<u8>, String> {
        Err(format!(
            "request port {request:?} of module {module:?} is not connected to any handler"
        ))
    }
}

/// The time modules read through `now-nanos`. The node uses [`SystemClock`]; a replay or a test
/// supplies its own so that a module's outputs are reproducible.
pub trait HostClock: Send + Sync {
    /// Nanoseconds since the Unix epoch.
    fn now_nanos(&self) -> u64;
}

/// The host's wall clock (0 before 1970, saturating in 2554).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl HostClock for SystemClock {
    fn now_nanos(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}
