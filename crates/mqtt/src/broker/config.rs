//! The broker's settings: limits (what it announces in CONNACK and enforces), users and ACL
//! rules. Deserialisable so a TOML file can carry them (unknown keys are errors).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::acl::AclConfig;
use super::auth::UserConfig;

/// Everything the broker core needs besides its listeners.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// Limits.
    pub limits: Limits,
    /// Authentication.
    pub auth: AuthConfig,
    /// Authorisation rules (absent: every client may publish and subscribe anywhere).
    pub acl: Option<AclConfig>,
    /// Where retained messages and persistent sessions are kept across restarts (absent:
    /// in memory only).
    pub persistence: Option<PersistenceConfig>,
}

/// The persistence store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersistenceConfig {
    /// The redb database file (created if missing; one broker process at a time).
    pub path: PathBuf,
}

/// Username/password authentication.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Whether a client with neither a verified user name nor verified module claims may
    /// connect (an attested TLS client without them included). Unset: no, in this library;
    /// `node::mqtt` (the node's and `teemesh mqtt broker`'s) allows them when every listener is
    /// on a loopback address, as mosquitto 2 does when it listens only locally.
    pub allow_anonymous: Option<bool>,
    /// Known users and their password hashes.
    pub users: Vec<UserConfig>,
}

/// Limits of the broker, per connection unless said otherwise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// The largest packet accepted from a client (announced as Maximum Packet Size).
    pub max_packet_size: u32,
    /// How many QoS 2 messages a client may have unreleased at once (announced as Receive
    /// Maximum; QoS 1 is acknowledged at once).
    pub receive_maximum: u16,
    /// The most QoS 1/2 messages the broker has in flight to one client, below what the
    /// client's own Receive Maximum allows.
    pub max_inflight: u16,
    /// QoS 1/2 messages queued per session beyond those in flight (offline or over quota);
    /// newer ones are dropped and counted.
    pub max_queued_messages: usize,
    /// The most bytes of QoS 0 messages queued to one connection's socket: beyond it, QoS 0
    /// messages to that client are dropped and counted. (Acknowledgements and control replies
    /// are never dropped: the broker stops reading from a client whose replies it has not
    /// written yet; QoS 1/2 messages are bounded by `max_inflight`.)
    pub max_outbound_bytes: usize,
    /// Milliseconds a client may leave what is queued to it unread before it counts as stalled:
    /// until then its publishers are held back (they are not read) while it catches up; once
    /// stalled, they go on and QoS 0 messages to it are dropped and counted, as they are for a
    /// QoS 1/2 quota it leaves unacknowledged that long.
    pub stall_timeout_ms: u64,
    /// The most topic aliases a client may set (announced as Topic Alias Maximum).
    pub topic_alias_maximum: u16,
    /// The longest keep alive granted, in seconds (0: whatever the client asks).
    pub max_keep_alive: u16,
    /// The longest session expiry granted, in seconds (`None`: any, including never).
    pub max_session_expiry: Option<u32>,
    /// The most client connections at once (0: no limit).
    pub max_connections: usize,
    /// The most connections at once from one IP address, counted from the TCP accept, before
    /// any TLS handshake (0: no limit).
    pub max_connections_per_address: usize,
    /// The largest CONNECT accepted, in bytes: what a client not yet authenticated can make
    /// the broker hold (well below `max_packet_size`).
    pub max_connect_size: u32,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout_secs: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_packet_size: 1024 * 1024,
            receive_maximum: 1024,
            max_inflight: 256,
            max_queued_messages: 10_000,
            max_outbound_bytes: 16 * 1024 * 1024,
            stall_timeout_ms: 5_000,
            topic_alias_maximum: 64,
            max_keep_alive: 0,
            max_session_expiry: None,
            max_connections: 0,
            max_connections_per_address: 1024,
            max_connect_size: 64 * 1024,
            connect_timeout_secs: 10,
        }
    }
}

impl Limits {
    /// Messages waiting for a client's QoS 1/2 quota at which its publishers are held back:
    /// half of `max_queued_messages`, at most 1024 (a quarter of it lets them go on).
    pub fn backlog_high(&self) -> usize {
        (self.max_queued_messages / 2).clamp(1, 1024)
    }

    /// `stall_timeout_ms` as a duration.
    pub fn stall_timeout(&self) -> Duration {
        Duration::from_millis(self.stall_timeout_ms)
    }
}
