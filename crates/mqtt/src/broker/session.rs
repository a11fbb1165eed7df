//! One client's session: its subscriptions, the QoS 1/2 messages in flight to it and queued for
//! it, the QoS 2 packet identifiers it has not released, and its live connection if any.
//! Sans-IO: outgoing packets go to the connection's [`Outlet`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::alias::{AliasUse, TopicAliases};
use super::identity::ClientIdentity;
use super::message::Message;
use super::outlet::{Outlet, QueueFull};
use super::persistence::{Change, Journal, MessageState, SessionRecord, StoredSession};
use super::stats::Counters;
use crate::{
    Acknowledgement, Packet, PacketId, ProtocolVersion, Publish, PublishQos, QoS, ReasonCode,
    SubscriptionId, Will,
};

/// The least time between two warnings of QoS 0 messages dropped for one client.
const QOS0_WARNING_EVERY: Duration = Duration::from_secs(10);

/// A connection's identifier, unique for the broker's lifetime.
pub type ConnId = u64;

/// The live connection of a session.
pub(crate) struct Connection {
    pub(crate) id: ConnId,
    pub(crate) outlet: Arc<dyn Outlet>,
    pub(crate) version: ProtocolVersion,
    /// The will, until a normal DISCONNECT discards it.
    pub(crate) will: Option<Will>,
    /// How many QoS 1/2 messages may be in flight to the client.
    pub(crate) send_quota: usize,
    /// The largest packet the client accepts.
    pub(crate) max_packet_size: u32,
    /// Topic aliases the client set (MQTT 5, client to broker).
    pub(crate) topic_aliases: HashMap<u16, String>,
    /// Topic aliases the broker set (MQTT 5, up to the client's Topic Alias Maximum).
    pub(crate) aliases_out: TopicAliases,
    /// QoS 0 messages to the client dropped (it is stalled or over its budget) since the last
    /// warning, and when that was: at most one warning per [`QOS0_WARNING_EVERY`].
    pub(crate) qos0_dropped: u64,
    pub(crate) qos0_warned: Option<Instant>,
    /// Messages waiting for the client's QoS 1/2 quota at which its publishers are held back,
    /// and at or below which they go on (so a client that keeps acknowledging never reaches
    /// `max_queued_messages`, where messages would be dropped).
    pub(crate) backlog_high: usize,
    pub(crate) backlog_low: usize,
}

/// A message waiting to be delivered, with what its subscription made of it.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub(crate) message: Arc<Message>,
    pub(crate) qos: QoS,
    pub(crate) retain: bool,
    pub(crate) subscription_ids: Vec<SubscriptionId>,
}

#[derive(Debug, Clone)]
enum InflightState {
    /// PUBLISH sent, awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
    Published(Delivery),
    /// PUBREL sent, awaiting PUBCOMP.
    Released,
}

#[derive(Debug)]
struct Inflight {
    id: PacketId,
    /// Its place in the session's message order, which names its stored record.
    seq: u64,
    state: InflightState,
}

#[derive(Debug)]
struct Queued {
    seq: u64,
    delivery: Delivery,
}

/// A stored subscription, as the client subscribed it.
#[derive(Debug, Clone)]
pub(crate) struct StoredSubscription {
    pub(crate) options: super::router::SubscriberOptions,
}

pub(crate) struct Session {
    pub(crate) client_id: Arc<str>,
    pub(crate) identity: Arc<ClientIdentity>,
    /// Who owns this session: only a client with this principal takes it over or resumes it.
    pub(crate) owner: super::identity::Principal,
    pub(crate) connection: Option<Connection>,
    pub(crate) subscriptions: HashMap<String, StoredSubscription>,
    /// In send order, so a reconnection resends in the original order.
    inflight: VecDeque<Inflight>,
    pending: VecDeque<Queued>,
    next_packet_id: u16,
    next_seq: u64,
    /// Whether the store holds this session (it is persistent and a store is configured):
    /// then every change to it is journaled.
    stored: bool,
    /// QoS 2 packet identifiers received and not yet released by PUBREL.
    pub(crate) incoming_qos2: HashSet<u16>,
    /// Seconds the session outlives its connection (`u32::MAX`: never expires).
    pub(crate) expiry_interval: u32,
    pub(crate) disconnected_at: Option<Instant>,
    /// Whether the queue is full and QoS 1/2 messages are being dropped: logged once when it
    /// starts, and again only after the queue drained to half its limit.
    dropping: bool,
    /// Since when so many messages wait for the client's quota that its publishers are held
    /// back (see [`Connection::backlog_high`]). A client that does not bring them down within
    /// the stall timeout no longer holds anyone back.
    holding_since: Option<Instant>,
}

