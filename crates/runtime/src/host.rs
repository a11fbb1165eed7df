//! The services the node gives a module (the WIT `host` interface): outputs and requests checked
//! against the module's manifest and handed to the embedder, logging, time, randomness, sealed
//! state and the module's claims. Each instance has its own `HostState`; modules share nothing.

use std::sync::{Arc, Mutex};

use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::bindings::teemesh::module::host::Host;
use crate::bindings::teemesh::module::types::{self, Level};
use crate::limits::Limiter;
use crate::ports::{EventSink, HostClock, Manifest, PortKind, RequestRouter};
use crate::sealed::SealedStore;
use crate::wasi::WasiState;

/// Most random bytes per `random-bytes` call (the WIT contract).
pub const MAX_RANDOM_BYTES: u32 = 65_536;
/// Longest log message kept; longer ones are cut (on a character boundary).
pub const MAX_LOG_LEN: usize = 4096;

/// What a module's host calls need; the `T` of its `Store`.
pub(crate) struct HostState {
    pub(crate) module: Arc<str>,
    /// Known once `describe` has returned; until then outputs and requests are refused.
    pub(crate) manifest: Option<Arc<Manifest>>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) router: Arc<dyn RequestRouter>,
    pub(crate) clock: Arc<dyn HostClock>,
    pub(crate) claims: types::ModuleClaims,
    /// `None` when the node has no sealed-state directory.
    pub(crate) state: Option<Arc<Mutex<SealedStore>>>,
    pub(crate) limiter: Limiter,
    pub(crate) wasi: WasiState,
    pub(crate) log_lines: u64,
}

impl HostState {
    fn check_port(&self, kind: PortKind, name: &str) -> Result<(), String> {
        let Some(manifest) = &self.manifest else {
            return Err(format!(
                "no {kind} may be used before describe has returned"
            ));
        };
        if manifest.declares(kind, name) {
            Ok(())
        } else {
            tracing::warn!(module = &*self.module, kind = %kind, name, "undeclared port used");
            Err(format!(
                "{kind} {name:?} is not declared in this module's manifest (declared: {})",
                manifest.list(kind)
            ))
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut SealedStore) -> R) -> Option<R> {
        let state = self.state.as_ref()?;
        let mut store = state.lock().unwrap_or_else(|e| e.into_inner());
        Some(f(&mut store))
    }
}

impl types::Host for HostState {}

impl Host for HostState {
    fn emit_output(&mut self, output: String, data: Vec<u8>) -> Result<(), String> {
        self.check_port(PortKind::Output, &output)?;
        self.sink.emit(&self.module, &output, &data)
    }

    fn send_request(&mut self, request: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        self.check_port(PortKind::Request, &request)?;
        self.router.route(&self.module, &request, &data)
    }

    fn log(&mut self, level: Level, message: String) {
        self.log_lines = self.log_lines.saturating_add(1);
        let text = sanitize_log(&message);
        let module = &*self.module;
        match level {
            Level::Debug => tracing::debug!(module, "{text}"),
            Level::Info => tracing::info!(module, "{text}"),
            Level::Warn => tracing::warn!(module, "{text}"),
            Level::Error => tracing::error!(module, "{text}"),
        }
    }

    fn now_nanos(&mut self) -> u64 {
        self.clock.now_nanos()
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!(
                "random-bytes asked for {len} bytes, at most {MAX_RANDOM_BYTES} allowed"
            );
        }
        let mut bytes = vec![0u8; len as usize];
        getrandom::fill(&mut bytes)
            .map_err(|e| wasmtime::format_err!("the node's random generator failed: {e}"))?;
        Ok(bytes)
    }

    fn state_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.with_state(|s| s.get(&key).map(<[u8]>::to_vec))
            .flatten()
    }

    fn state_set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        self.with_state(|s| s.set(&key, &value))
            .unwrap_or_else(|| Err("this node keeps no sealed state (no state directory)".into()))
    }

    fn state_delete(&mut self, key: String) -> wasmtime::Result<()> {
        match self.with_state(|s| s.delete(&key)) {
            Some(Err(e)) => wasmtime::bail!("state-delete failed: {e}"),
            Some(Ok(())) | None => Ok(()),
        }
    }

    fn claims(&mut self) -> types::ModuleClaims {
        self.claims.clone()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.wasi.table,
        }
    }
}

/// One printable line of at most [`MAX_LOG_LEN`] bytes: a guest cannot forge log lines or send
/// terminal escapes through the node's log.
fn sanitize_log(message: &str) -> String {
    let mut end = message.len().min(MAX_LOG_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let mut text: String = message[..end]
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if end < message.len() {
        text.push_str(" [cut]");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_are_one_printable_line() {
        assert_eq!(sanitize_log("a\nb\x1b[31m"), "a b [31m");
        let long = "é".repeat(MAX_LOG_LEN);
        let cut = sanitize_log(&long);
        assert!(cut.len() <= MAX_LOG_LEN + 6 && cut.ends_with("[cut]"));
    }
}
