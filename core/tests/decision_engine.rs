//! Decision corpus driven end to end through `engine::decide` (classifier +
//! claims + policy) with raw HTTP requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::decide;
use fhir_smart_authz_core::fhir::RequestParts;
use serde_json::{json, Value};

const P123: &str = "patient/*.rs patient/Observation.cu";

/// (method, path, body, claims, status, reason, required_scopes)
type Row = (
    &'static str,
    &'static str,
    Option<Value>,
    Option<Value>,
    u16,
    &'static str,
    &'static [&'static str],
);

fn claims(scope: &str, patient: Option<&str>) -> Option<Value> {
    let mut c = json!({"scope": scope, "sub": "u1", "client_id": "app"});
    if let Some(p) = patient {
        c["patient"] = json!(p);
    }
    Some(c)
}

#[test]
fn engine_corpus() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap();
    let obs = |p: &str| json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":p}});
    let rows: Vec<Row> = vec![
        (
            "GET",
            "/fhir/metadata",
            None,
            None,
            200,
            "public_endpoint",
            &[],
        ),
        (
            "GET",
            "/fhir/.well-known/smart-configuration",
            None,
            None,
            200,
            "public_endpoint",
            &[],
        ),
        (
            "GET",
            "/fhir/Patient/123",
            None,
            None,
            401,
            "missing_token",
            &[],
        ),
        (
            "GET",
            "/fhir/Patient/123",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Patient/456",
            None,
            claims(P123, Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/Patient.r"],
        ),
        (
            "GET",
            "/fhir/Patient/123/_history/2",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Patient/123",
            None,
            claims(P123, None),
            403,
            "no_patient_context",
            &["patient/Patient.r"],
        ),
        (
            "GET",
            "/fhir/Observation?patient=123",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?subject=Patient%2F123",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?subject=https://ehr.example.org/fhir/Patient/123",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?patient=123,456",
            None,
            claims(P123, Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/Observation.s"],
        ),
        (
            "GET",
            "/fhir/Observation?code=x",
            None,
            claims(P123, Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/Observation.s"],
        ),
        (
            "DELETE",
            "/fhir/Observation?code=x",
            None,
            claims("patient/Observation.ds", Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/Observation.ds"],
        ),
        (
            "GET",
            "/fhir/Patient/123/Observation",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Patient/456/Observation",
            None,
            claims(P123, Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/Observation.s"],
        ),
        (
            "GET",
            "/fhir/Patient/123/$everything",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Patient/456/$everything",
            None,
            claims(P123, Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/*.rs"],
        ),
        (
            "GET",
            "/fhir/$export",
            None,
            claims("system/*.rs", None),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/$export",
            None,
            claims("user/*.rs", None),
            403,
            "insufficient_scope",
            &["system/*.rs"],
        ),
        (
            "GET",
            "/fhir/$frobnicate",
            None,
            claims("system/*.cruds", None),
            403,
            "operation_not_permitted",
            &[],
        ),
        (
            "POST",
            "/fhir/Observation",
            Some(obs("Patient/123")),
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "POST",
            "/fhir/Observation",
            Some(obs("Patient/456")),
            claims(P123, Some("123")),
            403,
            "patient_compartment_violation",
            &["patient/Observation.c"],
        ),
        (
            "PUT",
            "/fhir/Observation/1",
            Some(
                json!({"resourceType":"Observation","id":"1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/123"}}),
            ),
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "DELETE",
            "/fhir/Observation/1",
            None,
            claims(P123, Some("123")),
            403,
            "insufficient_scope",
            &["patient/Observation.d"],
        ),
        (
            "GET",
            "/fhir/Observation?patient=123&_include=Observation:subject:Patient",
            None,
            claims(P123, Some("123")),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?patient=123&_include=*",
            None,
            claims(P123, Some("123")),
            403,
            "include_not_permitted",
            &["patient/Observation.s"],
        ),
        (
            "GET",
            "/fhir/Observation?patient=123&subject.name=x",
            None,
            claims(P123, Some("123")),
            403,
            "chained_search_not_permitted",
            &["patient/Observation.s"],
        ),
        (
            "GET",
            "/fhir/Observation?code=x",
            None,
            claims("user/Observation.rs", None),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?code=x",
            None,
            Some(json!({"scope": ["user/Observation.rs"]})),
            200,
            "allowed",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?code=x",
            None,
            Some(json!({"scope": 42})),
            403,
            "unsupported_claims",
            &[],
        ),
        (
            "GET",
            "/fhir/metadata",
            None,
            Some(json!({"scope": 42})),
            200,
            "public_endpoint",
            &[],
        ),
        (
            "GET",
            "/fhir/Observation?code=x",
            None,
            claims("user/Condition.rs", None),
            403,
            "insufficient_scope",
            &["user/Observation.s"],
        ),
        (
            "GET",
            "/fhir/observation/1",
            None,
            claims("user/*.rs", None),
            400,
            "invalid_request",
            &[],
        ),
        (
            "POST",
            "/fhir",
            Some(json!({"resourceType":"Bundle","type":"batch","entry":[
            {"request":{"method":"GET","url":"Patient/123"}},
            {"request":{"method":"GET","url":"Patient/456"}},
            {"request":{"method":"GET","url":"Observation?patient=123"}}]})),
            claims(P123, Some("123")),
            403,
            "bundle_entry_denied",
            &["patient/Patient.r"],
        ),
        (
            "GET",
            "/fhir?_getpages=abc",
            None,
            claims("user/Observation.s", None),
            200,
            "allowed",
            &[],
        ),
    ];
    let mut failures = Vec::new();
    for (i, (method, path, body, claims, status, reason, required)) in rows.iter().enumerate() {
        let bytes = body.as_ref().map(|b| b.to_string().into_bytes());
        let headers = if bytes.is_some() {
            vec![(
                "content-type".to_string(),
                "application/fhir+json".to_string(),
            )]
        } else {
            vec![]
        };
        let req = RequestParts {
            method,
            path,
            headers,
            body: bytes.as_deref(),
        };
        let d = decide(&config, &req, claims.as_ref());
        let req_ok = d.is_allow() || d.required_scopes == *required;
        if d.status != *status || d.reason.as_str() != *reason || !req_ok {
            failures.push(format!(
                "row {i} {method} {path}: want {status} {reason} {required:?}, got {} {} {:?}: {}",
                d.status,
                d.reason.as_str(),
                d.required_scopes,
                d.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (method, path, body, content-type, type, letters, allowed under patient/ with patient 123)
type MatrixCase = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

/// Every interaction kind over HTTP against single-letter scopes in each
/// context: allowed exactly when the letter (and, for patient/, the
/// compartment rule) is met; 403 rows name the scope that would suffice.
#[test]
fn engine_letter_matrix() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap();
    let obs = r#"{"resourceType":"Observation","id":"1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/123"}}"#;
    let patch = r#"[{"op":"replace","path":"/status","value":"final"}]"#;
    // (method, path, body, content-type, type, letters, allowed under patient/ with patient 123)
    let cases: &[MatrixCase] = &[
        (
            "GET",
            "/fhir/Observation/1",
            None,
            "",
            "Observation",
            "r",
            true,
        ),
        (
            "GET",
            "/fhir/Observation/1/_history/2",
            None,
            "",
            "Observation",
            "r",
            true,
        ),
        (
            "GET",
            "/fhir/Observation/1/_history",
            None,
            "",
            "Observation",
            "r",
            true,
        ),
        (
            "GET",
            "/fhir/Observation/_history",
            None,
            "",
            "Observation",
            "s",
            false,
        ),
        (
            "GET",
            "/fhir/Observation?patient=123",
            None,
            "",
            "Observation",
            "s",
            true,
        ),
        (
            "GET",
            "/fhir/Observation?code=x",
            None,
            "",
            "Observation",
            "s",
            false,
        ),
        (
            "GET",
            "/fhir/Patient/123/Observation",
            None,
            "",
            "Observation",
            "s",
            true,
        ),
        (
            "POST",
            "/fhir/Observation",
            Some(obs),
            "application/fhir+json",
            "Observation",
            "c",
            true,
        ),
        (
            "PUT",
            "/fhir/Observation/1",
            Some(obs),
            "application/fhir+json",
            "Observation",
            "u",
            true,
        ),
        (
            "PATCH",
            "/fhir/Observation/1",
            Some(patch),
            "application/json-patch+json",
            "Observation",
            "u",
            false,
        ),
        (
            "DELETE",
            "/fhir/Observation/1",
            None,
            "",
            "Observation",
            "d",
            false,
        ),
        ("GET", "/fhir/Patient/123", None, "", "Patient", "r", true),
        ("GET", "/fhir/Patient/9", None, "", "Patient", "r", false),
        (
            "GET",
            "/fhir/Patient?_id=123",
            None,
            "",
            "Patient",
            "s",
            true,
        ),
        (
            "GET",
            "/fhir/Patient?name=x",
            None,
            "",
            "Patient",
            "s",
            false,
        ),
        (
            "DELETE",
            "/fhir/Patient/123",
            None,
            "",
            "Patient",
            "d",
            true,
        ),
        (
            "GET",
            "/fhir/Medication/m1",
            None,
            "",
            "Medication",
            "r",
            true,
        ),
        (
            "GET",
            "/fhir/Medication?code=x",
            None,
            "",
            "Medication",
            "s",
            true,
        ),
    ];
    let mut failures = Vec::new();
    let mut n = 0;
    for (method, path, body, ct, rtype, need, patient_ok) in cases {
        let headers = if ct.is_empty() {
            vec![]
        } else {
            vec![("content-type".to_string(), ct.to_string())]
        };
        let req = RequestParts {
            method,
            path,
            headers,
            body: body.map(str::as_bytes),
        };
        for ctx in ["patient", "user", "system"] {
            for letter in ["c", "r", "u", "d", "s"] {
                for scope_type in [*rtype, "*", "Condition"] {
                    n += 1;
                    let scope = format!("{ctx}/{scope_type}.{letter}");
                    let claims = json!({"scope": scope, "patient": "123"});
                    let d = decide(&config, &req, Some(&claims));
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
    assert_eq!(n, 18 * 3 * 5 * 3);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
