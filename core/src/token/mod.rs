//! Bearer token extraction and validation (pure; the clock, key fetches and
//! introspection calls are injected by the caller).
//!
//! Flow for the filter shell:
//! 1. [`extract_bearer`] pulls the one credential out of the request.
//! 2. [`TokenVerifier::authenticate`] answers from the [`TokenCache`], or
//!    verifies a JWT against the issuer's keys (through a
//!    [`SignatureVerifier`]: pure Rust or Envoy's `verify_signature`), or asks
//!    for an RFC 7662 introspection call ([`Authenticated::Introspect`]).
//! 3. Key sets are fetched by the shell when [`TokenVerifier::fetches_due`]
//!    says so and handed back with [`TokenVerifier::on_jwks_response`].

pub mod alg;
pub mod bearer;
pub mod cache;
pub mod host_crypto;
pub mod introspection;
pub mod jose;
pub mod keys;
pub mod service;
pub mod verify;

pub use alg::{JwsAlgorithm, PublicKey, RustCryptoVerifier, SignatureVerifier, VerifierError};
pub use bearer::{extract_bearer, BearerToken, TokenLocation};
pub use cache::{CacheHit, CacheKey, TokenCache};
pub use host_crypto::HostAssistedVerifier;
pub use introspection::IntrospectionRequest;
pub use jose::TimeClaims;
pub use keys::{
    decode_shared_jwks, encode_shared_jwks, FetchReason, Jwk, JwksUpdate, KeySet, KeyStore,
    SkippedKey,
};
pub use service::{CallPurpose, OutboundCall, TokenService, TokenStep};
pub use verify::{Authenticated, KeyFetch, TokenSource, TokenVerifier, VerifiedToken};

use crate::config::{Config, ConfigError};
use crate::decision::{Decision, Reason};
use serde::Deserialize;
use std::fmt;

/// Why a token was refused. `description` is safe to show to the client (it
/// never contains token contents) and ends up in `error_description`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    /// `InvalidToken`, `KeysUnavailable`, `TokenInactive`,
    /// `IntrospectionUnavailable`, `InvalidRequest` or `MultipleCredentials`.
    pub reason: Reason,
    pub description: String,
    /// `Some(issuer index)`: fetching that issuer's keys now (see
    /// [`TokenVerifier::fetches_due`]) may make a retry succeed (unknown `kid`
    /// or keys not loaded yet). The shell may pause the request, fetch, and
    /// retry once; or simply deny.
    pub refetch_keys: Option<usize>,
}

impl TokenError {
    pub fn new(reason: Reason, description: impl Into<String>) -> Self {
        TokenError {
            reason,
            description: description.into(),
            refetch_keys: None,
        }
    }

    /// `401 invalid_token`.
    pub fn invalid(description: impl Into<String>) -> Self {
        TokenError::new(Reason::InvalidToken, description)
    }

    /// The denial the engine returns.
    pub fn into_decision(self) -> Decision {
        Decision::deny(self.reason, self.description)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.description)
    }
}

impl std::error::Error for TokenError {}

impl From<TokenError> for Decision {
    fn from(e: TokenError) -> Decision {
        e.into_decision()
    }
}

/// RFC 7662 token introspection for opaque tokens (`issuers[].introspection`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntrospectionConfig {
    /// Envoy cluster that routes to the authorization server. Required.
    pub cluster: String,
    /// Path of the introspection endpoint, e.g. `/oauth2/introspect`. Required.
    pub path: String,
    /// `:authority` sent with the call. Default: the cluster name.
    pub authority: Option<String>,
    /// OAuth client id used for HTTP Basic client authentication. Required.
    pub client_id: String,
    /// OAuth client secret for HTTP Basic client authentication. Required.
    pub client_secret: String,
    /// Longest time an introspection answer is cached (seconds); the token's
    /// `exp` shortens it. Default 60; 0 = never cache.
    pub max_cache_seconds: u64,
    /// Timeout of the introspection call (milliseconds). Default 5000.
    pub timeout_ms: u64,
}

impl Default for IntrospectionConfig {
    fn default() -> Self {
        IntrospectionConfig {
            cluster: String::new(),
            path: String::new(),
            authority: None,
            client_id: String::new(),
            client_secret: String::new(),
            max_cache_seconds: 60,
            timeout_ms: 5000,
        }
    }
}

