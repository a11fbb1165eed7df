//! `teemesh`: the command-line entry point. Parses arguments, sets up logging, and hands each
//! subcommand to its module; exit code 0 on success, 1 when an appraisal refuses, 2 on usage or
//! I/O errors.

// A command-line tool: its results go to stdout by design.
#![allow(clippy::print_stdout)]

mod admin_cmd;
mod app_cmd;
mod app_run;
mod app_state;
mod app_update;
mod atls_cmd;
mod attest_cmd;
mod bench;
mod bench_atls;
mod bench_events;
mod bench_mqtt;
mod bench_runtime;
mod build_module;
mod demo;
mod demo_app;
mod demo_atls;
mod demo_mqtt;
mod demo_node;
mod deploy;
mod fixtures;
mod home;
mod mqtt_client_cmd;
mod mqtt_cmd;
mod mqtt_conn;
mod mqtt_load;
mod node_cmd;
mod run_cmd;
mod table;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// teemesh — software that proves what it is before anyone trusts it.
#[derive(Debug, Parser)]
#[command(name = "teemesh", version, about, long_about = None)]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Log format on stderr: text, or json (one object per line, for log collectors).
    #[arg(long, value_name = "text|json", default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the guided demo on embedded defaults (simulated nodes, real vendor evidence).
    Demo(demo::DemoArgs),
    /// Attestation: verify evidence, produce simulated evidence, check result tokens.
    #[command(subcommand)]
    Attest(attest_cmd::AttestCommand),
    /// Mutually attested TLS: an echo endpoint whose clients and server prove what they are.
    #[command(subcommand)]
    Atls(atls_cmd::AtlsCommand),
    /// Run one enclave module locally on a simulated node: call an entry, print its outputs
    /// and the module claims the node signs.
    Run(run_cmd::RunArgs),
    /// Run a node: host enclave modules, serve the admin API over attested TLS and metrics.
    Node(node_cmd::NodeArgs),
    /// Administer a node over attested TLS: load, call and inspect its modules.
    Admin(admin_cmd::AdminArgs),
    /// Applications: check a deployment descriptor.
    #[command(subcommand)]
    App(app_cmd::AppCommand),
    /// Deploy an application descriptor: attest nodes and modules, wire connections with fresh
    /// keys wrapped to the modules' attested keys, write the state file.
    Deploy(deploy::DeployArgs),
    /// MQTT: the broker (3.1.1 and 5.0 on TCP, TLS and attested TLS) and its tools.
    #[command(subcommand)]
    Mqtt(mqtt_cmd::MqttCommand),
    /// Benchmarks against the peer measured in the same run.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Compact human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// An appraisal refused the evidence or token (exit code 1, one-line reason on stderr).
#[derive(Debug)]
pub(crate) struct Refused(pub(crate) attest::Error);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused: {}", self.0)
    }
}

impl std::error::Error for Refused {}

/// The multi-threaded tokio runtime the async subcommands run on.
pub(crate) fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn init_logging(verbose: u8, format: LogFormat) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs redirected to a file or a pipe stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    match format {
        LogFormat::Text => builder.compact().init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.log_format);
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Attest(cmd) => attest_cmd::run(cmd),
        Command::Atls(cmd) => atls_cmd::run(cmd),
        Command::Run(args) => run_cmd::run(&args),
        Command::Node(args) => node_cmd::run(&args),
        Command::Admin(args) => admin_cmd::run(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Mqtt(cmd) => mqtt_cmd::run(cmd),
        Command::App(cmd) => app_cmd::run(cmd),
        Command::Deploy(args) => deploy::run(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let refused = err.downcast_ref::<Refused>().is_some()
                || err.downcast_ref::<atls_cmd::PeerRefused>().is_some()
                || err.downcast_ref::<run_cmd::GuestRefused>().is_some();
            // One line: the chain of causes joined, so scripts can log it.
            let line = format!("{err:#}").replace('\n', " ");
            eprintln!("teemesh: {line}");
            if refused {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
