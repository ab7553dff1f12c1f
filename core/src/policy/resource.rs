//! Resource-level checks: whether a reference names the context patient,
//! whether a resource (a body, a response entry) is in the patient's
//! compartment, and whether it matches a granular scope query.

use super::references::compartment_references;
use crate::fhir::literal_patient;
use crate::scope::QueryParam;
use serde_json::Value;

/// Whether a literal reference (`Patient/123`, `{base}/Patient/123`,
/// optionally `/_history/n`: the one grammar, [`literal_patient`]) points at
/// `Patient/{patient}`.
pub(crate) fn refers_to_patient(reference: &str, patient: &str, base_url: Option<&str>) -> bool {
    literal_patient(reference, base_url) == Some(patient)
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
        .any(|r| refers_to_patient(r, patient, base_url))
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
