#![allow(clippy::unwrap_used)]
//! `teemesh bench mqtt --quick` runs our broker and Debian's mosquitto side by side with the
//! same load generator and reports both, at full speed and paced; at QoS 1 every message is
//! delivered by both, over plain TCP and (ours) attested TLS against our plain TLS. The
//! numbers of a quick debug run mean nothing; that the matrix runs end to end does.

use std::process::Command;

/// `teemesh bench mqtt --quick --json ARGS`'s report.
fn quick_bench(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args(["bench", "mqtt", "--quick", "--json"])
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n(the benchmark needs Debian's mosquitto: apt-get install mosquitto)",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn both_brokers_carry_the_same_load_and_qos1_loses_nothing() {
    let report = quick_bench(&["--transport", "tcp", "--transport", "atls"]);
    let rows = report["mqtt"].as_array().unwrap();
    assert_eq!(rows.len(), 16, "2 transports × 2 QoS × 2 sizes × 2 shapes");
    for row in rows {
        // Mosquitto over the same transport; attested TLS against our own plain TLS.
        let peer = match row["transport"].as_str().unwrap() {
            "tcp" => "mosquitto",
            _ => "our TLS",
        };
        assert_eq!(row["peer"], peer, "{row}");
        assert!(
            row["paced_deliveries_per_sec"].as_f64().unwrap() > 0.0,
            "{row}"
        );
        for figures in [&row["teemesh"], &row["peer_figures"]] {
            let full = &figures["full_speed"];
            assert!(full["messages_per_sec"].as_f64().unwrap() > 0.0, "{row}");
            // Linux says how much CPU each broker process used.
            assert!(full["cpu_ns_per_delivery"].as_u64().unwrap() > 0, "{row}");
            if row["qos"] == 1 {
                for run in [full, &figures["paced"]] {
                    assert_eq!(run["delivered"], run["expected"], "{row}");
                }
            }
        }
    }
}

#[test]
fn loads_can_be_chosen_and_an_unknown_one_is_refused() {
    let report = quick_bench(&[
        "--transport",
        "tcp",
        "--qos",
        "1",
        "--size",
        "64",
        "--fan",
        "4",
        "--runs",
        "2",
    ]);
    assert_eq!(report["runs"], 2);
    let rows = report["mqtt"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{report}");
    assert_eq!(
        (&rows[0]["qos"], &rows[0]["size"], &rows[0]["publishers"]),
        (&1.into(), &64.into(), &4.into())
    );

    let out = Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args(["bench", "mqtt", "--size", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value '100'") && stderr.contains("64, 16384"),
        "{stderr}"
    );
}

/// `scripts/bench-mqttwrk.py --quick`: the third-party load tool (mqttwrk, which
/// `scripts/test.sh` installs into target/tools) drives both brokers, and every message it
/// expects reaches it from ours.
#[test]
fn mqttwrk_drives_both_brokers_and_ours_loses_nothing() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mqttwrk = root.join("target/tools/bin/mqttwrk");
    assert!(
        mqttwrk.exists() || Command::new("mqttwrk").arg("--version").output().is_ok(),
        "mqttwrk is missing: cargo install mqttwrk --version 0.2.0 --locked --root target/tools (scripts/test.sh does it)"
    );
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .arg(root.join("scripts/bench-mqttwrk.py"))
        .args([
            "--quick",
            "--json",
            "--teemesh",
            env!("CARGO_BIN_EXE_teemesh"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let loads = report["loads"].as_array().unwrap();
    assert_eq!(loads.len(), 8, "2 QoS × 2 sizes × 2 shapes");
    for load in loads {
        for broker in ["ours", "mosquitto"] {
            assert!(
                load[broker]["median_msgs_per_s"].as_f64().unwrap() > 0.0,
                "{load}"
            );
        }
        let ours = &load["ours"];
        assert_eq!(ours["unfinished_runs"], 0, "{load}");
        assert_eq!(ours["lost"], 0, "{load}");
        assert_eq!(ours["delivered"], ours["expected"], "{load}");
    }
}
