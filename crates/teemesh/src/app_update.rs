//! `teemesh app update MODULE NEW.wasm` and `teemesh app rekey [MODULE]`: changing a deployed
//! application while its events flow.
//!
//! An update happens in place on the module's node ([`Op::Update`]): the node compiles the new
//! version aside, then swaps it in between two deliveries, so events queued for the module wait
//! for the new version and none is lost or delivered twice; the sealed state is handed over
//! (resealed under the new measurement) and the connection ends stay attached with their
//! counters. The deployer then verifies the claims the node signs for the new version (its
//! measurement must be the new file's) and re-keys every connection of the module: the new key
//! is wrapped to the new version's channel key and to the peer's (whose claims are verified
//! again too), staged at both ends, then activated ([`Op::Rekey`]), so the old version's keys
//! retire without an event being refused on the way.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use attest::Digest256;
use node::AdminClient;
use node::protocol::{EventProtection, ModuleManifest, Op, Reply};
use serde_json::json;

use crate::admin_cmd::refusal;
use crate::app_run::{Access, StateArgs, connect_verified};
use crate::app_state::AppState;
use crate::wire::{AttestedModule, Endpoint, connection_specs, verify_claims};

fn step(n: usize, total: usize, what: &str) {
    eprintln!("[{n}/{total}] {what}");
}

/// `teemesh app update MODULE NEW.wasm [--measurement HEX]`.
pub(crate) fn update(
    args: &StateArgs,
    module: &str,
    wasm_path: &Path,
    expect: Option<&str>,
) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (mut state, path) = args.state_file()?;
        state.require_enabled()?;
        let current = state.module(module)?.clone();
        let node = state.node(&current.node)?.clone();

        step(1, 4, &format!("reading {}", wasm_path.display()));
        let wasm = std::fs::read(wasm_path)
            .with_context(|| format!("cannot read {}", wasm_path.display()))?;
        let measurement = Digest256::of(&wasm).0;
        let measurement_hex = hex::encode(measurement);
        match expect {
            Some(expected) if !expected.eq_ignore_ascii_case(&measurement_hex) => bail!(
                "{} has measurement {measurement_hex}, not the {expected} given with --measurement",
                wasm_path.display()
            ),
            Some(_) => {}
            None if pins_reference_values(&state, module) => bail!(
                "app {} pins reference measurements, so the new version needs one too: rerun with --measurement {measurement_hex} once you have checked that this is the code you mean to run",
                state.app
            ),
            None => eprintln!(
                "      no reference measurement required (the descriptor pins none); the new version is {measurement_hex}"
            ),
        }
        if measurement_hex == current.measurement {
            eprintln!("      this is the code {module} runs already; it is reloaded and re-keyed");
        }
        eprintln!(
            "      {module}: {} → {}",
            short(&current.measurement),
            short(&measurement_hex)
        );

        let access = args.access()?;
        step(
            2,
            4,
            &format!("updating {module} in place on {} ({})", node.name, node.address),
        );
        let (mut client, verifier) = connect_verified(&access, &node).await?;
        let reply = client
            .request(Op::Update {
                name: module.to_owned(),
                wasm: node::protocol::Bytes(wasm),
            })
            .await
            .map_err(|e| refusal(e).context(format!("module {module}: update")))?;
        let Reply::Module(info) = reply else {
            bail!("module {module}: the node did not answer the update");
        };

        step(3, 4, "verifying the claims the node signs for the new version");
        let fresh = verify_claims(&mut client, &verifier, module, measurement, info.manifest)
            .await
            .with_context(|| format!("module {module} after its update"))?;
        eprintln!(
            "      measurement verified, new channel key {}",
            short(&fresh.channel_key.to_string())
        );
        // The node runs the new version from here on: record it before anything else can fail.
        if let Some(entry) = state.modules.iter_mut().find(|m| m.name == module) {
            entry.measurement = measurement_hex.clone();
            entry.channel_key = fresh.channel_key.to_string();
            entry.wasm = Some(std::fs::canonicalize(wasm_path).unwrap_or(wasm_path.to_owned()));
        }
        state.save(&path)?;

        let connections = state.connections_of(Some(module)).len();
        step(4, 4, &format!("re-keying {connections} connections"));
        let mut sessions = Sessions::new(&access);
        sessions.insert(&node.name, client, verifier);
        let rekeyed = rekey_connections(&state, &mut sessions, Some(module), Some(fresh))
            .await
            .with_context(|| {
                format!(
                    "{module} runs its new version, but re-keying failed; `teemesh app rekey {module}` tries again"
                )
            })?;
        println!(
            "{}",
            json!({
                "app": state.app,
                "updated": module,
                "node": node.name,
                "measurement": measurement_hex,
                "previous_measurement": current.measurement,
                "rekeyed": rekeyed,
                "simulated": state.simulated,
            })
        );
        Ok(())
    })
}

