//! The router: every subscription in a [`TopicTree`], ordinary ones per client and shared ones
//! per group, and the fan-out of a topic to the subscribers that get it (one member of each
//! share group, round robin).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Arc;

use crate::topic::TopicFilter;
use crate::{Error, SubscriptionId, SubscriptionOptions, TopicTree};

/// A client's options for one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SubscriberOptions {
    pub(crate) options: SubscriptionOptions,
    pub(crate) id: Option<SubscriptionId>,
}

#[derive(Debug, Default)]
struct ShareGroup {
    members: Vec<(Arc<str>, SubscriberOptions)>,
    /// The member the next message goes to. A `Cell` because fan-out walks the tree by shared
    /// reference; the router lives behind the broker's lock.
    next: Cell<usize>,
}

#[derive(Debug, Default)]
struct FilterSubscribers {
    clients: HashMap<Arc<str>, SubscriberOptions>,
    groups: HashMap<Box<str>, ShareGroup>,
}

impl FilterSubscribers {
    fn is_empty(&self) -> bool {
        self.clients.is_empty() && self.groups.is_empty()
    }
}

/// One subscriber to deliver a message to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) client: Arc<str>,
    pub(crate) options: SubscriberOptions,
    pub(crate) shared: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Router {
    tree: TopicTree<FilterSubscribers>,
}

impl Router {
    /// Adds or replaces `client`'s subscription to `filter` (as subscribed, `$share/…`
    /// included); true when it replaced one.
    pub(crate) fn subscribe(
        &mut self,
        client: &Arc<str>,
        filter: &str,
        options: SubscriberOptions,
    ) -> Result<bool, Error> {
        let parsed = TopicFilter::parse(filter)?;
        let entry = self
            .tree
            .get_or_insert_with(parsed.filter, FilterSubscribers::default)?;
        Ok(match parsed.share_group {
            None => entry.clients.insert(client.clone(), options).is_some(),
            Some(group) => {
                let group = entry.groups.entry(group.into()).or_default();
                match group.members.iter_mut().find(|(c, _)| c == client) {
                    Some(member) => {
                        member.1 = options;
                        true
                    }
                    None => {
                        group.members.push((client.clone(), options));
                        false
                    }
                }
            }
        })
    }

    /// Removes `client`'s subscription to `filter`; true when there was one.
    pub(crate) fn unsubscribe(&mut self, client: &str, filter: &str) -> bool {
        let Ok(parsed) = TopicFilter::parse(filter) else {
            return false;
        };
        let Some(entry) = self.tree.get_mut(parsed.filter) else {
            return false;
        };
        let removed = match parsed.share_group {
            None => entry.clients.remove(client).is_some(),
            Some(group_name) => match entry.groups.get_mut(group_name) {
                Some(group) => {
                    let before = group.members.len();
                    group.members.retain(|(c, _)| &**c != client);
                    let removed = group.members.len() != before;
                    if group.members.is_empty() {
                        entry.groups.remove(group_name);
                    }
                    removed
                }
                None => false,
            },
        };
        if entry.is_empty() {
            self.tree.remove(parsed.filter);
        }
        removed
    }

    /// The subscribers of `topic`: every ordinary subscription (minus the publisher's own
    /// no-local ones) and one member per share group, preferring members `is_online` says are
    /// connected.
    pub(crate) fn targets(
        &self,
        topic: &str,
        publisher: Option<&str>,
        is_online: impl Fn(&str) -> bool,
    ) -> Vec<Target> {
        let mut targets = Vec::new();
        self.tree.for_each_match(topic, |subscribers| {
            for (client, options) in &subscribers.clients {
                if options.options.no_local && publisher == Some(&**client) {
                    continue;
                }
                targets.push(Target {
                    client: client.clone(),
                    options: *options,
                    shared: false,
                });
            }
            for group in subscribers.groups.values() {
                if let Some((client, options)) = pick_member(group, &is_online) {
                    targets.push(Target {
                        client: client.clone(),
                        options: *options,
                        shared: true,
                    });
                }
            }
        });
        targets
    }

    /// The number of distinct filters with subscribers.
    pub(crate) fn filter_count(&self) -> usize {
        self.tree.len()
    }
}

/// The next member of a share group in round-robin order, skipping offline members unless all
/// are offline.
fn pick_member<'a>(
    group: &'a ShareGroup,
    is_online: &impl Fn(&str) -> bool,
) -> Option<&'a (Arc<str>, SubscriberOptions)> {
    let count = group.members.len();
    if count == 0 {
        return None;
    }
    let start = group.next.get() % count;
    let chosen = (0..count)
        .map(|offset| (start + offset) % count)
        .find(|&index| is_online(&group.members[index].0))
        .unwrap_or(start);
    group.next.set((chosen + 1) % count);
    group.members.get(chosen)
}
