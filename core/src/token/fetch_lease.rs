//! The JWKS fetch lease across the workers of one plugin (proxy-wasm worker
//! VMs, or a native module's worker threads): which worker owns a fetch,
//! and for how long nobody fetches again. The shells keep the bytes in
//! their shared data; these rules read and write them. Layout (as
//! [`encode_shared_jwks`]): `until` (ms, 8 bytes big-endian), then `1`
//! while a fetch is in flight, `0` once it is over.

use super::keys::{decode_shared_jwks, encode_shared_jwks};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Nobody fetches: take it with this CAS token.
    Free(Option<u32>),
    /// Another worker's fetch is in flight.
    Fetching,
    /// A fetch ended less than `jwks_min_refetch_seconds` after its start.
    Resting,
}

/// The lease as its shared bytes (and their CAS token) say at `now_ms`.
pub fn lease_state(value: Option<&[u8]>, cas: Option<u32>, now_ms: u64) -> Lease {
    match value.and_then(decode_shared_jwks) {
        Some((until, rest)) if until > now_ms => {
            if rest.first() == Some(&0) {
                Lease::Resting
            } else {
                Lease::Fetching
            }
        }
        _ => Lease::Free(cas),
    }
}

/// The bytes of a lease taken for a fetch starting at `now_ms` with this
/// timeout: held until the call's deadline and a second more.
pub fn lease_taken(now_ms: u64, timeout_ms: u64) -> Vec<u8> {
    let until = now_ms.saturating_add(timeout_ms).saturating_add(1000);
    encode_shared_jwks(until, &[1])
}

/// The bytes of the lease once the fetch that started at `started_ms` is
/// over: after a success nobody fetches again until `min_refetch_seconds`
/// after its start; after a failure the lease is free (the next fetch, by
/// any worker, may go).
pub fn lease_ended(started_ms: u64, ok: bool, min_refetch_seconds: u64) -> Vec<u8> {
    let until = if ok {
        started_ms.saturating_add(min_refetch_seconds.saturating_mul(1000))
    } else {
        0
    };
    encode_shared_jwks(until, &[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_taken_held_and_rests_after_a_success() {
        assert_eq!(lease_state(None, None, 5), Lease::Free(None));
        let taken = lease_taken(10_000, 2_000);
        assert_eq!(lease_state(Some(&taken), Some(3), 12_999), Lease::Fetching);
        assert_eq!(
            lease_state(Some(&taken), Some(3), 13_000),
            Lease::Free(Some(3))
        );
        let ok = lease_ended(10_000, true, 60);
        assert_eq!(lease_state(Some(&ok), Some(4), 69_999), Lease::Resting);
        assert_eq!(
            lease_state(Some(&ok), Some(4), 70_000),
            Lease::Free(Some(4))
        );
        let failed = lease_ended(10_000, false, 60);
        assert_eq!(
            lease_state(Some(&failed), Some(5), 10_001),
            Lease::Free(Some(5))
        );
        assert_eq!(
            lease_state(Some(b"short"), Some(6), 0),
            Lease::Free(Some(6))
        );
    }
}
