//! The DPoP replay check (RFC 9449 §11.1): a proof's `jti` (with its key's
//! thumbprint) is accepted once within its `iat` window, across every
//! worker of the proxy. The logic lives here; the store behind
//! [`ReplayStore`] is the shell's (proxy-wasm shared data, with
//! compare-and-swap), or memory (the CLI, tests).
//!
//! The cache is bounded: [`shards`] keys, each holding at most
//! [`per_shard`] entries of 24 bytes (a 16-byte hash of thumbprint and
//! `jti`, and the Unix second it may be forgotten). Every check reads and
//! rewrites one whole shard, so the number of shards grows with the
//! capacity and a shard stays small (at most [`ENTRIES_PER_SHARD`]). A write drops the
//! expired entries of its shard first; when the shard is still full the
//! proof is refused ([`Seen::Full`], fail closed). Evicting an unexpired
//! entry would let its proof be replayed, so there is no other eviction.
//!
//! The shard of a proof depends on the number of shards, so that number is
//! fixed for the life of the store: the first configuration that prepares
//! it records its shard count ([`LAYOUT_SLOT`]); later configurations with
//! another `replay_cache_entries` keep that count and change only how many
//! entries a shard holds ([`ReplayLayout`]). Re-sharding under traffic
//! would look a recent proof up in the wrong shard and accept it again.

use sha2::{Digest, Sha256};

/// Fewest shared-data keys the cache is spread over (fewer CAS conflicts
/// between workers).
pub const MIN_SHARDS: usize = 64;
/// Most keys: the largest capacity the configuration takes (1 048 576) at
/// [`ENTRIES_PER_SHARD`].
pub const MAX_SHARDS: usize = 4096;
/// Entries a shard holds when the capacity allows (6 KiB: what one check
/// copies in and out).
pub const ENTRIES_PER_SHARD: usize = 256;
/// Bytes of one entry: a 16-byte key and an 8-byte expiry (big-endian).
const ENTRY: usize = 24;
/// Compare-and-swap attempts before the check gives up (fail closed).
const ATTEMPTS: usize = 8;

/// The slot of the layout record: the shard count the store was first
/// prepared with (4 bytes, big-endian), read by every later [`prepare`].
pub const LAYOUT_SLOT: usize = usize::MAX;

/// A write that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// Someone else wrote the shard since it was read: read and try again.
    Conflict,
    /// The store refused (fail closed).
    Failed,
}

/// Where the shards live: read with a version, write only if unchanged.
pub trait ReplayStore {
    /// The shard's bytes and version (`None`, `None` when it does not exist).
    fn load(&mut self, shard: usize) -> (Option<Vec<u8>>, Option<u32>);
    /// Write the shard if its version is still `version` (`None`:
    /// unconditionally, for a shard that does not exist yet).
    fn store(&mut self, shard: usize, bytes: &[u8], version: Option<u32>)
        -> Result<(), StoreError>;
    /// The shard count [`prepare`] found for this store, when the store
    /// was prepared (the shells' stores; `None`: the count of the
    /// configured capacity, as in a store prepared now).
    fn prepared_shards(&self) -> Option<usize> {
        None
    }
}

/// How the cache is laid out over the store: the shard count (fixed for
/// the store's life) and the entries a shard may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayLayout {
    pub shards: usize,
    pub per_shard: usize,
}

impl ReplayLayout {
    /// A cache of `capacity` entries in a store prepared now.
    pub fn for_capacity(capacity: usize) -> ReplayLayout {
        ReplayLayout {
            shards: shards(capacity),
            per_shard: per_shard(capacity),
        }
    }

    /// A cache of `capacity` entries over the `shards` a store keeps (at
    /// least one entry a shard; a shard of a much larger capacity than the
    /// store was prepared for holds more than [`ENTRIES_PER_SHARD`]).
    pub fn keeping(shards: usize, capacity: usize) -> ReplayLayout {
        let shards = shards.clamp(1, MAX_SHARDS);
        ReplayLayout {
            shards,
            per_shard: capacity.div_ceil(shards).max(1),
        }
    }

    /// The layout `store` is read with for a cache of `capacity` entries.
    pub fn of_store(store: &dyn ReplayStore, capacity: usize) -> ReplayLayout {
        match store.prepared_shards() {
            Some(shards) => ReplayLayout::keeping(shards, capacity),
            None => ReplayLayout::for_capacity(capacity),
        }
    }
}

