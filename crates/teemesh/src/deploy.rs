//! `teemesh deploy APP.yaml`: the deployer. It appraises every node under the policy the
//! descriptor gives it, uploads each module and verifies the claims the node signs for it
//! (measurement against the pinned reference value or the file's own hash, channel key), calls
//! each module's `configure` entry with its `config`, then wires every connection with a fresh
//! random key wrapped (HPKE) to the receiving and the sending module's attested channel keys, and
//! writes a state file that holds no secret. Progress goes to stderr step by step; the summary to
//! stdout as JSON. If a step fails, the modules it already loaded are unloaded again. Modules
//! given as source are built first (`build_module.rs`) and then treated like any other file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use atls::PeerVerifier;
use attest::{Digest256, Endorsements};
use mesh::Descriptor;
use mesh::descriptor::{EndSpec, ModuleCode, ModuleSpec, PortKind, Protection};
use node::AdminClient;
use node::protocol::{
    Bytes, CallKind, EventProtection, ModuleManifest, Op, Reply, TopicDirection, TopicSpec,
};
use serde_json::json;

use crate::admin_cmd::refusal;
use crate::app_state::{
    AppState, ConnectionState, ModuleState, NodeState, PeriodicState, TopicState, default_path,
};
use crate::atls_cmd::PeerRefused;
use crate::build_module::SourceBuilder;
use crate::wire::{AttestedModule, Endpoint, connection_specs, verify_claims};

/// Arguments of `teemesh deploy`.
#[derive(Debug, clap::Args)]
pub(crate) struct DeployArgs {
    /// The application descriptor (YAML).
    #[arg(value_name = "APP.yaml")]
    descriptor: PathBuf,
    /// Where to write the deployment state (default $TEEMESH_HOME/apps/<app>.json).
    #[arg(long)]
    state: Option<PathBuf>,
    /// The admin key the nodes authorise (default $TEEMESH_HOME/admin-key.pem).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Endorsements for the nodes' evidence (Intel collateral, AMD certificates); repeatable.
    #[arg(long = "endorsements", value_name = "FILE")]
    endorsements: Vec<PathBuf>,
}

const STEPS: usize = 6;

fn step(n: usize, what: &str) {
    eprintln!("[{n}/{STEPS}] {what}");
}

pub(crate) fn run(args: &DeployArgs) -> Result<()> {
    crate::async_runtime()?.block_on(deploy(args))
}

/// One module ready to upload.
struct Prepared<'a> {
    spec: &'a ModuleSpec,
    wasm: Vec<u8>,
    /// The component's file.
    path: Option<std::path::PathBuf>,
}

/// A module loaded and attested, and the node it is on.
struct Attested {
    node: usize,
    module: AttestedModule,
}

