//! `--fetch-keys`: the CLI fetches each issuer's `jwks_uri` itself (HTTP(S)
//! from the machine it runs on, not through Envoy's cluster) so that
//! operators need not paste keys; the fetched set is then used as if inline.

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::token::keys::KeySet;
use serde_json::Value;
use std::time::Duration;

/// Fetch and check one key set: `Ok` with the JWKS when it holds at least
/// one usable signing key.
pub fn fetch_jwks(uri: &str, timeout_ms: u64) -> Result<Value, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_millis(timeout_ms)))
        .build()
        .into();
    let body = agent
        .get(uri)
        .header("accept", "application/json")
        .call()
        .map_err(|e| format!("cannot fetch {uri}: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("cannot read {uri}: {e}"))?;
    let jwks: Value = serde_json::from_str(&body).map_err(|e| format!("{uri} is not JSON: {e}"))?;
    let set = KeySet::from_value(&jwks).map_err(|e| format!("{uri}: {e}"))?;
    if set.keys().is_empty() {
        return Err(format!(
            "{uri} holds no usable signing key ({})",
            set.skipped_summary()
        ));
    }
    Ok(jwks)
}

/// Every `issuers[i].jwks_uri` fetched; the errors name the field.
pub fn fetch_all(config: &Config) -> Vec<(usize, Result<Value, String>)> {
    config
        .issuers
        .iter()
        .enumerate()
        .filter_map(|(i, issuer)| {
            let uri = issuer.jwks_uri.as_deref()?;
            Some((i, fetch_jwks(uri, issuer.jwks_timeout_ms)))
        })
        .collect()
}

/// The configuration with every fetched key set inline (`jwks`), as the
/// filter holds it once its fetches succeed.
pub fn inline_fetched_keys(mut config: Config) -> Result<Config, String> {
    for (i, fetched) in fetch_all(&config) {
        let jwks = fetched.map_err(|e| format!("issuers[{i}].jwks_uri: {e}"))?;
        if let Some(issuer) = config.issuers.get_mut(i) {
            issuer.jwks = Some(jwks);
            issuer.jwks_uri = None;
            issuer.jwks_cluster = None;
        }
    }
    Ok(config)
}
