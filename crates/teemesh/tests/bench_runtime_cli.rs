#![allow(clippy::unwrap_used)]
//! `teemesh bench runtime --quick` on the real binary: the tables (or the JSON object) have the
//! expected shape, and the digest and checksum the kernels return — natively and in Wasm, which
//! the bench requires to agree — are the ones an independent implementation computes. No timing
//! is checked.

use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest as _;

fn bench(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args(["bench", "runtime", "--quick"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Marsaglia's xorshift64, written out again so the test does not trust the bench's copy.
fn xorshift64(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// SHA-256 of the first MiB of the sha256 kernel's input, by the sha2 crate.
fn expected_sha256_1mib() -> String {
    let mut next = xorshift64(0x7465_656d_6573_6821);
    let bytes: Vec<u8> = (0..(1 << 20) / 8)
        .flat_map(|_| next().to_le_bytes())
        .collect();
    hex::encode(sha2::Sha256::digest(&bytes))
}

/// The sort kernel's checksum of 100000 values, with the standard library's stable sort.
fn expected_sort_checksum_100k() -> String {
    let mut next = xorshift64(0x736f_7274_2d6b_726e);
    let mut values: Vec<u32> = (0..100_000).map(|_| (next() >> 32) as u32).collect();
    values.sort();
    let checksum = values.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, v| {
        (h ^ u64::from(*v)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{checksum:016x}")
}

#[test]
fn quick_json_reports_every_measurement_and_the_expected_results() {
    let out = bench(&["--json"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.trim().lines().count(), 1, "one JSON line: {stdout}");
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["bench"], "runtime");
    assert_eq!(report["quick"], true);
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);

    let kernels = report["kernels"].as_array().unwrap();
    assert_eq!(kernels.len(), 2, "{report:#}");
    let expected = [
        ("sha256 1 MiB", expected_sha256_1mib()),
        ("sort 100000 u32", expected_sort_checksum_100k()),
    ];
    for (kernel, (name, result)) in kernels.iter().zip(&expected) {
        assert_eq!(kernel["kernel"], *name);
        assert_eq!(kernel["results_agree"], true);
        assert_eq!(kernel["result"].as_str().unwrap(), result, "{kernel:#}");
        for field in [
            "native_ms",
            "wasm_fuel_ms",
            "wasm_no_fuel_ms",
            "ratio_fuel",
            "ratio_no_fuel",
        ] {
            assert!(kernel[field].as_f64().unwrap() > 0.0, "{field}: {kernel:#}");
        }
        assert!(kernel["goal_met"].is_boolean());
    }

    let calls = report["calls"].as_array().unwrap();
    let payloads: Vec<u64> = calls
        .iter()
        .map(|c| c["payload_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(payloads, [64, 16384]);
    for call in calls {
        assert_eq!(call["handler"], "echo");
        for field in ["calls_per_second", "p50_us", "p99_us"] {
            assert!(call[field].as_f64().unwrap() > 0.0, "{field}: {call:#}");
        }
    }
    let instantiation = &report["instantiation"];
    for field in [
        "cold_p50_ms",
        "cold_p99_ms",
        "compiled_p50_us",
        "compiled_p99_us",
    ] {
        assert!(instantiation[field].as_f64().unwrap() > 0.0, "{field}");
    }
    assert_eq!(
        report["module"]["measurement"].as_str().unwrap().len(),
        64,
        "SHA-256 measurement in hex"
    );
}

#[test]
fn quick_tables_show_kernels_calls_instantiation_and_the_goal() {
    let out = bench(&[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    for heading in [
        "teemesh bench runtime",
        "machine: ",
        "kernels: ",
        "handler calls: ",
        "instantiation of the kernels module",
        "goal (informational)",
    ] {
        assert!(stdout.contains(heading), "{heading:?} missing:\n{stdout}");
    }
    let row = |name: &str| {
        stdout
            .lines()
            .find(|line| line.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no row {name:?}:\n{stdout}"))
            .to_owned()
    };
    let sha_row = row("sha256 1 MiB");
    assert!(sha_row.contains(&expected_sha256_1mib()[..16]), "{sha_row}");
    assert!(sha_row.contains('×'), "{sha_row}");
    let sort_row = row("sort 100000 u32");
    assert!(
        sort_row.contains(&expected_sort_checksum_100k()),
        "{sort_row}"
    );
    assert!(row("echo").contains("64 B"));
    assert!(row("cold: Runtime::load").contains("ms"));
    assert!(row("compiled: LoadedModule::restart").contains("µs"));
    for kernel in ["sha256 1 MiB:", "sort 100000 u32:"] {
        let goal = row(kernel);
        assert!(
            goal.ends_with("— met") || goal.ends_with("— MISSED"),
            "{goal}"
        );
    }
    assert!(stderr.contains("bench runtime: "), "progress on stderr");
}
