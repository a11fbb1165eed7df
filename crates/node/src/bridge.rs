//! The bridge between a module's ports and MQTT topics ([`node_protocol::Op::Topic`]): one MQTT 5
//! client per (app, module, broker), over attested TLS, that authenticates as the module with
//! its node-signed claims; outputs are published, subscriptions feed inputs.
//!
//! Delivery rules: an output's events wait in a bounded queue per end (the oldest is dropped
//! and counted when it is full); QoS 1 publications stay in flight until the broker's PUBACK
//! and are resent (DUP) after a reconnect, in order. A QoS 1 message for an input is
//! acknowledged only after the module's delivery call returned, so a node that dies before
//! gets it again from the broker's session (the client id is stable and the session outlives
//! the connection).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::num::{NonZeroU16, NonZeroU32};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atls::{AtlsClient, Peer};
use mqtt::client::{Connection, KeepAlive, KeepAliveDue};
use mqtt::{
    Acknowledgement, Connect, Disconnect, Packet, PacketId, Properties, ProtocolVersion, Publish,
    PublishQos, QoS, ReasonCode, Subscribe, Subscription, SubscriptionOptions,
};
use node_protocol::{ErrorReply, TopicDirection, TopicEndInfo, TopicSpec};
use sha2::Digest as _;
use tokio::net::TcpStream;

/// The CONNECT Authentication Method under which a module presents its signed claims.
pub(crate) const MODULE_CLAIMS_AUTH_METHOD: &str = "teemesh-module-claims-v1";
/// How long the broker keeps a module's session after its connection ends: long enough for
/// reconnects (QoS 1 messages wait there), short enough that an unloaded module's session
/// does not linger.
const SESSION_EXPIRY_SECS: u32 = 600;
/// Keep-alive asked of the broker (its Server Keep Alive wins): a PINGREQ goes out when the
/// bridge has sent, or heard, nothing for half of it, and a broker silent for 1.5 times it is
/// taken as gone (the bridge reconnects).
const KEEP_ALIVE_SECS: u16 = 30;
/// QoS 1 publications in flight at once (fewer if the broker's Receive Maximum says so).
const MAX_IN_FLIGHT: usize = 64;
/// Events an output end keeps while the broker is unreachable or slow.
pub(crate) const END_QUEUE: usize = 1024;
/// The largest packet the client accepts: a module payload and its headers.
const MAX_PACKET: u32 = (node_protocol::MAX_PAYLOAD_LEN as u32) + (64 << 10);
/// Connection and handshake bound.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Delivers one message to a module's input on its worker; resolves when the call returned.
pub(crate) type Deliver = Arc<
    dyn Fn(String, Vec<u8>) -> Pin<Box<dyn Future<Output = Result<(), ErrorReply>> + Send>>
        + Send
        + Sync,
>;

/// Signs fresh claims for the module as it is now: the JSON and the measurement they name.
pub(crate) type SignClaims = Arc<dyn Fn() -> Result<(String, String), String> + Send + Sync>;

/// What a client needs from the node.
#[derive(Clone)]
pub(crate) struct BridgeContext {
    /// Presents the node's attested identity and appraises the broker under the peer policy.
    pub(crate) client: AtlsClient,
    /// The node's name (part of the MQTT client id).
    pub(crate) node: String,
}

/// One topic end: a module's port and a topic, with its counters.
pub(crate) struct TopicEnd {
    spec: TopicSpec,
    qos: QoS,
    queue: Mutex<VecDeque<Vec<u8>>>,
    published: AtomicU64,
    delivered: AtomicU64,
    dropped: AtomicU64,
    in_flight: AtomicU64,
    /// A subscribing end: the broker granted its subscription in the current session.
    subscribed: AtomicBool,
    last_error: Mutex<Option<String>>,
}

impl TopicEnd {
    /// Ready to carry messages: connected, and for a subscribing end, subscribed.
    fn ready(&self, connected: bool) -> bool {
        connected
            && (self.spec.direction == TopicDirection::Publish
                || self.subscribed.load(Ordering::Relaxed))
    }

    fn set_error(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    /// Whether a message on `topic` is for this (subscribing) end.
    fn matches(&self, topic: &str) -> bool {
        mqtt::topic::TopicFilter::parse(&self.spec.topic)
            .is_ok_and(|filter| mqtt::topic::matches(filter.filter, topic))
    }
}

/// The MQTT client of one (app, module, broker) and the ends it carries.
pub(crate) struct BrokerClient {
    app: String,
    module: String,
    broker_address: String,
    client_id: String,
    ends: Mutex<Vec<Arc<TopicEnd>>>,
    /// New events, new ends, an update or the end of the module.
    wake: tokio::sync::Notify,
    closing: AtomicBool,
    /// The module was updated: reconnect with claims for its new measurement.
    reauthenticate: AtomicBool,
    connected: AtomicBool,
    reconnects: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A QoS 1 publication the broker has not acknowledged yet.
struct InFlight {
    packet_id: PacketId,
    end: Arc<TopicEnd>,
    payload: Vec<u8>,
}

/// How a session with the broker ended without an error.
enum Ended {
    Closing,
    Reauthenticate,
}

impl BrokerClient {
    /// A client for `app`'s module `module` on the broker at `broker_address`, run by the node
    /// named `node` under the certificate `node_certificate`; [`Self::start`] runs it.
    pub(crate) fn new(
        node: &str,
        node_certificate: &[u8],
        app: &str,
        module: &str,
        broker_address: &str,
    ) -> Self {
        Self {
            app: app.to_owned(),
            module: module.to_owned(),
            broker_address: broker_address.to_owned(),
            client_id: client_id(node, node_certificate, app, module),
            ends: Mutex::default(),
            wake: tokio::sync::Notify::new(),
            closing: AtomicBool::new(false),
            reauthenticate: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            last_error: Mutex::default(),
        }
    }