/// One trusted issuer (`issuers[]`). Exactly one key source: `jwks`,
/// `jwks_uri` (+ `jwks_cluster`) or `introspection`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// Exact `iss` value of the tokens (compared byte for byte). Required.
    pub issuer: String,
    /// Accepted `aud` values; the token's `aud` (string or array) must contain
    /// one of them. Default: `[fhir_base_url]`; configuration fails if neither
    /// is set.
    pub audiences: Vec<String>,
    /// Accepted JWS algorithms. Default: all supported asymmetric ones
    /// (RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA).
    /// `none` and HS* are never accepted.
    pub algorithms: Vec<String>,
    /// Inline JWKS (`{"keys": [...]}`), for issuers whose keys rarely change
    /// and for the CLI.
    pub jwks: Option<serde_json::Value>,
    /// URL of the issuer's JWKS (fetched through Envoy via `jwks_cluster`).
    pub jwks_uri: Option<String>,
    /// Envoy cluster that routes to the host of `jwks_uri`. Required with `jwks_uri`.
    pub jwks_cluster: Option<String>,
    /// Refresh period of a fetched JWKS (seconds). Default 300.
    pub jwks_refresh_seconds: u64,
    /// Minimum interval between fetches triggered by an unknown `kid` or a
    /// failed fetch (seconds); bounds refetch storms. Default 30.
    pub jwks_min_refetch_seconds: u64,
    /// Timeout of a JWKS fetch (milliseconds). Default 5000.
    pub jwks_timeout_ms: u64,
    /// Require the JOSE header `typ` to be `at+jwt` (RFC 9068; also
    /// `application/at+jwt`, case-insensitive). Default false.
    pub require_typ_at_jwt: bool,
    /// Refuse tokens whose lifetime (`exp - iat`) exceeds this many seconds;
    /// such tokens must carry `iat`. Default: no limit.
    pub max_lifetime_seconds: Option<u64>,
    /// Verify opaque tokens by RFC 7662 introspection instead of signatures.
    pub introspection: Option<IntrospectionConfig>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            issuer: String::new(),
            audiences: Vec::new(),
            algorithms: Vec::new(),
            jwks: None,
            jwks_uri: None,
            jwks_cluster: None,
            jwks_refresh_seconds: 300,
            jwks_min_refetch_seconds: 30,
            jwks_timeout_ms: 5000,
            require_typ_at_jwt: false,
            max_lifetime_seconds: None,
            introspection: None,
        }
    }
}

impl IssuerConfig {
    /// The audiences tokens must carry: `audiences`, else `[base_url]`.
    pub fn effective_audiences(&self, base_url: Option<&str>) -> Vec<String> {
        if !self.audiences.is_empty() {
            return self.audiences.clone();
        }
        base_url.map(|u| vec![u.to_string()]).unwrap_or_default()
    }

    /// The accepted algorithms (validated names; default all supported).
    pub fn effective_algorithms(&self) -> Vec<JwsAlgorithm> {
        if self.algorithms.is_empty() {
            return JwsAlgorithm::ALL.to_vec();
        }
        self.algorithms
            .iter()
            .filter_map(|a| JwsAlgorithm::from_name(a))
            .collect()
    }

    /// `(authority, path)` for fetching `jwks_uri` through Envoy.
    pub fn jwks_authority_and_path(&self) -> Option<(String, String)> {
        self.jwks_uri.as_deref().and_then(split_url)
    }

