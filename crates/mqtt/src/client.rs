//! One MQTT client connection over any async byte stream (feature `client`): a read buffer, the
//! decoder, a write buffer, and the CONNECT / CONNACK exchange. What a client does with the
//! packets (QoS flows, resending, keep-alive) is its own business: the CLI's `mqtt pub | sub`,
//! the load generator and the node's topic bridge each drive one of these.

use bytes::{Buf as _, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use crate::{ConnAck, Connect, Decoder, Packet, ProtocolVersion};

/// The room a read is given: the read buffer grows by this much when nearly full, so 16 KiB
/// messages that come back to back are read in few, large reads.
const READ_ROOM: usize = 64 << 10;

/// Why a client connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// Reading or writing the stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The broker closed the connection.
    #[error("the broker closed the connection")]
    Closed,
    /// The broker sent bytes that are not a valid packet.
    #[error("the broker sent a bad packet: {0}")]
    BadPacket(crate::Error),
    /// A packet of ours could not be encoded (a value out of its bounds).
    #[error("cannot encode {packet}: {error}")]
    Encode {
        /// The packet type.
        packet: crate::PacketType,
        /// Why.
        error: crate::Error,
    },
    /// The broker answered CONNECT with something else than CONNACK.
    #[error("expected CONNACK, got {0}")]
    NotConnAck(crate::PacketType),
}

/// A client's connection: the stream, what was read but not decoded yet, and what was queued
/// but not written yet.
pub struct Connection<S> {
    stream: S,
    version: ProtocolVersion,
    decoder: Decoder,
    read_buf: BytesMut,
    write_buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Sends `connect` on `stream` and returns the connection with the broker's CONNACK,
    /// whether it accepted or refused. Packets up to `max_packet` bytes are accepted.
    pub async fn handshake(
        stream: S,
        connect: Connect,
        max_packet: u32,
    ) -> Result<(Self, ConnAck), ConnectionError> {
        let version = connect.protocol;
        let mut connection = Self {
            stream,
            version,
            decoder: Decoder::with_version(version, max_packet),
            read_buf: BytesMut::with_capacity(READ_ROOM),
            write_buf: Vec::with_capacity(16 << 10),
        };
        connection.queue(&Packet::Connect(Box::new(connect)))?;
        connection.flush().await?;
        match connection.next().await? {
            Packet::ConnAck(ack) => Ok((connection, ack)),
            other => Err(ConnectionError::NotConnAck(other.packet_type())),
        }
    }

    /// The protocol version of this connection.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Appends `packet` to the write buffer (sent by [`Self::flush`]).
    pub fn queue(&mut self, packet: &Packet) -> Result<(), ConnectionError> {
        packet
            .encode(self.version, &mut self.write_buf)
            .map_err(|error| ConnectionError::Encode {
                packet: packet.packet_type(),
                error,
            })
    }

    /// Bytes queued and not written yet.
    pub fn queued_bytes(&self) -> usize {
        self.write_buf.len()
    }

    /// Bytes read and not decoded yet (a part of the next packet, or whole packets).
    pub fn buffered_bytes(&self) -> usize {
        self.read_buf.len()
    }

    /// Writes what was queued.
    pub async fn flush(&mut self) -> Result<(), ConnectionError> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.stream.flush().await?;
            self.write_buf.clear();
        }
        Ok(())
    }

    /// The next packet, reading as needed. Cancel-safe: a read cancelled while waiting loses
    /// no bytes, so callers may put a timeout around it or `select!` on it.
    pub async fn next(&mut self) -> Result<Packet, ConnectionError> {
        loop {
            if let Some((packet, used)) = self
                .decoder
                .decode(&self.read_buf)
                .map_err(ConnectionError::BadPacket)?
            {
                // Consumed from the front without moving what follows.
                self.read_buf.advance(used);
                return Ok(packet);
            }
            // Read straight into the buffer (cancel-safe: `read_buf` keeps what it read).
            if self.read_buf.capacity() - self.read_buf.len() < READ_ROOM / 4 {
                self.read_buf.reserve(READ_ROOM);
            }
            let n = self.stream.read_buf(&mut self.read_buf).await?;
            if n == 0 {
                return Err(ConnectionError::Closed);
            }
        }
    }

    /// Closes the stream (the TLS session first, if any).
    pub async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}

/// A client's side of keep alive (§3.1.2.10), sans-IO: when to send PINGREQ, and when the
/// broker has said nothing for so long that the connection must be taken as dead (a half-open
/// TCP connection, a broker that hangs) rather than waiting for TCP to give up.
///
/// A PINGREQ is due when the client has sent nothing for half the keep alive (so the broker
/// hears from it in time), or has heard nothing for half of it since its last probe (so a broker
/// that has nothing to say still shows it is there). A broker heard from at most every half
/// keep alive plus a round trip is alive; one silent for one and a half times the keep alive is
/// not.
#[derive(Debug, Clone)]
pub struct KeepAlive {
    period: std::time::Duration,
    last_sent: std::time::Instant,
    last_heard: std::time::Instant,
    last_ping: Option<std::time::Instant>,
}

/// What keep alive asks of the client at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepAliveDue {
    /// Nothing before this instant.
    Nothing {
        /// When to ask again.
        until: std::time::Instant,
    },
    /// Send a PINGREQ now (then call [`KeepAlive::pinged`]).
    Ping,
    /// The broker said nothing for this long, one and a half times the keep alive or more:
    /// close the connection and reconnect.
    BrokerSilent {
        /// How long it has been silent.
        silent: std::time::Duration,
    },
}

