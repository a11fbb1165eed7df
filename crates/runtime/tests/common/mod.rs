//! Shared set-up for the runtime tests: a simulated node identity and runtimes over it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::path::Path;
use std::sync::Arc;

use atls::NodeIdentity;
use attest::{Measurement384, UnixTime};
use platform::Simulated;
use runtime::{Limits, NodeSecret, Runtime, RuntimeConfig};

/// The simulated node's platform measurement.
pub const NODE_MEASUREMENT: Measurement384 = Measurement384([0x42; 48]);

/// A simulated node identity (no hardware protection; verifiers need `allow_simulated`).
pub fn identity() -> Arc<NodeIdentity> {
    let attester = Arc::new(Simulated::with_measurement(NODE_MEASUREMENT));
    Arc::new(NodeIdentity::generate(attester, "test-node", UnixTime::now()).unwrap())
}

/// A runtime with default limits and no sealed state.
pub fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig::new(identity())).unwrap()
}

/// A runtime with these limits.
pub fn runtime_with(limits: Limits) -> Runtime {
    Runtime::new(RuntimeConfig::new(identity()).with_limits(limits)).unwrap()
}

/// A runtime keeping sealed state in `dir` under a fixed node secret.
pub fn runtime_with_state(dir: &Path, secret: [u8; 32]) -> Runtime {
    let config =
        RuntimeConfig::new(identity()).with_sealed_state(dir, NodeSecret::from_bytes(secret));
    Runtime::new(config).unwrap()
}
