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

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Connections at once per IP address.
    per_address: Mutex<HashMap<IpAddr, usize>>,
    /// When a refused connection was last logged as a warning (at most one per
    /// [`REFUSAL_WARNING_EVERY`], so a flood does not flood the log).
    refusal_warned: Mutex<Option<Instant>>,
}

/// The least time between two warnings of refused connections.
const REFUSAL_WARNING_EVERY: Duration = Duration::from_secs(10);

/// A connection counted against the broker's connection limits (in all and per address) until
/// it is dropped. Listeners take one as soon as they accept, before any TLS handshake.
#[derive(Debug)]
pub struct Admission {
    shared: Arc<Shared>,
    address: Option<IpAddr>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared.live.fetch_sub(1, Ordering::Relaxed);
        if let Some(address) = self.address {
            let mut counts = self.shared.per_address();
            if let Some(count) = counts.get_mut(&address) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&address);
                }
            }
        }
    }
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

    fn per_address(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_address.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts and logs a refused connection: a warning at most every
    /// [`REFUSAL_WARNING_EVERY`], the others at debug level.
    fn refused(&self, remote: Option<SocketAddr>, why: std::fmt::Arguments<'_>) {
        self.counters.connections_refused.inc();
        let remote = remote.map(|a| a.to_string()).unwrap_or_default();
        let mut warned = self
            .refusal_warned
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if warned.is_none_or(|at| now.duration_since(at) >= REFUSAL_WARNING_EVERY) {
            *warned = Some(now);
            tracing::warn!(
                %remote,
                "connection refused: {why} (more refusals in the next {} s are logged at debug level)",
                REFUSAL_WARNING_EVERY.as_secs()
            );
        } else {
            tracing::debug!(%remote, "connection refused: {why}");
        }
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
        if limits.max_connect_size < 64 {
            return Err(BrokerError::Limits("max_connect_size must be at least 64"));
        }
        if limits.max_outbound_bytes < 64 * 1024 {
            return Err(BrokerError::Limits(
                "max_outbound_bytes must be at least 65536",
            ));
        }
        if limits.stall_timeout_ms < 10 {
            return Err(BrokerError::Limits("stall_timeout_ms must be at least 10"));
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
            per_address: Mutex::new(HashMap::new()),
            refusal_warned: Mutex::new(None),
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
        if let Some(admission) = self.admit(transport.remote_addr) {
            self.serve_admitted(admission, stream, transport, authenticator)
                .await;
        }
    }

    /// Counts a new connection from `remote` against `limits.max_connections` and
    /// `limits.max_connections_per_address`: `None` (counted in `connections_refused`, logged)
    /// when it is one too many; close it then. A listener calls it as soon as it accepts, so
    /// TLS handshakes count too, and serves the connection with [`Self::serve_admitted`].
    pub fn admit(&self, remote: Option<SocketAddr>) -> Option<Admission> {
        let limits = &self.shared.limits;
        let live = self.shared.live.fetch_add(1, Ordering::Relaxed);
        // Dropped on refusal, which gives the count back.
        let mut admission = Admission {
            shared: self.shared.clone(),
            address: None,
        };
        if limits.max_connections != 0 && live >= limits.max_connections {
            self.shared.refused(
                remote,
                format_args!(
                    "{live} connections already (limits.max_connections = {})",
                    limits.max_connections
                ),
            );
            return None;
        }
        if let Some(address) = remote.map(|a| a.ip().to_canonical()) {
            let mut counts = self.shared.per_address();
            let count = counts.entry(address).or_insert(0);
            let max = limits.max_connections_per_address;
            if max != 0 && *count >= max {
                let already = *count;
                drop(counts);
                self.shared.refused(
                    remote,
                    format_args!(
                        "{already} connections from {address} already (limits.max_connections_per_address = {max})"
                    ),
                );
                return None;
            }
            *count += 1;
            admission.address = Some(address);
        }
        Some(admission)
    }

    /// Serves a connection that [`Self::admit`] counted, as [`Self::serve_authenticated`]
    /// does; the count is given back when it ends.
    pub async fn serve_admitted<S>(
        &self,
        admission: Admission,
        stream: S,
        transport: TransportIdentity,
        authenticator: Option<Arc<dyn ConnectAuthenticator>>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin,
    {
        connection::run(self.shared.clone(), stream, transport, authenticator).await;
        drop(admission);
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
