//! A loaded module: measured (SHA-256 of its exact bytes), checked against the world, instantiated
//! in its own store under limits, its manifest known. Calls check port names against the
//! manifest, arm fuel and deadline, and turn traps and limits into [`RuntimeError`] variants.

use std::sync::{Arc, Mutex};

use atls::{ModuleClaims, SignedModuleClaims};
use attest::{Digest256, Measurement256, PlatformKind, UnixTime};
use wasmtime::component::{Component, Instance, InstancePre, ResourceTable};
use wasmtime::{Store, Trap};

use crate::bindings::exports::teemesh::module::guest::Guest;
use crate::bindings::teemesh::module::types;
use crate::bindings::{EnclaveModule, EnclaveModuleIndices};
use crate::engine::Shared;
use crate::error::RuntimeError;
use crate::host::HostState;
use crate::limits::{Limiter, Limits};
use crate::ports::{EventSink, Manifest, PortKind, RequestRouter};
use crate::sealed::SealedStore;
use crate::wasi::{WasiState, deny_all_context};

/// Longest module name, in bytes.
pub const MAX_MODULE_NAME_LEN: usize = 128;

/// Epoch delta that never expires (the epoch advances every few milliseconds; this is
/// centuries away and cannot overflow when added to it).
const NO_DEADLINE: u64 = 1 << 62;

/// A module instance and everything known about it.
pub struct LoadedModule {
    name: Arc<str>,
    measurement: Measurement256,
    manifest: Arc<Manifest>,
    signed_claims: SignedModuleClaims,
    shared: Arc<Shared>,
    pre: Pre,
    sink: Arc<dyn EventSink>,
    router: Arc<dyn RequestRouter>,
    state: Option<Arc<Mutex<SealedStore>>>,
    live: Live,
    /// Set when a call trapped: the instance is not entered again until [`Self::restart`].
    poisoned: Option<String>,
    /// Log lines of instances replaced by [`Self::restart`].
    earlier_log_lines: u64,
}

/// The component linked and its exports located, ready to instantiate.
struct Pre {
    instance: InstancePre<HostState>,
    exports: EnclaveModuleIndices,
}

