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
