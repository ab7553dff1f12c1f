//! Bearer token extraction and validation (pure; the clock and key fetches are
//! injected by the caller).

use crate::config::ConfigError;
use serde::Deserialize;

/// One trusted issuer (`issuers[]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// Exact `iss` value.
    pub issuer: String,
}

impl IssuerConfig {
    pub fn validate(&self, field: &str, _base_url: Option<&str>) -> Result<(), ConfigError> {
        if self.issuer.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.issuer"),
                "must be the exact `iss` value of the tokens",
            ));
        }
        Ok(())
    }
}

/// Token handling settings (`token`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {}

impl TokenSettings {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