/// What the cache says about a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// First use: recorded.
    Fresh,
    /// Used before within its window.
    Replayed,
    /// The shard is full of unexpired entries.
    Full,
    /// The store could not be written (conflicts kept winning, or it refused).
    Unavailable,
}

/// The cache key of a proof: its key's thumbprint and its `jti`.
pub fn proof_key(jkt: &str, jti: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(jkt.as_bytes());
    h.update([0u8]);
    h.update(jti.as_bytes());
    let digest = h.finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(digest.get(..16).unwrap_or(&[0; 16]));
    key
}

/// Shared-data keys of a cache of `capacity` entries.
pub fn shards(capacity: usize) -> usize {
    capacity
        .div_ceil(ENTRIES_PER_SHARD)
        .clamp(MIN_SHARDS, MAX_SHARDS)
}

/// Entries per shard for a cache of `capacity` entries.
pub fn per_shard(capacity: usize) -> usize {
    capacity.div_ceil(shards(capacity)).max(1)
}

/// The shard of `key` among `count`.
fn shard_of(key: &[u8; 16], count: usize) -> usize {
    let mut head = [0u8; 4];
    head.copy_from_slice(key.get(..4).unwrap_or(&[0; 4]));
    u32::from_be_bytes(head) as usize % count.max(1)
}

/// Record `key` until `expires_at` unless it is there: see [`Seen`].
pub fn record_once(
    store: &mut dyn ReplayStore,
    key: [u8; 16],
    expires_at: u64,
    now: u64,
    capacity: usize,
) -> Seen {
    let layout = ReplayLayout::of_store(store, capacity);
    let shard = shard_of(&key, layout.shards);
    let limit = layout.per_shard;
    for _ in 0..ATTEMPTS {
        let (bytes, version) = store.load(shard);
        let mut kept: Vec<u8> = Vec::with_capacity(bytes.as_ref().map_or(0, Vec::len) + ENTRY);
        for entry in bytes.as_deref().unwrap_or(&[]).chunks_exact(ENTRY) {
            let (k, t) = entry.split_at(16);
            let until = u64::from_be_bytes(t.try_into().unwrap_or([0; 8]));
            if until <= now {
                continue;
            }
            if k == key {
                return Seen::Replayed;
            }
            kept.extend_from_slice(entry);
        }
        if kept.len() / ENTRY >= limit {
            return Seen::Full;
        }
        kept.extend_from_slice(&key);
        kept.extend_from_slice(&expires_at.to_be_bytes());
        match store.store(shard, &kept, version) {
            Ok(()) => return Seen::Fresh,
            Err(StoreError::Conflict) => continue,
            Err(StoreError::Failed) => return Seen::Unavailable,
        }
    }
    Seen::Unavailable
}

/// The shard count in a layout record, when it is one.
fn recorded_shards(bytes: &[u8]) -> Option<usize> {
    let count = u32::from_be_bytes(bytes.try_into().ok()?) as usize;
    (1..=MAX_SHARDS).contains(&count).then_some(count)
}

/// Before requests come: take the store's shard count (recorded by the
/// first configuration; recorded now when there is none) and create the
/// shards that do not exist yet (empty: the first write of a shard cannot
/// be compare-and-swapped). Answers the layout checks use from now on.
pub fn prepare(store: &mut dyn ReplayStore, capacity: usize) -> ReplayLayout {
    let recorded = store
        .load(LAYOUT_SLOT)
        .0
        .as_deref()
        .and_then(recorded_shards);
    let shards = match recorded {
        Some(count) => count,
        None => {
            let count = shards(capacity);
            // Workers preparing at once with one configuration write the
            // same count; read back whichever write landed.
            let _ = store.store(LAYOUT_SLOT, &(count as u32).to_be_bytes(), None);
            store
                .load(LAYOUT_SLOT)
                .0
                .as_deref()
                .and_then(recorded_shards)
                .unwrap_or(count)
        }
    };
    for shard in 0..shards {
        if store.load(shard).0.is_none() {
            let _ = store.store(shard, &[], None);
        }
    }
    ReplayLayout::keeping(shards, capacity)
}

/// A store in memory (the CLI, tests): versions count writes.
#[derive(Debug, Default, Clone)]
pub struct MemoryReplayStore {
    shards: std::collections::HashMap<usize, (Vec<u8>, u32)>,
}

