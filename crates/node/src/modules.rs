//! The modules a node hosts. Each module lives on its own worker thread, which owns its
//! `LoadedModule` and runs one call at a time from a bounded queue: wasmtime calls are
//! synchronous, so a module that loops until its fuel or deadline runs out only ever blocks
//! its own thread, never the admin API or another module. Output events go to a bounded
//! per-module queue that drops the oldest event when full and counts what it dropped.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use attest::{Digest256, Measurement256};
use events::wrap::ModuleKeyPair;
use node_protocol::{
    CallKind, ConnectSpec, ConnectionEnd, ErrorKind, ErrorReply, ModuleInfo, ModuleManifest,
    OutputEvent, TopicDirection, TopicSpec,
};
use runtime::{EventSink, LoadedModule, Runtime, RuntimeError};
use tokio::sync::oneshot;

use crate::bridge::{BridgeContext, BrokerClient, Deliver, SignClaims};
use crate::channels::{EndPort, ModuleChannels};
use crate::forward::Forwarder;
use crate::metrics::Metrics;
use crate::store::DataDir;

/// Calls waiting for a module beyond the running one; more are refused as busy.
const CALL_QUEUE: usize = 16;
/// Worker threads' stack: Cranelift compiles on it when a module loads.
const WORKER_STACK: usize = 8 << 20;

type Job = Box<dyn FnOnce(&mut LoadedModule) + Send>;

/// A bounded queue of a module's output events: when full, the oldest event is dropped and
/// counted (a slow reader loses old events, never blocks the module).
#[derive(Debug)]
pub(crate) struct OutputQueue {
    capacity: usize,
    state: Mutex<QueueState>,
}

#[derive(Debug, Default)]
struct QueueState {
    events: VecDeque<OutputEvent>,
    next_seq: u64,
    dropped: u64,
}

impl OutputQueue {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Events emitted so far (the next sequence number).
    fn emitted(&self) -> u64 {
        self.lock().next_seq
    }

    fn take(&self, max: usize) -> (Vec<OutputEvent>, u64) {
        let mut state = self.lock();
        let n = max.min(state.events.len());
        (state.events.drain(..n).collect(), state.dropped)
    }

    fn counts(&self) -> (u64, u64) {
        let state = self.lock();
        (state.events.len() as u64, state.dropped)
    }
}

impl EventSink for OutputQueue {
    fn emit(&self, _module: &str, output: &str, data: &[u8]) -> Result<(), String> {
        let mut state = self.lock();
        if state.events.len() >= self.capacity {
            state.events.pop_front();
            state.dropped += 1;
        }
        let seq = state.next_seq;
        state.next_seq += 1;
        state.events.push_back(OutputEvent {
            seq,
            output: output.to_owned(),
            data: data.into(),
        });
        Ok(())
    }
}

/// A module's MQTT clients, one per (app, broker), with their topic ends.
type TopicClients = Mutex<Vec<Arc<BrokerClient>>>;

/// Where a module's output events go: its output queue (for `outputs` and `app output`),
/// every connection attached to the output, and every topic end publishing it.
struct ModuleSink {
    outputs: Arc<OutputQueue>,
    channels: Arc<ModuleChannels>,
    topics: Arc<TopicClients>,
}

impl EventSink for ModuleSink {
    fn emit(&self, module: &str, output: &str, data: &[u8]) -> Result<(), String> {
        self.channels.emit(output, data)?;
        for client in self.topics.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            client.emit(output, data);
        }
        self.outputs.emit(module, output, data)
    }
}

/// What a delivery produced: result bytes, events emitted, and for an event its counter and
/// missing count.
pub(crate) type Ran = (Vec<u8>, u64, Option<(u64, u64)>);

/// Where the outcome of a queued delivery arrives.
pub(crate) type Pending = oneshot::Receiver<Result<Ran, ErrorReply>>;

/// How a call enters a module: through one of its ports, or as a protected event that is
/// opened on the worker right before its input is called.
enum Delivery {
    Port {
        kind: CallKind,
        port: String,
        data: Vec<u8>,
    },
    Event(Vec<u8>),
    /// A protected request for a handler; the result is the sealed response.
    Ask(Vec<u8>),
    /// A message from a topic end's subscription, for an input: like an event from a peer, it
    /// waits for room in the module's queue rather than being refused as busy.
    Topic {
        port: String,
        data: Vec<u8>,
    },
}

/// How long a module's request waits for the handler's response: well inside the default call
/// deadline, so the requesting call can still report the failure itself.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a module's requests go: the request → handler connections attached to it.
struct ModuleRouter {
    channels: Arc<ModuleChannels>,
}

impl runtime::RequestRouter for ModuleRouter {
    fn route(&self, _module: &str, request: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        self.channels.ask(request, data, REQUEST_TIMEOUT)
    }
}

/// One hosted module: what is known about it, and the queue to its worker.
struct ModuleHandle {
    name: String,
    /// The running version: replaced by an update.
    loaded: Mutex<Loaded>,
    /// Where the module's events and requests go; an updated version keeps them.
    sink: Arc<dyn EventSink>,
    router: Arc<dyn runtime::RequestRouter>,
    jobs: Mutex<Option<SyncSender<Job>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    outputs: Arc<OutputQueue>,
    channels: Arc<ModuleChannels>,
    /// Timers feeding inputs (`Op::Periodic`), stopped with the module.
    periodic: Mutex<Vec<(String, tokio::task::AbortHandle)>>,
    /// MQTT clients carrying the module's topic ends (`Op::Topic`), closed with the module.
    topics: Arc<TopicClients>,
    calls: AtomicU64,
    failures: AtomicU64,
    busy: AtomicBool,
    /// Set by a migration's export: the module takes no call or event any more here.
    frozen: AtomicBool,
    /// An update is under way (one at a time).
    updating: AtomicBool,
    /// A hand-over was taken over (once per instance: a second would roll its state back).
    imported: AtomicBool,
    /// Free places in the worker's queue: taken before a job is queued, given back when the
    /// worker takes the job out, so deliveries can wait for room without polling.
    slots: Arc<tokio::sync::Semaphore>,
    last_error: Mutex<Option<String>>,
}

