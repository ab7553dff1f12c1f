//! `audit`: whether and how the record is written.

use crate::config_error::{field_value_error, ConfigError};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Write the audit record into filter state (access log). Default true.
    pub enabled: bool,
    /// `source` of the record: the name of this gateway. Default `fhir-smart-authz`.
    pub source: String,
    /// How the record is stored in filter state.
    pub encoding: AuditEncoding,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            source: "fhir-smart-authz".into(),
            encoding: AuditEncoding::Struct,
        }
    }
}

/// `audit.encoding`: how the record is stored in filter state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum AuditEncoding {
    /// `"struct"` (default): a `google.protobuf.Struct` (a Protobuf-typed
    /// property), rendered by the access log's `:TYPED` as a nested object.
    #[default]
    Struct,
    /// `"json"`: JSON text (a String-typed property), rendered by `:PLAIN` as
    /// a string; cheaper.
    Json,
}

impl TryFrom<String> for AuditEncoding {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "struct" => Ok(AuditEncoding::Struct),
            "json" => Ok(AuditEncoding::Json),
            _ => Err(field_value_error(
                "audit.encoding",
                &format!(
                    "must be \"struct\" (nested object, access log `:TYPED`) or \"json\" (JSON text, access log `:PLAIN`) (got {name:?})"
                ),
            )),
        }
    }
}

impl AuditConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        if self.source.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{field}.source"),
                "must name this gateway, e.g. \"fhir-gw-eu1\"",
            ));
        }
        Ok(())
    }
}
