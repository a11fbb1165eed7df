//! The [`Runtime`]: one wasmtime engine (Cranelift, component model, fuel and epoch
//! interruption), the linker with the node's host interface and a deny-all WASI, the epoch
//! ticker thread, and the node's identity and sealing secret that every loaded module uses.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use atls::NodeIdentity;
use attest::Measurement256;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::bindings::EnclaveModule;
use crate::error::RuntimeError;
use crate::host::HostState;
use crate::limits::Limits;
use crate::module::LoadedModule;
use crate::ports::{DiscardSink, EventSink, HostClock, RequestRouter, SystemClock, Unconnected};
use crate::sealed::{NodeSecret, SealedStore};

/// Where sealed state lives and the secret it is sealed under.
#[derive(Debug)]
pub struct SealedStateConfig {
    /// Directory of the sealed files (created 0700).
    pub dir: PathBuf,
    /// The node's sealing secret.
    pub secret: NodeSecret,
}

/// How to build a [`Runtime`].
pub struct RuntimeConfig {
    /// The node's attested identity: its key signs every module's claims.
    pub identity: Arc<NodeIdentity>,
    /// Per-instance limits.
    pub limits: Limits,
    /// Sealed state; `None` means `state-set` fails and `state-get` finds nothing.
    pub sealed_state: Option<SealedStateConfig>,
    /// Where modules' events go unless [`Runtime::load_with`] says otherwise.
    pub sink: Arc<dyn EventSink>,
    /// Who answers modules' requests unless [`Runtime::load_with`] says otherwise.
    pub router: Arc<dyn RequestRouter>,
    /// What `now-nanos` returns: the system clock unless replaying.
    pub clock: Arc<dyn HostClock>,
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("identity", &self.identity)
            .field("limits", &self.limits)
            .field("sealed_state", &self.sealed_state)
            .finish_non_exhaustive()
    }
}

impl RuntimeConfig {
    /// Default limits, no sealed state, events dropped, requests unconnected.
    pub fn new(identity: Arc<NodeIdentity>) -> Self {
        Self {
            identity,
            limits: Limits::default(),
            sealed_state: None,
            sink: Arc::new(DiscardSink),
            router: Arc::new(Unconnected),
            clock: Arc::new(SystemClock),
        }
    }

    /// With these limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// With sealed state in `dir` under `secret`.
    pub fn with_sealed_state(mut self, dir: impl Into<PathBuf>, secret: NodeSecret) -> Self {
        self.sealed_state = Some(SealedStateConfig {
            dir: dir.into(),
            secret,
        });
        self
    }

    /// With this default event sink.
    pub fn with_sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sink = sink;
        self
    }

    /// With this default request router.
    pub fn with_router(mut self, router: Arc<dyn RequestRouter>) -> Self {
        self.router = router;
        self
    }

    /// With this clock behind `now-nanos` (deterministic replays and tests).
    pub fn with_clock(mut self, clock: Arc<dyn HostClock>) -> Self {
        self.clock = clock;
        self
    }
}

/// Hosts enclave modules: compiles, measures, instantiates them under limits. Cheap to share
/// behind an `Arc`; loading takes `&self`. Loaded modules keep what they need alive, including
/// the epoch ticker, so they may outlive the `Runtime` value.
pub struct Runtime {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("identity", &self.shared.identity)
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

/// What the runtime and all its modules share.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    pub(crate) limits: Limits,
    pub(crate) identity: Arc<NodeIdentity>,
    pub(crate) sink: Arc<dyn EventSink>,
    pub(crate) router: Arc<dyn RequestRouter>,
    pub(crate) clock: Arc<dyn HostClock>,
    sealing: Option<Sealing>,
    _ticker: Option<EpochTicker>,
}

struct Sealing {
    dir: PathBuf,
    secret: NodeSecret,
    /// Open stores by measurement: two instances of one module share one store, so their
    /// writes do not overwrite each other's file.
    open: Mutex<HashMap<Measurement256, Weak<Mutex<SealedStore>>>>,
}

