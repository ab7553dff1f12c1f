//! The response check behind an obligation: every resource the response
//! carries must be the patient's (or match the granted scope query, or be
//! of a type the token may read).

use super::compartment;
use super::references::compartment_references;
use super::resource::{in_patient_compartment, resource_matches_query};
use super::response_types::check_response_types;
use super::settings::PolicyConfig;
use crate::decision::Obligation;
use crate::fhir::literal;
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

fn type_of(r: &Value) -> Option<&str> {
    r.get("resourceType").and_then(Value::as_str)
}

fn label(r: &Value) -> String {
    format!(
        "{}/{}",
        type_of(r).unwrap_or("?"),
        r.get("id").and_then(Value::as_str).unwrap_or("?")
    )
}

/// Check a response body against an obligation. `Err` says which resource
/// failed. OperationOutcome resources always pass. `policy` gives the
/// shared reference types a `*` compartment check lets through.
pub fn check_response(
    policy: &PolicyConfig,
    base_url: Option<&str>,
    obligation: &Obligation,
    response: &Value,
) -> Result<(), String> {
    let wanted = match obligation {
        Obligation::CheckResponseCompartment { resource_type, .. }
        | Obligation::CheckResponseGranular { resource_type, .. } => resource_type.as_str(),
        Obligation::CheckResponseTypes { search, read } => {
            return check_response_types(search, read, response)
        }
        Obligation::CheckResponseTypesAbsent { .. } => "*",
        // Checked before the request is forwarded (`check_stored`); label
        // filtering changes the response (`labels::filter_labels`).
        Obligation::CheckStored { .. } | Obligation::FilterLabels(_) => return Ok(()),
    };
    match type_of(response) {
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
    let own = OwnRecords::new(&rs, obligation, base_url);
    for r in &rs {
        let Some(rtype) = type_of(r) else {
            return Err("a resource in the response has no resourceType".into());
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
                let checked = resource_type == "*" || rtype == resource_type;
                if resource_type == "*"
                    && !compartment::in_compartment(rtype)
                    && !policy.is_public_type(rtype)
                {
                    return Err(format!(
                        "{} is not patient data the patient/ scope may reach",
                        label(r)
                    ));
                }
                // A linked type listed as shared (Device) is shared when it
                // names no patient.
                let shared = policy.is_public_type(rtype) && compartment_references(r).is_empty();
                if checked
                    && compartment::in_compartment(rtype)
                    && !shared
                    && !own.holds(r, patient, base_url)
                {
                    return Err(format!(
                        "{} is not in the compartment of Patient/{patient}",
                        label(r)
                    ));
                }
            }
            Obligation::CheckResponseGranular {
                resource_type,
                queries,
            } => {
                let checked = resource_type == "*" || rtype == resource_type;
                if checked && !queries.iter().any(|q| resource_matches_query(r, q)) {
                    return Err(format!(
                        "{} does not match the granted scope restriction(s) {}",
                        label(r),
                        queries.join(" | ")
                    ));
                }
            }
            Obligation::CheckResponseTypes { .. } => {}
            Obligation::CheckResponseTypesAbsent { resource_types } => {
                if resource_types.iter().any(|t| t == rtype) {
                    return Err(format!(
                        "{} came back through an _include the token may not read {rtype} for",
                        label(r)
                    ));
                }
            }
            Obligation::CheckStored { .. } | Obligation::FilterLabels(_) => {}
        }
    }
    Ok(())
}

/// The patient's own records in one response (`Type/id`), for a compartment
/// check: a Provenance whose every `target` is one of them is the
/// patient's too (R4 puts a Provenance in the compartment only when it
/// targets the Patient itself; US Core clients `_revinclude` the Provenance
/// of the records they read). Sound because the targets are checked in the
/// same response, by their own compartment paths, never by a Provenance.
struct OwnRecords(Vec<String>);

impl OwnRecords {
    fn new(rs: &[&Value], obligation: &Obligation, base_url: Option<&str>) -> OwnRecords {
        let Obligation::CheckResponseCompartment { patient, .. } = obligation else {
            return OwnRecords(Vec::new());
        };
        if !rs.iter().any(|r| type_of(r) == Some("Provenance")) {
            return OwnRecords(Vec::new());
        }
        let own = rs
            .iter()
            .filter(|r| type_of(r) != Some("Provenance"))
            .filter(|r| in_patient_compartment(r, patient, base_url))
            .filter(|r| r.get("id").and_then(Value::as_str).is_some())
            .map(|r| label(r))
            .collect();
        OwnRecords(own)
    }

