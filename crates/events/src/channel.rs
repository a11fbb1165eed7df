//! The two ends of one direction of a connection. The sender numbers its events 0, 1, 2, ... and
//! never reuses or wraps a number; the receiver accepts only authentic events numbered above the
//! last one it accepted, reports how many it never saw, and rejects everything else. The state
//! changes only after an event authenticated, so nothing an attacker sends can move it.

use std::fmt;

use chacha20poly1305::aead::AeadInPlace as _;
use chacha20poly1305::{ChaCha20Poly1305, Tag};

use crate::envelope::{ENVELOPE_HEADER_LEN, Envelope, EnvelopeHeader, MAX_EVENT_LEN, TAG_LEN};
use crate::{ConnectionId, ConnectionKey, Direction, EventError, Protection};

/// Staged keys a receiver accepts beside the one in use, at most.
pub const MAX_PENDING_KEYS: usize = 4;

/// Associated-data prefix of every event, so no other AEAD use of a key can be confused with it.
const EVENT_AAD_LABEL: &[u8] = b"teemesh-event-v1";

fn associated_data(header: &[u8], payload: Option<&[u8]>) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(EVENT_AAD_LABEL.len() + header.len() + payload.map_or(0, <[u8]>::len));
    aad.extend_from_slice(EVENT_AAD_LABEL);
    aad.extend_from_slice(header);
    if let Some(payload) = payload {
        aad.extend_from_slice(payload);
    }
    aad
}

/// The sending end of one direction of a connection.
pub struct EventSender {
    connection: ConnectionId,
    direction: Direction,
    protection: Protection,
    cipher: ChaCha20Poly1305,
    /// The next counter to use; `None` once the last one was used.
    next: Option<u64>,
    /// The next event tells the receiver that this sender resumed after a restart.
    announce_resume: bool,
}

impl EventSender {
    /// A sender that starts at counter 0 (a fresh key).
    pub fn new(
        key: &ConnectionKey,
        connection: ConnectionId,
        direction: Direction,
        protection: Protection,
    ) -> Self {
        Self {
            connection,
            direction,
            protection,
            cipher: key.direction_cipher(connection, direction, protection),
            next: Some(0),
            announce_resume: false,
        }
    }

    /// A sender that resumes, after a restart, at `next_counter`: a counter it had reserved
    /// before it last used any below it, so none is ever used twice. The first event it sends
    /// says so, and the receiver reports the skipped counters as a restart, not as loss.
    pub fn resume(
        key: &ConnectionKey,
        connection: ConnectionId,
        direction: Direction,
        protection: Protection,
        next_counter: u64,
    ) -> Self {
        Self {
            announce_resume: true,
            ..Self::continuing(key, connection, direction, protection, next_counter)
        }
    }

    /// What this direction's AEAD protects.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// A sender that continues a connection end moved from another instance of the same module
    /// (a migration): it starts at `next_counter`, the moved sender's next one, so the receiver
    /// sees one unbroken sequence.
    pub fn continuing(
        key: &ConnectionKey,
        connection: ConnectionId,
        direction: Direction,
        protection: Protection,
        next_counter: u64,
    ) -> Self {
        Self {
            next: Some(next_counter),
            ..Self::new(key, connection, direction, protection)
        }
    }

    /// The counter the next event will carry (`None` once exhausted). A node persists a mark
    /// above it before using it, so that a restart resumes past every counter it used.
    pub fn next_counter(&self) -> Option<u64> {
        self.next
    }

    /// Switches to `key` (the connection was re-keyed): later events are sealed under it, and
    /// their counters continue where the old key's stopped, so the receiver's order check holds
    /// across the change. A nonce never repeats under one key because each key is new.
    pub fn rekey(&mut self, key: &ConnectionKey) {
        self.cipher = key.direction_cipher(self.connection, self.direction, self.protection);
    }

