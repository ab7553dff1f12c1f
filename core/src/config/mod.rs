//! Plugin configuration: JSON in Envoy's plugin configuration, parsed with
//! serde (`deny_unknown_fields`) and validated once into [`Config`], which the
//! filter shares via `Rc`. Every error names the field and the fix.

pub mod shell;

use serde::Deserialize;
use std::fmt;

/// A configuration error: the JSON path of the offending field and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the field, e.g. `issuers[0].audiences`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid configuration at `{}`: {}",
            self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Which claims carry scopes and patient context.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimsConfig {
    /// Claim holding the scopes: a space-delimited string or an array of strings.
    pub scope: String,
    /// Claim holding the launch patient id.
    pub patient: String,
    /// Also accept a `fhirUser` claim of the form `Patient/{id}` (relative or
    /// absolute) as the patient context when `patient` is absent.
    pub patient_from_fhir_user: bool,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig {
            scope: "scope".into(),
            patient: "patient".into(),
            patient_from_fhir_user: false,
        }
    }
}

/// The configuration exactly as written (before validation).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Path prefix of the FHIR base on this listener, e.g. `/fhir` or `/fhir/R4`.
    #[serde(default = "default_base_path")]
    pub fhir_base_path: String,
    /// Absolute FHIR base URL as clients see it (`https://host/fhir`). Used to
    /// recognise absolute references and as the default token audience.
    #[serde(default)]
    pub fhir_base_url: Option<String>,
    /// `false` = shadow mode: decide and audit, never deny.
    #[serde(default = "default_true")]
    pub enforce: bool,
    /// Largest request or response body buffered for a decision (bytes).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    #[serde(default)]
    pub claims: ClaimsConfig,
    #[serde(default)]
    pub policy: crate::policy::PolicyConfig,
    /// Trusted token issuers.
    #[serde(default)]
    pub issuers: Vec<crate::token::IssuerConfig>,
    #[serde(default)]
    pub token: crate::token::TokenSettings,
    #[serde(default)]
    pub upstream: shell::UpstreamConfig,
    #[serde(default)]
    pub responses: shell::ResponsesConfig,
    #[serde(default)]
    pub discovery: Option<shell::DiscoveryConfig>,
    #[serde(default)]
    pub audit: shell::AuditConfig,
    #[serde(default)]
    pub metrics: shell::MetricsConfig,
}

fn default_base_path() -> String {
    "/fhir".into()
}
fn default_true() -> bool {
    true
}
fn default_max_body() -> usize {
    1024 * 1024
}

/// Validated configuration. Built once per plugin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Normalised base path: starts with `/`, no trailing `/` (empty = root).
    pub base_path: String,
    /// Normalised absolute base URL without trailing `/`.
    pub base_url: Option<String>,
    pub enforce: bool,
    pub max_body_bytes: usize,
    pub claims: ClaimsConfig,
    pub policy: crate::policy::PolicyConfig,
    pub issuers: Vec<crate::token::IssuerConfig>,
    pub token: crate::token::TokenSettings,
    pub upstream: shell::UpstreamConfig,
    pub responses: shell::ResponsesConfig,
    pub discovery: Option<shell::DiscoveryConfig>,
    pub audit: shell::AuditConfig,
    pub metrics: shell::MetricsConfig,
}