/// `teemesh app migrate MODULE --to NODE [--wasm FILE]`.
pub(crate) fn migrate(
    args: &StateArgs,
    module: &str,
    to: &str,
    wasm_path: Option<&Path>,
) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (mut state, path) = args.state_file()?;
        state.require_enabled()?;
        let current = state.module(module)?.clone();
        let from_node = state.node(&current.node)?.clone();
        let to_node = state
            .node(to)
            .with_context(|| format!("--to {to}: not a node of app {}", state.app))?
            .clone();
        if from_node.name == to_node.name {
            bail!("{module} runs on {to} already");
        }
        if let Some(topic) = state
            .topics
            .iter()
            .find(|t| t.port.split_once('.').is_some_and(|(m, _)| m == module))
        {
            bail!(
                "{module} has MQTT topic ends ({} {:?} on {}), which do not migrate: its broker session lives in its node; undeploy it (teemesh app reset) and deploy it on {to} instead",
                topic.direction,
                topic.topic,
                topic.broker
            );
        }
        const STEPS: usize = 6;

        step(1, STEPS, &format!("reading {module}'s component"));
        let file = wasm_path
            .map(Path::to_owned)
            .or_else(|| current.wasm.clone())
            .with_context(|| {
                format!(
                    "the state file does not say which file {module} was loaded from; give it with --wasm FILE"
                )
            })?;
        let wasm =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let measurement = Digest256::of(&wasm).0;
        if hex::encode(measurement) != current.measurement {
            bail!(
                "{} has measurement {}, but {module} runs {}; a migration moves the same code (use `teemesh app update` to change it)",
                file.display(),
                hex::encode(measurement),
                current.measurement
            );
        }
        eprintln!("      {} ({} bytes)", file.display(), wasm.len());

        let access = args.access()?;
        let mut sessions = Sessions::new(&access);
        step(
            2,
            STEPS,
            &format!("loading {module} on {} and verifying its claims", to_node.name),
        );
        let fresh = {
            let (client, verifier) = sessions.client(&state, &to_node.name).await?;
            let verifier = verifier.clone();
            crate::wire::load_attested(client, &verifier, module, &wasm)
                .await
                .with_context(|| format!("on node {}", to_node.name))?
        };
        eprintln!(
            "      measurement verified, channel key {}",
            short(&fresh.channel_key.to_string())
        );

        step(
            3,
            STEPS,
            &format!(
                "stopping {module} on {} and sealing its state and connections to the new instance",
                from_node.name
            ),
        );
        // The old instance's claims, verified now: the new node checks the hand-over came
        // from the key they name.
        let old = sessions.attested(&state, module).await?;
        let exported = sessions
            .request(
                &state,
                &from_node.name,
                Op::Export {
                    module: module.to_owned(),
                    app: state.app.clone(),
                    recipient_claims: fresh.signed_claims_json.clone(),
                    recipient_certificate: node::protocol::Bytes(fresh.node_certificate.clone()),
                },
            )
            .await;
        let handover = match exported {
            Ok(Reply::Exported { handover }) => handover,
            other => {
                let _ = sessions
                    .request(&state, &to_node.name, Op::Unload { name: module.to_owned() })
                    .await;
                // The node serves the module again; events its senders parked meanwhile go
                // back to it, in order.
                release_to(&mut sessions, &state, module, &from_node.address).await;
                return match other {
                    Err(e) => Err(e.context(format!("module {module}: export"))),
                    Ok(_) => bail!("module {module}: the node did not answer the export"),
                };
            }
        };
        eprintln!("      hand-over of {} bytes", handover.0.len());

        step(4, STEPS, &format!("{module} on {} takes over", to_node.name));
        let imported = sessions
            .request(
                &state,
                &to_node.name,
                Op::Import {
                    module: module.to_owned(),
                    app: state.app.clone(),
                    handover,
                    sender_claims: old.signed_claims_json.clone(),
                    sender_certificate: node::protocol::Bytes(old.node_certificate.clone()),
                },
            )
            .await;
        if let Err(e) = imported {
            let _ = sessions
                .request(&state, &to_node.name, Op::Unload { name: module.to_owned() })
                .await;
            // The old instance serves again, but its keys and counters went into the hand-over:
            // it gets new keys before it sends, and the parked events go back to it.
            let back = async {
                sessions
                    .request(&state, &from_node.name, Op::Thaw { module: module.to_owned() })
                    .await?;
                sessions.attested.clear();
                rekey_connections(&state, &mut sessions, Some(module), None).await?;
                release_to(&mut sessions, &state, module, &from_node.address).await;
                Ok::<(), anyhow::Error>(())
            }
            .await;
            return Err(match back {
                Ok(()) => e.context(format!(
                    "module {module}: import (it serves on {} again, re-keyed)",
                    from_node.name
                )),
                Err(back) => e.context(format!(
                    "module {module}: import, and bringing it back on {} failed too ({back:#}); `teemesh app reset` and a new deploy recover",
                    from_node.name
                )),
            });
        }

        step(
            5,
            STEPS,
            "pointing the connections to it at its new node, and its timers",
        );
        let mut retargeted = Vec::new();
        for connection in state.connections.iter().filter(|c| {
            c.to.split_once('.').is_some_and(|(m, _)| m == module)
        }) {
            let (sender, _) = split_port(&connection.from)?;
            let sender_node = state.module(sender)?.node.clone();
            sessions
                .request(
                    &state,
                    &sender_node,
                    Op::Retarget {
                        app: state.app.clone(),
                        connection: connection.id,
                        module: sender.to_owned(),
                        peer_address: to_node.address.clone(),
                    },
                )
                .await
                .with_context(|| {
                    format!(
                        "connection #{} ({} → {}): {module} already runs on {}; rerun the migration's last steps with `teemesh app reset` and a new deploy if this persists",
                        connection.id, connection.from, connection.to, to_node.name
                    )
                })?;
            eprintln!(
                "      #{} {} → {}: now to {}",
                connection.id, connection.from, connection.to, to_node.address
            );
            retargeted.push(connection.id);
        }
        for periodic in state
            .periodic
            .iter()
            .filter(|p| p.to.split_once('.').is_some_and(|(m, _)| m == module))
        {
            let (_, input) = split_port(&periodic.to)?;
            let payload = periodic.payload_bytes()?;
            sessions
                .request(
                    &state,
                    &to_node.name,
                    Op::Periodic {
                        module: module.to_owned(),
                        input: input.to_owned(),
                        every_ms: periodic.every_ms,
                        payload: node::protocol::Bytes(payload),
                    },
                )
                .await
                .with_context(|| format!("the timer of {}", periodic.to))?;
            eprintln!("      every {} ms: {} on {}", periodic.every_ms, periodic.to, to_node.name);
        }

        step(
            6,
            STEPS,
            &format!(
                "removing the old instance from {} and re-keying",
                from_node.name
            ),
        );
        sessions
            .request(&state, &from_node.name, Op::Unload { name: module.to_owned() })
            .await
            .with_context(|| format!("unloading {module} from {}", from_node.name))?;
        if let Some(entry) = state.modules.iter_mut().find(|m| m.name == module) {
            entry.node = to_node.name.clone();
            entry.channel_key = fresh.channel_key.to_string();
            entry.wasm = Some(std::fs::canonicalize(&file).unwrap_or(file.clone()));
        }
        state.save(&path)?;
        sessions.attested.clear();
        let rekeyed = rekey_connections(&state, &mut sessions, Some(module), Some(fresh))
            .await
            .with_context(|| {
                format!(
                    "{module} runs on {}, but re-keying failed; `teemesh app rekey {module}` tries again",
                    to_node.name
                )
            })?;
        println!(
            "{}",
            json!({
                "app": state.app,
                "migrated": module,
                "from": from_node.name,
                "to": to_node.name,
                "retargeted": retargeted,
                "rekeyed": rekeyed,
                "simulated": state.simulated,
            })
        );
        Ok(())
    })
}

