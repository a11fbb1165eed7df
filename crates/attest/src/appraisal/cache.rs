//! A bounded cache of affirmed appraisals, keyed by SHA-256(evidence ‖ endorsements digest). An
//! entry answers only inside [appraised_at, valid_until]: an expired result is appraised afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::claims::VerifiedClaims;
use crate::time::UnixTime;
use crate::values::Digest256;

/// Cache of affirmed appraisals.
#[derive(Debug)]
pub struct AppraisalCache {
    capacity: usize,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<[u8; 32], VerifiedClaims>,
    order: VecDeque<[u8; 32]>,
}

impl AppraisalCache {
    /// A cache holding at most `capacity` results (oldest evicted first).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cache key for evidence appraised with a set of endorsements.
    pub fn key(evidence: &[u8], endorsements: &Digest256) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(evidence);
        h.update(endorsements.as_bytes());
        h.finalize().into()
    }

    /// A still-valid result for `key` at `now`.
    pub fn get(&self, key: &[u8; 32], now: UnixTime) -> Option<VerifiedClaims> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let found = match inner.entries.get(key) {
            Some(v) if v.appraised_at() <= now && now <= v.valid_until() => Some(v.clone()),
            Some(_) => {
                inner.entries.remove(key);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores an affirmed result.
    pub fn insert(&self, key: [u8; 32], value: VerifiedClaims) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.entries.insert(key, value).is_none() {
            inner.order.push_back(key);
        }
        while inner.entries.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.entries.remove(&oldest);
        }
        // Keys of entries removed on expiry linger in `order`; drop them once they dominate.
        if inner.order.len() > 2 * self.capacity {
            let Inner { entries, order } = &mut *inner;
            order.retain(|k| entries.contains_key(k));
        }
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}
