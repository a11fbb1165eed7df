//! Requests and responses of the admin protocol, as CBOR. Decoding untrusted bytes never
//! panics: a payload that is not a request is [`ProtocolError::Malformed`]; a request whose
//! operation is unknown keeps its id so the node can answer it ([`ProtocolError::Unsupported`]);
//! names and payloads are bounded ([`Request::validate`]).

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::error::ProtocolError;

/// This protocol's version; a node refuses a [`Op::Hello`] with another.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest module upload.
pub const MAX_MODULE_LEN: usize = 32 << 20;
/// Largest entry argument, event or request payload.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// Largest protected event: a payload of at most [`MAX_PAYLOAD_LEN`], a 14-byte header and a
/// 16-byte tag.
pub const MAX_ENVELOPE_LEN: usize = MAX_PAYLOAD_LEN + 30;
/// Shortest and longest period of [`Op::Periodic`] (10 ms, 24 h).
pub const MIN_PERIOD_MS: u64 = 10;
/// See [`MIN_PERIOD_MS`].
pub const MAX_PERIOD_MS: u64 = 24 * 60 * 60 * 1000;
/// Longest module or port name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest MQTT topic name or filter in [`Op::Topic`] (the node checks its syntax).
pub const MAX_TOPIC_LEN: usize = 1024;

/// One request: an id chosen by the client (echoed in the response) and the operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Echoed in the response.
    pub id: u64,
    /// What to do.
    pub op: Op,
}

/// How a call enters a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallKind {
    /// An entry (called by the deployer or a user); returns a result.
    Entry,
    /// A one-way event on an input; returns nothing.
    Input,
    /// A request on a handler; returns the response.
    Handler,
}

impl CallKind {
    /// `entry`, `input` or `handler`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Entry => "entry",
            Self::Input => "input",
            Self::Handler => "handler",
        }
    }
}

