//! `teemesh bench runtime`: the node's WebAssembly runtime against native code in one run —
//! compute kernels compiled from the same Rust source natively and into `examples/kernels`,
//! handler call rate and latency, and module instantiation time.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use atls::NodeIdentity;
use attest::{Measurement384, UnixTime};
use clap::Args;
use runtime::{DEFAULT_FUEL_PER_CALL, Limits, LoadedModule, Runtime, RuntimeConfig};
use serde_json::{Value, json};

use crate::table::{Table, short};

/// The kernels, compiled natively here; the module below is the same file compiled to Wasm.
#[path = "../../../examples/kernels/src/kernels.rs"]
mod kernels;

/// The committed kernels module (`scripts/build-examples.sh` builds it reproducibly).
const KERNELS_WASM: &[u8] = include_bytes!("../../../examples/kernels/kernels.wasm");
/// Goal from the issue: Wasm at most this multiple of native time.
const GOAL: f64 = 1.5;
/// Fuel per kernel call: the default budget ([`DEFAULT_FUEL_PER_CALL`]) ends a 64 MiB hash
/// early, and metering costs the same whatever the budget.
const KERNEL_FUEL: u64 = 1 << 40;
/// Shortest CPU-time sample the kernel ratios are taken on (the clock ticks every 10 ms);
/// shorter runs are judged on wall-clock time.
const MIN_CPU_SAMPLE: Duration = Duration::from_millis(200);
/// Payloads of the handler-call measurement.
const CALL_PAYLOADS: [usize; 2] = [64, 16 * 1024];

#[derive(Debug, Args)]
pub(crate) struct RuntimeBenchArgs {
    /// Small sizes and few iterations: a smoke run whose numbers mean little.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object on stdout instead of tables.
    #[arg(long)]
    json: bool,
    /// Timed runs of each kernel per mode (median reported); default 5, 1 with --quick.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Timed handler calls per payload size; default 100000, 1000 with --quick.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    calls: Option<u32>,
}

/// What one run measures.
struct Plan {
    sha256_mib: u64,
    sort_values: u64,
    runs: u32,
    calls: u32,
    cold_loads: u32,
    warm_loads: u32,
}

impl Plan {
    fn from_args(args: &RuntimeBenchArgs) -> Self {
        let (sha256_mib, sort_values, runs, calls, cold_loads, warm_loads) = if args.quick {
            (1, 100_000, 1, 1_000, 2, 20)
        } else {
            (64, 10_000_000, 5, 100_000, 10, 1_000)
        };
        Self {
            sha256_mib,
            sort_values,
            runs: args.runs.unwrap_or(runs),
            calls: args.calls.unwrap_or(calls),
            cold_loads,
            warm_loads,
        }
    }
}

/// One kernel: its entry and argument in the module, and the same computation natively.
struct Kernel {
    name: String,
    entry: &'static str,
    arg: String,
    /// The JSON field of the module's result that must equal `native`'s output.
    field: &'static str,
    native: Box<dyn Fn() -> String>,
}

/// Median times of one kernel in each mode, and the result all modes agreed on.
struct KernelTimes {
    name: String,
    /// Wall-clock medians: native, Wasm with fuel, Wasm without fuel.
    wall: [Duration; 3],
    /// Medians of the benchmark thread's CPU time, when the OS reports it.
    cpu: Option<[Duration; 3]>,
    result: String,
}

impl KernelTimes {
    /// The times the ratios are taken on: CPU time when known (a busy machine stretches wall
    /// time, not CPU time), else wall time.
    fn judged(&self) -> [Duration; 3] {
        self.cpu.unwrap_or(self.wall)
    }

    fn fuel_ratio(&self) -> f64 {
        let [native, fuel, _] = self.judged();
        ratio(fuel, native)
    }

    fn no_fuel_ratio(&self) -> f64 {
        let [native, _, no_fuel] = self.judged();
        ratio(no_fuel, native)
    }
}

