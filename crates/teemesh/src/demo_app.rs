//! Step 7 of `teemesh demo`: an application across three nodes in this process, wired as
//! `teemesh deploy` wires it. A sensor driver (Rust) on node-a feeds readings to the sensor filter
//! (C) on node-b, whose alerts drive an actuator (C) on node-c. Every module is uploaded and its
//! signed claims verified; each connection gets a fresh key wrapped to both modules' attested
//! channel keys; events travel sealed between the nodes. Then an operator tries to make the
//! actuator act on an event that no sensor produced, and the node refuses. Then the filter is
//! updated in place (C → Rust, its sealed threshold handed over, its connections re-keyed) and
//! the actuator migrates to node-b, each while the sensor keeps ticking, and every event is
//! counted exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use atls::PeerVerifier;
use attest::{Endorsements, Measurement384};
use node::protocol::{Bytes, CallKind, ConnectionInfo, EventProtection, Op, Reply};
use node::{AdminClient, AdminKey};

use crate::wire::{AttestedModule, Endpoint, connection_specs, load_attested, start_sim_node};

const SENSOR_DRIVER: &[u8] =
    include_bytes!("../../../examples/sensor-driver/sensor-driver-rust.wasm");
const SENSOR_FILTER_C: &[u8] =
    include_bytes!("../../../examples/sensor-filter/sensor-filter-c.wasm");
const SENSOR_FILTER_RUST: &[u8] =
    include_bytes!("../../../examples/sensor-filter/sensor-filter-rust.wasm");
const ACTUATOR: &[u8] = include_bytes!("../../../examples/actuator/actuator-c.wasm");
/// Ticks of the sensor: its sawtooth (20 + step % 16) rises above the threshold of 30 once every
/// 16 ticks, and the filter alerts on each upward crossing.
const TICKS: u64 = 32;
const EXPECTED_ALERTS: u64 = 2;
/// Ticks while the filter is updated and while the actuator migrates: 16 each, one more alert
/// each.
const MORE_TICKS: u64 = 16;

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

/// Re-keys connection `id` between `from` (on `admins[from_node]`) and `to`: a fresh key wrapped
/// to both, staged at both ends, then activated at both (as `teemesh app rekey` does).
#[allow(clippy::too_many_arguments)]
async fn rekey(
    admins: &mut [AdminClient],
    id: u32,
    protection: EventProtection,
    (from, from_node, from_port): (&AttestedModule, usize, &str),
    (to, to_node, to_port): (&AttestedModule, usize, &str),
    to_address: &str,
) -> Result<()> {
    let (receiver, sender) = connection_specs(
        "sensor-alarm",
        id,
        protection,
        &Endpoint {
            module: from,
            port: from_port,
        },
        &Endpoint {
            module: to,
            port: to_port,
        },
        to_address,
    )?;
    for activate in [false, true] {
        admins[to_node]
            .request(Op::Rekey {
                spec: receiver.clone(),
                activate,
            })
            .await?;
        admins[from_node]
            .request(Op::Rekey {
                spec: sender.clone(),
                activate,
            })
            .await?;
    }
    Ok(())
}