/// Points every connection to `module` at `address` again, which sends what their senders parked
/// and held while it was frozen, in order. Failures are reported, not returned: this runs on
/// the way out of a failed migration.
async fn release_to(sessions: &mut Sessions<'_>, state: &AppState, module: &str, address: &str) {
    for connection in state
        .connections
        .iter()
        .filter(|c| c.to.split_once('.').is_some_and(|(m, _)| m == module))
    {
        let Ok((sender, _)) = split_port(&connection.from) else {
            continue;
        };
        let Ok(sender_node) = state.module(sender).map(|m| m.node.clone()) else {
            continue;
        };
        let released = sessions
            .request(
                state,
                &sender_node,
                Op::Retarget {
                    app: state.app.clone(),
                    connection: connection.id,
                    module: sender.to_owned(),
                    peer_address: address.to_owned(),
                },
            )
            .await;
        if let Err(e) = released {
            eprintln!(
                "WARNING: connection #{} ({} → {}): events held for {module} were not released: {e:#}",
                connection.id, connection.from, connection.to
            );
        }
    }
}

/// `teemesh app rekey [MODULE]`: fresh keys for every connection (of `module`).
pub(crate) fn rekey(args: &StateArgs, module: Option<&str>) -> Result<()> {
    crate::async_runtime()?.block_on(async {
        let (state, _) = args.state_file()?;
        state.require_enabled()?;
        if let Some(module) = module {
            state.module(module)?;
        }
        let access = args.access()?;
        let mut sessions = Sessions::new(&access);
        let rekeyed = rekey_connections(&state, &mut sessions, module, None).await?;
        println!("{}", json!({"app": state.app, "rekeyed": rekeyed}));
        Ok(())
    })
}

