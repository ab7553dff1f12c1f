//! `policy`: the knobs of the decision rules and the operations table.

use super::labels::LabelPolicy;
use crate::config_error::ConfigError;
use crate::fhir::r4::patient_compartment;
use crate::fhir::resource_types::is_resource_type;
use crate::scope::Perms;
use serde::Deserialize;

/// What to do with a read by id of a compartment resource under a patient/
/// scope (the request alone cannot show whose resource it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadOutsideRequest {
    /// Allow with `Obligation::CheckResponseCompartment` (the filter checks the response).
    #[default]
    CheckResponse,
    /// Deny.
    Deny,
}

/// Paging (`_getpages`) under patient/ scopes only: the upstream's paging
/// token cannot be tied to the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PatientPaging {
    /// Allow with an obligation: every resource in the page must be in the
    /// patient's compartment (or of a shared reference type).
    #[default]
    CheckResponse,
    Deny,
}

/// Writes by id (update, patch, delete) of compartment resources other than
/// the patient's own Patient under patient/ scopes: the request names the
/// resource, not whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PatientUpdateById {
    /// Before forwarding, the filter reads the stored resource through
    /// `upstream.cluster` (`Obligation::CheckStored`): allowed only when it
    /// is the patient's (an update also checks the new body; an update of a
    /// resource that does not exist is a create by the body rule).
    #[default]
    CheckStored,
    /// Updates: only the new body is checked (a patient app may overwrite a
    /// resource id that belongs to someone else); patch and delete: only the
    /// patient's own Patient.
    CheckBody,
    /// Refused (use conditional writes pinned to the patient); patch and
    /// delete: only the patient's own Patient.
    Deny,
}

/// Searches under patient/ scopes that are not pinned to the context
/// patient (and, under granular scopes, searches without the scope's
/// parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PatientSearch {
    /// Add the missing pin (or the granular scope's parameter) in front of
    /// the query the server receives: an AND constraint, safe on any server.
    #[default]
    Narrow,
    /// Deny them.
    Deny,
}

/// Levels an operation may be invoked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpLevel {
    System,
    Type,
    Instance,
}

/// Which types an operation's letters are needed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OpTarget {
    /// The type the operation is invoked on (`*` at system level).
    #[default]
    Resource,
    /// Every type in the Patient compartment (`$everything`).
    Compartment,
    /// The types in `_type` (all types when absent) (`$export`).
    TypeParam,
    /// The letters on some type, in one of the allowed contexts: what the
    /// request reaches is not in it (the Bulk Data status of an export).
    AnyType,
    /// No data access (e.g. terminology on shared types): only a valid token.
    None,
}

/// How an operation is treated under patient/ scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OpPatientRule {
    /// Only at instance level on the context patient's own `Patient/{id}`.
    OwnPatient,
    /// Parameters must pin the patient like a search (`$lastn?patient=..`).
    Pinned,
    /// Allowed only when the target types are shared reference types
    /// (`policy.patient_scope_public_types`).
    PublicTypes,
    /// The body must belong to the patient like a create (`$validate`).
    Body,
    /// Never under patient/ scopes.
    #[default]
    Deny,
}

/// One row of the operations table (`policy.operations[]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationRule {
    /// Operation name with `$`, e.g. `$everything`.
    pub name: String,
    /// Levels it may be invoked at.
    pub levels: Vec<OpLevel>,
    /// Types it may be invoked on (type/instance level); empty = any.
    #[serde(default)]
    pub types: Vec<String>,
    /// SMART v2 letters needed on the target types, e.g. `rs`.
    pub letters: String,
    #[serde(default)]
    pub target: OpTarget,
    /// Scope contexts that may authorize it (`patient`, `user`, `system`); empty = all.
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub patient: OpPatientRule,
}

fn op(
    name: &str,
    levels: &[OpLevel],
    types: &[&str],
    letters: &str,
    target: OpTarget,
    contexts: &[&str],
    patient: OpPatientRule,
) -> OperationRule {
    OperationRule {
        name: name.into(),
        levels: levels.to_vec(),
        types: types.iter().map(|s| s.to_string()).collect(),
        letters: letters.into(),
        target,
        contexts: contexts.iter().map(|s| s.to_string()).collect(),
        patient,
    }
}

