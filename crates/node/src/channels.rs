//! The event channels of one hosted module: the connection ends the deployer attached to its
//! ports ([`node_protocol::Op::Connect`]). Outgoing events are sealed here with the connection's
//! key and handed to the [`crate::forward::Forwarder`]; incoming events are opened here, on the
//! module's worker, so only authentic, new events in counter order reach the module.
//!
//! Connection keys arrive wrapped to the module's channel key pair, which is derived from the
//! node's sealing secret for this module instance and never leaves the node; the unwrapped keys
//! live only inside the senders and receivers. Connections are not persisted: after a node
//! restart the deployer provisions fresh keys (so no counter can be reused under a key and no
//! old event replayed into a restarted receiver).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::wrap::{ModuleKeyPair, ModulePublicKey, WrapContext, WrappedKey, wrap_key};
use events::{
    ConnectionId, ConnectionKey, Direction, EventReceiver, EventSender, Protection, Rejection,
};
use node_protocol::{
    ConnectSpec, ConnectionEnd, ConnectionInfo, ErrorKind, ErrorReply, EventProtection,
    ModuleManifest, Reply,
};
use serde::{Deserialize, Serialize};

use crate::forward::{EndTracker, Forwarder};

/// Events a sending end holds while it is pointed at a moved module's new node; beyond this its
/// module's emits fail.
const HOLD_LIMIT: usize = 8192;
/// How long a migration waits for a link to settle the events already sent on it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A module's channel key pair and its connection ends.
pub(crate) struct ModuleChannels {
    module: String,
    /// The current instance's measurement and key pair: replaced when the module is updated,
    /// while its connection ends (and their counters) stay.
    identity: Mutex<ChannelIdentity>,
    forwarder: Arc<Forwarder>,
    outgoing: Mutex<Vec<OutgoingEnd>>,
    incoming: Mutex<BTreeMap<ConnectionId, IncomingEnd>>,
}

/// The keys of one connection end, kept so that a migration can hand the end over; they never
/// leave the node but wrapped to an attested instance's key.
struct EndKeys {
    /// The keys its receiver accepts, oldest first: the one in use, then staged ones.
    receiving: Vec<ConnectionKey>,
    /// The key its sender seals under.
    sending: ConnectionKey,
}

impl EndKeys {
    fn new(key: ConnectionKey) -> Self {
        Self {
            receiving: vec![key.clone()],
            sending: key,
        }
    }

    fn accepts(&self, key: &ConnectionKey) -> bool {
        self.receiving.contains(key)
    }

    /// The end now sends under `key`; an end with no receiving direction needs no other key.
    fn activate(&mut self, key: ConnectionKey, receives: bool) {
        if !receives {
            self.receiving = vec![key.clone()];
        } else if !self.accepts(&key) {
            self.receiving.push(key.clone());
        }
        self.sending = key;
    }

    /// The receiver retired its `n` oldest keys (an event came under a newer one).
    fn retired(&mut self, n: usize) {
        self.receiving
            .drain(..n.min(self.receiving.len().saturating_sub(1)));
    }
}

struct ChannelIdentity {
    measurement: [u8; 32],
    keys: ModuleKeyPair,
}

/// Which kind of port a connection end is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndPort {
    Input,
    Handler,
    Output,
    Request,
}

impl EndPort {
    pub(crate) fn declared_in(self, manifest: &ModuleManifest) -> &[String] {
        match self {
            Self::Input => &manifest.inputs,
            Self::Handler => &manifest.handlers,
            Self::Output => &manifest.outputs,
            Self::Request => &manifest.requests,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Handler => "handler",
            Self::Output => "output",
            Self::Request => "request",
        }
    }
}

struct OutgoingEnd {
    app: String,
    connection: ConnectionId,
    port: String,
    sender: EventSender,
    /// For a request → handler connection: opens the handler's responses.
    responses: Option<EventReceiver>,
    peer_address: String,
    peer_module: String,
    sent: u64,
    rekeys: u64,
    keys: EndKeys,
    /// Its keys and counters went to another instance (a migration): it seals nothing until
    /// re-keyed, so no counter is ever used under one key by two instances.
    handed_over: bool,
    /// Events not sent (queue full), refused or parked by the peer, and in flight.
    tracker: Arc<EndTracker>,
    /// While its receiving module moves (or the end is pointed at its new node): events
    /// sealed meanwhile, sent after the parked ones.
    holding: Option<Vec<Vec<u8>>>,
    /// A retarget is under way.
    retargeting: bool,
}

