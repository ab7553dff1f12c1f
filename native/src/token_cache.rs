//! The verified-token cache of one filter configuration, shared by every
//! worker thread of the process (a wasm VM keeps its own): bounded by the
//! configuration's `token.cache_max_entries` in all, sharded so that
//! workers rarely wait on one another (`SharedTokenCache`). A token one
//! worker verified is a cache hit on all the others (under the same key
//! set: the key-set id is derived from the keys, so workers agree on it).

use fhir_smart_authz::core_adapter::core_ports_with_store;
use fhir_smart_authz::ports::{Engine, TokenPort};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::token::service::Cached;
use fhir_smart_authz_core::token::SharedTokenCache;
use std::rc::Rc;
use std::sync::Arc;

/// One configuration's cache, held by its `NativeConfig`.
pub type ProcessTokenCache = Arc<SharedTokenCache<Cached>>;

/// The cache of a configuration: `token.cache_max_entries` entries in all.
pub fn process_token_cache(config: &Config) -> ProcessTokenCache {
    SharedTokenCache::new(config.token.cache_max_entries)
}

/// The ports of a worker's root (the shell's production ports) over the
/// process's cache.
pub fn ports_over(
    cache: &ProcessTokenCache,
) -> impl Fn(Rc<Config>) -> (Box<dyn TokenPort>, Box<dyn Engine>) {
    let cache = cache.clone();
    move |config| core_ports_with_store(config, cache.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_smart_authz::fake::FakeHost;
    use fhir_smart_authz::ports::TokenStep;
    use fhir_smart_authz_core::token::TokenStore;
    use serde_json::{json, Value};

    const JWKS: &str = include_str!("../../tests/fixtures/keys/jwks.json");
    const TOKENS: &str = include_str!("../../tests/fixtures/keys/reference_tokens.json");
    const NOW: u64 = 1_800_000_000;

    fn config() -> Config {
        let jwks: Value = serde_json::from_str(JWKS).unwrap();
        let cfg = json!({
            "fhir_base_url": "https://fhir.example.org/fhir",
            "issuers": [{"issuer": "https://issuer.example.org", "jwks": jwks}],
            // Pure-Rust signatures: the fake host has no `verify_signature`.
            "token": {"host_crypto": false, "cache_max_entries": 100},
        });
        Config::from_json(cfg.to_string().as_bytes()).unwrap()
    }

    fn valid_token(alg: &str) -> String {
        let rows: Vec<Value> = serde_json::from_str(TOKENS).unwrap();
        let row = rows
            .iter()
            .find(|r| r["alg"] == alg && r["case"] == "valid")
            .unwrap();
        row["token"].as_str().unwrap().to_string()
    }

    /// A worker thread: its own root's ports over the process's cache, one
    /// token verified; whether it was a cache hit.
    fn verify_on_a_worker(cache: &ProcessTokenCache, token: String) -> Option<bool> {
        let factory = ports_over(cache);
        std::thread::spawn(move || {
            let (mut tokens, _engine) = factory(Rc::new(config()));
            match tokens.verify(&FakeHost::new(NOW * 1000), &token, NOW) {
                TokenStep::Verified { cache_hit, .. } => Some(cache_hit),
                _ => None,
            }
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_token_verified_on_one_worker_is_a_hit_on_another() {
        let cache = process_token_cache(&config());
        assert_eq!(cache.capacity(), 100);
        let token = valid_token("RS256");
        assert_eq!(verify_on_a_worker(&cache, token.clone()), Some(false));
        assert_eq!(verify_on_a_worker(&cache, token.clone()), Some(true));
        assert_eq!(verify_on_a_worker(&cache, token), Some(true));
        assert_eq!(cache.len(), 1);
        // Another token: verified once, by whichever worker sees it first.
        let other = valid_token("ES256");
        assert_eq!(verify_on_a_worker(&cache, other.clone()), Some(false));
        assert_eq!(verify_on_a_worker(&cache, other), Some(true));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_bound_is_the_configuration_s() {
        let mut cfg = config();
        cfg.token.cache_max_entries = 0;
        let cache = process_token_cache(&cfg);
        let token = valid_token("RS256");
        assert_eq!(verify_on_a_worker(&cache, token.clone()), Some(false));
        assert_eq!(verify_on_a_worker(&cache, token), Some(false));
        assert!(cache.is_empty());
    }
}
