//! Which token claims carry the scopes and the patient context (`claims` in
//! the plugin configuration). Read by the policy (the authorization context),
//! the token service (which claims a cached token keeps) and the audit record.

use crate::config_error::ConfigError;
use serde::Deserialize;

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

impl ClaimsConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        for (name, value) in [("scope", &self.scope), ("patient", &self.patient)] {
            if value.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("{field}.{name}"),
                    "must name a claim, e.g. \"scope\"",
                ));
            }
        }
        Ok(())
    }
}
