//! The broker core's way out to one connection: bounded, never blocking. The core pushes
//! encoded packets and close requests; the connection task writes them to its socket.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::ReasonCode;

/// The outbound queue of one connection was full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// Where the core sends one connection's packets. Implementations must never block: the core
/// calls them with the broker's state locked.
pub trait Outlet: Send + Sync {
    /// Queues an encoded packet; `Err(QueueFull)` when the connection's queue is full.
    fn send(&self, packet: Bytes) -> Result<(), QueueFull>;
    /// Queues a packet given in two parts, its head and then its payload: a PUBLISH whose
    /// payload every delivery shares, so it is written from where it is and never copied per
    /// subscriber. The default joins the two.
    fn send_parts(&self, head: Bytes, payload: Bytes) -> Result<(), QueueFull> {
        let mut joined = Vec::with_capacity(head.len() + payload.len());
        joined.extend_from_slice(&head);
        joined.extend_from_slice(&payload);
        self.send(Bytes::from(joined))
    }
    /// Whether far more is queued to the connection than it is writing: the core then asks the
    /// publishers feeding it to pause (backpressure, so latency does not grow with a queue).
    fn is_congested(&self) -> bool {
        false
    }
    /// Asks the connection to close, after a DISCONNECT with `reason` when its protocol can
    /// say it (`None`: close without one). Idempotent: the first reason wins.
    fn close(&self, reason: Option<ReasonCode>);
}

/// One queued packet: its head, then its payload (empty for all but a PUBLISH).
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) head: Bytes,
    pub(crate) payload: Bytes,
}

impl Outbound {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }
}

/// The [`Outlet`] of a connection task: a bounded channel and a close signal.
#[derive(Debug)]
pub(crate) struct ChannelOutlet {
    tx: mpsc::Sender<Outbound>,
    close: Mutex<Option<Option<ReasonCode>>>,
    closed: Notify,
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Told when any congested connection has drained (shared by the broker's connections).
    drained: Arc<Drained>,
}

/// The broker-wide signal that a congested connection has drained: publishers paused for a
/// congested subscriber wait on it. A count of drains lets a waiter see one that came between
/// its turn and its wait (a bare [`Notify::notify_waiters`] would be lost then).
#[derive(Debug, Default)]
pub(crate) struct Drained {
    notify: Notify,
    count: AtomicU64,
}

impl Drained {
    /// How many drains there have been.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// A congested connection drained: wakes every waiter.
    pub(crate) fn signal(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    /// Waits until a drain after the `seen`-th, or `at_most`.
    pub(crate) async fn wait(&self, seen: u64, at_most: std::time::Duration) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the count is checked, so no signal falls in between.
        notified.as_mut().enable();
        if self.count() != seen {
            return;
        }
        let _ = tokio::time::timeout(at_most, notified).await;
    }
}

/// Queued bytes above which a connection is congested, and below which it has drained.
const CONGESTED: usize = 512 * 1024;
const DRAINED: usize = 128 * 1024;

impl ChannelOutlet {
    pub(crate) fn new(capacity: usize, drained: Arc<Drained>) -> (Self, mpsc::Receiver<Outbound>) {
        // tokio's bounded channel allocates its slots in blocks as they fill, so an idle
        // connection's queue costs little whatever its capacity.
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outlet = Self {
            tx,
            close: Mutex::new(None),
            closed: Notify::new(),
            queued: AtomicUsize::new(0),
            drained,
        };
        (outlet, rx)
    }

    /// `bytes` of what was queued have been written.
    pub(crate) fn written(&self, bytes: usize) {
        let before = self.queued.fetch_sub(bytes, Ordering::Relaxed);
        if before > DRAINED && before.saturating_sub(bytes) <= DRAINED {
            self.drained.signal();
        }
    }

    /// Waits for a close request and returns its reason.
    pub(crate) async fn closed(&self) -> Option<ReasonCode> {
        loop {
            if let Some(reason) = *self.close.lock().unwrap_or_else(|e| e.into_inner()) {
                return reason;
            }
            self.closed.notified().await;
        }
    }
}

impl Outlet for ChannelOutlet {
    fn send(&self, packet: Bytes) -> Result<(), QueueFull> {
        self.send_parts(packet, Bytes::new())
    }

    fn send_parts(&self, head: Bytes, payload: Bytes) -> Result<(), QueueFull> {
        let outbound = Outbound { head, payload };
        let len = outbound.len();
        self.tx.try_send(outbound).map_err(|_| QueueFull)?;
        self.queued.fetch_add(len, Ordering::Relaxed);
        Ok(())
    }

    fn is_congested(&self) -> bool {
        self.queued.load(Ordering::Relaxed) > CONGESTED
    }

    fn close(&self, reason: Option<ReasonCode>) {
        let mut close = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if close.is_none() {
            *close = Some(reason);
            self.closed.notify_one();
        }
    }
}
