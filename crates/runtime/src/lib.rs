//! The teemesh node runtime: runs application modules — WebAssembly components of the world
//! `teemesh:module/enclave-module` (`wit/module.wit`) — on wasmtime, measured, isolated and
//! limited, with the node's services behind the WIT `host` interface. The only crate that
//! imports wasmtime; everyone else sees the small types re-exported here.
//!
//! - **Measured**: a module's measurement is SHA-256 of its exact bytes; the node signs
//!   [`atls::ModuleClaims`] naming it with its attested key ([`LoadedModule::signed_claims`]),
//!   and [`atls::verify_module_claims`] checks node evidence and module measurement in one step.
//! - **Isolated**: one wasmtime `Store` per instance; modules share nothing, talk only through
//!   the embedder ([`EventSink`], [`RequestRouter`]), and see a WASI that grants nothing.
//! - **Limited**: fuel and a wall-clock deadline per call, capped memory and tables
//!   ([`Limits`]); a trapping, looping or memory-hungry module fails its call with a distinct
//!   [`RuntimeError`] and the host carries on.
//! - **Sealed state**: per-module key-value state encrypted under (node secret, measurement)
//!   ([`sealed`]).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use runtime::{NodeSecret, Runtime, RuntimeConfig};
//!
//! let attester = Arc::new(platform::Simulated::for_this_executable()?);
//! let identity = Arc::new(atls::NodeIdentity::generate(attester, "node", attest::UnixTime::now())?);
//! let secret = NodeSecret::load_or_create("state/node-secret".as_ref())?;
//! let runtime = Runtime::new(RuntimeConfig::new(identity).with_sealed_state("state", secret))?;
//! let mut module = runtime.load("counter", &std::fs::read("counter.wasm")?)?;
//! println!("{} {:?}", module.measurement(), module.manifest());
//! let result = module.call_entry("increment", b"{}")?;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod bindings;
mod engine;
mod error;
mod host;
mod limits;
mod module;
mod ports;
pub mod sealed;
mod wasi;

pub use engine::{Runtime, RuntimeConfig, SealedStateConfig};
pub use error::RuntimeError;
pub use host::{MAX_LOG_LEN, MAX_RANDOM_BYTES};
pub use limits::{
    DEFAULT_DEADLINE, DEFAULT_FUEL_PER_CALL, DEFAULT_MEMORY_BYTES, DEFAULT_MEMORY_MIB,
    LimitOutOfRange, LimitSetting, Limits, MAX_DEADLINE_MS, MAX_FUEL_PER_CALL, MAX_MEMORY_MIB,
    MIN_DEADLINE_MS, MIN_FUEL_PER_CALL, MIN_MEMORY_MIB, memory_bytes_of_mib,
};
pub use module::{LoadedModule, MAX_MODULE_NAME_LEN};
pub use ports::{
    CollectingSink, DiscardSink, EmittedEvent, EventSink, HostClock, MAX_PORT_NAME_LEN,
    MAX_PORTS_PER_KIND, Manifest, PortKind, RequestRouter, SystemClock, Unconnected,
};
pub use sealed::{NodeSecret, SealedStore};
