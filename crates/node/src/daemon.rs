//! Starting and stopping a node: the platform's attester and the node identity, the data
//! directory and sealing secret, the runtime, the modules stored by an earlier run, then the
//! admin listener (attested TLS), the metrics listener and, when configured, the MQTT broker
//! (whose attested listeners present the node's identity). Shutdown stops accepting, lets
//! running calls finish within a grace period, and returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use atls::{AtlsClient, AtlsServer, NodeIdentity, PeerVerifier};
use attest::{AppraisalPolicy, Endorsements, PlatformKind, UnixTime};
use platform::{PlatformRoots, SealingKey};
use runtime::{Limits, NodeSecret, Runtime, RuntimeConfig};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::admin::{AdminContext, serve_connection};
use crate::bridge::BridgeContext;
use crate::config::NodeConfig;
use crate::error::NodeError;
use crate::forward::Forwarder;
use crate::metrics::{self, Metrics};
use crate::modules::ModuleHost;
use crate::mqtt::{AtlsIdentity, BoundListener, RunningBroker, start_broker};
use crate::store::DataDir;

/// Admin connections served at once (including handshakes in progress); more are closed.
const MAX_ADMIN_CONNECTIONS: usize = 64;
/// Extra time, beyond one call's deadline, that shutdown waits for running calls.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

/// A started node.
pub struct RunningNode {
    /// Where the admin API listens.
    pub admin_addr: SocketAddr,
    /// Where the metrics listen, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// The MQTT broker's bound listeners (`None`: no `[mqtt]` in the configuration).
    pub mqtt_listeners: Option<Vec<BoundListener>>,
    /// The node's name.
    pub name: String,
    /// `sgx`, `tdx`, `snp` or `sim`.
    pub platform: PlatformKind,
    /// The node's attested identity (its certificate, for verifying module claims).
    pub identity: Arc<NodeIdentity>,
    /// Modules restored from the data directory at start.
    pub restored: usize,
    /// Where the sealing secret comes from: `"platform"` (the TEE's sealing key) or `"file"`
    /// (the data directory).
    pub sealing: &'static str,
    shutdown: watch::Sender<bool>,
    accept_task: tokio::task::JoinHandle<JoinSet<()>>,
    metrics_task: Option<tokio::task::JoinHandle<()>>,
    broker: Option<RunningBroker>,
    host: Arc<ModuleHost>,
    grace: Duration,
}

impl std::fmt::Debug for RunningNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningNode")
            .field("admin_addr", &self.admin_addr)
            .field("metrics_addr", &self.metrics_addr)
            .field("mqtt_listeners", &self.mqtt_listeners)
            .field("name", &self.name)
            .field("platform", &self.platform)
            .finish_non_exhaustive()
    }
}

impl RunningNode {
    /// True on the simulated TEE.
    pub fn simulated(&self) -> bool {
        self.platform == PlatformKind::Sim
    }

    /// The one-line JSON a node prints when it is ready.
    pub fn startup_json(&self) -> Value {
        json!({
            "event": "ready",
            "node": self.name,
            "admin": self.admin_addr.to_string(),
            "metrics": self.metrics_addr.map(|a| a.to_string()),
            "mqtt": self.mqtt_listeners.as_ref().map(|listeners| {
                listeners.iter().map(BoundListener::to_json).collect::<Vec<_>>()
            }),
            "platform": self.platform.as_str(),
            "simulated": self.simulated(),
            "modules_restored": self.restored,
            "sealing": self.sealing,
        })
    }

    /// Stops accepting admin connections, lets running calls finish (bounded by the call
    /// deadline plus a few seconds), and stops.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if let Some(broker) = self.broker {
            broker.stop().await;
        }
        let mut sessions = self.accept_task.await.unwrap_or_default();
        // Idle sessions end at once; a session inside a request finishes it (calls are bounded
        // by their deadline), then ends.
        let drained = tokio::time::timeout(self.grace, async {
            while sessions.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("admin sessions still busy at shutdown; closing them");
            sessions.abort_all();
        }
        self.host.shutdown(SHUTDOWN_SLACK).await;
        if let Some(task) = self.metrics_task {
            task.abort();
        }
        tracing::info!(node = %self.name, "node stopped");
    }
}

