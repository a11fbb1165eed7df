//! `teemesh admin`: the operator's side of a node's admin API. Connects over attested TLS with
//! the admin key in $TEEMESH_HOME (created on first use, mode 0600, never printed), appraises
//! the node under `--policy` and reports the result on stderr (a refused node: exit 1), then
//! runs one command and prints one JSON object.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use atls::{PeerVerifier, SignedModuleClaims, verify_module_claims};
use attest::Endorsements;
use clap::{Args, Subcommand};
use node::protocol::{CallKind, ErrorKind, Op, Reply};
use node::{AdminClient, AdminKey, NodeError};
use serde_json::{Value, json};

use crate::atls_cmd::PeerRefused;
use crate::attest_cmd::load_policy;
use crate::run_cmd::{GuestRefused, json_or_hex};

#[derive(Debug, Args)]
pub(crate) struct AdminArgs {
    /// The node's admin address, HOST:PORT (not needed for `key`).
    #[arg(long, value_name = "ADDR", global = true)]
    node: Option<String>,
    /// Appraisal policy for the node (TOML); default: the strict default policy.
    #[arg(long, value_name = "FILE", global = true)]
    policy: Option<PathBuf>,
    /// Endorsements for the node's evidence (Intel collateral, AMD certificates); repeatable.
    #[arg(long, value_name = "FILE|DIR", global = true)]
    endorsements: Vec<PathBuf>,
    /// The admin key (default $TEEMESH_HOME/admin-key.pem, created if missing).
    #[arg(long, value_name = "FILE", global = true)]
    key: Option<PathBuf>,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Print this admin key's hash (sha256:<hex>), for a node's admin.authorized_keys.
    Key,
    /// The node's name, platform, uptime and module count.
    Status,
    /// Upload a module (a WebAssembly component) under a name.
    Load {
        /// The module's name on the node.
        name: String,
        /// The component.
        #[arg(value_name = "FILE.wasm")]
        file: PathBuf,
    },
    /// The loaded modules: measurement, manifest, calls, last error.
    List,
    /// Stop and forget a module (its sealed state stays with its measurement).
    Unload {
        /// The module.
        name: String,
    },
    /// Call an entry.
    Call {
        /// The module.
        module: String,
        /// The entry.
        entry: String,
        /// The argument, JSON.
        #[arg(long, value_name = "JSON", default_value = "{}")]
        arg: String,
    },
    /// Deliver an event to an input.
    Input {
        /// The module.
        module: String,
        /// The input.
        input: String,
        /// The event, JSON.
        json: String,
    },
    /// Send a request to a handler.
    Request {
        /// The module.
        module: String,
        /// The handler.
        handler: String,
        /// The request, JSON.
        #[arg(default_value = "{}")]
        json: String,
    },
    /// Take a module's buffered output events.
    Outputs {
        /// The module.
        module: String,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        max: u32,
    },
    /// The module claims the node signed for a module, verified against the node's evidence.
    Claims {
        /// The module.
        module: String,
    },
}

pub(crate) fn run(args: AdminArgs) -> Result<()> {
    let key = crate::home::admin_key(args.key.as_deref())?;
    if let AdminCommand::Key = args.command {
        println!("{}", key.hash_string());
        return Ok(());
    }
    let addr = args
        .node
        .clone()
        .context("--node ADDR is required for this command")?;
    let runtime = crate::async_runtime()?;
    runtime.block_on(session(args, &addr, &key))
}

/// Maps refusals to exit code 1 with a one-line reason, like `attest peer`.
pub(crate) fn refusal(e: NodeError) -> anyhow::Error {
    match e {
        NodeError::Refused(m) => PeerRefused(m).into(),
        NodeError::Unauthorised(m) => {
            PeerRefused(format!("the node refused this admin key: {m}")).into()
        }
        NodeError::Remote(r) if r.kind == ErrorKind::GuestError => GuestRefused(r.message).into(),
        other => other.into(),
    }
}

