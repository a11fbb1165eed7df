//! Rust bindings for the WIT world `teemesh:module/enclave-module` (`wit/module.wit`), generated
//! by wasmtime's `bindgen!`. Internal: the rest of the crate exposes its own types.

// The generated code has undocumented public items and exports that are reachable only through
// this private module; those lints are about our API, not about generated glue.
#![allow(missing_docs, unreachable_pub)]

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "teemesh:module/enclave-module",
    imports: {
        // Asking for more than 65536 random bytes is a guest bug: trap.
        "teemesh:module/host.random-bytes": trappable,
        // `state-delete` has no error result: a failed write traps rather than pass silently.
        "teemesh:module/host.state-delete": trappable,
    },
});
