//! Plugin configuration: JSON in Envoy's plugin configuration, parsed with
//! serde (`deny_unknown_fields`) and validated once into [`Config`], which the
//! filter shares via `Rc`. Every error names the field and the fix.
//!
//! This module only composes: each section's type and checks live with the
//! module that reads it ([`FhirBase`], [`ClaimsConfig`], [`PolicyConfig`],
//! [`IssuerConfig`]/[`TokenSettings`], [`AuditConfig`]); the sections only the
//! proxy-wasm shell reads (`upstream`, `responses`, `discovery`, `metrics`)
//! live here, since `check-config` validates the whole configuration.

pub mod deployment;
pub mod discovery;
pub mod metrics;
mod object_only;
pub mod protected_resource;
pub mod responses;
pub mod upstream;
pub mod warnings;

pub use crate::config_error::ConfigError;
pub use discovery::DiscoveryConfig;
pub use metrics::MetricsConfig;
pub use responses::ResponsesConfig;
pub use upstream::{Fact, UpstreamConfig};
pub use warnings::ConfigWarning;

use crate::audit::AuditConfig;
use crate::bulk::BulkConfig;
pub use crate::claims::ClaimsConfig;
use crate::fhir::FhirBase;
use crate::json::from_slice_strict_at;
use crate::policy::PolicyConfig;
use crate::secret::{NoSecrets, SecretLoader, SecretSource};
use crate::token::binding::{BindingContext, SenderConstraintConfig};
use crate::token::{
    load_issuer_secrets, validate_issuers, IssuerConfig, TokenSettings, TrustConfig,
};
use serde::{Deserialize, Serialize};
use serde_path_to_error::{Path, Segment};

/// The configuration exactly as written (before validation).
#[derive(Debug, Clone, Deserialize, Serialize)]
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
    pub policy: PolicyConfig,
    /// Trusted token issuers.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    #[serde(default)]
    pub token: TokenSettings,
    /// Sender-constrained tokens: the DPoP replay cache, nonces, client
    /// certificates (the per-issuer settings are in `issuers[]`).
    #[serde(default)]
    pub sender_constraint: SenderConstraintConfig,
    #[serde(default)]
    pub upstream: UpstreamConfig,
    #[serde(default)]
    pub responses: ResponsesConfig,
    #[serde(default)]
    pub discovery: Option<DiscoveryConfig>,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub bulk: BulkConfig,
    /// Accept secrets written in the configuration (plain strings) instead
    /// of references (`{"env": ...}`, `{"file": ...}`). Insecure: Envoy's
    /// `/config_dump` and the Istio `WasmPlugin` show them. Default false.
    #[serde(default)]
    pub allow_insecure_inline_secrets: bool,
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
    /// `fhir_base_path` and `fhir_base_url`, normalised.
    pub base: FhirBase,
    pub enforce: bool,
    pub max_body_bytes: usize,
    pub claims: ClaimsConfig,
    pub policy: PolicyConfig,
    pub issuers: Vec<IssuerConfig>,
    pub token: TokenSettings,
    pub sender_constraint: SenderConstraintConfig,
    pub upstream: UpstreamConfig,
    pub responses: ResponsesConfig,
    pub discovery: Option<DiscoveryConfig>,
    pub audit: AuditConfig,
    pub metrics: MetricsConfig,
    pub bulk: BulkConfig,
    /// The secret settings whose value is written in the configuration
    /// (accepted with `allow_insecure_inline_secrets`), for warnings.
    pub inline_secrets: Vec<String>,
}

impl Config {
    /// Parse and validate a configuration that holds no secret reference
    /// (tests, benchmarks, tools): every `{"env"}`/`{"file"}` reference is
    /// missing. Hosts load with [`Config::from_json_with_secrets`].
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        Config::from_json_with_secrets(bytes, &NoSecrets)
    }

    /// Parse and validate JSON configuration bytes, looking secret
    /// references up in `secrets` (the VM's or the process's environment).
    pub fn from_json_with_secrets(
        bytes: &[u8],
        secrets: &dyn SecretSource,
    ) -> Result<Config, ConfigError> {
        // Read as JSON first (a repeated key is an error, as in request
        // bodies), then as the configuration: serde's errors name the path
        // of the value they are about either way.
        let document =
            from_slice_strict_at(bytes).map_err(|(path, e)| parse_error(dotted(&path), &e))?;
        if !document.is_object() {
            // serde would read a struct from an array too (`[]` = defaults).
            return Err(ConfigError::new(
                "(document)",
                "must be a JSON object (`{}` for all defaults); see the configuration reference (docs/configuration.md)",
            ));
        }
        // Every section must be an object too, at any depth (`ObjectOnly`).
        let raw: RawConfig =
            object_only::deserialize(&document).map_err(|(at, e)| parse_error(at, &e))?;
        Config::validate(raw, secrets)
    }

    /// An empty JSON object: all defaults.
    pub fn default_config() -> Result<Config, ConfigError> {
        Config::from_json(b"{}")
    }

    /// Validate, then load the secret settings from `secrets`.
    pub fn validate(mut raw: RawConfig, secrets: &dyn SecretSource) -> Result<Config, ConfigError> {
        let base = FhirBase::new(&raw.fhir_base_path, raw.fhir_base_url.as_deref())?;
        if raw.max_body_bytes == 0 {
            return Err(ConfigError::new(
                "max_body_bytes",
                "must be greater than 0 (default 1048576)",
            ));
        }
        raw.claims.validate("claims")?;
        raw.policy.validate("policy")?;
        validate_issuers(&raw.issuers, base.url.as_deref())?;
        raw.token.validate("token")?;
        raw.sender_constraint.validate("sender_constraint")?;
        if !raw.sender_constraint.nonce_secret.is_set() {
            if let Some(i) = raw.issuers.iter().position(|i| i.dpop.nonce) {
                return Err(ConfigError::new(
                    format!("issuers[{i}].dpop.nonce"),
                    "server nonces need a key: set sender_constraint.nonce_secret",
                ));
            }
        }
        raw.upstream.validate("upstream")?;
        raw.responses.validate("responses")?;
        if let Some(d) = &raw.discovery {
            d.validate("discovery")?;
        }
        raw.audit.validate("audit")?;
        raw.metrics.validate("metrics")?;
        raw.bulk.validate("bulk")?;
        let mut claims = raw.claims;
        if let Some(l) = &raw.policy.labels {
            claims.also_kept = l.claim_names().map(str::to_string).collect();
        }
        let mut loader = SecretLoader::new(secrets, raw.allow_insecure_inline_secrets);
        load_issuer_secrets(&mut raw.issuers, &mut loader)?;
        raw.sender_constraint
            .load_secrets("sender_constraint", &mut loader)?;
        Ok(Config {
            base,
            enforce: raw.enforce,
            max_body_bytes: raw.max_body_bytes,
            claims,
            policy: raw.policy,
            issuers: raw.issuers,
            token: raw.token,
            sender_constraint: raw.sender_constraint,
            upstream: raw.upstream,
            responses: raw.responses,
            discovery: raw.discovery,
            audit: raw.audit,
            metrics: raw.metrics,
            bulk: raw.bulk,
            inline_secrets: loader.into_inline_fields(),
        })
    }
}