/// The default operations table.
#[rustfmt::skip]
pub fn default_operations() -> Vec<OperationRule> {
    use OpLevel::*;
    let terminology = ["CodeSystem", "ValueSet", "ConceptMap"];
    vec![
        op("$everything", &[Instance], &["Patient"], "rs", OpTarget::Compartment, &[], OpPatientRule::OwnPatient),
        op("$export", &[System], &[], "rs", OpTarget::TypeParam, &["system"], OpPatientRule::Deny),
        op("$export", &[Type], &["Patient"], "rs", OpTarget::TypeParam, &["system"], OpPatientRule::Deny),
        op("$export", &[Instance], &["Group"], "rs", OpTarget::TypeParam, &["system"], OpPatientRule::Deny),
        op("$export-poll-status", &[System], &[], "rs", OpTarget::AnyType, &["system"], OpPatientRule::Deny),
        op("$validate", &[Type], &[], "c", OpTarget::Resource, &[], OpPatientRule::Body),
        op("$validate", &[Instance], &[], "u", OpTarget::Resource, &[], OpPatientRule::OwnPatient),
        op("$meta", &[Instance], &[], "r", OpTarget::Resource, &[], OpPatientRule::OwnPatient),
        op("$lastn", &[Type], &["Observation"], "s", OpTarget::Resource, &[], OpPatientRule::Pinned),
        // US Core DocumentReference/$docref: the patient's documents, pinned by `patient`.
        op("$docref", &[Type], &["DocumentReference"], "rs", OpTarget::Resource, &[], OpPatientRule::Pinned),
        op("$expand", &[Type, Instance], &["ValueSet"], "r", OpTarget::Resource, &[], OpPatientRule::PublicTypes),
        op("$validate-code", &[Type, Instance], &terminology, "r", OpTarget::Resource, &[], OpPatientRule::PublicTypes),
        op("$lookup", &[Type], &["CodeSystem"], "r", OpTarget::Resource, &[], OpPatientRule::PublicTypes),
        op("$subsumes", &[Type, Instance], &["CodeSystem"], "r", OpTarget::Resource, &[], OpPatientRule::PublicTypes),
        op("$translate", &[Type, Instance], &["ConceptMap"], "r", OpTarget::Resource, &[], OpPatientRule::PublicTypes),
    ]
}

/// Default `policy.patient_scope_public_types`: types that are not about one
/// patient (shared reference/administrative data), readable and searchable
/// under patient/ scopes that name them (`patient/Medication.rs`, `patient/*.rs`).
pub const DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES: &[&str] = &[
    "CodeSystem",
    "ConceptMap",
    "Endpoint",
    "HealthcareService",
    "Location",
    "Medication",
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Questionnaire",
    "StructureDefinition",
    "Substance",
    "ValueSet",
];

/// Policy knobs (`policy` in the plugin configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// `GET [base]/metadata` without a token (default true).
    pub public_capabilities: bool,
    /// `GET [base]/.well-known/smart-configuration` without a token (default true).
    pub public_smart_configuration: bool,
    /// Types outside the Patient compartment that patient/ scopes may read and
    /// search (not writes): see [`DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES`].
    pub patient_scope_public_types: Vec<String>,
    /// Reads by id of compartment resources under patient/ scopes.
    pub read_outside_request: ReadOutsideRequest,
    /// Allow `_include=*` / `_revinclude=*` under patient/ scopes (default false).
    pub allow_wildcard_include: bool,
    /// Allow `_has` under patient/ scopes (default false).
    pub allow_has: bool,
    /// Allow chained parameters under patient/ scopes (default false).
    pub allow_chained: bool,
    /// Unpinned searches under patient/ scopes (and searches without a
    /// granular scope's parameter): narrowed or denied.
    pub patient_search: PatientSearch,
    /// Paging under patient/ scopes only.
    pub patient_paging: PatientPaging,
    /// Updates by id of compartment resources under patient/ scopes.
    pub patient_update_by_id: PatientUpdateById,
    /// The operations table; replaces the default when given.
    pub operations: Vec<OperationRule>,
    /// The security label policy; absent = labels are not looked at.
    pub labels: Option<LabelPolicy>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            public_capabilities: true,
            public_smart_configuration: true,
            patient_scope_public_types: DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            read_outside_request: ReadOutsideRequest::CheckResponse,
            allow_wildcard_include: false,
            allow_has: false,
            allow_chained: false,
            patient_search: PatientSearch::Narrow,
            patient_paging: PatientPaging::CheckResponse,
            patient_update_by_id: PatientUpdateById::CheckStored,
            operations: default_operations(),
            labels: None,
        }
    }
}