/// The operations. New ones are added as new variants (issue 6: attest modules, provision
/// connection keys, wire connections, stream outputs); a node that does not know one answers
/// [`ErrorKind::Unsupported`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Op {
    /// First request of a session: the client's protocol version, and whether it wants the
    /// node's evidence bound to this TLS session (per-session freshness for clients that
    /// cannot attest themselves).
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        version: u32,
        /// Ask for session evidence bound to the TLS exporter.
        session_evidence: bool,
    },
    /// Node name, platform, uptime, module count.
    Status,
    /// Load a module from its Wasm bytes under a name (which must be free).
    Load {
        /// The module's name on this node.
        name: String,
        /// The component's bytes.
        wasm: Bytes,
    },
    /// Replace loaded module `name` with new code, in place: the new version is compiled aside,
    /// then swapped in between two deliveries, so events queued for the module wait for it and
    /// none is lost or delivered twice. Its connections and timers stay attached (every port
    /// they use must still be declared, with the same kind), its sealed state is handed over
    /// (resealed under the new measurement), and it gets a new channel key pair, named in its
    /// new claims: the deployer re-keys its connections next ([`Op::Rekey`]).
    Update {
        /// The module.
        name: String,
        /// The new component's bytes.
        wasm: Bytes,
    },
    /// Every loaded module.
    List,
    /// Stop and forget a module (its sealed state stays, bound to its measurement).
    Unload {
        /// The module.
        name: String,
    },
    /// Call an entry, deliver an input event or a handler request.
    Call {
        /// The module.
        module: String,
        /// Which kind of port.
        kind: CallKind,
        /// The port's name.
        port: String,
        /// Argument, event or request payload.
        data: Bytes,
    },
    /// Take up to `max` buffered output events of a module.
    Outputs {
        /// The module.
        module: String,
        /// At most this many events.
        max: u32,
    },
    /// The module claims the node signed for a module.
    Claims {
        /// The module.
        module: String,
    },
    /// Attaches one end of a connection to a module's port (from the deployer). The connection
    /// key arrives wrapped to the module's channel key, for exactly this context.
    Connect(ConnectSpec),
    /// Gives an attached connection end a fresh key (from the deployer), wrapped like
    /// [`Op::Connect`]'s. In two phases, so no event is refused on the way: without `activate`
    /// the end accepts events under the new key beside the old one; with `activate` it also
    /// seals what it sends under the new key. The deployer stages the key at both ends of a
    /// connection before activating either. Counters continue across the change; the first
    /// event that arrives under the new key retires the old one.
    Rekey {
        /// The end and its new wrapped key; `end` must match the attached end.
        spec: ConnectSpec,
        /// Switch the end's sending to the new key.
        activate: bool,
    },
    /// The first half of a migration: stop module `module` (events for it are answered
    /// [`ErrorKind::Moved`] and wait at their senders), wait until the peers acknowledged every
    /// event it sent, then seal its sealed state and connection ends (keys wrapped, counters) to
    /// its new instance on another node ([`Reply::Exported`]). The node itself checks that the
    /// recipient is the same module (name, measurement) on a node its peer policy affirms: the
    /// new instance's claims, signed under that node's attested certificate, name its channel key.
    Export {
        /// The module.
        module: String,
        /// Its application (bound into the hand-over).
        app: String,
        /// The new instance's signed module claims (JSON), naming its channel key.
        recipient_claims: String,
        /// The certificate of the node that signed them (its evidence is appraised).
        recipient_certificate: Bytes,
    },
    /// The second half: module `module` (just loaded, the same code, no connections yet) takes
    /// over the hand-over [`Op::Export`] sealed to it, after checking it comes from the old
    /// instance, whose claims (signed by an affirmed node) name the key that sealed it.
    Import {
        /// The module.
        module: String,
        /// Its application.
        app: String,
        /// The sealed hand-over.
        handover: Bytes,
        /// The old instance's signed module claims (JSON).
        sender_claims: String,
        /// The certificate of the node that signed them.
        sender_certificate: Bytes,
    },
    /// Undoes an [`Op::Export`] that did not complete: the module serves again here.
    Thaw {
        /// The module.
        module: String,
    },
    /// Points an attached sending end at the receiving module's new node. Events sent to the old
    /// node and answered [`ErrorKind::Moved`] are sent again to the new one, in counter order,
    /// before any later event.
    Retarget {
        /// The application.
        app: String,
        /// The connection.
        connection: u32,
        /// The sending module on this node.
        module: String,
        /// `host:port` of the receiving module's new node.
        peer_address: String,
    },
    /// Feeds an input of a module with the same event every `every_ms` milliseconds, from a
    /// timer inside the node, until the module is unloaded.
    Periodic {
        /// The module.
        module: String,
        /// Its input.
        input: String,
        /// The period, 10 ms to 24 h.
        every_ms: u64,
        /// The event each tick delivers.
        payload: Bytes,
    },
    /// A request on one of a module's incoming request → handler connections (from a peer
    /// node): checked like an event, handled, and answered with the handler's response sealed
    /// in the connection's reverse direction ([`Reply::Answer`]).
    Ask {
        /// The module whose handler answers.
        module: String,
        /// The protected request (`events::Envelope` bytes).
        envelope: Bytes,
    },
    /// An event on one of a module's incoming connections (from a peer node). The node checks
    /// it with the connection's key before the module sees it.
    Event {
        /// The receiving module.
        module: String,
        /// The protected event (`events::Envelope` bytes).
        envelope: Bytes,
    },
    /// Attaches an MQTT topic end to a loaded module's port (from the deployer): the module's
    /// output is published on a topic, or its input is fed from a subscription, through the
    /// node's MQTT client for (app, module, broker), which reaches the broker over attested TLS
    /// and authenticates as the module with its signed claims. Answered [`Reply::Connected`].
    Topic(TopicSpec),
}

/// An MQTT topic end of a module's port, as the deployer attaches it ([`Op::Topic`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// The application's name (named in the module claims the broker sees).
    pub app: String,
    /// The module on this node.
    pub module: String,
    /// Its port: an output (publish) or an input (subscribe).
    pub port: String,
    /// `host:port` of the broker's attested TLS listener.
    pub broker_address: String,
    /// The topic name (publish) or topic filter (subscribe).
    pub topic: String,
    /// 0, 1 or 2.
    pub qos: u8,
    /// Which way messages go.
    pub direction: TopicDirection,
}

/// Which way a topic end carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TopicDirection {
    /// The module's output events are published on the topic.
    Publish,
    /// Messages matching the filter are delivered to the module's input.
    Subscribe,
}

impl TopicDirection {
    /// `publish` or `subscribe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
        }
    }
}

