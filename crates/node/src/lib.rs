//! The teemesh node daemon: the trusted process on each host. It holds the node's attested
//! identity, hosts enclave modules on the runtime (each on its own worker, persisted in a data
//! directory and restored at start, with sealed state bound to node and measurement), serves
//! the admin API over attested TLS to operators holding an authorised admin key, and exposes
//! Prometheus metrics on a local port.
//!
//! - [`config`]: the TOML configuration. [`start`] / [`RunningNode`]: start and stop.
//! - [`mqtt`]: the MQTT broker a node runs when its configuration has `[mqtt]` (also used by
//!   `teemesh mqtt broker`), admitting modules by their node-signed claims.
//! - [`AdminClient`] with an [`AdminKey`]: the operator's side of the admin API
//!   (protocol in the `node-protocol` crate).
#![forbid(unsafe_code)]

mod admin;
mod admin_key;
mod bridge;
mod channels;
mod client;
pub mod config;
mod daemon;
mod error;
mod forward;
mod metrics;
mod modules;
pub mod mqtt;
pub mod store;

pub use admin_key::AdminKey;
pub use client::{AdminClient, NodeHello};
pub use config::{AdminAuth, ModuleLimits, NodeConfig, format_key_hash, parse_key_hash};
pub use daemon::{RunningNode, start};
pub use error::NodeError;
pub use metrics::Metrics;
pub use node_protocol as protocol;