    /// Whether `r` is the patient's: by its compartment paths, or a
    /// Provenance of the patient's records in this response.
    fn holds(&self, r: &Value, patient: &str, base_url: Option<&str>) -> bool {
        if in_patient_compartment(r, patient, base_url) {
            return true;
        }
        if type_of(r) != Some("Provenance") {
            return false;
        }
        let targets: Vec<Option<&str>> = r
            .get("target")
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .map(|t| t.get("reference").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        !targets.is_empty()
            && targets.iter().all(|t| {
                t.and_then(|t| relative(t, base_url))
                    .is_some_and(|t| self.0.contains(&t))
            })
    }
}

/// `Type/id` of a literal reference (`{base}/Type/id`, `Type/id/_history/n`;
/// the one grammar, [`literal`]); `None` for any other form.
fn relative(reference: &str, base_url: Option<&str>) -> Option<String> {
    literal(reference, base_url).map(|l| format!("{}/{}", l.resource_type, l.id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chk(o: &Obligation, v: &Value, base: Option<&str>) -> Result<(), String> {
        check_response(&PolicyConfig::default(), base, o, v)
    }

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
        assert_eq!(chk(&ob("123"), &obs, None), Ok(()));
        assert!(chk(&ob("9"), &obs, None).is_err());
        let abs = json!({"resourceType":"Observation","id":"1","subject":{"reference":"https://h/fhir/Patient/123"}});
        assert_eq!(chk(&ob("123"), &abs, Some("https://h/fhir")), Ok(()));
        assert!(chk(&ob("123"), &abs, Some("https://other/fhir")).is_err());
        let perf = json!({"resourceType":"Observation","id":"1","subject":{"reference":"Group/1"},"performer":[{"reference":"Patient/123"}]});
        assert_eq!(chk(&ob("123"), &perf, None), Ok(()));
        let none = json!({"resourceType":"Observation","id":"1"});
        assert!(chk(&ob("123"), &none, None).is_err());
        let oo = json!({"resourceType":"OperationOutcome"});
        assert_eq!(chk(&ob("123"), &oo, None), Ok(()));
        assert!(chk(&ob("123"), &json!({}), None).is_err());
        assert!(chk(
            &ob("123"),
            &json!({"resourceType":"Condition","subject":{"reference":"Patient/123"}}),
            None
        )
        .is_err());
        assert!(chk(
            &ob("123"),
            &json!({"resourceType":"Bundle","entry":[{"resource":{"id":"x"}}]}),
            None
        )
        .is_err());
        let other_types = json!({"resourceType":"Bundle","entry":[{"resource":obs.clone()},{"resource":{"resourceType":"Medication","id":"m"}}]});
        assert_eq!(chk(&ob("123"), &other_types, None), Ok(()));
        let bundle = json!({"resourceType":"Bundle","entry":[{"resource":obs},{"resource":{"resourceType":"Observation","id":"2","subject":{"reference":"Patient/7"}}}]});
        assert_eq!(
            chk(&ob("123"), &bundle, None).unwrap_err(),
            "Observation/2 is not in the compartment of Patient/123"
        );
        let all = Obligation::CheckResponseCompartment {
            resource_type: "*".into(),
            patient: "123".into(),
        };
        let mixed = json!({"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Patient","id":"123"}},{"resource":{"resourceType":"Medication","id":"m"}},{"resource":{"resourceType":"Device","id":"d"}}]});
        assert_eq!(
            chk(&all, &mixed, None).unwrap_err(),
            "Device/d is not in the compartment of Patient/123"
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
        assert_eq!(chk(&ob, &lab, None), Ok(()));
        assert!(chk(&ob, &vit, None).is_err());
        // A granular scope on every type (`user/*.rs?category=...`) meeting a
        // `*` need (`_include=*`): every resource is checked.
        let all = Obligation::CheckResponseGranular {
            resource_type: "*".into(),
            queries: vec![LAB.into()],
        };
        let patient = json!({"resourceType":"Patient","id":"p"});
        assert_eq!(
            chk(&all, &bundle(&[lab.clone(), patient]), None).unwrap_err(),
            format!("Patient/p does not match the granted scope restriction(s) {LAB}")
        );
        assert_eq!(chk(&all, &bundle(std::slice::from_ref(&lab)), None), Ok(()));
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
        // One reading of the scope: `+` is a plus sign, as on the request side.
        assert!(resource_matches_query(
            &json!({"code":{"coding":[{"code":"a+b"}]}}),
            "code=a+b"
        ));
        assert!(!resource_matches_query(
            &json!({"code":{"coding":[{"code":"a b"}]}}),
            "code=a+b"
        ));
        assert!(resource_matches_query(
            &json!({"code":{"coding":[{"code":"a b"}]}}),
            "code=a%20b"
        ));
    }

    fn compartment(t: &str) -> Obligation {
        Obligation::CheckResponseCompartment {
            resource_type: t.into(),
            patient: "123".into(),
        }
    }

    fn bundle(resources: &[Value]) -> Value {
        json!({"resourceType": "Bundle", "type": "searchset",
               "entry": resources.iter().map(|r| json!({"resource": r})).collect::<Vec<_>>()})
    }

    fn obs(id: &str, patient: &str) -> Value {
        json!({"resourceType": "Observation", "id": id, "subject": {"reference": format!("Patient/{patient}")}})
    }

