//! `metrics`: the prefix of the filter's counters and gauge.

use crate::config_error::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Prefix of every metric. Default `fhir_smart_authz`.
    pub prefix: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prefix: "fhir_smart_authz".into(),
        }
    }
}

impl MetricsConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let ok = !self.prefix.is_empty()
            && self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            && !self.prefix.starts_with('.')
            && !self.prefix.ends_with('.');
        if !ok {
            return Err(ConfigError::new(
                format!("{field}.prefix"),
                format!("must be [A-Za-z0-9_.] without leading/trailing `.`, e.g. \"fhir_smart_authz\" (got {:?})", self.prefix),
            ));
        }
        Ok(())
    }
}