impl Session {
    pub(crate) fn new(client_id: Arc<str>, identity: Arc<ClientIdentity>) -> Self {
        Self {
            client_id,
            owner: identity.principal(),
            identity,
            connection: None,
            subscriptions: HashMap::new(),
            inflight: VecDeque::new(),
            pending: VecDeque::new(),
            next_packet_id: 0,
            next_seq: 0,
            stored: false,
            incoming_qos2: HashSet::new(),
            expiry_interval: 0,
            disconnected_at: None,
            dropping: false,
            holding_since: None,
        }
    }

    /// A session as the store kept it, offline; expired messages are already left out.
    pub(crate) fn restore(stored: StoredSession) -> Self {
        let identity = Arc::new(ClientIdentity {
            client_id: stored.client_id.to_string(),
            ..ClientIdentity::default()
        });
        let mut session = Self::new(stored.client_id, identity);
        session.owner = stored.owner;
        session.expiry_interval = stored.expiry_interval;
        session.disconnected_at = Some(stored.disconnected_at);
        session.stored = true;
        session.subscriptions = stored
            .subscriptions
            .into_iter()
            .map(|(filter, options)| (filter, StoredSubscription { options }))
            .collect();
        session.incoming_qos2 = stored.incoming_qos2.into_iter().collect();
        for (seq, state, delivery) in stored.messages {
            session.next_seq = session.next_seq.max(seq + 1);
            match (state, delivery) {
                (MessageState::Queued, Some(delivery)) => {
                    session.pending.push_back(Queued { seq, delivery });
                }
                (MessageState::Published(id), Some(delivery)) => {
                    session.next_packet_id = session.next_packet_id.max(id.get());
                    session.inflight.push_back(Inflight {
                        id,
                        seq,
                        state: InflightState::Published(delivery),
                    });
                }
                (MessageState::Released(id), _) => {
                    session.next_packet_id = session.next_packet_id.max(id.get());
                    session.inflight.push_back(Inflight {
                        id,
                        seq,
                        state: InflightState::Released,
                    });
                }
                (_, None) => {}
            }
        }
        session
    }

    /// Journals the session's own state after a change to it (connection, subscriptions,
    /// expiry). A session that just became persistent is journaled whole; one that no longer
    /// is (expiry 0) is removed from the store.
    pub(crate) fn persist(&mut self, journal: &mut Journal) {
        if !journal.is_enabled() {
            return;
        }
        if self.expiry_interval == 0 {
            self.forget(journal);
            return;
        }
        let first = !self.stored;
        self.stored = true;
        journal.push(Change::Session {
            client_id: self.client_id.clone(),
            record: SessionRecord {
                owner: self.owner.clone(),
                expiry_interval: self.expiry_interval,
                disconnected_at: self.disconnected_at,
                subscriptions: self
                    .subscriptions
                    .iter()
                    .map(|(filter, s)| (filter.clone(), s.options))
                    .collect(),
            },
        });
        if first {
            for inflight in &self.inflight {
                let (state, delivery) = match &inflight.state {
                    InflightState::Published(d) => {
                        (MessageState::Published(inflight.id), Some(d.clone()))
                    }
                    InflightState::Released => (MessageState::Released(inflight.id), None),
                };
                self.journal_message(journal, inflight.seq, state, delivery);
            }
            for queued in &self.pending {
                let delivery = Some(queued.delivery.clone());
                self.journal_message(journal, queued.seq, MessageState::Queued, delivery);
            }
            for &packet_id in &self.incoming_qos2 {
                self.journal_incoming(journal, packet_id, true);
            }
        }
    }

    /// Removes the session from the store (it ended).
    pub(crate) fn forget(&mut self, journal: &mut Journal) {
        if self.stored {
            self.stored = false;
            journal.push(Change::SessionGone {
                client_id: self.client_id.clone(),
            });
        }
    }

    fn journal_message(
        &self,
        journal: &mut Journal,
        seq: u64,
        state: MessageState,
        delivery: Option<Delivery>,
    ) {
        if self.stored {
            journal.push(Change::Message {
                client_id: self.client_id.clone(),
                seq,
                state,
                delivery,
            });
        }
    }

    fn journal_message_gone(&self, journal: &mut Journal, seq: u64) {
        if self.stored {
            journal.push(Change::MessageGone {
                client_id: self.client_id.clone(),
                seq,
            });
        }
    }

