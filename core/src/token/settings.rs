//! `issuers[]` and `token`: the trusted issuers and how tokens are handled.

use super::alg::JwsAlgorithm;
use super::binding::settings::{CertificateBinding, DpopConfig, DpopMode};
use super::keys::KeySet;
use crate::config_error::ConfigError;
use crate::secret::{SecretLoader, SecretSetting};
use crate::url::HttpUrl;
use serde::Deserialize;

/// Everything token verification reads from the configuration: the trusted
/// issuers, the `token` settings and the FHIR base URL (the default audience).
/// Built by `Config::trust`.
#[derive(Debug, Clone, Copy)]
pub struct TrustConfig<'a> {
    pub issuers: &'a [IssuerConfig],
    pub settings: &'a TokenSettings,
    /// `fhir_base_url`: the audience tokens must carry when an issuer names none.
    pub base_url: Option<&'a str>,
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
    /// OAuth client secret for HTTP Basic client authentication: a
    /// reference (`{"env": "NAME"}`, `{"file": "/path"}`; see
    /// [`crate::secret`]). Required.
    pub client_secret: SecretSetting,
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
            client_secret: SecretSetting::default(),
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
    /// DPoP (RFC 9449): off (default), accepted or required, and how proofs
    /// are checked.
    pub dpop: DpopConfig,
    /// Certificate-bound tokens (RFC 8705): off, when_bound (default) or required.
    pub certificate_binding: CertificateBinding,
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
            dpop: DpopConfig::default(),
            certificate_binding: CertificateBinding::default(),
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
        super::alg::configured_algorithms(&self.algorithms)
    }

    /// `(authority, path)` for fetching `jwks_uri` through Envoy.
    pub fn jwks_authority_and_path(&self) -> Option<(String, String)> {
        let url = HttpUrl::parse(self.jwks_uri.as_deref()?)?;
        Some((url.authority.to_string(), url.path.to_string()))
    }

    pub fn validate(&self, field: &str, base_url: Option<&str>) -> Result<(), ConfigError> {
        if self.issuer.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                "must be the exact `iss` value of the tokens, e.g. \"https://auth.example.org\"",
            ));
        }
        self.validate_key_source(field)?;
        if let Some(i) = &self.introspection {
            i.validate(&format!("{field}.introspection"))?;
        }
        self.validate_audiences(field, base_url)?;
        self.validate_algorithms(field)?;
        self.dpop.validate(&format!("{field}.dpop"))?;
        if self.dpop.mode != DpopMode::Off && base_url.is_none() {
            return Err(ConfigError::new(
                format!("{field}.dpop.mode"),
                "DPoP proofs name the URL the client called (`htu`): set fhir_base_url to the FHIR base URL clients use",
            ));
        }
        if self.max_lifetime_seconds == Some(0) {
            return Err(ConfigError::new(
                format!("{field}.max_lifetime_seconds"),
                "must be at least 1, or be omitted for no limit",
            ));
        }
        Ok(())
    }

    /// Exactly one of `jwks`, `jwks_uri` (with its cluster and timings) or
    /// `introspection`.
    fn validate_key_source(&self, field: &str) -> Result<(), ConfigError> {
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
            self.validate_jwks_uri(field, uri)?;
        }
        Ok(())
    }

    fn validate_jwks_uri(&self, field: &str, uri: &str) -> Result<(), ConfigError> {
        if HttpUrl::parse(uri).is_none() {
            return Err(ConfigError::new(
                format!("{field}.jwks_uri"),
                "must be an absolute http(s) URL with a host and path, e.g. \"https://auth.example.org/.well-known/jwks.json\"",
            ));
        }
        match &self.jwks_cluster {
            Some(c) if !c.trim().is_empty() => {}
            _ => {
                return Err(ConfigError::new(
                    format!("{field}.jwks_cluster"),
                    "is required with jwks_uri: name the Envoy cluster that reaches the JWKS host",
                ))
            }
        }
        for (name, value, why) in [
            (
                "jwks_refresh_seconds",
                self.jwks_refresh_seconds,
                "must be at least 1 (default 300)",
            ),
            (
                "jwks_min_refetch_seconds",
                self.jwks_min_refetch_seconds,
                "must be at least 1 (default 30); it bounds refetches on unknown kid",
            ),
            (
                "jwks_timeout_ms",
                self.jwks_timeout_ms,
                "must be at least 1 (default 5000)",
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::new(format!("{field}.{name}"), why));
            }
        }
        Ok(())
    }

    fn validate_audiences(&self, field: &str, base_url: Option<&str>) -> Result<(), ConfigError> {
        if self.effective_audiences(base_url).is_empty() {
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
        Ok(())
    }

    fn validate_algorithms(&self, field: &str) -> Result<(), ConfigError> {
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
        if !self.client_secret.is_set() {
            return Err(ConfigError::new(
                format!("{field}.client_secret"),
                r#"is required (the filter authenticates to the introspection endpoint with HTTP Basic), e.g. {"env": "INTROSPECTION_CLIENT_SECRET"}"#,
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

/// Look up the secret of the introspection issuer (after [`validate_issuers`]).
pub fn load_issuer_secrets(
    issuers: &mut [IssuerConfig],
    secrets: &mut SecretLoader<'_>,
) -> Result<(), ConfigError> {
    for (i, issuer) in issuers.iter_mut().enumerate() {
        if let Some(c) = issuer.introspection.as_mut() {
            let field = format!("issuers[{i}].introspection.client_secret");
            c.client_secret.load(&field, secrets)?;
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