/// Counters of one topic end, as a node reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicEndInfo {
    /// The application.
    pub app: String,
    /// The module's port.
    pub port: String,
    /// `host:port` of the broker.
    pub broker_address: String,
    /// The topic name or filter.
    pub topic: String,
    /// The QoS of the end.
    pub qos: u8,
    /// `publish` or `subscribe`.
    pub direction: TopicDirection,
    /// Messages published and, for QoS 1 and 2, acknowledged by the broker (publish).
    pub published: u64,
    /// Messages delivered to the module's input (subscribe).
    pub delivered: u64,
    /// Events dropped because the end's queue was full, or messages the module's input refused.
    pub dropped: u64,
    /// Events waiting to be published, or published and not acknowledged yet.
    pub pending: u64,
    /// Connections to the broker after the first (its client's, shared by the module's ends on
    /// that broker).
    pub reconnects: u64,
    /// True while the client is connected and the broker accepted it (and, for a subscribing
    /// end, granted its subscription): messages flow.
    pub connected: bool,
    /// The last error of the end or its client.
    pub last_error: Option<String>,
}

/// One end of a connection, as the deployer provisions it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectSpec {
    /// The application's name.
    pub app: String,
    /// The connection's id in the application (below 2^31).
    pub connection: u32,
    /// The module on this node.
    pub module: String,
    /// Its port: an output for the sending end, an input for the receiving end.
    pub port: String,
    /// Which end this is.
    pub end: ConnectionEnd,
    /// What the events' AEAD protects.
    pub protection: EventProtection,
    /// The connection key wrapped to the module's channel key (HPKE encapsulated key).
    pub wrapped_encapsulated: Bytes,
    /// The wrapped connection key's ciphertext.
    pub wrapped_ciphertext: Bytes,
}

/// The sending or the receiving end of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ConnectionEnd {
    /// The module's output sends; events go to `peer_module` on the node at `peer_address`.
    Sender {
        /// `host:port` of the receiving node's listener.
        peer_address: String,
        /// The receiving module's name there.
        peer_module: String,
    },
    /// The module's input receives.
    Receiver,
}

/// What an event's AEAD protects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventProtection {
    /// Confidential and authentic.
    Encrypted,
    /// Authentic, payload readable.
    Authenticated,
}

/// Counters of one connection end, as a node reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionInfo {
    /// The application.
    pub app: String,
    /// The connection's id.
    pub connection: u32,
    /// The module's port.
    pub port: String,
    /// `sender` or `receiver`.
    pub end: String,
    /// Events sealed and sent (sender) or delivered to the module (receiver).
    pub events: u64,
    /// Events not sent (the link to the peer was backed up) or refused by the peer (sender only).
    pub undelivered: u64,
    /// Counters that never arrived before a later event (receiver only).
    pub missing: u64,
    /// Events rejected as forged or altered (receiver only).
    pub forged: u64,
    /// Events rejected as replayed or reordered (receiver only).
    pub replayed: u64,
    /// Events rejected as malformed, misrouted or downgraded (receiver only).
    pub malformed: u64,
    /// How many times the end was re-keyed ([`Op::Rekey`] with `activate`).
    #[serde(default)]
    pub rekeys: u64,
}

impl Op {
    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Hello { .. } => "hello",
            Self::Status => "status",
            Self::Load { .. } => "load",
            Self::Update { .. } => "update",
            Self::Export { .. } => "export",
            Self::Import { .. } => "import",
            Self::Thaw { .. } => "thaw",
            Self::Retarget { .. } => "retarget",
            Self::Rekey { .. } => "rekey",
            Self::List => "list",
            Self::Unload { .. } => "unload",
            Self::Call { .. } => "call",
            Self::Outputs { .. } => "outputs",
            Self::Claims { .. } => "claims",
            Self::Connect(_) => "connect",
            Self::Periodic { .. } => "periodic",
            Self::Event { .. } => "event",
            Self::Ask { .. } => "ask",
            Self::Topic(_) => "topic",
        }
    }
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What happened.
    pub outcome: Result<Reply, ErrorReply>,
}

