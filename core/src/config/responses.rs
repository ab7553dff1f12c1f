//! `responses`: the deny replies (`WWW-Authenticate` realm, the status of a
//! failed response check).

use crate::config_error::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResponsesConfig {
    /// `realm` in `WWW-Authenticate`.
    pub realm: String,
    /// Status that replaces a response which fails an obligation check
    /// (patient compartment / granular scope): 403 (default) or 404 (hide existence).
    pub obligation_denied_status: u16,
}

impl Default for ResponsesConfig {
    fn default() -> Self {
        ResponsesConfig {
            realm: "fhir".into(),
            obligation_denied_status: 403,
        }
    }
}

impl ResponsesConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.realm.chars().any(|c| c.is_control()) {
            return Err(ConfigError::new(
                format!("{field}.realm"),
                "must not contain control characters",
            ));
        }
        if !matches!(self.obligation_denied_status, 403 | 404) {
            return Err(ConfigError::new(
                format!("{field}.obligation_denied_status"),
                format!("must be 403 or 404 (got {})", self.obligation_denied_status),
            ));
        }
        Ok(())
    }
}
