//! MQTT 5 features: topic aliases, receive maximum, maximum packet size, shared subscriptions,
//! no-local, subscription identifiers, forwarded properties, message expiry, retain options,
//! assigned client identifiers, will delay, session expiry on DISCONNECT.

use std::num::NonZeroU16;
use std::time::Duration;

use mqtt::{
    Disconnect, Packet, Properties, ProtocolVersion, PublishQos, QoS, ReasonCode, RetainHandling,
    Subscription, SubscriptionId, SubscriptionOptions,
};

use crate::client::*;

const V5: ProtocolVersion = ProtocolVersion::V5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_from_client() {
    let broker = start_default().await;
    let mut sub = Client::connect(broker.addr, V5, "sub").await;
    sub.subscribe("long/topic/name", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    let mut set = publish("long/topic/name", "1", PublishQos::AtMostOnce);
    set.properties.topic_alias = NonZeroU16::new(3);
    publisher.publish(set).await;
    let mut used = publish("", "2", PublishQos::AtMostOnce);
    used.properties.topic_alias = NonZeroU16::new(3);
    publisher.publish(used).await;
    for payload in [b"1", b"2"] {
        let got = sub.recv_publish().await;
        assert_eq!(got.topic, "long/topic/name");
        assert_eq!(&got.payload[..], payload);
        assert_eq!(got.properties.topic_alias, None);
    }
    // An unknown alias is a protocol error; one above the maximum is 0x94.
    let mut unknown = publish("", "3", PublishQos::AtMostOnce);
    unknown.properties.topic_alias = NonZeroU16::new(4);
    publisher.send(Packet::Publish(unknown)).await;
    assert_eq!(
        publisher.expect_closed().await,
        Some(ReasonCode::ProtocolError)
    );
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    let mut too_big = publish("t", "4", PublishQos::AtMostOnce);
    too_big.properties.topic_alias = NonZeroU16::new(1000);
    publisher.send(Packet::Publish(too_big)).await;
    assert_eq!(
        publisher.expect_closed().await,
        Some(ReasonCode::TopicAliasInvalid)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_of_the_client_is_respected() {
    let broker = start_default().await;
    let mut connect = connect_packet(V5, "sub", true);
    connect.properties = v5_props_receive_max(2);
    let (mut sub, _) = Client::connect_with(broker.addr, connect).await;
    sub.subscribe("q", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    for n in 1..=5 {
        publisher
            .publish(publish("q", &n.to_string(), PublishQos::AtLeastOnce(id(n))))
            .await;
    }
    let first = sub.recv_publish().await;
    let second = sub.recv_publish().await;
    sub.expect_silence().await;
    sub.ack(&first).await;
    let third = sub.recv_publish().await;
    assert_eq!(&third.payload[..], b"3");
    sub.expect_silence().await;
    sub.ack(&second).await;
    sub.ack(&third).await;
    for expected in [b"4", b"5"] {
        let got = sub.recv_publish().await;
        assert_eq!(&got.payload[..], expected);
        sub.ack(&got).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maximum_packet_size_of_the_client_is_respected() {
    let broker = start_default().await;
    let mut connect = connect_packet(V5, "small", true);
    connect.properties = v5_props_max_packet(64);
    let (mut sub, _) = Client::connect_with(broker.addr, connect).await;
    sub.subscribe("m", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    publisher
        .publish(publish(
            "m",
            &"x".repeat(100),
            PublishQos::AtLeastOnce(id(1)),
        ))
        .await;
    publisher
        .publish(publish("m", "fits", PublishQos::AtLeastOnce(id(2))))
        .await;
    let got = sub.recv_publish().await;
    assert_eq!(&got.payload[..], b"fits");
    assert!(broker.broker.counters().dropped_too_large.get() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_round_robin() {
    let broker = start_default().await;
    let mut members = Vec::new();
    for name in ["m1", "m2"] {
        let mut member = Client::connect(broker.addr, V5, name).await;
        let ack = member.subscribe("$share/g/jobs/+", QoS::AtLeastOnce).await;
        assert_eq!(ack.reason_codes, vec![ReasonCode::GrantedQoS1]);
        members.push(member);
    }
    let mut plain = Client::connect(broker.addr, ProtocolVersion::V311, "plain").await;
    plain.subscribe("jobs/#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, ProtocolVersion::V311, "pub").await;
    for n in 1..=4 {
        publisher
            .publish(publish(
                "jobs/a",
                &n.to_string(),
                PublishQos::AtLeastOnce(id(n)),
            ))
            .await;
    }
    for member in &mut members {
        for _ in 0..2 {
            let got = member.recv_publish().await;
            member.ack(&got).await;
        }
        member.expect_silence().await;
    }
    for _ in 0..4 {
        plain.recv_publish().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_subscription_ids_and_forwarded_properties() {
    let broker = start_default().await;
    let mut client = Client::connect(broker.addr, V5, "me").await;
    let mut options = SubscriptionOptions::new(QoS::AtMostOnce);
    options.no_local = true;
    let properties = Properties {
        subscription_identifiers: vec![SubscriptionId::new(7).expect("id")],
        ..Properties::default()
    };
    client
        .subscribe_with(
            1,
            vec![Subscription {
                filter: "req/#".into(),
                options,
            }],
            properties,
        )
        .await;
    let mut other = Client::connect(broker.addr, V5, "other").await;
    let mut request = publish("req/x", "hello", PublishQos::AtMostOnce);
    request.properties.response_topic = Some("resp/x".into());
    request.properties.correlation_data = Some("c-1".into());
    request.properties.user_properties = vec![("k".into(), "v".into())];
    request.properties.content_type = Some("text/plain".into());
    request.properties.message_expiry_interval = Some(60);
    other.publish(request.clone()).await;
    let got = client.recv_publish().await;
    assert_eq!(got.properties.response_topic.as_deref(), Some("resp/x"));
    assert_eq!(
        got.properties.correlation_data.as_deref(),
        Some(&b"c-1"[..])
    );
    assert_eq!(
        got.properties.user_properties,
        request.properties.user_properties
    );
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(
        got.properties.subscription_identifiers,
        vec![SubscriptionId::new(7).expect("id")]
    );
    let expiry = got
        .properties
        .message_expiry_interval
        .expect("expiry forwarded");
    assert!((59..=60).contains(&expiry));
    // Its own publication does not come back.
    client
        .publish(publish("req/y", "mine", PublishQos::AtMostOnce))
        .await;
    client.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_messages_are_not_delivered() {
    let broker = start_default().await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    let mut short = publish("exp", "short", PublishQos::AtMostOnce);
    short.retain = true;
    short.properties.message_expiry_interval = Some(1);
    publisher.publish(short).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut sub = Client::connect(broker.addr, V5, "sub").await;
    sub.subscribe("exp", QoS::AtMostOnce).await;
    sub.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_and_retain_handling() {
    let broker = start_default().await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    let mut kept = publish("ret", "kept", PublishQos::AtMostOnce);
    kept.retain = true;
    publisher.publish(kept.clone()).await;
    // Retained before the subscriber comes (QoS 0 has no acknowledgement to wait for).
    publisher.settle().await;

    let mut sub = Client::connect(broker.addr, V5, "sub").await;
    let mut never = SubscriptionOptions::new(QoS::AtMostOnce);
    never.retain_handling = RetainHandling::DoNotSend;
    never.retain_as_published = true;
    sub.subscribe_with(
        1,
        vec![Subscription {
            filter: "ret".into(),
            options: never,
        }],
        Properties::default(),
    )
    .await;
    sub.expect_silence().await;
    publisher.publish(kept.clone()).await;
    assert!(sub.recv_publish().await.retain, "retain as published");

    let mut if_new = SubscriptionOptions::new(QoS::AtMostOnce);
    if_new.retain_handling = RetainHandling::SendIfNew;
    let subscription = vec![Subscription {
        filter: "ret/#".into(),
        options: if_new,
    }];
    sub.subscribe_with(2, subscription.clone(), Properties::default())
        .await;
    assert!(sub.recv_publish().await.retain);
    sub.subscribe_with(3, subscription, Properties::default())
        .await;
    sub.expect_silence().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigned_client_identifier() {
    let broker = start_default().await;
    let (_client, ack) = Client::connect_with(broker.addr, connect_packet(V5, "", true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    assert!(
        ack.properties
            .assigned_client_identifier
            .is_some_and(|id| !id.is_empty())
    );
    let (_client, ack) =
        Client::connect_with(broker.addr, connect_packet(ProtocolVersion::V311, "", true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    let (_client, ack) = Client::connect_with(
        broker.addr,
        connect_packet(ProtocolVersion::V311, "", false),
    )
    .await;
    assert_eq!(ack.reason_code, ReasonCode::ClientIdentifierNotValid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_delay_and_disconnect_with_will() {
    let broker = start_default().await;
    let mut watcher = Client::connect(broker.addr, V5, "watcher").await;
    watcher.subscribe("w/#", QoS::AtMostOnce).await;

    // Delayed will, cancelled by reconnecting to the session in time.
    let mut connect = connect_packet(V5, "delayed", false);
    connect.properties.session_expiry_interval = Some(60);
    let mut delayed = will("w/delayed", "late");
    delayed.properties.will_delay_interval = Some(2);
    connect.will = Some(delayed);
    let (client, _) = Client::connect_with(broker.addr, connect.clone()).await;
    client.vanish().await;
    let mut again = connect.clone();
    again.will = None;
    let (client, ack) = Client::connect_with(broker.addr, again).await;
    assert!(ack.session_present);
    watcher.expect_silence().await;
    // Lost again: this time the will comes after its delay.
    drop(client);
    let (client, _) = Client::connect_with(broker.addr, connect).await;
    drop(client);
    let started = std::time::Instant::now();
    let got = watcher.recv_publish().await;
    assert_eq!(got.topic, "w/delayed");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // DISCONNECT 0x04 sends the will at once.
    let mut connect = connect_packet(V5, "bye", true);
    connect.will = Some(will("w/bye", "on purpose"));
    let (mut client, _) = Client::connect_with(broker.addr, connect).await;
    client
        .send(Packet::Disconnect(Disconnect::new(
            ReasonCode::DisconnectWithWillMessage,
        )))
        .await;
    assert_eq!(watcher.recv_publish().await.topic, "w/bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_cannot_be_set_after_zero() {
    let broker = start_default().await;
    let mut client = Client::connect(broker.addr, V5, "zero").await;
    let mut disconnect = Disconnect::default();
    disconnect.properties.session_expiry_interval = Some(10);
    client.send(Packet::Disconnect(disconnect)).await;
    assert_eq!(
        client.expect_closed().await,
        Some(ReasonCode::ProtocolError)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_subscribers_reason() {
    let broker = start_default().await;
    let mut client = Client::connect(broker.addr, V5, "lonely").await;
    let reason = client
        .publish(publish(
            "nobody/listens",
            "x",
            PublishQos::AtLeastOnce(id(1)),
        ))
        .await;
    assert_eq!(reason, Some(ReasonCode::NoMatchingSubscribers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authentication_method_without_an_authenticator_is_refused_with_its_reason() {
    let broker = start_default().await;
    let mut connect = connect_packet(V5, "scram", true);
    connect.properties.authentication_method = Some("SCRAM-SHA-256".into());
    connect.properties.authentication_data = Some(b"n,,n=user".to_vec().into());
    let (mut client, ack) = Client::connect_with(broker.addr, connect).await;
    assert_eq!(ack.reason_code, ReasonCode::BadAuthenticationMethod);
    let reason = ack.properties.reason_string.unwrap_or_default();
    assert!(reason.contains("SCRAM-SHA-256"), "{reason}");
    assert_eq!(client.expect_closed().await, None);
    // The same client without the method is admitted.
    let (_, ack) = Client::connect_with(broker.addr, connect_packet(V5, "scram", true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
}

/// A CONNECT accepting up to `alias_max` topic aliases from the broker.
fn connect_with_aliases(client_id: &str, alias_max: u16, clean: bool) -> mqtt::Connect {
    let mut connect = connect_packet(V5, client_id, clean);
    connect.properties.topic_alias_maximum = Some(alias_max);
    connect.properties.session_expiry_interval = Some(300);
    connect
}

/// The client's side of the broker's topic aliases: resolves each PUBLISH's topic as
/// §3.3.2.3.4 says and checks every alias is within the maximum the client gave.
struct AliasesSeen {
    max: u16,
    topics: std::collections::HashMap<u16, String>,
}

impl AliasesSeen {
    fn new(max: u16) -> Self {
        Self {
            max,
            topics: std::collections::HashMap::new(),
        }
    }

    fn resolve(&mut self, publish: &mqtt::Publish) -> String {
        let Some(alias) = publish.properties.topic_alias else {
            assert!(!publish.topic.is_empty(), "no topic and no alias");
            return publish.topic.clone();
        };
        assert!(alias.get() <= self.max, "alias {alias} above {}", self.max);
        if publish.topic.is_empty() {
            self.topics
                .get(&alias.get())
                .cloned()
                .unwrap_or_else(|| panic!("alias {alias} used before it was set"))
        } else {
            self.topics.insert(alias.get(), publish.topic.clone());
            publish.topic.clone()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_to_client_topic_first_then_alias_only() {
    let broker = start_default().await;
    let (mut sub, ack) =
        Client::connect_with(broker.addr, connect_with_aliases("sub", 2, true)).await;
    assert_eq!(ack.reason_code, ReasonCode::Success);
    sub.subscribe("alias/#", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    for payload in ["1", "2", "3"] {
        publisher
            .publish(publish("alias/long/topic", payload, PublishQos::AtMostOnce))
            .await;
    }
    let first = sub.recv_publish().await;
    assert_eq!(first.topic, "alias/long/topic");
    let alias = first
        .properties
        .topic_alias
        .expect("an alias with the topic");
    assert!(alias.get() <= 2);
    for payload in [b"2", b"3"] {
        let next = sub.recv_publish().await;
        assert_eq!(next.topic, "", "the alias alone");
        assert_eq!(next.properties.topic_alias, Some(alias));
        assert_eq!(&next.payload[..], payload);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_to_client_three_topics_with_two_aliases() {
    let broker = start_default().await;
    let (mut sub, _) =
        Client::connect_with(broker.addr, connect_with_aliases("sub", 2, true)).await;
    sub.subscribe("t/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    let order = [
        "t/a", "t/a", "t/b", "t/c", "t/a", "t/b", "t/c", "t/c", "t/a",
    ];
    for (n, topic) in order.iter().enumerate() {
        let packet_id = id(u16::try_from(n + 1).expect("small"));
        publisher
            .publish(publish(
                topic,
                &n.to_string(),
                PublishQos::AtLeastOnce(packet_id),
            ))
            .await;
    }
    let mut seen = AliasesSeen::new(2);
    let mut aliased = 0;
    for (n, topic) in order.iter().enumerate() {
        let got = sub.recv_publish().await;
        assert_eq!(&got.payload[..], n.to_string().as_bytes());
        assert_eq!(seen.resolve(&got), *topic, "message {n}");
        if got.topic.is_empty() {
            aliased += 1;
        }
        sub.ack(&got).await;
    }
    // Back-to-back repeats at least ("t/a" twice, "t/c" twice) go by alias alone.
    assert!(aliased >= 2, "{aliased} messages by alias alone");
    assert!(seen.topics.len() <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_topic_aliases_to_a_client_that_did_not_ask() {
    let broker = start_default().await;
    let mut v5 = Client::connect(broker.addr, V5, "v5").await;
    v5.subscribe("plain", QoS::AtMostOnce).await;
    let mut v311 = Client::connect(broker.addr, ProtocolVersion::V311, "v311").await;
    v311.subscribe("plain", QoS::AtMostOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    for payload in ["1", "2"] {
        publisher
            .publish(publish("plain", payload, PublishQos::AtMostOnce))
            .await;
    }
    for client in [&mut v5, &mut v311] {
        for _ in 0..2 {
            let got = client.recv_publish().await;
            assert_eq!(got.topic, "plain");
            assert_eq!(got.properties.topic_alias, None);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_aliases_start_over_after_a_reconnection() {
    let broker = start_default().await;
    let (mut sub, _) =
        Client::connect_with(broker.addr, connect_with_aliases("sub", 2, true)).await;
    sub.subscribe("r", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(broker.addr, V5, "pub").await;
    for n in 1..=2 {
        publisher
            .publish(publish("r", &n.to_string(), PublishQos::AtLeastOnce(id(n))))
            .await;
    }
    let first = sub.recv_publish().await;
    assert_eq!(first.topic, "r");
    assert!(first.properties.topic_alias.is_some());
    let second = sub.recv_publish().await;
    assert_eq!(second.topic, "", "alias alone on the same connection");
    // Neither is acknowledged: both are resent on the next connection, whose first PUBLISH
    // names the topic again (aliases do not outlive their connection).
    sub.vanish().await;
    let (mut sub, ack) =
        Client::connect_with(broker.addr, connect_with_aliases("sub", 2, false)).await;
    assert!(ack.session_present);
    let mut seen = AliasesSeen::new(2);
    for payload in [b"1", b"2"] {
        let resent = sub.recv_publish().await;
        assert!(resent.dup);
        assert_eq!(&resent.payload[..], payload);
        assert_eq!(seen.resolve(&resent), "r");
        if payload == b"1" {
            assert_eq!(resent.topic, "r", "the first PUBLISH carries the topic");
        }
        sub.ack(&resent).await;
    }
    publisher
        .publish(publish("r", "3", PublishQos::AtLeastOnce(id(3))))
        .await;
    let third = sub.recv_publish().await;
    assert_eq!(seen.resolve(&third), "r");
}