struct IncomingEnd {
    app: String,
    port: String,
    receiver: EventReceiver,
    /// For a request → handler connection: seals the handler's responses.
    responses: Option<EventSender>,
    delivered: u64,
    rekeys: u64,
    keys: EndKeys,
    /// As for an outgoing end.
    handed_over: bool,
    missing: u64,
    forged: u64,
    replayed: u64,
    malformed: u64,
}

/// One connection end as a migration hands it to the module's new instance: its keys wrapped
/// to that instance's channel key, its counters, and its counts. Travels inside the sealed
/// hand-over only.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct HandedEnd {
    app: String,
    connection: u32,
    port: String,
    /// `Some((address, module))` for a sending end.
    peer: Option<(String, String)>,
    /// A request → handler connection (responses in the reverse direction).
    request: bool,
    authenticated: bool,
    /// The keys its receiver accepts, oldest first.
    receiving: Vec<WrappedKey>,
    /// The key its sender seals under.
    sending: WrappedKey,
    /// The end's sender's next counter (forward for a sending end, responses for a receiving one).
    next: Option<u64>,
    /// The end's receiver's lowest acceptable counter.
    expected: Option<u64>,
    events: u64,
    rekeys: u64,
}

fn too_many(e: events::EventError) -> ErrorReply {
    ErrorReply::new(ErrorKind::Busy, e.to_string())
}

fn handed_over(connection: ConnectionId) -> String {
    format!(
        "connection {connection} was handed to another instance of this module; it sends again once re-keyed (teemesh app rekey)"
    )
}

fn not_attached(app: &str, connection: ConnectionId, module: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::NotFound,
        format!("connection {connection} of app {app:?} is not attached to module {module:?}"),
    )
}

