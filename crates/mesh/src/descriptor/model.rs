//! The descriptor's typed structures, exactly as written in YAML (`deny_unknown_fields`
//! everywhere, so a typo, or a stray `key:`, is an error rather than silently ignored). Values
//! with a format of their own (names, addresses, measurements, port references, intervals) are
//! newtypes checked while they are read.

use std::fmt;
use std::path::PathBuf;

use attest::policy::AppraisalPolicy;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// An application descriptor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// The application's name.
    pub app: Name,
    /// Application-wide appraisal rules.
    #[serde(default)]
    pub appraisal: AppraisalRules,
    /// The nodes the application runs on.
    pub nodes: Vec<NodeSpec>,
    /// The modules and where they run.
    pub modules: Vec<ModuleSpec>,
    /// The MQTT brokers that topic ends of connections name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerSpec>,
    /// Output→input and request→handler connections between modules, and output→topic and
    /// topic→input connections through a broker.
    #[serde(default)]
    pub connections: Vec<ConnectionSpec>,
    /// The entries (`module.entry`) a user may call and the handlers (`module.handler`) a user
    /// may send requests to.
    #[serde(default)]
    pub expose: Vec<PortRef>,
    /// Events fed to module inputs on a timer.
    #[serde(default)]
    pub periodic: Vec<PeriodicSpec>,
}

/// Application-wide appraisal rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppraisalRules {
    /// Every node hosting a module must pin reference values for its platform in its policy.
    /// Default true; false only for development (e.g. simulated nodes, whose measurement is
    /// the hash of whichever teemesh binary runs).
    #[serde(default = "yes")]
    pub require_reference_values: bool,
}

fn yes() -> bool {
    true
}

impl Default for AppraisalRules {
    fn default() -> Self {
        Self {
            require_reference_values: true,
        }
    }
}

/// A node: where it listens, what TEE it must prove, and the policy its evidence is appraised
/// under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// The node's name, unique in the descriptor.
    pub name: Name,
    /// `host:port` of its attested TLS endpoint.
    pub address: Address,
    /// The platform its evidence must come from.
    pub platform: Platform,
    /// Its appraisal policy, inline or as a TOML file.
    pub policy: PolicySpec,
}

/// The TEE platform a node must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Intel SGX (Gramine).
    Sgx,
    /// Intel TDX.
    Tdx,
    /// AMD SEV-SNP.
    Snp,
    /// The simulated TEE: no hardware protection, for development.
    Sim,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sgx => "sgx",
            Self::Tdx => "tdx",
            Self::Snp => "snp",
            Self::Sim => "sim",
        })
    }
}

/// A node's appraisal policy: the attest policy keys inline, or the path of a policy TOML file
/// (relative to the descriptor).
#[derive(Debug, Clone, PartialEq)]
pub enum PolicySpec {
    /// The policy, written in the descriptor.
    Inline(Box<AppraisalPolicy>),
    /// A policy TOML file, read when the descriptor is loaded.
    File(PathBuf),
}

impl Serialize for PolicySpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Inline(policy) => policy.serialize(s),
            Self::File(path) => path.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PolicySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PolicyVisitor;
        impl<'de> Visitor<'de> for PolicyVisitor {
            type Value = PolicySpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of policy keys or the path of a policy TOML file")
            }
            fn visit_str<E: de::Error>(self, path: &str) -> Result<PolicySpec, E> {
                if path.is_empty() {
                    return Err(E::custom("the policy path is empty"));
                }
                Ok(PolicySpec::File(PathBuf::from(path)))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<PolicySpec, A::Error> {
                AppraisalPolicy::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|policy| PolicySpec::Inline(Box::new(policy)))
            }
        }
        d.deserialize_any(PolicyVisitor)
    }
}

/// A module: its code, where it runs, its ports, its configuration and its reference value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    /// The module's name, unique in the descriptor.
    pub name: Name,
    /// The compiled component (relative to the descriptor); or give `source` and `language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<PathBuf>,
    /// The source directory the deployer builds (relative to the descriptor), with
    /// `scripts/build-module.sh`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<PathBuf>,
    /// The source's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// The node it runs on.
    pub node: Name,
    /// Reference value: SHA-256 of the component's bytes (64 hex digits). Optional; when
    /// given, the module's code must have exactly this measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement: Option<ModuleMeasurement>,
    /// Declared inputs (one-way events in).
    #[serde(default)]
    pub inputs: Vec<Name>,
    /// Declared outputs (one-way events out).
    #[serde(default)]
    pub outputs: Vec<Name>,
    /// Declared requests (outgoing request/response).
    #[serde(default)]
    pub requests: Vec<Name>,
    /// Declared handlers (incoming request/response).
    #[serde(default)]
    pub handlers: Vec<Name>,
    /// Declared entries (called by the deployer or a user).
    #[serde(default)]
    pub entries: Vec<Name>,
    /// Free-form configuration handed to the module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
}