/// Handler call rate and latency for one payload size.
struct CallStats {
    handler: &'static str,
    payload: usize,
    /// Calls per second of wall-clock time.
    per_second: f64,
    /// Calls per second of the thread's CPU time, when the OS reports it.
    per_cpu_second: Option<f64>,
    p50: Duration,
    p99: Duration,
}

/// Median and 99th percentile (or maximum for few samples) of sorted durations.
#[derive(Clone, Copy)]
struct Spread {
    p50: Duration,
    p99: Duration,
}

pub(crate) fn run(args: &RuntimeBenchArgs) -> Result<()> {
    if cfg!(debug_assertions) {
        eprintln!(
            "note: this is a debug build; run `cargo run --release -p teemesh -- bench runtime` for meaningful numbers"
        );
    }
    let plan = Plan::from_args(args);
    let load_before = load_average();
    let identity = sim_identity()?;
    let runtime_with = |fuel_per_call: Option<u64>| -> Result<Runtime> {
        let limits = Limits {
            fuel_per_call,
            ..Limits::default()
        };
        Ok(Runtime::new(
            RuntimeConfig::new(identity.clone()).with_limits(limits),
        )?)
    };
    // As deployed (the node's default limits), the same with a budget big enough for the
    // kernels, and with fuel off (the engine then compiles without fuel counting).
    let node_runtime = runtime_with(Limits::default().fuel_per_call)?;
    let kernel_runtime = runtime_with(Some(KERNEL_FUEL))?;
    let no_fuel_runtime = runtime_with(None)?;
    let mut module = node_runtime
        .load("kernels", KERNELS_WASM)
        .context("cannot load the kernels module")?;
    let measurement = module.measurement().to_hex();

    let kernels = kernel_list(&plan);
    let mut kernel_times = Vec::new();
    {
        let mut fuel = kernel_runtime.load("kernels", KERNELS_WASM)?;
        let mut no_fuel = no_fuel_runtime.load("kernels", KERNELS_WASM)?;
        for kernel in &kernels {
            kernel_times.push(time_kernel(kernel, &mut fuel, &mut no_fuel, plan.runs)?);
        }
    }

    let mut calls = Vec::new();
    for payload in CALL_PAYLOADS {
        progress(&format!(
            "{} calls of handler echo with {payload} bytes",
            plan.calls
        ));
        calls.push(time_calls(&mut module, "echo", payload, plan.calls)?);
    }

    progress(&format!(
        "{} cold loads (compile + instantiate)",
        plan.cold_loads
    ));
    let cold = spread(
        (0..plan.cold_loads)
            .map(|i| {
                let started = Instant::now();
                let loaded = node_runtime.load(&format!("kernels-{i}"), KERNELS_WASM)?;
                let took = started.elapsed();
                drop(loaded);
                Ok(took)
            })
            .collect::<Result<Vec<_>>>()?,
    );
    progress(&format!(
        "{} instantiations of the compiled module",
        plan.warm_loads
    ));
    let warm = spread(
        (0..plan.warm_loads)
            .map(|_| {
                let started = Instant::now();
                module.restart()?;
                Ok(started.elapsed())
            })
            .collect::<Result<Vec<_>>>()?,
    );
    let load_after = load_average();

    let report = Report {
        plan: &plan,
        quick: args.quick,
        measurement: &measurement,
        load_before: &load_before,
        load_after: &load_after,
        kernels: &kernel_times,
        calls: &calls,
        cold,
        warm,
    };
    if args.json {
        println!("{}", report.json());
    } else {
        report.print();
    }
    Ok(())
}