async fn deploy(args: &DeployArgs) -> Result<()> {
    let descriptor = Descriptor::load(&args.descriptor)?;
    let spec = descriptor.spec();
    let app = spec.app.as_str();

    step(
        1,
        &format!("reading the {} modules of {app}", spec.modules.len()),
    );
    let mut prepared = Vec::with_capacity(spec.modules.len());
    let mut sources = SourceBuilder::default();
    for module in &spec.modules {
        let file;
        let wasm = match module.code() {
            Some(ModuleCode::Wasm(path)) => {
                let path = descriptor.resolve(path);
                let bytes = std::fs::read(&path).with_context(|| {
                    format!("module {}: cannot read {}", module.name, path.display())
                })?;
                file = Some(std::fs::canonicalize(&path).unwrap_or(path));
                bytes
            }
            Some(ModuleCode::Source { dir, language }) => {
                let bytes =
                    sources.build(module.name.as_str(), &descriptor.resolve(dir), language)?;
                file = Some(crate::build_module::component_file(&bytes));
                bytes
            }
            None => bail!("module {}: no code", module.name),
        };
        let measurement = Digest256::of(&wasm).0;
        match module.measurement {
            Some(pinned) if pinned.0 != measurement => bail!(
                "module {}: the file has measurement {}, the descriptor pins {}",
                module.name,
                hex::encode(measurement),
                hex::encode(pinned.0)
            ),
            None if spec.appraisal.require_reference_values => bail!(
                "module {}: no reference measurement pinned, and appraisal.require_reference_values is true",
                module.name
            ),
            _ => {}
        }
        eprintln!(
            "      {} ({} bytes, measurement {})",
            module.name,
            wasm.len(),
            hex::encode(measurement)
        );
        prepared.push(Prepared {
            spec: module,
            wasm,
            path: file,
        });
    }

    step(2, &format!("attesting {} nodes", spec.nodes.len()));
    let key = crate::home::admin_key(args.key.as_deref())?;
    let endorsements = Endorsements::load(&args.endorsements)?;
    let mut clients = Vec::with_capacity(spec.nodes.len());
    let mut verifiers = Vec::with_capacity(spec.nodes.len());
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    for node in &spec.nodes {
        let policy = descriptor
            .node_policy(node.name.as_str())
            .with_context(|| format!("node {}: no policy", node.name))?
            .clone();
        let verifier = Arc::new(PeerVerifier::new(policy.clone(), endorsements.clone()));
        let address = node.address.to_string();
        let client = AdminClient::connect(&address, &key, verifier.clone())
            .await
            .map_err(|e| refusal(e).context(format!("node {} at {address}", node.name)))?;
        let claims = client.attestation.verified.claims();
        let platform = claims.platform_kind().as_str();
        if platform != node.platform.to_string() {
            return Err(PeerRefused(format!(
                "node {} at {address} proved platform {platform}, the descriptor expects {}",
                node.name, node.platform
            ))
            .into());
        }
        for warning in client.attestation.verified.warnings() {
            eprintln!("WARNING: node {}: {warning}", node.name);
        }
        let measurement = claims.primary_measurement_hex();
        eprintln!(
            "      {} at {address}: affirmed, platform {platform}{}, measurement {}",
            node.name,
            if client.hello.simulated {
                " (SIMULATED: no hardware protection)"
            } else {
                ""
            },
            short(&measurement)
        );
        nodes.push(NodeState {
            name: node.name.to_string(),
            address,
            platform: platform.to_owned(),
            policy: policy.to_toml(),
            measurement,
        });
        clients.push(client);
        verifiers.push(verifier);
    }

    step(
        3,
        "loading the modules and verifying the claims their nodes sign",
    );
    let mut attested: Vec<Attested> = Vec::with_capacity(prepared.len());
    let mut loaded: Vec<(usize, String)> = Vec::new();
    let outcome = async {
        for module in &prepared {
            let node = spec
                .nodes
                .iter()
                .position(|n| n.name == module.spec.node)
                .context("module on an unknown node")?;
            let name = module.spec.name.to_string();
            let reply = clients[node]
                .request(Op::Load {
                    name: name.clone(),
                    wasm: Bytes(module.wasm.clone()),
                })
                .await
                .map_err(|e| refusal(e).context(format!("module {name}: load")))
                .with_context(|| format!("on node {}", nodes[node].name))?;
            // From here on a failure unloads it again, even one of its claims.
            loaded.push((node, name.clone()));
            let Reply::Module(info) = reply else {
                bail!("module {name}: the node did not answer the load");
            };
            let done = verify_claims(
                &mut clients[node],
                &verifiers[node],
                &name,
                Digest256::of(&module.wasm).0,
                info.manifest,
            )
            .await
            .with_context(|| format!("on node {}", nodes[node].name))?;
            check_ports(module.spec, &done.manifest)?;
            eprintln!(
                "      {name} on {}: measurement verified, channel key {}",
                nodes[node].name,
                short(&done.channel_key.to_string())
            );
            attested.push(Attested { node, module: done });
        }

        step(4, "configuring modules");
        for (module, done) in prepared.iter().zip(&attested) {
            let Some(config) = &module.spec.config else {
                continue;
            };
            let name = module.spec.name.to_string();
            clients[done.node]
                .request(Op::Call {
                    module: name.clone(),
                    kind: CallKind::Entry,
                    port: "configure".into(),
                    data: Bytes(serde_json::to_vec(config)?),
                })
                .await
                .map_err(|e| refusal(e).context(format!("module {name}: configure")))?;
            eprintln!("      {name}: configured");
        }

        step(
            5,
            &format!(
                "wiring {} connections (between modules each with a fresh key; topic ends through \
                 the nodes' MQTT clients) and {} periodic sources",
                spec.connections.len(),
                spec.periodic.len()
            ),
        );
        let mut connections = Vec::new();
        let mut topics = Vec::new();
        for (i, connection) in spec.connections.iter().enumerate() {
            let id = u32::try_from(i + 1).context("too many connections")?;
            let (from_port, to_port) = match (&connection.from, &connection.to) {
                (EndSpec::Port(from), EndSpec::Port(to)) => (from, to),
                (EndSpec::Port(port), EndSpec::Topic(topic))
                | (EndSpec::Topic(topic), EndSpec::Port(port)) => {
                    // An output publishes to its topic; an input subscribes to its own.
                    let direction = if matches!(connection.to, EndSpec::Topic(_)) {
                        TopicDirection::Publish
                    } else {
                        TopicDirection::Subscribe
                    };
                    topics.push(
                        attach_topic(
                            &descriptor,
                            &prepared,
                            &attested,
                            &mut clients,
                            port,
                            topic,
                            direction,
                        )
                        .await?,
                    );
                    continue;
                }
                (EndSpec::Topic(_), EndSpec::Topic(_)) => {
                    bail!("connection {id} has no module end")
                }
            };
            let from = index_of(&prepared, from_port.module.as_str())?;
            let to = index_of(&prepared, to_port.module.as_str())?;
            let protection = match connection.protection() {
                Protection::Encrypted => EventProtection::Encrypted,
                Protection::Authenticated => EventProtection::Authenticated,
            };
            let (receiver, sender) = connection_specs(
                app,
                id,
                protection,
                &Endpoint {
                    module: &attested[from].module,
                    port: from_port.port.as_str(),
                },
                &Endpoint {
                    module: &attested[to].module,
                    port: to_port.port.as_str(),
                },
                &nodes[attested[to].node].address,
            )?;
            clients[attested[to].node]
                .request(Op::Connect(receiver))
                .await
                .map_err(|e| refusal(e).context(format!("connection {}", connection.to)))?;
            clients[attested[from].node]
                .request(Op::Connect(sender))
                .await
                .map_err(|e| refusal(e).context(format!("connection {}", connection.from)))?;
            let protection = match protection {
                EventProtection::Encrypted => "encrypted",
                EventProtection::Authenticated => "authenticated",
            };
            eprintln!(
                "      #{id} {} → {} ({protection})",
                connection.from, connection.to
            );
            connections.push(ConnectionState {
                id,
                from: connection.from.to_string(),
                to: connection.to.to_string(),
                protection: protection.into(),
            });
        }
        for periodic in &spec.periodic {
            let module = index_of(&prepared, periodic.to.module.as_str())?;
            clients[attested[module].node]
                .request(Op::Periodic {
                    module: periodic.to.module.to_string(),
                    input: periodic.to.port.to_string(),
                    every_ms: u64::try_from(periodic.every.period().as_millis())
                        .context("period too long")?,
                    payload: Bytes(periodic.payload_bytes()),
                })
                .await
                .map_err(|e| refusal(e).context(format!("periodic events to {}", periodic.to)))?;
            eprintln!(
                "      every {:?}: an event to {} (a timer in its node)",
                periodic.every.period(),
                periodic.to
            );
        }
        Ok((connections, topics))
    }
    .await;

    // Unloading a module also ends its topic ends (the node closes their MQTT sessions).
    let (connections, topics) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // Leave the nodes as they were.
            for (node, name) in loaded.iter().rev() {
                let _ = clients[*node]
                    .request(Op::Unload { name: name.clone() })
                    .await;
            }
            return Err(e);
        }
    };

    step(6, "writing the deployment state");
    let state = AppState {
        app: app.to_owned(),
        descriptor: std::fs::canonicalize(&args.descriptor).unwrap_or(args.descriptor.clone()),
        deployed_at: attest::UnixTime::now().as_secs(),
        simulated: nodes.iter().any(|n| n.platform == "sim"),
        modules: prepared
            .iter()
            .zip(&attested)
            .map(|(module, done)| ModuleState {
                name: module.spec.name.to_string(),
                node: nodes[done.node].name.clone(),
                measurement: hex::encode(done.module.measurement),
                channel_key: done.module.channel_key.to_string(),
                wasm: module.path.clone(),
            })
            .collect(),
        nodes,
        connections,
        expose: spec.expose.iter().map(ToString::to_string).collect(),
        disabled: false,
        periodic: spec
            .periodic
            .iter()
            .map(|periodic| {
                PeriodicState::with_payload(
                    periodic.to.to_string(),
                    u64::try_from(periodic.every.period().as_millis()).unwrap_or(u64::MAX),
                    periodic.payload_bytes(),
                )
            })
            .collect(),
        topics,
    };
    let path = args.state.clone().unwrap_or_else(|| default_path(app));
    state.save(&path)?;
    eprintln!("      {}", path.display());
    if state.simulated {
        eprintln!("WARNING: {app} runs on SIMULATED TEE nodes: no hardware protects it");
    }
    println!(
        "{}",
        json!({
            "deployed": app,
            "state": path,
            "simulated": state.simulated,
            "nodes": state.nodes.iter().map(|n| json!({"name": n.name, "address": n.address, "platform": n.platform})).collect::<Vec<_>>(),
            "modules": state.modules.iter().map(|m| json!({"name": m.name, "node": m.node, "measurement": m.measurement})).collect::<Vec<_>>(),
            "connections": state.connections,
            "topics": state.topics,
        })
    );
    Ok(())
}

