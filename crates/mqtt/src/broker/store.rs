//! Where the broker keeps what outlives a connection: retained messages now, persistent
//! sessions later. In memory today; a persistent store (redb) implements the same traits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use super::message::Message;
use crate::topic;

/// The retained messages, one per topic.
pub trait RetainedStore: Send {
    /// Sets (`Some`) or deletes (`None`) the retained message of `topic`.
    fn set(&mut self, topic: &str, message: Option<Arc<Message>>);
    /// The unexpired retained messages whose topic `filter` matches.
    fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>>;
    /// How many retained messages are stored.
    fn len(&self) -> usize;
    /// Whether none is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Retained messages in a hash map; a subscription scans them (subscribing is rare next to
/// publishing, and the scan is a string match per message).
#[derive(Debug, Default)]
pub struct MemoryRetained {
    messages: HashMap<String, Arc<Message>>,
}

impl RetainedStore for MemoryRetained {
    fn set(&mut self, topic: &str, message: Option<Arc<Message>>) {
        match message {
            Some(message) => {
                self.messages.insert(topic.to_owned(), message);
            }
            None => {
                self.messages.remove(topic);
            }
        }
    }

    fn matching(&self, filter: &str, now: Instant) -> Vec<Arc<Message>> {
        self.messages
            .iter()
            .filter(|(name, message)| topic::matches(filter, name) && !message.is_expired(now))
            .map(|(_, message)| message.clone())
            .collect()
    }

    fn len(&self) -> usize {
        self.messages.len()
    }
}