fn kernel_list(plan: &Plan) -> Vec<Kernel> {
    let sha256_bytes = plan.sha256_mib << 20;
    let sort_values = plan.sort_values;
    vec![
        Kernel {
            name: format!("sha256 {} MiB", plan.sha256_mib),
            entry: "sha256",
            arg: format!(r#"{{"mib":{}}}"#, plan.sha256_mib),
            field: "sha256",
            native: Box::new(move || {
                hex::encode(kernels::sha256_of_generated(black_box(sha256_bytes)))
            }),
        },
        Kernel {
            name: format!("sort {} u32", plan.sort_values),
            entry: "sort",
            arg: format!(r#"{{"n":{sort_values}}}"#),
            field: "checksum",
            native: Box::new(move || {
                let n = usize::try_from(black_box(sort_values)).unwrap_or(usize::MAX);
                match kernels::sort_checksum(n) {
                    Ok(checksum) => format!("{checksum:016x}"),
                    Err(e) => e,
                }
            }),
        },
    ]
}

/// Runs `kernel` natively, in Wasm with fuel and without, once to warm up and check that all
/// three agree, then `runs` rounds in which the modes take turns, so that background load hits
/// them alike.
fn time_kernel(
    kernel: &Kernel,
    fuel: &mut LoadedModule,
    no_fuel: &mut LoadedModule,
    runs: u32,
) -> Result<KernelTimes> {
    let mut wall: [Vec<Duration>; 3] = Default::default();
    let mut cpu: [Vec<Duration>; 3] = Default::default();
    let mut cpu_known = true;
    let mut result = None;
    for round in 0..=runs {
        let label = if round == 0 {
            "warm-up".to_owned()
        } else {
            format!("run {round}/{runs}")
        };
        progress(&format!("{}: {label}", kernel.name));
        let (native, native_took) = timed(|| Ok((kernel.native)()))?;
        let (fuel_result, fuel_took) = timed(|| call_kernel(fuel, kernel))?;
        let (no_fuel_result, no_fuel_took) = timed(|| call_kernel(no_fuel, kernel))?;
        anyhow::ensure!(
            native == fuel_result && native == no_fuel_result,
            "{}: native and Wasm disagree: native {native}, Wasm with fuel {fuel_result}, Wasm without fuel {no_fuel_result}",
            kernel.name
        );
        result = Some(native);
        if round > 0 {
            for (mode, took) in [native_took, fuel_took, no_fuel_took]
                .into_iter()
                .enumerate()
            {
                wall[mode].push(took.wall);
                match took.cpu {
                    Some(cpu_time) => cpu[mode].push(cpu_time),
                    None => cpu_known = false,
                }
            }
        }
    }
    Ok(KernelTimes {
        name: kernel.name.clone(),
        wall: wall.map(|s| spread(s).p50),
        // 10 ms ticks say little about shorter runs (--quick).
        cpu: (cpu_known && cpu.iter().flatten().all(|t| *t >= MIN_CPU_SAMPLE))
            .then(|| cpu.map(|s| spread(s).p50)),
        result: result.unwrap_or_default(),
    })
}

/// Wall-clock and CPU time of one measured step.
struct Took {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Runs `f` and says how long it took, on the wall clock and on this thread's CPU clock.
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Took)> {
    let cpu_before = thread_cpu_time();
    let started = Instant::now();
    let value = f()?;
    let wall = started.elapsed();
    let cpu = thread_cpu_time()
        .zip(cpu_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok((value, Took { wall, cpu }))
}

/// CPU time (user + system) the calling thread has used, from `/proc/thread-self/stat`, to 10 ms
/// (Linux reports it in USER_HZ = 100 ticks per second); `None` where that file does not exist.
/// The kernels run for hundreds of milliseconds, and the Wasm calls run on the calling thread.
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may contain spaces) in parentheses; utime and stime
    // are fields 14 and 15 of the whole line.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis(
        utime.saturating_add(stime).saturating_mul(10),
    ))
}

/// Calls the kernel's entry; returns the field of its JSON result that native code also
/// computes.
fn call_kernel(module: &mut LoadedModule, kernel: &Kernel) -> Result<String> {
    let out = module
        .call_entry(kernel.entry, kernel.arg.as_bytes())
        .with_context(|| format!("{} in Wasm", kernel.name))?;
    result_field(&out, kernel.field)
}

/// Field `field` of the module's JSON result, as a string.
fn result_field(out: &[u8], field: &str) -> Result<String> {
    let value: Value = serde_json::from_slice(out).context("the module's result is not JSON")?;
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("the module's result has no string field {field:?}: {value}"))
}

