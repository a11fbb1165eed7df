//! `teemesh app status|call|output`: using a deployed application through its state file. Every
//! command appraises the nodes again under the policies they were deployed with before it
//! trusts an answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use atls::PeerVerifier;
use attest::{AppraisalPolicy, Endorsements};
use node::protocol::{Bytes, CallKind, Op, Reply};
use node::{AdminClient, AdminKey};
use serde_json::{Value, json};

use crate::admin_cmd::refusal;
use crate::app_state::{AppState, NodeState};
use crate::run_cmd::json_or_hex;

/// Which deployment, and how to reach its nodes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StateArgs {
    /// The application (default: the only one deployed from $TEEMESH_HOME).
    #[arg(long)]
    app: Option<String>,
    /// The deployment state file (default $TEEMESH_HOME/apps/<app>.json).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The admin key (default $TEEMESH_HOME/admin-key.pem).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Endorsements for the nodes' evidence; repeatable.
    #[arg(long = "endorsements", value_name = "FILE")]
    endorsements: Vec<PathBuf>,
}

/// The admin key and endorsements a command reaches its nodes with, read once.
pub(crate) struct Access {
    key: AdminKey,
    endorsements: Endorsements,
}

impl StateArgs {
    pub(crate) fn state_file(&self) -> Result<(AppState, PathBuf)> {
        AppState::load(self.state.as_deref(), self.app.as_deref())
    }

    pub(crate) fn access(&self) -> Result<Access> {
        Ok(Access {
            key: crate::home::admin_key(self.key.as_deref())?,
            endorsements: Endorsements::load(&self.endorsements)?,
        })
    }
}

async fn connect(access: &Access, node: &NodeState) -> Result<AdminClient> {
    Ok(connect_verified(access, node).await?.0)
}

/// An admin session with `node`, appraised under the policy it was deployed with, and the
/// verifier that appraised it (for the claims of its modules).
pub(crate) async fn connect_verified(
    access: &Access,
    node: &NodeState,
) -> Result<(AdminClient, Arc<PeerVerifier>)> {
    let policy = AppraisalPolicy::from_toml(&node.policy)
        .with_context(|| format!("node {}: the state file's policy", node.name))?;
    let verifier = Arc::new(PeerVerifier::new(policy, access.endorsements.clone()));
    let client = AdminClient::connect(&node.address, &access.key, verifier.clone())
        .await
        .map_err(|e| refusal(e).context(format!("node {} at {}", node.name, node.address)))?;
    let measurement = client
        .attestation
        .verified
        .claims()
        .primary_measurement_hex();
    if measurement != node.measurement {
        eprintln!(
            "WARNING: node {} now proves measurement {measurement}, not the {} it had at deploy time (updated node software?)",
            node.name, node.measurement
        );
    }
    Ok((client, verifier))
}

/// `teemesh app status`: every module with its calls and its connections' counters.
pub(crate) fn status(args: &StateArgs) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (state, path) = AppState::load(args.state.as_deref(), args.app.as_deref())?;
        let access = args.access()?;
        let mut modules = Vec::new();
        for node in &state.nodes {
            let mut client = connect(&access, node).await?;
            let Reply::Modules(list) = client.request(Op::List).await.map_err(refusal)? else {
                bail!("node {} did not list its modules", node.name);
            };
            for module in state.modules.iter().filter(|m| m.node == node.name) {
                let Some(info) = list.iter().find(|i| i.name == module.name) else {
                    modules.push(json!({"name": module.name, "node": node.name, "running": false}));
                    continue;
                };
                if info.measurement != module.measurement {
                    eprintln!(
                        "WARNING: module {} on {} now has measurement {}, not the deployed {}",
                        module.name, node.name, info.measurement, module.measurement
                    );
                }
                modules.push(json!({
                    "name": module.name,
                    "node": node.name,
                    "running": true,
                    "measurement": info.measurement,
                    "calls": info.calls,
                    "failures": info.failures,
                    "last_error": info.last_error,
                    "connections": info.connections,
                    "topics": info.topics,
                }));
            }
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "app": state.app,
                "state": path,
                "simulated": state.simulated,
                "disabled": state.disabled,
                "modules": modules,
            }))?
        );
        Ok(())
    })
}

