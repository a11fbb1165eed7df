//! [`RedbStore`]: persistent state in one redb file, one write transaction per commit with
//! redb's default durability (fsync before the commit returns), so what was committed
//! survives a kill -9 or a power cut.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::record::{self, WallClock};
use super::{Change, MessageState, Snapshot, Store, StoreError, StoredSession};

/// Topic → retained message.
const RETAINED: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("retained");
/// Client identifier → session record.
const SESSIONS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sessions");
/// (client identifier, sequence number) → outbound message and its state.
const MESSAGES: TableDefinition<'static, (&str, u64), &[u8]> = TableDefinition::new("messages");
/// (client identifier, packet identifier): inbound QoS 2 awaiting PUBREL.
const INCOMING_QOS2: TableDefinition<'static, (&str, u16), ()> =
    TableDefinition::new("incoming_qos2");

/// The broker's persistent state in a redb database file.
pub(crate) struct RedbStore {
    db: Database,
    clock: WallClock,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens (or creates) the database at `path`. Fails if another process has it open.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        {
            // Created up front so a read never meets a missing table.
            txn.open_table(RETAINED)?;
            txn.open_table(SESSIONS)?;
            txn.open_table(MESSAGES)?;
            txn.open_table(INCOMING_QOS2)?;
        }
        txn.commit()?;
        Ok(Self {
            db,
            clock: WallClock::new(Instant::now(), SystemTime::now()),
        })
    }
}

type Messages = Vec<(u64, MessageState, Option<super::Delivery>)>;

impl Store for RedbStore {
    fn load(&mut self, now: Instant, wall: SystemTime) -> Result<Snapshot, StoreError> {
        self.clock = WallClock::new(now, wall);
        let clock = self.clock;
        let mut snapshot = Snapshot::default();
        let mut stale_retained = Vec::new();
        let mut gone_sessions = Vec::new();
        let mut stale_messages = Vec::new();
        let mut sessions = Vec::new();
        let mut messages: HashMap<String, Messages> = HashMap::new();
        let mut incoming: HashMap<String, Vec<u16>> = HashMap::new();
        {
            let txn = self.db.begin_read()?;
            for entry in txn.open_table(RETAINED)?.iter()? {
                let (topic, value) = entry?;
                match record::decode_retained(value.value(), clock)? {
                    Some(message) => snapshot.retained.push(Arc::new(message)),
                    None => stale_retained.push(topic.value().to_owned()),
                }
            }
            for entry in txn.open_table(SESSIONS)?.iter()? {
                let (client_id, value) = entry?;
                let client_id = client_id.value().to_owned();
                let record::StoredRecord {
                    expiry_interval: expiry,
                    disconnected_ms: disconnected,
                    subscriptions,
                    owner,
                } = record::decode_session(value.value())?;
                // A session connected when the broker stopped lost its connection then, at a
                // time not recorded: its expiry counts from now.
                let disconnected = disconnected.unwrap_or(clock.now_ms());
                let expired = expiry != u32::MAX
                    && disconnected.saturating_add(u64::from(expiry) * 1000) <= clock.now_ms();
                if expired {
                    tracing::debug!(client_id, "session expired while the broker was down");
                    gone_sessions.push(client_id);
                    continue;
                }
                sessions.push((client_id, expiry, disconnected, subscriptions, owner));
            }
            for entry in txn.open_table(MESSAGES)?.iter()? {
                let (key, value) = entry?;
                let (client_id, seq) = key.value();
                let (state, delivery) = record::decode_outbound(value.value(), clock)?;
                if delivery.is_none() && !matches!(state, MessageState::Released(_)) {
                    stale_messages.push((client_id.to_owned(), seq));
                    continue;
                }
                messages
                    .entry(client_id.to_owned())
                    .or_default()
                    .push((seq, state, delivery));
            }
            for entry in txn.open_table(INCOMING_QOS2)?.iter()? {
                let (key, ()) = (entry?.0, ());
                let (client_id, packet_id) = key.value();
                incoming
                    .entry(client_id.to_owned())
                    .or_default()
                    .push(packet_id);
            }
        }
        for (client_id, expiry_interval, disconnected, subscriptions, owner) in sessions {
            snapshot.sessions.push(StoredSession {
                owner,
                messages: messages.remove(&client_id).unwrap_or_default(),
                incoming_qos2: incoming.remove(&client_id).unwrap_or_default(),
                client_id: client_id.into(),
                expiry_interval,
                disconnected_at: clock.to_instant(disconnected),
                subscriptions,
            });
        }
        // Messages and identifiers of sessions without a record belong to no one.
        let orphans: BTreeMap<String, ()> = messages
            .into_keys()
            .chain(incoming.into_keys())
            .map(|c| (c, ()))
            .collect();
        gone_sessions.extend(orphans.into_keys());
        let mut changes: Vec<Change> = Vec::new();
        for topic in stale_retained {
            changes.push(Change::Retained {
                topic,
                message: None,
            });
        }
        for client_id in gone_sessions {
            changes.push(Change::SessionGone {
                client_id: client_id.into(),
            });
        }
        for (client_id, seq) in stale_messages {
            changes.push(Change::MessageGone {
                client_id: client_id.into(),
                seq,
            });
        }
        if !changes.is_empty() {
            self.commit(changes)?;
        }
        Ok(snapshot)
    }

    fn commit(&mut self, changes: Vec<Change>) -> Result<(), StoreError> {
        let clock = self.clock;
        let txn = self.db.begin_write()?;
        {
            let mut retained = txn.open_table(RETAINED)?;
            let mut sessions = txn.open_table(SESSIONS)?;
            let mut messages = txn.open_table(MESSAGES)?;
            let mut incoming = txn.open_table(INCOMING_QOS2)?;
            for change in changes {
                match change {
                    Change::Retained {
                        topic,
                        message: Some(message),
                    } => {
                        let bytes = record::encode_retained(&message, clock);
                        retained.insert(topic.as_str(), bytes.as_slice())?;
                    }
                    Change::Retained {
                        topic,
                        message: None,
                    } => {
                        retained.remove(topic.as_str())?;
                    }
                    Change::Session { client_id, record } => {
                        let bytes = record::encode_session(&record, clock);
                        sessions.insert(&*client_id, bytes.as_slice())?;
                    }
                    Change::SessionGone { client_id } => {
                        let id: &str = &client_id;
                        sessions.remove(id)?;
                        messages.retain_in((id, 0u64)..=(id, u64::MAX), |_, _| false)?;
                        incoming.retain_in((id, 0u16)..=(id, u16::MAX), |_, ()| false)?;
                    }
                    Change::Message {
                        client_id,
                        seq,
                        state,
                        delivery,
                    } => {
                        let bytes = record::encode_outbound(state, delivery.as_ref(), clock);
                        messages.insert((&*client_id, seq), bytes.as_slice())?;
                    }
                    Change::MessageGone { client_id, seq } => {
                        messages.remove((&*client_id, seq))?;
                    }
                    Change::IncomingQos2 {
                        client_id,
                        packet_id,
                    } => {
                        incoming.insert((&*client_id, packet_id), ())?;
                    }
                    Change::IncomingReleased {
                        client_id,
                        packet_id,
                    } => {
                        incoming.remove((&*client_id, packet_id))?;
                    }
                }
            }
        }
        txn.commit()?;
        Ok(())
    }
}
