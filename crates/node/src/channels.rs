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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use events::wrap::{ModuleKeyPair, WrapContext, WrappedKey};
use events::{ConnectionId, Direction, EventReceiver, EventSender, Protection, Rejection};
use node_protocol::{
    ConnectSpec, ConnectionEnd, ConnectionInfo, ErrorKind, ErrorReply, EventProtection,
    ModuleManifest, Reply,
};

use crate::forward::Forwarder;

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
    /// Events not sent (queue full) or refused by the peer; the forwarder counts the latter.
    refused: Arc<AtomicU64>,
}

struct IncomingEnd {
    app: String,
    port: String,
    receiver: EventReceiver,
    /// For a request → handler connection: seals the handler's responses.
    responses: Option<EventSender>,
    delivered: u64,
    rekeys: u64,
    missing: u64,
    forged: u64,
    replayed: u64,
    malformed: u64,
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
                if let Some(responses) = end.responses.as_mut() {
                    responses.stage_key(&key);
                }
                if activate {
                    end.sender.rekey(&key);
                    end.rekeys += 1;
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
                end.receiver.stage_key(&key);
                if activate {
                    if let Some(responses) = end.responses.as_mut() {
                        responses.rekey(&key);
                    }
                    end.rekeys += 1;
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
                    refused: Arc::default(),
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
            let Some(slot) = self.forwarder.reserve(&end.peer_address) else {
                end.refused.fetch_add(1, Ordering::Relaxed);
                return Err(format!(
                    "connection {} to {} at {} is backed up; event not sent",
                    end.connection, end.peer_module, end.peer_address
                ));
            };
            let envelope = end.sender.seal(data).map_err(|e| e.to_string())?;
            slot.send(end.peer_module.clone(), envelope, end.refused.clone());
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
                end.refused.clone(),
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
        match responses.open(&envelope) {
            Ok(delivered) => Ok(delivered.payload),
            Err(rejection) => {
                end.refused.fetch_add(1, Ordering::Relaxed);
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
        match end.receiver.open(envelope) {
            Ok(delivered) => {
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
                undelivered: end.refused.load(Ordering::Relaxed),
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
