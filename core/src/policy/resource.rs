//! Resource-level checks: whether a reference names the context patient,
//! whether a resource (a body, a response entry) is in the patient's
//! compartment, and whether it matches a granular scope query.

use super::compartment;
use crate::fhir::is_valid_id;
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

/// Values reached by a dotted element path (arrays are flattened).
fn walk<'v>(v: &'v Value, path: &str, out: &mut Vec<&'v Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(child) = v.get(head) else { return };
    let items: Vec<&Value> = match child {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for it in items {
        match rest {
            Some(r) => walk(it, r, out),
            None => out.push(it),
        }
    }
}

/// All `reference` strings at the compartment paths of the resource's type.
fn compartment_references(resource: &Value) -> Option<Vec<&str>> {
    let rtype = resource.get("resourceType")?.as_str()?;
    let params = compartment::params(rtype)?;
    let mut refs = Vec::new();
    for p in params {
        for path in p.paths {
            let mut vals = Vec::new();
            walk(resource, path, &mut vals);
            refs.extend(
                vals.into_iter()
                    .filter_map(|v| v.get("reference")?.as_str()),
            );
        }
    }
    Some(refs)
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
    compartment_references(resource).is_some_and(|refs| {
        refs.iter()
            .any(|r| refers_to_patient(r, patient, base_url, false))
    })
}

/// For a body written under a patient/ scope: it must refer to the patient
/// through a compartment path and refer to no other patient there. A Patient
/// body must carry the patient's own id.
pub(crate) fn body_in_own_compartment(
    resource: &Value,
    resource_type: &str,
    patient: &str,
    base_url: Option<&str>,
) -> Result<(), String> {
    let rtype = resource.get("resourceType").and_then(Value::as_str);
    if rtype != Some(resource_type) {
        return Err(format!(
            "the body is not a {resource_type} resource (resourceType {:?})",
            rtype.unwrap_or("missing")
        ));
    }
    if resource_type == "Patient" {
        return if resource.get("id").and_then(Value::as_str) == Some(patient) {
            Ok(())
        } else {
            Err(format!(
                "a Patient written under a patient/ scope must have id {patient}"
            ))
        };
    }
    let refs = compartment_references(resource).unwrap_or_default();
    let mut own = false;
    for r in refs {
        match patient_ref_id(r, base_url, false) {
            Some(id) if id == patient => own = true,
            Some(id) => {
                return Err(format!(
                    "the {resource_type} refers to another patient (Patient/{id})"
                ))
            }
            None => {}
        }
    }
    if own {
        Ok(())
    } else {
        Err(format!(
            "the {resource_type} must refer to Patient/{patient} (e.g. in {})",
            compartment::params(resource_type)
                .and_then(|ps| ps.first())
                .and_then(|p| p.paths.first())
                .map(|p| format!("{resource_type}.{p}"))
                .unwrap_or_else(|| "its patient reference".into())
        ))
    }
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
/// hold). The parameter is looked up as the element of the same (camelCase)
/// name; an absent element does not match (fail closed).
pub fn resource_matches_query(resource: &Value, query: &str) -> bool {
    let mut any = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        any = true;
        let Some(el) = resource.get(camel(&name)) else {
            return false;
        };
        if !value_matches(el, &value) {
            return false;
        }
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_rules() {
        let b = |v: Value| body_in_own_compartment(&v, "Observation", "123", None);
        assert_eq!(
            b(json!({"resourceType":"Observation","subject":{"reference":"Patient/123"}})),
            Ok(())
        );
        assert!(
            b(json!({"resourceType":"Observation","subject":{"reference":"Patient/9"}})).is_err()
        );
        assert!(b(json!({"resourceType":"Observation","subject":{"reference":"Patient/9"},"performer":[{"reference":"Patient/123"}]})).is_err());
        assert!(b(json!({"resourceType":"Observation"})).is_err());
        assert!(
            b(json!({"resourceType":"Condition","subject":{"reference":"Patient/123"}})).is_err()
        );
        assert_eq!(
            body_in_own_compartment(
                &json!({"resourceType":"Patient","id":"123"}),
                "Patient",
                "123",
                None
            ),
            Ok(())
        );
        assert!(body_in_own_compartment(
            &json!({"resourceType":"Patient","id":"9"}),
            "Patient",
            "123",
            None
        )
        .is_err());
    }
}