impl Config {
    /// The configuration with every default filled in, as JSON
    /// (`check-config --print-effective`); a configuration the filter reads
    /// exactly as this one. Secrets appear as their references (an inline
    /// value is never printed).
    pub fn effective(&self) -> serde_json::Value {
        let raw = RawConfig {
            // The root is normalised to "" and written as "/".
            fhir_base_path: match self.base.path.as_str() {
                "" => "/".into(),
                path => path.into(),
            },
            fhir_base_url: self.base.url.clone(),
            enforce: self.enforce,
            max_body_bytes: self.max_body_bytes,
            claims: self.claims.clone(),
            policy: self.policy.clone(),
            issuers: self.issuers.clone(),
            token: self.token.clone(),
            upstream: self.upstream.clone(),
            responses: self.responses.clone(),
            discovery: self.discovery.clone(),
            audit: self.audit.clone(),
            metrics: self.metrics.clone(),
            bulk: self.bulk.clone(),
            sender_constraint: self.sender_constraint.clone(),
            // Only a configuration that allowed them holds inline secrets.
            allow_insecure_inline_secrets: !self.inline_secrets.is_empty(),
        };
        // Secrets serialize as their reference, never their value; an unset
        // optional setting is left out (absent reads as unset).
        let mut value = serde_json::to_value(raw).unwrap_or(serde_json::Value::Null);
        drop_nulls(&mut value);
        value
    }

    /// What token verification reads: the issuers, the `token` settings and
    /// the base URL (the default audience).
    pub fn trust(&self) -> TrustConfig<'_> {
        TrustConfig {
            issuers: &self.issuers,
            settings: &self.token,
            base_url: self.base.url.as_deref(),
        }
    }

    /// What the sender-constraint check reads.
    pub fn binding(&self) -> BindingContext<'_> {
        BindingContext {
            issuers: &self.issuers,
            token: &self.token,
            settings: &self.sender_constraint,
            base_url: self.base.url.as_deref(),
            base_path: &self.base.path,
        }
    }
}

/// Remove every `null` member, at any depth.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, m| !m.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// A document serde could not read, named by the path to the value serde
/// failed on (`policy.patient_search`, `issuers[0].algorithms[1]`). A
/// field's own value error (see [`ConfigError::from_field_value_error`]) is
/// already complete; any other keeps serde's message (with the position for
/// JSON syntax and repeated keys) and points to the reference.
fn parse_error(object: Option<String>, e: &serde_json::Error) -> ConfigError {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    if let Some(named) =
        ConfigError::from_field_value_error(text.strip_suffix(&position).unwrap_or(&text))
    {
        return named;
    }
    ConfigError::new(
        error_field(object, &text),
        format!("{text}; see the configuration reference (docs/configuration.md)"),
    )
}

/// The dotted path of the field an error is about. serde reports a missing
/// field or a repeated key against the object holding it, so its name (from
/// the message) is appended; the document itself is `(document)`.
fn error_field(object: Option<String>, msg: &str) -> String {
    for marker in ["missing field `", "duplicate key `"] {
        if let Some(start) = msg.find(marker) {
            let rest = &msg[start + marker.len()..];
            if let Some(end) = rest.find('`') {
                let name = &rest[..end];
                return match object {
                    Some(object) => format!("{object}.{name}"),
                    None => name.to_string(),
                };
            }
        }
    }
    object.unwrap_or_else(|| "(document)".into())
}

/// `a.b[0].c` up to the first segment serde could not name (a key that is
/// not a string, or was not read yet); `None` for the document itself.
fn dotted(path: &Path) -> Option<String> {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => break,
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests;
