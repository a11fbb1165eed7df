//! One client connection as a tokio task: reads bytes into the [`Decoder`], hands whole packets
//! to the core under the broker's lock, writes what the core queued to its outlet, and enforces
//! the CONNECT timeout and keep alive. Memory per idle connection is a small read buffer and an
//! empty queue.

use std::collections::HashSet;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use super::connect_auth::{AuthRefusal, ConnectAuthenticator};
use super::core::{Flow, refuse};
use super::identity::{ClientIdentity, TransportIdentity};
use super::outlet::{ChannelOutlet, Outbound, Outlet};
use super::session::encode;
use crate::{
    ConnAck, Connect, Decoder, Disconnect, Error, Packet, Properties, ProtocolVersion, ReasonCode,
};

/// How long a write to a client may make no progress before it is considered gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes written in one batch.
const WRITE_BATCH: usize = 64 * 1024;
/// The most slices in one vectored write (well below every system's `IOV_MAX`).
const MAX_SLICES: usize = 256;
/// A read buffer larger than this is released once empty, so one big packet does not pin
/// memory on an idle connection.
const KEEP_BUFFER: usize = 16 * 1024;
/// The least and the most room a read is given (a larger packet takes several reads).
const MIN_READ: usize = 64;
const MAX_READ: usize = 256 * 1024;

pub(crate) async fn run<S>(
    shared: Arc<Shared>,
    stream: S,
    transport: TransportIdentity,
    authenticator: Option<Arc<dyn ConnectAuthenticator>>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let conn_id = shared.next_conn_id();
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = BytesMut::new();
    let mut decoder = Decoder::new(shared.limits.max_packet_size);
    let connect_timeout = Duration::from_secs(shared.limits.connect_timeout_secs.max(1));
    let connect = match tokio::time::timeout(
        connect_timeout,
        read_connect(
            &mut reader,
            &mut buf,
            &mut decoder,
            shared.limits.max_connect_size,
        ),
    )
    .await
    {
        Ok(Ok(connect)) => connect,
        Ok(Err(ReadError::TooLarge(size))) => {
            shared.counters.connections_refused.inc();
            tracing::info!(
                remote = %transport.remote_addr.map(|a| a.to_string()).unwrap_or_default(),
                "connection refused: a {size}-byte CONNECT, above limits.max_connect_size ({})",
                shared.limits.max_connect_size
            );
            let _ = writer.shutdown().await;
            return;
        }
        Ok(Err(ReadError::Codec(e))) => {
            tracing::debug!(remote = ?transport.remote_addr, "refused before CONNECT: {e}");
            if matches!(
                e,
                Error::UnsupportedProtocolVersion(_) | Error::InvalidProtocolName(_)
            ) {
                // The 3.1.1 CONNACK "unacceptable protocol version" is what every version's
                // client understands.
                let _ = writer.write_all(&[0x20, 0x02, 0x00, 0x01]).await;
            }
            let _ = writer.shutdown().await;
            return;
        }
        Ok(Err(ReadError::Closed)) | Err(_) => return,
    };
    let version = connect.protocol;
    let (outlet, rx) = ChannelOutlet::new(
        shared.limits.max_outbound_bytes,
        shared.limits.stall_timeout(),
        shared.drained.clone(),
    );
    let outlet = Arc::new(outlet);
    let dyn_outlet: Arc<dyn Outlet> = outlet.clone();

    let remote = transport.remote_addr;
    let identity = match authenticate(&shared, &connect, transport, authenticator).await {
        Ok(identity) => identity,
        Err(Refusal::Plain(reason)) => {
            // An operator must see failed logins (who, from where), never the password.
            let why = match reason {
                ReasonCode::BadUserNameOrPassword => "bad user name or password",
                ReasonCode::NotAuthorized => "anonymous clients are not allowed",
                _ => "the broker could not check the credentials",
            };
            tracing::info!(
                remote = %remote.map(|a| a.to_string()).unwrap_or_default(),
                client_id = %connect.client_id,
                username = connect.username.as_deref().unwrap_or(""),
                reason = ?reason,
                "CONNECT refused: {why}"
            );
            // MQTT 5 clients get the why as the Reason String too.
            let refusal = AuthRefusal {
                reason,
                message: why.to_owned(),
            };
            refuse_explained(&*dyn_outlet, version, &refusal);
            finish(Some(&mut reader), &mut writer, rx, version, None).await;
            return;
        }
        Err(Refusal::Explained(refusal)) => {
            tracing::info!(
                remote = %remote.map(|a| a.to_string()).unwrap_or_default(),
                client_id = %connect.client_id,
                "CONNECT refused: {refusal}"
            );
            refuse_explained(&*dyn_outlet, version, &refusal);
            finish(Some(&mut reader), &mut writer, rx, version, None).await;
            return;
        }
    };
    let (accepted, committed) = {
        let mut core = shared.core();
        let accepted = core.connect(
            conn_id,
            *connect,
            identity,
            dyn_outlet.clone(),
            std::time::Instant::now(),
        );
        (accepted, Shared::commit(&mut core))
    };
    if let (Some(accepted), false) = (&accepted, committed) {
        // The CONNACK must not promise a session the store does not hold.
        let mut core = shared.core();
        core.disconnected(conn_id, &accepted.client_id, std::time::Instant::now());
        Shared::commit(&mut core);
        return;
    }
    let Some(accepted) = accepted else {
        finish(Some(&mut reader), &mut writer, rx, version, None).await;
        return;
    };
    let client_id = accepted.client_id;
    tracing::debug!(client_id = %client_id, conn_id, %version, "connected");
    let reason = serve(
        &shared,
        conn_id,
        &client_id,
        accepted.keep_alive,
        &mut reader,
        &mut writer,
        &mut buf,
        &mut decoder,
        &outlet,
        rx,
        version,
    )
    .await;
    {
        let mut core = shared.core();
        core.disconnected(conn_id, &client_id, std::time::Instant::now());
        Shared::commit(&mut core);
    }
    // Publishers paused for this client look again at once: it is gone.
    shared.drained.signal();
    tracing::debug!(client_id = %client_id, conn_id, ?reason, "disconnected");
    linger(&mut reader).await;
}