struct Live {
    store: Store<HostState>,
    bindings: EnclaveModule,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("name", &self.name)
            .field("measurement", &self.measurement)
            .field("manifest", &self.manifest)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl LoadedModule {
    pub(crate) fn load(
        shared: Arc<Shared>,
        name: &str,
        bytes: &[u8],
        sink: Arc<dyn EventSink>,
        router: Arc<dyn RequestRouter>,
        channel_key: Option<[u8; 32]>,
    ) -> Result<Self, RuntimeError> {
        check_module_name(name)?;
        check_header(bytes)?;
        let measurement = Measurement256(Digest256::of(bytes).0);
        let component =
            Component::from_binary(&shared.engine, bytes).map_err(|e| RuntimeError::Invalid {
                detail: error_chain(&e),
            })?;
        let instance_pre = shared.linker.instantiate_pre(&component).map_err(|e| {
            RuntimeError::DoesNotConform {
                detail: error_chain(&e),
            }
        })?;
        let exports =
            EnclaveModuleIndices::new(&instance_pre).map_err(|e| RuntimeError::DoesNotConform {
                detail: error_chain(&e),
            })?;
        let pre = Pre {
            instance: instance_pre,
            exports,
        };
        let state = shared.sealed_store(measurement)?;
        let identity = &shared.identity;
        let mut claims = ModuleClaims::for_module(identity, name, measurement, UnixTime::now());
        if let Some(key) = channel_key {
            claims = claims.with_channel_key(key);
        }
        let signed_claims = claims.sign(identity)?;
        let name: Arc<str> = Arc::from(name);
        let (live, manifest) = instantiate(
            &shared,
            &pre,
            &name,
            measurement,
            &sink,
            &router,
            state.as_ref(),
        )?;
        tracing::info!(
            module = &*name,
            measurement = %measurement,
            entries = %manifest.list(PortKind::Entry),
            "module loaded"
        );
        Ok(Self {
            name,
            measurement,
            manifest,
            signed_claims,
            shared,
            pre,
            sink,
            router,
            state,
            live,
            poisoned: None,
            earlier_log_lines: 0,
        })
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SHA-256 of the module's exact bytes.
    pub fn measurement(&self) -> Measurement256 {
        self.measurement
    }

    /// The ports the module declared.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The module's claims, signed by the node's attested key when it was loaded.
    pub fn signed_claims(&self) -> &SignedModuleClaims {
        &self.signed_claims
    }

    /// How many lines the module has logged through the `log` import.
    pub fn log_count(&self) -> u64 {
        self.earlier_log_lines + self.live.store.data().log_lines
    }

    /// Why the instance is poisoned, if an earlier call trapped.
    pub fn poisoned(&self) -> Option<&str> {
        self.poisoned.as_deref()
    }

    /// Calls entry `entry` with `arg`; returns the guest's result bytes.
    pub fn call_entry(&mut self, entry: &str, arg: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        self.require_port(PortKind::Entry, entry)?;
        self.call("call-entry", |guest, store| {
            guest.call_call_entry(store, entry, &arg.to_vec())
        })
    }

    /// Delivers an event on input `input`.
    pub fn deliver_input(&mut self, input: &str, data: &[u8]) -> Result<(), RuntimeError> {
        self.require_port(PortKind::Input, input)?;
        self.call("on-input", |guest, store| {
            guest.call_on_input(store, input, &data.to_vec())
        })
    }

    /// Hands a request to handler `handler`; returns the guest's response.
    pub fn handle_request(&mut self, handler: &str, data: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        self.require_port(PortKind::Handler, handler)?;
        self.call("on-request", |guest, store| {
            guest.call_on_request(store, handler, &data.to_vec())
        })
    }

    /// A copy of the module's sealed state (`None` when the runtime seals nothing), to hand over
    /// to another version of the module ([`Self::take_over_state`]).
    pub fn sealed_entries(&self) -> Option<std::collections::BTreeMap<String, Vec<u8>>> {
        self.state.as_ref().map(|store| {
            store
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entries()
                .clone()
        })
    }

    /// Makes `entries` this module's whole sealed state (handed over from the version it
    /// replaces, or from the same module on another node), sealed under this module's own key,
    /// and restarts the instance so no value read before the hand-over lingers in its memory.
    pub fn take_over_state(
        &mut self,
        entries: std::collections::BTreeMap<String, Vec<u8>>,
    ) -> Result<(), RuntimeError> {
        let store = self.state.as_ref().ok_or_else(|| {
            RuntimeError::State("this runtime seals no state, so none can be handed over".into())
        })?;
        // Sealed state belongs to a measurement: another module running the same code on this
        // node shares it, and a hand-over would overwrite that module's state. This module holds
        // the store twice (here and in its live instance); anyone else makes it more.
        if Arc::strong_count(store) > 2 {
            return Err(RuntimeError::State(format!(
                "another module on this node runs the same code as {} and shares its sealed state; a hand-over would overwrite it",
                self.name
            )));
        }
        store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(entries)
            .map_err(RuntimeError::State)?;
        self.restart()
    }

    /// Replaces the instance with a fresh one (after a trap, or to reset guest memory). Sealed
    /// state is kept; the manifest must not change.
    pub fn restart(&mut self) -> Result<(), RuntimeError> {
        let (live, manifest) = instantiate(
            &self.shared,
            &self.pre,
            &self.name,
            self.measurement,
            &self.sink,
            &self.router,
            self.state.as_ref(),
        )?;
        if *manifest != *self.manifest {
            return Err(RuntimeError::InvalidManifest {
                module: self.name.to_string(),
                detail: "describe returned another manifest after a restart".to_owned(),
            });
        }
        self.earlier_log_lines += self.live.store.data().log_lines;
        self.live = live;
        self.poisoned = None;
        Ok(())
    }

    fn require_port(&self, kind: PortKind, name: &str) -> Result<(), RuntimeError> {
        if self.manifest.declares(kind, name) {
            Ok(())
        } else {
            Err(RuntimeError::UnknownPort {
                module: self.name.to_string(),
                kind,
                name: name.to_owned(),
                declared: self.manifest.list(kind),
            })
        }
    }

    fn call<R>(
        &mut self,
        function: &str,
        f: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, RuntimeError> {
        if let Some(reason) = &self.poisoned {
            return Err(RuntimeError::Poisoned {
                module: self.name.to_string(),
                reason: reason.clone(),
            });
        }
        let Live { store, bindings } = &mut self.live;
        arm(store, &self.shared.limits);
        let outcome = f(bindings.teemesh_module_guest(), store);
        let refused_growth = store.data_mut().limiter.take_refused_growth();
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(RuntimeError::Guest {
                module: self.name.to_string(),
                function: function.to_owned(),
                message,
            }),
            Err(e) => {
                let err = classify(
                    &e,
                    &self.name,
                    function,
                    refused_growth,
                    &self.shared.limits,
                );
                // The caller gets the error; the log only records that the instance is gone.
                tracing::debug!(module = &*self.name, "instance poisoned: {err}");
                self.poisoned = Some(err.to_string());
                Err(err)
            }
        }
    }
}

/// A new store and instance of the module, and the manifest its `describe` returns.
fn instantiate(
    shared: &Shared,
    pre: &Pre,
    name: &Arc<str>,
    measurement: Measurement256,
    sink: &Arc<dyn EventSink>,
    router: &Arc<dyn RequestRouter>,
    state: Option<&Arc<Mutex<SealedStore>>>,
) -> Result<(Live, Arc<Manifest>), RuntimeError> {
    let platform = shared.identity.platform();
    let host = HostState {
        module: name.clone(),
        manifest: None,
        sink: sink.clone(),
        router: router.clone(),
        clock: shared.clock.clone(),
        claims: types::ModuleClaims {
            name: name.to_string(),
            measurement: measurement.to_hex(),
            platform: platform.as_str().to_owned(),
            simulated: platform == PlatformKind::Sim,
        },
        state: state.cloned(),
        limiter: Limiter::new(&shared.limits),
        wasi: WasiState {
            ctx: deny_all_context(name),
            table: ResourceTable::new(),
        },
        log_lines: 0,
    };
    let mut store = Store::new(&shared.engine, host);
    store.limiter(|host| &mut host.limiter);
    store.epoch_deadline_trap();
    let limits = &shared.limits;
    let fail = |store: &mut Store<HostState>, e: wasmtime::Error, function: &str| {
        let refused = store.data_mut().limiter.take_refused_growth();
        classify(&e, name, function, refused, limits)
    };
    arm(&mut store, limits);
    let instance = match pre.instance.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => return Err(fail(&mut store, e, "instantiate")),
    };
    // The exports' types are checked here, on the instance.
    let bindings = match pre.exports.load(&mut store, &instance) {
        Ok(b) => b,
        Err(e) => {
            let detail = match mistyped_export(&mut store, &instance) {
                Some(name) => format!(
                    "export {name} of {GUEST_INTERFACE} has another type than wit/module.wit declares: {}",
                    error_chain(&e)
                ),
                None => error_chain(&e),
            };
            return Err(RuntimeError::DoesNotConform { detail });
        }
    };
    arm(&mut store, limits);
    let manifest = match bindings.teemesh_module_guest().call_describe(&mut store) {
        Ok(m) => Manifest {
            inputs: m.inputs,
            outputs: m.outputs,
            requests: m.requests,
            handlers: m.handlers,
            entries: m.entries,
        },
        Err(e) => return Err(fail(&mut store, e, "describe")),
    };
    manifest
        .validate()
        .map_err(|detail| RuntimeError::InvalidManifest {
            module: name.to_string(),
            detail,
        })?;
    let manifest = Arc::new(manifest);
    store.data_mut().manifest = Some(manifest.clone());
    Ok((Live { store, bindings }, manifest))
}

/// The guest interface every module exports.
const GUEST_INTERFACE: &str = "teemesh:module/guest@0.1.0";

/// The first guest export whose type differs from the world's (the generated loader's error
/// does not name it).
fn mistyped_export(store: &mut Store<HostState>, instance: &Instance) -> Option<&'static str> {
    let guest = instance.get_export_index(&mut *store, None, GUEST_INTERFACE)?;
    let mut func = |name: &str| {
        let index = instance.get_export_index(&mut *store, Some(&guest), name)?;
        instance.get_func(&mut *store, index)
    };
    let (describe, on_input, on_request, call_entry) = (
        func("describe")?,
        func("on-input")?,
        func("on-request")?,
        func("call-entry")?,
    );
    type Payload<'a> = (&'a str, &'a [u8]);
    if describe.typed::<(), (types::Manifest,)>(&*store).is_err() {
        Some("describe")
    } else if on_input
        .typed::<Payload<'_>, (Result<(), String>,)>(&*store)
        .is_err()
    {
        Some("on-input")
    } else if on_request
        .typed::<Payload<'_>, (Result<Vec<u8>, String>,)>(&*store)
        .is_err()
    {
        Some("on-request")
    } else if call_entry
        .typed::<Payload<'_>, (Result<Vec<u8>, String>,)>(&*store)
        .is_err()
    {
        Some("call-entry")
    } else {
        None
    }
}

