//! Attested TLS sessions over any async byte stream (tokio): the handshake with both sides'
//! certificates appraised by [`PeerVerifier`], then the session-freshness exchange. TLS 1.3 only:
//! its exporter is bound to the full handshake transcript, with no TLS 1.2 EMS caveats.
//!
//! Session exchange, right after the handshake and only when both sides are attested: each side
//! writes one frame, then reads the peer's. A frame is `"TMSE" ‖ u32 length (big endian) ‖
//! payload`; the payload is tagged evidence whose claims carry this session's TLS exporter
//! (label [`EXPORTER_LABEL`], 32 bytes) as nonce — or is empty when the sender's policy uses
//! max-age freshness. A side that wants per-session freshness refuses an empty frame, so two
//! peers with different settings fail with a clear reason instead of hanging. Ordinary TLS
//! clients admitted by a listener never see a frame.
//!
//! Callers using TCP should set `TCP_NODELAY` on their sockets: handshake flights are small and
//! latency-bound, and with Nagle's algorithm and delayed ACKs a handshake takes ~40 ms instead of
//! ~1 ms on loopback.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::AtlsError;
use crate::ext::MAX_EXTENSION_LEN;
use crate::identity::NodeIdentity;
use crate::verifier::{Freshness, Peer, PeerVerifier};

/// TLS exporter label for session evidence (RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-teemesh-session-attestation";
const FRAME_MAGIC: &[u8; 4] = b"TMSE";
/// How long a side waits for the peer's session frame.
const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// ALPN-free SNI used by clients: the peer's identity is its evidence, not a host name.
const SERVER_NAME: &str = "teemesh-node";

/// A TLS stream and what the other end proved.
#[derive(Debug)]
pub struct AttestedStream<S> {
    /// The encrypted stream; read and write application data here.
    pub stream: S,
    /// The peer.
    pub peer: Peer,
    /// SHA-256 of the SubjectPublicKeyInfo of the certificate the peer presented (attested or
    /// not), `None` when it presented none. The peer proved it holds the key (its handshake
    /// signature was checked), so applications can authorise plain certificates by key hash,
    /// like SSH `authorized_keys`.
    pub peer_key_sha256: Option<[u8; 32]>,
    /// This session's TLS exporter value under [`EXPORTER_LABEL`] (32 bytes): what
    /// per-session evidence binds, for applications that exchange evidence themselves.
    pub exporter: [u8; 32],
}

/// Accepts attested TLS connections for one listener.
#[derive(Clone)]
pub struct AtlsServer {
    acceptor: TlsAcceptor,
    identity: Arc<NodeIdentity>,
    verifier: Arc<PeerVerifier>,
}

impl std::fmt::Debug for AtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtlsServer")
            .field("identity", &self.identity)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl AtlsServer {
    /// A listener presenting `identity` and appraising clients with `verifier` (whose
    /// `allow_unattested` decides whether ordinary TLS clients may connect).
    pub fn new(
        identity: Arc<NodeIdentity>,
        verifier: Arc<PeerVerifier>,
    ) -> Result<Self, AtlsError> {
        let config = ServerConfig::builder_with_provider(verifier.provider().clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier.clone())
            .with_single_cert(vec![identity.certificate().clone()], identity.private_key())?;
        let config = without_resumption_server(config);
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            identity,
            verifier,
        })
    }

    /// Runs the handshake and, for attested clients, the session exchange.
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<AttestedStream<tokio_rustls::server::TlsStream<IO>>, AtlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let mut stream = self
            .acceptor
            .accept(io)
            .await
            .map_err(AtlsError::handshake)?;
        let (_, conn) = stream.get_ref();
        let peer_cert = conn.peer_certificates().and_then(|c| c.first()).cloned();
        let exporter = conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)?;
        let mut peer = match &peer_cert {
            Some(cert) => self.verifier.appraise_certificate(cert)?,
            None if self.verifier.allows_unattested() => Peer::Unattested,
            None => return Err(AtlsError::NoEvidence),
        };
        if let (Peer::Attested(att), Some(cert)) = (&mut peer, &peer_cert) {
            exchange(&mut stream, &self.identity, &self.verifier, cert, &exporter).await?;
            att.fresh_in_session = self.verifier.freshness() == Freshness::PerSession;
        }
        let peer_key_sha256 = match &peer_cert {
            Some(cert) => Some(key_sha256(cert)?),
            None => None,
        };
        Ok(AttestedStream {
            stream,
            peer,
            peer_key_sha256,
            exporter,
        })
    }
}

/// Opens attested TLS connections.
#[derive(Clone)]
pub struct AtlsClient {
    connector: TlsConnector,
    /// `None` for a client presenting a plain certificate (see [`AtlsClient::unattested`]).
    identity: Option<Arc<NodeIdentity>>,
    verifier: Arc<PeerVerifier>,
}