enum ReadError {
    Codec(Error),
    /// A CONNECT of this many bytes, above `limits.max_connect_size`.
    TooLarge(usize),
    Closed,
}

/// Reads the CONNECT, refusing one larger than `max_connect` bytes from its fixed header, so a
/// client not yet authenticated makes the broker hold no more than that.
async fn read_connect<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    max_connect: u32,
) -> Result<Box<Connect>, ReadError> {
    loop {
        if let Ok(Some(header)) = decoder.fixed_header(buf)
            && header.packet_len() > max_connect as usize
        {
            return Err(ReadError::TooLarge(header.packet_len()));
        }
        match decoder.decode(buf) {
            Ok(Some((Packet::Connect(connect), len))) => {
                buf.advance(len);
                return Ok(connect);
            }
            // The decoder refuses anything but CONNECT first.
            Ok(Some(_)) => return Err(ReadError::Closed),
            Ok(None) => {}
            Err(e) => return Err(ReadError::Codec(e)),
        }
        reserve_for_packet(buf, decoder);
        match reader.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(ReadError::Closed),
            Ok(_) => {}
        }
    }
}

/// Room for the rest of the packet being read, once its fixed header says how long it is.
fn reserve_for_packet(buf: &mut BytesMut, decoder: &Decoder) {
    buf.reserve(packet_rest(buf, decoder).clamp(MIN_READ, MAX_READ));
}

/// The bytes of the packet at the start of `buf` not read yet (0 if its header is incomplete).
fn packet_rest(buf: &BytesMut, decoder: &Decoder) -> usize {
    match decoder.fixed_header(buf) {
        Ok(Some(header)) => header.packet_len().saturating_sub(buf.len()),
        _ => 0,
    }
}

/// How much room to give the next read: while reads fill what they are given, more is
/// waiting, so the room doubles (a stream of 16 KiB packets is read in 64 KiB chunks rather
/// than a header first and then the rest); when they do not, it halves, so a quiet connection
/// holds a small buffer.
#[derive(Debug)]
struct ReadSize {
    hint: usize,
    /// Whether the last read filled its room (the peer was ahead of us).
    filled: bool,
}

