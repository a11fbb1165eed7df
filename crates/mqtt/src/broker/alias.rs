//! Topic aliases the broker sends to one MQTT 5 connection (§3.3.2.3.4): a topic's first
//! PUBLISH carries the topic and a new alias, later ones the alias and an empty topic. At most
//! the client's Topic Alias Maximum; when all are taken, one not used lately is given anew.

use std::collections::HashMap;
use std::num::NonZeroU16;

/// The most aliases used on one connection, whatever the client allows: the table is memory
/// held per connection.
const MOST_ALIASES: u16 = 256;

/// How a PUBLISH names its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AliasUse {
    /// No alias: the topic in full.
    None,
    /// The topic in full and the alias it gets from now on.
    Assign(NonZeroU16),
    /// The alias alone (the client has it mapped to the topic).
    Reuse(NonZeroU16),
}

/// One connection's aliases, broker to client. They die with the connection: a new one
/// (a resumed session included) starts without any.
#[derive(Debug, Default)]
pub(crate) struct TopicAliases {
    max: u16,
    by_topic: HashMap<String, NonZeroU16>,
    /// Per alias (alias 1 at index 0): its topic, and whether it was used since the clock
    /// hand last passed it (second-chance replacement: a victim is found in amortised O(1)).
    slots: Vec<(String, bool)>,
    hand: usize,
}

impl TopicAliases {
    /// Aliases up to the client's `maximum` (0: none).
    pub(crate) fn new(maximum: u16) -> Self {
        Self {
            max: maximum.min(MOST_ALIASES),
            ..Self::default()
        }
    }

    /// The alias to use for `topic`, not recorded until [`Self::confirm`] says the PUBLISH
    /// went out (one that is dropped must not leave the client without the mapping).
    pub(crate) fn choose(&mut self, topic: &str) -> AliasUse {
        if self.max == 0 {
            return AliasUse::None;
        }
        if let Some(&alias) = self.by_topic.get(topic) {
            return AliasUse::Reuse(alias);
        }
        if self.slots.len() < usize::from(self.max) {
            return alias_at(self.slots.len()).map_or(AliasUse::None, AliasUse::Assign);
        }
        // Second chance: skip (and clear) slots used since the hand last passed.
        loop {
            let index = self.hand;
            let used = &mut self.slots[index].1;
            if *used {
                *used = false;
                self.hand = (index + 1) % self.slots.len();
            } else {
                return alias_at(index).map_or(AliasUse::None, AliasUse::Assign);
            }
        }
    }

    /// Records that a PUBLISH naming `topic` as `choice` says went out.
    pub(crate) fn confirm(&mut self, topic: &str, choice: AliasUse) {
        match choice {
            AliasUse::None => {}
            AliasUse::Reuse(alias) => {
                if let Some(slot) = self.slots.get_mut(usize::from(alias.get() - 1)) {
                    slot.1 = true;
                }
            }
            AliasUse::Assign(alias) => {
                let index = usize::from(alias.get() - 1);
                if index == self.slots.len() {
                    self.slots.push((topic.to_owned(), true));
                } else if let Some(slot) = self.slots.get_mut(index) {
                    let old = std::mem::replace(slot, (topic.to_owned(), true));
                    self.by_topic.remove(&old.0);
                    self.hand = (index + 1) % self.slots.len();
                } else {
                    return;
                }
                self.by_topic.insert(topic.to_owned(), alias);
            }
        }
    }
}

fn alias_at(index: usize) -> Option<NonZeroU16> {
    u16::try_from(index + 1).ok().and_then(NonZeroU16::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(n: u16) -> NonZeroU16 {
        NonZeroU16::new(n).expect("non-zero")
    }

    fn send(aliases: &mut TopicAliases, topic: &str) -> AliasUse {
        let choice = aliases.choose(topic);
        aliases.confirm(topic, choice);
        choice
    }

    #[test]
    fn assigns_then_reuses_within_the_maximum() {
        let mut aliases = TopicAliases::new(2);
        assert_eq!(send(&mut aliases, "a"), AliasUse::Assign(alias(1)));
        assert_eq!(send(&mut aliases, "a"), AliasUse::Reuse(alias(1)));
        assert_eq!(send(&mut aliases, "b"), AliasUse::Assign(alias(2)));
        assert_eq!(send(&mut aliases, "b"), AliasUse::Reuse(alias(2)));
        // Full: "c" takes the alias not used since the hand passed, "a" keeps its alias
        // only if used again before the hand comes back.
        let c = send(&mut aliases, "c");
        assert!(matches!(c, AliasUse::Assign(_)), "{c:?}");
        let AliasUse::Assign(given) = c else { return };
        assert_eq!(send(&mut aliases, "c"), AliasUse::Reuse(given));
        let other = if given == alias(1) { "b" } else { "a" };
        assert!(matches!(send(&mut aliases, other), AliasUse::Reuse(_)));
        assert_eq!(aliases.by_topic.len(), 2);
    }

    #[test]
    fn a_choice_not_confirmed_leaves_no_mapping() {
        let mut aliases = TopicAliases::new(1);
        assert_eq!(aliases.choose("a"), AliasUse::Assign(alias(1)));
        assert_eq!(aliases.choose("a"), AliasUse::Assign(alias(1)));
        assert_eq!(send(&mut aliases, "b"), AliasUse::Assign(alias(1)));
        assert_eq!(send(&mut aliases, "a"), AliasUse::Assign(alias(1)));
        assert_eq!(send(&mut aliases, "b"), AliasUse::Assign(alias(1)));
    }

    #[test]
    fn none_without_a_maximum() {
        let mut aliases = TopicAliases::new(0);
        assert_eq!(send(&mut aliases, "a"), AliasUse::None);
        assert_eq!(send(&mut aliases, "a"), AliasUse::None);
    }
}
