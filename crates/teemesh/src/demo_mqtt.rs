//! Step 8 of `teemesh demo`: the attested MQTT broker inside a node. node-m runs the broker on an
//! attested TLS listener (its own attested identity) under an ACL that admits publications under
//! `plant/` only from app `plant`'s module `filter`, as its node-signed module claims prove. The
//! Rust sensor filter on node-m subscribes its input to `plant/readings` and publishes its output
//! on `plant/alerts` through the node's MQTT client. A subscriber outside any TEE appraises the
//! broker (simulated, node-m's identity) and gets exactly the expected alerts; a plain client's
//! forged alert is refused by the broker (PUBACK Not authorized) and never reaches it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use atls::PeerVerifier;
use attest::{Endorsements, Measurement384};
use bytes::Bytes;
use mqtt::{
    Packet, PacketId, Properties, ProtocolVersion, Publish, PublishQos, QoS, ReasonCode, Subscribe,
    Subscription, SubscriptionOptions,
};
use node::mqtt::ListenerKind;
use node::protocol::{CallKind, Op, Reply, TopicDirection, TopicEndInfo, TopicSpec};
use node::{AdminClient, AdminKey};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use crate::mqtt_client_cmd::unattested_atls;
use crate::mqtt_conn::{Client, handshake};
use crate::wire::{load_attested, start_sim_node_with};

/// The committed Rust sensor filter (examples/sensor-filter).
const SENSOR_FILTER: &[u8] =
    include_bytes!("../../../examples/sensor-filter/sensor-filter-rust.wasm");
/// node-m's `[mqtt]`: one attested TLS listener and its ACL. The module's rule pins its code
/// (`module_measurement`) as well as its names: names are labels the signing node's operator
/// chose, so the measurement is what says which code may publish.
fn mqtt_config() -> String {
    use sha2::Digest as _;
    let filter = hex::encode(sha2::Sha256::digest(SENSOR_FILTER));
    format!(
        "[[mqtt.listener]]\nkind = \"atls\"\naddress = \"127.0.0.1:0\"\n\
         [mqtt.acl]\ndefault = \"deny\"\n\
         [[mqtt.acl.rule]]\npermission = \"allow\"\napp = \"plant\"\nmodule = \"filter\"\n\
         module_measurement = \"{filter}\"\nallow_simulated = true\ntopic = \"%a/#\"\n\
         [[mqtt.acl.rule]]\npermission = \"allow\"\nactions = [\"subscribe\"]\ntopic = \"plant/alerts\"\n\
         [[mqtt.acl.rule]]\npermission = \"allow\"\nactions = [\"publish\"]\ntopic = \"plant/readings\"\n"
    )
}
const THRESHOLD: u32 = 30;
/// Readings (sensor, value); the filter alerts when a sensor goes from at-or-below the
/// threshold to above it, so t2 at 36 (already above) is no new alert.
const READINGS: [(&str, u32); 5] = [("t1", 21), ("t2", 35), ("t1", 31), ("t3", 12), ("t2", 36)];
const EXPECTED_ALERTS: [(&str, u32); 2] = [("t2", 35), ("t1", 31)];
/// Published after the forged alert: its alert is the next message the subscriber gets.
const LAST_READING: (&str, u32) = ("t3", 40);
/// How long any one outcome may take to show.
const DEADLINE: Duration = Duration::from_secs(10);

fn packet_id(n: u16) -> Result<PacketId> {
    PacketId::new(n).context("packet identifiers start at 1")
}

pub(crate) fn run(measurement: Measurement384) -> Result<Vec<String>> {
    crate::async_runtime()?.block_on(run_async(measurement))
}

async fn run_async(measurement: Measurement384) -> Result<Vec<String>> {
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    // The node admits attested peers (its own MQTT client, for one) only on the simulated
    // TEE's own measurement.
    crate::wire::write_sim_peer_policy(dir.path(), measurement)?;
    let key = AdminKey::load_or_create(&dir.path().join("admin-key.pem"))?;
    let node =
        start_sim_node_with(dir.path(), "node-m", &key, "peers.toml", &mqtt_config()).await?;
    let outcome = steps(&node, &key, measurement).await;
    node.shutdown().await;
    println!();
    outcome
}