    pub fn validate(&self, field: &str, base_url: Option<&str>) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                "must be the exact `iss` value of the tokens, e.g. \"https://auth.example.org\"",
            ));
        }
        let sources = [
            self.jwks.is_some(),
            self.jwks_uri.is_some(),
            self.introspection.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if sources != 1 {
            return Err(ConfigError::new(
                field,
                format!("set exactly one of jwks, jwks_uri or introspection (found {sources})"),
            ));
        }
        if self.jwks_cluster.is_some() && self.jwks_uri.is_none() {
            return Err(ConfigError::new(
                format!("{field}.jwks_cluster"),
                "is only used with jwks_uri; remove it or set jwks_uri",
            ));
        }
        if let Some(jwks) = &self.jwks {
            let set = KeySet::from_value(jwks)
                .map_err(|e| ConfigError::new(format!("{field}.jwks"), e))?;
            if set.keys().is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.jwks"),
                    format!(
                        "contains no usable signing key ({}); supported: RSA (2048-4096 bits), EC P-256/P-384, OKP Ed25519",
                        set.skipped_summary()
                    ),
                ));
            }
        }
        if let Some(uri) = &self.jwks_uri {
            if split_url(uri).is_none() {
                return Err(ConfigError::new(
                    format!("{field}.jwks_uri"),
                    "must be an absolute http(s) URL with a host and path, e.g. \"https://auth.example.org/.well-known/jwks.json\"",
                ));
            }
            match &self.jwks_cluster {
                Some(c) if !c.trim().is_empty() => {}
                _ => return Err(ConfigError::new(
                    format!("{field}.jwks_cluster"),
                    "is required with jwks_uri: name the Envoy cluster that reaches the JWKS host",
                )),
            }
            if self.jwks_refresh_seconds == 0 {
                return Err(ConfigError::new(
                    format!("{field}.jwks_refresh_seconds"),
                    "must be at least 1 (default 300)",
                ));
            }
            if self.jwks_min_refetch_seconds == 0 {
                return Err(ConfigError::new(
                    format!("{field}.jwks_min_refetch_seconds"),
                    "must be at least 1 (default 30); it bounds refetches on unknown kid",
                ));
            }
            if self.jwks_timeout_ms == 0 {
                return Err(ConfigError::new(
                    format!("{field}.jwks_timeout_ms"),
                    "must be at least 1 (default 5000)",
                ));
            }
        }
        if let Some(i) = &self.introspection {
            i.validate(&format!("{field}.introspection"))?;
        }
        let audiences = self.effective_audiences(base_url);
        if audiences.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.audiences"),
                "set the accepted token audiences, or set fhir_base_url (the default audience)",
            ));
        }
        if let Some(pos) = self.audiences.iter().position(|a| a.trim().is_empty()) {
            return Err(ConfigError::new(
                format!("{field}.audiences[{pos}]"),
                "must not be empty",
            ));
        }
        for (pos, name) in self.algorithms.iter().enumerate() {
            if JwsAlgorithm::from_name(name).is_none() {
                let why = if name.eq_ignore_ascii_case("none") {
                    "unsigned tokens are never accepted".to_string()
                } else if name.to_ascii_uppercase().starts_with("HS") {
                    "symmetric (HMAC) algorithms are not supported; use an asymmetric one"
                        .to_string()
                } else {
                    format!("unsupported algorithm {name:?}")
                };
                return Err(ConfigError::new(
                    format!("{field}.algorithms[{pos}]"),
                    format!(
                        "{why}; supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"
                    ),
                ));
            }
        }
        if self.max_lifetime_seconds == Some(0) {
            return Err(ConfigError::new(
                format!("{field}.max_lifetime_seconds"),
                "must be at least 1, or be omitted for no limit",
            ));
        }
        Ok(())
    }
}

impl IntrospectionConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.cluster.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{field}.cluster"),
                "is required: name the Envoy cluster that reaches the authorization server",
            ));
        }
        if !self.path.starts_with('/') {
            return Err(ConfigError::new(
                format!("{field}.path"),
                "must be the introspection endpoint path starting with `/`, e.g. \"/oauth2/introspect\"",
            ));
        }
        if self.client_id.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.client_id"),
                "is required (the filter authenticates to the introspection endpoint with HTTP Basic)",
            ));
        }
        if self.client_secret.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.client_secret"),
                "is required (the filter authenticates to the introspection endpoint with HTTP Basic)",
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::new(
                format!("{field}.timeout_ms"),
                "must be at least 1 (default 5000)",
            ));
        }
        Ok(())
    }
}

/// Checks across issuers: each issuer valid, no `iss` twice, at most one
/// introspection issuer (opaque tokens carry no `iss` to choose by).
pub fn validate_issuers(
    issuers: &[IssuerConfig],
    base_url: Option<&str>,
) -> Result<(), ConfigError> {
    let mut introspection: Option<usize> = None;
    for (i, issuer) in issuers.iter().enumerate() {
        let field = format!("issuers[{i}]");
        issuer.validate(&field, base_url)?;
        if let Some(j) = issuers
            .iter()
            .take(i)
            .position(|other| other.issuer == issuer.issuer)
        {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                format!("duplicates issuers[{j}].issuer; list each issuer once"),
            ));
        }
        if issuer.introspection.is_some() {
            if let Some(j) = introspection {
                return Err(ConfigError::new(
                    format!("{field}.introspection"),
                    format!("issuers[{j}] already uses introspection; at most one issuer may (opaque tokens do not name their issuer)"),
                ));
            }
            introspection = Some(i);
        }
    }
    Ok(())
}

/// Token handling settings (`token`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (seconds). Default 60.
    pub leeway_seconds: u64,
    /// Largest accepted bearer token (bytes); larger ones get `401
    /// invalid_token` without being parsed. Default 16384.
    pub max_bytes: usize,
    /// Accept a token in the `access_token` query parameter (RFC 6750 §2.3;
    /// discouraged: URLs end up in logs). Default false.
    pub allow_query_parameter: bool,
    /// Verified-token cache size per worker (entries); 0 disables the cache.
    /// Default 10000.
    pub cache_max_entries: usize,
    /// Verify RS256/384/512 signatures with the host's `verify_signature`
    /// (Envoy's BoringSSL) when it exists. `false` forces the pure-Rust
    /// verifier for every algorithm (same answers, slower). Default true.
    pub host_crypto: bool,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            leeway_seconds: 60,
            max_bytes: 16384,
            allow_query_parameter: false,
            cache_max_entries: 10000,
            host_crypto: true,
        }
    }
}

