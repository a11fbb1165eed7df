//! Why a module could not be loaded or a call into it failed: one variant per cause, each with a
//! one-line message that names the module, the function and what was expected.

use std::time::Duration;

use crate::ports::PortKind;

/// Every way loading or calling a module can fail.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly binary: {detail}")]
    NotWasm {
        /// What was found instead.
        detail: String,
    },
    /// The bytes are a core WebAssembly module, not a component.
    #[error(
        "this is a core WebAssembly module; teemesh runs components of the world \
         teemesh:module/enclave-module (wit/module.wit). Turn it into one with \
         `wasm-tools component new MODULE.wasm -o COMPONENT.wasm` (add \
         `--adapt wasi_snapshot_preview1=ADAPTER.wasm` for wasm32-wasip1 builds)"
    )]
    NotAComponent,
    /// The component is malformed or fails to compile.
    #[error("invalid WebAssembly component: {detail}")]
    Invalid {
        /// The validator's or compiler's reason.
        detail: String,
    },
    /// The component does not implement the world: an export is missing or has the wrong type,
    /// or it imports something the node does not provide.
    #[error("the component does not conform to teemesh:module/enclave-module: {detail}")]
    DoesNotConform {
        /// What is missing or mismatched.
        detail: String,
    },
    /// The manifest returned by `describe` is unusable.
    #[error("module {module}: invalid manifest from describe: {detail}")]
    InvalidManifest {
        /// The module.
        module: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The guest trapped (unreachable, out-of-bounds access, stack overflow, a host call it
    /// misused).
    #[error("module {module}: {function} trapped: {reason}")]
    Trap {
        /// The module.
        module: String,
        /// The export that was called.
        function: String,
        /// The trap's reason.
        reason: String,
    },
    /// The call used up its fuel (instruction budget).
    #[error("module {module}: {function} ran out of fuel ({fuel} units per call)")]
    OutOfFuel {
        /// The module.
        module: String,
        /// The export that was called.
        function: String,
        /// The budget.
        fuel: u64,
    },
    /// The call ran past its wall-clock deadline (epoch interruption).
    #[error("module {module}: {function} interrupted after its {deadline:?} deadline")]
    Interrupted {
        /// The module.
        module: String,
        /// The export that was called.
        function: String,
        /// The deadline.
        deadline: Duration,
    },
    /// The guest tried to grow its memory (or tables) past the instance's cap and failed.
    #[error(
        "module {module}: {function} failed after exceeding the memory limit of {limit_bytes} bytes"
    )]
    MemoryLimit {
        /// The module.
        module: String,
        /// The export that was called (or `instantiate`).
        function: String,
        /// The cap.
        limit_bytes: usize,
    },
    /// A port name that the module's manifest does not declare.
    #[error("module {module} declares no {kind} named {name:?} (declared: {declared})")]
    UnknownPort {
        /// The module.
        module: String,
        /// Input, handler or entry.
        kind: PortKind,
        /// The name asked for.
        name: String,
        /// The names it declares, comma-separated.
        declared: String,
    },
    /// The guest returned `Err(message)`.
    #[error("module {module}: {function} returned an error: {message}")]
    Guest {
        /// The module.
        module: String,
        /// The export that was called.
        function: String,
        /// The guest's message.
        message: String,
    },
    /// An earlier call trapped, so the instance may be inconsistent and cannot be entered again.
    #[error("module {module} trapped earlier ({reason}); restart it to get a fresh instance")]
    Poisoned {
        /// The module.
        module: String,
        /// Why it was poisoned.
        reason: String,
    },
    /// Sealed state could not be opened, unsealed or written.
    #[error("sealed state: {0}")]
    State(String),
    /// The node could not sign the module's claims.
    #[error("cannot sign module claims: {0}")]
    Claims(#[from] atls::AtlsError),
    /// The engine could not be configured or started.
    #[error("runtime setup failed: {0}")]
    Setup(String),
}