    fn prov(id: &str, targets: &[&str]) -> Value {
        json!({"resourceType": "Provenance", "id": id,
               "target": targets.iter().map(|t| json!({"reference": t})).collect::<Vec<_>>()})
    }

    /// A revincluded Provenance is the patient's when every target is one
    /// of the patient's records in the same response.
    #[test]
    fn provenance_of_the_patients_records() {
        let base = Some("https://h/fhir");
        let own = obs("o1", "123");
        let own2 = obs("o2", "123");
        let other = obs("o9", "456");
        for (resources, ok) in [
            (vec![own.clone(), prov("p1", &["Observation/o1"])], true),
            (
                vec![own.clone(), prov("p1", &["Observation/o1/_history/3"])],
                true,
            ),
            (
                vec![own.clone(), prov("p1", &["https://h/fhir/Observation/o1"])],
                true,
            ),
            (
                vec![
                    own.clone(),
                    own2.clone(),
                    prov("p1", &["Observation/o1", "Observation/o2"]),
                ],
                true,
            ),
            (vec![own.clone(), prov("p1", &["Patient/123"])], true),
            // a target outside the response, or another patient's record
            (vec![own.clone(), prov("p1", &["Observation/o2"])], false),
            (
                vec![
                    own.clone(),
                    other.clone(),
                    prov("p1", &["Observation/o1", "Observation/o9"]),
                ],
                false,
            ),
            (
                vec![
                    own.clone(),
                    prov("p1", &["https://evil/fhir/Observation/o1"]),
                ],
                false,
            ),
            (vec![own.clone(), prov("p1", &[])], false),
            (
                vec![
                    own.clone(),
                    json!({"resourceType": "Provenance", "id": "p1"}),
                ],
                false,
            ),
            // a Provenance never vouches for another Provenance
            (
                vec![
                    own.clone(),
                    prov("p1", &["Observation/o1"]),
                    prov("p2", &["Provenance/p1"]),
                ],
                false,
            ),
            // a shared reference type is not a patient's record
            (
                vec![
                    own.clone(),
                    json!({"resourceType": "Medication", "id": "m1"}),
                    prov("p1", &["Medication/m1"]),
                ],
                false,
            ),
        ] {
            for o in [compartment("Provenance"), compartment("*")] {
                let got = chk(&o, &bundle(&resources), base);
                assert_eq!(got.is_ok(), ok, "{o:?} {resources:?}: {got:?}");
            }
        }
    }

    /// Another Patient that links to the patient is not the patient's record.
    #[test]
    fn linked_patients_are_not_the_patients() {
        let linked = json!({"resourceType": "Patient", "id": "456", "link": [{"other": {"reference": "Patient/123"}, "type": "seealso"}]});
        let own = json!({"resourceType": "Patient", "id": "123"});
        assert_eq!(
            chk(&compartment("*"), &bundle(std::slice::from_ref(&own)), None),
            Ok(())
        );
        assert_eq!(
            chk(
                &compartment("*"),
                &bundle(&[own.clone(), linked.clone()]),
                None
            )
            .unwrap_err(),
            "Patient/456 is not in the compartment of Patient/123"
        );
        assert!(chk(&compartment("Patient"), &linked, None).is_err());
    }

    /// The `*` check lets through the configured shared types, not the defaults.
    #[test]
    fn wildcard_check_uses_the_configured_public_types() {
        let device = json!({"resourceType": "Device", "id": "d1"});
        let medication = json!({"resourceType": "Medication", "id": "m1"});
        let policy = PolicyConfig {
            patient_scope_public_types: vec!["Device".into()],
            ..PolicyConfig::default()
        };
        let check = |v: &Value| check_response(&policy, None, &compartment("*"), v);
        assert_eq!(check(&bundle(std::slice::from_ref(&device))), Ok(()));
        assert_eq!(
            check(&bundle(std::slice::from_ref(&medication))).unwrap_err(),
            "Medication/m1 is not patient data the patient/ scope may reach"
        );
        assert!(chk(&compartment("*"), &bundle(&[device]), None).is_err());
        assert_eq!(chk(&compartment("*"), &bundle(&[medication]), None), Ok(()));
    }

    #[test]
    fn types_absent() {
        let o = Obligation::CheckResponseTypesAbsent {
            resource_types: vec!["Device".into(), "Group".into()],
        };
        let patient = json!({"resourceType": "Patient", "id": "123"});
        let device = json!({"resourceType": "Device", "id": "d1"});
        assert_eq!(chk(&o, &bundle(&[obs("o1", "9"), patient]), None), Ok(()));
        assert_eq!(
            chk(&o, &bundle(&[obs("o1", "9"), device.clone()]), None).unwrap_err(),
            "Device/d1 came back through an _include the token may not read Device for"
        );
        assert!(chk(&o, &device, None).is_err());
    }
}
