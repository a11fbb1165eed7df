//! The MQTT broker as the node runs it (and `teemesh mqtt broker`): the `[mqtt]` configuration,
//! its TCP, TLS and attested TLS listeners, and what an attested session proves to its ACLs.
//!
//! On an attested TLS listener a client proves its platform through the handshake and, with the
//! MQTT 5 Authentication Method [`MODULE_CLAIMS_METHOD`], which module it speaks for: the
//! Authentication Data is `atls::SignedModuleClaims` (JSON) signed by the key of the very
//! certificate the client presented in this session ([`ModuleClaimsAuthenticator`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ::mqtt::broker::{
    AclConfig, AttestedClaims, AuthConfig, AuthRefusal, Broker, BrokerConfig, ConnectAuthenticator,
    Limits, PersistenceConfig, TransportIdentity, listener,
};
use atls::{AtlsServer, NodeIdentity, Peer, PeerVerifier, SignedModuleClaims};
use attest::{AppraisalPolicy, Digest256, Endorsements, PlatformKind, UnixTime};
use platform::{PlatformChoice, PlatformRoots};
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::error::NodeError;

/// The MQTT 5 Authentication Method whose Authentication Data is the JSON of
/// `atls::SignedModuleClaims`, signed by the key of the client's attested TLS certificate.
pub const MODULE_CLAIMS_METHOD: &str = "teemesh-module-claims-v1";

/// The broker's configuration: the `[mqtt]` section of a node's file, or the whole file of
/// `teemesh mqtt broker`. Unknown keys are errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// The listeners (`[[listener]]`, or `[[mqtt.listener]]` in a node's file).
    #[serde(default)]
    pub listener: Vec<ListenerConfig>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
    /// Users and anonymous access.
    #[serde(default)]
    pub auth: AuthConfig,
    /// ACL rules.
    pub acl: Option<AclConfig>,
    /// The persistence store.
    pub persistence: Option<PersistenceConfig>,
}

/// One listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// `tcp`, `tls` or `atls`.
    pub kind: ListenerKind,
    /// Where to listen (`127.0.0.1:0` picks a port).
    pub address: String,
    /// TLS: the certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// TLS: the private key (PEM).
    pub key: Option<PathBuf>,
    /// Attested TLS, standalone broker only: its TEE (auto, sim, tdx, snp, sgx); default auto.
    /// Refused in a node, whose own platform applies.
    pub platform: Option<toml::Spanned<String>>,
    /// Attested TLS: the appraisal policy for clients (TOML); default the built-in policy
    /// (standalone) or the node's peer policy (in a node).
    pub policy: Option<PathBuf>,
    /// Attested TLS: endorsements for the clients' evidence.
    #[serde(default)]
    pub endorsements: Vec<PathBuf>,
    /// Attested TLS: refuse clients without evidence (default: admit them as unattested).
    #[serde(default)]
    pub require_client_attestation: bool,
    /// Attested TLS, standalone broker only: the name in its certificate claims. Refused in a
    /// node, whose own name applies.
    pub name: Option<toml::Spanned<String>>,
}

/// A listener's transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TLS with a configured certificate.
    Tls,
    /// Attested TLS.
    Atls,
}

impl ListenerKind {
    /// `tcp`, `tls` or `atls`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Atls => "atls",
        }
    }
}

impl ListenerConfig {
    /// A plain TCP listener on `address`.
    pub fn tcp(address: &str) -> Self {
        Self {
            kind: ListenerKind::Tcp,
            address: address.to_owned(),
            cert: None,
            key: None,
            platform: None,
            policy: None,
            endorsements: Vec::new(),
            require_client_attestation: false,
            name: None,
        }
    }
}

impl MqttConfig {
    /// Resolves relative file names against `base` (the configuration file's directory).
    pub fn resolve_paths(&mut self, base: &Path) {
        for listener in &mut self.listener {
            for file in [&mut listener.cert, &mut listener.key, &mut listener.policy]
                .into_iter()
                .flatten()
            {
                *file = base.join(&*file);
            }
            for file in &mut listener.endorsements {
                *file = base.join(&*file);
            }
        }
        if let Some(persistence) = &mut self.persistence {
            persistence.path = base.join(&persistence.path);
        }
    }