    /// Journals an inbound QoS 2 identifier received (`true`) or released.
    pub(crate) fn journal_incoming(&self, journal: &mut Journal, packet_id: u16, received: bool) {
        if !self.stored {
            return;
        }
        let client_id = self.client_id.clone();
        journal.push(if received {
            Change::IncomingQos2 {
                client_id,
                packet_id,
            }
        } else {
            Change::IncomingReleased {
                client_id,
                packet_id,
            }
        });
    }

    pub(crate) fn is_online(&self) -> bool {
        self.connection.is_some()
    }

    /// Whether the session has expired at `now`.
    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        match self.disconnected_at {
            None => false,
            Some(_) if self.expiry_interval == u32::MAX => false,
            Some(at) => {
                now.saturating_duration_since(at).as_secs() >= u64::from(self.expiry_interval)
            }
        }
    }

    /// Encodes and queues `packet` to the live connection; false when there is none or its
    /// queue is full (the caller decides what that means).
    pub(crate) fn send(&self, packet: &Packet) -> bool {
        let Some(connection) = &self.connection else {
            return false;
        };
        match encode(packet, connection.version) {
            Some(bytes) => connection.outlet.send(bytes).is_ok(),
            None => false,
        }
    }

    /// Delivers (or queues) one message. QoS 0 is sent now or dropped; QoS 1/2 is sent if the
    /// client's quota allows, else queued.
    pub(crate) fn deliver(
        &mut self,
        delivery: Delivery,
        max_queued: usize,
        now: Instant,
        counters: &Counters,
        journal: &mut Journal,
    ) {
        if delivery.message.is_expired(now) {
            counters.expired.inc();
            return;
        }
        if delivery.qos == QoS::AtMostOnce {
            let Some(connection) = self.connection.as_mut() else {
                counters.dropped_offline_qos0.inc();
                return;
            };
            let publish = delivery.message.to_publish(
                PublishQos::AtMostOnce,
                delivery.retain,
                false,
                &delivery.subscription_ids,
                now,
            );
            match send_publish(publish, connection, Offer::Droppable) {
                Err(TooLarge) => counters.dropped_too_large.inc(),
                Ok(Err(QueueFull)) => {
                    counters.dropped_queue_full.inc();
                    connection.qos0_dropped += 1;
                    if connection
                        .qos0_warned
                        .is_none_or(|at| now.saturating_duration_since(at) >= QOS0_WARNING_EVERY)
                    {
                        tracing::warn!(
                            client_id = %self.client_id,
                            dropped = connection.qos0_dropped,
                            "QoS 0 messages to the client are dropped: it did not keep up for limits.stall_timeout_ms, or more than limits.max_outbound_bytes is queued to it (at most one such warning per client every {} s)",
                            QOS0_WARNING_EVERY.as_secs()
                        );
                        connection.qos0_warned = Some(now);
                        connection.qos0_dropped = 0;
                    }
                }
                Ok(Ok(())) => counters.messages_out.inc(),
            }
            return;
        }
        let has_room = self
            .connection
            .as_ref()
            .is_some_and(|c| self.inflight.len() < c.send_quota);
        let send_now = has_room && self.pending.is_empty();
        if !send_now && self.pending.len() >= max_queued {
            counters.dropped_queue_full.inc();
            if !self.dropping {
                self.dropping = true;
                tracing::warn!(
                    client_id = %self.client_id,
                    queued = self.pending.len(),
                    online = self.connection.is_some(),
                    "the client's queue is full (limits.max_queued_messages): newer QoS 1/2 messages for it are dropped until it catches up"
                );
            }
            return;
        }
        if self.dropping && self.pending.len() <= max_queued / 2 {
            self.dropping = false;
            tracing::info!(
                client_id = %self.client_id,
                "the client's queue has room again: its QoS 1/2 messages are queued again"
            );
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if send_now {
            self.send_inflight(Queued { seq, delivery }, now, counters, journal);
        } else {
            self.journal_message(journal, seq, MessageState::Queued, Some(delivery.clone()));
            self.pending.push_back(Queued { seq, delivery });
            if let Some(connection) = &self.connection
                && self.pending.len() >= connection.backlog_high
                && self.holding_since.is_none()
            {
                self.holding_since = Some(now);
            }
        }
    }

    /// Sends a QoS 1/2 delivery under a fresh packet identifier and keeps it in flight.
    /// A delivery taken from the queue (or new) is journaled as published; one that goes back
    /// to the queue keeps its record.
    fn send_inflight(
        &mut self,
        queued: Queued,
        now: Instant,
        counters: &Counters,
        journal: &mut Journal,
    ) {
        let Some(id) = self.allocate_packet_id() else {
            self.requeue(queued, journal);
            return;
        };
        let Some(connection) = self.connection.as_mut() else {
            self.requeue(queued, journal);
            return;
        };
        let Queued { seq, delivery } = queued;
        let publish = delivery.message.to_publish(
            PublishQos::new(delivery.qos, id),
            delivery.retain,
            false,
            &delivery.subscription_ids,
            now,
        );
        match send_publish(publish, connection, Offer::Kept) {
            Err(TooLarge) => {
                // §3.1.2.25: a message too large for the client is discarded, as if delivered.
                counters.dropped_too_large.inc();
                self.journal_message_gone(journal, seq);
                return;
            }
            Ok(Ok(())) => counters.messages_out.inc(),
            // The connection is gone: the message stays in flight, resent on reconnection.
            Ok(Err(QueueFull)) => {}
        }
        self.journal_message(
            journal,
            seq,
            MessageState::Published(id),
            Some(delivery.clone()),
        );
        self.inflight.push_back(Inflight {
            id,
            seq,
            state: InflightState::Published(delivery),
        });
    }

    /// Puts a delivery that could not be sent back at the head of the queue.
    fn requeue(&mut self, queued: Queued, journal: &mut Journal) {
        self.journal_message(
            journal,
            queued.seq,
            MessageState::Queued,
            Some(queued.delivery.clone()),
        );
        self.pending.push_front(queued);
    }

    fn allocate_packet_id(&mut self) -> Option<PacketId> {
        for _ in 0..=u16::MAX {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            let Some(id) = PacketId::new(self.next_packet_id) else {
                continue;
            };
            if !self.inflight.iter().any(|i| i.id == id) {
                return Some(id);
            }
        }
        None
    }

    /// Sends queued deliveries while the client's quota allows.
    pub(crate) fn pump(&mut self, now: Instant, counters: &Counters, journal: &mut Journal) {
        while let Some(quota) = self.connection.as_ref().map(|c| c.send_quota) {
            if self.inflight.len() >= quota {
                break;
            }
            let Some(queued) = self.pending.pop_front() else {
                break;
            };
            if queued.delivery.message.is_expired(now) {
                counters.expired.inc();
                self.journal_message_gone(journal, queued.seq);
                continue;
            }
            let waiting = self.pending.len();
            self.send_inflight(queued, now, counters, journal);
            if self.pending.len() > waiting {
                // It went back to the queue (no free packet identifier): wait for an ack.
                break;
            }
        }
        if let Some(connection) = &self.connection
            && self.pending.len() <= connection.backlog_low
        {
            self.holding_since = None;
        }
    }

    /// PUBACK for a QoS 1 message (or a PUBREC refusing a QoS 2 one): it is done.
    pub(crate) fn acknowledged(
        &mut self,
        id: PacketId,
        now: Instant,
        counters: &Counters,
        journal: &mut Journal,
    ) {
        if let Some(index) = self.inflight.iter().position(|i| i.id == id)
            && let Some(done) = self.inflight.remove(index)
        {
            self.journal_message_gone(journal, done.seq);
        }
        self.pump(now, counters, journal);
    }

    /// PUBREC: answer PUBREL and await PUBCOMP. An unknown identifier still gets a PUBREL
    /// (with 0x92 in MQTT 5), as the client may have lost track after a reconnection.
    pub(crate) fn received(
        &mut self,
        ack: &Acknowledgement,
        now: Instant,
        counters: &Counters,
        journal: &mut Journal,
    ) {
        if ack.reason_code.is_error() {
            self.acknowledged(ack.packet_id, now, counters, journal);
            return;
        }
        let found = self.inflight.iter_mut().find(|i| i.id == ack.packet_id);
        let reason = match found {
            Some(inflight) => {
                inflight.state = InflightState::Released;
                let (seq, id) = (inflight.seq, inflight.id);
                self.journal_message(journal, seq, MessageState::Released(id), None);
                ReasonCode::Success
            }
            None => ReasonCode::PacketIdentifierNotFound,
        };
        let pubrel = Acknowledgement {
            reason_code: reason,
            ..Acknowledgement::success(ack.packet_id)
        };
        self.send(&Packet::PubRel(pubrel));
    }

    /// Resends everything in flight after a reconnection (PUBLISH with DUP, PUBREL), then
    /// what is queued.
    pub(crate) fn resume(&mut self, now: Instant, counters: &Counters, journal: &mut Journal) {
        let Some(connection) = self.connection.as_mut() else {
            return;
        };
        for inflight in &self.inflight {
            let queued = match &inflight.state {
                InflightState::Published(delivery) => {
                    let publish = delivery.message.to_publish(
                        PublishQos::new(delivery.qos, inflight.id),
                        delivery.retain,
                        true,
                        &delivery.subscription_ids,
                        now,
                    );
                    // One too large for the client now is skipped, as it was when first sent.
                    send_publish(publish, connection, Offer::Kept).unwrap_or(Ok(()))
                }
                InflightState::Released => match encode(
                    &Packet::PubRel(Acknowledgement::success(inflight.id)),
                    connection.version,
                ) {
                    Some(bytes) => connection.outlet.send(bytes),
                    None => Ok(()),
                },
            };
            if queued.is_err() {
                // The connection is already gone; the session keeps everything.
                return;
            }
        }
        self.pump(now, counters, journal);
    }

    /// Whether the live connection is behind and still catching up: much is queued to its
    /// socket, or many messages have waited for its QoS 1/2 quota for less than `stall`
    /// while the broker reads its acknowledgements. (One that takes longer holds no publisher
    /// back; nor does one the broker is not reading, whose acknowledgements wait unread.)
    pub(crate) fn is_congested(&self, now: Instant, stall: Duration) -> bool {
        self.connection.as_ref().is_some_and(|c| {
            c.outlet.is_congested()
                || (!c.outlet.is_held()
                    && self
                        .holding_since
                        .is_some_and(|since| now.saturating_duration_since(since) < stall))
        })
    }

    /// How many QoS 1/2 messages are in flight and queued.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        (self.inflight.len(), self.pending.len())
    }
}

