//! Topic names and topic filters (§4.7): validation, matching a filter against a topic name, and
//! shared subscriptions (`$share/{group}/{filter}`, §4.8.2).

use crate::Error;
use crate::error::excerpt;

/// The prefix of a shared subscription's topic filter.
pub const SHARE_PREFIX: &str = "$share/";

/// Checks a topic name as PUBLISH (or a will, or a Response Topic) carries it: at least one
/// character, no wildcard (`+`, `#`), no U+0000, at most 65,535 bytes.
///
/// An MQTT 5 PUBLISH may carry an empty topic name together with a topic alias; the decoder
/// accepts that case itself, this function does not.
pub fn validate_topic_name(topic: &str) -> Result<(), Error> {
    let invalid = |reason| Error::TopicNameInvalid {
        topic: excerpt(topic),
        reason,
    };
    check_length_and_null(topic).map_err(invalid)?;
    if topic.is_empty() {
        return Err(invalid("it is empty"));
    }
    if topic.contains(['+', '#']) {
        return Err(invalid("a topic name cannot contain the wildcards + or #"));
    }
    Ok(())
}

/// Checks a topic filter as SUBSCRIBE or UNSUBSCRIBE carries it, shared subscriptions included;
/// see [`TopicFilter::parse`].
pub fn validate_topic_filter(filter: &str) -> Result<(), Error> {
    TopicFilter::parse(filter).map(|_| ())
}

/// A parsed topic filter: the filter to match topics with and, for a shared subscription, the
/// share group that its messages are distributed among.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TopicFilter<'a> {
    /// The share group of `$share/{group}/{filter}`, `None` for an ordinary subscription.
    pub share_group: Option<&'a str>,
    /// The filter matched against topic names (for a shared subscription, the part after the
    /// group).
    pub filter: &'a str,
}

impl<'a> TopicFilter<'a> {
    /// Parses and checks a subscription's topic filter: at least one character, no U+0000, at
    /// most 65,535 bytes; `#` only as the whole last level; `+` only as a whole level. A filter
    /// starting with `$share/` is a shared subscription: a non-empty group without `+` or `#`,
    /// then `/`, then a valid filter.
    pub fn parse(text: &'a str) -> Result<Self, Error> {
        let invalid = |reason| Error::TopicFilterInvalid {
            filter: excerpt(text),
            reason,
        };
        check_length_and_null(text).map_err(invalid)?;
        let Some(shared) = text.strip_prefix(SHARE_PREFIX) else {
            check_wildcards(text).map_err(invalid)?;
            return Ok(Self {
                share_group: None,
                filter: text,
            });
        };
        let Some((group, filter)) = shared.split_once('/') else {
            return Err(invalid(
                "a shared subscription needs $share/{group}/{filter}",
            ));
        };
        if group.is_empty() {
            return Err(invalid("the share group is empty"));
        }
        if group.contains(['+', '#']) {
            return Err(invalid("the share group cannot contain + or #"));
        }
        check_wildcards(filter).map_err(invalid)?;
        Ok(Self {
            share_group: Some(group),
            filter,
        })
    }

    /// Whether this is a shared subscription.
    pub fn is_shared(&self) -> bool {
        self.share_group.is_some()
    }
}

fn check_length_and_null(text: &str) -> Result<(), &'static str> {
    if text.len() > usize::from(u16::MAX) {
        return Err("it is longer than 65535 bytes");
    }
    if text.contains('\0') {
        return Err("it contains the null character U+0000");
    }
    Ok(())
}

fn check_wildcards(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("it is empty");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "#" if levels.peek().is_some() => return Err("# must be the last level"),
            "#" | "+" => {}
            _ if level.contains('#') => return Err("# must be a whole level"),
            _ if level.contains('+') => return Err("+ must be a whole level"),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `filter` matches `topic` (§4.7): `+` matches exactly one level, `#` the rest of the
/// topic including its parent (`sport/#` matches `sport`), and a topic starting with `$` is not
/// matched by a filter whose first level is a wildcard.
///
/// Both arguments are assumed valid ([`validate_topic_filter`], [`validate_topic_name`]); for a
/// shared subscription pass [`TopicFilter::filter`], not the `$share/…` text.
pub fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && filter.starts_with(['+', '#']) {
        return false;
    }
    let mut filter_levels = filter.split('/');
    let mut topic_levels = topic.split('/');
    loop {
        match (filter_levels.next(), topic_levels.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(expected), Some(level)) if expected == level => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}
