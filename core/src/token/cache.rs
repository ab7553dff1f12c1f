//! Verified-token cache: bounded, keyed by SHA-256 of the whole token, entries
//! die with the token (or the introspection TTL) and when the issuer's key set
//! changes (its content-derived id, [`super::KeyStore::key_set_id`]). The
//! caller re-runs the time checks on every hit.

use super::jose::TimeClaims;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, VecDeque};

/// SHA-256 of the complete token string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey(pub [u8; 32]);

impl CacheKey {
    pub fn of(token: &str) -> CacheKey {
        CacheKey(Sha256::digest(token.as_bytes()).into())
    }
}

/// A verified token as the cache keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry<V> {
    pub issuer_index: usize,
    /// The key-set id of the issuer when the token was verified.
    pub key_set: u64,
    /// The entry is dropped at or after this time (unix seconds).
    pub expires_at: u64,
    pub times: TimeClaims,
    pub value: V,
}

#[derive(Debug, Clone)]
struct Entry<V> {
    /// Tells a replaced entry's place in the eviction order from its own.
    serial: u64,
    entry: CacheEntry<V>,
}

/// A cache hit: the stored value and what the caller must still check.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheHit<V> {
    pub value: V,
    pub issuer_index: usize,
    pub times: TimeClaims,
}

/// Where verified tokens are kept: one worker's own [`TokenCache`] (a wasm
/// VM), or one cache for all threads of a process
/// ([`super::shared_cache::SharedTokenCache`], the native module). Callers
/// are generic over it, so each build compiles only the store it uses.
pub trait TokenStore<V> {
    /// Look a token up. Entries past their `expires_at` or verified under
    /// another key set of their issuer (`key_set_of(issuer) != stored`) miss
    /// (and are removed).
    fn get(
        &mut self,
        key: &CacheKey,
        now: u64,
        key_set_of: impl Fn(usize) -> Option<u64>,
    ) -> Option<CacheHit<V>>;

    /// Remember a verified token until its `expires_at` (or eviction).
    fn insert(&mut self, key: CacheKey, entry: CacheEntry<V>);

    /// Forget one token.
    fn remove(&mut self, key: &CacheKey);

    /// Drop every expired entry (O(n); call from a timer, not per request).
    fn purge_expired(&mut self, now: u64);

    /// The most entries kept (0: the cache is off).
    fn capacity(&self) -> usize;
}

/// Bounded map from token hash to a caller-chosen value `V` (keep it small:
/// e.g. an `Arc` of the claims the engine needs). Insertion order eviction
/// (oldest first), O(1) amortised.
#[derive(Debug, Clone)]
pub struct TokenCache<V> {
    max_entries: usize,
    map: HashMap<CacheKey, Entry<V>>,
    order: VecDeque<(CacheKey, u64)>,
    next_serial: u64,
}

impl<V: Clone> TokenCache<V> {
    /// `max_entries` 0 disables the cache.
    pub fn new(max_entries: usize) -> Self {
        TokenCache {
            max_entries,
            map: HashMap::new(),
            order: VecDeque::new(),
            next_serial: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    fn evict_oldest(&mut self) -> bool {
        while let Some((key, serial)) = self.order.pop_front() {
            if self.map.get(&key).is_some_and(|e| e.serial == serial) {
                self.map.remove(&key);
                return true;
            }
        }
        false
    }

    /// Keep the order queue proportional to the map (stale serials pile up
    /// after removals and replacements).
    fn compact_if_needed(&mut self) {
        if self.order.len() > 2 * self.map.len() + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, s)| map.get(k).is_some_and(|e| e.serial == *s));
        }
    }
}

impl<V: Clone> TokenStore<V> for TokenCache<V> {
    fn get(
        &mut self,
        key: &CacheKey,
        now: u64,
        key_set_of: impl Fn(usize) -> Option<u64>,
    ) -> Option<CacheHit<V>> {
        let entry = &self.map.get(key)?.entry;
        let live = now < entry.expires_at && key_set_of(entry.issuer_index) == Some(entry.key_set);
        if !live {
            self.map.remove(key);
            self.compact_if_needed();
            return None;
        }
        Some(CacheHit {
            value: entry.value.clone(),
            issuer_index: entry.issuer_index,
            times: entry.times,
        })
    }

    fn insert(&mut self, key: CacheKey, entry: CacheEntry<V>) {
        if self.max_entries == 0 {
            return;
        }
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.max_entries {
                if !self.evict_oldest() {
                    break;
                }
            }
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        self.map.insert(key, Entry { serial, entry });
        self.order.push_back((key, serial));
        self.compact_if_needed();
    }

    fn remove(&mut self, key: &CacheKey) {
        if self.map.remove(key).is_some() {
            self.compact_if_needed();
        }
    }

    fn purge_expired(&mut self, now: u64) {
        self.map.retain(|_, e| now < e.entry.expires_at);
        self.compact_if_needed();
    }

    fn capacity(&self) -> usize {
        self.max_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry of issuer 0, key set 1, until 100.
    fn entry<V>(value: V) -> CacheEntry<V> {
        CacheEntry {
            issuer_index: 0,
            key_set: 1,
            expires_at: 100,
            times: TimeClaims::default(),
            value,
        }
    }

    #[test]
    fn bounded_and_expiring() {
        let mut c: TokenCache<u32> = TokenCache::new(2);
        let gen = |_| Some(1);
        c.insert(CacheKey::of("a"), entry(1));
        c.insert(CacheKey::of("b"), entry(2));
        c.insert(CacheKey::of("c"), entry(3));
        assert_eq!(c.len(), 2);
        assert!(c.get(&CacheKey::of("a"), 10, gen).is_none());
        assert_eq!(c.get(&CacheKey::of("b"), 10, gen).unwrap().value, 2);
        assert!(c.get(&CacheKey::of("c"), 100, gen).is_none());
        assert_eq!(c.len(), 1);
        assert!(c.get(&CacheKey::of("b"), 10, |_| Some(2)).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn entries_are_small() {
        // Per entry: the map slot (32-byte key + entry) and an order slot. With
        // an `Arc` value, 10 000 entries stay around 2 MiB (plus what the value
        // points to), well under the 16 MiB budget.
        let slot = std::mem::size_of::<(CacheKey, Entry<std::sync::Arc<()>>)>();
        let order = std::mem::size_of::<(CacheKey, u64)>();
        assert!(slot <= 128, "{slot}");
        assert!((slot * 2 + order * 3) * 10_000 < 4 * 1024 * 1024);
    }

    #[test]
    fn disabled_and_replacement() {
        let mut c: TokenCache<u32> = TokenCache::new(0);
        c.insert(CacheKey::of("a"), entry(1));
        assert!(c.is_empty());
        let mut c: TokenCache<u32> = TokenCache::new(3);
        for i in 0..1000 {
            c.insert(CacheKey::of("same"), entry(i));
        }
        assert_eq!(c.len(), 1);
        assert!(c.order.len() < 40);
        assert_eq!(
            c.get(&CacheKey::of("same"), 1, |_| Some(1)).unwrap().value,
            999
        );
    }
}
