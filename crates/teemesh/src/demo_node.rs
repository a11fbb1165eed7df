//! Step 6 of `teemesh demo`: a node daemon on the simulated platform, in this process, with the
//! Rust sensor filter (embedded, so the demo runs from any directory) uploaded through the
//! admin API over attested TLS: configure, readings, the alert it emits, the latest reading,
//! and the module claims the node signed, verified against the node's evidence.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use atls::{PeerVerifier, SignedModuleClaims, verify_module_claims};
use attest::{Endorsements, Measurement384};
use node::protocol::{CallKind, Op, Reply};
use node::{AdminClient, AdminKey, NodeConfig};

/// The committed Rust sensor filter (examples/sensor-filter).
const SENSOR_FILTER: &[u8] =
    include_bytes!("../../../examples/sensor-filter/sensor-filter-rust.wasm");

pub(crate) fn run(measurement: Measurement384) -> Result<Vec<String>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(measurement))
}

async fn run_async(measurement: Measurement384) -> Result<Vec<String>> {
    let mut surprises = Vec::new();
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem"))?;
    let config = NodeConfig::parse(
        &format!(
            "name = \"node-d\"\ndata_dir = \"data\"\nplatform = \"sim\"\nadmin_listen = \"127.0.0.1:0\"\n[admin]\nauthorized_keys = [\"{}\"]\n",
            key.hash_string()
        ),
        dir.path(),
    )
    .map_err(anyhow::Error::msg)?;
    let node = node::start(&config, platform::PlatformRoots::default()).await?;
    println!(
        "  node-d listens on {} (admin API, attested TLS); the operator's admin key {} is authorised",
        node.admin_addr,
        key.hash_string()
    );

    let policy = crate::wire::sim_mesh_policy(measurement);
    let verifier = Arc::new(PeerVerifier::new(policy, Endorsements::default()));
    let mut admin =
        AdminClient::connect(&node.admin_addr.to_string(), &key, verifier.clone()).await?;
    println!(
        "  operator → node-d: affirmed (simulated: {}, fresh evidence bound to the session: {})",
        admin.hello.simulated, admin.attestation.fresh_in_session
    );

    let loaded = match admin
        .request(Op::Load {
            name: "sensor".into(),
            wasm: SENSOR_FILTER.into(),
        })
        .await?
    {
        Reply::Module(info) => info,
        other => anyhow::bail!("unexpected reply to load: {other:?}"),
    };
    println!(
        "  loaded \"sensor\" ({} bytes), measurement {}…, entries {:?}",
        SENSOR_FILTER.len(),
        &loaded.measurement[..16],
        loaded.manifest.entries
    );
    let calls = [
        (CallKind::Entry, "configure", r#"{"threshold": 30}"#),
        (
            CallKind::Input,
            "reading",
            r#"{"sensor": "t1", "value": 21.5}"#,
        ),
        (
            CallKind::Input,
            "reading",
            r#"{"sensor": "t1", "value": 31.5}"#,
        ),
        (CallKind::Handler, "latest", "{}"),
    ];
    for (kind, port, data) in calls {
        let reply = admin
            .request(Op::Call {
                module: "sensor".into(),
                kind,
                port: port.into(),
                data: data.as_bytes().into(),
            })
            .await?;
        if let Reply::Called {
            data: result,
            outputs,
        } = reply
        {
            println!(
                "  {:<7} {port:<9} {data:<32} → {} ({outputs} output event{})",
                kind.as_str(),
                if result.0.is_empty() {
                    "ok".to_owned()
                } else {
                    String::from_utf8_lossy(&result.0).into_owned()
                },
                if outputs == 1 { "" } else { "s" }
            );
        }
    }
    match admin
        .request(Op::Outputs {
            module: "sensor".into(),
            max: 10,
        })
        .await?
    {
        Reply::Outputs { events, .. } if events.len() == 1 => println!(
            "  output  {:<9} {}",
            events[0].output,
            String::from_utf8_lossy(&events[0].data.0)
        ),
        other => surprises.push(format!("expected exactly one alert, got {other:?}")),
    }
    if let Reply::Claims {
        signed_claims_json,
        node_certificate,
    } = admin
        .request(Op::Claims {
            module: "sensor".into(),
        })
        .await?
    {
        let signed: SignedModuleClaims = serde_json::from_str(&signed_claims_json)?;
        match verify_module_claims(&node_certificate.0, &signed, &verifier) {
            Ok(_) => println!(
                "  module claims verified: {:?} measurement {}… on platform {} (simulated: {}), signed by node-d's attested key",
                signed.claims.name,
                &signed.claims.measurement.to_hex()[..16],
                signed.claims.platform,
                signed.claims.simulated
            ),
            Err(e) => surprises.push(format!("module claims refused: {e}")),
        }
    }
    drop(admin);
    node.shutdown().await;
    println!();
    Ok(surprises)
}
