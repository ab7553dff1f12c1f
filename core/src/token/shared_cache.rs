//! One verified-token cache for every thread of a process (the native
//! module's workers): [`TokenCache`] shards, each behind its own lock, the
//! shard chosen by the token's hash. A lookup holds one shard's lock for a
//! map probe; signatures are checked outside any lock (the verifier looks
//! up, verifies, then inserts). The wasm build never instantiates it (one
//! VM, one thread: its own [`TokenCache`]).

use super::cache::{CacheEntry, CacheHit, CacheKey, TokenCache, TokenStore};
use std::sync::{Arc, Mutex, MutexGuard};

/// Shards at most: enough that a few dozen workers rarely meet on one lock.
pub const MAX_SHARDS: usize = 16;

/// `max_entries` in all, split over up to [`MAX_SHARDS`] shards whose
/// bounds add up to it exactly; each shard evicts its oldest entry when
/// full (so the whole evicts roughly oldest first).
#[derive(Debug)]
pub struct SharedTokenCache<V> {
    shards: Box<[Mutex<TokenCache<V>>]>,
    max_entries: usize,
}

impl<V: Clone> SharedTokenCache<V> {
    /// `max_entries` 0 disables the cache.
    pub fn new(max_entries: usize) -> Arc<SharedTokenCache<V>> {
        let n = max_entries.clamp(1, MAX_SHARDS);
        let shards = (0..n)
            .map(|i| {
                let extra = usize::from(i < max_entries % n);
                Mutex::new(TokenCache::new(max_entries / n + extra))
            })
            .collect();
        Arc::new(SharedTokenCache {
            shards,
            max_entries,
        })
    }

    /// Entries held now (all shards).
    pub fn len(&self) -> usize {
        (0..self.shards.len())
            .map(|i| self.shard_at(i).map_or(0, |s| s.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: &CacheKey) -> Option<MutexGuard<'_, TokenCache<V>>> {
        let mut head = [0u8; 8];
        head.copy_from_slice(key.0.get(..8).unwrap_or(&[0; 8]));
        let n = self.shards.len() as u64;
        self.shard_at((u64::from_le_bytes(head) % n.max(1)) as usize)
    }

    /// Shard `i`, locked. A shard whose lock a panicking thread held is
    /// emptied before use (its entries may be half-written), never trusted.
    fn shard_at(&self, i: usize) -> Option<MutexGuard<'_, TokenCache<V>>> {
        let m = self.shards.get(i)?;
        Some(m.lock().unwrap_or_else(|poisoned| {
            m.clear_poison();
            let mut s = poisoned.into_inner();
            s.clear();
            s
        }))
    }
}

/// The handle each worker's token service keeps.
impl<V: Clone> TokenStore<V> for Arc<SharedTokenCache<V>> {
    fn get(
        &mut self,
        key: &CacheKey,
        now: u64,
        key_set_of: impl Fn(usize) -> Option<u64>,
    ) -> Option<CacheHit<V>> {
        self.shard(key)?.get(key, now, key_set_of)
    }

    fn insert(&mut self, key: CacheKey, entry: CacheEntry<V>) {
        if let Some(mut s) = self.shard(&key) {
            s.insert(key, entry);
        }
    }

    fn remove(&mut self, key: &CacheKey) {
        if let Some(mut s) = self.shard(key) {
            s.remove(key);
        }
    }

    fn purge_expired(&mut self, now: u64) {
        for i in 0..self.shards.len() {
            if let Some(mut s) = self.shard_at(i) {
                s.purge_expired(now);
            }
        }
    }

    fn capacity(&self) -> usize {
        self.max_entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::TimeClaims;

    /// `token` verified under key set 7 of issuer 0, until 100.
    fn put(c: &mut Arc<SharedTokenCache<u32>>, token: &str, value: u32) {
        let entry = CacheEntry {
            issuer_index: 0,
            key_set: 7,
            expires_at: 100,
            times: TimeClaims::default(),
            value,
        };
        c.insert(CacheKey::of(token), entry);
    }

    #[test]
    fn bounded_in_all_by_max_entries() {
        for max in [0, 1, 5, 16, 17, 100] {
            let mut c = SharedTokenCache::new(max);
            for i in 0..(3 * max + 40) {
                put(&mut c, &format!("token-{i}"), 1);
            }
            assert!(c.len() <= max, "{max}: {}", c.len());
            assert_eq!(c.capacity(), max);
        }
        let mut c = SharedTokenCache::new(100);
        for i in 0..1000 {
            put(&mut c, &format!("token-{i}"), 1);
        }
        // Every shard full: the split adds up to the bound.
        assert_eq!(c.len(), 100);
    }

    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 runs no threads")]
    fn one_thread_inserts_the_other_hits() {
        let c = SharedTokenCache::new(64);
        let mut mine = c.clone();
        put(&mut mine, "shared-token", 42);
        let mut theirs = c.clone();
        let hit = std::thread::spawn(move || {
            theirs
                .get(&CacheKey::of("shared-token"), 10, |_| Some(7))
                .map(|h| h.value)
        })
        .join()
        .unwrap();
        assert_eq!(hit, Some(42));
        // Another key set of the issuer: a miss, and the entry is gone.
        assert!(mine
            .get(&CacheKey::of("shared-token"), 10, |_| Some(8))
            .is_none());
        assert!(c.is_empty());
    }

    #[test]
    #[cfg_attr(target_family = "wasm", ignore = "wasm32-wasip1 runs no threads")]
    fn a_poisoned_shard_is_emptied_not_trusted() {
        let c = SharedTokenCache::new(1);
        let mut h = c.clone();
        put(&mut h, "t", 1);
        let poisoner = c.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.shards[0].lock();
            panic!("while holding the shard");
        })
        .join();
        assert!(h.get(&CacheKey::of("t"), 10, |_| Some(7)).is_none());
        put(&mut h, "t", 2);
        assert_eq!(h.get(&CacheKey::of("t"), 10, |_| Some(7)).unwrap().value, 2);
    }
}
