//! `teemesh app check APP.yaml`: reads and checks an application descriptor and prints a short
//! summary (nodes, modules with their node and platform, connections with their protection), or
//! the first error as `file:line:column: field: reason` (exit 2). The other `teemesh app`
//! commands work on a deployed application (`app_run`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use mesh::Descriptor;
use mesh::descriptor::{ModuleCode, Platform, PolicySpec};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Check an application descriptor and summarise it; exit 2 with file:line:column on error.
    Check {
        /// The descriptor (YAML).
        #[arg(value_name = "APP.yaml")]
        descriptor: PathBuf,
    },
    /// Every module of a deployed application: running, calls, connection counters (events,
    /// missing, forged, replayed).
    Status {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
    },
    /// Call an entry the descriptor exposes; prints its result as JSON.
    Call {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
        /// The module.
        module: String,
        /// The entry.
        entry: String,
        /// The argument (e.g. JSON).
        arg: Option<String>,
    },
    /// Send a request to a handler the descriptor exposes; prints its response as JSON.
    Request {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
        /// The module.
        module: String,
        /// The handler.
        handler: String,
        /// The request (e.g. JSON).
        arg: Option<String>,
    },
    /// A module's output events, one JSON line each.
    Output {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
        /// The module.
        module: String,
        /// Only this output.
        output: Option<String>,
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
    },
    /// Replace a module with a new version while events flow: the node swaps it in place
    /// between two deliveries and hands its sealed state over; the new claims are verified and
    /// every connection of the module gets a fresh key.
    Update {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
        /// The module.
        module: String,
        /// The new version (a component).
        #[arg(value_name = "NEW.wasm")]
        wasm: PathBuf,
        /// The new version's reference measurement (SHA-256, hex): required when the
        /// deployment pins reference values; the file must have exactly it.
        #[arg(long, value_name = "HEX")]
        measurement: Option<String>,
    },
    /// Move a module to another node of the application while events flow: its sealed state
    /// and connections (keys, counters) are handed to the new instance sealed to its attested
    /// key, the connections to it are pointed at the new node, and it is re-keyed.
    Migrate {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
        /// The module.
        module: String,
        /// The node it moves to (a node of the application).
        #[arg(long, value_name = "NODE")]
        to: String,
        /// Its component (default: the file it was deployed or updated from).
        #[arg(long, value_name = "FILE")]
        wasm: Option<PathBuf>,
    },
    /// Give every connection (of MODULE) a fresh key, with no event refused on the way.
    Rekey {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
        /// Only this module's connections.
        module: Option<String>,
    },
    /// Stop the application: unload its modules (their sealed state stays on the nodes) and
    /// mark the state file disabled.
    Disable {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
    },
    /// Stop the application and forget it (the state file is removed), ready for a new deploy.
    Reset {
        #[command(flatten)]
        state: crate::app_run::StateArgs,
    },
}

pub(crate) fn run(cmd: AppCommand) -> Result<()> {
    match cmd {
        AppCommand::Check { descriptor } => check(&descriptor),
        AppCommand::Status { state } => crate::app_run::status(&state),
        AppCommand::Call {
            state,
            module,
            entry,
            arg,
        } => crate::app_run::call(
            &state,
            &module,
            &entry,
            arg.as_deref(),
            node::protocol::CallKind::Entry,
        ),
        AppCommand::Request {
            state,
            module,
            handler,
            arg,
        } => crate::app_run::call(
            &state,
            &module,
            &handler,
            arg.as_deref(),
            node::protocol::CallKind::Handler,
        ),
        AppCommand::Output {
            state,
            module,
            output,
            follow,
        } => crate::app_run::output(&state, &module, output.as_deref(), follow),
        AppCommand::Update {
            state,
            module,
            wasm,
            measurement,
        } => crate::app_update::update(&state, &module, &wasm, measurement.as_deref()),
        AppCommand::Migrate {
            state,
            module,
            to,
            wasm,
        } => crate::app_update::migrate(&state, &module, &to, wasm.as_deref()),
        AppCommand::Rekey { state, module } => crate::app_update::rekey(&state, module.as_deref()),
        AppCommand::Disable { state } => crate::app_run::stop(&state, false),
        AppCommand::Reset { state } => crate::app_run::stop(&state, true),
    }
}