/// An incoming event or request that authenticated: the port to deliver it on and its payload.
pub(crate) struct Opened {
    pub(crate) connection: ConnectionId,
    pub(crate) port: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) counter: u64,
    pub(crate) missing: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl ModuleChannels {
    pub(crate) fn new(
        module: &str,
        measurement: [u8; 32],
        keys: ModuleKeyPair,
        forwarder: Arc<Forwarder>,
    ) -> Self {
        Self {
            module: module.to_owned(),
            identity: Mutex::new(ChannelIdentity { measurement, keys }),
            forwarder,
            outgoing: Mutex::default(),
            incoming: Mutex::default(),
        }
    }

    /// The public half of the module's channel key pair (named in its claims).
    pub(crate) fn public_key(&self) -> [u8; 32] {
        *lock(&self.identity).keys.public().as_bytes()
    }

    /// The module was updated: keys wrapped from now on are opened with the new instance's
    /// key pair, for its measurement. The ends stay attached, with their keys and counters,
    /// until the deployer re-keys them.
    pub(crate) fn replace_identity(&self, measurement: [u8; 32], keys: ModuleKeyPair) {
        *lock(&self.identity) = ChannelIdentity { measurement, keys };
    }

    /// The ports connection ends are attached to, with their kinds.
    pub(crate) fn ports_in_use(&self) -> Vec<(EndPort, String)> {
        let mut ports: Vec<(EndPort, String)> = lock(&self.outgoing)
            .iter()
            .map(|end| {
                let kind = if end.responses.is_some() {
                    EndPort::Request
                } else {
                    EndPort::Output
                };
                (kind, end.port.clone())
            })
            .collect();
        ports.extend(lock(&self.incoming).values().map(|end| {
            let kind = if end.responses.is_some() {
                EndPort::Handler
            } else {
                EndPort::Input
            };
            (kind, end.port.clone())
        }));
        ports
    }

    /// Opens the key `spec` carries, wrapped for exactly this module (its current instance),
    /// port, application and connection.
    fn unwrap_key(
        &self,
        spec: &ConnectSpec,
    ) -> Result<(ConnectionId, events::ConnectionKey, Protection), ErrorReply> {
        let connection = ConnectionId::new(spec.connection)
            .map_err(|e| ErrorReply::new(ErrorKind::BadRequest, e.to_string()))?;
        let wrapped = WrappedKey {
            encapsulated: spec.wrapped_encapsulated.0.clone(),
            ciphertext: spec.wrapped_ciphertext.0.clone(),
        };
        let identity = lock(&self.identity);
        let context = WrapContext {
            app: &spec.app,
            connection,
            module: &self.module,
            port: &spec.port,
            measurement: &identity.measurement,
        };
        let key = identity.keys.unwrap_key(&wrapped, &context).map_err(|e| {
            ErrorReply::new(
                ErrorKind::BadRequest,
                format!(
                    "connection {connection} of app {:?}: {e} (was it wrapped to this module's current channel key?)",
                    spec.app
                ),
            )
        })?;
        let protection = match spec.protection {
            EventProtection::Encrypted => Protection::Encrypted,
            EventProtection::Authenticated => Protection::Authenticated,
        };
        Ok((connection, key, protection))
    }

    /// Gives the attached end `spec` names its new key ([`node_protocol::Op::Rekey`]):
    /// staged for receiving, and with `activate` used for sending too.
    pub(crate) fn rekey(&self, spec: &ConnectSpec, activate: bool) -> Result<(), ErrorReply> {
        let (connection, key, protection) = self.unwrap_key(spec)?;
        let mismatch = |what: &str| {
            Err(ErrorReply::new(
                ErrorKind::BadRequest,
                format!(
                    "connection {connection} of app {:?} on module {:?}: {what} does not match the attached end",
                    spec.app, self.module
                ),
            ))
        };
        match &spec.end {
            ConnectionEnd::Sender {
                peer_address,
                peer_module,
            } => {
                let mut outgoing = lock(&self.outgoing);
                let Some(end) = outgoing
                    .iter_mut()
                    .find(|end| end.app == spec.app && end.connection == connection)
                else {
                    return Err(not_attached(&spec.app, connection, &self.module));
                };
                if end.port != spec.port {
                    return mismatch("the port");
                }
                if &end.peer_address != peer_address || &end.peer_module != peer_module {
                    return mismatch("the peer");
                }
                if end.sender.protection() != protection {
                    return mismatch("the protection");
                }
                if let Some(responses) = end.responses.as_mut()
                    && !end.keys.accepts(&key)
                {
                    responses.stage_key(&key).map_err(too_many)?;
                    end.keys.receiving.push(key.clone());
                }
                if activate {
                    end.sender.rekey(&key);
                    end.rekeys += 1;
                    end.handed_over = false;
                    end.keys.activate(key, end.responses.is_some());
                }
            }
            ConnectionEnd::Receiver => {
                let mut incoming = lock(&self.incoming);
                let Some(end) = incoming
                    .get_mut(&connection)
                    .filter(|end| end.app == spec.app)
                else {
                    return Err(not_attached(&spec.app, connection, &self.module));
                };
                if end.port != spec.port {
                    return mismatch("the port");
                }
                if end.receiver.protection() != protection {
                    return mismatch("the protection");
                }
                if !end.keys.accepts(&key) {
                    end.receiver.stage_key(&key).map_err(too_many)?;
                    end.keys.receiving.push(key.clone());
                }
                if activate {
                    if let Some(responses) = end.responses.as_mut() {
                        responses.rekey(&key);
                    }
                    end.rekeys += 1;
                    end.handed_over = false;
                    end.keys.activate(key, true);
                }
            }
        }
        tracing::info!(
            module = %self.module,
            app = %spec.app,
            %connection,
            port = %spec.port,
            activate,
            "connection re-keyed"
        );
        Ok(())
    }

    /// Attaches the end `spec` describes, after opening its wrapped key for exactly this
    /// module, port, application and connection.
    pub(crate) fn connect(
        &self,
        spec: &ConnectSpec,
        manifest: &ModuleManifest,
    ) -> Result<(), ErrorReply> {
        let bad = |message: String| Err(ErrorReply::new(ErrorKind::BadRequest, message));
        // The end's port decides the connection's kind: one-way events (output → input) or
        // request → handler with responses in the reverse direction.
        let (one_way, two_way, what) = match spec.end {
            ConnectionEnd::Sender { .. } => {
                (&manifest.outputs, &manifest.requests, "output or request")
            }
            ConnectionEnd::Receiver => (&manifest.inputs, &manifest.handlers, "input or handler"),
        };
        let request_response = if one_way.contains(&spec.port) {
            false
        } else if two_way.contains(&spec.port) {
            true
        } else {
            return bad(format!(
                "module {:?} declares no {what} {:?}",
                self.module, spec.port
            ));
        };
        let (connection, key, protection) = self.unwrap_key(spec)?;
        match &spec.end {
            ConnectionEnd::Sender {
                peer_address,
                peer_module,
            } => {
                let mut outgoing = lock(&self.outgoing);
                if outgoing
                    .iter()
                    .any(|end| end.app == spec.app && end.connection == connection)
                {
                    return Err(ErrorReply::new(
                        ErrorKind::Exists,
                        format!(
                            "connection {connection} of app {:?} is already attached to {:?}",
                            spec.app, self.module
                        ),
                    ));
                }
                outgoing.push(OutgoingEnd {
                    app: spec.app.clone(),
                    connection,
                    port: spec.port.clone(),
                    sender: EventSender::new(&key, connection, Direction::Forward, protection),
                    responses: request_response.then(|| {
                        EventReceiver::new(&key, connection, Direction::Reverse, protection)
                    }),
                    peer_address: peer_address.clone(),
                    peer_module: peer_module.clone(),
                    sent: 0,
                    rekeys: 0,
                    keys: EndKeys::new(key),
                    handed_over: false,
                    tracker: Arc::default(),
                    holding: None,
                    retargeting: false,
                });
            }
            ConnectionEnd::Receiver => {
                let mut incoming = lock(&self.incoming);
                if incoming.contains_key(&connection) {
                    return Err(ErrorReply::new(
                        ErrorKind::Exists,
                        format!(
                            "connection {connection} is already attached to {:?}",
                            self.module
                        ),
                    ));
                }
                incoming.insert(
                    connection,
                    IncomingEnd {
                        app: spec.app.clone(),
                        port: spec.port.clone(),
                        receiver: EventReceiver::new(
                            &key,
                            connection,
                            Direction::Forward,
                            protection,
                        ),
                        responses: request_response.then(|| {
                            EventSender::new(&key, connection, Direction::Reverse, protection)
                        }),
                        delivered: 0,
                        rekeys: 0,
                        keys: EndKeys::new(key),
                        handed_over: false,
                        missing: 0,
                        forged: 0,
                        replayed: 0,
                        malformed: 0,
                    },
                );
            }
        }
        tracing::info!(
            module = %self.module,
            app = %spec.app,
            %connection,
            port = %spec.port,
            end = if matches!(spec.end, ConnectionEnd::Receiver) { "receiver" } else { "sender" },
            %protection,
            "connection attached"
        );
        Ok(())
    }

    /// Seals `data` for every connection attached to `output` and hands each event to the
    /// forwarder. Fails, without sealing, when a peer's queue is full, so no counter is used
    /// for an event that is not sent.
    pub(crate) fn emit(&self, output: &str, data: &[u8]) -> Result<(), String> {
        let mut outgoing = lock(&self.outgoing);
        for end in outgoing
            .iter_mut()
            .filter(|end| end.port == output && end.responses.is_none())
        {
            if end.handed_over {
                return Err(handed_over(end.connection));
            }
            if end.holding.is_none() && end.tracker.moved.load(Ordering::Acquire) {
                end.holding = Some(Vec::new());
            }
            if let Some(held) = end.holding.as_mut() {
                if held.len() >= HOLD_LIMIT {
                    end.tracker.refused.fetch_add(1, Ordering::Relaxed);
                    return Err(format!(
                        "connection {} to {} is moving and {HOLD_LIMIT} events wait; event not sent",
                        end.connection, end.peer_module
                    ));
                }
                held.push(end.sender.seal(data).map_err(|e| e.to_string())?);
                end.sent += 1;
                continue;
            }
            let Some(slot) = self.forwarder.reserve(&end.peer_address) else {
                end.tracker.refused.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "connection {} to {} at {} is backed up; event not sent",
                    end.connection, end.peer_module, end.peer_address
                ));
            };
            let envelope = end.sender.seal(data).map_err(|e| e.to_string())?;
            slot.send(end.peer_module.clone(), envelope, end.tracker.clone());
            end.sent += 1;
        }
        Ok(())
    }

    /// Sends `data` on request port `request` and waits (at most `timeout`) for the handler's
    /// response, which must authenticate in the connection's reverse direction. Runs on the
    /// requesting module's worker, which it blocks: the module is inside its call.
    pub(crate) fn ask(
        &self,
        request: &str,
        data: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let (answer_tx, answer_rx) = std::sync::mpsc::sync_channel(1);
        let connection = {
            let mut outgoing = lock(&self.outgoing);
            let end = outgoing
                .iter_mut()
                .find(|end| end.port == request && end.responses.is_some())
                .ok_or_else(|| format!("request {request:?} is not connected to a handler"))?;
            if end.handed_over {
                return Err(handed_over(end.connection));
            }
            if end.holding.is_some() || end.tracker.moved.load(Ordering::Acquire) {
                return Err(format!(
                    "the handler of request {request:?} is moving to another node; try again"
                ));
            }
            let slot = self.forwarder.reserve(&end.peer_address).ok_or_else(|| {
                format!(
                    "the link to {} is backed up; request not sent",
                    end.peer_address
                )
            })?;
            let envelope = end.sender.seal(data).map_err(|e| e.to_string())?;
            slot.ask(
                end.peer_module.clone(),
                envelope,
                answer_tx,
                end.tracker.clone(),
            );
            end.sent += 1;
            end.connection
        };
        let answer = answer_rx.recv_timeout(timeout).map_err(|_| {
            format!(
                "no response to request {request:?} within {} s",
                timeout.as_secs()
            )
        })?;
        let envelope = match answer {
            Ok(Reply::Answer { envelope }) => envelope.0,
            Ok(other) => return Err(format!("the peer answered a request with {other:?}")),
            Err(e) => return Err(format!("request {request:?}: {}", e.message)),
        };
        let mut outgoing = lock(&self.outgoing);
        let end = outgoing
            .iter_mut()
            .find(|end| end.connection == connection && end.responses.is_some())
            .ok_or("the connection went away while waiting")?;
        let responses = end.responses.as_mut().ok_or("not a request connection")?;
        let pending = responses.pending_keys();
        match responses.open(&envelope) {
            Ok(delivered) => {
                end.keys.retired(pending - responses.pending_keys());
                Ok(delivered.payload)
            }
            Err(rejection) => {
                end.tracker.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(module = %self.module, app = %end.app, port = %end.port, kind = rejection.kind(), reason = %rejection, "response rejected");
                Err(format!("response rejected: {rejection}"))
            }
        }
    }

    /// Seals a handler's `response` to the request that came on `connection`.
    pub(crate) fn seal_response(
        &self,
        connection: ConnectionId,
        response: &[u8],
    ) -> Result<Vec<u8>, ErrorReply> {
        let mut incoming = lock(&self.incoming);
        if incoming.get(&connection).is_some_and(|end| end.handed_over) {
            return Err(ErrorReply::new(ErrorKind::Moved, handed_over(connection)));
        }
        let sender = incoming
            .get_mut(&connection)
            .and_then(|end| end.responses.as_mut())
            .ok_or_else(|| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!("connection {connection} has no response direction"),
                )
            })?;
        sender
            .seal(response)
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))
    }

    /// Opens an incoming event (`request` false) or request (`request` true): `Ok` only for an
    /// authentic one newer than every one delivered before it on its connection, and only on a
    /// connection of that kind. Rejections are counted and logged.
    pub(crate) fn open(&self, envelope: &[u8], request: bool) -> Result<Opened, ErrorReply> {
        let refuse = |reason: String| {
            tracing::warn!(module = %self.module, %reason, "event rejected");
            Err(ErrorReply::new(ErrorKind::EventRejected, reason))
        };
        let header = match events::Envelope::parse(envelope) {
            Ok(parsed) => parsed.header,
            Err(rejection) => return refuse(rejection.to_string()),
        };
        let mut incoming = lock(&self.incoming);
        let Some(end) = incoming
            .get_mut(&header.connection)
            .filter(|end| end.responses.is_some() == request)
        else {
            return refuse(format!(
                "no {} connection {} is attached to module {:?}",
                if request { "request" } else { "event" },
                header.connection,
                self.module
            ));
        };
        let pending = end.receiver.pending_keys();
        match end.receiver.open(envelope) {
            Ok(delivered) => {
                end.keys.retired(pending - end.receiver.pending_keys());
                end.delivered += 1;
                end.missing += delivered.missing;
                if delivered.missing > 0 {
                    tracing::warn!(
                        module = %self.module,
                        app = %end.app,
                        port = %end.port,
                        counter = delivered.counter,
                        missing = delivered.missing,
                        sender_resumed = delivered.sender_resumed,
                        "events missing before this one (dropped on the way)"
                    );
                }
                Ok(Opened {
                    connection: header.connection,
                    port: end.port.clone(),
                    payload: delivered.payload,
                    counter: delivered.counter,
                    missing: delivered.missing,
                })
            }
            Err(rejection) => {
                match rejection {
                    Rejection::Forged { .. } => end.forged += 1,
                    Rejection::Replayed { .. } => end.replayed += 1,
                    _ => end.malformed += 1,
                }
                tracing::warn!(
                    module = %self.module,
                    app = %end.app,
                    port = %end.port,
                    kind = rejection.kind(),
                    reason = %rejection,
                    "event rejected"
                );
                Err(ErrorReply::new(
                    ErrorKind::EventRejected,
                    rejection.to_string(),
                ))
            }
        }
    }

    /// True when a connection feeds `input`: then only its authentic events may enter there,
    /// never an event an admin injects.
    pub(crate) fn feeds(&self, input: &str) -> bool {
        lock(&self.incoming)
            .values()
            .any(|end| end.port == input && end.responses.is_none())
    }

    /// Opens a migration's hand-over for `app` that `sender` (the old instance) sealed to this
    /// one.
    pub(crate) fn open_handover(
        &self,
        sealed: &[u8],
        sender: &ModulePublicKey,
        app: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, events::EventError> {
        let identity = lock(&self.identity);
        identity.keys.open_handover(
            sealed,
            sender,
            &events::wrap::HandoverContext {
                app,
                module: &self.module,
                measurement: &identity.measurement,
            },
        )
    }

    /// Seals a migration's hand-over for `app` from this instance to `recipient` (the new one).
    pub(crate) fn seal_handover(
        &self,
        plaintext: &[u8],
        recipient: &ModulePublicKey,
        app: &str,
    ) -> Result<Vec<u8>, events::EventError> {
        let identity = lock(&self.identity);
        events::wrap::seal_handover(
            plaintext,
            recipient,
            &identity.keys,
            &events::wrap::HandoverContext {
                app,
                module: &self.module,
                measurement: &identity.measurement,
            },
        )
    }

    /// True when a connection end is attached.
    pub(crate) fn has_ends(&self) -> bool {
        !lock(&self.outgoing).is_empty() || !lock(&self.incoming).is_empty()
    }

    /// Events and requests this module sent that no peer has answered yet.
    pub(crate) fn in_flight(&self) -> u64 {
        lock(&self.outgoing)
            .iter()
            .map(|end| end.tracker.in_flight.load(Ordering::Acquire))
            .sum()
    }

    /// Every end, its keys wrapped to `recipient` (the module's new instance, same name and
    /// measurement) for exactly its own context.
    pub(crate) fn hand_over(&self, recipient: &ModulePublicKey) -> Result<Vec<HandedEnd>, String> {
        let measurement = lock(&self.identity).measurement;
        let wrap = |app: &str, connection: ConnectionId, port: &str, key: &ConnectionKey| {
            wrap_key(
                key,
                recipient,
                &WrapContext {
                    app,
                    connection,
                    module: &self.module,
                    port,
                    measurement: &measurement,
                },
            )
            .map_err(|e| e.to_string())
        };
        let wrap_all = |app: &str, connection: ConnectionId, port: &str, keys: &EndKeys| {
            let receiving = keys
                .receiving
                .iter()
                .map(|key| wrap(app, connection, port, key))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, String>((receiving, wrap(app, connection, port, &keys.sending)?))
        };
        let mut ends = Vec::new();
        for end in lock(&self.outgoing).iter() {
            if end.handed_over {
                return Err(handed_over(end.connection));
            }
            // Events it sent to a module that is moving wait here: they would be lost.
            if end.holding.is_some()
                || end.tracker.moved.load(Ordering::Acquire)
                || !lock(&end.tracker.parked).is_empty()
            {
                return Err(format!(
                    "connection {} to {} is being pointed at another node; finish that first",
                    end.connection, end.peer_module
                ));
            }
            let (receiving, sending) = wrap_all(&end.app, end.connection, &end.port, &end.keys)?;
            ends.push(HandedEnd {
                app: end.app.clone(),
                connection: end.connection.get(),
                port: end.port.clone(),
                peer: Some((end.peer_address.clone(), end.peer_module.clone())),
                request: end.responses.is_some(),
                authenticated: end.sender.protection() == Protection::Authenticated,
                receiving,
                sending,
                next: end.sender.next_counter(),
                expected: end.responses.as_ref().and_then(EventReceiver::expected),
                events: end.sent,
                rekeys: end.rekeys,
            });
        }
        for (connection, end) in lock(&self.incoming).iter() {
            if end.handed_over {
                return Err(handed_over(*connection));
            }
            let (receiving, sending) = wrap_all(&end.app, *connection, &end.port, &end.keys)?;
            ends.push(HandedEnd {
                app: end.app.clone(),
                connection: connection.get(),
                port: end.port.clone(),
                peer: None,
                request: end.responses.is_some(),
                authenticated: end.receiver.protection() == Protection::Authenticated,
                receiving,
                sending,
                next: end.responses.as_ref().and_then(EventSender::next_counter),
                expected: end.receiver.expected(),
                events: end.delivered,
                rekeys: end.rekeys,
            });
        }
        Ok(ends)
    }

    /// The hand-over left with these ends' keys and counters: this instance seals nothing more
    /// under them (a thawed module serves again only after a re-key).
    pub(crate) fn mark_handed_over(&self) {
        for end in lock(&self.outgoing).iter_mut() {
            end.handed_over = true;
        }
        for end in lock(&self.incoming).values_mut() {
            end.handed_over = true;
        }
    }

    /// Attaches the ends a migration handed over, with their keys (opened with this instance's
    /// key pair) and counters, so the connections continue exactly where they stopped.
    pub(crate) fn take_over(&self, ends: Vec<HandedEnd>) -> Result<(), ErrorReply> {
        let identity = lock(&self.identity);
        let bad = |message: String| ErrorReply::new(ErrorKind::BadRequest, message);
        let unwrap = |app: &str, connection: ConnectionId, port: &str, wrapped: &WrappedKey| {
            identity
                .keys
                .unwrap_key(
                    wrapped,
                    &WrapContext {
                        app,
                        connection,
                        module: &self.module,
                        port,
                        measurement: &identity.measurement,
                    },
                )
                .map_err(|e| bad(format!("connection {connection}: {e}")))
        };
        let mut outgoing = Vec::new();
        let mut incoming = BTreeMap::new();
        for end in ends {
            let connection = ConnectionId::new(end.connection).map_err(|e| bad(e.to_string()))?;
            let protection = if end.authenticated {
                Protection::Authenticated
            } else {
                Protection::Encrypted
            };
            let receiving = end
                .receiving
                .iter()
                .map(|wrapped| unwrap(&end.app, connection, &end.port, wrapped))
                .collect::<Result<Vec<_>, _>>()?;
            let keys = EndKeys {
                sending: unwrap(&end.app, connection, &end.port, &end.sending)?,
                receiving,
            };
            let next = end.next;
            let exhausted = || bad(format!("connection {connection}: its counters are used up"));
            let receiver = |direction| {
                let (current, staged) = keys
                    .receiving
                    .split_first()
                    .ok_or_else(|| bad(format!("connection {connection}: no receiving key")))?;
                let mut receiver = EventReceiver::resume(
                    current,
                    connection,
                    direction,
                    protection,
                    end.expected.unwrap_or(u64::MAX),
                );
                for key in staged {
                    receiver.stage_key(key).map_err(too_many)?;
                }
                Ok::<_, ErrorReply>(receiver)
            };
            let sender = |direction| {
                next.map(|next| {
                    EventSender::continuing(&keys.sending, connection, direction, protection, next)
                })
                .ok_or_else(exhausted)
            };
            match end.peer {
                Some((peer_address, peer_module)) => outgoing.push(OutgoingEnd {
                    app: end.app,
                    connection,
                    port: end.port,
                    sender: sender(Direction::Forward)?,
                    responses: match end.request {
                        true => Some(receiver(Direction::Reverse)?),
                        false => None,
                    },
                    peer_address,
                    peer_module,
                    sent: end.events,
                    rekeys: end.rekeys,
                    keys,
                    handed_over: false,
                    tracker: Arc::default(),
                    holding: None,
                    retargeting: false,
                }),
                None => {
                    let receiver = receiver(Direction::Forward)?;
                    let responses = match end.request {
                        true => Some(sender(Direction::Reverse)?),
                        false => None,
                    };
                    incoming.insert(
                        connection,
                        IncomingEnd {
                            app: end.app,
                            port: end.port,
                            receiver,
                            responses,
                            delivered: end.events,
                            rekeys: end.rekeys,
                            keys,
                            handed_over: false,
                            missing: 0,
                            forged: 0,
                            replayed: 0,
                            malformed: 0,
                        },
                    );
                }
            }
        }
        drop(identity);
        let (mut out, mut inc) = (lock(&self.outgoing), lock(&self.incoming));
        if !out.is_empty() || !inc.is_empty() {
            return Err(ErrorReply::new(
                ErrorKind::Exists,
                format!("module {:?} has connections already", self.module),
            ));
        }
        *out = outgoing;
        *inc = incoming;
        Ok(())
    }

    /// Points the sending end of `connection` at `peer_address`, where its receiving module now
    /// runs. Events sealed meanwhile are held; once every event sent to the old node is settled
    /// (delivered there, or parked because the module had left), the parked ones and then the
    /// held ones go to the new node in counter order, before any later event.
    pub(crate) async fn retarget(
        &self,
        app: &str,
        connection: u32,
        peer_address: &str,
    ) -> Result<(), ErrorReply> {
        let connection = ConnectionId::new(connection)
            .map_err(|e| ErrorReply::new(ErrorKind::BadRequest, e.to_string()))?;
        let tracker = {
            let mut outgoing = lock(&self.outgoing);
            let end = outgoing
                .iter_mut()
                .find(|end| end.app == app && end.connection == connection)
                .ok_or_else(|| not_attached(app, connection, &self.module))?;
            if end.retargeting {
                return Err(ErrorReply::new(
                    ErrorKind::Exists,
                    format!("connection {connection} is being pointed at another node already"),
                ));
            }
            end.retargeting = true;
            end.holding.get_or_insert_with(Vec::new);
            end.tracker.clone()
        };
        let deadline = std::time::Instant::now() + SETTLE_TIMEOUT;
        let settled = loop {
            if tracker.in_flight.load(Ordering::Acquire) == 0 {
                break true;
            }
            if std::time::Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let mut outgoing = lock(&self.outgoing);
        let end = outgoing
            .iter_mut()
            .find(|end| end.app == app && end.connection == connection)
            .ok_or_else(|| not_attached(app, connection, &self.module))?;
        end.retargeting = false;
        // Nothing is in flight any more, so no further `Moved` can come for what was sent.
        tracker.moved.store(false, Ordering::Release);
        let mut parked = tracker.take_parked();
        parked.sort_by_key(|envelope| {
            events::Envelope::parse(envelope).map_or(u64::MAX, |e| e.header.counter)
        });
        let previous = end.peer_address.clone();
        if settled {
            end.peer_address = peer_address.to_owned();
        }
        let held = end.holding.take().unwrap_or_default();
        let mut unsent = 0u64;
        for envelope in parked.into_iter().chain(held) {
            match self.forwarder.reserve(&end.peer_address) {
                Some(slot) => slot.send(end.peer_module.clone(), envelope, end.tracker.clone()),
                None => unsent += 1,
            }
        }
        if unsent > 0 {
            end.tracker.refused.fetch_add(unsent, Ordering::Relaxed);
            tracing::warn!(module = %self.module, %connection, unsent, "events not sent after retargeting: the link is backed up");
        }
        if !settled {
            return Err(ErrorReply::new(
                ErrorKind::Internal,
                format!(
                    "events of connection {connection} to {previous} were not settled within {} s; it stays pointed there",
                    SETTLE_TIMEOUT.as_secs()
                ),
            ));
        }
        tracing::info!(module = %self.module, app, %connection, from = %previous, to = %peer_address, "connection pointed at the receiving module's new node");
        Ok(())
    }

    /// Counters of every end, for `list` and `app status`.
    pub(crate) fn info(&self) -> Vec<ConnectionInfo> {
        let mut out: Vec<ConnectionInfo> = lock(&self.outgoing)
            .iter()
            .map(|end| ConnectionInfo {
                app: end.app.clone(),
                connection: end.connection.get(),
                port: end.port.clone(),
                end: "sender".into(),
                events: end.sent,
                undelivered: end.tracker.refused.load(Ordering::Relaxed),
                missing: 0,
                forged: 0,
                replayed: 0,
                malformed: 0,
                rekeys: end.rekeys,
            })
            .collect();
        out.extend(lock(&self.incoming).iter().map(|(id, end)| ConnectionInfo {
            app: end.app.clone(),
            connection: id.get(),
            port: end.port.clone(),
            end: "receiver".into(),
            events: end.delivered,
            undelivered: 0,
            missing: end.missing,
            forged: end.forged,
            replayed: end.replayed,
            malformed: end.malformed,
            rekeys: end.rekeys,
        }));
        out
    }
}
