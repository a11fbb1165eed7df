//! The broker core, sans-IO: sessions, subscriptions, retained messages and wills, driven by
//! decoded packets and the current time. Its answers go to each connection's [`Outlet`]; it
//! never touches a socket or a clock, so tests drive it packet by packet at fixed instants.

use std::collections::{HashMap, HashSet};
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::acl::{Action, Authorizer};
use super::alias::TopicAliases;
use super::config::Limits;
use super::identity::ClientIdentity;
use super::message::Message;
use super::outlet::Outlet;
use super::persistence::{Change, Journal, NoStore, Store, StoreError};
use super::router::{Router, SubscriberOptions, Target};
use super::session::{ConnId, Connection, Delivery, Session, StoredSubscription, encode};
use super::stats::Counters;
use super::store::RetainedStore;
use crate::topic::TopicFilter;
use crate::{
    Acknowledgement, ConnAck, Connect, Disconnect, MAX_PACKET_SIZE, Packet, Properties,
    ProtocolVersion, Publish, PublishQos, ReasonCode, RetainHandling, SubAck, Subscribe, UnsubAck,
    Unsubscribe, Will,
};

/// What the connection should do after a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep reading.
    Continue,
    /// Close the connection, after a DISCONNECT with this reason where the protocol has one.
    Close(Option<ReasonCode>),
}

/// A CONNECT the core accepted.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The client identifier (assigned if the client sent none).
    pub client_id: Arc<str>,
    /// The keep alive in force, in seconds (0: none).
    pub keep_alive: u16,
    /// Whether a stored session was resumed.
    pub session_present: bool,
}

struct DelayedWill {
    client_id: Arc<str>,
    due: Instant,
    will: Will,
    identity: Arc<ClientIdentity>,
}

/// The broker's state and its rules.
pub struct BrokerCore {
    limits: Limits,
    authorizer: Arc<dyn Authorizer>,
    sessions: HashMap<Arc<str>, Session>,
    router: Router,
    retained: Box<dyn RetainedStore>,
    /// Changes to persistent state since the last [`Self::commit`].
    journal: Journal,
    store: Box<dyn Store>,
    delayed_wills: Vec<DelayedWill>,
    counters: Arc<Counters>,
    assigned_prefix: String,
    assigned_count: u64,
    /// See [`Self::take_congested`].
    congested: HashSet<Arc<str>>,
    /// See [`Self::take_drained`].
    drained: bool,
}

impl std::fmt::Debug for BrokerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCore")
            .field("sessions", &self.sessions.len())
            .field("filters", &self.router.filter_count())
            .field("retained", &self.retained.len())
            .finish_non_exhaustive()
    }
}

impl BrokerCore {
    /// An empty broker.
    pub fn new(
        limits: Limits,
        authorizer: Arc<dyn Authorizer>,
        retained: Box<dyn RetainedStore>,
        counters: Arc<Counters>,
    ) -> Self {
        let mut random = [0u8; 6];
        let prefix = match getrandom::fill(&mut random) {
            Ok(()) => random.iter().map(|b| format!("{b:02x}")).collect(),
            Err(_) => String::from("0"),
        };
        Self {
            limits,
            authorizer,
            sessions: HashMap::new(),
            router: Router::default(),
            retained,
            journal: Journal::new(false),
            store: Box::new(NoStore),
            delayed_wills: Vec::new(),
            counters,
            assigned_prefix: prefix,
            assigned_count: 0,
            congested: HashSet::new(),
            drained: false,
        }
    }

    /// Keeps persistent state in `store` from now on, after restoring what it holds:
    /// retained messages, and persistent sessions (offline) with their subscriptions and
    /// messages. `wall` is `now` on the wall clock.
    pub(crate) fn persist_to(
        &mut self,
        mut store: Box<dyn Store>,
        now: Instant,
        wall: SystemTime,
    ) -> Result<(), StoreError> {
        let snapshot = store.load(now, wall)?;
        for message in snapshot.retained {
            let topic = message.topic.clone();
            self.retained.set(&topic, Some(message));
        }
        let restored = snapshot.sessions.len();
        for stored in snapshot.sessions {
            let session = Session::restore(stored);
            for (filter, subscription) in &session.subscriptions {
                if let Err(e) =
                    self.router
                        .subscribe(&session.client_id, filter, subscription.options)
                {
                    tracing::warn!(client_id = %session.client_id, filter, "stored subscription not restored: {e}");
                }
            }
            self.sessions.insert(session.client_id.clone(), session);
        }
        tracing::info!(
            sessions = restored,
            retained = self.retained.len(),
            "persistent state loaded"
        );
        self.store = store;
        self.journal = Journal::new(true);
        Ok(())
    }

