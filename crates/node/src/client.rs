//! The admin client: connects to a node over attested TLS with the operator's admin key,
//! appraises the node under the operator's policy (with fresh evidence bound to this session
//! when the policy asks for per-session freshness), then sends requests and reads responses.

use std::sync::Arc;
use std::time::Duration;

use atls::{AtlsClient, AtlsError, Freshness, Peer, PeerAttestation, PeerVerifier};
use node_protocol::{ErrorKind, Op, PROTOCOL_VERSION, Reply, Request, Response};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::admin::{read_frame, write_payload};
use crate::admin_key::AdminKey;
use crate::error::NodeError;

/// How long connecting and the handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// What the node said about itself in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHello {
    /// Its name.
    pub node: String,
    /// `sgx`, `tdx`, `snp` or `sim`.
    pub platform: String,
    /// True on the simulated TEE.
    pub simulated: bool,
}

/// An admin session with one node.
pub struct AdminClient {
    stream: TlsStream<TcpStream>,
    next_id: u64,
    /// The node's appraised attestation.
    pub attestation: PeerAttestation,
    /// The node's certificate (DER), to verify module claims with.
    pub node_certificate: Vec<u8>,
    /// The node's hello.
    pub hello: NodeHello,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminClient")
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// Connects to `addr`, appraising the node with `verifier`; `NodeError::Refused` when the
    /// policy refuses the node, `NodeError::Unauthorised` when the node refuses this key.
    pub async fn connect(
        addr: &str,
        key: &AdminKey,
        verifier: Arc<PeerVerifier>,
    ) -> Result<Self, NodeError> {
        let (cert, private_key) = key.certificate()?;
        let client = AtlsClient::unattested(cert, private_key, verifier.clone())?;
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(addr)
                .await
                .map_err(|reason| NodeError::Net {
                    what: format!("cannot connect to {addr}"),
                    reason,
                })?;
            let _ = tcp.set_nodelay(true);
            client.connect(tcp).await.map_err(|e| match e {
                AtlsError::Handshake(m) if m.contains("attestation was refused") => {
                    NodeError::Refused(format!("node {addr}: {m}"))
                }
                AtlsError::Appraisal(_) | AtlsError::NoEvidence => {
                    NodeError::Refused(format!("node {addr}: {e}"))
                }
                other => NodeError::Atls(other),
            })
        })
        .await
        .map_err(|_| NodeError::Net {
            what: format!("no attested session with {addr}"),
            reason: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("nothing within {} s", CONNECT_TIMEOUT.as_secs()),
            ),
        })??;
        let Peer::Attested(attestation) = conn.peer else {
            return Err(NodeError::Refused(format!(
                "node {addr} presented no evidence"
            )));
        };
        let node_certificate = conn
            .stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .ok_or_else(|| NodeError::Refused(format!("node {addr} presented no certificate")))?;
        let per_session = verifier.freshness() == Freshness::PerSession;
        let mut client = Self {
            stream: conn.stream,
            next_id: 1,
            attestation: *attestation,
            node_certificate,
            hello: NodeHello {
                node: String::new(),
                platform: String::new(),
                simulated: false,
            },
        };
        let reply = client
            .request(Op::Hello {
                version: PROTOCOL_VERSION,
                session_evidence: per_session,
            })
            .await
            .map_err(|e| match e {
                NodeError::Remote(r) if r.kind == ErrorKind::Unauthorised => {
                    NodeError::Unauthorised(format!("node {addr}: {}", r.message))
                }
                other => other,
            })?;
        let Reply::Hello {
            node,
            platform,
            simulated,
            session_evidence,
            ..
        } = reply
        else {
            return Err(NodeError::Protocol("the node did not answer hello".into()));
        };
        if per_session {
            let evidence = session_evidence.ok_or_else(|| {
                NodeError::Refused(format!("node {addr} sent no session evidence"))
            })?;
            verifier
                .appraise_session_evidence(&client.node_certificate, &evidence.0, &conn.exporter)
                .map_err(|e| NodeError::Refused(format!("node {addr}: session evidence: {e}")))?;
            client.attestation.fresh_in_session = true;
        }
        client.hello = NodeHello {
            node,
            platform,
            simulated,
        };
        Ok(client)
    }

    /// Sends one request and waits for its response; an error reply is `NodeError::Remote`.
    pub async fn request(&mut self, op: Op) -> Result<Reply, NodeError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request { id, op };
        write_payload(&mut self.stream, &request.encode())
            .await
            .map_err(|reason| NodeError::Net {
                what: "cannot send the request".into(),
                reason,
            })?;
        let frame = read_frame(&mut self.stream)
            .await
            .map_err(|e| NodeError::Protocol(e.to_string()))?
            .ok_or_else(|| NodeError::Protocol("the node closed the connection".into()))?;
        let response = Response::decode(&frame).map_err(|e| NodeError::Protocol(e.to_string()))?;
        if response.id != id && response.id != 0 {
            return Err(NodeError::Protocol(format!(
                "response for request {} while waiting for {id}",
                response.id
            )));
        }
        response.outcome.map_err(NodeError::Remote)
    }
}