    /// Whether this is the client of (`app`, broker `address`).
    pub(crate) fn is_for(&self, app: &str, address: &str) -> bool {
        self.app == app && self.broker_address == address
    }

    fn ends(&self) -> Vec<Arc<TopicEnd>> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The ends of this client that use `port` in `direction`.
    pub(crate) fn uses(&self, port: &str, direction: TopicDirection) -> bool {
        self.ends()
            .iter()
            .any(|end| end.spec.port == port && end.spec.direction == direction)
    }

    /// Adds an end (checked by the caller); a running client subscribes it right away.
    pub(crate) fn attach(&self, spec: &TopicSpec) -> Result<(), String> {
        let qos = match spec.qos {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            other => {
                return Err(format!(
                    "QoS {other} is not supported by topic ends (0 or 1)"
                ));
            }
        };
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        if ends.iter().any(|end| {
            end.spec.port == spec.port
                && end.spec.topic == spec.topic
                && end.spec.direction == spec.direction
        }) {
            return Err(format!(
                "port {:?} already has this topic end ({} {:?})",
                spec.port,
                spec.direction.as_str(),
                spec.topic
            ));
        }
        ends.push(Arc::new(TopicEnd {
            spec: spec.clone(),
            qos,
            queue: Mutex::default(),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            last_error: Mutex::default(),
        }));
        drop(ends);
        self.wake.notify_one();
        Ok(())
    }

    /// Queues an event the module emitted on `output` for every publishing end of that port
    /// (dropping the oldest when an end's queue is full). Never blocks the module.
    pub(crate) fn emit(&self, output: &str, data: &[u8]) {
        let mut queued = false;
        for end in self.ends() {
            if end.spec.direction != TopicDirection::Publish || end.spec.port != output {
                continue;
            }
            let mut queue = end.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.len() >= END_QUEUE {
                queue.pop_front();
                end.dropped.fetch_add(1, Ordering::Relaxed);
            }
            queue.push_back(data.to_vec());
            queued = true;
        }
        if queued {
            self.wake.notify_one();
        }
    }

    /// The module runs new code: the broker must see claims for its new measurement.
    pub(crate) fn reauthenticate(&self) {
        self.reauthenticate.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Ends the client: it closes its session with the broker (expiry 0) and stops.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// The counters of every end.
    pub(crate) fn info(&self) -> Vec<TopicEndInfo> {
        let client_error = self
            .last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        self.ends()
            .iter()
            .map(|end| {
                let queued = end.queue.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
                TopicEndInfo {
                    app: self.app.clone(),
                    port: end.spec.port.clone(),
                    broker_address: self.broker_address.clone(),
                    topic: end.spec.topic.clone(),
                    qos: end.spec.qos,
                    direction: end.spec.direction,
                    published: end.published.load(Ordering::Relaxed),
                    delivered: end.delivered.load(Ordering::Relaxed),
                    dropped: end.dropped.load(Ordering::Relaxed),
                    pending: queued + end.in_flight.load(Ordering::Relaxed),
                    reconnects: self.reconnects.load(Ordering::Relaxed),
                    connected: end.ready(self.connected.load(Ordering::Relaxed)),
                    last_error: end
                        .last_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone()
                        .or_else(|| client_error.clone()),
                }
            })
            .collect()
    }

    fn set_error(&self, message: String) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(message);
    }

    /// Runs the client until [`Self::close`]: connect, serve, and on any failure reconnect
    /// with backoff, keeping unacknowledged publications for the next session.
    pub(crate) fn start(
        self: &Arc<Self>,
        context: BridgeContext,
        sign_claims: SignClaims,
        deliver: Deliver,
    ) {
        let client = self.clone();
        tokio::spawn(async move {
            let mut in_flight = VecDeque::new();
            let mut backoff = BACKOFF_MIN;
            let mut sessions = 0u64;
            while !client.closing.load(Ordering::Acquire) {
                let outcome = client
                    .session(
                        &context,
                        &sign_claims,
                        &deliver,
                        &mut in_flight,
                        &mut sessions,
                        &mut backoff,
                    )
                    .await;
                client.connected.store(false, Ordering::Relaxed);
                for end in client.ends() {
                    end.subscribed.store(false, Ordering::Relaxed);
                }
                match outcome {
                    Ok(Ended::Closing) => break,
                    Ok(Ended::Reauthenticate) => continue,
                    Err(reason) => {
                        tracing::warn!(
                            app = %client.app,
                            module = %client.module,
                            broker = %client.broker_address,
                            error = %reason,
                            retry_ms = backoff.as_millis() as u64,
                            "MQTT bridge: connection to the broker lost or refused"
                        );
                        client.set_error(reason);
                    }
                }
                // Wait out the backoff; events arriving meanwhile stay queued, only closing
                // cuts it short.
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        () = &mut wait => break,
                        () = client.wake.notified() => {
                            if client.closing.load(Ordering::Acquire) {
                                break;
                            }
                        }
                    }
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
            tracing::info!(app = %client.app, module = %client.module, broker = %client.broker_address, "MQTT bridge stopped");
        });
    }

