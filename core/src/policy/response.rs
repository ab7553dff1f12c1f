//! Resource-level checks: compartment membership of a resource, granular
//! query matching, and the response obligations.

use super::compartment;
use super::context::is_fhir_id;
use super::settings::DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES;
use crate::decision::Obligation;
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
    } else if allow_bare && is_fhir_id(reference) {
        return Some(reference);
    } else {
        return None;
    };
    let id = match rel.split_once("/_history/") {
        Some((id, _)) => id,
        None => rel,
    };
    is_fhir_id(id).then_some(id)
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
/// CompartmentDefinition semantics: any compartment path refers to it; a
/// Patient is in its own compartment by id).
pub(crate) fn in_patient_compartment(
    resource: &Value,
    patient: &str,
    base_url: Option<&str>,
) -> bool {
    let rtype = resource.get("resourceType").and_then(Value::as_str);
    if rtype == Some("Patient") && resource.get("id").and_then(Value::as_str) == Some(patient) {
        return true;
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

/// The resources a response carries: the resource itself, or the entries of
/// a Bundle (one level of nested Bundles, e.g. batch responses).
fn resources<'v>(v: &'v Value, out: &mut Vec<&'v Value>, depth: u8) {
    if v.get("resourceType").and_then(Value::as_str) == Some("Bundle") && depth < 3 {
        if let Some(entries) = v.get("entry").and_then(Value::as_array) {
            for e in entries {
                if let Some(r) = e.get("resource") {
                    resources(r, out, depth + 1);
                }
            }
        }
    } else {
        out.push(v);
    }
}

/// Check a response body against an obligation. `Err` says which resource
/// failed. OperationOutcome resources always pass.
pub fn check_response(
    obligation: &Obligation,
    response: &Value,
    base_url: Option<&str>,
) -> Result<(), String> {
    let top = response.get("resourceType").and_then(Value::as_str);
    let wanted = match obligation {
        Obligation::CheckResponseCompartment { resource_type, .. }
        | Obligation::CheckResponseGranular { resource_type, .. } => resource_type.as_str(),
    };
    match top {
        None => return Err("the response is not a FHIR resource (no resourceType)".into()),
        Some("Bundle") | Some("OperationOutcome") => {}
        Some(t) if wanted == "*" || t == wanted => {}
        Some(t) => {
            return Err(format!(
                "the response is a {t}, expected {wanted}, a Bundle or an OperationOutcome"
            ))
        }
    }
    let mut rs = Vec::new();
    resources(response, &mut rs, 0);
    for r in rs {
        let Some(rtype) = r.get("resourceType").and_then(Value::as_str) else {
            return Err("a resource in the response has no resourceType".into());
        };
        let label = || {
            format!(
                "{rtype}/{}",
                r.get("id").and_then(Value::as_str).unwrap_or("?")
            )
        };
        if rtype == "OperationOutcome" {
            continue;
        }
        if rtype == "Bundle" {
            return Err("the response nests Bundles too deeply to be checked".into());
        }
        match obligation {
            Obligation::CheckResponseCompartment {
                resource_type,
                patient,
            } => {
                if resource_type == "*" {
                    if compartment::in_compartment(rtype) {
                        if !in_patient_compartment(r, patient, base_url) {
                            return Err(format!(
                                "{} is not in the compartment of Patient/{patient}",
                                label()
                            ));
                        }
                    } else if !DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES.contains(&rtype) {
                        return Err(format!(
                            "{} is not patient data the patient/ scope may reach",
                            label()
                        ));
                    }
                } else if rtype == resource_type && !in_patient_compartment(r, patient, base_url) {
                    return Err(format!(
                        "{} is not in the compartment of Patient/{patient}",
                        label()
                    ));
                }
            }
            Obligation::CheckResponseGranular {
                resource_type,
                queries,
            } => {
                if rtype == resource_type && !queries.iter().any(|q| resource_matches_query(r, q)) {
                    return Err(format!(
                        "{} does not match the granted scope restriction(s) {}",
                        label(),
                        queries.join(" | ")
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const LAB: &str =
        "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

    #[test]
    fn compartment_check() {
        let ob = |patient: &str| Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: patient.into(),
        };
        let obs =
            json!({"resourceType":"Observation","id":"1","subject":{"reference":"Patient/123"}});
        assert_eq!(check_response(&ob("123"), &obs, None), Ok(()));
        assert!(check_response(&ob("9"), &obs, None).is_err());
        let abs = json!({"resourceType":"Observation","id":"1","subject":{"reference":"https://h/fhir/Patient/123"}});
        assert_eq!(
            check_response(&ob("123"), &abs, Some("https://h/fhir")),
            Ok(())
        );
        assert!(check_response(&ob("123"), &abs, Some("https://other/fhir")).is_err());
        let perf = json!({"resourceType":"Observation","id":"1","subject":{"reference":"Group/1"},"performer":[{"reference":"Patient/123"}]});
        assert_eq!(check_response(&ob("123"), &perf, None), Ok(()));
        let none = json!({"resourceType":"Observation","id":"1"});
        assert!(check_response(&ob("123"), &none, None).is_err());
        let oo = json!({"resourceType":"OperationOutcome"});
        assert_eq!(check_response(&ob("123"), &oo, None), Ok(()));
        assert!(check_response(&ob("123"), &json!({}), None).is_err());
        assert!(check_response(
            &ob("123"),
            &json!({"resourceType":"Condition","subject":{"reference":"Patient/123"}}),
            None
        )
        .is_err());
        assert!(check_response(
            &ob("123"),
            &json!({"resourceType":"Bundle","entry":[{"resource":{"id":"x"}}]}),
            None
        )
        .is_err());
        let other_types = json!({"resourceType":"Bundle","entry":[{"resource":obs.clone()},{"resource":{"resourceType":"Medication","id":"m"}}]});
        assert_eq!(check_response(&ob("123"), &other_types, None), Ok(()));
        let bundle = json!({"resourceType":"Bundle","entry":[{"resource":obs},{"resource":{"resourceType":"Observation","id":"2","subject":{"reference":"Patient/7"}}}]});
        assert_eq!(
            check_response(&ob("123"), &bundle, None).unwrap_err(),
            "Observation/2 is not in the compartment of Patient/123"
        );
        let all = Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into(),
        };
        let mixed = json!({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"123"}},{"resource":{"resourceType":"Medication","id":"m"}},{"resource":{"resourceType":"Device","id":"d"}}]});
        assert_eq!(
            check_response(&all, &mixed, None).unwrap_err(),
            "Device/d is not patient data the patient/ scope may reach"
        );
    }

    #[test]
    fn granular_check() {
        let ob = Obligation::CheckResponseGranular {
            resource_type: "Observation".into(),
            queries: vec![LAB.into()],
        };
        let lab = json!({"resourceType":"Observation","id":"1","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]});
        let vit = json!({"resourceType":"Observation","id":"2","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}]});
        assert_eq!(check_response(&ob, &lab, None), Ok(()));
        assert!(check_response(&ob, &vit, None).is_err());
        assert!(resource_matches_query(&lab, "category=laboratory"));
        assert!(!resource_matches_query(&lab, "category=x|laboratory"));
        assert!(resource_matches_query(
            &json!({"clinicalStatus":{"coding":[{"code":"active"}]}}),
            "clinical-status=active"
        ));
        assert!(resource_matches_query(
            &json!({"status":"final"}),
            "status=final"
        ));
    }

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
