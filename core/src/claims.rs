//! Which token claims carry the scopes and the patient context (`claims` in
//! the plugin configuration). Read by the policy (the authorization context),
//! the token service (which claims a cached token keeps) and the audit record.

use crate::config_error::ConfigError;
use crate::fhir::{is_valid_id, literal};
use serde::Deserialize;
use serde_json::Value;

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
    /// Further claims a cached token keeps (those `policy.labels` reads);
    /// set by the configuration, not written in it.
    #[serde(skip)]
    pub also_kept: Vec<String>,
}

impl Default for ClaimsConfig {
    fn default() -> Self {
        ClaimsConfig {
            scope: "scope".into(),
            patient: "patient".into(),
            patient_from_fhir_user: false,
            also_kept: Vec::new(),
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

    /// The launch patient of verified claims: the `patient` claim (a FHIR
    /// id), else with `patient_from_fhir_user` a `fhirUser` of the form
    /// `Patient/{id}` or `{fhir_base_url}/Patient/{id}` (any absolute base
    /// when no base URL is configured). The one derivation the policy, the
    /// audit record and the forwarded `x-smart-patient` header share. `Err`
    /// names a claim of a shape the filter does not understand.
    pub fn patient(
        &self,
        claims: &Value,
        base_url: Option<&str>,
    ) -> Result<Option<String>, String> {
        let name = self.patient.as_str();
        match claims.get(name) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if is_valid_id(s) => return Ok(Some(s.clone())),
            Some(_) => {
                return Err(format!(
                "claim `{name}` must be a FHIR id string ([A-Za-z0-9-.]{{1,64}}, not `.` or `..`)"
            ))
            }
        }
        if !self.patient_from_fhir_user {
            return Ok(None);
        }
        Ok(match claims.get("fhirUser") {
            Some(Value::String(fu)) => patient_from_fhir_user(fu, base_url),
            _ => None,
        })
    }
}

/// `Patient/{id}` or `{base}/Patient/{id}` by the one reference grammar
/// ([`literal`], no version). Without a configured base URL any absolute
/// `http(s)` URL ending in `/Patient/{id}` is accepted.
fn patient_from_fhir_user(fu: &str, base_url: Option<&str>) -> Option<String> {
    let unversioned = |r: &str| {
        literal(r, base_url)
            .filter(|l| l.resource_type == "Patient" && l.version.is_none())
            .map(|l| l.id.to_string())
    };
    match base_url {
        None if fu.starts_with("http://") || fu.starts_with("https://") => {
            let (prefix, id) = fu.rsplit_once("/Patient/")?;
            let dot_segment = prefix.split('/').any(|s| s == "." || s == "..");
            unversioned(&format!("Patient/{id}")).filter(|_| !dot_segment)
        }
        _ => unversioned(fu),
    }
}