impl ModuleHandle {
    fn loaded(&self) -> Loaded {
        self.loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn manifest(&self) -> ModuleManifest {
        self.loaded().manifest
    }

    fn info(&self) -> ModuleInfo {
        let (queued, dropped) = self.outputs.counts();
        let loaded = self.loaded();
        ModuleInfo {
            name: self.name.clone(),
            measurement: loaded.measurement,
            manifest: loaded.manifest,
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            busy: self.busy.load(Ordering::Relaxed),
            queued_outputs: queued,
            dropped_outputs: dropped,
            connections: self.channels.info(),
            topics: self.topic_clients().iter().flat_map(|c| c.info()).collect(),
        }
    }

    fn topic_clients(&self) -> Vec<Arc<BrokerClient>> {
        self.topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether a topic end feeds `input`.
    fn topic_feeds(&self, input: &str) -> bool {
        self.topic_clients()
            .iter()
            .any(|c| c.uses(input, TopicDirection::Subscribe))
    }

    fn close(&self) -> Option<JoinHandle<()>> {
        for (_, timer) in self
            .periodic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            timer.abort();
        }
        for client in self
            .topics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            client.close();
        }
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        self.worker.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[derive(Default)]
struct Registry {
    modules: BTreeMap<String, Arc<ModuleHandle>>,
    /// Names being loaded right now, so two uploads cannot race for one name.
    loading: std::collections::BTreeSet<String>,
}

/// The node's modules.
pub(crate) struct ModuleHost {
    runtime: Arc<Runtime>,
    forwarder: Arc<Forwarder>,
    /// Appraises other nodes (the peer policy): a migration's other instance must be on one.
    peers: Arc<atls::PeerVerifier>,
    store: DataDir,
    metrics: Arc<Metrics>,
    output_queue: usize,
    registry: Mutex<Registry>,
    /// What the MQTT clients of topic ends need.
    bridge: BridgeContext,
}

/// What loading produced, sent back from the worker thread.
#[derive(Clone)]
struct Loaded {
    measurement: String,
    manifest: ModuleManifest,
    claims_json: String,
}

impl ModuleHost {
    pub(crate) fn new(
        runtime: Arc<Runtime>,
        forwarder: Arc<Forwarder>,
        peers: Arc<atls::PeerVerifier>,
        store: DataDir,
        metrics: Arc<Metrics>,
        output_queue: usize,
        bridge: BridgeContext,
    ) -> Self {
        Self {
            runtime,
            forwarder,
            peers,
            store,
            metrics,
            output_queue,
            registry: Mutex::default(),
            bridge,
        }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, name: &str) -> Result<Arc<ModuleHandle>, ErrorReply> {
        self.registry().modules.get(name).cloned().ok_or_else(|| {
            ErrorReply::new(
                ErrorKind::NotFound,
                format!("no module named {name:?} is loaded"),
            )
        })
    }

    /// Loads `bytes` as module `name` on a new worker; `persist` stores it in the data
    /// directory once it loaded (false when reloading at start).
    pub(crate) async fn load(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        persist: bool,
    ) -> Result<ModuleInfo, ErrorReply> {
        {
            let mut registry = self.registry();
            if registry.modules.contains_key(name) || !registry.loading.insert(name.to_owned()) {
                return Err(ErrorReply::new(
                    ErrorKind::Exists,
                    format!("a module named {name:?} is already loaded; unload it first"),
                ));
            }
        }
        let outcome = self.start_worker(name, bytes, persist).await;
        let mut registry = self.registry();
        registry.loading.remove(name);
        let handle = outcome?;
        let info = handle.info();
        registry.modules.insert(name.to_owned(), handle);
        self.metrics.set_modules_loaded(registry.modules.len());
        Ok(info)
    }

    async fn start_worker(
        self: &Arc<Self>,
        name: &str,
        bytes: Vec<u8>,
        persist: bool,
    ) -> Result<Arc<ModuleHandle>, ErrorReply> {
        let outputs = Arc::new(OutputQueue::new(self.output_queue));
        let channels = Arc::new(self.channels_for(name, &bytes)?);
        let topics: Arc<TopicClients> = Arc::default();
        let sink = Arc::new(ModuleSink {
            outputs: outputs.clone(),
            channels: channels.clone(),
            topics: topics.clone(),
        });
        let channel_key = channels.public_key();
        let router: Arc<dyn runtime::RequestRouter> = Arc::new(ModuleRouter {
            channels: channels.clone(),
        });
        let sink: Arc<dyn EventSink> = sink;
        let (jobs, queue) = mpsc::sync_channel::<Job>(CALL_QUEUE);
        let (loaded_tx, loaded_rx) = oneshot::channel::<Result<Loaded, RuntimeError>>();
        let runtime = self.runtime.clone();
        let module_name = name.to_owned();
        let wasm = bytes.clone();
        let (worker_sink, worker_router) = (sink.clone(), router.clone());
        let worker = std::thread::Builder::new()
            .name(format!("module-{name}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let loaded = runtime.load_attached(
                    &module_name,
                    &wasm,
                    worker_sink,
                    worker_router,
                    channel_key,
                );
                drop(wasm);
                let mut module = match loaded {
                    Ok(module) => module,
                    Err(e) => {
                        let _ = loaded_tx.send(Err(e));
                        return;
                    }
                };
                let _ = loaded_tx.send(Ok(Loaded::of(&module)));
                // Runs until the queue's sender is dropped (unload, shutdown).
                while let Ok(job) = queue.recv() {
                    job(&mut module);
                }
                tracing::debug!(module = %module_name, "module worker stopped");
            })
            .map_err(|e| {
                ErrorReply::new(ErrorKind::Internal, format!("cannot start a worker: {e}"))
            })?;
        let loaded = match loaded_rx.await {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => return Err(load_error(name, e)),
            Err(_) => {
                return Err(ErrorReply::new(
                    ErrorKind::Internal,
                    format!("the worker loading {name:?} stopped"),
                ));
            }
        };
        if persist {
            let store = self.store.clone();
            let stored_name = name.to_owned();
            let now = attest::UnixTime::now().as_secs();
            let saved = tokio::task::spawn_blocking(move || store.save(&stored_name, &bytes, now))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()));
            if let Err(e) = saved {
                drop(jobs);
                return Err(ErrorReply::new(
                    ErrorKind::Internal,
                    format!("cannot store module {name:?}: {e}"),
                ));
            }
        }
        Ok(Arc::new(ModuleHandle {
            name: name.to_owned(),
            loaded: Mutex::new(loaded),
            sink,
            router,
            jobs: Mutex::new(Some(jobs)),
            worker: Mutex::new(Some(worker)),
            outputs,
            channels,
            periodic: Mutex::default(),
            topics,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            frozen: AtomicBool::new(false),
            updating: AtomicBool::new(false),
            imported: AtomicBool::new(false),
            slots: Arc::new(tokio::sync::Semaphore::new(CALL_QUEUE)),
            last_error: Mutex::new(None),
        }))
    }

    /// The channel key pair of a new instance of module `name` with `bytes`: derived from the
    /// node's sealing secret, the measurement, the name and a fresh instance id, so every load
    /// gets its own pair and keys wrapped for an earlier instance no longer open.
    fn channels_for(&self, name: &str, bytes: &[u8]) -> Result<ModuleChannels, ErrorReply> {
        let (measurement, keys) = self.channel_keys(name, bytes)?;
        Ok(ModuleChannels::new(
            name,
            measurement,
            keys,
            self.forwarder.clone(),
        ))
    }

    /// The measurement of `bytes` and a channel key pair for a new instance of it.
    fn channel_keys(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<([u8; 32], ModuleKeyPair), ErrorReply> {
        let measurement = Measurement256(Digest256::of(bytes).0);
        let mut instance = [0u8; 16];
        getrandom::fill(&mut instance).map_err(|e| {
            ErrorReply::new(
                ErrorKind::Internal,
                format!("no randomness for a module key: {e}"),
            )
        })?;
        let material = match self
            .runtime
            .module_key_material(&measurement, &instance, name)
        {
            Some(material) => material,
            None => {
                let mut fresh = zeroize::Zeroizing::new([0u8; 32]);
                getrandom::fill(fresh.as_mut()).map_err(|e| {
                    ErrorReply::new(
                        ErrorKind::Internal,
                        format!("no randomness for a module key: {e}"),
                    )
                })?;
                fresh
            }
        };
        let keys = ModuleKeyPair::derive(material.as_ref())
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))?;
        Ok((measurement.0, keys))
    }

    /// Attaches a connection end to one of a module's ports.
    pub(crate) fn connect(&self, spec: &ConnectSpec) -> Result<(), ErrorReply> {
        let handle = self.get(&spec.module)?;
        if matches!(spec.end, ConnectionEnd::Receiver) && handle.topic_feeds(&spec.port) {
            return Err(ErrorReply::new(
                ErrorKind::BadRequest,
                format!(
                    "input {:?} of module {:?} is fed by a topic; an input has one source",
                    spec.port, spec.module
                ),
            ));
        }
        handle.channels.connect(spec, &handle.manifest())
    }

    /// Attaches an MQTT topic end to a module's port ([`node_protocol::Op::Topic`]): an output
    /// is published on a topic name, an input subscribes to a topic filter (and has no other
    /// source). The module's client for (app, broker) is started on its first end.
    pub(crate) fn attach_topic(self: &Arc<Self>, spec: &TopicSpec) -> Result<(), ErrorReply> {
        let bad = |message: String| Err(ErrorReply::new(ErrorKind::BadRequest, message));
        let name = &spec.module;
        let port = &spec.port;
        let handle = self.get(name)?;
        if handle.frozen.load(Ordering::Acquire) {
            return Err(moved(name));
        }
        let manifest = handle.manifest();
        match spec.direction {
            TopicDirection::Publish => {
                if !manifest.outputs.contains(port) {
                    return bad(format!(
                        "module {name:?} declares no output {port:?} (its outputs: {}); a topic end publishes an output",
                        manifest.outputs.join(", ")
                    ));
                }
                if let Err(e) = mqtt::topic::validate_topic_name(&spec.topic) {
                    return bad(format!("{e} (an output publishes on a topic name)"));
                }
            }
            TopicDirection::Subscribe => {
                if !manifest.inputs.contains(port) {
                    return bad(format!(
                        "module {name:?} declares no input {port:?} (its inputs: {}); a topic end feeds an input",
                        manifest.inputs.join(", ")
                    ));
                }
                if let Err(e) = mqtt::topic::validate_topic_filter(&spec.topic) {
                    return bad(format!("{e} (an input subscribes to a topic filter)"));
                }
                let timer = handle
                    .periodic
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter()
                    .any(|(input, _)| input == port);
                if handle.channels.feeds(port) || timer || handle.topic_feeds(port) {
                    return bad(format!(
                        "input {port:?} of module {name:?} is already fed by a connection, a timer or a topic; an input has one source"
                    ));
                }
            }
        }
        if spec.qos > 1 {
            return bad(format!(
                "QoS {} is not supported by topic ends (0 or 1)",
                spec.qos
            ));
        }
        let mut clients = handle.topics.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = clients
            .iter()
            .find(|c| c.is_for(&spec.app, &spec.broker_address))
        {
            return client
                .attach(spec)
                .map_err(|e| ErrorReply::new(ErrorKind::Exists, e));
        }
        let client = Arc::new(BrokerClient::new(
            &self.bridge.node,
            self.runtime.identity().certificate(),
            &spec.app,
            name,
            &spec.broker_address,
        ));
        client
            .attach(spec)
            .map_err(|e| ErrorReply::new(ErrorKind::Exists, e))?;
        let identity = self.runtime.identity().clone();
        let weak_handle = Arc::downgrade(&handle);
        let (module, app) = (name.clone(), spec.app.clone());
        // Claims for the module as it runs at each connection, naming the application.
        let sign_claims: SignClaims = Arc::new(move || {
            let handle = weak_handle
                .upgrade()
                .ok_or_else(|| format!("module {module:?} is unloaded"))?;
            let measurement = handle.loaded().measurement;
            let value = Measurement256::from_hex(&measurement).map_err(|e| e.to_string())?;
            let signed =
                atls::ModuleClaims::for_module(&identity, &module, value, attest::UnixTime::now())
                    .with_app(&app)
                    .sign(&identity)
                    .map_err(|e| format!("cannot sign the module claims: {e}"))?;
            let json = serde_json::to_string(&signed)
                .map_err(|e| format!("cannot serialise the module claims: {e}"))?;
            Ok((json, measurement))
        });
        let host = Arc::downgrade(self);
        let module = name.clone();
        let deliver: Deliver = Arc::new(move |port, data| {
            let host = host.clone();
            let module = module.clone();
            Box::pin(async move {
                let host = host.upgrade().ok_or_else(|| {
                    ErrorReply::new(ErrorKind::ShuttingDown, "the node is stopping")
                })?;
                host.run(&module, Delivery::Topic { port, data })
                    .await
                    .map(|_| ())
            })
        });
        client.start(self.bridge.clone(), sign_claims, deliver);
        clients.push(client);
        tracing::info!(
            module = %name,
            app = %spec.app,
            port = %port,
            direction = spec.direction.as_str(),
            topic = %spec.topic,
            qos = spec.qos,
            broker = %spec.broker_address,
            "topic end attached"
        );
        Ok(())
    }

    /// Gives an attached connection end its new key ([`node_protocol::Op::Rekey`]).
    pub(crate) fn rekey(&self, spec: &ConnectSpec, activate: bool) -> Result<(), ErrorReply> {
        self.get(&spec.module)?.channels.rekey(spec, activate)
    }

    /// Feeds `input` of module `name` with `payload` every `every`, from a timer task that
    /// stops when the module is unloaded. An input fed by a connection cannot also be fed by a
    /// timer (one source per input), and one timer per input. A tick that finds the module's
    /// queue full is skipped and logged, never queued without bound.
    pub(crate) fn schedule(
        self: &Arc<Self>,
        name: &str,
        input: &str,
        every: Duration,
        payload: Vec<u8>,
    ) -> Result<(), ErrorReply> {
        let handle = self.get(name)?;
        let manifest = handle.manifest();
        if !manifest.inputs.iter().any(|i| i == input) {
            return Err(ErrorReply::new(
                ErrorKind::BadRequest,
                format!(
                    "module {name:?} declares no input {input:?} (its inputs: {})",
                    manifest.inputs.join(", ")
                ),
            ));
        }
        if handle.channels.feeds(input) || handle.topic_feeds(input) {
            return Err(ErrorReply::new(
                ErrorKind::BadRequest,
                format!(
                    "input {input:?} of module {name:?} is fed by a connection or a topic; an input has one source"
                ),
            ));
        }
        let mut timers = handle.periodic.lock().unwrap_or_else(|e| e.into_inner());
        if timers.iter().any(|(port, _)| port == input) {
            return Err(ErrorReply::new(
                ErrorKind::Exists,
                format!("input {input:?} of module {name:?} already has a periodic source"),
            ));
        }
        let host = Arc::downgrade(self);
        let module = name.to_owned();
        let port = input.to_owned();
        let timer = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(host) = host.upgrade() else { return };
                if let Err(e) = host
                    .run(
                        &module,
                        Delivery::Port {
                            kind: CallKind::Input,
                            port: port.clone(),
                            data: payload.clone(),
                        },
                    )
                    .await
                {
                    if e.kind == ErrorKind::NotFound {
                        return;
                    }
                    if e.kind == ErrorKind::Moved {
                        continue;
                    }
                    tracing::warn!(module = %module, input = %port, error = %e, "periodic event not delivered");
                }
            }
        });
        timers.push((input.to_owned(), timer.abort_handle()));
        tracing::info!(module = %name, %input, every_ms = every.as_millis() as u64, "periodic events scheduled");
        Ok(())
    }

    /// Opens a protected event for `name` on its worker and, if it is authentic and new, calls
    /// the input its connection is attached to; returns its counter and how many counters
    /// before it never arrived.
    pub(crate) async fn deliver_event(
        &self,
        name: &str,
        envelope: Vec<u8>,
    ) -> Result<(u64, u64), ErrorReply> {
        self.run(name, Delivery::Event(envelope))
            .await
            .map(|(_, _, event)| event.unwrap_or_default())
    }

    /// Opens a protected request for `name`'s handler on its worker, runs the handler, and
    /// returns its response sealed for the requesting module.
    pub(crate) async fn answer_request(
        &self,
        name: &str,
        envelope: Vec<u8>,
    ) -> Result<Vec<u8>, ErrorReply> {
        self.run(name, Delivery::Ask(envelope))
            .await
            .map(|(sealed, _, _)| sealed)
    }

    /// Every module, by name.
    pub(crate) fn list(&self) -> Vec<ModuleInfo> {
        self.registry().modules.values().map(|m| m.info()).collect()
    }

    /// How many modules are loaded.
    pub(crate) fn count(&self) -> usize {
        self.registry().modules.len()
    }

    /// Stops and forgets a module; a call it is running finishes first (in the background).
    pub(crate) async fn unload(&self, name: &str) -> Result<(), ErrorReply> {
        let handle = {
            let mut registry = self.registry();
            let handle = registry.modules.remove(name).ok_or_else(|| {
                ErrorReply::new(
                    ErrorKind::NotFound,
                    format!("no module named {name:?} is loaded"),
                )
            })?;
            self.metrics.set_modules_loaded(registry.modules.len());
            handle
        };
        drop(handle.close());
        let store = self.store.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || store.remove(&name))
            .await
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))?
            .map_err(|e| ErrorReply::new(ErrorKind::Internal, e.to_string()))
    }

    /// Calls into a module on its worker; returns the result bytes and the number of output
    /// events the call emitted.
    pub(crate) async fn call(
        &self,
        name: &str,
        kind: CallKind,
        port: &str,
        data: Vec<u8>,
    ) -> Result<(Vec<u8>, u64), ErrorReply> {
        if kind == CallKind::Input && self.get(name)?.channels.feeds(port) {
            return Err(ErrorReply::new(
                ErrorKind::Unauthorised,
                format!(
                    "input {port:?} of module {name:?} is fed by a connection: it takes only that connection's authentic events"
                ),
            ));
        }
        if kind == CallKind::Input && self.get(name)?.topic_feeds(port) {
            return Err(ErrorReply::new(
                ErrorKind::Unauthorised,
                format!(
                    "input {port:?} of module {name:?} is fed by a topic: it takes only that subscription's messages"
                ),
            ));
        }
        let delivery = Delivery::Port {
            kind,
            port: port.to_owned(),
            data,
        };
        self.run(name, delivery)
            .await
            .map(|(bytes, emitted, _)| (bytes, emitted))
    }

    /// Runs one delivery on the module's worker: result bytes, events emitted, and for an
    /// event its counter and missing count.
    async fn run(&self, name: &str, delivery: Delivery) -> Result<Ran, ErrorReply> {
        let pending = self.start(name, delivery).await?;
        pending.await.unwrap_or_else(|_| {
            Err(ErrorReply::new(
                ErrorKind::Internal,
                format!("module {name:?}'s worker stopped during the call"),
            ))
        })
    }

    /// Queues an event for module `name` (waiting for room in its queue, so deliveries keep
    /// their order) and returns where its outcome will arrive: the admin session reads the
    /// next request meanwhile, so events from one link are handled back to back.
    pub(crate) async fn enqueue_event(
        &self,
        name: &str,
        envelope: Vec<u8>,
    ) -> Result<Pending, ErrorReply> {
        self.start(name, Delivery::Event(envelope)).await
    }

    /// Like [`Self::enqueue_event`] for a protected request; the outcome's bytes are the sealed
    /// response.
    pub(crate) async fn enqueue_ask(
        &self,
        name: &str,
        envelope: Vec<u8>,
    ) -> Result<Pending, ErrorReply> {
        self.start(name, Delivery::Ask(envelope)).await
    }

    /// Queues one delivery on the module's worker.
    async fn start(&self, name: &str, delivery: Delivery) -> Result<Pending, ErrorReply> {
        let handle = self.get(name)?;
        if handle.frozen.load(Ordering::Acquire) {
            return Err(moved(name));
        }
        let (reply_tx, reply_rx) = oneshot::channel();
        let worker_handle = handle.clone();
        let metrics = self.metrics.clone();
        let is_port = matches!(delivery, Delivery::Port { .. });
        let delivery_kind = match &delivery {
            Delivery::Port { kind, .. } => *kind,
            Delivery::Event(_) | Delivery::Topic { .. } => CallKind::Input,
            Delivery::Ask(_) => CallKind::Handler,
        };
        let job: Job = Box::new(move |module: &mut LoadedModule| {
            let h = worker_handle;
            // Queued before an export froze the module: its sender keeps it for the new node.
            if h.frozen.load(Ordering::Acquire) {
                let _ = reply_tx.send(Err(moved(&h.name)));
                return;
            }
            let (kind, port, data, event, answer_on) = match delivery {
                Delivery::Port { kind, port, data } => (kind, port, data, None, None),
                Delivery::Topic { port, data } => (CallKind::Input, port, data, None, None),
                Delivery::Event(envelope) | Delivery::Ask(envelope) => {
                    let ask = matches!(delivery_kind, CallKind::Handler);
                    match h.channels.open(&envelope, ask) {
                        Ok(opened) => (
                            delivery_kind,
                            opened.port,
                            opened.payload,
                            Some((opened.counter, opened.missing)),
                            ask.then_some(opened.connection),
                        ),
                        Err(rejected) => {
                            metrics.event_rejected(&h.name);
                            let _ = reply_tx.send(Err(rejected));
                            return;
                        }
                    }
                }
            };
            h.busy.store(true, Ordering::Relaxed);
            let before = h.outputs.emitted();
            let started = Instant::now();
            let result = match kind {
                CallKind::Entry => module.call_entry(&port, &data),
                CallKind::Input => module.deliver_input(&port, &data).map(|()| Vec::new()),
                CallKind::Handler => module.handle_request(&port, &data),
            };
            let took = started.elapsed();
            let emitted = h.outputs.emitted() - before;
            h.calls.fetch_add(1, Ordering::Relaxed);
            metrics.call(&h.name, kind.as_str(), outcome_label(&result), took);
            metrics.set_dropped_outputs(&h.name, h.outputs.counts().1);
            // A handler's response to a protected request leaves sealed for the requester.
            let result = match (result, answer_on) {
                (Ok(bytes), Some(connection)) => match h.channels.seal_response(connection, &bytes)
                {
                    Ok(sealed) => Ok(sealed),
                    Err(e) => {
                        let _ = reply_tx.send(Err(e));
                        h.busy.store(false, Ordering::Relaxed);
                        return;
                    }
                },
                (result, _) => result,
            };
            let reply = match result {
                Ok(bytes) => Ok((bytes, emitted, event)),
                Err(e) => {
                    h.failures.fetch_add(1, Ordering::Relaxed);
                    let message = e.to_string();
                    *h.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message.clone());
                    let mut reply = ErrorReply::new(error_kind(&e), message);
                    // A trap poisons the instance; a fresh one (same sealed state) serves the
                    // next call, so one bad input does not take the module down.
                    if module.poisoned().is_some() {
                        match module.restart() {
                            Ok(()) => reply.message.push_str(" (the module was restarted)"),
                            Err(e) => {
                                reply.message.push_str(&format!(" (restart failed: {e})"));
                            }
                        }
                    }
                    Err(reply)
                }
            };
            h.busy.store(false, Ordering::Relaxed);
            let _ = reply_tx.send(reply);
        });
        // Events and requests from peers wait for room (the link behind them waits too, which
        // keeps their order); an admin's call is refused as busy instead.
        let wait = !matches!(delivery_kind, CallKind::Entry) && !is_port;
        Self::submit(&handle, job, wait).await?;
        Ok(reply_rx)
    }

    /// Queues `job` for the module's worker. When the queue is full, `wait` waits for a place
    /// for up to [`REQUEST_TIMEOUT`]; otherwise the module is reported busy.
    async fn submit(handle: &ModuleHandle, job: Job, wait: bool) -> Result<(), ErrorReply> {
        let name = &handle.name;
        let sender = handle
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(sender) = sender else {
            return Err(ErrorReply::new(
                ErrorKind::NotFound,
                format!("module {name:?} is being unloaded"),
            ));
        };
        let busy = || {
            ErrorReply::new(
                ErrorKind::Busy,
                format!("module {name:?} has {CALL_QUEUE} calls waiting; try again later"),
            )
        };
        let slot = if wait {
            tokio::time::timeout(REQUEST_TIMEOUT, handle.slots.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        } else {
            handle.slots.clone().try_acquire_owned().ok()
        }
        .ok_or_else(busy)?;
        let job: Job = Box::new(move |module: &mut LoadedModule| {
            // Out of the queue: its place is free again.
            drop(slot);
            job(module);
        });
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(busy()),
            Err(TrySendError::Disconnected(_)) => Err(ErrorReply::new(
                ErrorKind::NotFound,
                format!("module {name:?} stopped"),
            )),
        }
    }

    /// Replaces module `name` with the component `bytes`, in place ([`node_protocol::Op::Update`]):
    /// compiled aside while the old version keeps serving, then swapped in on the module's
    /// worker between two deliveries, with the sealed state handed over. Refused, with the old
    /// version still running, when the new one cannot serve every attached port.
    pub(crate) async fn update(
        &self,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<ModuleInfo, ErrorReply> {
        let handle = self.get(name)?;
        if handle.updating.swap(true, Ordering::AcqRel) {
            return Err(ErrorReply::new(
                ErrorKind::Exists,
                format!("module {name:?} is being updated already"),
            ));
        }
        let outcome = self.update_now(&handle, name, bytes).await;
        handle.updating.store(false, Ordering::Release);
        outcome
    }

    async fn update_now(
        &self,
        handle: &Arc<ModuleHandle>,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<ModuleInfo, ErrorReply> {
        let before = handle.loaded();
        let (measurement, keys) = self.channel_keys(name, &bytes)?;
        let channel_key = *keys.public().as_bytes();
        let runtime = self.runtime.clone();
        let (sink, router) = (handle.sink.clone(), handle.router.clone());
        let module_name = name.to_owned();
        let wasm = bytes.clone();
        let (built_tx, built_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("update-{name}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                let built = runtime.load_attached(&module_name, &wasm, sink, router, channel_key);
                let _ = built_tx.send(built);
            })
            .map_err(|e| {
                ErrorReply::new(ErrorKind::Internal, format!("cannot start a thread: {e}"))
            })?;
        let new_module = built_rx
            .await
            .map_err(|_| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!("the thread loading the new version of {name:?} stopped"),
                )
            })?
            .map_err(|e| load_error(name, e))?;
        let new_manifest = manifest_of(new_module.manifest());
        let timers: Vec<String> = handle
            .periodic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(input, _)| input.clone())
            .collect();
        let in_use = handle
            .channels
            .ports_in_use()
            .into_iter()
            .chain(timers.into_iter().map(|input| (EndPort::Input, input)));
        for (kind, port) in in_use {
            if !kind.declared_in(&new_manifest).contains(&port) {
                return Err(ErrorReply::new(
                    ErrorKind::BadRequest,
                    format!(
                        "the new version of {name:?} declares no {} {port:?}, which its connections or timers use; the running version stays",
                        kind.as_str()
                    ),
                ));
            }
        }
        let (swapped_tx, swapped_rx) = oneshot::channel::<Result<Loaded, RuntimeError>>();
        let channels = handle.channels.clone();
        let swapped_handle = handle.clone();
        let job: Job = Box::new(move |module: &mut LoadedModule| {
            let mut new_module = new_module;
            // The same code shares its sealed store already; other code gets a copy.
            if module.measurement() != new_module.measurement()
                && let Some(entries) = module.sealed_entries()
                && let Err(e) = new_module.take_over_state(entries)
            {
                let _ = swapped_tx.send(Err(e));
                return;
            }
            let loaded = Loaded::of(&new_module);
            channels.replace_identity(measurement, keys);
            *module = new_module;
            // What `list` and `claims` say changes with the instance, on the worker.
            *swapped_handle
                .loaded
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = loaded.clone();
            let _ = swapped_tx.send(Ok(loaded));
        });
        Self::submit(handle, job, true).await?;
        let loaded = swapped_rx
            .await
            .map_err(|_| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!("module {name:?}'s worker stopped during the update"),
                )
            })?
            .map_err(|e| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!(
                        "cannot hand {name:?}'s sealed state to its new version: {e}; the running version stays"
                    ),
                )
            })?;
        tracing::info!(
            module = %name,
            from = %before.measurement,
            to = %loaded.measurement,
            "module updated in place"
        );
        // Brokers authenticated the old measurement: new claims, new sessions.
        for client in handle.topic_clients() {
            client.reauthenticate();
        }
        let store = self.store.clone();
        let stored_name = name.to_owned();
        let now = attest::UnixTime::now().as_secs();
        tokio::task::spawn_blocking(move || store.replace(&stored_name, &bytes, now))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|e| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!(
                        "module {name:?} runs its new version, but storing it failed ({e}): a restart would bring back the old one"
                    ),
                )
            })?;
        Ok(handle.info())
    }

    /// The first half of a migration ([`node_protocol::Op::Export`]): freezes module `name`,
    /// lets calls queued before finish, waits until the peers settled every event it sent,
    /// then seals its sealed state and connection ends to `recipient`, the channel key of its
    /// new instance. On failure the module serves again.
    pub(crate) async fn export(
        &self,
        name: &str,
        app: &str,
        recipient_claims: &str,
        recipient_certificate: &[u8],
    ) -> Result<Vec<u8>, ErrorReply> {
        let handle = self.get(name)?;
        if !handle.topic_clients().is_empty() {
            return Err(ErrorReply::new(
                ErrorKind::BadRequest,
                format!(
                    "module {name:?} has MQTT topic ends, which do not migrate: undeploy and deploy it on the new node instead"
                ),
            ));
        }
        let recipient = self.other_instance(
            &handle,
            recipient_claims,
            recipient_certificate,
            "recipient",
        )?;
        if handle.frozen.swap(true, Ordering::AcqRel) {
            return Err(ErrorReply::new(
                ErrorKind::Exists,
                format!("module {name:?} is being moved already"),
            ));
        }
        let (sealed_tx, sealed_rx) = oneshot::channel::<Result<Vec<u8>, String>>();
        let channels = handle.channels.clone();
        let app_name = app.to_owned();
        let job: Job = Box::new(move |module: &mut LoadedModule| {
            let sealed = (|| {
                // Every call queued before the freeze has run; what it emitted must reach its
                // peers before the new instance emits the next counters.
                let deadline = Instant::now() + REQUEST_TIMEOUT * 2;
                while channels.in_flight() > 0 {
                    if Instant::now() > deadline {
                        return Err(format!(
                            "{} events it sent are still unacknowledged by their nodes",
                            channels.in_flight()
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                let state = module
                    .sealed_entries()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, node_protocol::Bytes(v)))
                    .collect();
                let handover = Handover {
                    state,
                    ends: channels.hand_over(&recipient)?,
                };
                let mut plaintext = zeroize::Zeroizing::new(Vec::new());
                ciborium::into_writer(&handover, &mut *plaintext).map_err(|e| e.to_string())?;
                let sealed = channels
                    .seal_handover(&plaintext, &recipient, &app_name)
                    .map_err(|e| e.to_string())?;
                // The keys and counters left: this instance never seals under them again.
                channels.mark_handed_over();
                Ok(sealed)
            })();
            let _ = sealed_tx.send(sealed);
        });
        let outcome = match Self::submit(&handle, job, true).await {
            Ok(()) => sealed_rx.await.unwrap_or_else(|_| {
                Err(format!(
                    "module {name:?}'s worker stopped during the export"
                ))
            }),
            Err(e) => Err(e.message),
        };
        match outcome {
            Ok(sealed) => {
                tracing::info!(module = %name, %app, "module exported for migration; it takes no events here any more");
                Ok(sealed)
            }
            Err(reason) => {
                handle.frozen.store(false, Ordering::Release);
                Err(ErrorReply::new(
                    ErrorKind::Internal,
                    format!("cannot export {name:?}: {reason}; it serves here again"),
                ))
            }
        }
    }

    /// The second half ([`node_protocol::Op::Import`]): module `name`, freshly loaded with no
    /// connection, takes over the sealed state and connection ends of its old instance.
    pub(crate) async fn import(
        &self,
        name: &str,
        app: &str,
        sealed: &[u8],
        sender_claims: &str,
        sender_certificate: &[u8],
    ) -> Result<(), ErrorReply> {
        let handle = self.get(name)?;
        let sender = self.other_instance(&handle, sender_claims, sender_certificate, "sender")?;
        if handle.imported.swap(true, Ordering::AcqRel) {
            return Err(ErrorReply::new(
                ErrorKind::Exists,
                format!(
                    "module {name:?} took over a hand-over already; load a fresh instance for another"
                ),
            ));
        }
        let outcome = self.import_now(&handle, name, app, sealed, &sender).await;
        if outcome.is_err() {
            handle.imported.store(false, Ordering::Release);
        }
        outcome
    }

    async fn import_now(
        &self,
        handle: &Arc<ModuleHandle>,
        name: &str,
        app: &str,
        sealed: &[u8],
        sender: &events::wrap::ModulePublicKey,
    ) -> Result<(), ErrorReply> {
        if handle.channels.has_ends() {
            return Err(ErrorReply::new(
                ErrorKind::Exists,
                format!(
                    "module {name:?} has connections already; a hand-over goes to a fresh instance"
                ),
            ));
        }
        let plaintext = handle.channels.open_handover(sealed, sender, app).map_err(|e| {
            ErrorReply::new(
                ErrorKind::BadRequest,
                format!("the hand-over for {name:?} does not open: {e} (was it sealed to this instance?)"),
            )
        })?;
        let handover: Handover = ciborium::from_reader(plaintext.as_slice()).map_err(|e| {
            ErrorReply::new(ErrorKind::BadRequest, format!("malformed hand-over: {e}"))
        })?;
        let entries: BTreeMap<String, Vec<u8>> =
            handover.state.into_iter().map(|(k, v)| (k, v.0)).collect();
        let (done_tx, done_rx) = oneshot::channel::<Result<(), RuntimeError>>();
        let job: Job = Box::new(move |module: &mut LoadedModule| {
            let _ = done_tx.send(module.take_over_state(entries));
        });
        Self::submit(handle, job, true).await?;
        done_rx
            .await
            .map_err(|_| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!("module {name:?}'s worker stopped during the import"),
                )
            })?
            .map_err(|e| {
                ErrorReply::new(
                    ErrorKind::Internal,
                    format!("cannot take over the state: {e}"),
                )
            })?;
        handle.channels.take_over(handover.ends)?;
        tracing::info!(module = %name, %app, "module imported: its sealed state and connections continue here");
        Ok(())
    }

    /// The channel key of the other instance of module `handle` in a migration, from its signed
    /// claims: they must verify under `certificate`, whose evidence the peer policy affirms,
    /// and name this module with this measurement.
    fn other_instance(
        &self,
        handle: &ModuleHandle,
        claims_json: &str,
        certificate: &[u8],
        role: &str,
    ) -> Result<events::wrap::ModulePublicKey, ErrorReply> {
        let refuse = |why: String| {
            ErrorReply::new(
                ErrorKind::Unauthorised,
                format!("the {role} of {:?}'s hand-over: {why}", handle.name),
            )
        };
        let signed: atls::SignedModuleClaims = serde_json::from_str(claims_json)
            .map_err(|e| refuse(format!("malformed module claims: {e}")))?;
        let verified = atls::verify_module_claims(certificate, &signed, &self.peers)
            .map_err(|e| refuse(e.to_string()))?;
        let measurement = handle.loaded().measurement;
        let expected = hex::decode(&measurement)
            .ok()
            .and_then(|m| <[u8; 32]>::try_from(m).ok())
            .ok_or_else(|| refuse("this module's measurement is unreadable".into()))?;
        verified
            .require_measurement(&Measurement256(expected))
            .map_err(|e| refuse(format!("{e} (a migration moves the same code)")))?;
        if signed.claims.name != handle.name {
            return Err(refuse(format!(
                "its claims are for module {:?}",
                signed.claims.name
            )));
        }
        let key = signed
            .claims
            .channel_key
            .ok_or_else(|| refuse("its claims name no channel key".into()))?;
        Ok(events::wrap::ModulePublicKey::from_bytes(key.0))
    }

    /// Undoes an export ([`node_protocol::Op::Thaw`]). If a hand-over left, the module's
    /// connection ends seal nothing until they are re-keyed (the new instance may use their
    /// keys and counters).
    pub(crate) fn thaw(&self, name: &str) -> Result<(), ErrorReply> {
        self.get(name)?.frozen.store(false, Ordering::Release);
        tracing::info!(module = %name, "module serves here again");
        Ok(())
    }

    /// Points a sending end of module `name` at its peer's new node ([`node_protocol::Op::Retarget`]).
    pub(crate) async fn retarget(
        &self,
        name: &str,
        app: &str,
        connection: u32,
        peer_address: &str,
    ) -> Result<(), ErrorReply> {
        let channels = self.get(name)?.channels.clone();
        channels.retarget(app, connection, peer_address).await
    }

    /// Takes up to `max` buffered output events, and the dropped count.
    pub(crate) fn outputs(
        &self,
        name: &str,
        max: usize,
    ) -> Result<(Vec<OutputEvent>, u64), ErrorReply> {
        Ok(self.get(name)?.outputs.take(max))
    }

    /// The signed module claims as JSON.
    pub(crate) fn claims(&self, name: &str) -> Result<String, ErrorReply> {
        Ok(self.get(name)?.loaded().claims_json)
    }

    /// Closes every module's queue and waits (at most `grace`) for running calls to finish,
    /// then stops the links to peer nodes.
    pub(crate) async fn shutdown(&self, grace: Duration) {
        self.stop_workers(grace).await;
        self.forwarder.close();
    }

    async fn stop_workers(&self, grace: Duration) {
        let workers: Vec<JoinHandle<()>> = {
            let registry = self.registry();
            registry
                .modules
                .values()
                .filter_map(|m| m.close())
                .collect()
        };
        let joined = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        });
        if tokio::time::timeout(grace, joined).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "module calls still running at shutdown; leaving them"
            );
        }
    }
}

