//! The broker core's way out to one connection: bounded, never blocking. The core pushes
//! encoded packets and close requests; the connection task writes them to its socket.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::ReasonCode;

/// The connection refused a packet: it is gone, or (a QoS 0 message) its client is stalled
/// or over its memory budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// Where the core sends one connection's packets. Implementations must never block: the core
/// calls them with the broker's state locked.
pub trait Outlet: Send + Sync {
    /// Queues an encoded packet that must not be lost: a CONNACK, an acknowledgement, a
    /// control reply, a QoS 1/2 PUBLISH (bounded by the client's quota). `Err(QueueFull)` only
    /// when the connection is gone. The shell bounds these by reading no more from a client
    /// whose replies it has not written.
    fn send(&self, packet: Bytes) -> Result<(), QueueFull>;
    /// Like [`Self::send`], for a packet given in two parts, its head and then its payload: a
    /// PUBLISH whose payload every delivery shares, so it is written from where it is and never
    /// copied per subscriber. The default joins the two.
    fn send_parts(&self, head: Bytes, payload: Bytes) -> Result<(), QueueFull> {
        let mut joined = Vec::with_capacity(head.len() + payload.len());
        joined.extend_from_slice(&head);
        joined.extend_from_slice(&payload);
        self.send(Bytes::from(joined))
    }
    /// Offers a QoS 0 PUBLISH, which the outlet may refuse (`Err(QueueFull)`, the message is
    /// dropped): its client made no progress for the stall timeout, or what is queued to it
    /// exceeds its memory budget. The default queues it as [`Self::send_parts`] does.
    fn offer_parts(&self, head: Bytes, payload: Bytes) -> Result<(), QueueFull> {
        self.send_parts(head, payload)
    }
    /// Whether far more is queued to the connection than it is writing, while it still makes
    /// progress: the core then holds back the publishers feeding it (backpressure, so neither
    /// a queue nor latency grows without bound).
    fn is_congested(&self) -> bool {
        false
    }
    /// Whether the broker is not reading from this client now (it holds it back): its
    /// acknowledgements wait unread, so a quota it leaves unacknowledged then says nothing
    /// about it (and holds no publisher back).
    fn is_held(&self) -> bool {
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
    /// A reply to the client's own request (or a CONNACK), not a delivery.
    pub(crate) reply: bool,
}

impl Outbound {
    pub(crate) fn len(&self) -> usize {
        self.head.len() + self.payload.len()
    }
}

/// The [`Outlet`] of a connection task: an unbounded channel whose queued bytes are counted
/// (what the core may add to it is bounded by the rules above), and a close signal.
#[derive(Debug)]
pub(crate) struct ChannelOutlet {
    tx: mpsc::UnboundedSender<Outbound>,
    close: Mutex<Option<Option<ReasonCode>>>,
    closed: Notify,
    /// Bytes queued and not yet written.
    queued: AtomicUsize,
    /// Of those, the bytes of replies to the client's own requests.
    replies: AtomicUsize,
    /// Milliseconds after `epoch` since which more than `congested_at` has been queued without
    /// a break (`u64::MAX`: it is not). A client that cannot bring its queue under that mark
    /// within the stall timeout drains too slowly to hold its publishers back.
    congested_since: AtomicU64,
    /// Whether the connection is not reading from its client now.
    held: AtomicBool,
    /// When the client last made progress: milliseconds after `epoch` at which a write
    /// completed or the queue stopped being empty.
    progress_at: AtomicU64,
    epoch: Instant,
    /// See [`Limits::max_outbound_bytes`](super::Limits) and `stall_timeout_ms`.
    budget: usize,
    /// Queued bytes above which the connection is congested, and at or below which it has
    /// drained: [`CONGESTED`] and [`DRAINED`], or less under a small budget, so publishers are
    /// held back before QoS 0 messages would be dropped.
    congested_at: usize,
    drained_at: usize,
    stall_ms: u64,
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

    /// Waits until a drain after the `seen`-th.
    pub(crate) async fn wait(&self, seen: u64) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the count is checked, so no signal falls in between.
        notified.as_mut().enable();
        if self.count() != seen {
            return;
        }
        notified.await;
    }
}

/// Queued bytes above which a connection is congested (its publishers are held back, and it is
/// not read), and below which it has drained.
const CONGESTED: usize = 512 * 1024;
const DRAINED: usize = 128 * 1024;

