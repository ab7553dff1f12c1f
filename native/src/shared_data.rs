//! Shared data across the worker threads of the process: what proxy-wasm's
//! shared data is across worker VMs (the JWKS bytes and the fetch lease of
//! `jwks_sync`), with the same compare-and-swap contract, as ordinary Rust
//! shared state.

use fhir_smart_authz::host::HostError;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// Key → (value, CAS token: bumped on every write).
type Entries = HashMap<String, (Vec<u8>, u32)>;

fn entries() -> &'static Mutex<Entries> {
    static ENTRIES: OnceLock<Mutex<Entries>> = OnceLock::new();
    ENTRIES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The value of `key` and its CAS token (`(None, None)` when absent).
pub fn get(key: &str) -> (Option<Vec<u8>>, Option<u32>) {
    let Ok(map) = entries().lock() else {
        return (None, None);
    };
    match map.get(key) {
        Some((value, cas)) => (Some(value.clone()), Some(*cas)),
        None => (None, None),
    }
}

/// Write `key`; with a CAS token only if nobody wrote since it was read.
pub fn set(key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
    let mut map = entries().lock().map_err(|_| HostError::InternalFailure)?;
    let current = map.get(key).map(|(_, c)| *c);
    if let (Some(expected), Some(now)) = (cas, current) {
        if expected != now {
            return Err(HostError::CasMismatch);
        }
    }
    let next = current.unwrap_or(0).wrapping_add(1);
    map.insert(key.to_string(), (value.to_vec(), next));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_and_swap_refuses_a_stale_token() {
        let key = "native.shared_data.test";
        assert_eq!(get(key), (None, None));
        assert_eq!(set(key, b"a", None), Ok(()));
        let (value, cas) = get(key);
        assert_eq!(value.as_deref(), Some(&b"a"[..]));
        assert_eq!(set(key, b"b", cas), Ok(()));
        assert_eq!(set(key, b"c", cas), Err(HostError::CasMismatch));
        assert_eq!(get(key).0.as_deref(), Some(&b"b"[..]));
    }
}
