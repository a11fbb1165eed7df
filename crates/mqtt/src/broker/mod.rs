//! The MQTT broker (feature `broker`): a sans-IO core ([`BrokerCore`]: sessions, routing,
//! retained messages, wills, QoS flows) behind one lock, and a thin tokio shell around it — one
//! task per connection reading with the [`crate::Decoder`] and writing from a bounded outbound
//! queue, a housekeeping tick, and TCP / TLS listeners.
//!
//! Any authenticated byte stream can become a client connection: [`Broker::serve_connection`]
//! takes an `AsyncRead + AsyncWrite` stream and the [`TransportIdentity`] its listener
//! established (attested claims included), which is the seam for attested TLS.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mqtt::broker::{Broker, BrokerConfig, listener};
//! let mut config = BrokerConfig::default();
//! config.auth.allow_anonymous = Some(true); // refused unless said
//! let broker = Broker::new(&config)?;
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:1883").await?;
//! listener::serve_tcp(broker, tcp, "tcp".into()).await;
//! # Ok(()) }
//! ```

mod acl;
mod alias;
mod auth;
mod config;
mod connect_auth;
mod connection;
mod core;
mod identity;
pub mod listener;
mod message;
mod outlet;
mod persistence;
mod read_ahead;
mod router;
mod session;
mod stats;
mod store;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use acl::{
    AclConfig, AclError, AclRule, Action, AllowAll, Authorizer, Permission, RuleAcl, filter_covers,
};
pub use auth::{BadPasswordHash, UserConfig, Users, hash_password};
pub use config::{AuthConfig, BrokerConfig, Limits, PersistenceConfig};
pub use connect_auth::{AuthRefusal, ConnectAuthenticator};
pub use core::{Accepted, BrokerCore, Flow};
pub use identity::{AttestedClaims, ClientIdentity, TransportIdentity};
pub use message::Message;
pub use outlet::{Outlet, QueueFull};
pub use persistence::StoreError;
pub use read_ahead::ReadAhead;
pub use session::ConnId;
pub use stats::{Counter, Counters};
pub use store::{MemoryRetained, RetainedStore};