    /// Seals `payload` as the next event of this direction.
    pub fn seal(&mut self, payload: &[u8]) -> Result<Vec<u8>, EventError> {
        if payload.len() > MAX_EVENT_LEN {
            return Err(EventError::TooLarge {
                len: payload.len(),
                max: MAX_EVENT_LEN,
            });
        }
        let counter = self.next.ok_or(EventError::CountersExhausted {
            connection: self.connection,
            direction: self.direction,
        })?;
        let header = EnvelopeHeader {
            connection: self.connection,
            direction: self.direction,
            protection: self.protection,
            counter,
            resumed: self.announce_resume,
        };
        let header_bytes = header.encode();
        let mut out = Vec::with_capacity(ENVELOPE_HEADER_LEN + payload.len() + TAG_LEN);
        out.extend_from_slice(&header_bytes);
        out.extend_from_slice(payload);
        let nonce = header.nonce();
        let tag = match self.protection {
            Protection::Encrypted => {
                let aad = associated_data(&header_bytes, None);
                self.cipher
                    .encrypt_in_place_detached(&nonce.into(), &aad, &mut out[ENVELOPE_HEADER_LEN..])
                    .map_err(|_| EventError::TooLarge {
                        len: payload.len(),
                        max: MAX_EVENT_LEN,
                    })?
            }
            Protection::Authenticated => {
                let aad = associated_data(&header_bytes, Some(payload));
                self.cipher
                    .encrypt_in_place_detached(&nonce.into(), &aad, &mut [])
                    .map_err(|_| EventError::TooLarge {
                        len: payload.len(),
                        max: MAX_EVENT_LEN,
                    })?
            }
        };
        out.extend_from_slice(&tag);
        self.next = counter.checked_add(1);
        self.announce_resume = false;
        Ok(out)
    }
}

impl fmt::Debug for EventSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSender")
            .field("connection", &self.connection)
            .field("direction", &self.direction)
            .field("protection", &self.protection)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// An event that authenticated and came in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The payload the sending module emitted.
    pub payload: Vec<u8>,
    /// Its counter.
    pub counter: u64,
    /// Counters between the previous delivered event and this one that never arrived: events
    /// dropped on the way, or (when [`Self::sender_resumed`]) counters a restarted sender
    /// skipped.
    pub missing: u64,
    /// The sender restarted just before this event.
    pub sender_resumed: bool,
}

/// Why an incoming event was not delivered. Nothing rejected ever reaches a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// The bytes are not an envelope.
    Malformed(String),
    /// The envelope names another connection or direction than this receiver's.
    Misrouted {
        /// What the envelope says.
        connection: ConnectionId,
        /// What the envelope says.
        direction: Direction,
    },
    /// The envelope claims another protection mode than the connection was set up with.
    ProtectionMismatch {
        /// What the envelope says.
        claimed: Protection,
        /// The connection's mode.
        expected: Protection,
    },
    /// The tag does not verify: the event was altered or not made with this connection's key.
    Forged {
        /// The counter the envelope claims.
        counter: u64,
    },
    /// An authentic event whose counter is not above the last delivered one: a replay, or an
    /// event overtaken by a later one.
    Replayed {
        /// Its counter.
        counter: u64,
        /// The lowest counter still acceptable.
        expected: u64,
    },
}

impl Rejection {
    /// A stable one-word name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Misrouted { .. } => "misrouted",
            Self::ProtectionMismatch { .. } => "protection_mismatch",
            Self::Forged { .. } => "forged",
            Self::Replayed { .. } => "replayed",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(reason) => write!(f, "malformed event: {reason}"),
            Self::Misrouted {
                connection,
                direction,
            } => write!(
                f,
                "event for connection {connection} ({direction}) arrived at another connection"
            ),
            Self::ProtectionMismatch { claimed, expected } => write!(
                f,
                "event claims {claimed} protection but the connection is {expected}"
            ),
            Self::Forged { counter } => write!(
                f,
                "forged or altered event (counter {counter}): its tag does not verify under the connection key"
            ),
            Self::Replayed { counter, expected } => write!(
                f,
                "replayed or reordered event: counter {counter}, but only counters from {expected} on are acceptable"
            ),
        }
    }
}

impl std::error::Error for Rejection {}

/// The receiving end of one direction of a connection.
pub struct EventReceiver {
    connection: ConnectionId,
    direction: Direction,
    protection: Protection,
    /// The keys accepted, oldest first: the one in use, then the ones staged by re-keys that no
    /// event has used yet. An event under a key retires every older one.
    keys: Vec<ChaCha20Poly1305>,
    /// The lowest acceptable counter; `None` once the last possible one was delivered.
    expected: Option<u64>,
}

