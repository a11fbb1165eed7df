#![allow(clippy::unwrap_used)]
//! `teemesh bench events --quick --json` on the real binary: events go round the ring of two
//! nodes and round the plain-TCP ring at every payload size, and the report has the expected
//! shape. No timing is checked.

use std::process::Command;

use serde_json::Value;

fn bench(extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args(["bench", "events", "--quick", "--json"])
        .args(extra)
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
    serde_json::from_slice(&out.stdout).unwrap()
}

fn check(report: &Value) {
    assert_eq!(report["simulated"], true);
    let sizes = report["sizes"].as_array().unwrap();
    let payloads: Vec<u64> = sizes
        .iter()
        .map(|s| s["payload_bytes"].as_u64().unwrap())
        .collect();
    assert_eq!(payloads, [64, 1024, 16384]);
    for size in sizes {
        for path in ["teemesh", "plain_tcp"] {
            assert!(
                size[path]["events_per_sec"].as_f64().unwrap() > 0.0,
                "{size}"
            );
            let p50 = size[path]["p50_us"].as_f64().unwrap();
            let p99 = size[path]["p99_us"].as_f64().unwrap();
            assert!(p50 > 0.0 && p99 >= p50, "{size}");
        }
    }
}

#[test]
fn events_go_round_both_rings_with_the_committed_relay() {
    check(&bench(&[]));
}