impl Runtime {
    /// Configures the engine and the linker and starts the epoch ticker (when calls have a
    /// deadline).
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let setup = |what: &str, e: wasmtime::Error| RuntimeError::Setup(format!("{what}: {e}"));
        let mut engine_config = Config::new();
        // Without a fuel budget, code is compiled without fuel counting at all: counting costs
        // time in every loop (`teemesh bench runtime` measures how much), and a budget nobody
        // can exhaust protects nothing; the deadline still ends loops.
        engine_config
            .wasm_component_model(true)
            .consume_fuel(config.limits.fuel_per_call.is_some())
            .epoch_interruption(true);
        let engine = Engine::new(&engine_config).map_err(|e| setup("engine", e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| setup("WASI", e))?;
        EnclaveModule::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| setup("host interface", e))?;
        let ticker = match config.limits.deadline_per_call {
            Some(_) => Some(EpochTicker::start(
                engine.clone(),
                config.limits.epoch_tick,
            )?),
            None => None,
        };
        let sealing = config.sealed_state.map(|s| Sealing {
            dir: s.dir,
            secret: s.secret,
            open: Mutex::new(HashMap::new()),
        });
        Ok(Self {
            shared: Arc::new(Shared {
                engine,
                linker,
                limits: config.limits,
                identity: config.identity,
                sink: config.sink,
                router: config.router,
                clock: config.clock,
                sealing,
                _ticker: ticker,
            }),
        })
    }

    /// The node identity that signs module claims.
    pub fn identity(&self) -> &Arc<NodeIdentity> {
        &self.shared.identity
    }

    /// The per-instance limits.
    pub fn limits(&self) -> &Limits {
        &self.shared.limits
    }

    /// Measures, compiles and instantiates the component `bytes` as module `name`, with the
    /// runtime's event sink and request router; calls `describe` for its manifest.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedModule, RuntimeError> {
        self.load_with(
            name,
            bytes,
            self.shared.sink.clone(),
            self.shared.router.clone(),
        )
    }

    /// Like [`Runtime::load`] with this module's own sink and router.
    pub fn load_with(
        &self,
        name: &str,
        bytes: &[u8],
        sink: Arc<dyn EventSink>,
        router: Arc<dyn RequestRouter>,
    ) -> Result<LoadedModule, RuntimeError> {
        LoadedModule::load(self.shared.clone(), name, bytes, sink, router, None)
    }

    /// Secret material for the channel key pair of module instance `instance` (see
    /// [`crate::NodeSecret::module_key_material`]); `None` when the runtime has no sealing secret.
    pub fn module_key_material(
        &self,
        measurement: &Measurement256,
        instance: &[u8; 16],
        name: &str,
    ) -> Option<zeroize::Zeroizing<[u8; 32]>> {
        self.shared
            .sealing
            .as_ref()
            .map(|s| s.secret.module_key_material(measurement, instance, name))
    }

    /// Like [`Runtime::load_with`] for a module that takes part in event channels: its signed
    /// claims name `channel_key`, the X25519 public key the embedder holds the private half of
    /// for this module, so a deployer can wrap connection keys to it.
    pub fn load_attached(
        &self,
        name: &str,
        bytes: &[u8],
        sink: Arc<dyn EventSink>,
        router: Arc<dyn RequestRouter>,
        channel_key: [u8; 32],
    ) -> Result<LoadedModule, RuntimeError> {
        LoadedModule::load(
            self.shared.clone(),
            name,
            bytes,
            sink,
            router,
            Some(channel_key),
        )
    }
}

impl Shared {
    /// The sealed store of `measurement`, shared with other instances of the same module.
    pub(crate) fn sealed_store(
        &self,
        measurement: Measurement256,
    ) -> Result<Option<Arc<Mutex<SealedStore>>>, RuntimeError> {
        let Some(sealing) = &self.sealing else {
            return Ok(None);
        };
        let mut open = sealing.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = open.get(&measurement).and_then(Weak::upgrade) {
            return Ok(Some(store));
        }
        let store = Arc::new(Mutex::new(SealedStore::open(
            &sealing.dir,
            &sealing.secret,
            measurement,
        )?));
        open.retain(|_, weak| weak.strong_count() > 0);
        open.insert(measurement, Arc::downgrade(&store));
        Ok(Some(store))
    }
}

/// Advances the engine's epoch every tick so calls past their deadline are interrupted. Stops
/// when dropped (the channel closes) and is joined.
struct EpochTicker {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine, tick: Duration) -> Result<Self, RuntimeError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("teemesh-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    engine.increment_epoch();
                }
            })
            .map_err(|e| RuntimeError::Setup(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
