//! The response check behind an obligation: every resource the response
//! carries must be the patient's (or match the granted scope query).

use super::compartment;
use super::resource::{in_patient_compartment, resource_matches_query};
use super::settings::DEFAULT_PATIENT_SCOPE_PUBLIC_TYPES;
use crate::decision::Obligation;
use serde_json::Value;

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
        // Checked before the request is forwarded (`check_stored`).
        Obligation::CheckStored { .. } => return Ok(()),
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
            Obligation::CheckStored { .. } => {}
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
}
