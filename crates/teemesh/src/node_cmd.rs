//! `teemesh node --config node.toml`: runs the node daemon until SIGTERM or SIGINT. Prints one
//! JSON line on stdout when ready (bound addresses, name, platform, simulated), so scripts and
//! tests can start it on port 0.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use node::NodeConfig;
use tokio::signal::unix::{SignalKind, signal};

use crate::attest_cmd::platform_roots;

#[derive(Debug, Args)]
pub(crate) struct NodeArgs {
    /// The node's configuration (TOML; see README "Running a node").
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

pub(crate) fn run(args: &NodeArgs) -> Result<()> {
    let config = NodeConfig::load(&args.config)?;
    let runtime = crate::async_runtime()?;
    runtime.block_on(async {
        let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
        let node = node::start(&config, platform_roots()).await?;
        if node.simulated() {
            eprintln!(
                "WARNING: node {:?} runs on the SIMULATED TEE: no hardware protects its modules, \
                 their sealed state or its keys; peers refuse it unless their policy sets allow_simulated",
                node.name
            );
        }
        println!("{}", node.startup_json());
        let _ = std::io::stdout().flush();
        let signal_name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = signal_name, "shutting down");
        eprintln!("teemesh: {signal_name}: stopping node {:?}", node.name);
        node.shutdown().await;
        Ok(())
    })
}
