//! The broker's conformance suite: a real broker on 127.0.0.1, driven packet by packet over TCP
//! with the crate's own codec, in MQTT 3.1.1 and 5.0.

mod acl;
mod client;
mod core;
mod flows;
mod limits;
mod pipelining;
mod read_ahead;
mod split;
mod v5;