/// A broker configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A user's password hash is unusable.
    #[error(transparent)]
    PasswordHash(#[from] BadPasswordHash),
    /// An ACL rule is invalid.
    #[error(transparent)]
    Acl(#[from] AclError),
    /// A limit is out of range.
    #[error("limits: {0}")]
    Limits(&'static str),
    /// The persistence store cannot be opened or read.
    #[error(transparent)]
    Persistence(#[from] StoreError),
}

/// A running broker: cheap to clone, shared by every listener.
#[derive(Clone, Debug)]
pub struct Broker {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    core: Mutex<BrokerCore>,
    pub(crate) limits: Limits,
    pub(crate) users: Users,
    pub(crate) allow_anonymous: bool,
    pub(crate) counters: Arc<Counters>,
    next_conn: AtomicU64,
    pub(crate) live: AtomicUsize,
    /// Told when a congested connection has drained: publishers paused for it go on.
    pub(crate) drained: Arc<outlet::Drained>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn core(&self) -> MutexGuard<'_, BrokerCore> {
        // The core keeps its invariants between statements; a panic in one connection's
        // handling must not take every other client down with a poisoned lock.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Commits the core's changes to persistent state; false (logged) when the store failed,
    /// and then the turn's acknowledgements must not be sent.
    pub(crate) fn commit(core: &mut BrokerCore) -> bool {
        match core.commit() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("cannot store the broker's state: {e}");
                false
            }
        }
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

impl Broker {
    /// A broker with `config`'s limits, users and ACL rules (every client may do anything
    /// when there are none). Must be called inside a tokio runtime: it starts the
    /// housekeeping tick (delayed wills, session expiry).
    pub fn new(config: &BrokerConfig) -> Result<Self, BrokerError> {
        let authorizer: Arc<dyn Authorizer> = match &config.acl {
            Some(acl) => Arc::new(RuleAcl::new(acl.clone())?),
            None => Arc::new(AllowAll),
        };
        Self::with_authorizer(config, authorizer)
    }

    /// A broker deciding publish and subscribe with `authorizer` instead of `config.acl`
    /// (e.g. an ACL on attested claims from elsewhere).
    pub fn with_authorizer(
        config: &BrokerConfig,
        authorizer: Arc<dyn Authorizer>,
    ) -> Result<Self, BrokerError> {
        Self::with_store(config, authorizer, Box::new(MemoryRetained::default()))
    }

    /// A broker keeping retained messages in `retained` (and, with `config.persistence`,
    /// also in the redb file it names, which is read first).
    pub fn with_store(
        config: &BrokerConfig,
        authorizer: Arc<dyn Authorizer>,
        retained: Box<dyn RetainedStore>,
    ) -> Result<Self, BrokerError> {
        let limits = config.limits.clone();
        if limits.max_packet_size < 64 {
            return Err(BrokerError::Limits("max_packet_size must be at least 64"));
        }
        if limits.receive_maximum == 0 || limits.max_inflight == 0 {
            return Err(BrokerError::Limits(
                "receive_maximum and max_inflight must be at least 1",
            ));
        }
        let users = Users::new(&config.auth.users)?;
        let counters = Arc::new(Counters::default());
        let mut core = BrokerCore::new(limits.clone(), authorizer, retained, counters.clone());
        if let Some(persistence) = &config.persistence {
            let store = persistence::RedbStore::open(&persistence.path)?;
            core.persist_to(
                Box::new(store),
                std::time::Instant::now(),
                std::time::SystemTime::now(),
            )?;
        }
        let shared = Arc::new(Shared {
            core: Mutex::new(core),
            limits,
            users,
            allow_anonymous: config.auth.allow_anonymous.unwrap_or(false),
            counters,
            next_conn: AtomicU64::new(1),
            live: AtomicUsize::new(0),
            drained: Arc::default(),
        });
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_secs(1));
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(shared) = weak.upgrade() else { return };
                let mut core = shared.core();
                core.tick(std::time::Instant::now());
                Shared::commit(&mut core);
            }
        });
        Ok(Self { shared })
    }

    /// Serves one client connection on `stream` until it ends. `transport` is what the
    /// listener established about the peer (its address, certificate key, attested claims);
    /// the broker trusts it as given.
    pub async fn serve_connection<S>(&self, stream: S, transport: TransportIdentity)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        self.serve_authenticated(stream, transport, None).await;
    }

    /// Like [`Self::serve_connection`], with `authenticator` deciding a CONNECT that names an
    /// Authentication Method (without one, such a CONNECT is refused with 0x8C). The listener
    /// gives it per connection, so it can hold what that connection's transport proved.
    pub async fn serve_authenticated<S>(
        &self,
        stream: S,
        transport: TransportIdentity,
        authenticator: Option<Arc<dyn ConnectAuthenticator>>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        let max = self.shared.limits.max_connections;
        let live = self.shared.live.fetch_add(1, Ordering::Relaxed);
        if max == 0 || live < max {
            connection::run(self.shared.clone(), stream, transport, authenticator).await;
        } else {
            tracing::warn!(max, "connection refused: too many connections");
        }
        self.shared.live.fetch_sub(1, Ordering::Relaxed);
    }

    /// The broker's counters.
    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Closes every client connection with Server shutting down (MQTT 5 clients get a
    /// DISCONNECT saying so) and waits up to `grace` for the connection tasks to finish (and
    /// commit what their sessions leave to the store). Stop the listeners first.
    pub async fn shutdown(&self, grace: Duration) {
        let asked = self.shared.core().close_all();
        tracing::info!(
            connections = asked,
            "mqtt: closing client connections (server shutting down)"
        );
        let deadline = tokio::time::Instant::now() + grace;
        while self.live_connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let left = self.live_connections();
        if left > 0 {
            tracing::warn!(
                connections = left,
                "mqtt: connections still open after {grace:?}"
            );
        }
    }

    /// The number of client connections being served.
    pub fn live_connections(&self) -> usize {
        self.shared.live.load(Ordering::Relaxed)
    }

    /// Runs `f` on the core under its lock (inspection in tests and metrics).
    pub fn with_core<T>(&self, f: impl FnOnce(&BrokerCore) -> T) -> T {
        f(&self.shared.core())
    }
}