impl PolicyConfig {
    pub fn validate(&self, field: &str) -> Result<(), ConfigError> {
        for (i, t) in self.patient_scope_public_types.iter().enumerate() {
            if !is_resource_type(t) {
                return Err(ConfigError::new(
                    format!("{field}.patient_scope_public_types[{i}]"),
                    format!(
                        "{t:?} is not an R4 resource type (case-sensitive, e.g. \"Medication\")"
                    ),
                ));
            }
            // A type compartment.rs links to the patient (Device) may be
            // listed: its resources that name no patient are shared data.
            if patient_compartment(t).is_some() {
                return Err(ConfigError::new(
                    format!("{field}.patient_scope_public_types[{i}]"),
                    format!("{t} is in the Patient compartment; patient/ scopes already reach the patient's own {t} resources, remove it"),
                ));
            }
        }
        for (i, r) in self.operations.iter().enumerate() {
            let f = format!("{field}.operations[{i}]");
            if !r.name.starts_with('$') || r.name.len() < 2 {
                return Err(ConfigError::new(
                    format!("{f}.name"),
                    format!("must be an operation name starting with `$`, e.g. \"$everything\" (got {:?})", r.name),
                ));
            }
            if r.levels.is_empty() {
                return Err(ConfigError::new(
                    format!("{f}.levels"),
                    "must list at least one of \"system\", \"type\", \"instance\"",
                ));
            }
            if let Some(t) = r.types.iter().find(|t| !is_resource_type(t)) {
                return Err(ConfigError::new(
                    format!("{f}.types"),
                    format!("{t:?} is not an R4 resource type (case-sensitive)"),
                ));
            }
            if r.target != OpTarget::None && Perms::parse_any_order(&r.letters).is_none() {
                return Err(ConfigError::new(
                    format!("{f}.letters"),
                    format!(
                        "must be SMART v2 letters from `cruds`, e.g. \"rs\" (got {:?})",
                        r.letters
                    ),
                ));
            }
            if let Some(c) = r
                .contexts
                .iter()
                .find(|c| !matches!(c.as_str(), "patient" | "user" | "system"))
            {
                return Err(ConfigError::new(
                    format!("{f}.contexts"),
                    format!(
                        "{c:?} is not a scope context; use \"patient\", \"user\" or \"system\""
                    ),
                ));
            }
        }
        if let Some(l) = &self.labels {
            l.validate(&format!("{field}.labels"))?;
        }
        Ok(())
    }

    pub(crate) fn is_public_type(&self, t: &str) -> bool {
        self.patient_scope_public_types.iter().any(|p| p == t)
    }

    pub(crate) fn narrows_patient_searches(&self) -> bool {
        self.patient_search == PatientSearch::Narrow
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn validate_names_field() {
        for (json, field) in [
            (
                r#"{"policy":{"patient_scope_public_types":["medication"]}}"#,
                "policy.patient_scope_public_types[0]",
            ),
            (
                r#"{"policy":{"patient_scope_public_types":["Observation"]}}"#,
                "policy.patient_scope_public_types[0]",
            ),
            (
                r#"{"policy":{"operations":[{"name":"everything","levels":["instance"],"letters":"rs"}]}}"#,
                "policy.operations[0].name",
            ),
            (
                r#"{"policy":{"operations":[{"name":"$x","levels":[],"letters":"rs"}]}}"#,
                "policy.operations[0].levels",
            ),
            (
                r#"{"policy":{"operations":[{"name":"$x","levels":["type"],"letters":"rx"}]}}"#,
                "policy.operations[0].letters",
            ),
            (
                r#"{"policy":{"operations":[{"name":"$x","levels":["type"],"letters":"r","contexts":["admin"]}]}}"#,
                "policy.operations[0].contexts",
            ),
            (r#"{"policy":{"allow_hass":true}}"#, "policy.allow_hass"),
        ] {
            let e = Config::from_json(json.as_bytes()).unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
        }
        assert!(Config::from_json(
            br#"{"policy":{"allow_has":true,"read_outside_request":"deny"}}"#
        )
        .is_ok());
        for ok in ["narrow", "deny"] {
            let json = format!(r#"{{"policy":{{"patient_search":"{ok}"}}}}"#);
            assert!(Config::from_json(json.as_bytes()).is_ok(), "{ok}");
        }
        let e = Config::from_json(br#"{"policy":{"patient_search":"narrowed"}}"#).unwrap_err();
        assert!(e.to_string().contains("expected `narrow` or `deny`"), "{e}");
    }
}
