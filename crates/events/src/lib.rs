//! Event channels between teemesh modules: every event a module emits travels to the module that
//! receives it sealed under its connection's own key, so a forwarding node, proxy or network can
//! drop events but never forge, alter, replay or reorder one without the receiver noticing.
//!
//! The crate is sans-IO. [`EventSender`] and [`EventReceiver`] take payloads and envelopes in
//! and give envelopes and verdicts out; the node moves the bytes. Connection keys reach the nodes
//! only wrapped (HPKE) to the attested key of each module that uses them ([`wrap`]), so the
//! deployer, the deployment state file and every log see ciphertext only.
//!
//! Compared with the published Authentic Execution prototype this fixes, by construction: the
//! all-zero IV (our nonce is the connection id, the direction and a counter), counters that wrap
//! (ours are 64-bit and a sender refuses to go past the last one), and keys in the descriptor
//! (ours are fresh random keys that exist in plaintext only in the deployer's memory and inside
//! the attested nodes).

#![forbid(unsafe_code)]

mod channel;
mod envelope;
mod error;
mod key;
pub mod wrap;

pub use channel::{Delivered, EventReceiver, EventSender, MAX_PENDING_KEYS, Rejection};
pub use envelope::{ENVELOPE_HEADER_LEN, Envelope, EnvelopeHeader, MAX_EVENT_LEN, TAG_LEN};
pub use error::EventError;
pub use key::{ConnectionId, ConnectionKey, Direction, Protection};
