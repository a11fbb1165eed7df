//! An application message as the broker holds it between a PUBLISH in and the PUBLISHes out:
//! shared by every subscriber (`Arc`), with its expiry as an instant.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::{Properties, Publish, PublishQos, QoS, SubscriptionId};

/// One application message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// The QoS it was published with.
    pub qos: QoS,
    /// Its retain flag as published.
    pub retain: bool,
    /// The properties forwarded to subscribers (payload format, content type, response topic,
    /// correlation data, user properties); never a topic alias, subscription identifier or
    /// expiry interval, which are per delivery.
    pub properties: Properties,
    /// When it expires (MQTT 5 message expiry interval).
    pub expires_at: Option<Instant>,
    /// The publishing client's identifier (for no-local); `None` for broker-made messages.
    pub publisher: Option<Arc<str>>,
}

impl Message {
    /// The message a client's PUBLISH carries (topic alias already resolved into `topic`).
    pub fn from_publish(
        publish: Publish,
        topic: String,
        publisher: Option<Arc<str>>,
        now: Instant,
    ) -> Self {
        let Publish {
            qos,
            retain,
            payload,
            properties,
            ..
        } = publish;
        Self::new(
            topic,
            payload,
            qos.qos(),
            retain,
            properties,
            publisher,
            now,
        )
    }

    /// A message with `properties` reduced to what is forwarded.
    pub fn new(
        topic: String,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Properties,
        publisher: Option<Arc<str>>,
        now: Instant,
    ) -> Self {
        let expires_at = properties
            .message_expiry_interval
            .map(|secs| now + std::time::Duration::from_secs(u64::from(secs)));
        let forwarded = Properties {
            payload_format_indicator: properties.payload_format_indicator,
            content_type: properties.content_type,
            response_topic: properties.response_topic,
            correlation_data: properties.correlation_data,
            user_properties: properties.user_properties,
            ..Properties::default()
        };
        Self {
            topic,
            payload,
            qos,
            retain,
            properties: forwarded,
            expires_at,
            publisher,
        }
    }

    /// Whether the message has expired at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The PUBLISH delivering this message to one subscriber.
    pub(crate) fn to_publish(
        &self,
        qos: PublishQos,
        retain: bool,
        dup: bool,
        subscription_ids: &[SubscriptionId],
        now: Instant,
    ) -> Publish {
        let mut properties = self.properties.clone();
        properties.message_expiry_interval = self.expires_at.map(|at| {
            let left = at.saturating_duration_since(now).as_secs();
            u32::try_from(left).unwrap_or(u32::MAX).max(1)
        });
        properties.subscription_identifiers = subscription_ids.to_vec();
        Publish {
            dup,
            qos,
            retain,
            topic: self.topic.clone(),
            payload: self.payload.clone(),
            properties,
        }
    }
}