    /// Commits the changes to persistent state made since the last commit, durably. The
    /// shell calls it after every turn (a read's packets, a connection, a disconnection, a
    /// tick) and before it writes that turn's answers: acknowledgements of QoS 1/2 PUBLISHes
    /// must not leave before the messages are stored.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.journal.is_empty() {
            return Ok(());
        }
        let changes = self.journal.take();
        self.store.commit(changes)
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// How many sessions exist (connected or not).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// How many retained messages are stored.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// QoS 1/2 messages in flight to and queued for `client_id`.
    pub fn backlog(&self, client_id: &str) -> Option<(usize, usize)> {
        self.sessions.get(client_id).map(Session::backlog)
    }

    /// Handles a CONNECT whose credentials the caller has checked (`identity.username_verified`);
    /// queues the CONNACK (and any resent messages) to `outlet`. `None`: refused, the CONNACK
    /// says why; close the connection once it is written.
    pub fn connect(
        &mut self,
        conn: ConnId,
        connect: Connect,
        mut identity: ClientIdentity,
        outlet: Arc<dyn Outlet>,
        now: Instant,
    ) -> Option<Accepted> {
        let version = connect.protocol;
        let v5 = version == ProtocolVersion::V5;
        let assigned = connect.client_id.is_empty();
        if assigned && !v5 && !connect.clean_start {
            // §3.1.3-8: 3.1.1 refuses an empty identifier for a persistent session.
            refuse(&*outlet, version, ReasonCode::ClientIdentifierNotValid);
            return None;
        }
        let client_id: Arc<str> = if assigned {
            self.assigned_count += 1;
            format!("auto-{}-{}", self.assigned_prefix, self.assigned_count).into()
        } else {
            connect.client_id.as_str().into()
        };
        let requested_expiry = match version {
            ProtocolVersion::V5 => connect.properties.session_expiry_interval.unwrap_or(0),
            ProtocolVersion::V311 if connect.clean_start => 0,
            ProtocolVersion::V311 => u32::MAX,
        };
        let expiry = self
            .limits
            .max_session_expiry
            .map_or(requested_expiry, |max| requested_expiry.min(max));
        let max_keep_alive = self.limits.max_keep_alive;
        let keep_alive = if v5
            && max_keep_alive > 0
            && (connect.keep_alive == 0 || connect.keep_alive > max_keep_alive)
        {
            max_keep_alive
        } else {
            connect.keep_alive
        };

        // A session belongs to the client that made it: another principal using its client
        // identifier neither takes it over (and with it the subscriptions the ACL granted its
        // owner) nor ends it.
        if let Some(existing) = self.sessions.get(&client_id) {
            let claimant = identity.principal();
            if existing.owner != claimant {
                tracing::info!(
                    client_id = %client_id,
                    remote = %identity.remote(),
                    "CONNECT refused: the client identifier belongs to a session of another principal (user, certificate key, app or module)"
                );
                refuse(&*outlet, version, ReasonCode::NotAuthorized);
                return None;
            }
        }
        let mut wills = Vec::new();
        // A will delayed past its connection's end: this session is back, so it is not sent
        // (§3.1.3.2) unless the session is started anew, which ends the old one.
        if let Some(index) = self
            .delayed_wills
            .iter()
            .position(|w| w.client_id == client_id)
        {
            let delayed = self.delayed_wills.swap_remove(index);
            if connect.clean_start {
                wills.push((delayed.client_id, delayed.will, delayed.identity));
            }
        }
        let mut session_present = false;
        if let Some(existing) = self.sessions.get_mut(&client_id) {
            if let Some(old) = existing.connection.take() {
                tracing::info!(client_id = %client_id, "session taken over by a new connection");
                old.outlet.close(Some(ReasonCode::SessionTakenOver));
                if let Some(will) = old.will {
                    let delayed = will.properties.will_delay_interval.unwrap_or(0) > 0;
                    if connect.clean_start || !delayed {
                        wills.push((client_id.clone(), will, existing.identity.clone()));
                    }
                }
            }
            // A session that ends with its connection (3.1.1 clean session, MQTT 5 expiry 0)
            // ends here too, even if the broker has not seen that connection close yet: a new
            // connection never resumes it.
            if connect.clean_start || existing.expiry_interval == 0 {
                self.remove_session(&client_id);
            } else {
                session_present = true;
            }
        }

        identity.client_id = client_id.to_string();
        let identity = Arc::new(identity);
        let session = self
            .sessions
            .entry(client_id.clone())
            .or_insert_with(|| Session::new(client_id.clone(), identity.clone()));
        session.identity = identity;
        session.expiry_interval = expiry;
        session.disconnected_at = None;
        session.persist(&mut self.journal);
        let client_receive_max = connect
            .properties
            .receive_maximum
            .map_or(u16::MAX, NonZeroU16::get);
        session.connection = Some(Connection {
            id: conn,
            outlet,
            version,
            will: connect.will,
            send_quota: usize::from(client_receive_max.min(self.limits.max_inflight.max(1))),
            max_packet_size: connect
                .properties
                .maximum_packet_size
                .map_or(MAX_PACKET_SIZE, NonZeroU32::get),
            topic_aliases: HashMap::new(),
            // MQTT 5 only: a 3.1.1 CONNECT carries no properties.
            aliases_out: TopicAliases::new(match version {
                ProtocolVersion::V5 => connect.properties.topic_alias_maximum.unwrap_or(0),
                ProtocolVersion::V311 => 0,
            }),
            qos0_dropped: 0,
            qos0_warned: None,
            backlog_high: self.limits.backlog_high(),
            backlog_low: self.limits.backlog_high() / 4,
        });

        let mut properties = Properties::default();
        if v5 {
            properties.assigned_client_identifier = assigned.then(|| client_id.to_string());
            properties.receive_maximum = NonZeroU16::new(self.limits.receive_maximum);
            properties.topic_alias_maximum = Some(self.limits.topic_alias_maximum);
            properties.maximum_packet_size = NonZeroU32::new(self.limits.max_packet_size);
            properties.retain_available = Some(true);
            properties.shared_subscription_available = Some(true);
            properties.wildcard_subscription_available = Some(true);
            properties.subscription_identifier_available = Some(true);
            if expiry != requested_expiry {
                properties.session_expiry_interval = Some(expiry);
            }
            if keep_alive != connect.keep_alive {
                properties.server_keep_alive = Some(keep_alive);
            }
        }
        session.send(&Packet::ConnAck(ConnAck {
            session_present,
            reason_code: ReasonCode::Success,
            properties,
        }));
        self.counters.connections.inc();
        session.resume(now, &self.counters, &mut self.journal);
        for (publisher, will, identity) in wills {
            self.publish_will(&publisher, will, &identity, now);
        }
        Some(Accepted {
            client_id,
            keep_alive,
            session_present,
        })
    }

    /// Handles one packet of an accepted connection.
    pub fn handle(&mut self, conn: ConnId, client_id: &str, packet: Packet, now: Instant) -> Flow {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return Flow::Close(None);
        };
        if session.connection.as_ref().map(|c| c.id) != Some(conn) {
            // Taken over: this connection no longer owns the session.
            return Flow::Close(None);
        }
        match packet {
            Packet::Publish(publish) => self.on_publish(client_id, publish, now),
            Packet::PubAck(ack) | Packet::PubComp(ack) => {
                let stall = self.limits.stall_timeout();
                let was = session.is_congested(now, stall);
                session.acknowledged(ack.packet_id, now, &self.counters, &mut self.journal);
                self.drained |= was && !session.is_congested(now, stall);
                Flow::Continue
            }
            Packet::PubRec(ack) => {
                let stall = self.limits.stall_timeout();
                let was = session.is_congested(now, stall);
                session.received(&ack, now, &self.counters, &mut self.journal);
                self.drained |= was && !session.is_congested(now, stall);
                Flow::Continue
            }
            Packet::PubRel(ack) => {
                let known = session.incoming_qos2.remove(&ack.packet_id.get());
                if known {
                    session.journal_incoming(&mut self.journal, ack.packet_id.get(), false);
                }
                let reason = if known {
                    ReasonCode::Success
                } else {
                    ReasonCode::PacketIdentifierNotFound
                };
                session.send(&Packet::PubComp(Acknowledgement {
                    reason_code: reason,
                    ..Acknowledgement::success(ack.packet_id)
                }));
                Flow::Continue
            }
            Packet::Subscribe(subscribe) => self.on_subscribe(client_id, subscribe, now),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(client_id, unsubscribe),
            Packet::PingReq => {
                session.send(&Packet::PingResp);
                Flow::Continue
            }
            Packet::Disconnect(disconnect) => on_disconnect(session, &disconnect, &self.limits),
            // No enhanced authentication method is offered, so AUTH is never expected.
            Packet::Auth(_)
            | Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp => Flow::Close(Some(ReasonCode::ProtocolError)),
        }
    }

    /// The connection `conn` of `client_id` ended (for whatever reason). Publishes or delays
    /// its will unless a normal DISCONNECT discarded it, and ends a session that does not
    /// outlive its connection. Nothing happens if another connection has taken the session.
    pub fn disconnected(&mut self, conn: ConnId, client_id: &str, now: Instant) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        if session.connection.as_ref().map(|c| c.id) != Some(conn) {
            return;
        }
        let Some(connection) = session.connection.take() else {
            return;
        };
        session.disconnected_at = Some(now);
        session.persist(&mut self.journal);
        let expiry = session.expiry_interval;
        let identity = session.identity.clone();
        let client: Arc<str> = session.client_id.clone();
        if let Some(will) = connection.will {
            let delay = will.properties.will_delay_interval.unwrap_or(0).min(expiry);
            if delay == 0 {
                self.publish_will(&client, will, &identity, now);
            } else {
                self.delayed_wills.push(DelayedWill {
                    client_id: client.clone(),
                    due: now + Duration::from_secs(u64::from(delay)),
                    will,
                    identity,
                });
            }
        }
        if expiry == 0 {
            self.remove_session(&client);
        }
    }

    /// Asks every connected client's connection to close with Server shutting down (0x8B,
    /// sent to MQTT 5 clients in a DISCONNECT); returns how many were asked. Their sessions end
    /// as for any lost connection when each connection task finishes.
    pub fn close_all(&mut self) -> usize {
        let mut asked = 0;
        for session in self.sessions.values() {
            if let Some(connection) = &session.connection {
                connection
                    .outlet
                    .close(Some(ReasonCode::ServerShuttingDown));
                asked += 1;
            }
        }
        asked
    }

    /// Time passes: delayed wills fall due and disconnected sessions expire (their delayed
    /// wills are published then). Call about once a second.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<Arc<str>> = self
            .sessions
            .values()
            .filter(|s| !s.is_online() && s.is_expired(now))
            .map(|s| s.client_id.clone())
            .collect();
        let mut due = Vec::new();
        self.delayed_wills.retain_mut(|delayed| {
            let session_ends = expired.contains(&delayed.client_id);
            if delayed.due <= now || session_ends {
                due.push((
                    delayed.client_id.clone(),
                    delayed.will.clone(),
                    delayed.identity.clone(),
                ));
                false
            } else {
                true
            }
        });
        for (client, will, identity) in due {
            self.publish_will(&client, will, &identity, now);
        }
        for client in expired {
            tracing::debug!(client_id = %client, "session expired");
            self.remove_session(&client);
        }
    }

    fn remove_session(&mut self, client_id: &str) {
        if let Some(mut session) = self.sessions.remove(client_id) {
            session.forget(&mut self.journal);
            for filter in session.subscriptions.keys() {
                self.router.unsubscribe(client_id, filter);
            }
        }
    }

    fn on_publish(&mut self, client_id: &str, publish: Publish, now: Instant) -> Flow {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return Flow::Close(None);
        };
        let Some(connection) = session.connection.as_mut() else {
            return Flow::Close(None);
        };
        if !publish.properties.subscription_identifiers.is_empty() {
            // §3.3.4: only the server sends subscription identifiers.
            return Flow::Close(Some(ReasonCode::ProtocolError));
        }
        let topic = match publish.properties.topic_alias {
            Some(alias) if alias.get() > self.limits.topic_alias_maximum => {
                return Flow::Close(Some(ReasonCode::TopicAliasInvalid));
            }
            Some(alias) if publish.topic.is_empty() => {
                match connection.topic_aliases.get(&alias.get()) {
                    Some(topic) => topic.clone(),
                    None => return Flow::Close(Some(ReasonCode::ProtocolError)),
                }
            }
            Some(alias) => {
                connection
                    .topic_aliases
                    .insert(alias.get(), publish.topic.clone());
                publish.topic.clone()
            }
            None => publish.topic.clone(),
        };
        self.counters.messages_in.inc();
        let v5 = connection.version == ProtocolVersion::V5;
        if let PublishQos::ExactlyOnce(id) = publish.qos {
            if session.incoming_qos2.contains(&id.get()) {
                // A resend of a message already routed (DUP): acknowledge it again, only.
                session.send(&Packet::PubRec(Acknowledgement::success(id)));
                return Flow::Continue;
            }
            if session.incoming_qos2.len() >= usize::from(self.limits.receive_maximum) {
                return Flow::Close(Some(ReasonCode::ReceiveMaximumExceeded));
            }
        }
        if !self
            .authorizer
            .authorize(&session.identity, Action::Publish, &topic)
        {
            tracing::info!(
                client_id,
                username = session.identity.username.as_deref().unwrap_or(""),
                remote = %session.identity.remote(),
                topic = %topic,
                "publish refused by the ACL"
            );
            // MQTT 5 says why; a 3.1.1 client can only be acknowledged (the message is dropped).
            match publish.qos {
                PublishQos::AtMostOnce => {}
                PublishQos::AtLeastOnce(id) => {
                    session.send(&Packet::PubAck(refusal(id, ReasonCode::NotAuthorized)));
                }
                PublishQos::ExactlyOnce(id) => {
                    if !v5 {
                        session.incoming_qos2.insert(id.get());
                        session.journal_incoming(&mut self.journal, id.get(), true);
                    }
                    session.send(&Packet::PubRec(refusal(id, ReasonCode::NotAuthorized)));
                }
            }
            return Flow::Continue;
        }
        let qos = publish.qos;
        let publisher = session.client_id.clone();
        let message = Arc::new(Message::from_publish(publish, topic, Some(publisher), now));
        if message.retain {
            self.set_retained(&message);
        }
        // The publisher's acknowledgement goes out before the deliveries, its own included.
        let targets = self.targets(&message);
        let matched = targets.len();
        let reason = if matched == 0 && v5 {
            ReasonCode::NoMatchingSubscribers
        } else {
            ReasonCode::Success
        };
        if let Some(session) = self.sessions.get_mut(client_id) {
            match qos {
                PublishQos::AtMostOnce => {}
                PublishQos::AtLeastOnce(id) => {
                    session.send(&Packet::PubAck(refusal(id, reason)));
                }
                PublishQos::ExactlyOnce(id) => {
                    session.incoming_qos2.insert(id.get());
                    session.journal_incoming(&mut self.journal, id.get(), true);
                    session.send(&Packet::PubRec(refusal(id, reason)));
                }
            }
        }
        self.deliver(&message, targets, now);
        Flow::Continue
    }

    /// Stores (or, with an empty payload, deletes) the retained message of its topic.
    fn set_retained(&mut self, message: &Arc<Message>) {
        let stored = (!message.payload.is_empty()).then(|| message.clone());
        self.journal.push(Change::Retained {
            topic: message.topic.clone(),
            message: stored.clone(),
        });
        self.retained.set(&message.topic, stored);
    }

    /// The subscriptions `message` goes to (one member per share group, chosen now).
    fn targets(&self, message: &Message) -> Vec<Target> {
        let sessions = &self.sessions;
        self.router
            .targets(&message.topic, message.publisher.as_deref(), |client| {
                sessions.get(client).is_some_and(Session::is_online)
            })
    }

    /// Delivers `message` to every matching subscription.
    fn route(&mut self, message: &Arc<Message>, now: Instant) {
        let targets = self.targets(message);
        self.deliver(message, targets, now);
    }

    fn deliver(&mut self, message: &Arc<Message>, targets: Vec<Target>, now: Instant) {
        // Overlapping ordinary subscriptions of one client give one delivery, with the highest
        // QoS and every subscription identifier (§3.3.4); shared ones are delivered apart.
        let mut merged: HashMap<Arc<str>, Delivery> = HashMap::new();
        let mut separate = Vec::new();
        for target in targets {
            let options = target.options.options;
            let delivery = Delivery {
                message: message.clone(),
                qos: message.qos.min(options.qos),
                retain: options.retain_as_published && message.retain,
                subscription_ids: target.options.id.into_iter().collect(),
            };
            if target.shared {
                separate.push((target.client, delivery));
                continue;
            }
            match merged.get_mut(&target.client) {
                Some(existing) => {
                    existing.qos = existing.qos.max(delivery.qos);
                    existing.retain |= delivery.retain;
                    existing.subscription_ids.extend(delivery.subscription_ids);
                }
                None => {
                    merged.insert(target.client, delivery);
                }
            }
        }
        let stall = self.limits.stall_timeout();
        for (client, delivery) in merged.into_iter().chain(separate) {
            if let Some(session) = self.sessions.get_mut(&client) {
                session.deliver(
                    delivery,
                    self.limits.max_queued_messages,
                    now,
                    &self.counters,
                    &mut self.journal,
                );
                if session.is_congested(now, stall) {
                    self.congested.insert(client);
                }
            }
        }
    }

    /// The clients whose connections were congested when a delivery since the last call went
    /// to them: the shell then stops reading from the publisher until none of them is (see
    /// [`Self::any_congested`]), so a publisher cannot outrun its subscribers by more than
    /// their queues, and a subscriber that keeps reading loses nothing.
    pub fn take_congested(&mut self) -> HashSet<Arc<str>> {
        std::mem::take(&mut self.congested)
    }

    /// Whether any of `clients` is still connected and congested at `now`: behind, and making
    /// progress (one that made none for the stall timeout holds no publisher back).
    pub fn any_congested(&self, clients: &HashSet<Arc<str>>, now: Instant) -> bool {
        let stall = self.limits.stall_timeout();
        clients.iter().any(|client| {
            self.sessions
                .get(client)
                .is_some_and(|s| s.is_congested(now, stall))
        })
    }

    /// Whether an acknowledgement since the last call let a congested session's queued
    /// messages go out: publishers paused for it may go on. (A connection whose socket queue
    /// drains says so itself.)
    pub fn take_drained(&mut self) -> bool {
        std::mem::take(&mut self.drained)
    }

    fn publish_will(
        &mut self,
        publisher: &Arc<str>,
        will: Will,
        identity: &ClientIdentity,
        now: Instant,
    ) {
        if !self
            .authorizer
            .authorize(identity, Action::Publish, &will.topic)
        {
            tracing::info!(client_id = %publisher, topic = %will.topic, "will refused by the ACL");
            return;
        }
        let message = Arc::new(Message::new(
            will.topic,
            will.payload,
            will.qos,
            will.retain,
            will.properties,
            Some(publisher.clone()),
            now,
        ));
        if message.retain {
            self.set_retained(&message);
        }
        self.route(&message, now);
    }

    fn on_subscribe(&mut self, client_id: &str, subscribe: Subscribe, now: Instant) -> Flow {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return Flow::Close(None);
        };
        let subscription_id = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied();
        let mut reason_codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained = Vec::new();
        for subscription in subscribe.subscriptions {
            let Ok(parsed) = TopicFilter::parse(&subscription.filter) else {
                reason_codes.push(ReasonCode::TopicFilterInvalid);
                continue;
            };
            if !self
                .authorizer
                .authorize(&session.identity, Action::Subscribe, parsed.filter)
            {
                tracing::info!(
                    client_id,
                    username = session.identity.username.as_deref().unwrap_or(""),
                    remote = %session.identity.remote(),
                    filter = %subscription.filter,
                    "subscribe refused by the ACL"
                );
                reason_codes.push(ReasonCode::NotAuthorized);
                continue;
            }
            let options = SubscriberOptions {
                options: subscription.options,
                id: subscription_id,
            };
            let existed =
                match self
                    .router
                    .subscribe(&session.client_id, &subscription.filter, options)
                {
                    Ok(existed) => existed,
                    Err(_) => {
                        reason_codes.push(ReasonCode::TopicFilterInvalid);
                        continue;
                    }
                };
            let granted = subscription.options.qos;
            reason_codes.push(ReasonCode::granted(granted));
            let send_retained = !parsed.is_shared()
                && match subscription.options.retain_handling {
                    RetainHandling::SendOnSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.retained.matching(parsed.filter, now) {
                    retained.push(Delivery {
                        qos: message.qos.min(granted),
                        message,
                        retain: true,
                        subscription_ids: subscription_id.into_iter().collect(),
                    });
                }
            }
            session
                .subscriptions
                .insert(subscription.filter, StoredSubscription { options });
        }
        session.persist(&mut self.journal);
        session.send(&Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            reason_codes,
            properties: Properties::default(),
        }));
        for delivery in retained {
            session.deliver(
                delivery,
                self.limits.max_queued_messages,
                now,
                &self.counters,
                &mut self.journal,
            );
        }
        Flow::Continue
    }

    fn on_unsubscribe(&mut self, client_id: &str, unsubscribe: Unsubscribe) -> Flow {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return Flow::Close(None);
        };
        let reason_codes = unsubscribe
            .filters
            .iter()
            .map(|filter| {
                let removed = session.subscriptions.remove(filter).is_some();
                self.router.unsubscribe(client_id, filter);
                if removed {
                    ReasonCode::Success
                } else {
                    ReasonCode::NoSubscriptionExisted
                }
            })
            .collect();
        session.persist(&mut self.journal);
        session.send(&Packet::UnsubAck(UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes,
            properties: Properties::default(),
        }));
        Flow::Continue
    }
}

