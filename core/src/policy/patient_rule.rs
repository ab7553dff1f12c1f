//! What a patient/ scope additionally requires: the request stays inside the
//! context patient's compartment (R4 Patient CompartmentDefinition), or
//! reaches only shared reference types, or is checked on the response.

use super::compartment;
use super::need::{fail, Fail, Rule};
use super::resource::{body_in_own_compartment, refers_to_patient};
use super::settings::{PatientUpdateById, PolicyConfig, ReadOutsideRequest};
use crate::decision::{Obligation, Reason};
use crate::fhir::SearchParam;
use serde_json::Value;

type RuleResult = Result<Option<Obligation>, Fail>;

/// Whether the need `rule` on `rtype` stays with patient `p` (`Ok(Some)`:
/// only if the response is checked).
pub(super) fn patient_rule(
    policy: &PolicyConfig,
    base_url: Option<&str>,
    rtype: &str,
    rule: Rule<'_>,
    p: &str,
) -> RuleResult {
    match rule {
        Rule::ReadId(id) => read_by_id(policy, rtype, id, p),
        Rule::Search(params) => search(policy, base_url, rtype, params, p),
        Rule::Unpinnable => {
            if policy.is_public_type(rtype) {
                Ok(None)
            } else {
                violation(format!(
                    "this {} interaction cannot be restricted to the context patient",
                    if rtype == "*" { "system-wide" } else { rtype }
                ))
            }
        }
        Rule::Write(resource, id) => write(policy, base_url, rtype, resource, id, p),
        Rule::ById(id) => {
            if rtype == "Patient" && id == p {
                Ok(None)
            } else {
                violation(format!(
                    "{rtype}/{id} cannot be shown to belong to Patient/{p} from the request; under patient/ scopes only the patient's own Patient resource is reachable this way"
                ))
            }
        }
        Rule::CompartmentOf(ctype, id) => {
            if ctype == "Patient" && id == p {
                if rtype == "*" || compartment::in_compartment(rtype) {
                    Ok(None)
                } else {
                    violation(not_patient_type(rtype))
                }
            } else {
                violation(format!(
                    "{ctype}/{id} is not the context patient's compartment (Patient/{p})"
                ))
            }
        }
        Rule::Included => included(policy, rtype, p),
        Rule::NoPatient => violation(format!(
            "this interaction on {rtype} is not available under patient/ scopes"
        )),
    }
}

fn violation(message: String) -> RuleResult {
    Err(fail(Reason::PatientCompartmentViolation, message))
}

fn not_patient_type(rtype: &str) -> String {
    format!(
        "{rtype} is not in the Patient compartment; under patient/ scopes only the patient's own data and the types in policy.patient_scope_public_types are reachable"
    )
}

/// A type outside the Patient compartment: only the shared reference types
/// (`policy.patient_scope_public_types`) are reachable.
fn outside_compartment(policy: &PolicyConfig, rtype: &str) -> RuleResult {
    if policy.is_public_type(rtype) {
        Ok(None)
    } else {
        violation(not_patient_type(rtype))
    }
}

fn check_compartment(rtype: &str, p: &str) -> RuleResult {
    Ok(Some(Obligation::CheckResponseCompartment {
        resource_type: rtype.to_string(),
        patient: p.to_string(),
    }))
}

/// Read, vread, instance history by id.
fn read_by_id(policy: &PolicyConfig, rtype: &str, id: &str, p: &str) -> RuleResult {
    if rtype == "Patient" {
        if id == p {
            Ok(None)
        } else {
            violation(format!(
                "Patient/{id} is not the context patient (Patient/{p})"
            ))
        }
    } else if compartment::in_compartment(rtype) {
        match policy.read_outside_request {
            ReadOutsideRequest::CheckResponse => check_compartment(rtype, p),
            ReadOutsideRequest::Deny => violation(format!(
                "reading {rtype} by id under a patient/ scope is refused (policy.read_outside_request = deny); search with {rtype}?{}={p} instead",
                first_pin(rtype)
            )),
        }
    } else {
        outside_compartment(policy, rtype)
    }
}