/// Successful replies, one shape per operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Reply {
    /// To [`Op::Hello`].
    Hello {
        /// The node's protocol version.
        version: u32,
        /// The node's name.
        node: String,
        /// `sgx`, `tdx`, `snp` or `sim`.
        platform: String,
        /// True on the simulated TEE.
        simulated: bool,
        /// Tagged evidence whose nonce is this session's TLS exporter, when asked for.
        session_evidence: Option<Bytes>,
    },
    /// To [`Op::Status`].
    Status(StatusReply),
    /// To [`Op::Load`].
    Module(ModuleInfo),
    /// To [`Op::List`].
    Modules(Vec<ModuleInfo>),
    /// To [`Op::Unload`].
    Unloaded,
    /// To [`Op::Call`]: the result (entry), the response (handler) or nothing (input), and how
    /// many output events the call emitted.
    Called {
        /// Result or response bytes (empty for an input).
        data: Bytes,
        /// Output events emitted by this call.
        outputs: u64,
    },
    /// To [`Op::Outputs`].
    Outputs {
        /// The events, oldest first.
        events: Vec<OutputEvent>,
        /// Events dropped because the queue was full, since the module was loaded.
        dropped: u64,
    },
    /// To [`Op::Connect`].
    Connected,
    /// To [`Op::Export`]: the module's hand-over, sealed to its new instance.
    Exported {
        /// HPKE encapsulated key ‖ ciphertext.
        handover: Bytes,
    },
    /// To [`Op::Periodic`].
    Scheduled,
    /// To [`Op::Ask`]: the handler's response, sealed for the requesting module.
    Answer {
        /// The protected response (`events::Envelope` bytes, reverse direction).
        envelope: Bytes,
    },
    /// To [`Op::Event`]: the event authenticated and the module took it.
    Delivered {
        /// The event's counter.
        counter: u64,
        /// Counters before it that never arrived.
        missing: u64,
    },
    /// To [`Op::Claims`].
    Claims {
        /// The signed module claims as JSON (`atls::SignedModuleClaims`).
        signed_claims_json: String,
        /// The node's attested certificate (DER), to check them with.
        node_certificate: Bytes,
    },
}

/// The node's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReply {
    /// The node's name.
    pub node: String,
    /// `sgx`, `tdx`, `snp` or `sim`.
    pub platform: String,
    /// True on the simulated TEE.
    pub simulated: bool,
    /// The node software's version.
    pub version: String,
    /// [`PROTOCOL_VERSION`].
    pub protocol: u32,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Loaded modules.
    pub modules: u64,
    /// The MQTT broker's listeners, when the node runs one. Left out when empty, so a node
    /// without `[mqtt]` answers exactly as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mqtt_listeners: Vec<MqttListener>,
}

/// One listener of the node's MQTT broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttListener {
    /// `tcp`, `tls` or `atls`.
    pub kind: String,
    /// The bound address.
    pub address: String,
}

/// The ports a module declares (mirrors the WIT manifest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleManifest {
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

/// A loaded module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleInfo {
    /// Its name on the node.
    pub name: String,
    /// SHA-256 of its bytes, lower-case hex.
    pub measurement: String,
    /// Its ports.
    pub manifest: ModuleManifest,
    /// Calls made into it since it was loaded.
    pub calls: u64,
    /// Calls that failed (guest error, trap, limit).
    pub failures: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// True while a call is running.
    pub busy: bool,
    /// Output events waiting to be taken.
    pub queued_outputs: u64,
    /// Output events dropped because the queue was full.
    pub dropped_outputs: u64,
    /// The module's connection ends.
    #[serde(default)]
    pub connections: Vec<ConnectionInfo>,
    /// The module's MQTT topic ends ([`Op::Topic`]); left out when there are none, so clients
    /// older than topic ends still read the reply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<TopicEndInfo>,
}

/// An event a module emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputEvent {
    /// Position in the module's output stream (from 0, gaps where events were dropped).
    pub seq: u64,
    /// The output port.
    pub output: String,
    /// The payload.
    pub data: Bytes,
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    /// The class of failure.
    pub kind: ErrorKind,
    /// One line saying what was wrong.
    pub message: String,
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorReply {}

