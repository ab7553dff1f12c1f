//! Bearer extraction, JWKS key store, cache, introspection, host path, config
//! validation and the CLI helpers.

// Test helpers outside #[test] functions may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../token_support/mod.rs"]
mod token_support;

mod bearer;
mod cache;
mod cli;
mod config;
mod host_path;
mod introspection;
mod jwks;
mod service;

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Reason;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::secret::SecretSource;
use fhir_smart_authz_core::token::host_crypto::{self, HostAssistedVerifier};
use fhir_smart_authz_core::token::offline::{inspect, verify_claims};
use fhir_smart_authz_core::token::{
    extract_bearer, Authenticated, BearerToken, FetchReason, Jwk, JwsAlgorithm, RustCryptoVerifier,
    SharedTokenCache, SignatureVerifier, TokenCache, TokenLocation, TokenSettings, TokenStore,
    TokenVerifier, VerifierError,
};
use serde_json::{json, Value};
use std::cell::Cell;
use token_support::*;

fn parts<'a>(path: &'a str, headers: &[(&str, &str)]) -> RequestParts<'a> {
    RequestParts {
        method: "GET",
        path,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: None,
    }
}

struct Counting(Cell<usize>);

impl SignatureVerifier for Counting {
    fn verify(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        input: &[u8],
        sig: &[u8],
    ) -> Result<bool, VerifierError> {
        self.0.set(self.0.get() + 1);
        RustCryptoVerifier.verify(alg, key, input, sig)
    }
}

fn bearer(token: &str) -> BearerToken<'_> {
    BearerToken {
        token: token.into(),
        location: TokenLocation::Header,
        scheme: fhir_smart_authz_core::token::Scheme::Bearer,
    }
}

fn auth(
    v: &mut TokenVerifier,
    cache: &mut impl TokenStore<String>,
    token: &str,
    now: u64,
    sig: &Counting,
) -> Result<(String, bool), Reason> {
    match v.authenticate(cache, &bearer(token), now, sig, |t| {
        t.subject.clone().unwrap_or_default()
    }) {
        Ok(Authenticated::Verified { value, cached }) => Ok((value, cached)),
        Ok(Authenticated::Introspect(_)) => panic!("unexpected introspection"),
        Err(e) => Err(e.reason),
    }
}

/// The environment the introspection issuer's secret comes from.
struct IntrospectionSecret;

impl SecretSource for IntrospectionSecret {
    fn env_var(&self, name: &str) -> Option<std::ffi::OsString> {
        (name == "INTROSPECTION_SECRET").then(|| "s3cr:t".into())
    }
    fn read_file(&self, _path: &str) -> Result<Vec<u8>, String> {
        Err("no files here".into())
    }
}

fn introspection_config() -> Config {
    let cfg = json!({
        "fhir_base_url": AUD,
        "issuers": [
            {"issuer": ISS, "jwks": serde_json::from_str::<Value>(JWKS).unwrap()},
            {"issuer": "https://as.example.org", "introspection": {
                "cluster": "as", "path": "/oauth2/introspect", "client_id": "filter id",
                "client_secret": {"env": "INTROSPECTION_SECRET"}, "max_cache_seconds": 120}}
        ]
    });
    Config::from_json_with_secrets(cfg.to_string().as_bytes(), &IntrospectionSecret).unwrap()
}
