//! `audit`: whether and how the record is written.

use crate::config_error::{field_value_error, ConfigError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
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
            encoding: AuditEncoding::Fields,
        }
    }
}

/// `audit.encoding`: how the record is stored in filter state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(try_from = "String", rename_all(serialize = "lowercase"))]
pub enum AuditEncoding {
    /// `"line"`: JSON text written once, when the request is
    /// logged (`on_log`), with the response code, duration, start time,
    /// method and path added; an access log whose whole line is
    /// `%FILTER_STATE(...:PLAIN)%` then prints one JSON object per request.
    /// The cheapest form for Envoy to render.
    Line,
    /// `"struct"`: a `google.protobuf.Struct` (a Protobuf-typed property)
    /// written at decision time, rendered by the access log's `:TYPED` as a
    /// nested object inside a `json_format`.
    Struct,
    /// `"json"`: JSON text (a String-typed property) written at decision
    /// time, rendered by `:PLAIN` as a string inside a `json_format`.
    Json,
    /// `"fields"`: the record's members without the enclosing braces (JSON
    /// text, a String-typed property), with `method` and `path`, written at
    /// decision time; an access log whose line is
    /// `{"response_code":%RESPONSE_CODE%,"duration_ms":%DURATION%,"start_time":"%START_TIME%",%FILTER_STATE(...:PLAIN)%}`
    /// prints the same object as `"line"` with Envoy supplying the three
    /// log-time facts. Cheaper than `"line"`: no work at log time (no
    /// property reads into the VM); what every example ships, and the
    /// default since 0.3.0 (it was `"line"`: CHANGELOG, docs/upgrading.md).
    #[default]
    Fields,
}

impl AuditEncoding {
    /// The record is JSON text (a String-typed property), not a `Struct`.
    pub fn is_text(self) -> bool {
        matches!(
            self,
            AuditEncoding::Line | AuditEncoding::Json | AuditEncoding::Fields
        )
    }
}

impl TryFrom<String> for AuditEncoding {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "line" => Ok(AuditEncoding::Line),
            "struct" => Ok(AuditEncoding::Struct),
            "json" => Ok(AuditEncoding::Json),
            "fields" => Ok(AuditEncoding::Fields),
            _ => Err(field_value_error(
                "audit.encoding",
                &format!(
                    "must be \"line\" (the whole access-log line, text format `%FILTER_STATE(...:PLAIN)%`), \"fields\" (the record's members, completed by the access log's text format as envoy/envoy.yaml does), \"struct\" (nested object, `:TYPED` in a json_format) or \"json\" (JSON text, `:PLAIN` in a json_format) (got {name:?})"
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