/// Gives the next call its fuel and deadline and forgets earlier refused growths.
fn arm(store: &mut Store<HostState>, limits: &Limits) {
    // Fuel is on in the engine exactly when there is a budget, so this does not fail.
    if let Some(fuel) = limits.fuel_per_call {
        let _ = store.set_fuel(fuel);
    }
    store.set_epoch_deadline(limits.deadline_ticks().unwrap_or(NO_DEADLINE));
    store.data_mut().limiter.take_refused_growth();
}

/// Which limit or trap ended a call.
fn classify(
    e: &wasmtime::Error,
    module: &str,
    function: &str,
    refused_growth: bool,
    limits: &Limits,
) -> RuntimeError {
    let module = module.to_owned();
    let function = function.to_owned();
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RuntimeError::OutOfFuel {
            module,
            function,
            fuel: limits.fuel_per_call.unwrap_or(u64::MAX),
        },
        Some(Trap::Interrupt) => RuntimeError::Interrupted {
            module,
            function,
            deadline: limits.deadline_per_call.unwrap_or_default(),
        },
        _ if refused_growth => RuntimeError::MemoryLimit {
            module,
            function,
            limit_bytes: limits.memory_bytes,
        },
        Some(trap) => RuntimeError::Trap {
            module,
            function,
            reason: trap_reason(trap, e),
        },
        // A host function refused (e.g. `random-bytes` over its cap): its message says why.
        None => RuntimeError::Trap {
            module,
            function,
            reason: error_chain(e),
        },
    }
}

