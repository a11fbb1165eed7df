//! Counters of what the broker did and dropped, readable while it runs.

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonic counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The broker's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections accepted (CONNACK Success).
    pub connections: Counter,
    /// PUBLISH packets received from clients.
    pub messages_in: Counter,
    /// PUBLISH packets queued to clients.
    pub messages_out: Counter,
    /// QoS 0 messages dropped because their client was stalled or over its memory budget.
    pub dropped_queue_full: Counter,
    /// QoS 0 messages for a disconnected session (not kept).
    pub dropped_offline_qos0: Counter,
    /// Messages larger than the client's maximum packet size.
    pub dropped_too_large: Counter,
    /// Messages that expired before delivery.
    pub expired: Counter,
    /// Clients disconnected because a write to them made no progress for 30 s (they read
    /// nothing).
    pub slow_consumers_disconnected: Counter,
    /// Connections refused before CONNECT: too many in all or from one address, or a CONNECT
    /// above the size limit.
    pub connections_refused: Counter,
    /// Clients disconnected for a malformed packet or a protocol error.
    pub protocol_errors: Counter,
}
