//! Forwarding sealed events to peer nodes: one link per peer address, an attested TLS session
//! in which this node presents its own evidence, requests pipelined without waiting for each
//! answer. The link is untrusted for the events' integrity (they are sealed end to end); what
//! it adds is delivery: events the peer has not acknowledged are kept and sent again after a
//! reconnect, and the receiver's counters turn any resent copy it already had into a reported
//! replay, never a duplicate delivery.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atls::{AtlsClient, Peer};
use node_protocol::{Bytes, ErrorKind, ErrorReply, Op, PROTOCOL_VERSION, Reply, Request, Response};
use tokio::io::{AsyncWriteExt as _, ReadHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::client::TlsStream;

use crate::admin::read_frame;

/// Events waiting for one peer; beyond this a module's emit fails instead of blocking it.
const LINK_QUEUE: usize = 8192;
/// Frames written in one TLS write at most.
const BATCH: usize = 256;
/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Where the answer to a request goes: the requesting module's worker waits on it.
pub(crate) type AnswerSender = std::sync::mpsc::SyncSender<Result<Reply, ErrorReply>>;

/// What a sending connection end knows about its events on a link.
#[derive(Debug, Default)]
pub(crate) struct EndTracker {
    /// Events the peer refused (or that were not sent: the link was backed up).
    pub(crate) refused: AtomicU64,
    /// Events and requests handed to the link and not answered yet.
    pub(crate) in_flight: AtomicU64,
    /// Events the peer answered [`ErrorKind::Moved`]: the receiving module is moving, so they
    /// wait here until the end is pointed at its new node (or back at the old one).
    pub(crate) parked: Mutex<Vec<Vec<u8>>>,
    /// Set at the first `Moved`: the end then holds what it seals instead of sending it, so no
    /// later event overtakes a parked one.
    pub(crate) moved: std::sync::atomic::AtomicBool,
}

impl EndTracker {
    fn settled(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    /// Takes the parked events.
    pub(crate) fn take_parked(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut *self.parked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// One event or request on its way to a module on a peer node.
pub(crate) struct Outbound {
    module: String,
    envelope: Vec<u8>,
    /// `Some` for a request: the peer's answer is handed there.
    answer: Option<AnswerSender>,
    /// The sending connection end's counters.
    tracker: Arc<EndTracker>,
}

/// A reserved place in a link's queue: sealing happens only once it is held.
pub(crate) struct Slot(mpsc::OwnedPermit<Outbound>);

impl Slot {
    /// Sends an event; a refusal by the peer is counted in `tracker`.
    pub(crate) fn send(self, module: String, envelope: Vec<u8>, tracker: Arc<EndTracker>) {
        tracker.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.send(Outbound {
            module,
            envelope,
            answer: None,
            tracker,
        });
    }

    /// Sends a request; the answer (or why there is none) goes to `answer`.
    pub(crate) fn ask(
        self,
        module: String,
        envelope: Vec<u8>,
        answer: AnswerSender,
        tracker: Arc<EndTracker>,
    ) {
        tracker.in_flight.fetch_add(1, Ordering::AcqRel);
        self.0.send(Outbound {
            module,
            envelope,
            answer: Some(answer),
            tracker,
        });
    }
}

struct Link {
    queue: mpsc::Sender<Outbound>,
    task: tokio::task::AbortHandle,
}

/// The node's links to its peers.
pub(crate) struct Forwarder {
    runtime: tokio::runtime::Handle,
    client: AtlsClient,
    node: String,
    links: Mutex<HashMap<String, Link>>,
}

impl Forwarder {
    /// A forwarder whose links present `client`'s identity (this node's attested key) and
    /// appraise peers under its verifier; link tasks run on `runtime`.
    pub(crate) fn new(runtime: tokio::runtime::Handle, client: AtlsClient, node: &str) -> Self {
        Self {
            runtime,
            client,
            node: node.to_owned(),
            links: Mutex::default(),
        }
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<String, Link>> {
        self.links.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place in the queue to `address` (starting its link on first use), or `None` when the
    /// queue is full.
    pub(crate) fn reserve(&self, address: &str) -> Option<Slot> {
        let queue = {
            let mut links = self.links();
            let link = links.entry(address.to_owned()).or_insert_with(|| {
                let (queue, events) = mpsc::channel(LINK_QUEUE);
                let task = self
                    .runtime
                    .spawn(run_link(
                        address.to_owned(),
                        self.node.clone(),
                        self.client.clone(),
                        events,
                    ))
                    .abort_handle();
                Link { queue, task }
            });
            link.queue.clone()
        };
        queue.try_reserve_owned().ok().map(Slot)
    }

    /// Stops every link (the node is shutting down); events not yet acknowledged by a peer are
    /// dropped, and the log says how many.
    pub(crate) fn close(&self) {
        for (address, link) in self.links().drain() {
            let waiting = link.queue.max_capacity() - link.queue.capacity();
            if waiting > 0 {
                tracing::warn!(node = %self.node, peer = %address, waiting, "node stopping with events still queued for a peer");
            }
            link.task.abort();
        }
    }
}

/// Keeps a session to `address` and sends it every queued event, reconnecting with backoff.
async fn run_link(
    address: String,
    node: String,
    client: AtlsClient,
    mut events: mpsc::Receiver<Outbound>,
) {
    let mut unacknowledged: VecDeque<Outbound> = VecDeque::new();
    let mut backoff = FIRST_BACKOFF;
    loop {
        if unacknowledged.is_empty() {
            // Nothing is owed to the peer: connect again only once there is something to send,
            // so an idle link whose peer went away is not an error.
            match events.recv().await {
                Some(event) => unacknowledged.push_back(event),
                // Every module that sent here is gone.
                None => return,
            }
        }
        let stream = match connect(&client, &address).await {
            Ok(stream) => stream,
            Err(reason) => {
                tracing::warn!(node = %node, peer = %address, %reason, retry_ms = backoff.as_millis() as u64, "cannot reach peer node; events wait");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        tracing::info!(node = %node, peer = %address, resending = unacknowledged.len(), "event link to peer node up");
        let (reader, mut writer) = tokio::io::split(stream);
        let (acks_tx, mut acks) = mpsc::unbounded_channel::<Response>();
        let reader = tokio::spawn(read_responses(reader, acks_tx));
        let mut next_id = 2u64;
        let mut batch = Vec::new();
        // Whatever was sent but not acknowledged before the link broke goes again first.
        for event in &unacknowledged {
            append_request(&mut batch, &mut next_id, event);
        }
        let mut healthy = flush(&mut writer, &mut batch).await;
        while healthy {
            tokio::select! {
                // At most LINK_QUEUE events in flight: beyond that the queue fills and
                // modules' emits fail, rather than this node buffering without bound.
                event = events.recv(), if unacknowledged.len() < LINK_QUEUE => {
                    let Some(event) = event else {
                        // The node is shutting down.
                        reader.abort();
                        return;
                    };
                    append_request(&mut batch, &mut next_id, &event);
                    unacknowledged.push_back(event);
                    let mut frames = 1;
                    while frames < BATCH && unacknowledged.len() < LINK_QUEUE {
                        let Ok(event) = events.try_recv() else { break };
                        append_request(&mut batch, &mut next_id, &event);
                        unacknowledged.push_back(event);
                        frames += 1;
                    }
                    healthy = flush(&mut writer, &mut batch).await;
                }
                ack = acks.recv() => match ack {
                    Some(response) => {
                        let Some(event) = unacknowledged.pop_front() else { continue };
                        let tracker = event.tracker.clone();
                        match (event.answer, response.outcome) {
                            (Some(answer), outcome) => {
                                let _ = answer.try_send(outcome);
                            }
                            (None, Err(e)) if e.kind == ErrorKind::Moved => {
                                tracker.moved.store(true, Ordering::Release);
                                let mut parked =
                                    tracker.parked.lock().unwrap_or_else(|e| e.into_inner());
                                if parked.len() < LINK_QUEUE {
                                    tracing::debug!(node = %node, peer = %address, module = %event.module, "event parked: its module is moving");
                                    parked.push(event.envelope);
                                } else {
                                    tracker.refused.fetch_add(1, Ordering::Relaxed);
                                    tracing::warn!(node = %node, peer = %address, module = %event.module, "event dropped: {LINK_QUEUE} events wait for a module that is moving");
                                }
                            }
                            (None, Err(e)) => {
                                tracker.refused.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(node = %node, peer = %address, module = %event.module, reason = %e.message, "peer node refused an event");
                            }
                            (None, Ok(_)) => {}
                        }
                        tracker.settled();
                    }
                    None => healthy = false,
                },
            }
        }
        reader.abort();
        // Events are sent again (the receiver's counters make that safe); requests are not,
        // so a handler never runs twice for one request: their modules get an error now.
        unacknowledged.retain_mut(|event| match event.answer.take() {
            Some(answer) => {
                let _ = answer.try_send(Err(ErrorReply::new(
                    ErrorKind::Internal,
                    format!("the link to {address} broke before the answer came"),
                )));
                event.tracker.settled();
                false
            }
            None => true,
        });
        if unacknowledged.is_empty() {
            tracing::debug!(node = %node, peer = %address, "idle event link to peer node closed");
        } else {
            tracing::warn!(node = %node, peer = %address, unacknowledged = unacknowledged.len(), "event link to peer node lost; reconnecting");
        }
    }
}

fn append_request(batch: &mut Vec<u8>, next_id: &mut u64, event: &Outbound) {
    let module = event.module.clone();
    let envelope = Bytes(event.envelope.clone());
    let op = if event.answer.is_some() {
        Op::Ask { module, envelope }
    } else {
        Op::Event { module, envelope }
    };
    let request = Request { id: *next_id, op };
    *next_id += 1;
    if let Ok(frame) = node_protocol::encode_frame(&request.encode()) {
        batch.extend_from_slice(&frame);
    }
}

async fn flush<W: tokio::io::AsyncWrite + Unpin>(writer: &mut W, batch: &mut Vec<u8>) -> bool {
    if batch.is_empty() {
        return true;
    }
    let ok = writer.write_all(batch).await.is_ok() && writer.flush().await.is_ok();
    batch.clear();
    ok
}

async fn read_responses(
    mut reader: ReadHalf<TlsStream<TcpStream>>,
    acks: mpsc::UnboundedSender<Response>,
) {
    while let Ok(Some(frame)) = read_frame(&mut reader).await {
        match Response::decode(&frame) {
            Ok(response) => {
                if acks.send(response).is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!("peer node sent an undecodable response: {e}");
                return;
            }
        }
    }
}

/// An attested session with the peer at `address`, greeted.
async fn connect(client: &AtlsClient, address: &str) -> Result<TlsStream<TcpStream>, String> {
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        client.connect(tcp).await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| format!("no attested session within {} s", CONNECT_TIMEOUT.as_secs()))??;
    if !matches!(conn.peer, Peer::Attested(_)) {
        return Err("the peer presented no evidence".into());
    }
    let mut stream = conn.stream;
    let hello = Request {
        id: 1,
        op: Op::Hello {
            version: PROTOCOL_VERSION,
            session_evidence: false,
        },
    };
    crate::admin::write_payload(&mut stream, &hello.encode())
        .await
        .map_err(|e| format!("cannot greet: {e}"))?;
    let frame = read_frame(&mut stream)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the peer closed the session")?;
    match Response::decode(&frame).map_err(|e| e.to_string())?.outcome {
        Ok(Reply::Hello { .. }) => Ok(stream),
        Ok(_) => Err("the peer did not answer hello".into()),
        Err(e) => Err(e.message),
    }
}
