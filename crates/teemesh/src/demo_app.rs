//! Step 7 of `teemesh demo`: an application across three nodes in this process, wired as
//! `teemesh deploy` wires it. A sensor driver (Rust) on node-a feeds readings to the sensor filter
//! (C) on node-b, whose alerts drive an actuator (C) on node-c. Every module is uploaded and its
//! signed claims verified; each connection gets a fresh key wrapped to both modules' attested
//! channel keys; events travel sealed between the nodes. Then an operator tries to make the
//! actuator act on an event that no sensor produced, and the node refuses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use atls::PeerVerifier;
use attest::{AppraisalPolicy, Endorsements, Measurement384};
use node::protocol::{Bytes, CallKind, ConnectionInfo, EventProtection, Op, Reply};
use node::{AdminClient, AdminKey};

use crate::wire::{AttestedModule, Endpoint, connection_specs, load_attested, start_sim_node};

const SENSOR_DRIVER: &[u8] =
    include_bytes!("../../../examples/sensor-driver/sensor-driver-rust.wasm");
const SENSOR_FILTER_C: &[u8] =
    include_bytes!("../../../examples/sensor-filter/sensor-filter-c.wasm");
const ACTUATOR: &[u8] = include_bytes!("../../../examples/actuator/actuator-c.wasm");
/// Ticks of the sensor: its sawtooth (20 + step % 16) rises above the threshold of 30 once every
/// 16 ticks, and the filter alerts on each upward crossing.
const TICKS: u64 = 32;
const EXPECTED_ALERTS: u64 = 2;

pub(crate) fn run(measurement: Measurement384) -> Result<Vec<String>> {
    crate::async_runtime()?.block_on(run_async(measurement))
}

async fn call(
    admin: &mut AdminClient,
    module: &str,
    kind: CallKind,
    port: &str,
    data: &str,
) -> Result<Vec<u8>> {
    match admin
        .request(Op::Call {
            module: module.into(),
            kind,
            port: port.into(),
            data: Bytes(data.as_bytes().to_vec()),
        })
        .await?
    {
        Reply::Called { data, .. } => Ok(data.0),
        other => bail!("unexpected reply: {other:?}"),
    }
}

async fn connections(admin: &mut AdminClient, module: &str) -> Result<Vec<ConnectionInfo>> {
    match admin.request(Op::List).await? {
        Reply::Modules(list) => Ok(list
            .into_iter()
            .find(|m| m.name == module)
            .map(|m| m.connections)
            .unwrap_or_default()),
        other => bail!("unexpected reply: {other:?}"),
    }
}

