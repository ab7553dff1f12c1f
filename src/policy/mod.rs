//! Policy: which SMART scope letters on which types an interaction needs, and
//! the patient-compartment rules. Pure; consumes [`crate::fhir::Interaction`].

use crate::config::ConfigError;
use serde::Deserialize;

/// Policy knobs (`policy` in the plugin configuration).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {}

impl PolicyConfig {
    pub fn validate(&self, _field: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