/// Classes of failure, so clients can react without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The request is malformed or out of bounds.
    BadRequest,
    /// The operation or protocol version is not supported by this node.
    Unsupported,
    /// This client may not administer the node.
    Unauthorised,
    /// No module of that name.
    NotFound,
    /// A module of that name is already loaded.
    Exists,
    /// The module's call queue is full.
    Busy,
    /// The Wasm bytes could not be loaded (not Wasm, not a component, not the world).
    InvalidModule,
    /// The call trapped or hit a limit (fuel, deadline, memory).
    ModuleFailed,
    /// The module returned an error.
    GuestError,
    /// An event did not authenticate or was not new (forged, altered, replayed, reordered).
    EventRejected,
    /// The node is shutting down.
    ShuttingDown,
    /// The module is moving to another node: an event for it is not delivered here, and its
    /// sender keeps it until the deployer points the connection at the new node.
    Moved,
    /// Anything else on the node's side.
    Internal,
    /// An error kind this version does not know (sent by a newer node).
    #[serde(other)]
    Unknown,
}

impl ErrorReply {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl Request {
    /// CBOR bytes of this request (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes and validates a request from untrusted bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        // Two steps, so that an unknown operation still yields the id to answer.
        #[derive(Deserialize)]
        struct Envelope {
            id: u64,
            op: ciborium::Value,
        }
        let envelope: Envelope =
            ciborium::from_reader(bytes).map_err(|e| ProtocolError::Malformed {
                what: "request",
                detail: one_line(&e.to_string()),
            })?;
        let op: Op = envelope
            .op
            .deserialized()
            .map_err(|e| ProtocolError::Unsupported {
                id: envelope.id,
                version: PROTOCOL_VERSION,
                detail: one_line(&e.to_string()),
            })?;
        let request = Self {
            id: envelope.id,
            op,
        };
        request.validate()?;
        Ok(request)
    }

    /// Checks names and sizes.
    pub fn validate(&self) -> Result<(), ProtocolError> {
        match &self.op {
            Op::Hello { .. } | Op::Status | Op::List => Ok(()),
            Op::Load { name, wasm } | Op::Update { name, wasm } => {
                check_module_name(name)?;
                if wasm.0.len() > MAX_MODULE_LEN {
                    return Err(ProtocolError::Invalid(format!(
                        "module of {} bytes is larger than the {MAX_MODULE_LEN} allowed",
                        wasm.0.len()
                    )));
                }
                Ok(())
            }
            Op::Unload { name }
            | Op::Thaw { module: name }
            | Op::Claims { module: name }
            | Op::Outputs { module: name, .. } => check_module_name(name),
            Op::Connect(spec) | Op::Rekey { spec, .. } => {
                check_module_name(&spec.module)?;
                check_port_name(&spec.port)?;
                check_app_name(&spec.app)?;
                check_connection_id(spec.connection)?;
                if spec.wrapped_encapsulated.0.len() != 32 || spec.wrapped_ciphertext.0.len() != 48
                {
                    return Err(ProtocolError::Invalid(
                        "a wrapped connection key is a 32-byte encapsulated key and a 48-byte ciphertext".into(),
                    ));
                }
                if let ConnectionEnd::Sender {
                    peer_address,
                    peer_module,
                } = &spec.end
                {
                    check_module_name(peer_module)?;
                    check_peer_address(peer_address)?;
                }
                Ok(())
            }
            Op::Export {
                module,
                app,
                recipient_claims: claims,
                recipient_certificate: certificate,
            }
            | Op::Import {
                module,
                app,
                sender_claims: claims,
                sender_certificate: certificate,
                ..
            } => {
                check_module_name(module)?;
                check_app_name(app)?;
                if claims.len() > MAX_CLAIMS_LEN || certificate.0.len() > MAX_CLAIMS_LEN {
                    return Err(ProtocolError::Invalid(format!(
                        "module claims and certificates are at most {MAX_CLAIMS_LEN} bytes"
                    )));
                }
                if let Op::Import { handover, .. } = &self.op
                    && handover.0.len() > MAX_MODULE_LEN
                {
                    return Err(ProtocolError::Invalid(format!(
                        "a hand-over of {} bytes is larger than the {MAX_MODULE_LEN} allowed",
                        handover.0.len()
                    )));
                }
                Ok(())
            }
            Op::Retarget {
                app,
                connection,
                module,
                peer_address,
            } => {
                check_module_name(module)?;
                check_app_name(app)?;
                check_connection_id(*connection)?;
                check_peer_address(peer_address)
            }
            Op::Periodic {
                module,
                input,
                every_ms,
                payload,
            } => {
                check_module_name(module)?;
                check_port_name(input)?;
                if !(MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(every_ms) {
                    return Err(ProtocolError::Invalid(format!(
                        "period of {every_ms} ms is outside {MIN_PERIOD_MS} ms to {MAX_PERIOD_MS} ms"
                    )));
                }
                if payload.0.len() > MAX_PAYLOAD_LEN {
                    return Err(ProtocolError::Invalid(format!(
                        "payload of {} bytes is larger than the {MAX_PAYLOAD_LEN} allowed",
                        payload.0.len()
                    )));
                }
                Ok(())
            }
            Op::Event { module, envelope } | Op::Ask { module, envelope } => {
                check_module_name(module)?;
                if envelope.0.len() > MAX_ENVELOPE_LEN {
                    return Err(ProtocolError::Invalid(format!(
                        "event of {} bytes is larger than the {MAX_ENVELOPE_LEN} allowed",
                        envelope.0.len()
                    )));
                }
                Ok(())
            }
            Op::Topic(spec) => {
                check_app_name(&spec.app)?;
                check_module_name(&spec.module)?;
                check_port_name(&spec.port)?;
                check_peer_address(&spec.broker_address)?;
                if spec.topic.is_empty() || spec.topic.len() > MAX_TOPIC_LEN {
                    return Err(ProtocolError::Invalid(format!(
                        "a topic or topic filter has 1 to {MAX_TOPIC_LEN} bytes"
                    )));
                }
                if spec.qos > 2 {
                    return Err(ProtocolError::Invalid(format!(
                        "QoS {} is not 0, 1 or 2",
                        spec.qos
                    )));
                }
                Ok(())
            }
            Op::Call {
                module, port, data, ..
            } => {
                check_module_name(module)?;
                check_port_name(port)?;
                if data.0.len() > MAX_PAYLOAD_LEN {
                    return Err(ProtocolError::Invalid(format!(
                        "payload of {} bytes is larger than the {MAX_PAYLOAD_LEN} allowed",
                        data.0.len()
                    )));
                }
                Ok(())
            }
        }
    }
}

impl Response {
    /// CBOR bytes of this response (without the frame header).
    pub fn encode(&self) -> Vec<u8> {
        to_cbor(self)
    }

