//! What a patient/ scope additionally requires: the request stays inside the
//! context patient's compartment (R4 Patient CompartmentDefinition), or
//! reaches only shared reference types, or is checked on the response.

use super::compartment;
use super::need::{fail, Fail, Met, Rule, WriteTo};
use super::patch::{check_patch, read_patch};
use super::pins::{pins, Pin};
use super::references::{check_written, RefContext};
use super::settings::{PatientUpdateById, PolicyConfig, ReadOutsideRequest};
use crate::decision::{AddedParam, Obligation, Reason};
use crate::fhir::{InteractionKind, SearchParam};
use serde_json::Value;

type RuleResult = Result<Met, Fail>;

/// Whether the need `rule` on `rtype` stays with patient `p` (and what is
/// left to do: a response check, parameters to add). `narrow`: a missing pin
/// may be added to the URL.
pub(super) fn patient_rule(
    policy: &PolicyConfig,
    refs: &RefContext<'_>,
    rtype: &str,
    rule: Rule<'_>,
    p: &str,
    narrow: bool,
) -> RuleResult {
    let base_url = refs.base_url;
    match rule {
        Rule::ReadId(id) => read_by_id(policy, rtype, id, p),
        // `exact` criteria select what a conditional update, patch or delete
        // writes (a conditional delete's `d` rests on them alone).
        Rule::Search(c) if c.exact && !compartment::in_compartment(rtype) => {
            violation(not_written(rtype))
        }
        Rule::Search(c) => search(policy, base_url, rtype, c.params, p, narrow, c.exact),
        Rule::Unpinnable => {
            if policy.is_public_type(rtype) {
                Ok(Met::done())
            } else {
                violation(format!(
                    "this {} interaction cannot be restricted to the context patient",
                    if rtype == "*" { "system-wide" } else { rtype }
                ))
            }
        }
        Rule::Write(..) | Rule::Patch(..) | Rule::Delete(_)
            if !compartment::in_compartment(rtype) =>
        {
            violation(not_written(rtype))
        }
        Rule::Write(resource, to) => write(policy, refs, rtype, resource, to, p),
        Rule::Patch(doc, id) => patch(policy, refs, rtype, doc, id, p),
        Rule::Delete(id) => by_id(policy, rtype, id, p, InteractionKind::Delete),
        Rule::ById(id) => {
            if rtype == "Patient" && id == p {
                Ok(Met::done())
            } else {
                violation(format!(
                    "{rtype}/{id} cannot be shown to belong to Patient/{p} from the request; under patient/ scopes only the patient's own Patient resource is reachable this way"
                ))
            }
        }
        Rule::CompartmentOf(ctype, id, _) => own_compartment(rtype, ctype, id, p),
        Rule::Included => included(policy, rtype, p),
        Rule::Traversed => {
            if compartment::in_compartment(rtype) {
                Ok(Met::done())
            } else {
                outside_compartment(policy, rtype)
            }
        }
        Rule::NoPatient => violation(format!(
            "this interaction on {rtype} is not available under patient/ scopes"
        )),
    }
}

/// `{ctype}/{id}/{rtype}`: only the patient's own compartment. `Patient`
/// itself is refused there: it lists the *other* Patients that link to the
/// patient. Every type (`*`: the `Patient/{id}/*` search, `$everything`,
/// which also returns what the records reference) is checked on the
/// response for the same reason.
fn own_compartment(rtype: &str, ctype: &str, id: &str, p: &str) -> RuleResult {
    if ctype != "Patient" || id != p {
        return violation(format!(
            "{ctype}/{id} is not the context patient's compartment (Patient/{p})"
        ));
    }
    match rtype {
        "Patient" => violation(format!(
            "Patient/{p}/Patient lists the other patients whose records link to Patient/{p}; read Patient/{p} instead"
        )),
        "*" => check_compartment("*", p),
        _ if compartment::in_compartment(rtype) => Ok(Met::done()),
        _ => violation(not_patient_type(rtype)),
    }
}

fn violation(message: String) -> RuleResult {
    Err(fail(Reason::PatientCompartmentViolation, message))
}

fn not_written(rtype: &str) -> String {
    format!("{rtype} is not patient data; patient/ scopes do not write it")
}

fn not_patient_type(rtype: &str) -> String {
    format!(
        "{rtype} is not in the Patient compartment; under patient/ scopes only the patient's own data and the shared reference types this server allows (policy.patient_scope_public_types) are reachable"
    )
}

/// A type outside the Patient compartment: only the shared reference types
/// (`policy.patient_scope_public_types`) are reachable.
fn outside_compartment(policy: &PolicyConfig, rtype: &str) -> RuleResult {
    if policy.is_public_type(rtype) {
        Ok(Met::done())
    } else {
        violation(not_patient_type(rtype))
    }
}

fn check_compartment(rtype: &str, p: &str) -> RuleResult {
    Ok(Met::check(Obligation::CheckResponseCompartment {
        resource_type: rtype.to_string(),
        patient: p.to_string(),
    }))
}

