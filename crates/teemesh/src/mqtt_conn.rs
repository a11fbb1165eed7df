//! One MQTT client connection written on the `mqtt` codec, over plain TCP, TLS or attested TLS:
//! the pieces `teemesh bench mqtt`'s load generator and `teemesh mqtt pub | sub` share.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use atls::{AtlsError, PeerAttestation};
use bytes::{Buf as _, BytesMut};
use mqtt::{ConnAck, Connect, Decoder, Packet, Properties, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::atls_cmd::PeerRefused;

/// Largest packet the clients accept.
pub(crate) const MAX_PACKET: u32 = 1 << 20;
/// The room a read is given (the receive buffer grows by this much when nearly full).
const READ_ROOM: usize = 64 << 10;

/// A client's byte stream.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How clients reach the broker.
#[derive(Clone)]
pub(crate) enum Transport {
    Tcp,
    Tls {
        config: Arc<rustls::ClientConfig>,
        server_name: rustls::pki_types::ServerName<'static>,
    },
    Attested(atls::AtlsClient),
}

impl Transport {
    /// A stream to the broker at `address` and, over attested TLS, what the broker proved. A
    /// broker whose evidence the policy refuses is a [`PeerRefused`] (exit code 1).
    pub(crate) async fn connect(
        &self,
        address: &str,
    ) -> Result<(Box<dyn Stream>, Option<PeerAttestation>)> {
        let tcp = TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to {address}"))?;
        tcp.set_nodelay(true)?;
        Ok(match self {
            Self::Tcp => (Box::new(tcp), None),
            Self::Tls {
                config,
                server_name,
            } => (
                Box::new(
                    tokio_rustls::TlsConnector::from(config.clone())
                        .connect(server_name.clone(), tcp)
                        .await
                        .with_context(|| format!("TLS with {address}"))?,
                ),
                None,
            ),
            Self::Attested(client) => {
                let attested = client.connect(tcp).await.map_err(|e| match e {
                    AtlsError::Io(io) => {
                        anyhow::Error::new(io).context(format!("attested TLS with {address}"))
                    }
                    refused => PeerRefused(format!("the broker at {address}: {refused}")).into(),
                })?;
                // `AtlsClient::connect` refuses a server without evidence, so this is Some.
                let attestation = attested.peer.attestation().cloned();
                (Box::new(attested.stream), attestation)
            }
        })
    }
}

/// A connection with a read buffer, a decoder and a write buffer.
pub(crate) struct Client {
    stream: Box<dyn Stream>,
    version: ProtocolVersion,
    decoder: Decoder,
    pub(crate) buf: BytesMut,
    pub(crate) out: Vec<u8>,
}

impl Client {
    /// An MQTT 3.1.1 clean session as `id` (the load generator's clients).
    pub(crate) async fn open(transport: &Transport, address: &str, id: &str) -> Result<Self> {
        let (stream, _) = transport.connect(address).await?;
        let connect = Connect {
            protocol: ProtocolVersion::V311,
            clean_start: true,
            keep_alive: 60,
            client_id: id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        };
        match Self::handshake(stream, connect).await? {
            (client, ack) if !ack.reason_code.is_error() => Ok(client),
            (_, ack) => bail!("{id}: the broker refused the connection: {ack:?}"),
        }
    }

    /// Sends `connect` on `stream` and returns the broker's CONNACK, refusal or not.
    pub(crate) async fn handshake(
        stream: Box<dyn Stream>,
        connect: Connect,
    ) -> Result<(Self, ConnAck)> {
        let version = connect.protocol;
        let mut client = Self {
            stream,
            version,
            decoder: Decoder::with_version(version, MAX_PACKET),
            buf: BytesMut::with_capacity(64 << 10),
            out: Vec::with_capacity(64 << 10),
        };
        client.queue(&Packet::Connect(Box::new(connect)))?;
        client.flush().await?;
        match client.next().await? {
            Packet::ConnAck(ack) => Ok((client, ack)),
            other => bail!("expected CONNACK, got {}", other.packet_type()),
        }
    }

    pub(crate) fn queue(&mut self, packet: &Packet) -> Result<()> {
        packet
            .encode(self.version, &mut self.out)
            .map_err(|e| anyhow::anyhow!("cannot encode {}: {e}", packet.packet_type()))
    }

    pub(crate) async fn flush(&mut self) -> Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.stream.flush().await?;
            self.out.clear();
        }
        Ok(())
    }

    /// The next packet, reading as needed. Cancel-safe: a read cancelled while waiting loses
    /// no bytes, so callers may put a timeout around it.
    pub(crate) async fn next(&mut self) -> Result<Packet> {
        loop {
            if let Some((packet, used)) = self
                .decoder
                .decode(&self.buf)
                .map_err(|e| anyhow::anyhow!("the broker sent a bad packet: {e}"))?
            {
                // Consumed from the front without moving what follows.
                self.buf.advance(used);
                return Ok(packet);
            }
            // Read straight into the buffer, in large reads (16 KiB messages come back to back).
            if self.buf.capacity() - self.buf.len() < READ_ROOM / 4 {
                self.buf.reserve(READ_ROOM);
            }
            let n = self.stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
        }
    }

    /// Closes the TLS session (if any) and the connection.
    pub(crate) async fn shutdown(&mut self) {
        let _ = self.stream.shutdown().await;
    }
}