/// Where a module's code comes from, once checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleCode<'a> {
    /// A compiled component.
    Wasm(&'a std::path::Path),
    /// A source directory to build.
    Source {
        /// The directory.
        dir: &'a std::path::Path,
        /// Its language.
        language: Language,
    },
}

impl ModuleSpec {
    /// The module's code; `None` only before validation (a valid descriptor has exactly one).
    pub fn code(&self) -> Option<ModuleCode<'_>> {
        match (&self.wasm, &self.source, self.language) {
            (Some(wasm), None, None) => Some(ModuleCode::Wasm(wasm)),
            (None, Some(dir), Some(language)) => Some(ModuleCode::Source { dir, language }),
            _ => None,
        }
    }

    /// The kind of the port named `port`, if the module declares it.
    pub fn port_kind(&self, port: &str) -> Option<PortKind> {
        PortKind::ALL
            .into_iter()
            .find(|&kind| self.ports(kind).iter().any(|p| p.as_str() == port))
    }

    /// The declared ports of one kind.
    pub fn ports(&self, kind: PortKind) -> &[Name] {
        match kind {
            PortKind::Input => &self.inputs,
            PortKind::Output => &self.outputs,
            PortKind::Request => &self.requests,
            PortKind::Handler => &self.handlers,
            PortKind::Entry => &self.entries,
        }
    }
}

/// A module source language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Rust (cargo, wasm32-wasip1 + component adapter).
    Rust,
    /// C (clang-14 for wasm32-wasi against `wit-bindgen c` bindings; the directory's
    /// `build.conf` names them, the headers and the sources).
    C,
}

/// The five kinds of module port (`wit/module.wit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortKind {
    /// One-way events in.
    Input,
    /// One-way events out.
    Output,
    /// Outgoing request/response.
    Request,
    /// Incoming request/response.
    Handler,
    /// Called by the deployer or a user.
    Entry,
}

impl PortKind {
    /// All kinds, in the order a module declares them.
    pub const ALL: [Self; 5] = [
        Self::Input,
        Self::Output,
        Self::Request,
        Self::Handler,
        Self::Entry,
    ];

    /// The YAML field that lists this kind.
    pub fn field(self) -> &'static str {
        match self {
            Self::Input => "inputs",
            Self::Output => "outputs",
            Self::Request => "requests",
            Self::Handler => "handlers",
            Self::Entry => "entries",
        }
    }

    /// "an input", "an output", ...
    pub fn with_article(self) -> &'static str {
        match self {
            Self::Input => "an input",
            Self::Output => "an output",
            Self::Request => "a request",
            Self::Handler => "a handler",
            Self::Entry => "an entry",
        }
    }
}

/// A connection between two modules' ports, or between a module's port and an MQTT topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// An output or a request (`module.port`), or a topic filter a module's input subscribes to.
    pub from: EndSpec,
    /// An input (from an output or a topic) or a handler (from a request), `module.port`; or
    /// the topic an output publishes on.
    pub to: EndSpec,
    /// How events on it are protected end to end (default `encrypted`). Not for a connection
    /// with a topic end: the broker reads what it routes (attested TLS protects each hop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protection: Option<Protection>,
}

impl ConnectionSpec {
    /// The protection of a connection between two modules (the default when not written).
    pub fn protection(&self) -> Protection {
        self.protection.unwrap_or_default()
    }
}

/// One end of a connection: a module's port, or a topic on a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndSpec {
    /// `module.port`.
    Port(PortRef),
    /// `{ broker: NAME, topic: TOPIC, qos: 0|1 }`.
    Topic(TopicEnd),
}

impl EndSpec {
    /// The port, if this end is one.
    pub fn port(&self) -> Option<&PortRef> {
        match self {
            Self::Port(port) => Some(port),
            Self::Topic(_) => None,
        }
    }

    /// The topic end, if this end is one.
    pub fn topic(&self) -> Option<&TopicEnd> {
        match self {
            Self::Port(_) => None,
            Self::Topic(topic) => Some(topic),
        }
    }
}

impl fmt::Display for EndSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Port(port) => port.fmt(f),
            Self::Topic(topic) => topic.fmt(f),
        }
    }
}

impl Serialize for EndSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Port(port) => port.serialize(s),
            Self::Topic(topic) => topic.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for EndSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EndVisitor;
        impl<'de> Visitor<'de> for EndVisitor {
            type Value = EndSpec;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("module.port, or a topic end {broker, topic, qos}")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<EndSpec, E> {
                PortRef::parse(text).map(EndSpec::Port).map_err(E::custom)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<EndSpec, A::Error> {
                TopicEnd::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(EndSpec::Topic)
            }
        }
        d.deserialize_any(EndVisitor)
    }
}

/// A topic on an MQTT broker, as one end of a connection: an output publishes on the topic
/// name; an input subscribes to the topic filter (wildcards allowed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicEnd {
    /// A broker of the descriptor's `brokers`.
    pub broker: Name,
    /// The topic name (publish) or filter (subscribe); checked by `mqtt::topic`.
    pub topic: String,
    /// The quality of service, 0 or 1 (default 1: at least once, resent until acknowledged).
    #[serde(default = "qos_at_least_once")]
    pub qos: u8,
}

