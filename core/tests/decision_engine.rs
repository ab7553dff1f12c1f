//! The letter matrix end to end through `engine::decide_claims` (classifier +
//! claims + policy) with raw HTTP requests: every interaction kind against
//! every single-letter scope, generated. The hand-written request→decision
//! rows are the decision corpus, `tests/corpus/` (docs/decision-corpus.md).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::RequestParts;
use serde_json::json;

/// A request of one interaction kind, the type and letter it needs, and
/// whether a patient/ scope with patient 123 may make it.
struct LetterCase {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    content_type: &'static str,
    resource_type: &'static str,
    letter: &'static str,
    patient_ok: bool,
}

fn letter_case(
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    content_type: &'static str,
    resource_type: &'static str,
    letter: &'static str,
    patient_ok: bool,
) -> LetterCase {
    LetterCase {
        method,
        path,
        body,
        content_type,
        resource_type,
        letter,
        patient_ok,
    }
}

/// Every interaction kind over HTTP against single-letter scopes in each
/// context: allowed exactly when the letter (and, for patient/, the
/// compartment rule) is met; 403 rows name the scope that would suffice.
#[test]
#[rustfmt::skip]
fn engine_letter_matrix() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap();
    let obs = r#"{"resourceType":"Observation","id":"1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/123"}}"#;
    let patch = r#"[{"op":"replace","path":"/status","value":"final"}]"#;
    let cases = vec![
        letter_case("GET", "/fhir/Observation/1", None, "", "Observation", "r", true),
        letter_case("GET", "/fhir/Observation/1/_history/2", None, "", "Observation", "r", true),
        letter_case("GET", "/fhir/Observation/1/_history", None, "", "Observation", "r", true),
        letter_case("GET", "/fhir/Observation/_history", None, "", "Observation", "s", false),
        letter_case("GET", "/fhir/Observation?patient=123", None, "", "Observation", "s", true),
        // narrowed (patient=Patient/123 added)
        letter_case("GET", "/fhir/Observation?code=x", None, "", "Observation", "s", true),
        letter_case("GET", "/fhir/Observation?patient=9", None, "", "Observation", "s", false),
        letter_case("GET", "/fhir/Patient/123/Observation", None, "", "Observation", "s", true),
        letter_case("POST", "/fhir/Observation", Some(obs), "application/fhir+json", "Observation", "c", true),
        letter_case("PUT", "/fhir/Observation/1", Some(obs), "application/fhir+json", "Observation", "u", true),
        // Patch and delete by id: allowed with the write pre-check (patient_update_by_id = check_stored).
        letter_case("PATCH", "/fhir/Observation/1", Some(patch), "application/json-patch+json", "Observation", "u", true),
        letter_case("DELETE", "/fhir/Observation/1", None, "", "Observation", "d", true),
        letter_case("GET", "/fhir/Patient/123", None, "", "Patient", "r", true),
        letter_case("GET", "/fhir/Patient/9", None, "", "Patient", "r", false),
        letter_case("GET", "/fhir/Patient?_id=123", None, "", "Patient", "s", true),
        letter_case("GET", "/fhir/Patient?name=x", None, "", "Patient", "s", true),
        letter_case("GET", "/fhir/Patient?_id=9", None, "", "Patient", "s", false),
        letter_case("DELETE", "/fhir/Patient/123", None, "", "Patient", "d", true),
        letter_case("GET", "/fhir/Medication/m1", None, "", "Medication", "r", true),
        letter_case("GET", "/fhir/Medication?code=x", None, "", "Medication", "s", true),
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    for c in &cases {
        let LetterCase {
            method,
            path,
            body,
            content_type: ct,
            resource_type: rtype,
            letter: need,
            patient_ok,
        } = c;
        let headers = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type".to_string(), ct.to_string())]
        };
        let req = RequestParts {
            method,
            path,
            headers: headers.into(),
            body: body.map(str::as_bytes),
        };
        for ctx in ["patient", "user", "system"] {
            for letter in ["c", "r", "u", "d", "s"] {
                for scope_type in [*rtype, "*", "Condition"] {
                    n += 1;
                    let scope = format!("{ctx}/{scope_type}.{letter}");
                    let claims = json!({"scope": scope, "patient": "123"});
                    let d = decide_claims(&config, &req, Some(&claims));
                    let granted = letter == *need && scope_type != "Condition";
                    let (want_status, want_reason) = match (granted, ctx) {
                        (false, _) => (403, "insufficient_scope"),
                        (true, "patient") if !patient_ok => (403, "patient_compartment_violation"),
                        (true, _) => (200, "allowed"),
                    };
                    let want_required = vec![format!("{ctx}/{rtype}.{need}")];
                    if d.status != want_status
                        || d.reason.as_str() != want_reason
                        || (want_status == 403 && d.required_scopes != want_required)
                    {
                        failures.push(format!(
                            "{method} {path} with {scope}: want {want_status} {want_reason} {want_required:?}, got {} {} {:?}: {}",
                            d.status, d.reason.as_str(), d.required_scopes, d.message
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(n, 20 * 3 * 5 * 3);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