    /// What a node's file may not say: `platform` and `name` of an atls listener (the node's
    /// own apply). Returns the byte offset of the offending value in the file, and why.
    pub(crate) fn node_refusal(&self) -> Option<(usize, String)> {
        for (index, listener) in self.listener.iter().enumerate() {
            for (field, value) in [("platform", &listener.platform), ("name", &listener.name)] {
                if let Some(value) = value {
                    return Some((
                        value.span().start,
                        format!(
                            "mqtt.listener[{index}].{field}: not allowed in a node's [mqtt]: an atls listener presents the node's own attested identity (its {field} is the node's)"
                        ),
                    ));
                }
            }
        }
        None
    }

    fn broker_config(&self) -> BrokerConfig {
        BrokerConfig {
            limits: self.limits.clone(),
            auth: self.auth.clone(),
            acl: self.acl.clone(),
            persistence: self.persistence.clone(),
        }
    }
}

/// Where attested TLS listeners get their identity.
#[derive(Debug, Clone)]
pub enum AtlsIdentity {
    /// `teemesh mqtt broker`: each atls listener creates its own on its `platform`, and
    /// appraises clients under its `policy` or the built-in default.
    PerListener(PlatformRoots),
    /// In a node: the node's identity (the same certificate and evidence as its admin
    /// listener), and clients appraised under the node's peer policy unless a listener names
    /// its own.
    Node {
        /// The node's attested identity.
        identity: Arc<NodeIdentity>,
        /// The node's peer policy.
        peer_policy: Box<AppraisalPolicy>,
    },
}

/// A bound listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundListener {
    /// Its transport.
    pub kind: ListenerKind,
    /// Its bound address.
    pub address: SocketAddr,
}

impl BoundListener {
    /// `{"kind": …, "address": …}`.
    pub fn to_json(&self) -> Value {
        json!({"kind": self.kind.as_str(), "address": self.address.to_string()})
    }
}

/// A started broker and its listeners.
#[derive(Debug)]
pub struct RunningBroker {
    broker: Broker,
    listeners: Vec<BoundListener>,
    tasks: JoinSet<()>,
}

impl RunningBroker {
    /// The broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The bound listeners, in configuration order.
    pub fn listeners(&self) -> &[BoundListener] {
        &self.listeners
    }

    /// The listeners as a JSON array of `{"kind", "address"}`.
    pub fn listeners_json(&self) -> Value {
        Value::Array(self.listeners.iter().map(BoundListener::to_json).collect())
    }

    /// Resolves when a listener stopped (they run for ever unless something broke).
    pub async fn listener_stopped(&mut self) {
        if self.tasks.join_next().await.is_none() {
            std::future::pending::<()>().await;
        }
    }

    /// Stops accepting connections, then closes every client connection with Server shutting
    /// down and waits (a few seconds at most) for them to end.
    pub async fn stop(mut self) {
        self.tasks.abort_all();
        tracing::info!("mqtt listeners closed");
        self.broker.shutdown(SHUTDOWN_GRACE).await;
    }
}