fn on_disconnect(session: &mut Session, disconnect: &Disconnect, limits: &Limits) -> Flow {
    if let Some(expiry) = disconnect.properties.session_expiry_interval {
        // §3.14.2.2.2: a session that ended with its connection cannot be kept afterwards.
        if session.expiry_interval == 0 && expiry != 0 {
            return Flow::Close(Some(ReasonCode::ProtocolError));
        }
        session.expiry_interval = limits
            .max_session_expiry
            .map_or(expiry, |max| expiry.min(max));
    }
    if disconnect.reason_code != ReasonCode::DisconnectWithWillMessage
        && let Some(connection) = session.connection.as_mut()
    {
        connection.will = None;
    }
    Flow::Close(None)
}

fn refusal(id: crate::PacketId, reason: ReasonCode) -> Acknowledgement {
    Acknowledgement {
        reason_code: reason,
        ..Acknowledgement::success(id)
    }
}

/// Queues the CONNACK refusing a connection for `reason` (3.1.1 gets the nearest return code
/// it has).
pub(crate) fn refuse(outlet: &dyn Outlet, version: ProtocolVersion, reason: ReasonCode) {
    let reason = match version {
        ProtocolVersion::V311 if reason.to_v311_connack().is_none() => {
            ReasonCode::ServerUnavailable
        }
        _ => reason,
    };
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: reason,
        properties: Properties::default(),
    });
    if let Some(bytes) = encode(&connack, version) {
        let _ = outlet.send(bytes);
    }
    outlet.close(None);
}
