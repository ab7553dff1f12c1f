//! `metrics`: the prefix of the filter's counters and gauge, and the debug
//! switch of the per-phase timing histograms.

use crate::config_error::ConfigError;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Prefix of every metric. Default `fhir_smart_authz`.
    pub prefix: String,
    /// Debug: time the phases of each request inside the filter and record
    /// them as histograms `<prefix>.phase.<name>_us`. Default false (it
    /// costs two clock reads per phase).
    pub phase_timing: bool,
    /// The histogram `<prefix>.decision.latency_us`: µs from the request's
    /// headers to its decision (token verification and calls included).
    /// Default false: its cost (two clock reads and a metric write per
    /// request) was not measured with `make bench`.
    pub decision_latency: bool,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            prefix: "fhir_smart_authz".into(),
            phase_timing: false,
            decision_latency: false,
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