impl EventReceiver {
    /// A receiver that expects counter 0 next (a fresh key).
    pub fn new(
        key: &ConnectionKey,
        connection: ConnectionId,
        direction: Direction,
        protection: Protection,
    ) -> Self {
        Self::resume(key, connection, direction, protection, 0)
    }

    /// A receiver that accepts counters from `expected` on: the persisted state of one that
    /// already delivered every counter below it.
    pub fn resume(
        key: &ConnectionKey,
        connection: ConnectionId,
        direction: Direction,
        protection: Protection,
        expected: u64,
    ) -> Self {
        Self {
            connection,
            direction,
            protection,
            keys: vec![key.direction_cipher(connection, direction, protection)],
            expected: Some(expected),
        }
    }

    /// Stages `key` for a re-key: events under it are accepted beside those under the keys
    /// already accepted (the sender's events sealed before it switched may still be on their
    /// way, and on a quiet connection the sender may still use an earlier staged key), with one
    /// counter order across all. The first authentic new event under a key retires every older
    /// one, so from then on their events are forged. At most [`MAX_PENDING_KEYS`] keys wait.
    pub fn stage_key(&mut self, key: &ConnectionKey) -> Result<(), EventError> {
        let pending = self.keys.len() - 1;
        if pending >= MAX_PENDING_KEYS {
            return Err(EventError::TooManyKeys {
                connection: self.connection,
                direction: self.direction,
                pending,
            });
        }
        self.keys
            .push(key.direction_cipher(self.connection, self.direction, self.protection));
        Ok(())
    }

    /// How many staged keys no event has used yet.
    pub fn pending_keys(&self) -> usize {
        self.keys.len() - 1
    }

    /// What this direction's AEAD protects.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// The lowest counter still acceptable (`None` after the last possible event).
    pub fn expected(&self) -> Option<u64> {
        self.expected
    }

    /// Checks `envelope` and, when it is authentic and new, returns its payload.
    pub fn open(&mut self, envelope: &[u8]) -> Result<Delivered, Rejection> {
        let parsed = Envelope::parse(envelope)?;
        let header = parsed.header;
        if header.connection != self.connection || header.direction != self.direction {
            return Err(Rejection::Misrouted {
                connection: header.connection,
                direction: header.direction,
            });
        }
        if header.protection != self.protection {
            return Err(Rejection::ProtectionMismatch {
                claimed: header.protection,
                expected: self.protection,
            });
        }
        // Authenticate before looking at the counter's meaning, so that a forged event is
        // reported as forged and a genuine old one as replayed.
        let nonce = header.nonce();
        let split = parsed.body.len() - TAG_LEN;
        let (data, tag) = parsed.body.split_at(split);
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Rejection::Forged {
            counter: header.counter,
        })?;
        let tag = Tag::from(tag);
        let aad = associated_data(
            parsed.header_bytes,
            (self.protection == Protection::Authenticated).then_some(data),
        );
        let open_with = |cipher: &ChaCha20Poly1305| {
            let mut payload = data.to_vec();
            let body: &mut [u8] = match self.protection {
                Protection::Encrypted => &mut payload,
                Protection::Authenticated => &mut [],
            };
            cipher
                .decrypt_in_place_detached(&nonce.into(), &aad, body, &tag)
                .ok()
                .map(|()| payload)
        };
        let Some((used, payload)) = self
            .keys
            .iter()
            .enumerate()
            .find_map(|(i, key)| open_with(key).map(|payload| (i, payload)))
        else {
            return Err(Rejection::Forged {
                counter: header.counter,
            });
        };
        let expected = match self.expected {
            Some(expected) if header.counter >= expected => expected,
            _ => {
                return Err(Rejection::Replayed {
                    counter: header.counter,
                    expected: self.expected.unwrap_or(u64::MAX),
                });
            }
        };
        self.expected = header.counter.checked_add(1);
        // The sender uses this key: every older one is retired.
        self.keys.drain(..used);
        Ok(Delivered {
            payload,
            counter: header.counter,
            missing: header.counter - expected,
            sender_resumed: header.resumed,
        })
    }
}

impl fmt::Debug for EventReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventReceiver")
            .field("connection", &self.connection)
            .field("direction", &self.direction)
            .field("protection", &self.protection)
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}
