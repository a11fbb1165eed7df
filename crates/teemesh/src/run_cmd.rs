//! `teemesh run MODULE.wasm --entry NAME`: loads one enclave module on a simulated node, calls
//! one entry and prints what happened as one JSON object — measurement, manifest, result, emitted
//! events and the module claims signed by the node.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use atls::NodeIdentity;
use attest::UnixTime;
use base64::Engine as _;
use clap::Args;
use runtime::{
    CollectingSink, DEFAULT_DEADLINE, DEFAULT_FUEL_PER_CALL, DEFAULT_MEMORY_MIB, LimitSetting,
    Limits, NodeSecret, Runtime, RuntimeConfig, RuntimeError, Unconnected,
};
use serde_json::{Value, json};

use crate::home::teemesh_home;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The module: a WebAssembly component of the world teemesh:module/enclave-module.
    #[arg(value_name = "MODULE.wasm")]
    module: PathBuf,
    /// The entry to call (one the module's manifest declares).
    #[arg(long, value_name = "NAME")]
    entry: String,
    /// The entry's argument, JSON text handed to the module as its UTF-8 bytes.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    arg: String,
    /// Fuel (instruction budget) for each call into the module: 1 to 10^12.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_FUEL_PER_CALL, value_parser = fuel_per_call)]
    fuel: u64,
    /// Cap on the module's linear memory, in MiB: 1 to 4096 (all a wasm32 memory can address).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MEMORY_MIB, value_parser = memory_mib)]
    memory_mib: u64,
    /// Directory of the module's sealed state (and of this simulated node's sealing secret);
    /// default $TEEMESH_HOME/run-state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// The module's name (default: the file name without extension).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

/// `--fuel`: a number in [`LimitSetting::FuelPerCall`]'s range (clap names the flag).
fn fuel_per_call(text: &str) -> Result<u64, String> {
    limit(LimitSetting::FuelPerCall, text)
}

/// `--memory-mib`: a number in [`LimitSetting::MemoryMib`]'s range.
fn memory_mib(text: &str) -> Result<u64, String> {
    limit(LimitSetting::MemoryMib, text)
}

fn limit(setting: LimitSetting, text: &str) -> Result<u64, String> {
    let value: u64 = text.parse().map_err(|e| format!("{e}"))?;
    setting.check(value).map_err(|e| e.to_string())
}

/// The guest returned `Err` (exit code 1; the JSON on stdout carries its message).
#[derive(Debug)]
pub(crate) struct GuestRefused(pub(crate) String);

impl std::fmt::Display for GuestRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the module returned an error: {}", self.0)
    }
}

impl std::error::Error for GuestRefused {}

pub(crate) fn run(args: &RunArgs) -> Result<()> {
    serde_json::from_str::<Value>(&args.arg)
        .with_context(|| format!("--arg is not JSON: {:?}", args.arg))?;
    let bytes = std::fs::read(&args.module)
        .with_context(|| format!("cannot read {}", args.module.display()))?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => args
            .module
            .file_stem()
            .map_or_else(|| "module".to_owned(), |s| s.to_string_lossy().into_owned()),
    };

    let attester = Arc::new(
        platform::Simulated::for_this_executable()
            .context("cannot measure this executable for the simulated node")?,
    );
    let identity = Arc::new(
        NodeIdentity::generate(attester, "teemesh-run", UnixTime::now())
            .context("cannot create the simulated node identity")?,
    );
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| teemesh_home().join("run-state"));
    let secret = NodeSecret::load_or_create(&state_dir.join("node-sealing-secret"))?;
    let deadline_ms = u64::try_from(DEFAULT_DEADLINE.as_millis()).unwrap_or(u64::MAX);
    let limits = Limits::from_settings(args.fuel, args.memory_mib, deadline_ms)?;
    let sink = Arc::new(CollectingSink::new());
    let config = RuntimeConfig::new(identity.clone())
        .with_limits(limits)
        .with_sealed_state(&state_dir, secret)
        .with_sink(sink.clone())
        .with_router(Arc::new(Unconnected));
    let runtime = Runtime::new(config)?;
    let mut module = runtime
        .load(&name, &bytes)
        .with_context(|| format!("cannot load {}", args.module.display()))?;

    eprintln!(
        "WARNING: running on a SIMULATED node: no hardware protects this module, its state or \
         the key signing its claims; verifiers refuse it unless their policy sets allow_simulated"
    );
    let outcome = module.call_entry(&args.entry, args.arg.as_bytes());
    let (result, error) = match outcome {
        Ok(bytes) => (Some(bytes), None),
        Err(RuntimeError::Guest { message, .. }) => (None, Some(message)),
        Err(e) => return Err(e.into()),
    };
    let outputs: Vec<Value> = sink
        .take()
        .into_iter()
        .map(|event| {
            let (data, encoding) = json_or_hex(&event.data);
            json!({"output": event.output, "data": data, "encoding": encoding})
        })
        .collect();
    let (result_value, result_encoding) = match &result {
        Some(bytes) => {
            let (value, encoding) = json_or_hex(bytes);
            (value, Value::from(encoding))
        }
        None => (Value::Null, Value::Null),
    };
    let signed = module.signed_claims();
    let report = json!({
        "module": module.name(),
        "measurement": module.measurement().to_hex(),
        "manifest": module.manifest(),
        "entry": args.entry,
        "result": result_value,
        "result_encoding": result_encoding,
        "error": error,
        "outputs": outputs,
        "logs": module.log_count(),
        "module_claims": {
            "claims": signed.claims,
            "signature": signed.signature,
            "node_certificate": base64::engine::general_purpose::STANDARD
                .encode(identity.certificate()),
        },
        "simulated": true,
    });
    println!("{report}");
    match error {
        Some(message) => Err(GuestRefused(message).into()),
        None => Ok(()),
    }
}

/// The bytes as JSON when they parse as JSON, else as lower-case hex.
pub(crate) fn json_or_hex(bytes: &[u8]) -> (Value, &'static str) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => (value, "json"),
        Err(_) => (Value::String(hex::encode(bytes)), "hex"),
    }
}
