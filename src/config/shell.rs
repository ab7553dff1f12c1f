//! Configuration of the proxy-wasm shell: upstream headers, deny responses,
//! the discovery document, the audit record and metrics. Pure data + validation.

use super::ConfigError;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Remove the `Authorization` header before forwarding.
    pub strip_authorization: bool,
}

impl UpstreamConfig {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            realm: "fhir".into(),
        }
    }
}

impl ResponsesConfig {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
}

impl DiscoveryConfig {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {}

impl AuditConfig {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {}

impl MetricsConfig {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