/// Ticks the sensor `n` times from a task of its own (as its timer would), while `during` runs.
async fn ticking_while<T>(
    sensor: &mut AdminClient,
    n: u64,
    during: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let ticks = async {
        for _ in 0..n {
            call(
                sensor,
                "sensor",
                CallKind::Input,
                "tick",
                r#"{"sensor":"t1"}"#,
            )
            .await?;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok::<(), anyhow::Error>(())
    };
    let (ticked, outcome) = tokio::join!(ticks, during);
    ticked?;
    outcome
}

/// Waits until `module`'s receiving ends on `admin` counted `expected` events in all.
async fn received(admin: &mut AdminClient, module: &str, expected: u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let received: u64 = connections(admin, module)
            .await?
            .iter()
            .filter(|c| c.end == "receiver")
            .map(|c| c.events)
            .sum();
        if received >= expected || Instant::now() > deadline {
            return Ok(received);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_async(measurement: Measurement384) -> Result<Vec<String>> {
    let mut surprises = Vec::new();
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    // The nodes admit each other as peers only on the simulated TEE's own measurement.
    crate::wire::write_sim_peer_policy(dir.path(), measurement)?;
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem"))?;
    let mut nodes = Vec::new();
    for name in ["node-a", "node-b", "node-c"] {
        nodes.push(start_sim_node(dir.path(), name, &key, "peers.toml").await?);
    }
    let policy = crate::wire::sim_mesh_policy(measurement);
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

    // The filter is replaced by its Rust version while the sensor ticks: the node swaps it in
    // between two deliveries and hands its sealed state (the threshold) over.
    let (sensor_admin, rest) = admins.split_at_mut(1);
    let updated = ticking_while(&mut sensor_admin[0], MORE_TICKS, async {
        let reply = rest[0]
            .request(Op::Update {
                name: "filter".into(),
                wasm: Bytes(SENSOR_FILTER_RUST.to_vec()),
            })
            .await?;
        let Reply::Module(info) = reply else {
            bail!("the node did not answer the update");
        };
        crate::wire::verify_claims(
            &mut rest[0],
            &verifier,
            "filter",
            attest::Digest256::of(SENSOR_FILTER_RUST).0,
            info.manifest,
        )
        .await
    })
    .await?;
    modules[1] = updated;
    for (id, from, from_port, to, to_port, protection, _) in wiring {
        rekey(
            &mut admins,
            id,
            protection,
            (&modules[from], from, from_port),
            (&modules[to], to, to_port),
            &nodes[to].admin_addr.to_string(),
        )
        .await?;
    }
    let filter_received = received(&mut admins[1], "filter", TICKS + MORE_TICKS).await?;
    println!(
        "  filter updated in place, C → Rust (measurement {}…), while the sensor ticked {MORE_TICKS} times; its threshold went with it, both connections re-keyed; it has received {filter_received} readings",
        &hex::encode(modules[1].measurement)[..16]
    );
    if filter_received != TICKS + MORE_TICKS {
        surprises.push(format!(
            "the filter received {filter_received} readings across its update, not {}",
            TICKS + MORE_TICKS
        ));
    }

    // The actuator moves to node-b while the sensor ticks: its state and its connection end
    // are sealed to its new instance there, and the filter's end is pointed at node-b.
    let moved = load_attested(&mut admins[1], &verifier, "actuator", ACTUATOR).await?;
    let old = modules[2].clone();
    let node_b = nodes[1].admin_addr.to_string();
    let (sensor_admin, rest) = admins.split_at_mut(1);
    let (node_b_admin, node_c_admin) = rest.split_at_mut(1);
    ticking_while(&mut sensor_admin[0], MORE_TICKS, async {
        let Reply::Exported { handover } = node_c_admin[0]
            .request(Op::Export {
                module: "actuator".into(),
                app: "sensor-alarm".into(),
                recipient_claims: moved.signed_claims_json.clone(),
                recipient_certificate: Bytes(moved.node_certificate.clone()),
            })
            .await?
        else {
            bail!("node-c did not answer the export");
        };
        node_b_admin[0]
            .request(Op::Import {
                module: "actuator".into(),
                app: "sensor-alarm".into(),
                handover,
                sender_claims: old.signed_claims_json.clone(),
                sender_certificate: Bytes(old.node_certificate.clone()),
            })
            .await?;
        node_b_admin[0]
            .request(Op::Retarget {
                app: "sensor-alarm".into(),
                connection: 2,
                module: "filter".into(),
                peer_address: node_b.clone(),
            })
            .await?;
        node_c_admin[0]
            .request(Op::Unload {
                name: "actuator".into(),
            })
            .await?;
        Ok(())
    })
    .await?;
    modules[2] = moved;
    rekey(
        &mut admins,
        2,
        EventProtection::Authenticated,
        (&modules[1], 1, "alert"),
        (&modules[2], 1, "alert"),
        &node_b,
    )
    .await?;
    let total_alerts = EXPECTED_ALERTS + 2 * MORE_TICKS / 16;
    let alerts = received(&mut admins[1], "actuator", total_alerts).await?;
    let state = call(&mut admins[1], "actuator", CallKind::Entry, "state", "").await?;
    let actions = serde_json::from_slice::<serde_json::Value>(&state)
        .ok()
        .and_then(|v| v["actions"].as_u64())
        .unwrap_or(0);
    println!(
        "  actuator migrated node-c → node-b while the sensor ticked {MORE_TICKS} times: its state and connection went sealed to its new instance; {alerts} alerts received in all, actuator state: {}",
        String::from_utf8_lossy(&state)
    );
    if alerts != total_alerts || actions != total_alerts {
        surprises.push(format!(
            "after the migration the actuator counted {alerts} alerts and {actions} actions, not {total_alerts}"
        ));
    }
    for c in connections(&mut admins[1], "actuator").await? {
        if c.missing + c.forged + c.replayed + c.malformed > 0 {
            surprises.push(format!("actuator connection #{}: {c:?}", c.connection));
        }
    }
    drop(admins);
    // Together, so no node outlives a peer it links to and reports it gone.
    let mut nodes = nodes.into_iter();
    if let (Some(a), Some(b), Some(c)) = (nodes.next(), nodes.next(), nodes.next()) {
        tokio::join!(a.shutdown(), b.shutdown(), c.shutdown());
    }
    println!();
    Ok(surprises)
}