/// `teemesh app call MODULE ENTRY [ARG]` (an exposed entry, `kind` Entry) and `teemesh app
/// request MODULE HANDLER [ARG]` (a request to an exposed handler, `kind` Handler).
pub(crate) fn call(
    args: &StateArgs,
    module: &str,
    entry: &str,
    arg: Option<&str>,
    kind: CallKind,
) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (state, _) = AppState::load(args.state.as_deref(), args.app.as_deref())?;
        state.require_enabled()?;
        let target = format!("{module}.{entry}");
        if !state.expose.contains(&target) {
            bail!(
                "{target} is not exposed by app {} (exposed: {})",
                state.app,
                if state.expose.is_empty() {
                    "none".to_owned()
                } else {
                    state.expose.join(", ")
                }
            );
        }
        let node = state.node(&state.module(module)?.node)?;
        let mut client = connect(&args.access()?, node).await?;
        let reply = client
            .request(Op::Call {
                module: module.to_owned(),
                kind,
                port: entry.to_owned(),
                data: Bytes(arg.unwrap_or("").as_bytes().to_vec()),
            })
            .await
            .map_err(refusal)?;
        let Reply::Called { data, outputs } = reply else {
            bail!("the node did not answer the call");
        };
        let (value, encoding) = json_or_hex(&data.0);
        println!(
            "{}",
            json!({"result": value, "result_encoding": encoding, "outputs": outputs})
        );
        Ok(())
    })
}

/// `teemesh app output MODULE [OUTPUT] [--follow]`: the module's output events, one JSON line
/// each (taken from the node's queue).
pub(crate) fn output(
    args: &StateArgs,
    module: &str,
    output: Option<&str>,
    follow: bool,
) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (state, _) = AppState::load(args.state.as_deref(), args.app.as_deref())?;
        state.require_enabled()?;
        let node = state.node(&state.module(module)?.node)?;
        let mut client = connect(&args.access()?, node).await?;
        loop {
            let reply = client
                .request(Op::Outputs {
                    module: module.to_owned(),
                    max: 1000,
                })
                .await
                .map_err(refusal)?;
            let Reply::Outputs { events, dropped } = reply else {
                bail!("the node did not answer");
            };
            for event in events
                .into_iter()
                .filter(|e| output.is_none_or(|o| e.output == o))
            {
                let (data, encoding): (Value, &str) = json_or_hex(&event.data.0);
                println!(
                    "{}",
                    json!({"seq": event.seq, "output": event.output, "data": data, "encoding": encoding, "dropped_before": dropped})
                );
            }
            if !follow {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// `teemesh app disable` (unload every module; their sealed state stays on the nodes, bound to
/// their measurements; the state file stays, marked disabled) and `teemesh app reset` (the same,
/// then the state file is removed so the application can be deployed afresh). Either way the
/// connection keys are gone: they lived only in the unloaded modules' channels.
pub(crate) fn stop(args: &StateArgs, remove_state: bool) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (mut state, path) = AppState::load(args.state.as_deref(), args.app.as_deref())?;
        let access = args.access()?;
        let mut unloaded = Vec::new();
        for node in &state.nodes {
            let modules: Vec<&str> = state
                .modules
                .iter()
                .filter(|m| m.node == node.name)
                .map(|m| m.name.as_str())
                .collect();
            if modules.is_empty() {
                continue;
            }
            let mut client = connect(&access, node).await?;
            for module in modules {
                match client
                    .request(Op::Unload {
                        name: module.to_owned(),
                    })
                    .await
                {
                    Ok(_) => {
                        eprintln!("      {module} on {}: stopped", node.name);
                        unloaded.push(module.to_owned());
                    }
                    Err(node::NodeError::Remote(e))
                        if e.kind == node::protocol::ErrorKind::NotFound =>
                    {
                        eprintln!("      {module} on {}: not loaded", node.name);
                    }
                    Err(e) => return Err(refusal(e).context(format!("module {module}"))),
                }
            }
        }
        if remove_state {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        } else {
            state.disabled = true;
            state.save(&path)?;
        }
        println!(
            "{}",
            json!({"app": state.app, "stopped": unloaded, "state": if remove_state { Value::Null } else { json!(path) }})
        );
        Ok(())
    })
}