/// Read, vread, instance history by id.
fn read_by_id(policy: &PolicyConfig, rtype: &str, id: &str, p: &str) -> RuleResult {
    if rtype == "Patient" {
        if id == p {
            Ok(Met::done())
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

/// A search (or conditional criteria): pinned to the patient, or (`narrow`)
/// narrowed by adding the type's pin in front of the query. The criteria of
/// a conditional update, patch or delete (`exact`) must pin exactly: a bare
/// id may name a Group too, and a response check would come after the write.
#[allow(clippy::too_many_arguments)]
fn search(
    policy: &PolicyConfig,
    base_url: Option<&str>,
    rtype: &str,
    params: &[SearchParam],
    p: &str,
    narrow: bool,
    exact: bool,
) -> RuleResult {
    if !compartment::in_compartment(rtype) {
        return outside_compartment(policy, rtype);
    }
    match pins(rtype, params, p, base_url)? {
        Pin::Exact => Ok(Met::strict()),
        Pin::BareId if exact => violation(format!(
            "conditional write criteria must pin the patient exactly, e.g. {rtype}?{}=Patient/{p}",
            first_pin(rtype)
        )),
        Pin::BareId => {
            let mut met = check_compartment(rtype, p)?;
            met.narrowing.strict = true;
            Ok(met)
        }
        Pin::No if narrow => match compartment::narrowing_pin(rtype) {
            Some(name) => {
                let value = if name == "_id" {
                    p.to_string()
                } else {
                    format!("Patient/{p}")
                };
                Ok(Met::narrowed(vec![AddedParam::new(name, value)]))
            }
            None => violation(format!(
                "no search parameter can restrict {rtype} to the context patient"
            )),
        },
        Pin::No => violation(format!(
            "a search on {rtype} under a patient/ scope must be restricted to the context patient, e.g. {rtype}?{}={p}{}",
            first_pin(rtype),
            if policy.narrows_patient_searches() {
                ""
            } else {
                " (policy.patient_search = deny: the filter does not add it)"
            }
        )),
    }
}

/// A create or update body, and what it writes to.
fn write(
    policy: &PolicyConfig,
    refs: &RefContext<'_>,
    rtype: &str,
    resource: Option<&Value>,
    to: WriteTo<'_>,
    p: &str,
) -> RuleResult {
    let stored = match to {
        WriteTo::New if rtype == "Patient" => {
            return violation(
                "patient/ scopes do not create Patient resources (the server assigns a new id)"
                    .into(),
            )
        }
        WriteTo::Id(id) => by_id(policy, rtype, id, p, InteractionKind::Update)?,
        _ => Met::done(),
    };
    let Some(r) = resource else {
        return violation(
            "the body cannot be read (missing or XML) to show it is the patient's; send application/fhir+json".into(),
        );
    };
    let body_id = r.get("id").and_then(Value::as_str);
    if to == WriteTo::Match && body_id.is_some() && !(rtype == "Patient" && body_id == Some(p)) {
        return Err(fail(
            Reason::InvalidRequest,
            "a conditional update may not carry a body id (with no match some servers write to that id)",
        ));
    }
    check_written(refs, r, rtype, p)?;
    Ok(stored)
}

/// A patch: what its operations change (see [`check_patch`]), and whose
/// resource it patches (by id; a conditional patch is pinned by its
/// criteria).
fn patch(
    policy: &PolicyConfig,
    refs: &RefContext<'_>,
    rtype: &str,
    doc: Option<&Value>,
    id: Option<&str>,
    p: &str,
) -> RuleResult {
    let Some(ops) = doc.map(read_patch).transpose()?.flatten() else {
        return violation(
            "patient/ scopes patch only with a JSON Patch (application/json-patch+json): XML and FHIRPath Patches cannot be checked".into(),
        );
    };
    check_patch(refs, &ops, rtype, p)?;
    match id {
        Some(id) => by_id(policy, rtype, id, p, InteractionKind::Patch),
        None => Ok(Met::done()),
    }
}

/// An update, patch or delete of `rtype/id`: the patient's own Patient, or
/// (`patient_update_by_id = "check_stored"`) a resource the filter reads
/// before forwarding the write. Updates by id with `check_body` rely on the
/// body rule alone.
fn by_id(
    policy: &PolicyConfig,
    rtype: &str,
    id: &str,
    p: &str,
    interaction: InteractionKind,
) -> RuleResult {
    if rtype == "Patient" {
        return if id == p {
            Ok(Met::done())
        } else {
            violation(format!(
                "Patient/{id} is not the context patient (Patient/{p})"
            ))
        };
    }
    match policy.patient_update_by_id {
        PatientUpdateById::CheckStored => Ok(Met::check(Obligation::CheckStored {
            resource_type: rtype.to_string(),
            id: id.to_string(),
            patient: p.to_string(),
            interaction,
            entry: None,
        })),
        PatientUpdateById::CheckBody if interaction == InteractionKind::Update => {
            Ok(Met::done())
        }
        PatientUpdateById::Deny if interaction == InteractionKind::Update => violation(format!(
            "updating {rtype}/{id} by id under a patient/ scope is refused (policy.patient_update_by_id = deny); use a conditional update pinned to Patient/{p}"
        )),
        _ => violation(format!(
            "{rtype}/{id} cannot be shown to be Patient/{p}'s (policy.patient_update_by_id is not check_stored)"
        )),
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
    compartment::narrowing_pin(rtype).unwrap_or("patient")
}
