//! Fuzzes what the broker does with bytes from a client: the MQTT decoder in both protocol
//! versions, packet after packet through the input, and a connection's `Decoder` (CONNECT
//! first). Nothing may panic; every packet decoded re-encodes to bytes that decode to the same
//! packet; every truncation of those bytes only asks for more; every refusal is one printable
//! line with a reason code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt::{Decoder, Error, Packet, ProtocolVersion, decode};

/// The maximum packet size the committed corpus in fuzz/corpus/mqtt_packet is judged with.
const MAX_PACKET_SIZE: u32 = 1 << 20;

fn assert_one_line(error: &Error) {
    let message = error.to_string();
    assert!(!message.trim().is_empty(), "empty error message: {error:?}");
    assert!(
        !message.chars().any(char::is_control),
        "error message is not one printable line: {message:?}"
    );
    assert!(!error.kind().is_empty());
    assert!(error.reason_code().is_error());
}

fn check_round_trip(packet: &Packet, version: ProtocolVersion) {
    let wire = packet
        .to_bytes(version)
        .unwrap_or_else(|e| panic!("decoded packet does not re-encode: {e}: {packet:?}"));
    let again = decode(&wire, version, mqtt::MAX_PACKET_SIZE)
        .unwrap_or_else(|e| panic!("re-encoded packet is refused: {e}: {packet:?}"));
    assert_eq!(again.as_ref(), Some(&(packet.clone(), wire.len())));
    // A few truncations: never an error, never a packet.
    for cut in [0, 1, wire.len() / 2, wire.len() - 1] {
        assert_eq!(
            decode(&wire[..cut], version, mqtt::MAX_PACKET_SIZE),
            Ok(None)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut offset = 0;
        loop {
            match decode(&data[offset..], version, MAX_PACKET_SIZE) {
                Ok(Some((packet, used))) => {
                    assert!(used > 0 && used <= data.len() - offset);
                    // CONNECT is encoded in its own version, whatever the connection's.
                    let packet_version = match &packet {
                        Packet::Connect(connect) => connect.protocol,
                        _ => version,
                    };
                    check_round_trip(&packet, packet_version);
                    offset += used;
                }
                Ok(None) => break,
                Err(error) => {
                    assert_one_line(&error);
                    break;
                }
            }
        }
    }

    // A server-side connection: CONNECT first, then the version it names.
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let mut offset = 0;
    loop {
        match decoder.decode(&data[offset..]) {
            Ok(Some((packet, used))) => {
                if offset == 0 {
                    assert!(matches!(packet, Packet::Connect(_)));
                    assert!(decoder.version().is_some());
                } else {
                    assert!(!matches!(packet, Packet::Connect(_)));
                }
                offset += used;
            }
            Ok(None) => break,
            Err(error) => {
                assert_one_line(&error);
                break;
            }
        }
    }
});