/// Starts a node from `config`, finding TEE interfaces under `roots`.
pub async fn start(config: &NodeConfig, roots: PlatformRoots) -> Result<RunningNode, NodeError> {
    let choice = config.platform;
    let name = config.name.clone();
    let (identity, sealing_key) = tokio::task::spawn_blocking(
        move || -> Result<(NodeIdentity, Option<SealingKey>), NodeError> {
            let attester = roots.open(choice)?;
            let sealing_key = attester.sealing_key()?;
            let identity = NodeIdentity::generate(Arc::from(attester), &name, UnixTime::now())?;
            Ok((identity, sealing_key))
        },
    )
    .await
    .map_err(|e| NodeError::Store(format!("identity task failed: {e}")))??;
    let identity = Arc::new(identity);
    let platform = identity.platform();
    if platform == PlatformKind::Sim {
        tracing::warn!(node = %config.name, "this node runs on the SIMULATED TEE: no hardware protects its modules, their sealed state or its keys");
    }

    let policy = match &config.peer_policy {
        Some(path) => AppraisalPolicy::load(path).map_err(|e| NodeError::Config {
            path: path.clone(),
            message: e.to_string(),
        })?,
        None => AppraisalPolicy::default(),
    };
    // The broker's attested listeners present this identity and, unless one names its own
    // policy, appraise clients under the peer policy.
    let mqtt_identity = AtlsIdentity::Node {
        identity: identity.clone(),
        peer_policy: Box::new(policy.clone()),
    };
    // Unattested clients complete the handshake so admin keys can be checked; anyone else is
    // refused right after it (see admin::authorise).
    let verifier =
        Arc::new(PeerVerifier::new(policy, Endorsements::default()).allow_unattested(true));

    let store = DataDir::open(&config.data_dir)?;
    let sealing = if sealing_key.is_some() {
        "platform"
    } else {
        "file"
    };
    let secret = match sealing_key {
        Some(key) => {
            tracing::info!(node = %config.name, source = key.source(), "sealing secret derived from the platform's sealing key");
            NodeSecret::from_platform_key(key.bytes())
        }
        None => {
            if platform != PlatformKind::Sim {
                tracing::warn!(
                    node = %config.name,
                    path = %store.sealing_secret().display(),
                    "{platform} offers no sealing key through this interface: the sealing secret is a file in the data directory, as safe as the volume it is on (keep the data directory on an encrypted volume whose key is released only to this attested VM)"
                );
            }
            NodeSecret::load_or_create(&store.sealing_secret())?
        }
    };
    let limits = Limits {
        fuel_per_call: Some(config.limits.fuel_per_call),
        deadline_per_call: Some(config.limits.deadline),
        memory_bytes: config.limits.memory_bytes,
        ..Limits::default()
    };
    let runtime = Arc::new(Runtime::new(
        RuntimeConfig::new(identity.clone())
            .with_limits(limits)
            .with_sealed_state(store.sealed_dir(), secret),
    )?);
    let metrics = Arc::new(Metrics::new(
        platform.as_str(),
        platform == PlatformKind::Sim,
    ));
    // Links to peer nodes present this node's own evidence and appraise the peer under the
    // same policy; a peer without evidence is refused. The MQTT clients of topic ends reach
    // their brokers the same way.
    let peer_client = AtlsClient::new(identity.clone(), verifier.clone())?;
    let forwarder = Arc::new(Forwarder::new(
        tokio::runtime::Handle::current(),
        peer_client.clone(),
        &config.name,
    ));
    let host = Arc::new(ModuleHost::new(
        runtime,
        forwarder,
        verifier.clone(),
        store.clone(),
        metrics.clone(),
        config.limits.output_queue,
        BridgeContext {
            client: peer_client,
            node: config.name.clone(),
        },
    ));

    let mut restored = 0;
    let stored = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || store.load_all())
            .await
            .map_err(|e| NodeError::Store(format!("restore task failed: {e}")))??
    };
    for entry in stored {
        match entry {
            Ok((module, bytes)) => match host.load(&module.name, bytes, false).await {
                Ok(info) => {
                    restored += 1;
                    tracing::info!(module = %info.name, measurement = %info.measurement, "module restored");
                }
                Err(e) => {
                    tracing::error!(module = %module.name, error = %e, "cannot restore module")
                }
            },
            Err(e) => tracing::error!(error = %e, "cannot restore a module"),
        }
    }

    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .map_err(|reason| NodeError::Net {
            what: format!("cannot listen on {}", config.admin_listen),
            reason,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|reason| NodeError::Net {
            what: "admin listener".into(),
            reason,
        })?;
    let (metrics_addr, metrics_task) = match config.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|reason| NodeError::Net {
                    what: format!("cannot listen on {addr}"),
                    reason,
                })?;
            let bound = listener.local_addr().map_err(|reason| NodeError::Net {
                what: "metrics listener".into(),
                reason,
            })?;
            (
                Some(bound),
                Some(tokio::spawn(metrics::serve(listener, metrics.clone()))),
            )
        }
        None => (None, None),
    };

    let broker = match &config.mqtt {
        Some(mqtt) => Some(start_broker(mqtt, &mqtt_identity).await?),
        None => None,
    };
    let mqtt_listeners = broker.as_ref().map(|b| b.listeners().to_vec());
    if let Some(broker) = &broker {
        metrics.attach_mqtt(broker.broker().clone());
    }

    let (shutdown, shutting_down) = watch::channel(false);
    let ctx = Arc::new(AdminContext {
        host: host.clone(),
        identity: identity.clone(),
        metrics,
        auth: config.admin.clone(),
        platform: platform.as_str().to_owned(),
        simulated: platform == PlatformKind::Sim,
        shutting_down: shutting_down.clone(),
        mqtt_listeners: mqtt_listeners.clone().unwrap_or_default(),
    });
    let server = AtlsServer::new(identity.clone(), verifier)?;
    let accept_task = tokio::spawn(accept_loop(admin_listener, server, ctx, shutting_down));
    tracing::info!(node = %config.name, admin = %admin_addr, metrics = ?metrics_addr, mqtt = ?mqtt_listeners.as_ref().map(|l| l.iter().map(|b| b.address).collect::<Vec<_>>()), platform = platform.as_str(), "node ready");
    Ok(RunningNode {
        admin_addr,
        metrics_addr,
        mqtt_listeners,
        name: config.name.clone(),
        platform,
        identity,
        restored,
        sealing,
        shutdown,
        accept_task,
        metrics_task,
        broker,
        host,
        grace: config.limits.deadline + SHUTDOWN_SLACK,
    })
}

async fn accept_loop(
    listener: TcpListener,
    server: AtlsServer,
    ctx: Arc<AdminContext>,
    mut shutting_down: watch::Receiver<bool>,
) -> JoinSet<()> {
    let mut sessions = JoinSet::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_ADMIN_CONNECTIONS));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, from)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        let session = serve_connection(ctx.clone(), server.clone(), tcp, from);
                        sessions.spawn(async move {
                            session.await;
                            drop(permit);
                        });
                    }
                    Err(_) => {
                        ctx.metrics.admin_connection(false);
                        tracing::warn!(%from, "admin connection refused: {MAX_ADMIN_CONNECTIONS} connections already open");
                        drop(tcp);
                    }
                },
                Err(e) => tracing::warn!("admin accept failed: {e}"),
            },
            _ = shutting_down.changed() => break,
        }
        // Reap finished sessions so the set does not grow without bound.
        while sessions.try_join_next().is_some() {}
    }
    tracing::info!("admin listener closed");
    sessions
}
