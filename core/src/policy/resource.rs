//! Resource-level checks: whether a reference names the context patient,
//! whether a resource (a body, a response entry) is in the patient's
//! compartment, and whether it matches a granular scope query.

use super::references::compartment_references;
use crate::fhir::is_valid_id;
use crate::scope::QueryParam;
use serde_json::Value;

/// Whether a reference string (`123` only when `allow_bare`, `Patient/123`,
/// `{base}/Patient/123`, optionally `/_history/n`) points at `Patient/{patient}`.
pub(crate) fn refers_to_patient(
    reference: &str,
    patient: &str,
    base_url: Option<&str>,
    allow_bare: bool,
) -> bool {
    patient_ref_id(reference, base_url, allow_bare).is_some_and(|id| id == patient)
}

/// The patient id a reference points at, if it is a Patient reference.
pub(crate) fn patient_ref_id<'r>(
    reference: &'r str,
    base_url: Option<&str>,
    allow_bare: bool,
) -> Option<&'r str> {
    let rel = if let Some(r) = reference.strip_prefix("Patient/") {
        r
    } else if let Some(r) = base_url
        .and_then(|b| reference.strip_prefix(b))
        .and_then(|r| r.strip_prefix("/Patient/"))
    {
        r
    } else if allow_bare && is_valid_id(reference) {
        return Some(reference);
    } else {
        return None;
    };
    let id = match rel.split_once("/_history/") {
        Some((id, _)) => id,
        None => rel,
    };
    is_valid_id(id).then_some(id)
}

/// Whether the resource is in the Patient compartment of `patient` (R4
/// CompartmentDefinition semantics: any compartment path refers to it). A
/// Patient only by its id: R4 also puts the Patients whose `link` names the
/// patient there, but those are other patients' records.
pub(crate) fn in_patient_compartment(
    resource: &Value,
    patient: &str,
    base_url: Option<&str>,
) -> bool {
    let rtype = resource.get("resourceType").and_then(Value::as_str);
    if rtype == Some("Patient") {
        return resource.get("id").and_then(Value::as_str) == Some(patient);
    }
    compartment_references(resource)
        .iter()
        .any(|r| refers_to_patient(r, patient, base_url, false))
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = false;
    for c in name.chars() {
        if c == '-' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether one element value matches a token/reference/string search value.
fn value_matches(v: &Value, want: &str) -> bool {
    match v {
        Value::String(s) => s == want,
        Value::Bool(b) => want == if *b { "true" } else { "false" },
        Value::Array(a) => a.iter().any(|x| value_matches(x, want)),
        Value::Object(o) => {
            if let Some(codings) = o.get("coding") {
                if value_matches(codings, want) {
                    return true;
                }
            }
            if let Some(r) = o.get("reference").and_then(Value::as_str) {
                if r == want {
                    return true;
                }
            }
            if let Some(code) = o.get("code").and_then(Value::as_str) {
                let system = o.get("system").and_then(Value::as_str);
                return match want.split_once('|') {
                    Some(("", c)) => system.is_none() && code == c,
                    Some((s, "")) => system == Some(s),
                    Some((s, c)) => system == Some(s) && code == c,
                    None => code == want,
                };
            }
            false
        }
        _ => false,
    }
}

/// Whether a resource satisfies a granular scope query (`a=b&c=d`, all must
/// hold), read as the scope parser reads it (`+` is a plus sign, as in the
/// search values and the narrowing the request side compares it with). The
/// parameter is looked up as the element of the same (camelCase) name; an
/// absent element does not match (fail closed).
pub fn resource_matches_query(resource: &Value, query: &str) -> bool {
    crate::scope::parse_query(query, query).is_ok_and(|q| resource_matches(resource, &q))
}

/// [`resource_matches_query`] on a scope's parsed query (never empty).
pub(crate) fn resource_matches(resource: &Value, query: &[QueryParam]) -> bool {
    !query.is_empty()
        && query.iter().all(|q| {
            resource
                .get(camel(&q.name))
                .is_some_and(|el| value_matches(el, &q.value))
        })
}
