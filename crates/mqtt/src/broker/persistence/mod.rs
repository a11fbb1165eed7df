//! What the broker keeps across a restart: retained messages and persistent sessions (session
//! expiry > 0) with their subscriptions, their queued and in-flight QoS 1/2 messages and the
//! inbound QoS 2 identifiers awaiting PUBREL.
//!
//! The sans-IO core records every change to persistent state in a [`Journal`]; the I/O shell
//! hands the journal to a [`Store`] with [`super::BrokerCore::commit`] before it writes any answer
//! of that turn to a socket. That is the durability rule: a PUBACK / PUBREC leaves only after
//! the message is committed for every persistent session it goes to (and as retained).
//! [`NoStore`] (the default) keeps nothing; [`RedbStore`] keeps it in a redb file.

mod record;
mod redb_store;

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::message::Message;
use super::router::SubscriberOptions;
use super::session::Delivery;
use crate::PacketId;

pub(crate) use redb_store::RedbStore;

/// The persistence store failed or holds something unreadable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb refused an operation (I/O error, database locked by another process, …).
    #[error("persistence store: {0}")]
    Redb(#[from] redb::Error),
    /// A stored record does not decode.
    #[error("persistence store: corrupt {what} record")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
    },
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for StoreError {
            fn from(e: $error) -> Self {
                Self::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Where an outbound QoS 1/2 message of a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageState {
    /// Queued, not sent yet.
    Queued,
    /// PUBLISH sent under this identifier, awaiting PUBACK / PUBREC.
    Published(PacketId),
    /// QoS 2: PUBREL sent, awaiting PUBCOMP (the message itself is no longer needed).
    Released(PacketId),
}

/// A persistent session's own state (its messages are separate records).
#[derive(Debug, Clone)]
pub(crate) struct SessionRecord {
    /// Who owns the session: only a client with this principal resumes it.
    pub(crate) owner: crate::broker::identity::Principal,
    pub(crate) expiry_interval: u32,
    /// `None` while connected.
    pub(crate) disconnected_at: Option<Instant>,
    pub(crate) subscriptions: Vec<(String, SubscriberOptions)>,
}

/// One change to persistent state, in the order the core made them.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// The retained message of `topic` set or deleted.
    Retained {
        topic: String,
        message: Option<Arc<Message>>,
    },
    /// A persistent session created or changed.
    Session {
        client_id: Arc<str>,
        record: SessionRecord,
    },
    /// A session ended (with all its messages and identifiers).
    SessionGone { client_id: Arc<str> },
    /// An outbound message of a session stored or moved on (`delivery` is `None` once
    /// released).
    Message {
        client_id: Arc<str>,
        seq: u64,
        state: MessageState,
        delivery: Option<Delivery>,
    },
    /// An outbound message acknowledged, expired or discarded.
    MessageGone { client_id: Arc<str>, seq: u64 },
    /// An inbound QoS 2 identifier received (PUBREC sent).
    IncomingQos2 { client_id: Arc<str>, packet_id: u16 },
    /// An inbound QoS 2 identifier released (PUBCOMP sent).
    IncomingReleased { client_id: Arc<str>, packet_id: u16 },
}

/// The changes of one turn of the broker, waiting for [`Store::commit`].
#[derive(Debug, Default)]
pub(crate) struct Journal {
    enabled: bool,
    changes: Vec<Change>,
}

impl Journal {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            changes: Vec::new(),
        }
    }

    /// Whether changes are recorded (a store keeps them).
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn push(&mut self, change: Change) {
        if self.enabled {
            self.changes.push(change);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub(crate) fn take(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
}

/// A persistent session as loaded, its messages in their original order.
#[derive(Debug)]
pub(crate) struct StoredSession {
    pub(crate) client_id: Arc<str>,
    pub(crate) owner: crate::broker::identity::Principal,
    pub(crate) expiry_interval: u32,
    /// When it was disconnected (the load time for a session that was connected when the
    /// broker stopped).
    pub(crate) disconnected_at: Instant,
    pub(crate) subscriptions: Vec<(String, SubscriberOptions)>,
    pub(crate) messages: Vec<(u64, MessageState, Option<Delivery>)>,
    pub(crate) incoming_qos2: Vec<u16>,
}

/// Everything a store holds, with expired sessions and messages already left out.
#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    pub(crate) retained: Vec<Arc<Message>>,
    pub(crate) sessions: Vec<StoredSession>,
}

/// Where persistent state goes.
pub(crate) trait Store: Send {
    /// Reads what was stored, at `now` (`wall` is the same instant on the wall clock, which
    /// stored times are kept in); drops (and deletes) expired sessions and messages.
    fn load(&mut self, now: Instant, wall: SystemTime) -> Result<Snapshot, StoreError>;
    /// Applies `changes` atomically and durably.
    fn commit(&mut self, changes: Vec<Change>) -> Result<(), StoreError>;
}

/// Keeps nothing: the broker forgets everything when it stops.
#[derive(Debug, Default)]
pub(crate) struct NoStore;

impl Store for NoStore {
    fn load(&mut self, _now: Instant, _wall: SystemTime) -> Result<Snapshot, StoreError> {
        Ok(Snapshot::default())
    }

    fn commit(&mut self, _changes: Vec<Change>) -> Result<(), StoreError> {
        Ok(())
    }
}