async fn steps(
    node: &node::RunningNode,
    key: &AdminKey,
    measurement: Measurement384,
) -> Result<Vec<String>> {
    let mut surprises = Vec::new();
    let broker = node
        .mqtt_listeners
        .iter()
        .flatten()
        .find(|l| l.kind == ListenerKind::Atls)
        .map(|l| l.address.to_string())
        .context("node-m started no attested TLS MQTT listener")?;
    println!(
        "  node-m runs the MQTT broker on {broker} (attested TLS: node-m's own attested identity)"
    );
    println!(
        "  ACL: default deny; plant/# only for app plant's module filter running this code (its verified claims: names and measurement); anyone may publish plant/readings and subscribe plant/alerts"
    );

    let policy = crate::wire::sim_mesh_policy(measurement);
    let verifier = Arc::new(PeerVerifier::new(policy.clone(), Endorsements::default()));
    let mut admin =
        AdminClient::connect(&node.admin_addr.to_string(), key, verifier.clone()).await?;
    let filter = load_attested(&mut admin, &verifier, "filter", SENSOR_FILTER).await?;
    if !filter.manifest.inputs.iter().any(|p| p == "reading")
        || !filter.manifest.outputs.iter().any(|p| p == "alert")
    {
        bail!(
            "the sensor filter's ports are not the expected ones: {:?}",
            filter.manifest
        );
    }
    admin
        .request(Op::Call {
            module: "filter".into(),
            kind: CallKind::Entry,
            port: "configure".into(),
            data: format!(r#"{{"threshold": {THRESHOLD}}}"#).as_bytes().into(),
        })
        .await?;
    println!(
        "  Rust sensor filter loaded as \"filter\" on node-m (claims verified, measurement {}…), threshold {THRESHOLD}",
        &hex::encode(filter.measurement)[..16]
    );
    for (port, topic, direction) in [
        ("reading", "plant/readings", TopicDirection::Subscribe),
        ("alert", "plant/alerts", TopicDirection::Publish),
    ] {
        admin
            .request(Op::Topic(TopicSpec {
                app: "plant".into(),
                module: "filter".into(),
                port: port.into(),
                broker_address: broker.clone(),
                topic: topic.into(),
                qos: 1,
                direction,
            }))
            .await
            .map_err(crate::admin_cmd::refusal)?;
    }
    let ends = topic_ends(&mut admin, |ends| {
        ends.len() == 2 && ends.iter().all(|e| e.connected)
    })
    .await?;
    if ends.len() != 2 || !ends.iter().all(|e| e.connected) {
        bail!("the filter's topic ends did not connect: {ends:?}");
    }
    println!(
        "  topic ends plant/readings → filter.reading and filter.alert → plant/alerts (QoS 1): node-m's MQTT client"
    );
    println!(
        "  authenticated the module to the broker with node-signed module claims ({}); the broker admitted it",
        node::mqtt::MODULE_CLAIMS_METHOD
    );

    // The subscriber, outside any TEE: it appraises the broker before it says anything.
    let transport = unattested_atls(policy.clone(), Endorsements::default())?;
    let (stream, attestation) = transport.connect(&broker).await?;
    let attestation = attestation.context("the broker presented no attestation")?;
    let claims = attestation.verified.claims();
    let simulated = claims.is_simulated();
    println!(
        "  subscriber (outside any TEE) → broker: affirmed as {:?}, platform {}, measurement {}…, simulated: {}",
        attestation.bound.node_name.as_deref().unwrap_or("?"),
        claims.platform_kind(),
        &claims.primary_measurement_hex()[..16],
        if simulated {
            "YES (SIMULATED: no hardware protects it)"
        } else {
            "no"
        }
    );
    if attestation.bound.node_name.as_deref() != Some("node-m")
        || attestation.bound.pubkey_hash != admin.attestation.bound.pubkey_hash
    {
        surprises.push("the broker's attested identity is not node-m's".into());
    }
    if !simulated || claims.primary_measurement_hex() != measurement.to_hex() {
        surprises.push("the broker's attestation is not node-m's simulated measurement".into());
    }
    let mut subscriber = handshake(stream, "demo-subscriber", ProtocolVersion::V5).await?;
    subscriber.queue(&Packet::Subscribe(Subscribe {
        packet_id: packet_id(1)?,
        subscriptions: vec![Subscription {
            filter: "plant/alerts".into(),
            options: SubscriptionOptions::new(QoS::AtLeastOnce),
        }],
        properties: Properties::default(),
    }))?;
    subscriber.flush().await?;
    match next(&mut subscriber).await? {
        Packet::SubAck(ack) if ack.reason_codes.iter().all(|c| c.granted_qos().is_some()) => {
            println!("  subscriber: subscribed to plant/alerts");
        }
        other => bail!("the subscription to plant/alerts was not granted: {other:?}"),
    }

    // A plain client (no module claims) feeds the readings.
    let (stream, _) = transport.connect(&broker).await?;
    let mut publisher = handshake(stream, "demo-publisher", ProtocolVersion::V5).await?;
    for (i, (sensor, value)) in READINGS.iter().enumerate() {
        let code = publish(
            &mut publisher,
            i as u16 + 1,
            "plant/readings",
            &format!(r#"{{"sensor": "{sensor}", "value": {value}}}"#),
        )
        .await?;
        if code.is_error() {
            surprises.push(format!("reading {sensor}={value} refused: {code}"));
        }
    }
    println!(
        "  plain client → plant/readings: {}",
        READINGS
            .iter()
            .map(|(s, v)| format!("{s}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for expected in EXPECTED_ALERTS {
        let alert = alert(&mut subscriber).await?;
        println!("  subscriber ← plant/alerts: {}", summary(&alert));
        if !is_alert(&alert, expected) {
            surprises.push(format!("expected the alert {expected:?}, got {alert}"));
        }
    }
    let ends = topic_ends(&mut admin, |ends| counts(ends) == (5, 2)).await?;
    let (delivered, published) = counts(&ends);
    println!(
        "  filter's topic ends: {delivered} readings delivered, {published} alerts published (acknowledged)"
    );
    if (delivered, published) != (5, 2) {
        surprises.push(format!(
            "topic end counts: {delivered} delivered, {published} published, expected 5 and 2"
        ));
    }

    // The plain client forges an alert: only the module's verified claims may publish there.
    let code = publish(
        &mut publisher,
        100,
        "plant/alerts",
        r#"{"sensor": "t1", "value": 99}"#,
    )
    .await?;
    if code == ReasonCode::NotAuthorized {
        println!(
            "  plain client → plant/alerts (forged alert, MQTT 5 QoS 1): REFUSED by the broker, PUBACK {code}"
        );
    } else {
        surprises.push(format!("the forged alert was not refused: PUBACK {code}"));
    }
    // One more reading above the threshold: its alert is the next message the subscriber gets,
    // so the forged one was never delivered.
    let (sensor, value) = LAST_READING;
    publish(
        &mut publisher,
        101,
        "plant/readings",
        &format!(r#"{{"sensor": "{sensor}", "value": {value}}}"#),
    )
    .await?;
    let next_alert = alert(&mut subscriber).await?;
    if is_alert(&next_alert, LAST_READING) {
        println!(
            "  subscriber ← plant/alerts: {} (the next alert after {sensor}={value}: the forged one never arrived)",
            summary(&next_alert)
        );
    } else {
        surprises.push(format!(
            "the subscriber got {next_alert} where the alert for {sensor}={value} was expected"
        ));
    }
    drop(admin);
    for client in [&mut subscriber, &mut publisher] {
        client.shutdown().await;
    }
    Ok(surprises)
}

/// The next packet, within the deadline.
async fn next(client: &mut Client) -> Result<Packet> {
    timeout_at(Instant::now() + DEADLINE, client.next())
        .await
        .context("the broker did not answer in time")?
        .map_err(Into::into)
}

/// Publishes `payload` on `topic` at QoS 1 and returns the PUBACK's reason code.
async fn publish(client: &mut Client, id: u16, topic: &str, payload: &str) -> Result<ReasonCode> {
    let id = packet_id(id)?;
    client.queue(&Packet::Publish(Publish {
        dup: false,
        qos: PublishQos::new(QoS::AtLeastOnce, id),
        retain: false,
        topic: topic.into(),
        payload: Bytes::from(payload.as_bytes().to_vec()),
        properties: Properties::default(),
    }))?;
    client.flush().await?;
    loop {
        match next(client).await? {
            Packet::PubAck(ack) if ack.packet_id == id => return Ok(ack.reason_code),
            Packet::PingResp => {}
            other => bail!("expected PUBACK, got {other:?}"),
        }
    }
}

/// The next alert the subscriber gets (acknowledged), as JSON.
async fn alert(client: &mut Client) -> Result<Value> {
    loop {
        match next(client).await? {
            Packet::Publish(publish) => {
                if let PublishQos::AtLeastOnce(id) = publish.qos {
                    client.queue(&Packet::PubAck(mqtt::Acknowledgement {
                        packet_id: id,
                        reason_code: ReasonCode::Success,
                        properties: Properties::default(),
                    }))?;
                    client.flush().await?;
                }
                return Ok(
                    serde_json::from_slice(&publish.payload).unwrap_or_else(|_| {
                        Value::String(String::from_utf8_lossy(&publish.payload).into_owned())
                    }),
                );
            }
            Packet::PingResp => {}
            other => bail!("expected an alert, got {other:?}"),
        }
    }
}

fn is_alert(alert: &Value, (sensor, value): (&str, u32)) -> bool {
    alert["sensor"] == sensor
        && alert["value"].as_f64() == Some(f64::from(value))
        && alert["threshold"].as_f64() == Some(f64::from(THRESHOLD))
}

fn summary(alert: &Value) -> String {
    format!(
        "sensor {} value {} above threshold {}",
        alert["sensor"], alert["value"], alert["threshold"]
    )
}

/// (delivered to the input, published from the output) over the filter's topic ends.
fn counts(ends: &[TopicEndInfo]) -> (u64, u64) {
    let sum = |direction, count: fn(&TopicEndInfo) -> u64| {
        ends.iter()
            .filter(|e| e.direction == direction)
            .map(count)
            .sum::<u64>()
    };
    (
        sum(TopicDirection::Subscribe, |e| e.delivered),
        sum(TopicDirection::Publish, |e| e.published),
    )
}

/// The filter's topic ends once `done` holds for them, or as they are at the deadline.
async fn topic_ends(
    admin: &mut AdminClient,
    done: impl Fn(&[TopicEndInfo]) -> bool,
) -> Result<Vec<TopicEndInfo>> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let ends = match admin.request(Op::List).await? {
            Reply::Modules(list) => list
                .into_iter()
                .find(|m| m.name == "filter")
                .map(|m| m.topics)
                .unwrap_or_default(),
            other => bail!("unexpected reply: {other:?}"),
        };
        if done(&ends) || Instant::now() > deadline {
            return Ok(ends);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