impl KeepAlive {
    /// Keep alive of `period` (the CONNACK's Server Keep Alive where it sets one; zero: off)
    /// for a connection whose CONNACK came at `now`.
    pub fn new(period: std::time::Duration, now: std::time::Instant) -> Self {
        Self {
            period,
            last_sent: now,
            last_heard: now,
            last_ping: None,
        }
    }

    /// The keep alive period.
    pub fn period(&self) -> std::time::Duration {
        self.period
    }

    /// The client wrote a packet at `now`.
    pub fn sent(&mut self, now: std::time::Instant) {
        self.last_sent = self.last_sent.max(now);
    }

    /// The client wrote a PINGREQ at `now`.
    pub fn pinged(&mut self, now: std::time::Instant) {
        self.sent(now);
        self.last_ping = Some(now);
    }

    /// The client read a packet at `now`.
    pub fn heard(&mut self, now: std::time::Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// What is due at `now`.
    pub fn poll(&self, now: std::time::Instant) -> KeepAliveDue {
        if self.period.is_zero() {
            return KeepAliveDue::Nothing {
                until: now + std::time::Duration::from_secs(86_400),
            };
        }
        let half = self.period / 2;
        // Silent: a PINGREQ unanswered for half the keep alive, and nothing heard for one and a
        // half times it. (A client that was busy and read nothing for long has pinged no
        // broker: it pings first, and judges half a keep alive later.)
        let unanswered = self.last_ping.filter(|ping| *ping > self.last_heard);
        let silent_at =
            unanswered.map(|ping| (ping + half).max(self.last_heard + self.period * 3 / 2));
        if let Some(silent_at) = silent_at
            && now >= silent_at
        {
            return KeepAliveDue::BrokerSilent {
                silent: now.saturating_duration_since(self.last_heard),
            };
        }
        let probed = unanswered.unwrap_or(self.last_heard);
        let ping_at = (self.last_sent + half).min(probed + half);
        if now >= ping_at {
            return KeepAliveDue::Ping;
        }
        KeepAliveDue::Nothing {
            until: silent_at.map_or(ping_at, |silent| ping_at.min(silent)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{KeepAlive, KeepAliveDue};

    #[test]
    fn a_silent_broker_is_pinged_then_given_up_after_one_and_a_half_keep_alives() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut alive = KeepAlive::new(s(10), t0);
        assert_eq!(alive.poll(t0), KeepAliveDue::Nothing { until: t0 + s(5) });
        assert_eq!(alive.poll(t0 + s(5)), KeepAliveDue::Ping);
        alive.pinged(t0 + s(5));
        // No PINGRESP: probed again half a keep alive later, then given up at 1.5×.
        assert_eq!(
            alive.poll(t0 + s(6)),
            KeepAliveDue::Nothing { until: t0 + s(10) }
        );
        assert_eq!(alive.poll(t0 + s(10)), KeepAliveDue::Ping);
        alive.pinged(t0 + s(10));
        assert_eq!(
            alive.poll(t0 + s(12)),
            KeepAliveDue::Nothing { until: t0 + s(15) }
        );
        assert_eq!(
            alive.poll(t0 + s(15)),
            KeepAliveDue::BrokerSilent { silent: s(15) }
        );
    }

    #[test]
    fn a_broker_that_answers_is_never_given_up() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut alive = KeepAlive::new(s(10), t0);
        for n in 1..100 {
            let now = t0 + s(5 * n);
            assert_eq!(alive.poll(now), KeepAliveDue::Ping, "at {n}");
            alive.pinged(now);
            alive.heard(now + Duration::from_millis(1));
        }
    }

    #[test]
    fn a_client_that_keeps_sending_still_probes_a_broker_that_says_nothing() {
        // QoS 0 publications have no answer: the client's own traffic must not hide a dead
        // broker.
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut alive = KeepAlive::new(s(10), t0);
        for ms in (0..5_000).step_by(100) {
            alive.sent(t0 + Duration::from_millis(ms));
        }
        assert_eq!(alive.poll(t0 + s(5)), KeepAliveDue::Ping);
        // And a subscriber that only reads still pings, so the broker hears from it.
        let mut alive = KeepAlive::new(s(10), t0);
        alive.heard(t0 + s(4));
        assert_eq!(alive.poll(t0 + s(5)), KeepAliveDue::Ping);
    }

    #[test]
    fn a_client_that_read_nothing_for_long_pings_before_it_judges() {
        // Busy elsewhere for 40 s: what the broker sent meanwhile is unread, so the broker is
        // probed first, not given up at once.
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut alive = KeepAlive::new(s(10), t0);
        assert_eq!(alive.poll(t0 + s(40)), KeepAliveDue::Ping);
        alive.pinged(t0 + s(40));
        assert_eq!(
            alive.poll(t0 + s(44)),
            KeepAliveDue::Nothing { until: t0 + s(45) }
        );
        // The answer came: alive (the next PINGREQ is due as usual, half a keep alive after the
        // last one).
        alive.heard(t0 + s(44));
        assert_eq!(alive.poll(t0 + s(45)), KeepAliveDue::Ping);
    }

    #[test]
    fn zero_is_off() {
        let t0 = Instant::now();
        let alive = KeepAlive::new(Duration::ZERO, t0);
        assert!(matches!(
            alive.poll(t0 + Duration::from_secs(1_000_000)),
            KeepAliveDue::Nothing { .. }
        ));
    }
}