impl ReplayStore for MemoryReplayStore {
    fn load(&mut self, shard: usize) -> (Option<Vec<u8>>, Option<u32>) {
        match self.shards.get(&shard) {
            Some((b, v)) => (Some(b.clone()), Some(*v)),
            None => (None, None),
        }
    }

    fn store(
        &mut self,
        shard: usize,
        bytes: &[u8],
        version: Option<u32>,
    ) -> Result<(), StoreError> {
        let current = self.shards.get(&shard).map(|(_, v)| *v);
        if version.is_some() && version != current {
            return Err(StoreError::Conflict);
        }
        let next = current.unwrap_or(0).wrapping_add(1);
        self.shards.insert(shard, (bytes.to_vec(), next));
        Ok(())
    }

    fn prepared_shards(&self) -> Option<usize> {
        self.shards
            .get(&LAYOUT_SLOT)
            .and_then(|(bytes, _)| recorded_shards(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys that land in shard 0, distinct.
    fn key(n: u8) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[4] = n;
        k
    }

    #[test]
    fn once_per_window_then_forgotten() {
        let mut s = MemoryReplayStore::default();
        assert_eq!(
            record_once(&mut s, key(1), 160, 100, MIN_SHARDS * 4),
            Seen::Fresh
        );
        assert_eq!(
            record_once(&mut s, key(1), 160, 159, MIN_SHARDS * 4),
            Seen::Replayed
        );
        assert_eq!(
            record_once(&mut s, key(2), 160, 100, MIN_SHARDS * 4),
            Seen::Fresh
        );
        // At its expiry the entry is dropped (the proof is too old by then).
        assert_eq!(
            record_once(&mut s, key(1), 220, 160, MIN_SHARDS * 4),
            Seen::Fresh
        );
    }

    #[test]
    fn full_shard_fails_closed_until_entries_expire() {
        let mut s = MemoryReplayStore::default();
        let capacity = MIN_SHARDS * 2; // two entries per shard
        assert_eq!(record_once(&mut s, key(1), 200, 100, capacity), Seen::Fresh);
        assert_eq!(record_once(&mut s, key(2), 150, 100, capacity), Seen::Fresh);
        assert_eq!(record_once(&mut s, key(3), 200, 100, capacity), Seen::Full);
        // Still refused while full; the replay of a kept entry still is one.
        assert_eq!(
            record_once(&mut s, key(1), 200, 120, capacity),
            Seen::Replayed
        );
        assert_eq!(record_once(&mut s, key(3), 200, 149, capacity), Seen::Full);
        // key(2) expired: room again (evict-expired, never unexpired).
        assert_eq!(record_once(&mut s, key(3), 200, 150, capacity), Seen::Fresh);
        assert_eq!(
            record_once(&mut s, key(1), 200, 150, capacity),
            Seen::Replayed
        );
    }

    /// A store whose writes conflict `n` times, then fail or succeed.
    struct Conflicting {
        inner: MemoryReplayStore,
        conflicts: usize,
        then_fail: bool,
    }

    impl ReplayStore for Conflicting {
        fn load(&mut self, shard: usize) -> (Option<Vec<u8>>, Option<u32>) {
            self.inner.load(shard)
        }
        fn store(&mut self, shard: usize, bytes: &[u8], v: Option<u32>) -> Result<(), StoreError> {
            if self.conflicts > 0 {
                self.conflicts -= 1;
                // Another worker recorded the same proof meanwhile.
                let _ = self.inner.store(
                    shard,
                    &[key(7).as_slice(), &500u64.to_be_bytes()].concat(),
                    None,
                );
                return Err(StoreError::Conflict);
            }
            if self.then_fail {
                return Err(StoreError::Failed);
            }
            self.inner.store(shard, bytes, v)
        }
    }

    #[test]
    fn conflicts_are_retried_and_see_the_other_write() {
        let mut s = Conflicting {
            inner: MemoryReplayStore::default(),
            conflicts: 1,
            then_fail: false,
        };
        // The other worker's write of the same proof wins: a replay.
        assert_eq!(record_once(&mut s, key(7), 500, 100, 1024), Seen::Replayed);
        let mut s = Conflicting {
            inner: MemoryReplayStore::default(),
            conflicts: ATTEMPTS,
            then_fail: false,
        };
        assert_eq!(
            record_once(&mut s, key(8), 500, 100, 1024),
            Seen::Unavailable
        );
        let mut s = Conflicting {
            inner: MemoryReplayStore::default(),
            conflicts: 0,
            then_fail: true,
        };
        assert_eq!(
            record_once(&mut s, key(8), 500, 100, 1024),
            Seen::Unavailable
        );
    }

    #[test]
    fn prepare_creates_missing_shards_only() {
        let mut s = MemoryReplayStore::default();
        assert_eq!(record_once(&mut s, key(1), 500, 100, 1024), Seen::Fresh);
        assert_eq!(prepare(&mut s, 1024), ReplayLayout::for_capacity(1024));
        assert_eq!(record_once(&mut s, key(1), 500, 100, 1024), Seen::Replayed);
        assert!((0..shards(1024)).all(|i| s.load(i).0.is_some()));
        assert!(s.load(shards(1024)).0.is_none());
    }

    /// A key in shard 1 of 64 and shard 4033 of 4096 (its first four bytes
    /// are 4033 = 63 × 64 + 1).
    fn key_moved_by_resharding() -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&4033u32.to_be_bytes());
        k
    }

