#![allow(clippy::unwrap_used)]
//! `teemesh bench mqtt --quick` runs our broker and Debian's mosquitto side by side with the
//! same load generator and reports both; at QoS 1 every message is delivered by both, over
//! plain TCP and (ours) attested TLS. The numbers of a quick debug run mean nothing; that the
//! matrix runs end to end does.

use std::process::Command;

#[test]
fn both_brokers_carry_the_same_load_and_qos1_loses_nothing() {
    let out = Command::new(env!("CARGO_BIN_EXE_teemesh"))
        .args([
            "bench",
            "mqtt",
            "--quick",
            "--json",
            "--transport",
            "tcp",
            "--transport",
            "atls",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n(the benchmark needs Debian's mosquitto: apt-get install mosquitto)",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["mqtt"].as_array().unwrap();
    assert_eq!(rows.len(), 16, "2 transports × 2 QoS × 2 sizes × 2 shapes");
    for row in rows {
        let ours = &row["teemesh"];
        assert!(ours["messages_per_sec"].as_f64().unwrap() > 0.0, "{row}");
        match row["transport"].as_str().unwrap() {
            "tcp" => assert!(row["mosquitto"].is_object(), "{row}"),
            _ => assert!(
                row["mosquitto"].is_null(),
                "mosquitto has no attested TLS: {row}"
            ),
        }
        if row["qos"] == 1 {
            assert_eq!(ours["delivered"], ours["expected"], "{row}");
            if row["mosquitto"].is_object() {
                assert_eq!(
                    row["mosquitto"]["delivered"], row["mosquitto"]["expected"],
                    "{row}"
                );
            }
        }
    }
}
