//! The broker core's way out to one connection: bounded, never blocking. The core pushes
//! encoded packets and close requests; the connection task writes them to its socket.

use std::sync::Mutex;

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
}

impl ChannelOutlet {
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Outbound>) {
        // tokio's bounded channel allocates its slots in blocks as they fill, so an idle
        // connection's queue costs little whatever its capacity.
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outlet = Self {
            tx,
            close: Mutex::new(None),
            closed: Notify::new(),
        };
        (outlet, rx)
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
        self.tx
            .try_send(Outbound { head, payload })
            .map_err(|_| QueueFull)
    }

    fn close(&self, reason: Option<ReasonCode>) {
        let mut close = self.close.lock().unwrap_or_else(|e| e.into_inner());
        if close.is_none() {
            *close = Some(reason);
            self.closed.notify_one();
        }
    }
}
