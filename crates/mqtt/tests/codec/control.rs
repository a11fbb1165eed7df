//! PINGREQ, PINGRESP, DISCONNECT and AUTH (§3.12–3.15), with their malformed twins.

use bytes::Bytes;
use mqtt::{
    Auth, Disconnect, Error, Packet, PacketType, Properties, PropertyContext, PropertyId,
    ReasonCode,
};

use crate::{V5, V311, not_encodable, refused, valid};

#[test]
fn pings() {
    for version in [V311, V5] {
        valid(version, "c0 00", Packet::PingReq);
        valid(version, "d0 00", Packet::PingResp);
    }
}

#[test]
fn ping_twins() {
    assert!(matches!(
        refused(V311, "c0 01 00"),
        Error::TrailingBytes { extra: 1, .. }
    ));
    assert_eq!(
        refused(V5, "d1 00"),
        Error::ReservedFlags {
            packet: PacketType::PingResp,
            flags: 1,
            expected: 0
        }
    );
}

#[test]
fn disconnect() {
    valid(V311, "e0 00", Packet::Disconnect(Disconnect::default()));
    valid(V5, "e0 00", Packet::Disconnect(Disconnect::default()));
    valid(
        V5,
        "e0 01 04",
        Packet::Disconnect(Disconnect::new(ReasonCode::DisconnectWithWillMessage)),
    );
    valid(
        V5,
        "e0 06 8b 04 1f 0001 78",
        Packet::Disconnect(Disconnect {
            reason_code: ReasonCode::ServerShuttingDown,
            properties: Properties {
                reason_string: Some("x".into()),
                ..Properties::default()
            },
        }),
    );
    // 3.1.1 cannot say why: the reason is dropped.
    assert_eq!(
        Packet::Disconnect(Disconnect::new(ReasonCode::KeepAliveTimeout))
            .to_bytes(V311)
            .expect("encodes"),
        crate::bytes("e0 00")
    );
}

#[test]
fn disconnect_twins() {
    assert!(matches!(
        refused(V311, "e0 01 00"),
        Error::TrailingBytes { .. }
    ));
    assert!(matches!(
        refused(V5, "e0 01 18"),
        Error::InvalidReasonCode { code: 0x18, .. }
    ));
    assert_eq!(
        refused(V5, "e0 07 00 05 12 0002 6964"),
        Error::PropertyNotAllowed {
            property: PropertyId::AssignedClientIdentifier,
            context: PropertyContext::Disconnect
        }
    );
    assert!(matches!(refused(V5, "e2 00"), Error::ReservedFlags { .. }));
}

#[test]
fn auth() {
    valid(
        V5,
        "f0 00",
        Packet::Auth(Auth {
            reason_code: ReasonCode::Success,
            properties: Properties::default(),
        }),
    );
    valid(
        V5,
        "f0 0c 18 0a 15 0003 534352 16 0001 01",
        Packet::Auth(Auth {
            reason_code: ReasonCode::ContinueAuthentication,
            properties: Properties {
                authentication_method: Some("SCR".into()),
                authentication_data: Some(Bytes::from_static(&[1])),
                ..Properties::default()
            },
        }),
    );
}

#[test]
fn auth_twins() {
    // Packet type 15 is reserved in 3.1.1.
    assert_eq!(refused(V311, "f0 00"), Error::ReservedPacketType(15));
    assert!(matches!(
        refused(V5, "f0 01 87"),
        Error::InvalidReasonCode { code: 0x87, .. }
    ));
    assert_eq!(
        refused(V5, "f0 06 18 04 16 0001 01"),
        Error::AuthDataWithoutMethod
    );
    assert!(matches!(
        not_encodable(
            V311,
            &Packet::Auth(Auth {
                reason_code: ReasonCode::Success,
                properties: Properties::default(),
            })
        ),
        Error::NotInVersion { .. }
    ));
}