impl ReadSize {
    fn new() -> Self {
        Self {
            hint: MIN_READ,
            filled: false,
        }
    }

    /// Makes room in `buf` for the next read.
    fn reserve(&self, buf: &mut BytesMut, decoder: &Decoder) {
        let room = packet_rest(buf, decoder).max(self.hint).min(MAX_READ);
        buf.reserve(room);
    }

    /// Learns from a read of `read` bytes into `room` bytes of spare capacity.
    fn observe(&mut self, read: usize, room: usize) {
        self.filled = read >= room;
        if self.filled {
            self.hint = (self.hint * 2).min(MAX_READ);
        } else if read < room / 4 {
            self.hint = (self.hint / 2).max(MIN_READ);
        }
    }
}

/// Why a CONNECT was refused: a bare reason code, or an authentication refusal whose reason
/// the CONNACK explains.
enum Refusal {
    Plain(ReasonCode),
    Explained(AuthRefusal),
}

impl From<ReasonCode> for Refusal {
    fn from(reason: ReasonCode) -> Self {
        Self::Plain(reason)
    }
}

async fn authenticate(
    shared: &Arc<Shared>,
    connect: &Connect,
    mut transport: TransportIdentity,
    authenticator: Option<Arc<dyn ConnectAuthenticator>>,
) -> Result<ClientIdentity, Refusal> {
    // Single-step enhanced authentication: the CONNECT carries everything; no AUTH follows.
    let mut authenticated_by_method = false;
    if let Some(method) = &connect.properties.authentication_method {
        let Some(authenticator) = authenticator else {
            return Err(Refusal::Explained(AuthRefusal::bad_method(format!(
                "authentication method {method:?} is not offered on this listener"
            ))));
        };
        let method = method.clone();
        let data = connect.properties.authentication_data.clone();
        let proven = transport.clone();
        // Signature checks and appraisal take CPU: off the reactor threads.
        let claims = tokio::task::spawn_blocking(move || {
            authenticator.authenticate(&proven, &method, data.as_deref())
        })
        .await
        .map_err(|_| ReasonCode::ServerUnavailable)?
        .map_err(Refusal::Explained)?;
        transport.attested = Some(claims);
        authenticated_by_method = true;
    }
    let mut identity = ClientIdentity {
        client_id: connect.client_id.clone(),
        username: connect.username.clone(),
        username_verified: false,
        transport,
    };
    match &connect.username {
        Some(username) if !shared.users.is_empty() => {
            let users = shared.clone();
            let username = username.clone();
            let password = connect.password.clone();
            // Password hashing takes milliseconds of CPU: off the reactor threads.
            let checked = tokio::task::spawn_blocking(move || {
                users.users.check(&username, password.as_deref())
            })
            .await
            .map_err(|_| ReasonCode::ServerUnavailable)?;
            checked?;
            identity.username_verified = true;
        }
        Some(_) | None if !shared.allow_anonymous && !authenticated_by_method => {
            return Err(Refusal::Plain(match connect.username {
                Some(_) => ReasonCode::BadUserNameOrPassword,
                None => ReasonCode::NotAuthorized,
            }));
        }
        _ => {}
    }
    Ok(identity)
}

/// Queues the CONNACK refusing a connection with `refusal`'s reason code and, in MQTT 5, its
/// message as the Reason String.
fn refuse_explained(outlet: &dyn Outlet, version: ProtocolVersion, refusal: &AuthRefusal) {
    if version != ProtocolVersion::V5 {
        refuse(outlet, version, refusal.reason);
        return;
    }
    let connack = Packet::ConnAck(ConnAck {
        session_present: false,
        reason_code: refusal.reason,
        properties: Properties {
            reason_string: Some(refusal.message.clone()),
            ..Properties::default()
        },
    });
    if let Some(bytes) = encode(&connack, version) {
        let _ = outlet.send(bytes);
    }
    outlet.close(None);
}

