//! The DPoP replay cache's store across worker VMs: proxy-wasm shared data
//! (one key per shard, compare-and-swap writes). The replay decision is the
//! core's (`token::binding::replay`); this only adapts the host.

use crate::host::{Host, HostError};
use fhir_smart_authz_core::token::binding::replay::LAYOUT_SLOT;
use fhir_smart_authz_core::token::binding::{ReplayStore, StoreError};

/// [`ReplayStore`] over the host's shared data.
pub struct SharedReplay<'h> {
    host: &'h dyn Host,
    /// The shared-data key of the last shard used: a check reads and
    /// writes the same shard, so the key is written once.
    key: Option<(usize, String)>,
    /// The shard count `prepare` found at configuration (so a request
    /// does not read the layout record).
    prepared_shards: Option<usize>,
}

impl<'h> SharedReplay<'h> {
    /// The store as configuration prepares it.
    pub fn new(host: &'h dyn Host) -> Self {
        SharedReplay {
            host,
            key: None,
            prepared_shards: None,
        }
    }

    /// The store as requests use it, with the shard count `prepare` found.
    pub fn prepared(host: &'h dyn Host, shards: Option<usize>) -> Self {
        SharedReplay {
            prepared_shards: shards,
            ..SharedReplay::new(host)
        }
    }

    /// The shared-data key of a shard (or of the layout record).
    fn key(&mut self, shard: usize) -> &str {
        if self.key.as_ref().map(|(last, _)| *last) != Some(shard) {
            let name = if shard == LAYOUT_SLOT {
                "fhir_smart_authz.dpop_replay.layout".to_string()
            } else {
                format!("fhir_smart_authz.dpop_replay.{shard}")
            };
            self.key = Some((shard, name));
        }
        self.key.as_ref().map_or("", |(_, key)| key)
    }
}

impl ReplayStore for SharedReplay<'_> {
    fn load(&mut self, shard: usize) -> (Option<Vec<u8>>, Option<u32>) {
        let host = self.host;
        host.shared_get(self.key(shard))
    }

    fn store(
        &mut self,
        shard: usize,
        bytes: &[u8],
        version: Option<u32>,
    ) -> Result<(), StoreError> {
        let host = self.host;
        match host.shared_set(self.key(shard), bytes, version) {
            Ok(()) => Ok(()),
            Err(HostError::CasMismatch) => Err(StoreError::Conflict),
            Err(_) => Err(StoreError::Failed),
        }
    }

    fn prepared_shards(&self) -> Option<usize> {
        self.prepared_shards
    }
}