/// Times `calls` calls of `handler` with a `payload`-byte payload, after a warm-up; checks that
/// `echo` answers with the payload.
fn time_calls(
    module: &mut LoadedModule,
    handler: &'static str,
    payload: usize,
    calls: u32,
) -> Result<CallStats> {
    let data: Vec<u8> = (0..payload).map(|i| (i % 251) as u8).collect();
    for _ in 0..calls.div_ceil(10).max(10) {
        let answer = module.handle_request(handler, &data)?;
        anyhow::ensure!(answer == data, "handler {handler} did not echo its payload");
    }
    let mut samples = Vec::with_capacity(calls as usize);
    let ((), total) = timed(|| {
        for _ in 0..calls {
            let call_started = Instant::now();
            black_box(module.handle_request(handler, black_box(&data))?);
            samples.push(call_started.elapsed());
        }
        Ok(())
    })?;
    let spread = spread(samples);
    let rate = |d: Duration| f64::from(calls) / d.as_secs_f64().max(1e-12);
    Ok(CallStats {
        handler,
        payload,
        per_second: rate(total.wall),
        // Under 0.1 s of CPU time the 10 ms clock is too coarse to say.
        per_cpu_second: total
            .cpu
            .filter(|cpu| *cpu >= Duration::from_millis(100))
            .map(rate),
        p50: spread.p50,
        p99: spread.p99,
    })
}

fn spread(mut samples: Vec<Duration>) -> Spread {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len().saturating_sub(1)) as f64 * q).round() as usize;
        samples.get(index).copied().unwrap_or_default()
    };
    Spread {
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// A simulated node identity: the node signs each loaded module's claims with it.
fn sim_identity() -> Result<Arc<NodeIdentity>> {
    let attester = Arc::new(platform::Simulated::with_measurement(Measurement384(
        [0x5a; 48],
    )));
    Ok(Arc::new(NodeIdentity::generate(
        attester,
        "bench-runtime",
        UnixTime::now(),
    )?))
}

fn progress(what: &str) {
    eprintln!("bench runtime: {what}");
}

/// The 1, 5 and 15 minute load averages, or "unknown" off Linux.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn ratio(ours: Duration, theirs: Duration) -> f64 {
    ours.as_secs_f64() / theirs.as_secs_f64().max(1e-12)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// Everything one run measured.
struct Report<'a> {
    plan: &'a Plan,
    quick: bool,
    measurement: &'a str,
    load_before: &'a str,
    load_after: &'a str,
    kernels: &'a [KernelTimes],
    calls: &'a [CallStats],
    cold: Spread,
    warm: Spread,
}