/// The most packets handled in one turn under the broker's lock: a read full of small packets
/// is handled in several turns, each checking that the replies were written first.
const MAX_TURN: usize = 1024;
/// How often a paused publisher looks again at the subscribers it waits for, besides being
/// told when one drains (a subscriber that stalls no longer holds it back).
const RECHECK: Duration = Duration::from_millis(50);
/// How long a closing connection keeps reading (and discarding) what the client still sends
/// after the broker's last packet, so closing does not reset the connection and destroy that
/// packet (a DISCONNECT saying why) before the client read it.
const LINGER: Duration = Duration::from_secs(2);

/// A publisher held back: the subscribers it last fed were congested.
struct Pause {
    fed: HashSet<Arc<str>>,
    /// The broker's drain count when it was last checked.
    drains: u64,
}

/// What a turn left the connection to do.
enum Turn {
    /// Go on; `more` if whole packets are still buffered, and a pause if the turn fed a
    /// congested subscriber.
    Go { more: bool, pause: Option<Pause> },
    /// Close, after a DISCONNECT with this reason where the protocol has one.
    Close(Option<ReasonCode>),
    /// The store failed: close at once, without writing this turn's acknowledgements.
    Abort,
}

#[allow(clippy::too_many_arguments)]
async fn serve<R, W>(
    shared: &Shared,
    conn_id: u64,
    client_id: &str,
    keep_alive: u16,
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    outlet: &ChannelOutlet,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    version: ProtocolVersion,
) -> Option<ReasonCode>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // §3.1.2.10: one and a half times the keep alive without a packet ends the connection.
    let grace = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let far = Duration::from_secs(86_400 * 365);
    let deadline = tokio::time::sleep(grace.unwrap_or(far));
    tokio::pin!(deadline);
    let mut packets = Vec::new();
    let (mut batch, mut scratch) = (Vec::new(), Vec::new());
    let mut read_size = ReadSize::new();
    read_size.reserve(buf, decoder);
    let mut room = buf.capacity() - buf.len();
    let mut paused: Option<Pause> = None;
    // When a paused publisher looks again (besides being told of a drain): one timer, reset
    // only when a pause starts or goes on, so other wake-ups do not postpone it.
    let recheck = tokio::time::sleep(RECHECK);
    tokio::pin!(recheck);
    // Whole packets already in `buf`: what came in the same read as CONNECT, first of all.
    let mut more = !buf.is_empty();
    let reason = loop {
        // Input is taken only while this client's replies are written and the subscribers it
        // feeds keep up: otherwise it waits in the socket (backpressure on this client alone).
        let taking = paused.is_none() && !outlet.is_backlogged();
        outlet.set_held(!taking);
        if taking && more {
            match turn(shared, conn_id, client_id, buf, decoder, &mut packets) {
                Turn::Go { more: left, pause } => {
                    more = left;
                    if pause.is_some() {
                        recheck.as_mut().reset(Instant::now() + RECHECK);
                    }
                    paused = pause;
                }
                Turn::Close(reason) => break reason,
                Turn::Abort => return None,
            }
            if !more {
                // Caught up with the client: a large buffer goes back.
                if buf.is_empty() && buf.capacity() > KEEP_BUFFER && !read_size.filled {
                    *buf = BytesMut::new();
                }
                read_size.reserve(buf, decoder);
                room = buf.capacity() - buf.len();
            }
            continue;
        }
        tokio::select! {
            reason = outlet.closed() => break reason,
            () = &mut deadline, if grace.is_some() => {
                if !taking {
                    // Held back: whatever the client sent waits unseen in the socket.
                    deadline.as_mut().reset(Instant::now() + grace.unwrap_or(far));
                    continue;
                }
                tracing::info!(client_id, "keep alive timed out");
                break Some(ReasonCode::KeepAliveTimeout);
            }
            first = rx.recv() => {
                let Some(first) = first else { break None };
                if let Err(e) = write_batch(writer, first, &mut rx, &mut batch, &mut scratch, outlet).await {
                    if e.kind() == std::io::ErrorKind::TimedOut {
                        shared.counters.slow_consumers_disconnected.inc();
                        tracing::info!(client_id, "closing the connection: the client read nothing for {} s", WRITE_TIMEOUT.as_secs());
                    }
                    return None;
                }
            }
            () = shared.drained.wait(paused.as_ref().map_or(0, |p| p.drains)), if paused.is_some() => {
                if still_paused(shared, &mut paused) {
                    recheck.as_mut().reset(Instant::now() + RECHECK);
                }
            }
            () = &mut recheck, if paused.is_some() => {
                if still_paused(shared, &mut paused) {
                    recheck.as_mut().reset(Instant::now() + RECHECK);
                }
            }
            read = reader.read_buf(buf), if taking => {
                match read {
                    Ok(0) | Err(_) => return None,
                    Ok(read) => read_size.observe(read, room),
                }
                if let Some(grace) = grace {
                    deadline.as_mut().reset(Instant::now() + grace);
                }
                more = true;
            }
        }
    };
    // The session's end (its will) is not delayed by the linger: the caller lingers after it.
    finish(None::<&mut R>, writer, rx, version, reason).await;
    reason
}