    /// One session with the broker.
    async fn session(
        &self,
        context: &BridgeContext,
        sign_claims: &SignClaims,
        deliver: &Deliver,
        in_flight: &mut VecDeque<InFlight>,
        sessions: &mut u64,
        backoff: &mut Duration,
    ) -> Result<Ended, String> {
        // Any update from here on is in the claims signed now.
        self.reauthenticate.store(false, Ordering::Release);
        let (claims_json, measurement) = sign_claims()?;
        let address = &self.broker_address;
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| format!("cannot connect to {address}: {e}"))?;
            let _ = tcp.set_nodelay(true);
            context
                .client
                .connect(tcp)
                .await
                .map_err(|e| format!("attested TLS with the broker at {address}: {e}"))
        })
        .await
        .map_err(|_| format!("no attested session with {address} within {CONNECT_TIMEOUT:?}"))??;
        let Peer::Attested(attestation) = &stream.peer else {
            return Err(format!("the broker at {address} presented no evidence"));
        };
        let claims = attestation.verified.claims();
        let simulated = claims.is_simulated();
        tracing::info!(
            app = %self.app,
            module = %self.module,
            broker = %address,
            platform = claims.platform_kind().as_str(),
            measurement = %claims.primary_measurement_hex(),
            broker_node = attestation.bound.node_name.as_deref().unwrap_or("-"),
            simulated,
            "MQTT bridge: broker appraised under the peer policy"
        );
        if simulated {
            tracing::warn!(
                app = %self.app,
                module = %self.module,
                broker = %address,
                measurement = %claims.primary_measurement_hex(),
                "MQTT bridge: the broker is SIMULATED: its evidence proves nothing, it runs in no TEE (allowed only because the peer policy sets allow_simulated)"
            );
        }
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: false,
            keep_alive: KEEP_ALIVE_SECS,
            client_id: self.client_id.clone(),
            will: None,
            username: None,
            password: None,
            properties: Properties {
                session_expiry_interval: Some(SESSION_EXPIRY_SECS),
                authentication_method: Some(MODULE_CLAIMS_AUTH_METHOD.to_owned()),
                authentication_data: Some(claims_json.into_bytes().into()),
                receive_maximum: NonZeroU16::new(64),
                maximum_packet_size: NonZeroU32::new(MAX_PACKET),
                ..Properties::default()
            },
        };
        let (mut connection, ack) = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::handshake(stream.stream, connect, MAX_PACKET),
        )
        .await
        .map_err(|_| format!("no CONNACK from {address} within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| format!("MQTT with {address}: {e}"))?;
        if ack.reason_code.is_error() {
            let reason = ack
                .properties
                .reason_string
                .as_deref()
                .map(|r| format!(" ({})", r.escape_debug()))
                .unwrap_or_default();
            tracing::warn!(
                app = %self.app,
                module = %self.module,
                broker = %address,
                reason_code = ?ack.reason_code,
                "MQTT bridge: the broker refused the module"
            );
            return Err(format!(
                "the broker refused the module: {:?}{reason}",
                ack.reason_code
            ));
        }
        *sessions += 1;
        if *sessions > 1 {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        *backoff = BACKOFF_MIN;
        self.connected.store(true, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        tracing::info!(
            app = %self.app,
            module = %self.module,
            broker = %address,
            client_id = %self.client_id,
            module_measurement = %measurement,
            session_present = ack.session_present,
            "MQTT bridge: connected as the module"
        );
        let window = ack
            .properties
            .receive_maximum
            .map_or(MAX_IN_FLIGHT, |m| usize::from(m.get()).min(MAX_IN_FLIGHT));

        // What the last session left unacknowledged goes first, in order.
        for message in in_flight.iter() {
            connection
                .queue(&publish(
                    &message.end,
                    message.packet_id,
                    &message.payload,
                    true,
                ))
                .map_err(|e| e.to_string())?;
        }
        let mut next_id: u16 = in_flight.back().map_or(0, |m| m.packet_id.get());
        let mut subscribed: HashSet<usize> = HashSet::new();
        // SUBSCRIBE packet id → the ends it asked for, until its SUBACK.
        let mut pending_subscriptions: HashMap<u16, Vec<usize>> = HashMap::new();
        // The broker's Server Keep Alive, if it set one, is the keep alive in force.
        let period = ack.properties.server_keep_alive.unwrap_or(KEEP_ALIVE_SECS);
        let mut keep_alive = KeepAlive::new(
            Duration::from_secs(u64::from(period)),
            std::time::Instant::now(),
        );
        loop {
            if self.closing.load(Ordering::Acquire) {
                // Expiry 0: the broker forgets the module's session with this connection.
                let _ = connection.queue(&Packet::Disconnect(Disconnect {
                    reason_code: ReasonCode::Success,
                    properties: Properties {
                        session_expiry_interval: Some(0),
                        ..Properties::default()
                    },
                }));
                let _ = connection.flush().await;
                connection.shutdown().await;
                return Ok(Ended::Closing);
            }
            if self.reauthenticate.load(Ordering::Acquire) {
                let _ = connection.queue(&Packet::Disconnect(Disconnect {
                    reason_code: ReasonCode::Success,
                    properties: Properties::default(),
                }));
                let _ = connection.flush().await;
                connection.shutdown().await;
                tracing::info!(app = %self.app, module = %self.module, broker = %address, "MQTT bridge: the module was updated; reconnecting with its new claims");
                return Ok(Ended::Reauthenticate);
            }
            let ends = self.ends();
            // Subscriptions for ends attached since the session started.
            let new: Vec<usize> = (0..ends.len())
                .filter(|&i| {
                    ends[i].spec.direction == TopicDirection::Subscribe && !subscribed.contains(&i)
                })
                .collect();
            if !new.is_empty() {
                next_id = next_packet_id(next_id, in_flight);
                let packet_id = PacketId::new(next_id).ok_or("no packet identifier")?;
                connection
                    .queue(&Packet::Subscribe(Subscribe {
                        packet_id,
                        subscriptions: new
                            .iter()
                            .map(|&i| Subscription {
                                filter: ends[i].spec.topic.clone(),
                                options: SubscriptionOptions::new(ends[i].qos),
                            })
                            .collect(),
                        properties: Properties::default(),
                    }))
                    .map_err(|e| e.to_string())?;
                subscribed.extend(new.iter().copied());
                pending_subscriptions.insert(next_id, new);
            }
            // Queued events, oldest first per end, within the broker's window; a full write
            // buffer is flushed and the round continues without waiting.
            let mut more = false;
            'fill: loop {
                let mut took = false;
                for end in ends
                    .iter()
                    .filter(|e| e.spec.direction == TopicDirection::Publish)
                {
                    if end.qos != QoS::AtMostOnce && in_flight.len() >= window {
                        continue;
                    }
                    let Some(payload) = end
                        .queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .pop_front()
                    else {
                        continue;
                    };
                    took = true;
                    if end.qos == QoS::AtMostOnce {
                        connection
                            .queue(&Packet::Publish(Publish {
                                dup: false,
                                qos: PublishQos::AtMostOnce,
                                retain: false,
                                topic: end.spec.topic.clone(),
                                payload: payload.into(),
                                properties: Properties::default(),
                            }))
                            .map_err(|e| e.to_string())?;
                        end.published.fetch_add(1, Ordering::Relaxed);
                    } else {
                        next_id = next_packet_id(next_id, in_flight);
                        let packet_id = PacketId::new(next_id).ok_or("no packet identifier")?;
                        connection
                            .queue(&publish(end, packet_id, &payload, false))
                            .map_err(|e| e.to_string())?;
                        end.in_flight.fetch_add(1, Ordering::Relaxed);
                        in_flight.push_back(InFlight {
                            packet_id,
                            end: end.clone(),
                            payload,
                        });
                    }
                    if connection.queued_bytes() > 64 << 10 {
                        more = true;
                        break 'fill;
                    }
                }
                if !took {
                    break;
                }
            }
            let wrote = connection.queued_bytes() > 0;
            connection.flush().await.map_err(|e| e.to_string())?;
            if wrote {
                keep_alive.sent(std::time::Instant::now());
            }
            if more {
                continue;
            }
            // Judged only here, where the broker's packets are read: before waiting for them.
            let due = match keep_alive.poll(std::time::Instant::now()) {
                KeepAliveDue::Nothing { until } => until,
                KeepAliveDue::Ping => {
                    connection
                        .queue(&Packet::PingReq)
                        .map_err(|e| e.to_string())?;
                    connection.flush().await.map_err(|e| e.to_string())?;
                    keep_alive.pinged(std::time::Instant::now());
                    continue;
                }
                KeepAliveDue::BrokerSilent { silent } => {
                    tracing::warn!(
                        app = %self.app,
                        module = %self.module,
                        broker = %address,
                        "MQTT bridge: the broker answered nothing for {} s (1.5 × its keep alive of {period} s); reconnecting",
                        silent.as_secs()
                    );
                    return Err(format!(
                        "the broker answered nothing for {} s (1.5 × the keep alive of {period} s)",
                        silent.as_secs()
                    ));
                }
            };
            tokio::select! {
                // What the broker sent is read before keep alive is judged.
                biased;
                packet = connection.next() => {
                    let packet = packet.map_err(|e| e.to_string())?;
                    keep_alive.heard(std::time::Instant::now());
                    if let Packet::SubAck(ack) = &packet {
                        let asked = pending_subscriptions.remove(&ack.packet_id.get()).unwrap_or_default();
                        self.on_suback(ack, &asked, &ends);
                    } else {
                        self.on_packet(packet, &ends, deliver, in_flight, &mut connection).await?;
                    }
                }
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(due.into()) => {}
            }
        }
    }

    /// Marks the ends a SUBACK granted, and records refusals on the ends refused.
    fn on_suback(&self, ack: &mqtt::SubAck, asked: &[usize], ends: &[Arc<TopicEnd>]) {
        for (code, &index) in ack.reason_codes.iter().zip(asked) {
            let Some(end) = ends.get(index) else { continue };
            if code.is_error() {
                tracing::warn!(
                    app = %self.app,
                    module = %self.module,
                    broker = %self.broker_address,
                    filter = %end.spec.topic,
                    reason_code = ?code,
                    "MQTT bridge: the broker refused a subscription"
                );
                end.set_error(format!(
                    "the broker refused the subscription to {:?}: {code:?}",
                    end.spec.topic
                ));
            } else {
                end.subscribed.store(true, Ordering::Relaxed);
            }
        }
    }

    async fn on_packet<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        &self,
        packet: Packet,
        ends: &[Arc<TopicEnd>],
        deliver: &Deliver,
        in_flight: &mut VecDeque<InFlight>,
        connection: &mut Connection<S>,
    ) -> Result<(), String> {
        match packet {
            Packet::Publish(message) => {
                let packet_id = match message.qos {
                    PublishQos::AtMostOnce => None,
                    PublishQos::AtLeastOnce(id) => Some(id),
                    PublishQos::ExactlyOnce(_) => {
                        return Err(
                            "the broker sent QoS 2 on a subscription of at most QoS 1".into()
                        );
                    }
                };
                let payload = message.payload.to_vec();
                for end in ends.iter().filter(|e| {
                    e.spec.direction == TopicDirection::Subscribe && e.matches(&message.topic)
                }) {
                    match deliver(end.spec.port.clone(), payload.clone()).await {
                        Ok(()) => {
                            end.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            end.dropped.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(
                                app = %self.app,
                                module = %self.module,
                                input = %end.spec.port,
                                error = %e,
                                "MQTT bridge: a message was not delivered to the module"
                            );
                            end.set_error(format!("delivery to input {:?}: {e}", end.spec.port));
                        }
                    }
                }
                // Acknowledged once the module's call returned (or refused it for good).
                if let Some(id) = packet_id {
                    connection
                        .queue(&Packet::PubAck(Acknowledgement::success(id)))
                        .map_err(|e| e.to_string())?;
                }
                Ok(())
            }
            Packet::PubAck(ack) => {
                if let Some(index) = in_flight.iter().position(|m| m.packet_id == ack.packet_id)
                    && let Some(message) = in_flight.remove(index)
                {
                    let end = &message.end;
                    end.in_flight.fetch_sub(1, Ordering::Relaxed);
                    if ack.reason_code.is_error() {
                        end.dropped.fetch_add(1, Ordering::Relaxed);
                        end.set_error(format!(
                            "the broker refused a publication on {:?}: {:?}",
                            end.spec.topic, ack.reason_code
                        ));
                    } else {
                        end.published.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok(())
            }
            Packet::PingResp => Ok(()),
            Packet::Disconnect(disconnect) => Err(format!(
                "the broker disconnected the module: {:?}{}",
                disconnect.reason_code,
                disconnect
                    .properties
                    .reason_string
                    .as_deref()
                    .map(|r| format!(" ({})", r.escape_debug()))
                    .unwrap_or_default()
            )),
            other => Err(format!(
                "the broker sent an unexpected {}",
                other.packet_type()
            )),
        }
    }
}

fn publish(end: &TopicEnd, packet_id: PacketId, payload: &[u8], dup: bool) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos: PublishQos::AtLeastOnce(packet_id),
        retain: false,
        topic: end.spec.topic.clone(),
        payload: payload.to_vec().into(),
        properties: Properties::default(),
    })
}