fn check(path: &std::path::Path) -> Result<()> {
    let descriptor = Descriptor::load(path)?;
    let spec = descriptor.spec();
    // A component that is already on disk must have the measurement the descriptor pins.
    let mut component_notes = Vec::with_capacity(spec.modules.len());
    for (i, module) in spec.modules.iter().enumerate() {
        let note = match module.code() {
            Some(ModuleCode::Wasm(wasm)) => match std::fs::read(descriptor.resolve(wasm)) {
                Ok(bytes) => {
                    let actual: [u8; 32] = Sha256::digest(&bytes).into();
                    match module.measurement {
                        Some(expected) if expected.0 != actual => {
                            let field = mesh::FieldPath::default()
                                .key("modules")
                                .index(i)
                                .key("measurement");
                            return Err(descriptor
                                .error_at(
                                    field,
                                    format!(
                                        "{} has measurement {}, not the one pinned here",
                                        wasm.display(),
                                        hex::encode(actual)
                                    ),
                                )
                                .into());
                        }
                        Some(_) => format!("wasm {} (measurement matches)", wasm.display()),
                        None => format!("wasm {} (measurement not pinned)", wasm.display()),
                    }
                }
                Err(_) => format!("wasm {} (not on disk yet)", wasm.display()),
            },
            Some(ModuleCode::Source { dir, language }) => {
                let language = match language {
                    mesh::descriptor::Language::Rust => "rust",
                    mesh::descriptor::Language::C => "c",
                };
                format!(
                    "source {} ({language}, built at deploy time)",
                    dir.display()
                )
            }
            None => String::new(),
        };
        component_notes.push(note);
    }

    println!(
        "{}: {} nodes, {} modules, {} connections ({} is valid)",
        spec.app,
        spec.nodes.len(),
        spec.modules.len(),
        spec.connections.len(),
        path.display()
    );
    println!("nodes:");
    let width = spec
        .nodes
        .iter()
        .map(|n| n.name.as_str().len())
        .max()
        .unwrap_or(0);
    for node in &spec.nodes {
        let policy = match &node.policy {
            PolicySpec::Inline(_) => "inline policy".to_owned(),
            PolicySpec::File(file) => format!("policy {}", file.display()),
        };
        println!(
            "  {:width$}  {}  {:21}  {policy}",
            node.name.as_str(),
            node.platform,
            node.address.to_string()
        );
        if node.platform == Platform::Sim {
            eprintln!(
                "teemesh: warning: node {} is SIMULATED: no hardware protection",
                node.name
            );
        }
    }
    println!("modules:");
    let width = spec
        .modules
        .iter()
        .map(|m| m.name.as_str().len())
        .max()
        .unwrap_or(0);
    for (module, note) in spec.modules.iter().zip(&component_notes) {
        let platform = descriptor
            .node_of(module)
            .map(|n| n.platform.to_string())
            .unwrap_or_default();
        println!(
            "  {:width$}  on {} ({platform})  {note}",
            module.name.as_str(),
            module.node
        );
    }
    if !spec.connections.is_empty() {
        println!("connections:");
        for connection in &spec.connections {
            let how = match (connection.from.topic(), connection.to.topic()) {
                (None, None) => connection.protection().to_string(),
                (Some(_), _) => "subscribes (the node's MQTT client, as the module)".into(),
                (_, Some(_)) => "publishes (the node's MQTT client, as the module)".into(),
            };
            println!("  {} -> {}  {how}", connection.from, connection.to);
        }
    }
    for broker in &spec.brokers {
        println!(
            "broker: {} at {} (attested TLS)",
            broker.name, broker.address
        );
    }
    if !spec.expose.is_empty() {
        let entries: Vec<String> = spec.expose.iter().map(ToString::to_string).collect();
        println!("exposed entries: {}", entries.join(", "));
    }
    for periodic in &spec.periodic {
        println!(
            "periodic: {} every {} ms",
            periodic.to,
            periodic.every.period().as_millis()
        );
    }
    Ok(())
}
