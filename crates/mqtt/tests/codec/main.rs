//! Packet-by-packet byte vectors written from the MQTT 3.1.1 and 5.0 specifications: each packet
//! type in both versions decodes to the expected value and encodes back to the same bytes, and
//! each rule has a malformed twin next to it that is refused with its own error.

mod connect;
mod control;
mod framing;
mod publish;
mod subscribe;

use mqtt::{Error, MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion, decode};

pub(crate) const V311: ProtocolVersion = ProtocolVersion::V311;
pub(crate) const V5: ProtocolVersion = ProtocolVersion::V5;

/// Bytes from hex written with spaces for readability.
pub(crate) fn bytes(hex_text: &str) -> Vec<u8> {
    let compact: String = hex_text.split_whitespace().collect();
    hex::decode(compact).expect("test vector is hex")
}

pub(crate) fn pid(value: u16) -> PacketId {
    PacketId::new(value).expect("non-zero test packet id")
}

/// `hex` is exactly `expected` in `version`: it decodes to it using every byte, every shorter
/// prefix asks for more bytes, and encoding `expected` gives `hex` back.
pub(crate) fn valid(version: ProtocolVersion, hex_text: &str, expected: Packet) {
    let wire = bytes(hex_text);
    let decoded = decode(&wire, version, MAX_PACKET_SIZE)
        .unwrap_or_else(|e| panic!("{hex_text}: {e}"))
        .unwrap_or_else(|| panic!("{hex_text}: incomplete"));
    assert_eq!(decoded, (expected.clone(), wire.len()), "{hex_text}");
    for cut in 0..wire.len() {
        assert_eq!(
            decode(&wire[..cut], version, MAX_PACKET_SIZE),
            Ok(None),
            "{hex_text}: prefix of {cut} bytes"
        );
    }
    let encoded = expected
        .to_bytes(version)
        .unwrap_or_else(|e| panic!("{hex_text}: encode: {e}"));
    assert_eq!(hex::encode(encoded), hex::encode(&wire), "{hex_text}");
    // A packet followed by the next one's first bytes: only its own bytes are taken.
    let mut followed = wire.clone();
    followed.extend_from_slice(&[0xC0, 0x00]);
    let (_, used) = decode(&followed, version, MAX_PACKET_SIZE)
        .expect("decodes")
        .expect("complete");
    assert_eq!(used, wire.len());
}

/// `hex` decodes in `version` to `expected`, which encodes to other (shorter, canonical) bytes.
pub(crate) fn accepted_non_canonical(version: ProtocolVersion, hex_text: &str, expected: Packet) {
    let wire = bytes(hex_text);
    let decoded = decode(&wire, version, MAX_PACKET_SIZE)
        .unwrap_or_else(|e| panic!("{hex_text}: {e}"))
        .unwrap_or_else(|| panic!("{hex_text}: incomplete"));
    assert_eq!(decoded, (expected.clone(), wire.len()), "{hex_text}");
    let encoded = expected.to_bytes(version).expect("encodes");
    assert_ne!(encoded, wire);
    let again = decode(&encoded, version, MAX_PACKET_SIZE)
        .expect("decodes")
        .expect("complete");
    assert_eq!(again, (expected, encoded.len()));
}

/// `hex` is refused in `version`; the error's message is one printable line.
pub(crate) fn refused(version: ProtocolVersion, hex_text: &str) -> Error {
    let wire = bytes(hex_text);
    let error = match decode(&wire, version, MAX_PACKET_SIZE) {
        Err(error) => error,
        Ok(other) => panic!("{hex_text} in {version}: expected a refusal, got {other:?}"),
    };
    let message = error.to_string();
    assert!(!message.trim().is_empty());
    assert!(!message.chars().any(char::is_control), "{message:?}");
    error
}

/// Encoding `packet` for `version` fails and leaves the buffer as it was.
pub(crate) fn not_encodable(version: ProtocolVersion, packet: &Packet) -> Error {
    let mut out = vec![0xAB];
    let error = packet
        .encode(version, &mut out)
        .expect_err("encoding must fail");
    assert_eq!(out, [0xAB], "a failed encode leaves the buffer untouched");
    error
}