impl Report<'_> {
    fn print(&self) {
        let build = if cfg!(debug_assertions) {
            "DEBUG build (numbers mean little)"
        } else {
            "release build"
        };
        println!(
            "teemesh bench runtime — WebAssembly on the node runtime (wasmtime 48, Cranelift) vs native code, in one run{}",
            if self.quick { " (--quick sizes)" } else { "" }
        );
        println!(
            "machine: {} cores, {}; load average {} at start; {build}",
            cores(),
            cpu_model(),
            self.load_before
        );
        println!(
            "module: examples/kernels/kernels.wasm, {} bytes, measurement {}\n",
            KERNELS_WASM.len(),
            short(self.measurement, 16)
        );

        let cpu_clock = self.kernels.iter().all(|k| k.cpu.is_some());
        println!(
            "kernels: examples/kernels/src/kernels.rs compiled natively and into the module; median of {} run{}, modes alternating",
            self.plan.runs,
            if self.plan.runs == 1 { "" } else { "s" }
        );
        println!(
            "{}",
            if cpu_clock {
                "times: CPU time of the benchmark thread (10 ms ticks), which other processes' load does not stretch; wall-clock ratios for comparison"
            } else {
                "times: wall clock (runs too short for the 10 ms CPU-time clock, or no thread CPU time on this OS)"
            }
        );
        let mut table = Table::new(&[
            "kernel",
            "native",
            "Wasm, fuel on",
            "ratio",
            "Wasm, fuel off",
            "ratio",
            &format!("goal ≤ {GOAL}×"),
            "wall ratios on/off",
            "result (all agree)",
        ]);
        for k in self.kernels {
            let [native, fuel, no_fuel] = k.judged();
            let [wall_native, wall_fuel, wall_no_fuel] = k.wall;
            table.row(vec![
                k.name.clone(),
                millis(native),
                millis(fuel),
                format!("{:.2}×", k.fuel_ratio()),
                millis(no_fuel),
                format!("{:.2}×", k.no_fuel_ratio()),
                met(k.fuel_ratio() <= GOAL).to_owned(),
                format!(
                    "{:.2}× / {:.2}×",
                    ratio(wall_fuel, wall_native),
                    ratio(wall_no_fuel, wall_native)
                ),
                short(&k.result, 16),
            ]);
        }
        println!("{}", table.render());
        println!(
            "  fuel on: the node's limits (fuel, {} s deadline by epoch interruption, {} MiB memory) with the fuel budget raised from {DEFAULT_FUEL_PER_CALL} to 2^40 per call so the kernels finish;",
            Limits::default()
                .deadline_per_call
                .unwrap_or_default()
                .as_secs(),
            Limits::default().memory_bytes >> 20
        );
        println!(
            "  metering costs the same whatever the budget. fuel off: the same limits without fuel (the engine compiles no fuel counting); the deadline still applies."
        );
        println!(
            "  ratio = Wasm median / native median; the goal is judged on fuel on, as deployed.\n"
        );

        println!(
            "handler calls: {} timed calls per row into the module under the node's default limits (fuel {DEFAULT_FUEL_PER_CALL} per call)",
            self.plan.calls
        );
        let mut calls = Table::new(&[
            "handler",
            "payload",
            "calls/s (wall)",
            "calls/s (CPU)",
            "p50",
            "p99",
        ]);
        for c in self.calls {
            calls.row(vec![
                c.handler.to_owned(),
                format!("{} B", c.payload),
                format!("{:.0}", c.per_second),
                c.per_cpu_second
                    .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.0}")),
                micros(c.p50),
                micros(c.p99),
            ]);
        }
        println!("{}", calls.render());
        println!(
            "  one call = LoadedModule::handle_request: port check, fuel and deadline armed, payload copied in, echoed, copied out;"
        );
        println!(
            "  calls/s (CPU) divides by the thread's CPU time; p50/p99 are wall-clock per call.\n"
        );

        println!("instantiation of the kernels module (node default limits):");
        let mut loads = Table::new(&["what", "runs", "p50", "p99 / max", "includes"]);
        loads.row(vec![
            "cold: Runtime::load".to_owned(),
            self.plan.cold_loads.to_string(),
            millis(self.cold.p50),
            millis(self.cold.p99),
            "measure, compile (Cranelift), link, instantiate, describe, sign module claims"
                .to_owned(),
        ]);
        loads.row(vec![
            "compiled: LoadedModule::restart".to_owned(),
            self.plan.warm_loads.to_string(),
            micros(self.warm.p50),
            micros(self.warm.p99),
            "new store, instantiate the pre-linked component, describe".to_owned(),
        ]);
        println!("{}", loads.render());

        println!("\ngoal (informational): Wasm ≤ {GOAL}× native, fuel on");
        for k in self.kernels {
            let fuel_ratio = k.fuel_ratio();
            println!(
                "  {}: {fuel_ratio:.2}× — {}",
                k.name,
                met(fuel_ratio <= GOAL)
            );
        }
        println!("load average at the end: {}", self.load_after);
    }

    fn json(&self) -> Value {
        let kernels: Vec<Value> = self
            .kernels
            .iter()
            .map(|k| {
                let ms = |times: [Duration; 3]| times.map(|t| t.as_secs_f64() * 1e3);
                let [native, fuel, no_fuel] = ms(k.wall);
                json!({
                    "kernel": k.name,
                    "clock": if k.cpu.is_some() { "thread_cpu" } else { "wall" },
                    "native_ms": ms(k.judged())[0],
                    "wasm_fuel_ms": ms(k.judged())[1],
                    "wasm_no_fuel_ms": ms(k.judged())[2],
                    "wall_native_ms": native,
                    "wall_wasm_fuel_ms": fuel,
                    "wall_wasm_no_fuel_ms": no_fuel,
                    "ratio_fuel": k.fuel_ratio(),
                    "ratio_no_fuel": k.no_fuel_ratio(),
                    "wall_ratio_fuel": ratio(k.wall[1], k.wall[0]),
                    "wall_ratio_no_fuel": ratio(k.wall[2], k.wall[0]),
                    "goal_met": k.fuel_ratio() <= GOAL,
                    "result": k.result,
                    "results_agree": true,
                })
            })
            .collect();
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|c| {
                json!({
                    "handler": c.handler,
                    "payload_bytes": c.payload,
                    "calls_per_second": c.per_second,
                    "calls_per_cpu_second": c.per_cpu_second,
                    "p50_us": c.p50.as_secs_f64() * 1e6,
                    "p99_us": c.p99.as_secs_f64() * 1e6,
                })
            })
            .collect();
        json!({
            "bench": "runtime",
            "quick": self.quick,
            "release_build": !cfg!(debug_assertions),
            "machine": {
                "cores": cores(),
                "cpu": cpu_model(),
                "load_average_start": self.load_before,
                "load_average_end": self.load_after,
            },
            "module": {
                "bytes": KERNELS_WASM.len(),
                "measurement": self.measurement,
            },
            "goal_ratio": GOAL,
            "runs": self.plan.runs,
            "kernels": kernels,
            "calls": calls,
            "instantiation": {
                "cold_runs": self.plan.cold_loads,
                "cold_p50_ms": self.cold.p50.as_secs_f64() * 1e3,
                "cold_p99_ms": self.cold.p99.as_secs_f64() * 1e3,
                "compiled_runs": self.plan.warm_loads,
                "compiled_p50_us": self.warm.p50.as_secs_f64() * 1e6,
                "compiled_p99_us": self.warm.p99.as_secs_f64() * 1e6,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sha2::Digest as _;

    use super::*;

    #[test]
    fn kernel_sha256_matches_sha2_at_block_boundaries_and_split_updates() {
        let data: Vec<u8> = (0..1000_u32).map(|i| (i * 7 % 256) as u8).collect();
        for len in [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 128, 1000] {
            let mut ours = kernels::Sha256::new();
            let (head, tail) = data[..len].split_at(len / 3);
            ours.update(head);
            ours.update(tail);
            let theirs: [u8; 32] = sha2::Sha256::digest(&data[..len]).into();
            assert_eq!(ours.finalize(), theirs, "length {len}");
        }
    }

    #[test]
    fn kernel_sha256_of_generated_hashes_the_generator_output() {
        let len = 3 * 65_536 + 100;
        let mut rng = kernels::XorShift64::new(0x7465_656d_6573_6821);
        let mut bytes = Vec::new();
        while bytes.len() < len {
            bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
        }
        // Each 64 KiB chunk starts a fresh run of words; 65536 is a multiple of 8, so the
        // stream is one continuous sequence.
        let theirs: [u8; 32] = sha2::Sha256::digest(&bytes[..len]).into();
        assert_eq!(kernels::sha256_of_generated(len as u64), theirs);
    }

    #[test]
    fn kernel_sort_checksum_depends_on_the_sorted_order() {
        assert_eq!(kernels::sort_checksum(0).unwrap(), 0xcbf2_9ce4_8422_2325);
        let a = kernels::sort_checksum(1000).unwrap();
        assert_eq!(a, kernels::sort_checksum(1000).unwrap());
        assert_ne!(a, kernels::sort_checksum(1001).unwrap());
    }

    #[test]
    fn result_field_reads_the_module_result() {
        assert_eq!(
            result_field(br#"{"checksum":"00ff","n":3}"#, "checksum").unwrap(),
            "00ff"
        );
        assert!(result_field(b"{}", "checksum").is_err());
        assert!(result_field(b"nope", "checksum").is_err());
    }
}