fn qos_at_least_once() -> u8 {
    1
}

impl fmt::Display for TopicEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic \"{}\" on {} (qos {})",
            self.topic.escape_default(),
            self.broker,
            self.qos
        )
    }
}

/// An MQTT broker that topic ends name: a teemesh broker's attested TLS listener. Each node
/// appraises it under its own peer policy, as it appraises other nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSpec {
    /// The broker's name, unique in the descriptor.
    pub name: Name,
    /// `host:port` of its attested TLS (`atls`) listener.
    pub address: Address,
}

/// End-to-end protection of a connection's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protection {
    /// Confidential and authentic (AEAD over the payload).
    #[default]
    Encrypted,
    /// Authentic only: the payload travels in the clear, the tag covers it.
    Authenticated,
}

impl fmt::Display for Protection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Encrypted => "encrypted",
            Self::Authenticated => "authenticated",
        })
    }
}

/// An event fed to a module input on a timer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodicSpec {
    /// The input, `module.input`.
    pub to: PortRef,
    /// The period: `500ms`, `2s`, `1m` (10 ms to 24 h).
    pub every: Interval,
    /// The payload, sent as its compact JSON text (none: an empty payload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

impl PeriodicSpec {
    /// The bytes each event carries.
    pub fn payload_bytes(&self) -> Vec<u8> {
        self.payload
            .as_ref()
            .map(|v| v.to_string().into_bytes())
            .unwrap_or_default()
    }
}

/// Implements `Serialize` as a string and `Deserialize` through `FromStr`-like parsing.
macro_rules! string_newtype {
    ($ty:ident, $parse:path) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $parse(&text).map_err(de::Error::custom)
            }
        }
    };
}

/// A node, module or port name: 1 to 64 of `A-Z a-z 0-9 - _`, so `module.port` is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// The pattern a name must match (also in the JSON Schema).
pub const NAME_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

impl Name {
    /// Checks a name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(format!(
                "\"{}\" is not a name (1 to 64 of A-Z a-z 0-9 - _)",
                text.escape_default()
            ))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_newtype!(Name, Name::parse);

/// `host:port`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a port 1..=65535.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// The host, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Address {
    /// Checks an address.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "\"{}\" is not host:port (a DNS name, IPv4 or [IPv6] and a port 1-65535)",
                text.escape_default()
            )
        };
        let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().ok().filter(|&p| p != 0).ok_or_else(bad)?;
        let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            v6
        } else {
            let dns = (1..=253).contains(&host.len())
                && host.split('.').all(|label| {
                    (1..=63).contains(&label.len())
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !dns {
                return Err(bad());
            }
            host
        };
        Ok(Self {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

string_newtype!(Address, Address::parse);

/// A module's reference value: SHA-256 of its component bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleMeasurement(pub [u8; 32]);

impl ModuleMeasurement {
    /// Checks 64 hex digits.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut bytes = [0u8; 32];
        if text.len() != 64 {
            return Err(format!(
                "a measurement is 64 hex digits (SHA-256), found {} characters",
                text.chars().count()
            ));
        }
        hex::decode_to_slice(text, &mut bytes).map_err(|_| {
            "a measurement is 64 hex digits (SHA-256), found a non-hex character".to_owned()
        })?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for ModuleMeasurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

string_newtype!(ModuleMeasurement, ModuleMeasurement::parse);

/// A port of a module, written `module.port`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortRef {
    /// The module's name.
    pub module: Name,
    /// The port's name.
    pub port: Name,
}

impl PortRef {
    /// Checks `module.port`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (module, port) = text
            .split_once('.')
            .ok_or_else(|| format!("\"{}\" is not module.port", text.escape_default()))?;
        Ok(Self {
            module: Name::parse(module)?,
            port: Name::parse(port)?,
        })
    }
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.module, self.port)
    }
}

string_newtype!(PortRef, PortRef::parse);

/// A timer period, 10 ms to 24 h, written `250ms`, `5s` or `1m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(std::time::Duration);

impl Interval {
    /// The shortest period accepted.
    pub const MIN: std::time::Duration = std::time::Duration::from_millis(10);
    /// The longest period accepted.
    pub const MAX: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

    /// Checks `<digits>ms`, `<digits>s` or `<digits>m`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "\"{}\" is not a period like 500ms, 2s or 1m (10 ms to 24 h)",
                text.escape_default()
            )
        };
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, unit) = text.split_at(split);
        let value: u64 = digits.parse().map_err(|_| bad())?;
        let millis = match unit {
            "ms" => Some(value),
            "s" => value.checked_mul(1000),
            "m" => value.checked_mul(60_000),
            _ => None,
        }
        .ok_or_else(bad)?;
        let period = std::time::Duration::from_millis(millis);
        if !(Self::MIN..=Self::MAX).contains(&period) {
            return Err(bad());
        }
        Ok(Self(period))
    }

    /// The period.
    pub fn period(self) -> std::time::Duration {
        self.0
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

string_newtype!(Interval, Interval::parse);
