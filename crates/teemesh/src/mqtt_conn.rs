//! One MQTT client connection written on the `mqtt` codec, over plain TCP, TLS or attested TLS:
//! the pieces `teemesh bench mqtt`'s load generator and `teemesh mqtt pub | sub` share (the
//! packet loop itself is `mqtt::client::Connection`, which the node's topic bridge uses too).

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use atls::{AtlsError, PeerAttestation};
use mqtt::{Connect, Properties, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::atls_cmd::PeerRefused;

/// Largest packet the clients accept.
pub(crate) const MAX_PACKET: u32 = 1 << 20;

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
        // rustls reads 4 KiB of records per call: under TLS, one larger read serves several.
        let buffered = mqtt::broker::ReadAhead::new;
        Ok(match self {
            Self::Tcp => (Box::new(tcp), None),
            Self::Tls {
                config,
                server_name,
            } => (
                Box::new(
                    tokio_rustls::TlsConnector::from(config.clone())
                        .connect(server_name.clone(), buffered(tcp))
                        .await
                        .map_err(|e| {
                            let hint = tls_hint(&e.to_string());
                            anyhow::Error::new(e).context(format!("TLS with {address}{hint}"))
                        })?,
                ),
                None,
            ),
            Self::Attested(client) => {
                let attested = client.connect(buffered(tcp)).await.map_err(|e| match e {
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

/// What to do about a TLS failure whose library message alone would puzzle a user.
fn tls_hint(error: &str) -> &'static str {
    if error.contains("CaUsedAsEndEntity") {
        " (the broker presents a CA certificate as its own: give the broker a certificate signed by the CA that --ca names, not the CA itself)"
    } else if error.contains("UnknownIssuer") {
        " (the broker's certificate does not chain to the CA that --ca names)"
    } else if error.contains("NotValidForName") {
        " (the broker's certificate does not name the host you connect to: see --server-name)"
    } else if error.contains("Expired") {
        " (the broker's certificate has expired)"
    } else if error.contains("corrupt message") || error.contains("InvalidContentType") {
        " (is this a TLS listener? --transport must match the listener's kind)"
    } else {
        ""
    }
}

/// A connection to the broker: `mqtt`'s client connection over any of the transports.
pub(crate) type Client = mqtt::client::Connection<Box<dyn Stream>>;

/// An MQTT 3.1.1 clean session as `id` (the load generator's clients).
pub(crate) async fn open(transport: &Transport, address: &str, id: &str) -> Result<Client> {
    let (stream, _) = transport.connect(address).await?;
    handshake(stream, id, ProtocolVersion::V311).await
}

/// CONNECT with a clean session as `id` in `protocol` over `stream`; a refusal is an error.
pub(crate) async fn handshake(
    stream: Box<dyn Stream>,
    id: &str,
    protocol: ProtocolVersion,
) -> Result<Client> {
    let connect = Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: id.to_owned(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    match Client::handshake(stream, connect, MAX_PACKET).await? {
        (client, ack) if !ack.reason_code.is_error() => Ok(client),
        (_, ack) => bail!("{id}: the broker refused the connection: {ack:?}"),
    }
}
