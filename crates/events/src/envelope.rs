//! The wire form of one protected event: a 14-byte header (version, flags, connection id,
//! counter) and the AEAD body. The header is authenticated as associated data; parsing it checks
//! only its shape, never trusts it.
//!
//! ```text
//! 0      1      2            6                   14
//! | ver  | flags| connection | counter (u64 BE)  | body: ciphertext ‖ tag, or payload ‖ tag
//! flags: bits 0-1 protection (1 encrypted, 2 authenticated), bit 2 reverse direction,
//!        bit 3 the sender resumed after a restart (its counter may have skipped ahead)
//! ```

use crate::{ConnectionId, Direction, Protection, Rejection};

/// Bytes before the body.
pub const ENVELOPE_HEADER_LEN: usize = 14;
/// Bytes of the Poly1305 tag at the end of every body.
pub const TAG_LEN: usize = 16;
/// The largest payload an event may carry (1 MiB, the node protocol's payload limit).
pub const MAX_EVENT_LEN: usize = 1 << 20;

const VERSION: u8 = 1;
const FLAG_PROTECTION_MASK: u8 = 0b0011;
const FLAG_REVERSE: u8 = 0b0100;
const FLAG_RESUMED: u8 = 0b1000;

/// The authenticated header of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    /// The connection the event belongs to.
    pub connection: ConnectionId,
    /// Which way it travels.
    pub direction: Direction,
    /// How its body is protected.
    pub protection: Protection,
    /// Its position in the direction's sequence.
    pub counter: u64,
    /// The sender restarted since its previous event and resumed at a reserved counter.
    pub resumed: bool,
}

impl EnvelopeHeader {
    pub(crate) fn encode(&self) -> [u8; ENVELOPE_HEADER_LEN] {
        let mut header = [0u8; ENVELOPE_HEADER_LEN];
        header[0] = VERSION;
        let mut flags = self.protection.code();
        if self.direction == Direction::Reverse {
            flags |= FLAG_REVERSE;
        }
        if self.resumed {
            flags |= FLAG_RESUMED;
        }
        header[1] = flags;
        header[2..6].copy_from_slice(&self.connection.get().to_be_bytes());
        header[6..14].copy_from_slice(&self.counter.to_be_bytes());
        header
    }

    /// The 96-bit AEAD nonce: (connection id << 1 | direction) ‖ counter. Unique for a key as
    /// long as a direction never reuses a counter, which [`crate::EventSender`] guarantees.
    pub(crate) fn nonce(&self) -> [u8; 12] {
        let mut nonce = [0u8; 12];
        let word = (self.connection.get() << 1) | self.direction.bit();
        nonce[..4].copy_from_slice(&word.to_be_bytes());
        nonce[4..].copy_from_slice(&self.counter.to_be_bytes());
        nonce
    }
}

/// A parsed, not yet authenticated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// Its header.
    pub header: EnvelopeHeader,
    /// The header's bytes, as associated data.
    pub(crate) header_bytes: &'a [u8],
    /// Ciphertext or payload, then the tag.
    pub(crate) body: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Splits `bytes` into header and body, checking the header's shape and the body's length.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, Rejection> {
        let malformed = |reason: String| Err(Rejection::Malformed(reason));
        if bytes.len() < ENVELOPE_HEADER_LEN + TAG_LEN {
            return malformed(format!(
                "{} bytes, shorter than a header and a tag ({} bytes)",
                bytes.len(),
                ENVELOPE_HEADER_LEN + TAG_LEN
            ));
        }
        if bytes[0] != VERSION {
            return malformed(format!(
                "envelope version {} (this node speaks {VERSION})",
                bytes[0]
            ));
        }
        let flags = bytes[1];
        if flags & !(FLAG_PROTECTION_MASK | FLAG_REVERSE | FLAG_RESUMED) != 0 {
            return malformed(format!("unknown flags {flags:#04x}"));
        }
        let protection = match flags & FLAG_PROTECTION_MASK {
            1 => Protection::Encrypted,
            2 => Protection::Authenticated,
            other => return malformed(format!("unknown protection code {other}")),
        };
        let direction = if flags & FLAG_REVERSE == 0 {
            Direction::Forward
        } else {
            Direction::Reverse
        };
        let id = u32::from_be_bytes([bytes[2], bytes[3], bytes[4], bytes[5]]);
        let connection = ConnectionId::new(id)
            .map_err(|_| Rejection::Malformed(format!("connection id {id} is out of range")))?;
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&bytes[6..14]);
        let body = &bytes[ENVELOPE_HEADER_LEN..];
        if body.len() - TAG_LEN > MAX_EVENT_LEN {
            return malformed(format!(
                "payload of {} bytes is larger than the {MAX_EVENT_LEN}-byte limit",
                body.len() - TAG_LEN
            ));
        }
        Ok(Self {
            header: EnvelopeHeader {
                connection,
                direction,
                protection,
                counter: u64::from_be_bytes(counter),
                resumed: flags & FLAG_RESUMED != 0,
            },
            header_bytes: &bytes[..ENVELOPE_HEADER_LEN],
            body,
        })
    }

    /// The payload length the body carries.
    pub fn payload_len(&self) -> usize {
        self.body.len() - TAG_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> EnvelopeHeader {
        EnvelopeHeader {
            connection: ConnectionId::new(0x1234_5678).expect("in range"),
            direction: Direction::Reverse,
            protection: Protection::Authenticated,
            counter: 0x0102_0304_0506_0708,
            resumed: true,
        }
    }

    #[test]
    fn header_layout_is_fixed() {
        assert_eq!(
            hex::encode(header().encode()),
            "010e123456780102030405060708"
        );
        // The connection id and direction share the nonce's first word, the counter the rest.
        assert_eq!(hex::encode(header().nonce()), "2468acf10102030405060708");
    }

    #[test]
    fn parse_reads_back_what_encode_wrote() {
        let mut bytes = header().encode().to_vec();
        bytes.extend_from_slice(&[0xaa; TAG_LEN + 3]);
        let envelope = Envelope::parse(&bytes).expect("well formed");
        assert_eq!(envelope.header, header());
        assert_eq!(envelope.payload_len(), 3);
    }

    #[test]
    fn malformed_envelopes_say_what_is_wrong() {
        let good = {
            let mut bytes = header().encode().to_vec();
            bytes.extend_from_slice(&[0; TAG_LEN]);
            bytes
        };
        let reason = |bytes: &[u8]| match Envelope::parse(bytes) {
            Err(Rejection::Malformed(reason)) => reason,
            other => panic!("expected malformed, got {other:?}"),
        };
        assert!(reason(&good[..29]).contains("shorter than a header and a tag"));
        let mut bad = good.clone();
        bad[0] = 2;
        assert!(reason(&bad).contains("envelope version 2"));
        let mut bad = good.clone();
        bad[1] = 0x10 | 1;
        assert!(reason(&bad).contains("unknown flags"));
        let mut bad = good.clone();
        bad[1] = 3;
        assert!(reason(&bad).contains("unknown protection code 3"));
        let mut bad = good;
        bad[2] = 0x80;
        assert!(reason(&bad).contains("out of range"));
    }
}