/// The next packet identifier after `last` that no publication in flight holds.
fn next_packet_id(last: u16, in_flight: &VecDeque<InFlight>) -> u16 {
    let mut id = last;
    loop {
        id = id.wrapping_add(1).max(1);
        if !in_flight.iter().any(|m| m.packet_id.get() == id) {
            return id;
        }
    }
}

/// A stable, unique, readable client id: `tm-NODE-APP-MODULE-` and 8 hex digits of a hash of
/// the three names (so names with separators in them cannot collide).
pub(crate) fn client_id(node: &str, node_certificate: &[u8], app: &str, module: &str) -> String {
    let clean = |name: &str| -> String {
        name.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
            .take(24)
            .collect()
    };
    // The node's certificate (a fresh key per node run) is in the hash: the broker keeps a
    // session for its owner only, so a node that restarted must not reuse the identifier of a
    // session its previous run still owns.
    let mut hash = sha2::Sha256::new();
    for part in [
        node.as_bytes(),
        node_certificate,
        app.as_bytes(),
        module.as_bytes(),
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    format!(
        "tm-{}-{}-{}-{}",
        clean(node),
        clean(app),
        clean(module),
        hex::encode(&digest[..4])
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn client_ids_are_stable_distinct_and_plain() {
        let a = client_id("node-a", b"cert", "plant", "filter");
        assert_eq!(a, client_id("node-a", b"cert", "plant", "filter"));
        // Another run of the node (another certificate) gets another identifier.
        assert_ne!(a, client_id("node-a", b"cert2", "plant", "filter"));
        assert!(a.starts_with("tm-node-a-plant-filter-"), "{a}");
        assert_ne!(a, client_id("node-a", b"cert", "plant", "filter2"));
        // Separators inside names cannot make two triples collide.
        assert_ne!(
            client_id("a-b", b"cert", "c", "d"),
            client_id("a", b"cert", "b-c", "d")
        );
        let odd = client_id("n/ö", b"cert", "a b", "m.x");
        assert!(
            odd.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{odd}"
        );
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_zero() {
        let end = Arc::new(TopicEnd {
            spec: TopicSpec {
                app: "a".into(),
                module: "m".into(),
                port: "o".into(),
                broker_address: "127.0.0.1:1".into(),
                topic: "t".into(),
                qos: 1,
                direction: TopicDirection::Publish,
            },
            qos: QoS::AtLeastOnce,
            queue: Mutex::default(),
            published: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            subscribed: AtomicBool::new(false),
            last_error: Mutex::default(),
        });
        let held = |id: u16| InFlight {
            packet_id: PacketId::new(id).unwrap(),
            end: end.clone(),
            payload: vec![],
        };
        let in_flight: VecDeque<InFlight> = [held(1), held(2)].into_iter().collect();
        assert_eq!(next_packet_id(u16::MAX, &in_flight), 3);
        assert_eq!(next_packet_id(0, &VecDeque::new()), 1);
    }

    /// Reads one packet from the broker's side of a connection.
    async fn read_packet<S: tokio::io::AsyncRead + Unpin>(
        stream: &mut S,
        decoder: &mut mqtt::Decoder,
        buf: &mut Vec<u8>,
    ) -> Packet {
        use tokio::io::AsyncReadExt as _;
        loop {
            if let Some((packet, used)) = decoder.decode(buf).unwrap() {
                buf.drain(..used);
                return packet;
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "the client closed the connection");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn write_packet<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S, packet: &Packet) {
        use tokio::io::AsyncWriteExt as _;
        stream
            .write_all(&packet.to_bytes(ProtocolVersion::V5).unwrap())
            .await
            .unwrap();
        stream.flush().await.unwrap();
    }

    /// A stand-in broker's attested TLS side (simulated both ways) and the node's identity.
    struct StandIn {
        node: Arc<atls::NodeIdentity>,
        verifier: Arc<atls::PeerVerifier>,
        server: atls::AtlsServer,
        listener: tokio::net::TcpListener,
        address: String,
    }

    impl StandIn {
        async fn bind() -> Self {
            use attest::{AppraisalPolicy, Endorsements, Measurement384, UnixTime};
            let identity = |name: &str| {
                let attester = Arc::new(platform::Simulated::with_measurement(Measurement384(
                    [3; 48],
                )));
                Arc::new(atls::NodeIdentity::generate(attester, name, UnixTime::now()).unwrap())
            };
            let policy = AppraisalPolicy::from_toml("allow_simulated = true").unwrap();
            let verifier = Arc::new(atls::PeerVerifier::new(policy, Endorsements::default()));
            let server = atls::AtlsServer::new(identity("broker"), verifier.clone()).unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            Self {
                node: identity("node-a"),
                verifier,
                server,
                listener,
                address,
            }
        }
    }

    impl StandIn {
        /// A bridge client of app `plant`'s module `filter` on node-a for this broker, with one
        /// QoS 1 end.
        fn module_client(
            &self,
            port: &str,
            topic: &str,
            direction: TopicDirection,
        ) -> Arc<BrokerClient> {
            let client = Arc::new(BrokerClient::new(
                "node-a",
                self.node.certificate(),
                "plant",
                "filter",
                &self.address,
            ));
            client
                .attach(&TopicSpec {
                    app: "plant".into(),
                    module: "filter".into(),
                    port: port.into(),
                    broker_address: self.address.clone(),
                    topic: topic.into(),
                    qos: 1,
                    direction,
                })
                .unwrap();
            client
        }

        /// Starts `client` as the node does, with claims for `measurement`.
        fn start(&self, client: &Arc<BrokerClient>, measurement: [u8; 32], deliver: Deliver) {
            client.start(
                BridgeContext {
                    client: AtlsClient::new(self.node.clone(), self.verifier.clone()).unwrap(),
                    node: "node-a".into(),
                },
                claims_signer(&self.node, measurement),
                deliver,
            );
        }
    }

    /// A stand-in broker's side of the bridge's next connection: attested TLS accepted, the
    /// CONNECT read, and the decoder and buffer to read on with.
    async fn accept_connect(
        listener: &tokio::net::TcpListener,
        server: &atls::AtlsServer,
    ) -> (
        atls::AttestedStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>,
        mqtt::Decoder,
        Vec<u8>,
    ) {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = server.accept(tcp).await.unwrap();
        let (mut decoder, mut buf) = (mqtt::Decoder::new(MAX_PACKET), Vec::new());
        assert!(matches!(
            read_packet(&mut stream.stream, &mut decoder, &mut buf).await,
            Packet::Connect(_)
        ));
        (stream, decoder, buf)
    }

    /// Signs module claims for app `plant`'s module `filter` with `measurement`, as the node
    /// does for each connection.
    fn claims_signer(node: &Arc<atls::NodeIdentity>, measurement: [u8; 32]) -> SignClaims {
        let signer = node.clone();
        Arc::new(move || {
            let signed = atls::ModuleClaims::for_module(
                &signer,
                "filter",
                attest::Measurement256(measurement),
                attest::UnixTime::now(),
            )
            .with_app("plant")
            .sign(&signer)
            .map_err(|e| e.to_string())?;
            Ok((
                serde_json::to_string(&signed).unwrap(),
                hex::encode(measurement),
            ))
        })
    }

    fn accepted(session_present: bool) -> Packet {
        Packet::ConnAck(mqtt::ConnAck {
            session_present,
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        })
    }

    /// Against a stand-in broker on attested TLS (simulated both ways): the client presents the
    /// node's evidence, authenticates as the module with claims that verify, publishes what the
    /// module emitted, and after the connection drops resends the unacknowledged QoS 1
    /// publications (DUP, same identifiers, in order) before counting them published.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn authenticates_as_the_module_and_resends_unacknowledged_publications() {
        use attest::Measurement256;

        let stand_in = StandIn::bind().await;
        let client = stand_in.module_client("alert", "plant/alerts", TopicDirection::Publish);
        let deliver: Deliver = Arc::new(|_, _| Box::pin(async { Ok(()) }));
        // Emitted before the broker is reachable: queued.
        client.emit("alert", b"one");
        client.emit("alert", b"two");
        client.emit("other-output", b"not bridged");
        assert_eq!(client.info()[0].pending, 2);
        stand_in.start(&client, [0xab; 32], deliver);
        let StandIn {
            node,
            verifier,
            server,
            listener,
            ..
        } = stand_in;

        // First session: the CONNECT, then two publications left unacknowledged.
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = server.accept(tcp).await.unwrap();
        assert!(matches!(stream.peer, Peer::Attested(_)), "the node attests");
        let (mut decoder, mut buf) = (mqtt::Decoder::new(MAX_PACKET), Vec::new());
        let Packet::Connect(connect) =
            read_packet(&mut stream.stream, &mut decoder, &mut buf).await
        else {
            panic!("not a CONNECT");
        };
        assert_eq!(connect.protocol, ProtocolVersion::V5);
        assert!(!connect.clean_start);
        assert_eq!(
            connect.client_id,
            client_id("node-a", node.certificate(), "plant", "filter")
        );
        assert_eq!(
            connect.properties.session_expiry_interval,
            Some(SESSION_EXPIRY_SECS)
        );
        assert_eq!(
            connect.properties.authentication_method.as_deref(),
            Some("teemesh-module-claims-v1")
        );
        let data = connect.properties.authentication_data.clone().unwrap();
        let signed: atls::SignedModuleClaims = serde_json::from_slice(&data).unwrap();
        let verified = atls::verify_module_claims(node.certificate(), &signed, &verifier).unwrap();
        assert_eq!(verified.module().name, "filter");
        assert_eq!(verified.module().app.as_deref(), Some("plant"));
        assert_eq!(verified.module().measurement, Measurement256([0xab; 32]));
        write_packet(&mut stream.stream, &accepted(false)).await;
        let mut first = Vec::new();
        for payload in [&b"one"[..], b"two"] {
            let Packet::Publish(publish) =
                read_packet(&mut stream.stream, &mut decoder, &mut buf).await
            else {
                panic!("not a PUBLISH");
            };
            assert_eq!(
                (publish.topic.as_str(), &publish.payload[..], publish.dup),
                ("plant/alerts", payload, false)
            );
            first.push(publish.qos);
        }
        assert_eq!(client.info()[0].published, 0);
        drop(stream);

        // Second session: both again, marked DUP, same identifiers, in order; then acknowledged.
        let (mut stream, mut decoder, mut buf) = accept_connect(&listener, &server).await;
        write_packet(&mut stream.stream, &accepted(true)).await;
        for (payload, qos) in [&b"one"[..], b"two"].into_iter().zip(&first) {
            let Packet::Publish(publish) =
                read_packet(&mut stream.stream, &mut decoder, &mut buf).await
            else {
                panic!("not a PUBLISH");
            };
            assert_eq!((&publish.payload[..], publish.dup), (payload, true));
            assert_eq!(publish.qos, *qos);
            let PublishQos::AtLeastOnce(id) = publish.qos else {
                panic!("QoS 1 expected");
            };
            write_packet(
                &mut stream.stream,
                &Packet::PubAck(Acknowledgement::success(id)),
            )
            .await;
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info = client.info().remove(0);
            if info.published == 2 {
                assert_eq!((info.pending, info.dropped, info.reconnects), (0, 0, 1));
                assert!(info.connected);
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{info:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        // Closing ends the session at the broker too.
        client.close();
        let Packet::Disconnect(disconnect) =
            read_packet(&mut stream.stream, &mut decoder, &mut buf).await
        else {
            panic!("not a DISCONNECT");
        };
        assert_eq!(disconnect.properties.session_expiry_interval, Some(0));
    }

    /// A broker that accepts the module and then answers nothing, not even PINGREQ (a hung
    /// broker, a half-open connection): the bridge pings it, gives it up after one and a half
    /// times the keep alive it set, and connects again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broker_that_stops_answering_is_given_up_and_reconnected() {
        let stand_in = StandIn::bind().await;
        let client = stand_in.module_client("alert", "plant/alerts", TopicDirection::Publish);
        stand_in.start(
            &client,
            [2; 32],
            Arc::new(|_, _| Box::pin(async { Ok(()) })),
        );
        let StandIn {
            server, listener, ..
        } = stand_in;

        let (mut stream, mut decoder, mut buf) = accept_connect(&listener, &server).await;
        // A keep alive of 2 s, set by the broker; then silence.
        const KEEP_ALIVE: u16 = 2;
        write_packet(
            &mut stream.stream,
            &Packet::ConnAck(mqtt::ConnAck {
                session_present: false,
                reason_code: ReasonCode::Success,
                properties: Properties {
                    server_keep_alive: Some(KEEP_ALIVE),
                    ..Properties::default()
                },
            }),
        )
        .await;
        let connected = std::time::Instant::now();
        let silent = tokio::spawn(async move {
            let mut pings = 0;
            while let Ok(Ok(Some((packet, used)))) = tokio::time::timeout(
                Duration::from_secs(10),
                read_next(&mut stream.stream, &mut decoder, &mut buf),
            )
            .await
            {
                buf.drain(..used);
                pings += usize::from(packet == Packet::PingReq);
            }
            pings
        });
        let (_again, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
            .await
            .expect("the bridge connects again")
            .unwrap();
        let gave_up = connected.elapsed();
        let limit = Duration::from_millis(u64::from(KEEP_ALIVE) * 1500);
        assert!(
            gave_up >= limit,
            "given up after {gave_up:?}, before 1.5 × the keep alive"
        );
        // Within the limit, a reconnection backoff and an attested handshake.
        assert!(
            gave_up < limit + Duration::from_secs(5),
            "given up only after {gave_up:?}"
        );
        let pings = silent.await.unwrap();
        assert!(pings >= 2, "{pings} PINGREQ before giving up");
        assert!(
            client.info()[0]
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("answered nothing"))
        );
    }

    /// The next packet and its length once whole, `None` when the peer closed.
    async fn read_next<S: tokio::io::AsyncRead + Unpin>(
        stream: &mut S,
        decoder: &mut mqtt::Decoder,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<Option<(Packet, usize)>> {
        use tokio::io::AsyncReadExt as _;
        loop {
            if let Some(decoded) = decoder.decode(buf).unwrap() {
                return Ok(Some(decoded));
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A subscribing end: the client subscribes at the end's QoS, delivers a message to the
    /// input, and acknowledges a QoS 1 message only once the delivery call returned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledges_a_message_only_after_the_module_took_it() {
        let stand_in = StandIn::bind().await;
        let client =
            stand_in.module_client("reading", "plant/+/readings", TopicDirection::Subscribe);
        // The module's call returns only when the test lets it.
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        type Taken = Mutex<Vec<(String, Vec<u8>)>>;
        let taken: Arc<Taken> = Arc::default();
        let (gate, log) = (release.clone(), taken.clone());
        let deliver: Deliver = Arc::new(move |port, data| {
            let (gate, log) = (gate.clone(), log.clone());
            Box::pin(async move {
                gate.acquire().await.unwrap().forget();
                log.lock().unwrap().push((port, data));
                Ok(())
            })
        });
        stand_in.start(&client, [1; 32], deliver);
        let StandIn {
            server, listener, ..
        } = stand_in;

        let (mut stream, mut decoder, mut buf) = accept_connect(&listener, &server).await;
        write_packet(&mut stream.stream, &accepted(false)).await;
        let Packet::Subscribe(subscribe) =
            read_packet(&mut stream.stream, &mut decoder, &mut buf).await
        else {
            panic!("not a SUBSCRIBE");
        };
        assert_eq!(subscribe.subscriptions.len(), 1);
        assert_eq!(subscribe.subscriptions[0].filter, "plant/+/readings");
        assert_eq!(subscribe.subscriptions[0].options.qos, QoS::AtLeastOnce);
        assert!(!client.info()[0].connected, "not subscribed yet");
        write_packet(
            &mut stream.stream,
            &Packet::SubAck(mqtt::SubAck {
                packet_id: subscribe.packet_id,
                reason_codes: vec![ReasonCode::GrantedQoS1],
                properties: Properties::default(),
            }),
        )
        .await;
        let id = PacketId::new(7).unwrap();
        write_packet(
            &mut stream.stream,
            &Packet::Publish(Publish {
                dup: false,
                qos: PublishQos::AtLeastOnce(id),
                retain: false,
                topic: "plant/t1/readings".into(),
                payload: b"{\"sensor\":\"t1\",\"value\":31}".to_vec().into(),
                properties: Properties::default(),
            }),
        )
        .await;
        // While the module's call runs, no PUBACK.
        let early = tokio::time::timeout(
            Duration::from_millis(300),
            read_packet(&mut stream.stream, &mut decoder, &mut buf),
        )
        .await;
        assert!(early.is_err(), "acknowledged before delivery: {early:?}");
        assert!(taken.lock().unwrap().is_empty());
        release.add_permits(1);
        let Packet::PubAck(ack) = read_packet(&mut stream.stream, &mut decoder, &mut buf).await
        else {
            panic!("not a PUBACK");
        };
        assert_eq!(ack.packet_id, id);
        assert_eq!(
            taken.lock().unwrap().as_slice(),
            [(
                "reading".to_owned(),
                b"{\"sensor\":\"t1\",\"value\":31}".to_vec()
            )]
        );
        let info = client.info().remove(0);
        assert_eq!((info.delivered, info.dropped), (1, 0));
        assert!(info.connected);
        client.close();
    }
}