/// `packet` encoded for `version`; `None` if it cannot be (a broker bug, logged).
pub(crate) fn encode(packet: &Packet, version: ProtocolVersion) -> Option<Bytes> {
    let mut out = Vec::new();
    match packet.encode(version, &mut out) {
        Ok(()) => Some(Bytes::from(out)),
        Err(e) => {
            tracing::error!(packet = %packet.packet_type(), "cannot encode: {e}");
            None
        }
    }
}

/// Queues `publish` to the connection as its encoded head and its shared payload, naming its
/// topic by an alias where the client accepts them. `Err(TooLarge)` if the packet is larger
/// than the client accepts (or cannot be encoded, a broker bug, logged).
fn send_publish(
    mut publish: Publish,
    connection: &mut Connection,
    offer: Offer,
) -> Result<Result<(), QueueFull>, TooLarge> {
    let topic = std::mem::take(&mut publish.topic);
    let alias = connection.aliases_out.choose(&topic);
    match alias {
        AliasUse::None => publish.topic = topic,
        AliasUse::Assign(alias) => {
            publish.properties.topic_alias = Some(alias);
            publish.topic = topic;
        }
        AliasUse::Reuse(alias) => publish.properties.topic_alias = Some(alias),
    }
    let mut head = Vec::with_capacity(publish.topic.len() + 16);
    if let Err(e) = publish.encode_head(connection.version, &mut head) {
        tracing::error!("cannot encode a PUBLISH: {e}");
        return Err(TooLarge);
    }
    let size = head.len() as u64 + publish.payload.len() as u64;
    if size > u64::from(connection.max_packet_size) {
        return Err(TooLarge);
    }
    let queued = match offer {
        Offer::Kept => connection
            .outlet
            .send_parts(Bytes::from(head), publish.payload),
        Offer::Droppable => connection
            .outlet
            .offer_parts(Bytes::from(head), publish.payload),
    };
    if queued.is_ok() && alias != AliasUse::None {
        let topic = match alias {
            AliasUse::Assign(_) => publish.topic,
            _ => String::new(),
        };
        // Only a new assignment needs the topic; a reuse just marks the alias used.
        connection.aliases_out.confirm(&topic, alias);
    }
    Ok(queued)
}

/// A packet larger than the client's Maximum Packet Size.
struct TooLarge;

/// Whether the outlet must keep a PUBLISH (QoS 1/2, bounded by the client's quota) or may drop
/// it (QoS 0, when its client is stalled or over budget).
#[derive(Debug, Clone, Copy)]
enum Offer {
    Kept,
    Droppable,
}
