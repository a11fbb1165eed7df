//! The byte layout of stored records. A message is its MQTT 5 PUBLISH (the codec already
//! round-trips every forwarded property) behind a small header; times are wall-clock
//! milliseconds since the Unix epoch, since instants mean nothing after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::{MessageState, SessionRecord, StoreError};
use crate::broker::message::Message;
use crate::broker::router::SubscriberOptions;
use crate::broker::session::Delivery;
use crate::{
    MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion, Publish, PublishQos, QoS, SubscriptionId,
    SubscriptionOptions,
};

const FORMAT: u8 = 1;
/// "No time": no expiry, or still connected.
const NEVER: u64 = u64::MAX;

/// Converts between the core's instants and stored wall-clock times, anchored at one moment
/// known on both clocks.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WallClock {
    instant: Instant,
    unix_ms: u64,
}

impl WallClock {
    pub(crate) fn new(instant: Instant, wall: SystemTime) -> Self {
        let unix_ms = wall
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(NEVER - 1));
        Self { instant, unix_ms }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.unix_ms
    }

    pub(crate) fn to_unix_ms(self, at: Instant) -> u64 {
        if at >= self.instant {
            let ahead = u64::try_from((at - self.instant).as_millis()).unwrap_or(NEVER - 1);
            self.unix_ms.saturating_add(ahead).min(NEVER - 1)
        } else {
            let behind = u64::try_from((self.instant - at).as_millis()).unwrap_or(NEVER - 1);
            self.unix_ms.saturating_sub(behind)
        }
    }

    /// The instant of a stored time (times before what the monotonic clock can express become
    /// its anchor; callers have already judged expiry on the wall clock).
    pub(crate) fn to_instant(self, unix_ms: u64) -> Instant {
        if unix_ms >= self.unix_ms {
            self.instant + Duration::from_millis(unix_ms - self.unix_ms)
        } else {
            self.instant
                .checked_sub(Duration::from_millis(self.unix_ms - unix_ms))
                .unwrap_or(self.instant)
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(StoreError::Corrupt { what: self.what });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, StoreError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let len = usize::from(self.u16()?);
        let what = self.what;
        String::from_utf8(self.take(len)?.to_vec()).map_err(|_| StoreError::Corrupt { what })
    }

    fn corrupt(&self) -> StoreError {
        StoreError::Corrupt { what: self.what }
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Topic names, filters and client identifiers are MQTT strings: at most 65,535 bytes.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn put_message(out: &mut Vec<u8>, message: &Message, clock: WallClock) {
    let expires = message.expires_at.map_or(NEVER, |at| clock.to_unix_ms(at));
    out.extend_from_slice(&expires.to_be_bytes());
    match &message.publisher {
        Some(publisher) => {
            out.push(1);
            put_string(out, publisher);
        }
        None => out.push(0),
    }
    let qos = match message.qos {
        QoS::AtMostOnce => PublishQos::AtMostOnce,
        // The identifier is not the message's: each delivery has its own.
        qos => PublishQos::new(qos, PacketId::new(1).unwrap_or_else(|| unreachable!())),
    };
    let publish = Publish {
        dup: false,
        qos,
        retain: message.retain,
        topic: message.topic.clone(),
        payload: message.payload.clone(),
        properties: message.properties.clone(),
    };
    // Every message the broker holds came from a PUBLISH (or a will) it decoded, so it encodes.
    if let Err(e) = Packet::Publish(publish).encode(ProtocolVersion::V5, out) {
        tracing::error!(topic = %message.topic, "cannot encode a message to store: {e}");
    }
}

/// `None`: the message expired (at the clock's anchor).
fn read_message(r: &mut Reader<'_>, clock: WallClock) -> Result<Option<Message>, StoreError> {
    let expires = r.u64()?;
    let publisher = match r.u8()? {
        0 => None,
        _ => Some(Arc::<str>::from(r.string()?)),
    };
    let (packet, len) = crate::decode(r.bytes, ProtocolVersion::V5, MAX_PACKET_SIZE)
        .ok()
        .flatten()
        .ok_or_else(|| r.corrupt())?;
    r.take(len)?;
    let Packet::Publish(publish) = packet else {
        return Err(r.corrupt());
    };
    if expires != NEVER && expires <= clock.now_ms() {
        return Ok(None);
    }
    Ok(Some(Message {
        topic: publish.topic,
        payload: publish.payload,
        qos: publish.qos.qos(),
        retain: publish.retain,
        properties: publish.properties,
        expires_at: (expires != NEVER).then(|| clock.to_instant(expires)),
        publisher,
    }))
}

pub(crate) fn encode_retained(message: &Message, clock: WallClock) -> Vec<u8> {
    let mut out = vec![FORMAT];
    put_message(&mut out, message, clock);
    out
}

pub(crate) fn decode_retained(
    bytes: &[u8],
    clock: WallClock,
) -> Result<Option<Message>, StoreError> {
    let mut r = Reader {
        bytes,
        what: "retained message",
    };
    if r.u8()? != FORMAT {
        return Err(r.corrupt());
    }
    read_message(&mut r, clock)
}

pub(crate) fn encode_outbound(
    state: MessageState,
    delivery: Option<&Delivery>,
    clock: WallClock,
) -> Vec<u8> {
    let mut out = vec![FORMAT];
    let (tag, id) = match state {
        MessageState::Queued => (0, 0),
        MessageState::Published(id) => (1, id.get()),
        MessageState::Released(id) => (2, id.get()),
    };
    out.push(tag);
    out.extend_from_slice(&id.to_be_bytes());
    if let (Some(delivery), false) = (delivery, matches!(state, MessageState::Released(_))) {
        out.push(delivery.qos as u8);
        out.push(u8::from(delivery.retain));
        let count = u16::try_from(delivery.subscription_ids.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for id in delivery.subscription_ids.iter().take(usize::from(count)) {
            out.extend_from_slice(&id.get().to_be_bytes());
        }
        put_message(&mut out, &delivery.message, clock);
    }
    out
}

/// An outbound message's state and delivery (`None` once released, or when it expired: the
/// caller drops expired ones that are not released).
pub(crate) fn decode_outbound(
    bytes: &[u8],
    clock: WallClock,
) -> Result<(MessageState, Option<Delivery>), StoreError> {
    let mut r = Reader {
        bytes,
        what: "session message",
    };
    if r.u8()? != FORMAT {
        return Err(r.corrupt());
    }
    let tag = r.u8()?;
    let id = PacketId::new(r.u16()?);
    let state = match (tag, id) {
        (0, _) => MessageState::Queued,
        (1, Some(id)) => MessageState::Published(id),
        (2, Some(id)) => return Ok((MessageState::Released(id), None)),
        _ => return Err(r.corrupt()),
    };
    let qos = QoS::from_bits(r.u8()?).map_err(|_| r.corrupt())?;
    let retain = r.u8()? != 0;
    let count = r.u16()?;
    let mut subscription_ids = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        subscription_ids.push(SubscriptionId::new(r.u32()?).ok_or_else(|| r.corrupt())?);
    }
    let delivery = read_message(&mut r, clock)?.map(|message| Delivery {
        message: Arc::new(message),
        qos,
        retain,
        subscription_ids,
    });
    Ok((state, delivery))
}

pub(crate) fn encode_session(record: &SessionRecord, clock: WallClock) -> Vec<u8> {
    let mut out = vec![FORMAT];
    out.extend_from_slice(&record.expiry_interval.to_be_bytes());
    let disconnected = record
        .disconnected_at
        .map_or(NEVER, |at| clock.to_unix_ms(at));
    out.extend_from_slice(&disconnected.to_be_bytes());
    let count = u32::try_from(record.subscriptions.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    for (filter, options) in &record.subscriptions {
        put_string(&mut out, filter);
        out.push(options.options.to_v5_byte());
        out.extend_from_slice(&options.id.map_or(0, SubscriptionId::get).to_be_bytes());
    }
    // The owner: the user name, certificate key hash, app and module it proved (each a
    // presence byte, then the value).
    let owner = &record.owner;
    for text in [&owner.username, &owner.app, &owner.module] {
        match text {
            Some(text) => {
                out.push(1);
                put_string(&mut out, text);
            }
            None => out.push(0),
        }
    }
    match owner.certificate_key_sha256 {
        Some(hash) => {
            out.push(1);
            out.extend_from_slice(&hash);
        }
        None => out.push(0),
    }
    out
}

/// A stored session record: wall-clock times, before the store judges its expiry.
pub(crate) struct StoredRecord {
    pub(crate) expiry_interval: u32,
    /// Unix milliseconds; `None`: it was connected when the broker stopped.
    pub(crate) disconnected_ms: Option<u64>,
    pub(crate) subscriptions: Vec<(String, SubscriberOptions)>,
    pub(crate) owner: crate::broker::identity::Principal,
}

pub(crate) fn decode_session(bytes: &[u8]) -> Result<StoredRecord, StoreError> {
    let mut r = Reader {
        bytes,
        what: "session",
    };
    if r.u8()? != FORMAT {
        return Err(r.corrupt());
    }
    let expiry = r.u32()?;
    let disconnected = r.u64()?;
    let count = r.u32()?;
    let mut subscriptions = Vec::new();
    for _ in 0..count {
        let filter = r.string()?;
        let options = SubscriptionOptions::from_v5_byte(r.u8()?).map_err(|_| r.corrupt())?;
        let id = SubscriptionId::new(r.u32()?);
        subscriptions.push((filter, SubscriberOptions { options, id }));
    }
    let mut text = || -> Result<Option<String>, StoreError> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(r.string()?)),
            _ => Err(r.corrupt()),
        }
    };
    let (username, app, module) = (text()?, text()?, text()?);
    let certificate_key_sha256 = match r.u8()? {
        0 => None,
        1 => {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(r.take(32)?);
            Some(hash)
        }
        _ => return Err(r.corrupt()),
    };
    Ok(StoredRecord {
        expiry_interval: expiry,
        disconnected_ms: (disconnected != NEVER).then_some(disconnected),
        subscriptions,
        owner: crate::broker::identity::Principal {
            username,
            certificate_key_sha256,
            app,
            module,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Properties;
    use bytes::Bytes;

    fn clock() -> WallClock {
        WallClock::new(Instant::now(), SystemTime::now())
    }

    fn message(expiry: Option<u32>) -> Message {
        let properties = Properties {
            message_expiry_interval: expiry,
            content_type: Some("text/plain".into()),
            user_properties: vec![("k".into(), "v".into())],
            ..Properties::default()
        };
        Message::new(
            "a/b".into(),
            Bytes::from_static(b"hello"),
            QoS::ExactlyOnce,
            true,
            properties,
            Some("pub".into()),
            Instant::now(),
        )
    }

    #[test]
    fn outbound_round_trips() {
        let clock = clock();
        let delivery = Delivery {
            message: Arc::new(message(Some(60))),
            qos: QoS::AtLeastOnce,
            retain: false,
            subscription_ids: vec![SubscriptionId::new(7).unwrap()],
        };
        let id = PacketId::new(9).unwrap();
        let bytes = encode_outbound(MessageState::Published(id), Some(&delivery), clock);
        let (state, back) = decode_outbound(&bytes, clock).unwrap();
        assert_eq!(state, MessageState::Published(id));
        let back = back.unwrap();
        assert_eq!(back.qos, QoS::AtLeastOnce);
        assert_eq!(back.subscription_ids, delivery.subscription_ids);
        assert_eq!(back.message.topic, "a/b");
        assert_eq!(back.message.payload, Bytes::from_static(b"hello"));
        assert_eq!(back.message.properties, delivery.message.properties);
        assert_eq!(back.message.publisher.as_deref(), Some("pub"));
        assert!(back.message.expires_at.is_some());
    }

    #[test]
    fn an_expired_message_is_not_loaded() {
        let stored_at = clock();
        let bytes = encode_retained(&message(Some(1)), stored_at);
        let later = WallClock::new(Instant::now(), SystemTime::now() + Duration::from_secs(5));
        assert!(decode_retained(&bytes, later).unwrap().is_none());
        assert!(decode_retained(&bytes, stored_at).unwrap().is_some());
    }

    #[test]
    fn a_truncated_record_is_corrupt() {
        let clock = clock();
        let bytes = encode_retained(&message(None), clock);
        assert!(matches!(
            decode_retained(&bytes[..bytes.len() - 1], clock),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn a_session_keeps_its_owner_and_a_truncated_owner_is_corrupt() {
        for owner in [
            crate::broker::identity::Principal::default(),
            crate::broker::identity::Principal {
                username: Some("alice".into()),
                certificate_key_sha256: Some([7; 32]),
                app: Some("plant".into()),
                module: Some("filter".into()),
            },
        ] {
            let record = SessionRecord {
                owner: owner.clone(),
                expiry_interval: 60,
                disconnected_at: None,
                subscriptions: Vec::new(),
            };
            let bytes = encode_session(&record, clock());
            let decoded = decode_session(&bytes).expect("decodes");
            assert_eq!(decoded.owner, owner);
            assert!(decode_session(&bytes[..bytes.len() - 1]).is_err());
        }
    }
}
