//! The fixed header and the streaming decoder (§2.1, §1.5.5): partial input, the remaining
//! length, the maximum packet size, and the per-connection CONNECT-first rule.

use mqtt::{
    Decoder, Error, FixedHeader, MAX_PACKET_SIZE, Packet, PacketType, ReasonCode, decode,
    parse_fixed_header,
};

use crate::{V5, V311, bytes, refused};

#[test]
fn reserved_packet_type_0() {
    assert_eq!(refused(V5, "00 00"), Error::ReservedPacketType(0));
    assert_eq!(refused(V311, "0f"), Error::ReservedPacketType(0));
}

#[test]
fn the_first_byte_is_judged_before_the_rest_arrives() {
    assert_eq!(refused(V311, "36"), Error::InvalidQos(3));
    assert!(matches!(refused(V311, "c1"), Error::ReservedFlags { .. }));
    assert_eq!(decode(&[], V5, MAX_PACKET_SIZE), Ok(None));
}

#[test]
fn remaining_length_is_at_most_four_bytes_in_shortest_form() {
    // Partial lengths need more bytes.
    assert_eq!(decode(&bytes("30 ff ff"), V5, MAX_PACKET_SIZE), Ok(None));
    assert_eq!(decode(&bytes("30 ff ff ff"), V5, MAX_PACKET_SIZE), Ok(None));
    // A fourth byte with the continuation bit, with or without a fifth.
    for hex_text in ["30 ff ff ff ff", "30 ff ff ff ff 7f"] {
        let error = refused(V5, hex_text);
        assert!(
            matches!(error, Error::MalformedVariableInteger { .. }),
            "{hex_text}"
        );
        assert_eq!(error.reason_code(), ReasonCode::MalformedPacket);
    }
    // Zero in two bytes.
    assert!(matches!(
        refused(V5, "c0 80 00"),
        Error::MalformedVariableInteger { .. }
    ));
    // The largest remaining length is a valid header.
    let header = parse_fixed_header(&bytes("30 ff ff ff 7f"), V5, MAX_PACKET_SIZE)
        .expect("valid")
        .expect("complete");
    assert_eq!(
        header,
        FixedHeader {
            packet_type: PacketType::Publish,
            flags: 0,
            remaining_length: 268_435_455,
            header_len: 5,
        }
    );
    assert_eq!(header.packet_len(), MAX_PACKET_SIZE as usize);
}

#[test]
fn a_packet_above_the_maximum_is_refused_from_its_fixed_header() {
    // A 2 + 255 byte PUBLISH, of which only the fixed header has arrived.
    let error = decode(&bytes("30 ff 01"), V5, 100).expect_err("too large");
    assert_eq!(
        error,
        Error::PacketTooLarge {
            size: 258,
            max: 100
        }
    );
    assert_eq!(error.reason_code(), ReasonCode::PacketTooLarge);
    // Exactly the maximum is fine (the fixed header counts).
    assert_eq!(
        decode(&bytes("c0 00"), V5, 2),
        Ok(Some((Packet::PingReq, 2)))
    );
    assert!(decode(&bytes("c0 00"), V5, 1).is_err());
}

#[test]
fn the_decoder_learns_the_version_from_connect() {
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    assert_eq!(decoder.version(), None);
    // Anything but CONNECT first is refused from its first byte.
    assert_eq!(
        decoder.fixed_header(&bytes("c0")),
        Err(Error::ExpectedConnect(PacketType::PingReq))
    );
    let connect = bytes("10 0d 0004 4d515454 04 02 003c 0001 61");
    assert_eq!(decoder.decode(&connect[..5]), Ok(None));
    let (packet, used) = decoder.decode(&connect).expect("valid").expect("complete");
    assert_eq!(used, connect.len());
    assert!(matches!(packet, Packet::Connect(_)));
    assert_eq!(decoder.version(), Some(V311));
    // Now 3.1.1 rules: AUTH is a reserved type, a second CONNECT a protocol error.
    assert_eq!(
        decoder.decode(&bytes("f0 00")),
        Err(Error::ReservedPacketType(15))
    );
    let again = decoder.decode(&connect).expect_err("second CONNECT");
    assert_eq!(again, Error::UnexpectedConnect);
    assert_eq!(again.reason_code(), ReasonCode::ProtocolError);
    assert_eq!(
        decoder.decode(&bytes("c0 00")),
        Ok(Some((Packet::PingReq, 2)))
    );
}

#[test]
fn the_decoder_of_a_v5_connection_reads_v5_packets() {
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let connect = bytes("10 0e 0004 4d515454 05 02 003c 00 0001 61");
    decoder.decode(&connect).expect("valid").expect("complete");
    assert_eq!(decoder.version(), Some(V5));
    assert!(matches!(
        decoder.decode(&bytes("e0 01 8e")),
        Ok(Some((Packet::Disconnect(_), 3)))
    ));
    decoder.set_max_packet_size(2);
    assert!(matches!(
        decoder.decode(&bytes("e0 01 8e")),
        Err(Error::PacketTooLarge { .. })
    ));
}

#[test]
fn every_error_maps_to_a_reason_code_a_disconnect_may_carry() {
    let samples = [
        refused(V5, "00 00"),
        refused(V5, "30 03 0000 00"),
        refused(V5, "30 03 0001 23"),
        refused(
            V311,
            "82 06 0001 0001 23 00"
                .replace("0001 23", "0002 2323")
                .as_str(),
        ),
    ];
    for error in samples {
        assert!(
            error.reason_code().is_allowed_in(PacketType::Disconnect),
            "{error}: {}",
            error.reason_code()
        );
        assert!(!error.kind().is_empty());
    }
}