/// The trap first, then where it happened (the backtrace wasmtime attached), on one line.
fn trap_reason(trap: &Trap, e: &wasmtime::Error) -> String {
    let trap_text = trap.to_string();
    let context: Vec<String> = e
        .chain()
        .map(|cause| cause.to_string())
        .filter(|text| !text.contains(&trap_text))
        .map(|text| {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            text.strip_prefix("error while executing at ")
                .map(str::to_owned)
                .unwrap_or(text)
        })
        .collect();
    if context.is_empty() {
        trap_text
    } else {
        format!("{trap_text} ({})", context.join("; "))
    }
}

/// The error and its causes on one line, without repeats.
fn error_chain(e: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn check_module_name(name: &str) -> Result<(), RuntimeError> {
    if name.is_empty()
        || name.len() > MAX_MODULE_NAME_LEN
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(RuntimeError::Setup(format!(
            "module name {:?} must have 1 to {MAX_MODULE_NAME_LEN} bytes, no whitespace or control characters",
            name.escape_debug().to_string()
        )));
    }
    Ok(())
}

/// Tells garbage and core modules from components by the 8-byte preamble: `\0asm`, a 16-bit
/// version, a 16-bit layer (0 for core modules, 1 for components).
fn check_header(bytes: &[u8]) -> Result<(), RuntimeError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        let detail = if bytes.trim_ascii_start().starts_with(b"(") {
            "this looks like WebAssembly text (WAT); compile it with `wasm-tools parse`".to_owned()
        } else if bytes.len() < 8 {
            format!(
                "{} bytes is too short for a WebAssembly preamble",
                bytes.len()
            )
        } else {
            format!(
                "expected the magic bytes 00 61 73 6d, found {}",
                hex::encode(&bytes[..4])
            )
        };
        return Err(RuntimeError::NotWasm { detail });
    }
    match [bytes[6], bytes[7]] {
        [0, 0] => Err(RuntimeError::NotAComponent),
        [1, 0] => Ok(()),
        layer => Err(RuntimeError::Invalid {
            detail: format!("unknown WebAssembly layer {}", u16::from_le_bytes(layer)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preamble_tells_garbage_core_and_component_apart() {
        assert!(matches!(
            check_header(b"hello world"),
            Err(RuntimeError::NotWasm { .. })
        ));
        assert!(matches!(
            check_header(b"  (component)"),
            Err(RuntimeError::NotWasm { detail }) if detail.contains("WAT")
        ));
        assert!(matches!(
            check_header(b"\0asm\x01\0\0\0"),
            Err(RuntimeError::NotAComponent)
        ));
        assert!(check_header(b"\0asm\x0d\0\x01\0").is_ok());
    }
}