/// True when the deployment pinned reference measurements for `module`: its descriptor says
/// so, or cannot be read any more (then the safe answer is yes).
fn pins_reference_values(state: &AppState, module: &str) -> bool {
    match mesh::Descriptor::load(&state.descriptor) {
        Ok(descriptor) => {
            let spec = descriptor.spec();
            spec.appraisal.require_reference_values
                || spec
                    .modules
                    .iter()
                    .any(|m| m.name.as_str() == module && m.measurement.is_some())
        }
        Err(_) => true,
    }
}

/// Admin sessions to the application's nodes, opened when first needed.
struct Sessions<'a> {
    access: &'a Access,
    open: BTreeMap<String, (AdminClient, std::sync::Arc<atls::PeerVerifier>)>,
    /// Modules whose claims were verified in this run.
    attested: BTreeMap<String, AttestedModule>,
}

impl<'a> Sessions<'a> {
    fn new(access: &'a Access) -> Self {
        Self {
            access,
            open: BTreeMap::new(),
            attested: BTreeMap::new(),
        }
    }

    fn insert(
        &mut self,
        node: &str,
        client: AdminClient,
        verifier: std::sync::Arc<atls::PeerVerifier>,
    ) {
        self.open.insert(node.to_owned(), (client, verifier));
    }