/// Attaches a topic end to `port`'s module on its node ([`Op::Topic`]) and prints it.
#[allow(clippy::too_many_arguments)]
async fn attach_topic(
    descriptor: &Descriptor,
    prepared: &[Prepared<'_>],
    attested: &[Attested],
    clients: &mut [AdminClient],
    port: &mesh::descriptor::PortRef,
    topic: &mesh::descriptor::TopicEnd,
    direction: TopicDirection,
) -> Result<TopicState> {
    let module = index_of(prepared, port.module.as_str())?;
    let node = attested[module].node;
    let broker = descriptor
        .broker(topic.broker.as_str())
        .with_context(|| format!("no broker {}", topic.broker))?;
    let broker_address = broker.address.to_string();
    clients[node]
        .request(Op::Topic(TopicSpec {
            app: descriptor.spec().app.to_string(),
            module: port.module.to_string(),
            port: port.port.to_string(),
            broker_address: broker_address.clone(),
            topic: topic.topic.clone(),
            qos: topic.qos,
            direction,
        }))
        .await
        .map_err(|e| refusal(e).context(format!("the topic end of {port}")))?;
    let arrow = match direction {
        TopicDirection::Publish => format!("{port} → {}", topic.topic),
        TopicDirection::Subscribe => format!("{} → {port}", topic.topic),
    };
    eprintln!(
        "      topic {arrow} (qos {}, {} at {broker_address}, {} {}: the node's MQTT client, authenticated as the module)",
        topic.qos,
        topic.broker,
        direction.as_str(),
        if direction == TopicDirection::Publish {
            "from its output"
        } else {
            "to its input"
        },
    );
    Ok(TopicState {
        port: port.to_string(),
        direction: direction.as_str().to_owned(),
        broker: topic.broker.to_string(),
        broker_address,
        topic: topic.topic.clone(),
        qos: topic.qos,
    })
}

fn short(hex: &str) -> String {
    format!("{}…", &hex[..hex.len().min(16)])
}

fn index_of(prepared: &[Prepared<'_>], module: &str) -> Result<usize> {
    prepared
        .iter()
        .position(|m| m.spec.name.as_str() == module)
        .with_context(|| format!("no module {module}"))
}

/// Every port the descriptor declares must be one the module itself declares.
fn check_ports(spec: &ModuleSpec, manifest: &ModuleManifest) -> Result<()> {
    for kind in PortKind::ALL {
        let actual = match kind {
            PortKind::Input => &manifest.inputs,
            PortKind::Output => &manifest.outputs,
            PortKind::Request => &manifest.requests,
            PortKind::Handler => &manifest.handlers,
            PortKind::Entry => &manifest.entries,
        };
        for port in spec.ports(kind) {
            if !actual.iter().any(|p| p == port.as_str()) {
                bail!(
                    "module {}: the descriptor declares {} {port:?} that the module does not have (its {}: {})",
                    spec.name,
                    kind.with_article(),
                    kind.field(),
                    actual.join(", ")
                );
            }
        }
    }
    Ok(())
}