    /// capacity prepared first, capacity of the next configuration → the
    /// layout the store keeps, and whether a proof recorded under the
    /// first is still a replay under the second.
    #[test]
    fn a_new_capacity_keeps_the_shards_so_recent_proofs_stay_found() {
        for (first, second, want) in [
            (
                16384,
                1 << 20,
                ReplayLayout {
                    shards: 64,
                    per_shard: 16384,
                },
            ),
            (
                1 << 20,
                16384,
                ReplayLayout {
                    shards: 4096,
                    per_shard: 4,
                },
            ),
            (
                65536,
                65536,
                ReplayLayout {
                    shards: 256,
                    per_shard: 256,
                },
            ),
            (
                1024,
                16384,
                ReplayLayout {
                    shards: 64,
                    per_shard: 256,
                },
            ),
        ] {
            let mut s = MemoryReplayStore::default();
            assert_eq!(prepare(&mut s, first), ReplayLayout::for_capacity(first));
            let k = key_moved_by_resharding();
            assert_eq!(record_once(&mut s, k, 500, 100, first), Seen::Fresh);
            assert_eq!(prepare(&mut s, second), want, "{first} then {second}");
            assert_eq!(
                record_once(&mut s, k, 500, 101, second),
                Seen::Replayed,
                "{first} then {second}"
            );
        }
        // The key does move between those shard counts: without the record
        // the second layout would look in another shard.
        let k = key_moved_by_resharding();
        assert_ne!(shard_of(&k, 64), shard_of(&k, 4096));
    }

    #[test]
    fn a_layout_record_that_is_not_one_is_replaced() {
        for bad in [&b""[..], b"\0\0\0\0", b"\0\0\x10\x01", b"\0\0\0\x40\0"] {
            let mut s = MemoryReplayStore::default();
            s.store(LAYOUT_SLOT, bad, None).unwrap();
            assert_eq!(prepare(&mut s, 65536), ReplayLayout::for_capacity(65536));
            assert_eq!(s.prepared_shards(), Some(256));
        }
    }

    #[test]
    fn an_unprepared_store_is_laid_out_by_the_capacity() {
        let s = MemoryReplayStore::default();
        assert_eq!(
            ReplayLayout::of_store(&s, 65536),
            ReplayLayout::for_capacity(65536)
        );
    }

    /// capacity → (shards, entries per shard): a shard never holds more than
    /// ENTRIES_PER_SHARD entries over the configuration's range (64–2^20),
    /// and the shards hold at least the capacity.
    #[test]
    fn shards_grow_with_the_capacity() {
        for (capacity, want) in [
            (64, (64, 1)),
            (1024, (64, 16)),
            (16384, (64, 256)),
            (16385, (65, 253)),
            (65536, (256, 256)),
            (1 << 20, (4096, 256)),
        ] {
            assert_eq!((shards(capacity), per_shard(capacity)), want, "{capacity}");
            assert!(shards(capacity) * per_shard(capacity) >= capacity);
        }
    }

    #[test]
    fn proof_keys_separate_thumbprint_and_jti() {
        assert_ne!(proof_key("ab", "c"), proof_key("a", "bc"));
        assert_eq!(proof_key("k", "j"), proof_key("k", "j"));
    }
}