async fn session(args: AdminArgs, addr: &str, key: &AdminKey) -> Result<()> {
    let policy = load_policy(args.policy.as_ref())?;
    let endorsements = Endorsements::load(&args.endorsements)?;
    let verifier = Arc::new(PeerVerifier::new(policy, endorsements));
    let mut client = AdminClient::connect(addr, key, verifier.clone())
        .await
        .map_err(refusal)?;
    let att = &client.attestation;
    for w in att.verified.warnings() {
        eprintln!("WARNING: {w}");
    }
    eprintln!(
        "teemesh: node {:?} at {addr} affirmed: platform {}{}, measurement {}, {}",
        client.hello.node,
        att.verified.claims().platform_kind(),
        if client.hello.simulated {
            " (SIMULATED)"
        } else {
            ""
        },
        att.verified.claims().primary_measurement_hex(),
        if att.fresh_in_session {
            "fresh evidence bound to this session"
        } else {
            "certificate evidence within the policy's max age"
        }
    );
    tracing::info!(node = %client.hello.node, %addr, "node affirmed");
    let op = match &args.command {
        AdminCommand::Key => unreachable!("handled before connecting"),
        AdminCommand::Status => Op::Status,
        AdminCommand::List => Op::List,
        AdminCommand::Load { name, file } => {
            let wasm =
                std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
            if wasm.len() > node::protocol::MAX_MODULE_LEN {
                anyhow::bail!(
                    "{} has {} bytes; a module upload is at most {} bytes",
                    file.display(),
                    wasm.len(),
                    node::protocol::MAX_MODULE_LEN
                );
            }
            Op::Load {
                name: name.clone(),
                wasm: wasm.into(),
            }
        }
        AdminCommand::Unload { name } => Op::Unload { name: name.clone() },
        AdminCommand::Call { module, entry, arg } => call(module, CallKind::Entry, entry, arg)?,
        AdminCommand::Input {
            module,
            input,
            json,
        } => call(module, CallKind::Input, input, json)?,
        AdminCommand::Request {
            module,
            handler,
            json,
        } => call(module, CallKind::Handler, handler, json)?,
        AdminCommand::Outputs { module, max } => Op::Outputs {
            module: module.clone(),
            max: *max,
        },
        AdminCommand::Claims { module } => Op::Claims {
            module: module.clone(),
        },
    };
    let reply = client.request(op).await.map_err(refusal)?;
    let out = match reply {
        Reply::Status(status) => serde_json::to_value(status)?,
        Reply::Module(info) => json!({"loaded": info}),
        Reply::Modules(list) => json!({"modules": list}),
        Reply::Unloaded => json!({"unloaded": true}),
        Reply::Called { data, outputs } => {
            let (value, encoding) = json_or_hex(&data.0);
            let (value, encoding) = if data.0.is_empty() {
                (Value::Null, "none")
            } else {
                (value, encoding)
            };
            json!({"result": value, "result_encoding": encoding, "outputs": outputs})
        }
        Reply::Outputs { events, dropped } => {
            let events: Vec<Value> = events
                .into_iter()
                .map(|e| {
                    let (data, encoding) = json_or_hex(&e.data.0);
                    json!({"seq": e.seq, "output": e.output, "data": data, "encoding": encoding})
                })
                .collect();
            json!({"events": events, "dropped": dropped})
        }
        Reply::Claims {
            signed_claims_json,
            node_certificate,
        } => {
            let signed: SignedModuleClaims = serde_json::from_str(&signed_claims_json)
                .context("the node sent malformed module claims")?;
            if node_certificate.0 != client.node_certificate {
                return Err(PeerRefused(
                    "the module claims name another node certificate than this session's".into(),
                )
                .into());
            }
            let verified = verify_module_claims(&node_certificate.0, &signed, &verifier)
                .map_err(|e| PeerRefused(format!("module claims: {e}")))?;
            json!({
                "verified": true,
                "claims": signed.claims,
                "signature": signed.signature,
                "node_platform": verified.node().verified.claims().platform_kind().as_str(),
            })
        }
        Reply::Hello { .. } => json!({"hello": true}),
        Reply::Connected => json!({"connected": true}),
        Reply::Scheduled => json!({"scheduled": true}),
        Reply::Answer { envelope } => json!({"answer_bytes": envelope.0.len()}),
        Reply::Exported { handover } => json!({"handover_bytes": handover.0.len()}),
        Reply::Delivered { counter, missing } => json!({"delivered": counter, "missing": missing}),
    };
    println!("{out}");
    Ok(())
}

fn call(module: &str, kind: CallKind, port: &str, json_text: &str) -> Result<Op> {
    serde_json::from_str::<Value>(json_text)
        .with_context(|| format!("the {} payload is not JSON: {json_text:?}", kind.as_str()))?;
    Ok(Op::Call {
        module: module.to_owned(),
        kind,
        port: port.to_owned(),
        data: json_text.as_bytes().into(),
    })
}