/// Starts the broker of `config` and binds its listeners; attested TLS listeners get their
/// identity from `identity`. Must run inside a tokio runtime.
pub async fn start_broker(
    config: &MqttConfig,
    identity: &AtlsIdentity,
) -> Result<RunningBroker, NodeError> {
    let mut bound = Vec::new();
    for listener_config in &config.listener {
        let tcp = TcpListener::bind(&listener_config.address)
            .await
            .map_err(|reason| NodeError::Net {
                what: format!("cannot listen on {}", listener_config.address),
                reason,
            })?;
        let address = tcp.local_addr().map_err(|reason| NodeError::Net {
            what: "mqtt listener".into(),
            reason,
        })?;
        bound.push((listener_config, tcp, address));
    }
    let mut broker_config = config.broker_config();
    if broker_config.auth.allow_anonymous.is_none() {
        // As mosquitto 2: anonymous clients only while nothing listens beyond this machine.
        let exposed: Vec<String> = bound
            .iter()
            .filter(|(_, _, address)| !address.ip().is_loopback())
            .map(|(_, _, address)| address.to_string())
            .collect();
        if !exposed.is_empty() {
            tracing::warn!(
                listeners = %exposed.join(", "),
                "clients with neither a user name nor module claims are refused: a listener is not on a loopback address and [auth] allow_anonymous is not set (to admit them, set it to true in a --config file, or give clients users under [[auth.users]])"
            );
        }
        broker_config.auth.allow_anonymous = Some(exposed.is_empty());
    }
    let broker = Broker::new(&broker_config)
        .map_err(|e| NodeError::Mqtt(format!("broker configuration: {e}")))?;
    let mut listeners = Vec::new();
    let mut tasks = JoinSet::new();
    for (listener_config, tcp, address) in bound {
        let kind = listener_config.kind;
        let broker = broker.clone();
        match kind {
            ListenerKind::Tcp => {
                tasks.spawn(listener::serve_tcp(broker, tcp, "tcp".into()));
            }
            ListenerKind::Tls => {
                let (Some(cert), Some(key)) = (&listener_config.cert, &listener_config.key) else {
                    return Err(NodeError::Mqtt(format!(
                        "the tls listener on {address} needs cert and key (PEM files)"
                    )));
                };
                let acceptor = listener::tls_acceptor(cert, key)
                    .map_err(|e| NodeError::Mqtt(format!("tls listener on {address}: {e}")))?;
                tasks.spawn(listener::serve_tls(broker, tcp, acceptor, "tls".into()));
            }
            ListenerKind::Atls => {
                let (server, verifier) = atls_server(listener_config, identity)?;
                tasks.spawn(serve_atls(broker, tcp, server, verifier));
            }
        }
        tracing::info!(kind = kind.as_str(), %address, "mqtt listener ready");
        listeners.push(BoundListener { kind, address });
    }
    Ok(RunningBroker {
        broker,
        listeners,
        tasks,
    })
}

fn atls_server(
    config: &ListenerConfig,
    identity: &AtlsIdentity,
) -> Result<(AtlsServer, Arc<PeerVerifier>), NodeError> {
    let (identity, default_policy) = match identity {
        AtlsIdentity::Node {
            identity,
            peer_policy,
        } => (identity.clone(), AppraisalPolicy::clone(peer_policy)),
        AtlsIdentity::PerListener(roots) => {
            (own_identity(config, roots)?, AppraisalPolicy::default())
        }
    };
    let policy = match &config.policy {
        Some(path) => AppraisalPolicy::load(path).map_err(|e| NodeError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?,
        None => default_policy,
    };
    let endorsements = Endorsements::load(&config.endorsements)
        .map_err(|e| NodeError::Mqtt(format!("atls listener endorsements: {e}")))?;
    let verifier = Arc::new(
        PeerVerifier::new(policy, endorsements)
            .allow_unattested(!config.require_client_attestation),
    );
    Ok((AtlsServer::new(identity, verifier.clone())?, verifier))
}

/// A standalone broker's atls listener identity, on the listener's `platform`.
fn own_identity(
    config: &ListenerConfig,
    roots: &PlatformRoots,
) -> Result<Arc<NodeIdentity>, NodeError> {
    let choice: PlatformChoice = match &config.platform {
        Some(text) => text.get_ref().parse().map_err(|e| {
            NodeError::Mqtt(format!("atls listener platform {:?}: {e}", text.get_ref()))
        })?,
        None => PlatformChoice::Auto,
    };
    let attester = roots.open(choice)?;
    if attester.kind() == PlatformKind::Sim {
        tracing::warn!(
            "the atls listener's identity is SIMULATED: no hardware protects its key; clients refuse it unless their policy sets allow_simulated"
        );
    }
    let name = config
        .name
        .as_ref()
        .map_or("teemesh-mqtt", |n| n.get_ref().as_str());
    let identity = NodeIdentity::generate(Arc::from(attester), name, UnixTime::now())?;
    Ok(Arc::new(identity))
}

/// How long an attested TLS handshake (with its session exchange) may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a stopping broker waits for its client connections to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

async fn serve_atls(
    broker: Broker,
    tcp: TcpListener,
    server: AtlsServer,
    verifier: Arc<PeerVerifier>,
) {
    loop {
        let (stream, remote) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("atls accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Counted before the handshake: half-open attested sessions take memory too.
        let Some(admission) = broker.admit(Some(remote)) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let server = server.clone();
        let verifier = verifier.clone();
        tokio::spawn(async move {
            let attested = match tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                server.accept(mqtt::broker::ReadAhead::new(stream)),
            )
            .await
            {
                Ok(Ok(attested)) => attested,
                Ok(Err(e)) => {
                    tracing::info!(%remote, "attested TLS refused: {e}");
                    return;
                }
                Err(_) => {
                    tracing::info!(%remote, "attested TLS handshake timed out");
                    return;
                }
            };
            let peer_certificate = attested
                .stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| cert.clone().into_owned());
            let transport = atls_transport(remote, &attested.peer, attested.peer_key_sha256);
            let authenticator: Arc<dyn ConnectAuthenticator> =
                Arc::new(ModuleClaimsAuthenticator::new(verifier, peer_certificate));
            broker
                .serve_admitted(admission, attested.stream, transport, Some(authenticator))
                .await;
        });
    }
}