impl Loaded {
    fn of(module: &LoadedModule) -> Self {
        Self {
            measurement: module.measurement().to_hex(),
            manifest: manifest_of(module.manifest()),
            claims_json: serde_json::to_string(module.signed_claims()).unwrap_or_default(),
        }
    }
}

fn manifest_of(m: &runtime::Manifest) -> ModuleManifest {
    ModuleManifest {
        inputs: m.inputs.clone(),
        outputs: m.outputs.clone(),
        requests: m.requests.clone(),
        handlers: m.handlers.clone(),
        entries: m.entries.clone(),
    }
}

fn moved(name: &str) -> ErrorReply {
    ErrorReply::new(
        ErrorKind::Moved,
        format!("module {name:?} is moving to another node; its events wait at their senders"),
    )
}

/// What a migration hands from a module's old instance to its new one, sealed to the new one.
#[derive(serde::Serialize, serde::Deserialize)]
struct Handover {
    state: Vec<(String, node_protocol::Bytes)>,
    ends: Vec<crate::channels::HandedEnd>,
}

fn load_error(name: &str, e: RuntimeError) -> ErrorReply {
    let kind = match e {
        RuntimeError::State(_) | RuntimeError::Setup(_) | RuntimeError::Claims(_) => {
            ErrorKind::Internal
        }
        _ => ErrorKind::InvalidModule,
    };
    ErrorReply::new(kind, format!("cannot load {name:?}: {e}"))
}

fn error_kind(e: &RuntimeError) -> ErrorKind {
    match e {
        RuntimeError::Guest { .. } => ErrorKind::GuestError,
        RuntimeError::UnknownPort { .. } => ErrorKind::BadRequest,
        RuntimeError::Trap { .. }
        | RuntimeError::OutOfFuel { .. }
        | RuntimeError::Interrupted { .. }
        | RuntimeError::MemoryLimit { .. }
        | RuntimeError::Poisoned { .. } => ErrorKind::ModuleFailed,
        _ => ErrorKind::Internal,
    }
}

fn outcome_label(result: &Result<Vec<u8>, RuntimeError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(RuntimeError::Guest { .. }) => "guest_error",
        Err(RuntimeError::Trap { .. } | RuntimeError::Poisoned { .. }) => "trap",
        Err(RuntimeError::OutOfFuel { .. }) => "out_of_fuel",
        Err(RuntimeError::Interrupted { .. }) => "deadline",
        Err(RuntimeError::MemoryLimit { .. }) => "memory_limit",
        Err(RuntimeError::UnknownPort { .. }) => "unknown_port",
        Err(_) => "error",
    }
}