    async fn client(
        &mut self,
        state: &AppState,
        node: &str,
    ) -> Result<&mut (AdminClient, std::sync::Arc<atls::PeerVerifier>)> {
        if !self.open.contains_key(node) {
            let (client, verifier) = connect_verified(self.access, state.node(node)?).await?;
            self.open.insert(node.to_owned(), (client, verifier));
        }
        self.open
            .get_mut(node)
            .context("a session that was just opened")
    }

    /// The module's claims as its node signs them now, verified against the measurement the
    /// state file records for it.
    async fn attested(&mut self, state: &AppState, module: &str) -> Result<AttestedModule> {
        if let Some(done) = self.attested.get(module) {
            return Ok(done.clone());
        }
        let recorded = state.module(module)?;
        let measurement: [u8; 32] = hex::decode(&recorded.measurement)
            .ok()
            .and_then(|m| m.try_into().ok())
            .with_context(|| format!("module {module}: bad measurement in the state file"))?;
        let (client, verifier) = self.client(state, &recorded.node).await?;
        let verifier = verifier.clone();
        let done = verify_claims(
            client,
            &verifier,
            module,
            measurement,
            ModuleManifest::default(),
        )
        .await?;
        if done.channel_key.to_string() != recorded.channel_key {
            eprintln!(
                "      {module}: its channel key changed since deploy time (the node restarted it?)"
            );
        }
        self.attested.insert(module.to_owned(), done.clone());
        Ok(done)
    }

    async fn request(&mut self, state: &AppState, node: &str, op: Op) -> Result<Reply> {
        let (client, _) = self.client(state, node).await?;
        client.request(op).await.map_err(refusal)
    }
}

/// Re-keys every connection (of `only`): a fresh key wrapped to both ends' attested channel
/// keys, staged at the receiver and the sender, then activated at both. `fresh` is a module
/// whose claims were just verified (the updated one). Returns the connection ids.
async fn rekey_connections(
    state: &AppState,
    sessions: &mut Sessions<'_>,
    only: Option<&str>,
    fresh: Option<AttestedModule>,
) -> Result<Vec<u32>> {
    if let Some(fresh) = fresh {
        sessions.attested.insert(fresh.name.clone(), fresh);
    }
    let mut done = Vec::new();
    for connection in state.connections_of(only) {
        let (from_module, from_port) = split_port(&connection.from)?;
        let (to_module, to_port) = split_port(&connection.to)?;
        let from = sessions.attested(state, from_module).await?;
        let to = sessions.attested(state, to_module).await?;
        let to_node = state.node(&state.module(to_module)?.node)?.clone();
        let from_node = state.module(from_module)?.node.clone();
        let protection = match connection.protection.as_str() {
            "authenticated" => EventProtection::Authenticated,
            _ => EventProtection::Encrypted,
        };
        let (receiver, sender) = connection_specs(
            &state.app,
            connection.id,
            protection,
            &Endpoint {
                module: &from,
                port: from_port,
            },
            &Endpoint {
                module: &to,
                port: to_port,
            },
            &to_node.address,
        )?;
        // Both ends accept the new key before either sends under it.
        for activate in [false, true] {
            sessions
                .request(
                    state,
                    &to_node.name,
                    Op::Rekey {
                        spec: receiver.clone(),
                        activate,
                    },
                )
                .await
                .with_context(|| format!("connection #{} at {}", connection.id, connection.to))?;
            sessions
                .request(
                    state,
                    &from_node,
                    Op::Rekey {
                        spec: sender.clone(),
                        activate,
                    },
                )
                .await
                .with_context(|| format!("connection #{} at {}", connection.id, connection.from))?;
        }
        eprintln!(
            "      #{} {} → {}: new key",
            connection.id, connection.from, connection.to
        );
        done.push(connection.id);
    }
    Ok(done)
}

fn split_port(reference: &str) -> Result<(&str, &str)> {
    reference
        .split_once('.')
        .with_context(|| format!("{reference:?} in the state file is not module.port"))
}

fn short(hex: &str) -> String {
    format!("{}…", &hex[..hex.len().min(16)])
}