/// What an attested TLS session proved, as the broker's ACLs see it: the peer's platform
/// claims. Module claims are added by [`ModuleClaimsAuthenticator`] when the CONNECT carries
/// them.
fn atls_transport(
    remote: SocketAddr,
    peer: &Peer,
    key_sha256: Option<[u8; 32]>,
) -> TransportIdentity {
    let attested = peer.attestation().map(|att| {
        let claims = att.verified.claims();
        AttestedClaims {
            platform: claims.platform_kind().as_str().to_owned(),
            measurement: claims.primary_measurement_hex(),
            simulated: claims.is_simulated(),
            node_name: att.bound.node_name.clone(),
            app: None,
            module: None,
            module_measurement: None,
        }
    });
    TransportIdentity {
        remote_addr: Some(remote),
        listener: "atls".into(),
        certificate_key_sha256: key_sha256,
        attested,
    }
}

/// Admits module claims ([`MODULE_CLAIMS_METHOD`]) on one attested TLS connection: the claims
/// must name the certificate the client presented in this session, verify with its key and
/// match the platform its evidence proves, so a node speaks only for the modules it signs
/// itself.
pub struct ModuleClaimsAuthenticator {
    verifier: Arc<PeerVerifier>,
    peer_certificate: Option<CertificateDer<'static>>,
}

impl std::fmt::Debug for ModuleClaimsAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModuleClaimsAuthenticator")
            .field("has_peer_certificate", &self.peer_certificate.is_some())
            .finish_non_exhaustive()
    }
}

impl ModuleClaimsAuthenticator {
    /// An authenticator for a connection whose client presented `peer_certificate` (DER), which
    /// `verifier` appraised during the handshake.
    pub fn new(
        verifier: Arc<PeerVerifier>,
        peer_certificate: Option<CertificateDer<'static>>,
    ) -> Self {
        Self {
            verifier,
            peer_certificate,
        }
    }
}

impl ConnectAuthenticator for ModuleClaimsAuthenticator {
    fn authenticate(
        &self,
        transport: &TransportIdentity,
        method: &str,
        data: Option<&[u8]>,
    ) -> Result<AttestedClaims, AuthRefusal> {
        if method != MODULE_CLAIMS_METHOD {
            return Err(AuthRefusal::bad_method(format!(
                "authentication method {method:?} is not offered: this listener knows {MODULE_CLAIMS_METHOD:?}"
            )));
        }
        let (Some(node), Some(certificate)) = (&transport.attested, &self.peer_certificate) else {
            return Err(AuthRefusal::not_authorized(
                "module claims need an attested client: this TLS session carried no evidence",
            ));
        };
        let data = data.ok_or_else(|| {
            AuthRefusal::not_authorized(
                "no Authentication Data: expected the node's signed module claims (JSON)",
            )
        })?;
        let signed = SignedModuleClaims::from_json(data).map_err(|e| {
            AuthRefusal::not_authorized(format!("the Authentication Data is refused: {e}"))
        })?;
        let session_certificate = Digest256::of(certificate);
        if signed.claims.node_cert_sha256 != session_certificate {
            return Err(AuthRefusal::not_authorized(format!(
                "the module claims name node certificate sha256:{}, not the one of this TLS session (sha256:{}): a node speaks only for modules it signs itself",
                signed.claims.node_cert_sha256.to_hex(),
                session_certificate.to_hex()
            )));
        }
        let verified = atls::verify_module_claims(certificate, &signed, &self.verifier)
            .map_err(|e| AuthRefusal::not_authorized(format!("module claims refused: {e}")))?;
        let module = verified.module();
        Ok(AttestedClaims {
            app: module.app.clone(),
            module: Some(module.name.clone()),
            module_measurement: Some(module.measurement.to_hex()),
            ..node.clone()
        })
    }
}