async fn run_async(measurement: Measurement384) -> Result<Vec<String>> {
    let mut surprises = Vec::new();
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    // The nodes admit each other as peers only on the simulated TEE's own measurement.
    std::fs::write(
        dir.path().join("peers.toml"),
        format!(
            "allow_simulated = true\n[sim]\nmeasurement = \"{}\"\n",
            measurement.to_hex()
        ),
    )?;
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem"))?;
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(start_sim_node(dir.path(), name, &key, "peers.toml").await?);
    }
    let mut policy = AppraisalPolicy {
        allow_simulated: true,
        ..AppraisalPolicy::default()
    };
    policy.sim.measurement.0 = vec![measurement];
    let verifier = Arc::new(PeerVerifier::new(policy, Endorsements::default()));
    let mut admins = Vec::new();
    for node in &nodes {
        admins.push(
            AdminClient::connect(&node.admin_addr.to_string(), &key, verifier.clone()).await?,
        );
    }

    let placement: [(&str, &[u8], usize, &str); 3] = [
        ("sensor", SENSOR_DRIVER, 0, "Rust sensor driver"),
        ("filter", SENSOR_FILTER_C, 1, "C sensor filter"),
        ("actuator", ACTUATOR, 2, "C actuator"),
    ];
    let mut modules: Vec<AttestedModule> = Vec::new();
    for (name, wasm, node, what) in placement {
        let module = load_attested(&mut admins[node], &verifier, name, wasm).await?;
        println!(
            "  {what:<18} {name:<8} on node-{}: claims verified, measurement {}…, channel key {}…",
            ["a", "b", "c"][node],
            &hex::encode(module.measurement)[..16],
            &module.channel_key.to_string()[..16]
        );
        modules.push(module);
    }
    call(
        &mut admins[1],
        "filter",
        CallKind::Entry,
        "configure",
        r#"{"threshold":30}"#,
    )
    .await?;

    let wiring = [
        (
            1,
            0,
            "reading",
            1,
            "reading",
            EventProtection::Encrypted,
            "encrypted",
        ),
        (
            2,
            1,
            "alert",
            2,
            "alert",
            EventProtection::Authenticated,
            "authenticated",
        ),
    ];
    for (id, from, from_port, to, to_port, protection, label) in wiring {
        let (receiver, sender) = connection_specs(
            "sensor-alarm",
            id,
            protection,
            &Endpoint {
                module: &modules[from],
                port: from_port,
            },
            &Endpoint {
                module: &modules[to],
                port: to_port,
            },
            &nodes[to].admin_addr.to_string(),
        )?;
        admins[to].request(Op::Connect(receiver)).await?;
        admins[from].request(Op::Connect(sender)).await?;
        println!(
            "  connection #{id} {}.{from_port} → {}.{to_port} ({label}): a fresh key, wrapped to both modules' channel keys",
            modules[from].name, modules[to].name
        );
    }

    for _ in 0..TICKS {
        call(
            &mut admins[0],
            "sensor",
            CallKind::Input,
            "tick",
            r#"{"sensor":"t1"}"#,
        )
        .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        let state = call(&mut admins[2], "actuator", CallKind::Entry, "state", "").await?;
        let text = String::from_utf8_lossy(&state).into_owned();
        let actions = serde_json::from_slice::<serde_json::Value>(&state)
            .ok()
            .and_then(|v| v["actions"].as_u64())
            .unwrap_or(0);
        if actions >= EXPECTED_ALERTS || Instant::now() > deadline {
            break (actions, text);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "  {TICKS} sensor ticks → readings to the filter → alerts to the actuator; actuator state: {}",
        state.1
    );
    if state.0 != EXPECTED_ALERTS {
        surprises.push(format!(
            "the actuator acted {} times, not {EXPECTED_ALERTS}",
            state.0
        ));
    }
    // Every reading has reached the filter once the last one is counted there.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let received: u64 = connections(&mut admins[1], "filter")
            .await?
            .iter()
            .filter(|c| c.end == "receiver")
            .map(|c| c.events)
            .sum();
        if received >= TICKS || Instant::now() > deadline {
            if received != TICKS {
                surprises.push(format!(
                    "the filter received {received} readings, not {TICKS}"
                ));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (admin, module) in [(1, "filter"), (2, "actuator")] {
        for c in connections(&mut admins[admin], module).await? {
            if c.end == "receiver" {
                println!(
                    "  {module} received on #{}: {} events, {} missing, {} forged, {} replayed",
                    c.connection, c.events, c.missing, c.forged, c.replayed
                );
            }
        }
    }

    // An operator with the admin key tries to drive the actuator directly.
    let forged = admins[2]
        .request(Op::Call {
            module: "actuator".into(),
            kind: CallKind::Input,
            port: "alert".into(),
            data: Bytes(
                br#"{"sensor":"t1","value":99,"threshold":30,"count":1,"time_ns":0}"#.to_vec(),
            ),
        })
        .await;
    match forged {
        Err(e) => println!("  an operator injecting an alert into the actuator: refused ({e})"),
        Ok(_) => surprises.push("an injected alert reached the actuator".into()),
    }
    drop(admins);
    for node in nodes {
        node.shutdown().await;
    }
    println!();
    Ok(surprises)
}
