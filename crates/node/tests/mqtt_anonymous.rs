#![allow(clippy::unwrap_used)]
//! Anonymous MQTT clients (no user name, no module claims) and `[auth] allow_anonymous`: unset,
//! they are admitted only while every listener is on a loopback address (as mosquitto 2 does
//! when it listens only locally); a listener on every interface refuses them unless the
//! configuration says `allow_anonymous = true`.

use mqtt::client::Connection;
use mqtt::{ConnAck, Connect, Properties, ProtocolVersion, ReasonCode};
use node::mqtt::{AtlsIdentity, MqttConfig, start_broker};
use platform::PlatformRoots;
use tokio::net::TcpStream;

/// A broker from `config` and an anonymous MQTT 5 client's CONNACK from it.
async fn anonymous_connack(config: &str) -> ConnAck {
    let config: MqttConfig = toml::from_str(config).unwrap();
    let broker = start_broker(
        &config,
        &AtlsIdentity::PerListener(PlatformRoots::default()),
    )
    .await
    .unwrap();
    let port = broker.listeners()[0].address.port();
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 60,
        client_id: "anonymous".into(),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    };
    let (_, ack) = Connection::handshake(stream, connect, 1 << 20)
        .await
        .unwrap();
    broker.stop().await;
    ack
}

const LOOPBACK: &str = "[[listener]]\nkind = \"tcp\"\naddress = \"127.0.0.1:0\"\n";
const EVERYWHERE: &str = "[[listener]]\nkind = \"tcp\"\naddress = \"0.0.0.0:0\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unset_admits_anonymous_clients_only_on_loopback() {
    assert_eq!(
        anonymous_connack(LOOPBACK).await.reason_code,
        ReasonCode::Success
    );
    // Twin: the same broker listening on every interface; MQTT 5 is told why.
    let refused = anonymous_connack(EVERYWHERE).await;
    assert_eq!(refused.reason_code, ReasonCode::NotAuthorized);
    assert_eq!(
        refused.properties.reason_string.as_deref(),
        Some("anonymous clients are not allowed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_decides_when_it_says() {
    let open = format!("{EVERYWHERE}[auth]\nallow_anonymous = true\n");
    assert_eq!(
        anonymous_connack(&open).await.reason_code,
        ReasonCode::Success
    );
    let closed = format!("{LOOPBACK}[auth]\nallow_anonymous = false\n");
    assert_eq!(
        anonymous_connack(&closed).await.reason_code,
        ReasonCode::NotAuthorized
    );
}
