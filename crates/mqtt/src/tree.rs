//! The subscription tree: topic filters mapped to values in a trie of levels, so finding every
//! filter that matches a published topic costs a walk of the topic's levels, not a scan of all
//! subscriptions.

use std::collections::HashMap;

use crate::Error;
use crate::topic::TopicFilter;

/// A map from topic filters to values, queried by topic name.
///
/// The broker keeps, per filter, what it needs to fan out (the subscribers and their options)
/// and asks [`TopicTree::for_each_match`] for every value whose filter matches a topic. Each
/// matching filter is visited exactly once, with the matching rules of [`crate::topic::matches`].
/// Shared subscriptions are inserted under their [`TopicFilter::filter`]; the group is the
/// broker's business, so `$share/…` text is refused here.
///
/// Filters deeper than [`TopicTree::MAX_LEVELS`] are refused: matching and dropping walk the
/// tree recursively, and a client must not be able to make that recursion as deep as a
/// 65,535-byte filter of slashes would (a broker answers such a subscription with
/// [`crate::ReasonCode::TopicFilterInvalid`]). Topics of any depth can be matched.
#[derive(Debug, Clone)]
pub struct TopicTree<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<T> {
    /// The value of the filter that ends at this node.
    value: Option<T>,
    /// The value of the filter that ends with `#` below this node.
    multi_level: Option<T>,
    single_level: Option<Box<Node<T>>>,
    children: HashMap<Box<str>, Node<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Self {
            value: None,
            multi_level: None,
            single_level: None,
            children: HashMap::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.multi_level.is_none()
            && self.single_level.is_none()
            && self.children.is_empty()
    }
}

impl<T> Default for TopicTree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TopicTree<T> {
    /// The most levels a filter in the tree may have.
    pub const MAX_LEVELS: usize = 1024;

    /// An empty tree.
    pub fn new() -> Self {
        Self {
            root: Node::default(),
            len: 0,
        }
    }

    /// The number of filters with a value.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no filter has a value.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the value of `filter`, returning the value it replaces.
    pub fn insert(&mut self, filter: &str, value: T) -> Result<Option<T>, Error> {
        let previous = slot(&mut self.root, filter)?.replace(value);
        if previous.is_none() {
            self.len += 1;
        }
        Ok(previous)
    }

    /// The value of `filter`, inserting `make()` first if it has none.
    pub fn get_or_insert_with(
        &mut self,
        filter: &str,
        make: impl FnOnce() -> T,
    ) -> Result<&mut T, Error> {
        let slot = slot(&mut self.root, filter)?;
        if slot.is_none() {
            self.len += 1;
        }
        Ok(slot.get_or_insert_with(make))
    }

    /// The value of exactly `filter` (no wildcard matching).
    pub fn get(&self, filter: &str) -> Option<&T> {
        let mut node = &self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            match level {
                "#" if levels.peek().is_none() => return node.multi_level.as_ref(),
                "+" => node = node.single_level.as_deref()?,
                _ => node = node.children.get(level)?,
            }
        }
        node.value.as_ref()
    }

    /// The value of exactly `filter`, mutably.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut T> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            match level {
                "#" if levels.peek().is_none() => return node.multi_level.as_mut(),
                "+" => node = node.single_level.as_deref_mut()?,
                _ => node = node.children.get_mut(level)?,
            }
        }
        node.value.as_mut()
    }

    /// Removes the value of `filter` and returns it; branches left empty are freed.
    pub fn remove(&mut self, filter: &str) -> Option<T> {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `visit` with the value of every filter that matches `topic`, each once.
    pub fn for_each_match<'a>(&'a self, topic: &str, mut visit: impl FnMut(&'a T)) {
        walk(&self.root, Some(topic), topic.starts_with('$'), &mut visit);
    }

    /// The values of every filter that matches `topic`.
    pub fn matching(&self, topic: &str) -> Vec<&T> {
        let mut found = Vec::new();
        self.for_each_match(topic, |value| found.push(value));
        found
    }
}

/// The slot of `filter`'s value below `root`, creating the path to it.
fn slot<'n, T>(root: &'n mut Node<T>, filter: &str) -> Result<&'n mut Option<T>, Error> {
    let parsed = TopicFilter::parse(filter)?;
    if parsed.is_shared() {
        return Err(Error::TopicFilterInvalid {
            filter: crate::error::excerpt(filter),
            reason: "insert a shared subscription under its filter, not its $share/ text",
        });
    }
    if filter.split('/').count() > TopicTree::<T>::MAX_LEVELS {
        return Err(Error::TopicFilterInvalid {
            filter: crate::error::excerpt(filter),
            reason: "it has more levels than a subscription may have (1024)",
        });
    }
    let mut node = root;
    for level in filter.split('/') {
        match level {
            // `parse` checked that `#` is the last level.
            "#" => return Ok(&mut node.multi_level),
            "+" => node = node.single_level.get_or_insert_with(Box::default),
            _ => node = node.children.entry(level.into()).or_default(),
        }
    }
    Ok(&mut node.value)
}

/// Visits the values at `node` matching the topic levels in `rest` (`None`: the topic ended at
/// this node). `dollar` is set at the root for `$` topics, which wildcards do not match there.
fn walk<'a, T>(node: &'a Node<T>, rest: Option<&str>, dollar: bool, visit: &mut impl FnMut(&'a T)) {
    let Some(rest) = rest else {
        if let Some(value) = &node.value {
            visit(value);
        }
        // `a/#` also matches `a`.
        if let Some(value) = &node.multi_level {
            visit(value);
        }
        return;
    };
    let (level, next) = match rest.split_once('/') {
        Some((level, next)) => (level, Some(next)),
        None => (rest, None),
    };
    if !dollar {
        if let Some(value) = &node.multi_level {
            visit(value);
        }
        if let Some(single) = &node.single_level {
            walk(single, next, false, visit);
        }
    }
    if let Some(child) = node.children.get(level) {
        walk(child, next, false, visit);
    }
}

fn remove_at<T>(node: &mut Node<T>, levels: &[&str]) -> Option<T> {
    let Some((&level, rest)) = levels.split_first() else {
        return node.value.take();
    };
    match level {
        "#" if rest.is_empty() => node.multi_level.take(),
        "+" => {
            let child = node.single_level.as_deref_mut()?;
            let removed = remove_at(child, rest);
            if child.is_empty() {
                node.single_level = None;
            }
            removed
        }
        _ => {
            let child = node.children.get_mut(level)?;
            let removed = remove_at(child, rest);
            if child.is_empty() {
                node.children.remove(level);
            }
            removed
        }
    }
}