/// Looks again at the subscribers a paused publisher waits for: ends the pause (false) when
/// none of them is congested any more.
fn still_paused(shared: &Shared, paused: &mut Option<Pause>) -> bool {
    let Some(pause) = paused.as_mut() else {
        return false;
    };
    // Counted before the check, so a drain after it ends the next wait at once.
    let drains = shared.drained.count();
    if shared
        .core()
        .any_congested(&pause.fed, std::time::Instant::now())
    {
        pause.drains = drains;
        true
    } else {
        *paused = None;
        false
    }
}

/// Handles up to [`MAX_TURN`] whole packets from the front of `buf` under the broker's lock,
/// commits what they changed, and says what the connection does next.
fn turn(
    shared: &Shared,
    conn_id: u64,
    client_id: &str,
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    packets: &mut Vec<Packet>,
) -> Turn {
    let decoded = decode_some(buf, decoder, packets, MAX_TURN);
    let more = matches!(decoded, Ok(true));
    let mut flow = Flow::Continue;
    let mut pause = None;
    if !packets.is_empty() {
        let now = std::time::Instant::now();
        let mut core = shared.core();
        let drains = shared.drained.count();
        // What wills and other connections' turns left is not this turn's to wait for.
        core.take_congested();
        for packet in packets.drain(..) {
            flow = core.handle(conn_id, client_id, packet, now);
            if flow != Flow::Continue {
                break;
            }
        }
        // Durability: this turn's PUBACKs / PUBRECs are in the outlet, written only by this
        // connection's task after the commit (and never if it failed).
        if !Shared::commit(&mut core) {
            return Turn::Abort;
        }
        let mut fed = core.take_congested();
        // A client is never held back for its own subscription: it would wait on itself.
        fed.remove(client_id);
        if !fed.is_empty() {
            pause = Some(Pause { fed, drains });
        }
        if core.take_drained() {
            drop(core);
            shared.drained.signal();
        }
    }
    packets.clear();
    if let Flow::Close(reason) = flow {
        return Turn::Close(reason);
    }
    if let Err(e) = decoded {
        tracing::info!(client_id, kind = e.kind(), "closing the connection: {e}");
        shared.counters.protocol_errors.inc();
        return Turn::Close(Some(disconnect_reason(&e)));
    }
    Turn::Go { more, pause }
}

/// Decodes up to `max` whole packets from the front of `buf` into `packets`; `Ok(true)` if it
/// stopped at `max` (more may be buffered). An error stops at the bad packet.
fn decode_some(
    buf: &mut BytesMut,
    decoder: &mut Decoder,
    packets: &mut Vec<Packet>,
    max: usize,
) -> Result<bool, Error> {
    while packets.len() < max {
        let Some((packet, len)) = decoder.decode(buf)? else {
            return Ok(false);
        };
        buf.advance(len);
        packets.push(packet);
    }
    Ok(true)
}

/// The reason to disconnect with for a decoding error, as DISCONNECT may carry it.
fn disconnect_reason(e: &Error) -> ReasonCode {
    let reason = e.reason_code();
    if reason.is_allowed_in(crate::PacketType::Disconnect) {
        reason
    } else {
        ReasonCode::MalformedPacket
    }
}

