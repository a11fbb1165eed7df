//! `teemesh bench ...`: measure teemesh against the peer it wraps, in the same run, and print
//! ratios. `bench attest` times a full appraisal of each bundled fixture against dcap-qvl / sev
//! called directly, plus a cached re-appraisal of the same evidence. `bench atls` times attested
//! TLS handshakes and bulk transfer against plain rustls mutual TLS ([`crate::bench_atls`]).
//! `bench runtime` times Wasm modules against the same code native ([`crate::bench_runtime`]).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use attest::baseline::{DcapQvlBaseline, SevBaseline};
use attest::{AppraisalPolicy, Verifier};
use clap::{Args, Subcommand};

use crate::fixtures;
use crate::table::Table;

#[derive(Debug, Subcommand)]
pub(crate) enum BenchCommand {
    /// Appraisal time per fixture vs dcap-qvl / sev directly; cached re-appraisal.
    Attest(AttestBenchArgs),
    /// Attested TLS handshakes (cold, cached, per-session) and bulk transfer vs plain rustls mTLS.
    Atls(crate::bench_atls::AtlsBenchArgs),
    /// Wasm compute kernels vs the same code native; handler call rate; instantiation time.
    Runtime(crate::bench_runtime::RuntimeBenchArgs),
    /// Events between modules on two nodes vs the same framing over plain TCP.
    Events(crate::bench_events::EventsBenchArgs),
    /// Our MQTT broker vs Debian's mosquitto, driven by the same load generator.
    Mqtt(crate::bench_mqtt::MqttBenchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct AttestBenchArgs {
    /// Timed iterations per measurement (after warm-up).
    #[arg(long, default_value_t = 200)]
    iterations: u32,
}

pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Attest(args) => attest_bench(&args),
        BenchCommand::Atls(args) => crate::bench_atls::run(&args),
        BenchCommand::Runtime(args) => crate::bench_runtime::run(&args),
        BenchCommand::Events(args) => crate::bench_events::run(&args),
        BenchCommand::Mqtt(args) => crate::bench_mqtt::run(&args),
    }
}

/// Median and 99th percentile of `iterations` timed calls of `f`, after a warm-up.
fn measure(iterations: u32, mut f: impl FnMut() -> bool) -> Result<(Duration, Duration)> {
    for _ in 0..iterations.div_ceil(10).max(3) {
        anyhow::ensure!(f(), "the measured call failed during warm-up");
    }
    let mut samples = Vec::with_capacity(iterations as usize);
    for _ in 0..iterations.max(1) {
        let start = Instant::now();
        let ok = f();
        samples.push(start.elapsed());
        anyhow::ensure!(ok, "the measured call failed");
    }
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok((p(0.5), p(0.99)))
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn attest_bench(args: &AttestBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -p teemesh -- bench attest` for meaningful numbers"
        );
    }
    println!(
        "teemesh bench attest — {} iterations per cell, medians (p99 in brackets)\n",
        args.iterations
    );
    let mut table = Table::new(&[
        "evidence",
        "teemesh appraisal",
        "peer (direct)",
        "ratio",
        "goal",
        "cached re-appraisal",
        "goal",
    ]);
    let cases = [
        (
            "sgx/sgx_quote",
            fixtures::SGX_QUOTE,
            fixtures::SGX_COLLATERAL,
            fixtures::SGX_ACCEPTING_POLICY,
        ),
        (
            "tdx/tdx_quote (v4)",
            fixtures::TDX_QUOTE,
            fixtures::TDX_COLLATERAL,
            "",
        ),
    ];
    let at = attest::UnixTime(1_750_377_600);
    for (name, quote, collateral, policy) in cases {
        let verifier = Verifier::new(AppraisalPolicy::from_toml(policy)?);
        let mut endorsements = attest::Endorsements::new();
        endorsements.add_bytes("collateral.json", collateral)?;
        let ours = measure(args.iterations, || {
            verifier.appraise_bytes(quote, &endorsements, at).is_ok()
        })?;
        let peer = DcapQvlBaseline::new(collateral)
            .map_err(anyhow::Error::msg)
            .context("dcap-qvl")?;
        let theirs = measure(args.iterations, || peer.verify(quote, at.as_secs()).is_ok())?;
        let cached = measure(args.iterations.saturating_mul(10), || {
            verifier.appraise_cached(quote, &endorsements, at).is_ok()
        })?;
        table.row(row(&format!("{name} vs dcap-qvl"), ours, theirs, cached));
    }
    {
        let verifier = Verifier::new(AppraisalPolicy::default());
        let mut endorsements = attest::Endorsements::new();
        endorsements.add_bytes("test-vcek.der", fixtures::SNP_VCEK)?;
        endorsements.add_bytes("milan_ask_ark_asvk.pem", fixtures::MILAN_CHAIN)?;
        let report = fixtures::SNP_REPORT;
        let ours = measure(args.iterations, || {
            verifier.appraise_bytes(report, &endorsements, at).is_ok()
        })?;
        let peer = SevBaseline::new(fixtures::SNP_VCEK, fixtures::MILAN_CHAIN)
            .map_err(anyhow::Error::msg)
            .context("sev")?;
        let theirs = measure(args.iterations, || peer.verify(report).is_ok())?;
        let cached = measure(args.iterations.saturating_mul(10), || {
            verifier.appraise_cached(report, &endorsements, at).is_ok()
        })?;
        table.row(row("snp/test-report.bin vs sev", ours, theirs, cached));
    }
    println!("{}", table.render());
    println!(
        "\nratio = teemesh median / peer median for the same evidence and endorsements (goal ≤ 1.10×);"
    );
    println!(
        "teemesh also checks certificate validity dates, the VCEK's TCB and chip id, and its policy."
    );
    Ok(())
}

fn row(
    name: &str,
    ours: (Duration, Duration),
    theirs: (Duration, Duration),
    cached: (Duration, Duration),
) -> Vec<String> {
    let ratio = ours.0.as_secs_f64() / theirs.0.as_secs_f64().max(1e-12);
    vec![
        name.to_owned(),
        format!("{} [{}]", micros(ours.0), micros(ours.1)),
        format!("{} [{}]", micros(theirs.0), micros(theirs.1)),
        format!("{ratio:.2}×"),
        if ratio <= 1.10 {
            "≤1.10× met".into()
        } else {
            "≤1.10× MISSED".into()
        },
        format!("{} [{}]", micros(cached.0), micros(cached.1)),
        if cached.0 <= Duration::from_micros(10) {
            "≤10 µs met".into()
        } else {
            "≤10 µs MISSED".into()
        },
    ]
}
