//! `teemesh mqtt broker` (the MQTT broker on TCP, TLS and attested TLS listeners, from a TOML
//! file or `--listen`; the broker and its listeners are `node::mqtt`, which a node runs too) and
//! `teemesh mqtt passwd` (a user's password hash for that file).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Subcommand};
use node::mqtt::{AtlsIdentity, ListenerConfig, MqttConfig, start_broker};
use serde_json::json;

use crate::attest_cmd::platform_roots;

#[derive(Debug, Subcommand)]
pub(crate) enum MqttCommand {
    /// Run the MQTT broker (MQTT 3.1.1 and 5.0). Prints its listeners' bound addresses as JSON
    /// on the first stdout line, then logs to stderr.
    Broker(BrokerArgs),
    /// Read a password on stdin and print its argon2id hash for `[[auth.users]]`.
    Passwd,
    /// Publish one message; over attested TLS (the default) the broker's attestation result is
    /// printed on stderr first, and a broker the policy refuses gets nothing (exit 1).
    Pub(crate::mqtt_client_cmd::PubArgs),
    /// Subscribe and print one JSON line per message (topic, payload, encoding, qos, retain);
    /// over attested TLS the broker is appraised first, as for `pub`.
    Sub(crate::mqtt_client_cmd::SubArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BrokerArgs {
    /// The broker's TOML configuration: `[[listener]]` (kind = tcp|tls|atls, address, …),
    /// `[limits]`, `[auth]`, `[acl]`.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A plain TCP listener on ADDR (port 0 picks a free port), added to the configured ones.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// Worker threads (default: one per CPU). The broker's routing is serialised either way;
    /// more threads run more connections' I/O and TLS at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
}

pub(crate) fn run(cmd: MqttCommand) -> Result<()> {
    match cmd {
        MqttCommand::Broker(args) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            if let Some(threads) = args.threads {
                runtime.worker_threads(threads.into());
            }
            runtime
                .enable_all()
                .build()
                .context("cannot start the async runtime")?
                .block_on(broker(args))
        }
        MqttCommand::Pub(args) => crate::mqtt_client_cmd::publish(args),
        MqttCommand::Sub(args) => crate::mqtt_client_cmd::subscribe(args),
        MqttCommand::Passwd => {
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("cannot read the password on stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                bail!("empty password on stdin");
            }
            let hash = mqtt::broker::hash_password(password.as_bytes())
                .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
            #[allow(clippy::print_stdout)] // the command's output
            {
                println!("{hash}");
            }
            Ok(())
        }
    }
}

fn load_config(path: &Path) -> Result<MqttConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut config: MqttConfig =
        toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
    config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
    Ok(config)
}

async fn broker(args: BrokerArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => load_config(path)?,
        None => MqttConfig::default(),
    };
    for address in &args.listen {
        config.listener.push(ListenerConfig::tcp(address));
    }
    if config.listener.is_empty() {
        bail!("no listener: give --listen ADDR or [[listener]] in --config");
    }
    raise_open_file_limit();
    let mut running = start_broker(&config, &AtlsIdentity::PerListener(platform_roots())).await?;
    #[allow(clippy::print_stdout)] // the readiness line scripts and tests wait for
    {
        println!("{}", json!({ "listeners": running.listeners_json() }));
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let signal_name = tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        () = running.listener_stopped() => bail!("a listener stopped"),
    };
    tracing::info!(signal = signal_name, "shutting down");
    eprintln!(
        "teemesh: {signal_name}: stopping the broker (clients are told the server is shutting down)"
    );
    running.stop().await;
    Ok(())
}

/// 10,000 clients need 10,000 descriptors: raise the soft limit to the hard one.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!("cannot raise the open file limit: {e}"),
    }
}