/// Writes `first` and whatever else is queued, up to [`WRITE_BATCH`] bytes, in one go: as
/// one vectored write where the stream takes them (payloads are written from where they are,
/// shared by every subscriber), else copied into `scratch` once. Every write that takes bytes
/// counts as progress in `outlet`; one that takes none for [`WRITE_TIMEOUT`] fails.
async fn write_batch<W: AsyncWrite + Unpin>(
    writer: &mut W,
    first: Outbound,
    rx: &mut mpsc::UnboundedReceiver<Outbound>,
    batch: &mut Vec<Outbound>,
    scratch: &mut Vec<u8>,
    outlet: &ChannelOutlet,
) -> std::io::Result<()> {
    let mut size = first.len();
    batch.push(first);
    while size < WRITE_BATCH && batch.len() < MAX_SLICES / 2 {
        let Ok(next) = rx.try_recv() else { break };
        size += next.len();
        batch.push(next);
    }
    let replies: usize = batch.iter().filter(|o| o.reply).map(Outbound::len).sum();
    let result = if writer.is_write_vectored() {
        let mut slices: Vec<IoSlice<'_>> = batch
            .iter()
            .flat_map(|o| [&o.head[..], &o.payload[..]])
            .filter(|part| !part.is_empty())
            .map(IoSlice::new)
            .collect();
        write_all_vectored(writer, &mut slices, outlet).await
    } else {
        scratch.clear();
        for outbound in batch.iter() {
            scratch.extend_from_slice(&outbound.head);
            scratch.extend_from_slice(&outbound.payload);
        }
        write_all_counted(writer, scratch, outlet).await
    };
    batch.clear();
    if scratch.capacity() > WRITE_BATCH * 2 {
        *scratch = Vec::new();
    }
    result?;
    outlet.replies_written(replies);
    timed(writer.flush()).await
}

/// `io` failing with `TimedOut` after [`WRITE_TIMEOUT`].
async fn timed<T>(io: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    tokio::time::timeout(WRITE_TIMEOUT, io)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

async fn write_all_vectored<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut slices: &mut [IoSlice<'_>],
    outlet: &ChannelOutlet,
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let written = timed(writer.write_vectored(slices)).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        outlet.written(written);
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}

async fn write_all_counted<W: AsyncWrite + Unpin>(
    writer: &mut W,
    mut bytes: &[u8],
    outlet: &ChannelOutlet,
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = timed(writer.write(bytes)).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        outlet.written(written);
        bytes = &bytes[written..];
    }
    Ok(())
}

/// Writes what is still queued, then a DISCONNECT with `reason` (MQTT 5), then closes the
/// broker's side; then lingers (see [`linger`]) unless `reader` is `None` (the caller does).
async fn finish<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    reader: Option<&mut R>,
    writer: &mut W,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    version: ProtocolVersion,
    reason: Option<ReasonCode>,
) {
    rx.close();
    let drain = async {
        while let Ok(outbound) = rx.try_recv() {
            writer.write_all(&outbound.head).await?;
            writer.write_all(&outbound.payload).await?;
        }
        if let (ProtocolVersion::V5, Some(reason)) = (version, reason)
            && let Some(bytes) = encode(&Packet::Disconnect(Disconnect::new(reason)), version)
        {
            writer.write_all(&bytes).await?;
        }
        writer.flush().await?;
        writer.shutdown().await
    };
    let closed = matches!(
        tokio::time::timeout(Duration::from_secs(5), drain).await,
        Ok(Ok(()))
    );
    if let (true, Some(reader)) = (closed, reader) {
        linger(reader).await;
    }
}

/// Reads what the client still sends, for up to [`LINGER`], and discards it: closing a socket
/// with unread input resets the connection, and the reset can destroy the broker's last
/// packets (a CONNACK or DISCONNECT saying why) before the client read them.
async fn linger<R: AsyncRead + Unpin>(reader: &mut R) {
    let discard = async {
        let mut discard = vec![0u8; 16 * 1024];
        while matches!(reader.read(&mut discard).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, discard).await;
}
