//! Mutually attested TLS for teemesh, on rustls.
//!
//! Every connection proves **both** ends: each side's certificate carries TEE evidence in the
//! interoperable RA-TLS extension ([`ext`]), bound to the certificate's key through report_data,
//! and each side's rustls verifier appraises the other's evidence under an appraisal policy
//! ([`PeerVerifier`]) before the handshake completes. Freshness is per session (new evidence
//! bound to the TLS exporter, right after the handshake) or bounded by a maximum evidence age,
//! as the policy chooses ([`Freshness`]). A listener may admit ordinary TLS clients; the
//! application then sees [`Peer::Unattested`].
//!
//! The same attested key signs the claims a node makes about the WebAssembly modules it hosts
//! ([`ModuleClaims`]); [`verify_module_claims`] checks the node's evidence and the module's
//! measurement in one step.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use atls::{AtlsClient, AtlsServer, NodeIdentity, PeerVerifier};
//! use attest::{AppraisalPolicy, Endorsements, UnixTime};
//!
//! let attester = Arc::new(platform::Simulated::for_this_executable()?);
//! let identity = Arc::new(NodeIdentity::generate(attester, "node-a", UnixTime::now())?);
//! let mut policy = AppraisalPolicy::default();
//! policy.allow_simulated = true; // never the default
//! let verifier = Arc::new(PeerVerifier::new(policy, Endorsements::default()));
//! let server = AtlsServer::new(identity.clone(), verifier.clone())?;
//! let client = AtlsClient::new(identity, verifier)?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     let (tcp, _) = listener.accept().await?;
//!     let conn = server.accept(tcp).await?;
//!     println!("client: {:?}", conn.peer);
//!     Ok::<_, atls::AtlsError>(())
//! });
//! let conn = client.connect(tokio::net::TcpStream::connect(addr).await?).await?;
//! println!("server: {:?}", conn.peer);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod error;
pub mod ext;
mod identity;
mod module_claims;
mod session;
mod verifier;

pub use error::AtlsError;
pub use identity::{NODE_SIGNATURE_DOMAIN, NodeIdentity, self_signed, self_signed_with};
pub use module_claims::{
    ChannelKey, MAX_CLAIMS_JSON, ModuleClaims, SignatureBytes, SignedModuleClaims,
    VerifiedModuleClaims, verify_module_claims, verify_node_signature,
};
pub use session::{AtlsClient, AtlsServer, AttestedStream, EXPORTER_LABEL};
pub use verifier::{Clock, Freshness, Peer, PeerAttestation, PeerVerifier};
