//! Authentication and authorisation: password hashes, anonymous access, ACL rules on client
//! identifiers, user names and attested claims, and the reason codes of refusals.

use bytes::Bytes;
use mqtt::broker::{
    AclConfig, Action, AttestedClaims, AuthConfig, Authorizer, BrokerConfig, ClientIdentity,
    RuleAcl, TransportIdentity, UserConfig, hash_password,
};
use mqtt::{ProtocolVersion, PublishQos, QoS, ReasonCode};

use crate::client::*;

fn acl(text: &str) -> AclConfig {
    toml::from_str(text).expect("ACL TOML")
}

fn users_config(acl_text: &str) -> BrokerConfig {
    BrokerConfig {
        auth: AuthConfig {
            allow_anonymous: Some(false),
            users: vec![UserConfig {
                name: "alice".into(),
                password_hash: hash_password(b"wonderland").expect("hash"),
            }],
        },
        acl: Some(acl(acl_text)),
        ..BrokerConfig::default()
    }
}

const RULES: &str = r#"
default = "deny"
[[rule]]
permission = "allow"
username = "alice"
topic = "users/%u/#"
[[rule]]
permission = "allow"
actions = ["subscribe"]
topic = "public/#"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_anonymous_access() {
    let broker = start(users_config(RULES)).await;
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut connect = connect_packet(version, "c", true);
        connect.username = Some("alice".into());
        connect.password = Some(Bytes::from_static(b"wrong"));
        let (_c, ack) = Client::connect_with(broker.addr, connect.clone()).await;
        assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
        connect.password = Some(Bytes::from_static(b"wonderland"));
        let (c, ack) = Client::connect_with(broker.addr, connect).await;
        assert_eq!(ack.reason_code, ReasonCode::Success);
        c.disconnect().await;
        let (_c, ack) =
            Client::connect_with(broker.addr, connect_packet(version, "anon", true)).await;
        assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_refusals_carry_reason_codes() {
    let broker = start(users_config(RULES)).await;
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut connect = connect_packet(version, "alice-client", true);
        connect.username = Some("alice".into());
        connect.password = Some(Bytes::from_static(b"wonderland"));
        let (mut alice, _) = Client::connect_with(broker.addr, connect).await;
        let ack = alice.subscribe("users/alice/#", QoS::AtLeastOnce).await;
        assert_eq!(ack.reason_codes, vec![ReasonCode::GrantedQoS1]);
        let ack = alice.subscribe("users/#", QoS::AtLeastOnce).await;
        // 3.1.1 can only say 0x80, which is what the codec encodes every refusal as.
        let refused = match version {
            ProtocolVersion::V5 => ReasonCode::NotAuthorized,
            ProtocolVersion::V311 => ReasonCode::UnspecifiedError,
        };
        assert_eq!(ack.reason_codes, vec![refused]);
        let ack = alice.subscribe("public/news", QoS::AtMostOnce).await;
        assert_eq!(ack.reason_codes, vec![ReasonCode::Success]);

        let reason = alice
            .publish(publish(
                "users/alice/x",
                "mine",
                PublishQos::AtLeastOnce(id(1)),
            ))
            .await;
        assert_eq!(reason, Some(ReasonCode::Success));
        let got = alice.recv_publish().await;
        alice.ack(&got).await;
        let reason = alice
            .publish(publish(
                "public/news",
                "nope",
                PublishQos::AtLeastOnce(id(2)),
            ))
            .await;
        match version {
            ProtocolVersion::V5 => assert_eq!(reason, Some(ReasonCode::NotAuthorized)),
            ProtocolVersion::V311 => assert_eq!(reason, Some(ReasonCode::Success)),
        }
        let reason = alice
            .publish(publish(
                "public/news",
                "nope",
                PublishQos::ExactlyOnce(id(3)),
            ))
            .await;
        match version {
            ProtocolVersion::V5 => assert_eq!(reason, Some(ReasonCode::NotAuthorized)),
            ProtocolVersion::V311 => assert_eq!(reason, Some(ReasonCode::Success)),
        }
        // Nothing of the refused publications was delivered.
        alice.expect_silence().await;
        alice.disconnect().await;
    }
}

fn attested(app: &str, module: &str, simulated: bool) -> ClientIdentity {
    ClientIdentity {
        client_id: "node-a".into(),
        username: None,
        username_verified: false,
        transport: TransportIdentity {
            attested: Some(AttestedClaims {
                platform: "tdx".into(),
                measurement: "ABCD".into(),
                simulated,
                node_name: Some("node-a".into()),
                app: Some(app.into()),
                module: Some(module.into()),
                module_measurement: Some("ab12".into()),
            }),
            ..TransportIdentity::default()
        },
    }
}