impl ChannelOutlet {
    pub(crate) fn new(
        budget: usize,
        stall: Duration,
        drained: Arc<Drained>,
    ) -> (Self, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let congested_at = CONGESTED.min(budget / 2);
        let outlet = Self {
            congested_at,
            drained_at: DRAINED.min(congested_at / 4),
            tx,
            close: Mutex::new(None),
            closed: Notify::new(),
            queued: AtomicUsize::new(0),
            replies: AtomicUsize::new(0),
            congested_since: AtomicU64::new(u64::MAX),
            held: AtomicBool::new(false),
            progress_at: AtomicU64::new(0),
            epoch: Instant::now(),
            budget,
            stall_ms: u64::try_from(stall.as_millis()).unwrap_or(u64::MAX),
            drained,
        };
        (outlet, rx)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `bytes` of what was queued have been written (part of a batch counts).
    pub(crate) fn written(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        self.progress_at.store(self.now_ms(), Ordering::Relaxed);
        let before = self.queued.fetch_sub(bytes, Ordering::Relaxed);
        let after = before.saturating_sub(bytes);
        if after <= self.congested_at {
            // Back under the mark: it is catching up (the clock of a long congestion restarts).
            self.congested_since.store(u64::MAX, Ordering::Relaxed);
        }
        if before > self.drained_at && after <= self.drained_at {
            self.drained.signal();
        }
    }

    /// `bytes` of replies among what was written have left (counted once their packets are).
    pub(crate) fn replies_written(&self, bytes: usize) {
        self.replies.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Whether so many of the client's own replies wait that it should not be read until they
    /// are written: they are then held in its socket, not in the broker. (Deliveries to it do
    /// not count: they are bounded by its budget and its QoS 1/2 quota, and a client that
    /// writes a burst before it reads must still be read.)
    pub(crate) fn is_backlogged(&self) -> bool {
        self.replies.load(Ordering::Relaxed) > CONGESTED
    }

    /// Says whether the connection is reading from its client now.
    pub(crate) fn set_held(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    /// Whether something is queued and the client took none of it for the stall timeout, or
    /// it has stayed congested that long (it drains too slowly to count as keeping up).
    pub(crate) fn is_stalled(&self) -> bool {
        if self.queued() == 0 {
            return false;
        }
        let now = self.now_ms();
        let idle = now.saturating_sub(self.progress_at.load(Ordering::Relaxed));
        let since = self.congested_since.load(Ordering::Relaxed);
        idle >= self.stall_ms || (since != u64::MAX && now.saturating_sub(since) >= self.stall_ms)
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

    fn push(&self, outbound: Outbound) -> Result<(), QueueFull> {
        let len = outbound.len();
        let reply = outbound.reply;
        // Counted first, so the writer never sees a write larger than the count.
        let before = self.queued.fetch_add(len, Ordering::Relaxed);
        if before == 0 {
            // An empty queue is no stall: the clock starts now.
            self.progress_at.store(self.now_ms(), Ordering::Relaxed);
        }
        if before <= self.congested_at && before + len > self.congested_at {
            let _ = self.congested_since.compare_exchange(
                u64::MAX,
                self.now_ms(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
        if reply {
            self.replies.fetch_add(len, Ordering::Relaxed);
        }
        if self.tx.send(outbound).is_err() {
            self.queued.fetch_sub(len, Ordering::Relaxed);
            if reply {
                self.replies.fetch_sub(len, Ordering::Relaxed);
            }
            return Err(QueueFull);
        }
        Ok(())
    }
}

impl Outlet for ChannelOutlet {
    fn send(&self, packet: Bytes) -> Result<(), QueueFull> {
        self.push(Outbound {
            head: packet,
            payload: Bytes::new(),
            reply: true,
        })
    }

    fn send_parts(&self, head: Bytes, payload: Bytes) -> Result<(), QueueFull> {
        self.push(Outbound {
            head,
            payload,
            reply: false,
        })
    }

    fn offer_parts(&self, head: Bytes, payload: Bytes) -> Result<(), QueueFull> {
        let len = head.len() + payload.len();
        // One message larger than the budget still goes to an empty queue.
        let queued = self.queued();
        if (queued > 0 && queued.saturating_add(len) > self.budget) || self.is_stalled() {
            return Err(QueueFull);
        }
        self.push(Outbound {
            head,
            payload,
            reply: false,
        })
    }

    fn is_congested(&self) -> bool {
        self.queued() > self.congested_at && !self.is_stalled()
    }

    fn is_held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    fn close(&self, reason: Option<ReasonCode>) {
        let mut close = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if close.is_none() {
            *close = Some(reason);
            self.closed.notify_one();
        }
    }
}
