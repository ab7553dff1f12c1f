//! The DPoP replay cache's store across worker VMs: proxy-wasm shared data
//! (one key per shard, compare-and-swap writes). The replay decision is the
//! core's (`token::binding::replay`); this only adapts the host.

use crate::host::{Host, HostError};
use fhir_smart_authz_core::token::binding::{ReplayStore, StoreError};

/// The shared-data key of a shard.
fn shard_key(shard: usize) -> String {
    format!("fhir_smart_authz.dpop_replay.{shard}")
}

/// [`ReplayStore`] over the host's shared data.
pub struct SharedReplay<'h> {
    pub host: &'h dyn Host,
}

impl ReplayStore for SharedReplay<'_> {
    fn load(&mut self, shard: usize) -> (Option<Vec<u8>>, Option<u32>) {
        self.host.shared_get(&shard_key(shard))
    }

    fn store(
        &mut self,
        shard: usize,
        bytes: &[u8],
        version: Option<u32>,
    ) -> Result<(), StoreError> {
        match self.host.shared_set(&shard_key(shard), bytes, version) {
            Ok(()) => Ok(()),
            Err(HostError::CasMismatch) => Err(StoreError::Conflict),
            Err(_) => Err(StoreError::Failed),
        }
    }
}