impl TokenSettings {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.max_bytes < 64 {
            return Err(ConfigError::new(
                format!("{field}.max_bytes"),
                "must be at least 64 (default 16384)",
            ));
        }
        if self.leeway_seconds > 600 {
            return Err(ConfigError::new(
                format!("{field}.leeway_seconds"),
                "must be at most 600 (default 60); large leeways accept expired tokens",
            ));
        }
        Ok(())
    }
}

/// `https://host[:port]/path?query` → (`host[:port]`, `/path?query`).
fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(pos) => (rest.get(..pos)?, rest.get(pos..)?),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains(['@', ' ', '?', '#']) || path.contains([' ', '#'])
    {
        return None;
    }
    Some((authority.to_string(), path.to_string()))
}

/// CLI: verify `token` against the issuers' inline JWKS (the CLI cannot fetch
/// keys). Returns the verified claims.
#[allow(clippy::result_large_err)] // CLI contract: the denial itself
pub fn verify_with_config(
    config: &Config,
    token: &str,
    now: u64,
) -> Result<serde_json::Value, Decision> {
    verify_offline(config, token, now)
        .map(|v| v.claims)
        .map_err(TokenError::into_decision)
}

fn verify_offline(config: &Config, token: &str, now: u64) -> Result<VerifiedToken, TokenError> {
    let token = token.trim();
    if token.len() > config.token.max_bytes {
        return Err(TokenError::invalid(format!(
            "the token is larger than token.max_bytes ({} bytes)",
            config.token.max_bytes
        )));
    }
    let unverified = jose::peek_issuer(token);
    if let Some(iss) = unverified.as_deref() {
        if let Some((i, issuer)) = config
            .issuers
            .iter()
            .enumerate()
            .find(|(_, c)| c.issuer == iss)
        {
            if issuer.jwks.is_none() {
                let source = if issuer.introspection.is_some() {
                    "introspection"
                } else {
                    "jwks_uri"
                };
                return Err(TokenError::new(
                    Reason::KeysUnavailable,
                    format!(
                        "the CLI only has inline keys: issuers[{i}] ({}) uses {source}; add its keys as `jwks` to verify offline",
                        issuer.issuer
                    ),
                ));
            }
        }
    } else if jose::split_compact(token).is_none() {
        return Err(TokenError::invalid(
            "the token is not a JWT (three base64url parts separated by dots); the CLI cannot introspect opaque tokens",
        ));
    }
    let mut verifier = TokenVerifier::new(config)
        .map_err(|e| TokenError::new(Reason::KeysUnavailable, format!("configuration: {e}")))?;
    verifier.verify_jwt(token, now, &RustCryptoVerifier)
}

/// CLI: decode and verify a token for display. Never returns the signature.
/// `{"header", "claims", "valid", "reason", "description"}`; `header` and
/// `claims` are `null` when they cannot be decoded.
pub fn inspect(config: &Config, token: &str, now: u64) -> serde_json::Value {
    let token = token.trim();
    let (header, claims) = match jose::split_compact(token) {
        Some((h, p, _)) => (
            jose::decode_json_segment(h, "header")
                .map(serde_json::Value::Object)
                .unwrap_or(serde_json::Value::Null),
            jose::decode_json_segment(p, "payload")
                .map(serde_json::Value::Object)
                .unwrap_or(serde_json::Value::Null),
        ),
        None => (serde_json::Value::Null, serde_json::Value::Null),
    };
    let (valid, reason, description) = match verify_offline(config, token, now) {
        Ok(v) => (
            true,
            "valid".to_string(),
            format!(
                "signature ({}) and claims verified with the inline keys of {}",
                v.algorithm.map(|a| a.name()).unwrap_or("-"),
                v.issuer
            ),
        ),
        Err(e) => (false, e.reason.as_str().to_string(), e.description),
    };
    serde_json::json!({
        "header": header,
        "claims": claims,
        "valid": valid,
        "reason": reason,
        "description": description,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_url_cases() {
        for (url, expected) in [
            (
                "https://auth.example.org/jwks",
                Some(("auth.example.org", "/jwks")),
            ),
            (
                "http://127.0.0.1:8080/a/b?x=1",
                Some(("127.0.0.1:8080", "/a/b?x=1")),
            ),
            ("https://auth.example.org", Some(("auth.example.org", "/"))),
            ("ftp://x/y", None),
            ("https:///y", None),
            ("https://user@host/y", None),
        ] {
            assert_eq!(
                split_url(url),
                expected.map(|(a, p)| (a.to_string(), p.to_string())),
                "{url}"
            );
        }
    }
}