impl Config {
    /// Parse and validate JSON configuration bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| {
            ConfigError::new(
                json_error_field(&e.to_string()),
                format!("{e}; see the configuration reference in README.md"),
            )
        })?;
        Config::validate(raw)
    }

    /// An empty JSON object: all defaults.
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::from_json(b"{}")
    }

    pub fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
        let base_path = normalise_base_path(&raw.fhir_base_path)?;
        let base_url = match raw.fhir_base_url.as_deref() {
            None => None,
            Some(u) => Some(normalise_base_url(u)?),
        };
        if raw.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "max_body_bytes",
                "must be greater than 0 (default 1048576)",
            ));
        }
        for (name, value) in [
            ("claims.scope", &raw.claims.scope),
            ("claims.patient", &raw.claims.patient),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::new(name, "must name a claim, e.g. \"scope\""));
            }
        }
        raw.policy.validate("policy")?;
        crate::token::validate_issuers(&raw.issuers, base_url.as_deref())?;
        raw.token.validate("token")?;
        raw.upstream.validate("upstream")?;
        raw.responses.validate("responses")?;
        if let Some(d) = &raw.discovery {
            d.validate("discovery")?;
        }
        raw.audit.validate("audit")?;
        raw.metrics.validate("metrics")?;
        Ok(Config {
            base_path,
            base_url,
            enforce: raw.enforce,
            max_body_bytes: raw.max_body_bytes,
            claims: raw.claims,
            policy: raw.policy,
            issuers: raw.issuers,
            token: raw.token,
            upstream: raw.upstream,
            responses: raw.responses,
            discovery: raw.discovery,
            audit: raw.audit,
            metrics: raw.metrics,
        })
    }
}

fn normalise_base_path(p: &str) -> Result<String, ConfigError> {
    let field = "fhir_base_path";
    if !p.starts_with('/') {
        return Err(ConfigError::new(
            field,
            format!("must start with `/`, e.g. \"/fhir\" (got {p:?})"),
        ));
    }
    if p.contains(['?', '#', '%', ';', '\\']) || p.split('/').skip(1).any(|s| s == "." || s == "..")
    {
        return Err(ConfigError::new(
            field,
            "must be a plain path without `?`, `#`, `%`, `;`, `\\` or dot segments, e.g. \"/fhir/R4\"",
        ));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.contains("//") {
        return Err(ConfigError::new(
            field,
            "must not contain empty segments (`//`)",
        ));
    }
    Ok(trimmed.to_string())
}

fn normalise_base_url(u: &str) -> Result<String, ConfigError> {
    let field = "fhir_base_url";
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"))
        .ok_or_else(|| ConfigError::new(field, format!("must be an absolute http(s) URL such as \"https://fhir.example.org/fhir\" (got {u:?})")))?;
    if rest.is_empty() || rest.starts_with('/') || u.contains(['?', '#', ' ']) {
        return Err(ConfigError::new(
            field,
            "must be an absolute URL with a host and no query or fragment",
        ));
    }
    Ok(u.trim_end_matches('/').to_string())
}

/// Best effort: pull the offending field name out of a serde_json message
/// (`unknown field `x``, `missing field `y``) so the error names it.
fn json_error_field(msg: &str) -> String {
    for marker in ["unknown field `", "missing field `", "duplicate field `"] {
        if let Some(start) = msg.find(marker) {
            let rest = &msg[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                return rest[..end].to_string();
            }
        }
    }
    "(document)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::default_config().unwrap();
        assert_eq!(c.base_path, "/fhir");
        assert!(c.enforce);
        assert_eq!(c.max_body_bytes, 1048576);
        assert_eq!(c.claims.scope, "scope");
    }

    #[test]
    fn unknown_field_is_named() {
        let e = Config::from_json(br#"{"enforse": false}"#).unwrap_err();
        assert_eq!(e.field, "enforse");
        assert!(e.message.contains("unknown field"), "{}", e.message);
    }

    #[test]
    fn base_path_rules() {
        for (input, ok) in [
            ("/fhir", Some("/fhir")),
            ("/fhir/R4/", Some("/fhir/R4")),
            ("/", Some("")),
            ("fhir", None),
            ("/a/../b", None),
            ("/a//b", None),
            ("/a%2Fb", None),
        ] {
            let raw = format!(r#"{{"fhir_base_path": {input:?}}}"#);
            match (Config::from_json(raw.as_bytes()), ok) {
                (Ok(c), Some(expected)) => assert_eq!(c.base_path, expected, "{input}"),
                (Err(e), None) => assert_eq!(e.field, "fhir_base_path"),
                (r, _) => panic!("{input}: unexpected {:?}", r.map(|c| c.base_path)),
            }
        }
    }
}