/// A search (or conditional criteria): pinned to the patient.
fn search(
    policy: &PolicyConfig,
    base_url: Option<&str>,
    rtype: &str,
    params: &[SearchParam],
    p: &str,
) -> RuleResult {
    if compartment::in_compartment(rtype) {
        match pinned(rtype, params, p, base_url) {
            Pin::Exact => Ok(None),
            Pin::BareId => check_compartment(rtype, p),
            Pin::No => violation(format!(
                "a search on {rtype} under a patient/ scope must be restricted to the context patient, e.g. {rtype}?{}={p} (no other patient in the value)",
                first_pin(rtype)
            )),
        }
    } else {
        outside_compartment(policy, rtype)
    }
}

/// A create or update body (`id` = the URL id of an update).
fn write(
    policy: &PolicyConfig,
    base_url: Option<&str>,
    rtype: &str,
    resource: Option<&Value>,
    id: Option<&str>,
    p: &str,
) -> RuleResult {
    if !compartment::in_compartment(rtype) {
        return violation(format!(
            "{rtype} is not patient data; patient/ scopes do not write it"
        ));
    }
    if rtype == "Patient" {
        match id {
            None => {
                return violation(
                    "patient/ scopes do not create Patient resources (the server assigns a new id)"
                        .into(),
                )
            }
            Some(id) if id != p => {
                return violation(format!(
                    "Patient/{id} is not the context patient (Patient/{p})"
                ))
            }
            Some(_) => {}
        }
    }
    if let Some(id) = id {
        if rtype != "Patient" && policy.patient_update_by_id == PatientUpdateById::Deny {
            return violation(format!(
                "updating {rtype}/{id} by id under a patient/ scope is refused (policy.patient_update_by_id = deny); use a conditional update pinned to Patient/{p}"
            ));
        }
    }
    match resource {
        None => violation(format!(
            "the {rtype} body is missing or unreadable, so it cannot be shown to belong to Patient/{p}"
        )),
        Some(r) => match body_in_own_compartment(r, rtype, p, base_url) {
            Ok(()) => Ok(None),
            Err(m) => violation(m),
        },
    }
}

/// An `_include` target or `_revinclude` source: checked on the response.
fn included(policy: &PolicyConfig, rtype: &str, p: &str) -> RuleResult {
    if rtype == "*" {
        if policy.allow_wildcard_include {
            check_compartment("*", p)
        } else {
            violation(
                "wildcard includes cannot be restricted to the context patient (policy.allow_wildcard_include = false)".into(),
            )
        }
    } else if compartment::in_compartment(rtype) {
        check_compartment(rtype, p)
    } else {
        outside_compartment(policy, rtype)
    }
}

/// The parameter to suggest for pinning a search on `rtype`.
fn first_pin(rtype: &str) -> &'static str {
    if rtype == "Patient" {
        return "_id";
    }
    compartment::params(rtype)
        .and_then(|ps| ps.first())
        .map(|p| p.name)
        .unwrap_or("patient")
}

/// How a search is pinned to the context patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    No,
    /// Only through a bare id on a polymorphic reference parameter: allowed,
    /// with a response check that every result is the patient's.
    BareId,
    Exact,
}

/// Whether a search on `rtype` is pinned to patient `p`: some parameter
/// instance on a compartment parameter (no chain, no modifier other than
/// `:Patient`) has only values referring to `p`.
fn pinned(rtype: &str, params: &[SearchParam], p: &str, base: Option<&str>) -> Pin {
    let mut best = Pin::No;
    for sp in params {
        if sp.values.is_empty() || sp.chain.is_some() {
            continue;
        }
        if rtype == "Patient" && sp.name == "_id" {
            if sp.modifier.is_none() && sp.values.iter().all(|v| v == p) {
                return Pin::Exact;
            }
            continue;
        }
        if !compartment::is_pin_param(rtype, &sp.name)
            || !matches!(sp.modifier.as_deref(), None | Some("Patient"))
            || !sp
                .values
                .iter()
                .all(|v| refers_to_patient(v, p, base, true))
        {
            continue;
        }
        // A bare id on a parameter that may reference other types
        // (`subject=123` also matches `Group/123`) pins only loosely.
        let typed =
            sp.name == "patient" || sp.modifier.is_some() || sp.values.iter().all(|v| v != p);
        if typed {
            return Pin::Exact;
        }
        best = Pin::BareId;
    }
    best
}