impl std::fmt::Debug for AtlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AtlsClient")
            .field("identity", &self.identity)
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl AtlsClient {
    /// A client presenting `identity` and appraising servers with `verifier`. A server without
    /// evidence is always refused.
    pub fn new(
        identity: Arc<NodeIdentity>,
        verifier: Arc<PeerVerifier>,
    ) -> Result<Self, AtlsError> {
        let connector = connector(
            &verifier,
            identity.certificate().clone(),
            identity.private_key(),
        )?;
        Ok(Self {
            connector,
            identity: Some(identity),
            verifier,
        })
    }

    /// A client outside any TEE (an operator's command line) that presents `certificate`, a
    /// plain certificate without evidence, signed by `key`: the server sees
    /// [`Peer::Unattested`] and the key's hash in [`AttestedStream::peer_key_sha256`], and may
    /// authorise it by that hash. The server is still appraised under `verifier`'s policy, but
    /// no session frames are exchanged (the server sends none to unattested clients), so
    /// `fresh_in_session` stays false: in per-session mode the application must obtain fresh
    /// evidence itself, bound to [`AttestedStream::exporter`] (e.g. with
    /// [`NodeIdentity::session_evidence`] on the server and
    /// [`PeerVerifier::appraise_session_evidence`] here).
    pub fn unattested(
        certificate: CertificateDer<'static>,
        key: PrivateKeyDer<'static>,
        verifier: Arc<PeerVerifier>,
    ) -> Result<Self, AtlsError> {
        Ok(Self {
            connector: connector(&verifier, certificate, key)?,
            identity: None,
            verifier,
        })
    }

    /// Runs the handshake and the session exchange.
    pub async fn connect<IO>(
        &self,
        io: IO,
    ) -> Result<AttestedStream<tokio_rustls::client::TlsStream<IO>>, AtlsError>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name =
            ServerName::try_from(SERVER_NAME).map_err(|e| AtlsError::Identity(e.to_string()))?;
        let mut stream = self
            .connector
            .connect(name, io)
            .await
            .map_err(AtlsError::handshake)?;
        let (_, conn) = stream.get_ref();
        let cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .cloned()
            .ok_or(AtlsError::NoEvidence)?;
        let exporter = conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)?;
        let mut peer = self.verifier.appraise_certificate(&cert)?;
        let Peer::Attested(att) = &mut peer else {
            return Err(AtlsError::NoEvidence);
        };
        if let Some(identity) = &self.identity {
            exchange(&mut stream, identity, &self.verifier, &cert, &exporter).await?;
            att.fresh_in_session = self.verifier.freshness() == Freshness::PerSession;
        }
        let peer_key_sha256 = Some(key_sha256(&cert)?);
        Ok(AttestedStream {
            stream,
            peer,
            peer_key_sha256,
            exporter,
        })
    }
}

/// No session resumption: every connection is a full handshake in which both certificates are
/// appraised afresh (from the cache), so a resumed session can never outlive its evidence.
/// TLS 1.3 only, the server appraised by `verifier`, this certificate presented, no resumption.
fn connector(
    verifier: &Arc<PeerVerifier>,
    certificate: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsConnector, AtlsError> {
    let mut config = ClientConfig::builder_with_provider(verifier.provider().clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_client_auth_cert(vec![certificate], key)?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(TlsConnector::from(Arc::new(config)))
}

fn without_resumption_server(mut config: ServerConfig) -> ServerConfig {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo.
fn key_sha256(cert: &CertificateDer<'_>) -> Result<[u8; 32], AtlsError> {
    let parsed = crate::ext::parse_certificate(cert)?;
    Ok(Sha256::digest(&parsed.spki_der).into())
}

/// Sends our session frame, reads the peer's and, in per-session mode, appraises it.
async fn exchange<S>(
    stream: &mut S,
    identity: &NodeIdentity,
    verifier: &PeerVerifier,
    peer_cert: &[u8],
    exporter: &[u8; 32],
) -> Result<(), AtlsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let per_session = verifier.freshness() == Freshness::PerSession;
    let mine = if per_session {
        identity.session_evidence(exporter, verifier.clock().now())?
    } else {
        Vec::new()
    };
    write_frame(stream, &mine).await?;
    let theirs = tokio::time::timeout(FRAME_TIMEOUT, read_frame(stream))
        .await
        .map_err(|_| {
            AtlsError::SessionFrame(format!(
                "the peer sent no session evidence within {} s",
                FRAME_TIMEOUT.as_secs()
            ))
        })??;
    if per_session {
        if theirs.is_empty() {
            return Err(AtlsError::SessionFrame(
                "the peer sent no session evidence (its policy uses max-age freshness; this side requires per-session)".into(),
            ));
        }
        verifier.appraise_session_evidence(peer_cert, &theirs, exporter)?;
    }
    Ok(())
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    payload: &[u8],
) -> Result<(), AtlsError> {
    let len = u32::try_from(payload.len())
        .map_err(|_| AtlsError::SessionFrame("session evidence too large".into()))?;
    let mut frame = Vec::with_capacity(8 + payload.len());
    frame.extend_from_slice(FRAME_MAGIC);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(payload);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, AtlsError> {
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).await.map_err(|e| {
        AtlsError::SessionFrame(format!(
            "the connection ended before the peer's session frame: {e}"
        ))
    })?;
    if &head[..4] != FRAME_MAGIC {
        return Err(AtlsError::SessionFrame(
            "the peer's first bytes are not a teemesh session frame".into(),
        ));
    }
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if len > MAX_EXTENSION_LEN {
        return Err(AtlsError::SessionFrame(format!(
            "session frame of {len} bytes is larger than the {MAX_EXTENSION_LEN} allowed"
        )));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(payload)
}