    /// Decodes a response.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        ciborium::from_reader(bytes).map_err(|e| ProtocolError::Malformed {
            what: "response",
            detail: one_line(&e.to_string()),
        })
    }
}

/// Decoder messages may quote the input (an unknown variant's name): escape control
/// characters so an error is always one printable line in a log.
fn one_line(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn to_cbor<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    // Serialising our own types into a Vec cannot fail: no I/O, no maps with non-string keys.
    if let Err(e) = ciborium::into_writer(value, &mut out) {
        unreachable!("CBOR serialisation of a protocol message failed: {e}");
    }
    out
}

/// Largest signed module claims or node certificate in a migration request.
const MAX_CLAIMS_LEN: usize = 64 << 10;

fn check_app_name(app: &str) -> Result<(), ProtocolError> {
    if app.is_empty() || app.len() > MAX_NAME_LEN {
        return Err(ProtocolError::Invalid(format!(
            "application name must have 1 to {MAX_NAME_LEN} bytes"
        )));
    }
    Ok(())
}

fn check_connection_id(connection: u32) -> Result<(), ProtocolError> {
    if connection >= 1 << 31 {
        return Err(ProtocolError::Invalid(format!(
            "connection id {connection} is out of range (ids are below 2^31)"
        )));
    }
    Ok(())
}

fn check_peer_address(address: &str) -> Result<(), ProtocolError> {
    if address.is_empty() || address.len() > 256 {
        return Err(ProtocolError::Invalid(
            "peer address must have 1 to 256 bytes".into(),
        ));
    }
    Ok(())
}

fn check_port_name(port: &str) -> Result<(), ProtocolError> {
    if port.is_empty() || port.len() > MAX_NAME_LEN {
        return Err(ProtocolError::Invalid(format!(
            "port name must have 1 to {MAX_NAME_LEN} bytes"
        )));
    }
    Ok(())
}