#[test]
fn rules_on_attested_claims() {
    let rules = RuleAcl::new(acl(r##"
default = "deny"
[[rule]]
permission = "allow"
actions = ["publish"]
attested = true
platform = "tdx"
measurement = "abcd"
topic = "apps/%a/%m/#"
[[rule]]
permission = "allow"
actions = ["subscribe"]
attested = false
topic = "apps/+/+/status"
[[rule]]
permission = "deny"
client_id = "intruder"
topic = "#"
[[rule]]
permission = "allow"
topic = "clients/%c/#"
"##))
    .expect("rules");
    let module = attested("sensors", "filter", false);
    assert!(rules.authorize(&module, Action::Publish, "apps/sensors/filter/out"));
    // An app name that would reach the broker's own topics, or widen the level, matches nothing.
    let dollar = attested("$SYS", "filter", false);
    assert!(!rules.authorize(&dollar, Action::Publish, "apps/$SYS/filter/out"));
    assert!(!rules.authorize(&module, Action::Publish, "apps/other/filter/out"));
    assert!(!rules.authorize(&module, Action::Subscribe, "apps/sensors/filter/status"));
    // Simulated evidence matches no claims rule unless the rule allows it.
    let simulated = attested("sensors", "filter", true);
    assert!(!rules.authorize(&simulated, Action::Publish, "apps/sensors/filter/out"));

    let plain = ClientIdentity {
        client_id: "dash".into(),
        ..ClientIdentity::default()
    };
    assert!(rules.authorize(&plain, Action::Subscribe, "apps/+/+/status"));
    assert!(rules.authorize(&plain, Action::Subscribe, "apps/sensors/filter/status"));
    assert!(!rules.authorize(&plain, Action::Subscribe, "apps/#"));
    assert!(!rules.authorize(&plain, Action::Publish, "apps/sensors/filter/out"));
    assert!(rules.authorize(&plain, Action::Publish, "clients/dash/x"));
    assert!(!rules.authorize(&plain, Action::Publish, "clients/other/x"));
    let intruder = ClientIdentity {
        client_id: "intruder".into(),
        ..ClientIdentity::default()
    };
    assert!(!rules.authorize(&intruder, Action::Publish, "clients/intruder/x"));
    // A client id with a wildcard or a slash cannot widen a %c rule.
    let sneaky = ClientIdentity {
        client_id: "a/b".into(),
        ..ClientIdentity::default()
    };
    assert!(!rules.authorize(&sneaky, Action::Publish, "clients/a/b/x"));
}

#[test]
fn rules_on_the_module_measurement() {
    let rules = RuleAcl::new(acl(r##"
default = "deny"
[[rule]]
permission = "allow"
module_measurement = "AB12"
topic = "apps/%a/#"
"##))
    .expect("rules");
    let module = attested("sensors", "filter", false);
    assert!(rules.authorize(&module, Action::Publish, "apps/sensors/x"));
    // Twins: another module's bytes, and a node without module claims.
    let mut other = module.clone();
    if let Some(claims) = other.transport.attested.as_mut() {
        claims.module_measurement = Some("ab13".into());
    }
    assert!(!rules.authorize(&other, Action::Publish, "apps/sensors/x"));
    let mut node_only = module;
    if let Some(claims) = node_only.transport.attested.as_mut() {
        claims.module_measurement = None;
    }
    assert!(!rules.authorize(&node_only, Action::Publish, "apps/sensors/x"));
}

#[test]
fn invalid_rule_patterns_are_refused() {
    let bad = acl(r#"
[[rule]]
permission = "allow"
topic = "a/#/b"
"#);
    assert!(RuleAcl::new(bad).is_err());
    let unknown_key: Result<AclConfig, _> =
        toml::from_str("[[rule]]\npermission = \"allow\"\ntopic = \"a\"\nplatfrom = \"tdx\"\n");
    assert!(unknown_key.is_err());
}

/// A session belongs to the client that made it: another principal reusing its client
/// identifier (to take the subscriptions the ACL granted its owner, or to end it) is refused,
/// live or offline, whatever its clean start; the owner resumes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_principal_cannot_take_over_or_resume_a_session() {
    let mut config = users_config(RULES);
    config.auth.allow_anonymous = Some(true);
    let broker = start(config).await;
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut owner_connect = connect_packet(version, "alices-session", false);
        owner_connect.username = Some("alice".into());
        owner_connect.password = Some(Bytes::from_static(b"wonderland"));
        if version == ProtocolVersion::V5 {
            owner_connect.properties.session_expiry_interval = Some(300);
        }
        let (mut owner, _) = Client::connect_with(broker.addr, owner_connect.clone()).await;
        owner.subscribe("users/alice/#", QoS::AtLeastOnce).await;

        let mut thief = connect_packet(version, "alices-session", false);
        thief.properties.session_expiry_interval = owner_connect.properties.session_expiry_interval;
        for clean in [false, true] {
            thief.clean_start = clean;
            let (mut refused, ack) = Client::connect_with(broker.addr, thief.clone()).await;
            assert_eq!(
                ack.reason_code,
                ReasonCode::NotAuthorized,
                "{version} clean {clean}"
            );
            assert!(!ack.session_present);
            let _ = refused.expect_closed().await;
        }
        // The owner's connection was not taken over.
        owner.settle().await;
        owner.vanish().await;

        // Offline, the session is still refused to others, and resumed by its owner.
        thief.clean_start = false;
        let (_refused, ack) = Client::connect_with(broker.addr, thief).await;
        assert_eq!(
            ack.reason_code,
            ReasonCode::NotAuthorized,
            "{version} offline"
        );
        let (owner, ack) = Client::connect_with(broker.addr, owner_connect).await;
        assert_eq!(ack.reason_code, ReasonCode::Success);
        assert!(ack.session_present, "{version}");
        let mut clean = connect_packet(version, "alices-session", true);
        clean.username = Some("alice".into());
        clean.password = Some(Bytes::from_static(b"wonderland"));
        owner.disconnect().await;
        let (owner, _) = Client::connect_with(broker.addr, clean).await;
        owner.disconnect().await;
    }
}