/// A module name is also a file name on the node: 1 to [`MAX_NAME_LEN`] characters from
/// `A-Z a-z 0-9 - _ .`, not starting with a dot.
pub fn check_module_name(name: &str) -> Result<(), ProtocolError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::Invalid(format!(
            "module name {:?} must have 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 - _ . and not start with a dot",
            name.escape_debug().to_string()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Request> {
        let ops = vec![
            Op::Hello {
                version: PROTOCOL_VERSION,
                session_evidence: true,
            },
            Op::Status,
            Op::List,
            Op::Load {
                name: "sensor".into(),
                wasm: Bytes(b"\0asm\x0d\0\x01\0".to_vec()),
            },
            Op::Unload {
                name: "sensor".into(),
            },
            Op::Call {
                module: "sensor".into(),
                kind: CallKind::Input,
                port: "reading".into(),
                data: Bytes(br#"{"sensor":"t1","value":31}"#.to_vec()),
            },
            Op::Outputs {
                module: "sensor".into(),
                max: 10,
            },
            Op::Claims {
                module: "sensor".into(),
            },
            Op::Connect(ConnectSpec {
                app: "irrigation".into(),
                connection: 3,
                module: "sensor".into(),
                port: "alert".into(),
                end: ConnectionEnd::Sender {
                    peer_address: "127.0.0.1:7401".into(),
                    peer_module: "valve".into(),
                },
                protection: EventProtection::Encrypted,
                wrapped_encapsulated: Bytes(vec![1; 32]),
                wrapped_ciphertext: Bytes(vec![2; 48]),
            }),
            Op::Event {
                module: "valve".into(),
                envelope: Bytes(vec![1, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0]),
            },
            Op::Periodic {
                module: "sensor".into(),
                input: "tick".into(),
                every_ms: 500,
                payload: Bytes(b"{}".to_vec()),
            },
            Op::Ask {
                module: "filter".into(),
                envelope: Bytes(vec![1, 1, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]),
            },
            Op::Topic(TopicSpec {
                app: "plant".into(),
                module: "filter".into(),
                port: "alert".into(),
                broker_address: "127.0.0.1:8883".into(),
                topic: "plant/alerts".into(),
                qos: 1,
                direction: TopicDirection::Publish,
            }),
            Op::Topic(TopicSpec {
                app: "plant".into(),
                module: "filter".into(),
                port: "reading".into(),
                broker_address: "broker.example:8883".into(),
                topic: "plant/+/readings".into(),
                qos: 0,
                direction: TopicDirection::Subscribe,
            }),
        ];
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| Request { id: i as u64, op })
            .collect()
    }

    #[test]
    fn requests_round_trip() {
        for request in samples() {
            assert_eq!(Request::decode(&request.encode()), Ok(request));
        }
    }

    #[test]
    fn responses_round_trip() {
        let responses = [
            Response {
                id: 7,
                outcome: Ok(Reply::Called {
                    data: Bytes(b"{}".to_vec()),
                    outputs: 1,
                }),
            },
            Response {
                id: 8,
                outcome: Err(ErrorReply::new(ErrorKind::NotFound, "no module \"x\"")),
            },
            Response {
                id: 9,
                outcome: Ok(Reply::Modules(vec![ModuleInfo {
                    name: "m".into(),
                    measurement: "00".into(),
                    manifest: ModuleManifest::default(),
                    calls: 1,
                    failures: 0,
                    last_error: None,
                    busy: false,
                    queued_outputs: 0,
                    dropped_outputs: 0,
                    connections: vec![],
                    topics: vec![],
                }])),
            },
            Response {
                id: 10,
                outcome: Ok(Reply::Modules(vec![ModuleInfo {
                    name: "filter".into(),
                    measurement: "00".into(),
                    manifest: ModuleManifest::default(),
                    calls: 3,
                    failures: 0,
                    last_error: None,
                    busy: false,
                    queued_outputs: 1,
                    dropped_outputs: 0,
                    connections: vec![],
                    topics: vec![TopicEndInfo {
                        app: "plant".into(),
                        port: "alert".into(),
                        broker_address: "127.0.0.1:8883".into(),
                        topic: "plant/alerts".into(),
                        qos: 1,
                        direction: TopicDirection::Publish,
                        published: 1 << 40,
                        delivered: 0,
                        dropped: 2,
                        pending: 1,
                        reconnects: 3,
                        connected: true,
                        last_error: Some("the broker closed the connection".into()),
                    }],
                }])),
            },
        ];
        for response in responses {
            assert_eq!(Response::decode(&response.encode()), Ok(response));
        }
    }

    #[test]
    fn bad_requests_get_clear_errors() {
        let err = Request::decode(b"").unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }), "{err}");
        let err = Request::decode(&[0xff; 16]).unwrap_err();
        assert!(matches!(err, ProtocolError::Malformed { .. }), "{err}");
        // An operation from a future protocol version: the id survives for the answer.
        let mut future = Vec::new();
        use ciborium::Value;
        let op = Value::Map(vec![(
            Value::Text("migrate".into()),
            Value::Map(vec![(Value::Text("to".into()), Value::Text("b".into()))]),
        )]);
        let value = Value::Map(vec![
            (Value::Text("id".into()), Value::Integer(42.into())),
            (Value::Text("op".into()), op),
        ]);
        ciborium::into_writer(&value, &mut future).unwrap_or_default();
        match Request::decode(&future) {
            Err(ProtocolError::Unsupported { id: 42, .. }) => {}
            other => panic!("expected Unsupported for id 42, got {other:?}"),
        }
        let bad_name = Request {
            id: 1,
            op: Op::Unload {
                name: "../etc".into(),
            },
        };
        let err = Request::decode(&bad_name.encode()).unwrap_err();
        assert!(err.to_string().contains("module name"), "{err}");
    }

    #[test]
    fn topic_ends_are_bounded() {
        let topic = |topic: &str, qos: u8| Request {
            id: 3,
            op: Op::Topic(TopicSpec {
                app: "plant".into(),
                module: "filter".into(),
                port: "alert".into(),
                broker_address: "127.0.0.1:8883".into(),
                topic: topic.into(),
                qos,
                direction: TopicDirection::Publish,
            }),
        };
        let err = Request::decode(&topic("", 1).encode()).unwrap_err();
        assert!(err.to_string().contains("topic"), "{err}");
        let long = "t".repeat(MAX_TOPIC_LEN + 1);
        let err = Request::decode(&topic(&long, 1).encode()).unwrap_err();
        assert!(err.to_string().contains("topic"), "{err}");
        let err = Request::decode(&topic("a/b", 3).encode()).unwrap_err();
        assert!(err.to_string().contains("QoS 3"), "{err}");
    }

    #[test]
    fn module_info_without_topics_is_the_old_shape() {
        // A node with no topic ends answers exactly what a client older than them reads.
        let info = ModuleInfo {
            name: "m".into(),
            measurement: "00".into(),
            manifest: ModuleManifest::default(),
            calls: 0,
            failures: 0,
            last_error: None,
            busy: false,
            queued_outputs: 0,
            dropped_outputs: 0,
            connections: vec![],
            topics: vec![],
        };
        let mut bytes = Vec::new();
        ciborium::into_writer(&info, &mut bytes).unwrap_or_default();
        let value: ciborium::Value =
            ciborium::from_reader(&bytes[..]).unwrap_or(ciborium::Value::Null);
        let keys: Vec<String> = value
            .as_map()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, _)| k.as_text().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !keys.is_empty() && !keys.contains(&"topics".to_owned()),
            "{keys:?}"
        );
    }

    #[test]
    fn bytes_are_cbor_byte_strings() {
        let request = &samples()[3];
        let encoded = request.encode();
        // 8 Wasm bytes as a byte string: header 0x48 then the bytes, not an integer array.
        assert!(
            encoded
                .windows(9)
                .any(|w| w[0] == 0x48 && &w[1..5] == b"\0asm"),
            "{encoded:02x?}"
        );
    }

    #[test]
    fn a_status_without_mqtt_listeners_is_encoded_as_before() {
        let mut status = StatusReply {
            node: "n".into(),
            platform: "sim".into(),
            simulated: true,
            version: "0.1.0".into(),
            protocol: PROTOCOL_VERSION,
            uptime_secs: 1,
            modules: 0,
            mqtt_listeners: Vec::new(),
        };
        let response = |status: &StatusReply| Response {
            id: 1,
            outcome: Ok(Reply::Status(status.clone())),
        };
        let encoded = response(&status).encode();
        let name = b"mqtt_listeners";
        assert!(!encoded.windows(name.len()).any(|w| w == name));
        assert_eq!(Response::decode(&encoded), Ok(response(&status)));
        status.mqtt_listeners.push(MqttListener {
            kind: "atls".into(),
            address: "127.0.0.1:8884".into(),
        });
        let encoded = response(&status).encode();
        assert_eq!(Response::decode(&encoded), Ok(response(&status)));
    }
}
