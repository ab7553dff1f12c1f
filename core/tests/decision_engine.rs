//! Decision corpus driven end to end through `engine::decide` (classifier +
//! claims + policy) with raw HTTP requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::RequestParts;
use serde_json::{json, Value};

const P123: &str = "patient/*.rs patient/Observation.cu";

/// A request, the verified claims (`None`: no token) and the expected
/// status, reason and `required_scopes`.
struct Case {
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    claims: Option<Value>,
    status: u16,
    reason: &'static str,
    required: &'static [&'static str],
}

fn case(
    method: &'static str,
    path: &'static str,
    body: Option<Value>,
    claims: Option<Value>,
    status: u16,
    reason: &'static str,
    required: &'static [&'static str],
) -> Case {
    Case {
        method,
        path,
        body,
        claims,
        status,
        reason,
        required,
    }
}

fn claims(scope: &str, patient: Option<&str>) -> Option<Value> {
    let mut c = json!({"scope": scope, "sub": "u1", "client_id": "app"});
    if let Some(p) = patient {
        c["patient"] = json!(p);
    }
    Some(c)
}

#[test]
#[rustfmt::skip]
fn engine_corpus() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap();
    let obs = |p: &str| json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":p}});
    let rows = vec![
        case("GET", "/fhir/metadata", None, None, 200, "public_endpoint", &[]),
        case("GET", "/fhir/.well-known/smart-configuration", None, None, 200, "public_endpoint", &[]),
        case("GET", "/fhir/Patient/123", None, None, 401, "missing_token", &[]),
        case("GET", "/fhir/Patient/123", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Patient/456", None, claims(P123, Some("123")), 403, "patient_compartment_violation", &["patient/Patient.r"]),
        case("GET", "/fhir/Patient/123/_history/2", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Patient/123", None, claims(P123, None), 403, "no_patient_context", &["patient/Patient.r"]),
        case("GET", "/fhir/Observation?patient=123", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?subject=Patient%2F123", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?subject=https://ehr.example.org/fhir/Patient/123", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?patient=123,456", None, claims(P123, Some("123")), 403, "patient_compartment_violation", &["patient/Observation.s"]),
        case("GET", "/fhir/Observation?code=x", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?patient=456&code=x", None, claims(P123, Some("123")), 403, "patient_compartment_violation", &["patient/Observation.s"]),
        case("DELETE", "/fhir/Observation?code=x", None, claims("patient/Observation.ds", Some("123")), 403, "patient_compartment_violation", &["patient/Observation.ds"]),
        case("GET", "/fhir/Patient/123/Observation", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Patient/456/Observation", None, claims(P123, Some("123")), 403, "patient_compartment_violation", &["patient/Observation.s"]),
        case("GET", "/fhir/Patient/123/$everything", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Patient/456/$everything", None, claims(P123, Some("123")), 403, "patient_compartment_violation", &["patient/*.rs"]),
        case("GET", "/fhir/$export", None, claims("system/*.rs", None), 200, "allowed", &[]),
        case("GET", "/fhir/$export", None, claims("user/*.rs", None), 403, "insufficient_scope", &["system/*.rs"]),
        case("GET", "/fhir/$frobnicate", None, claims("system/*.cruds", None), 403, "operation_not_permitted", &[]),
        case("POST", "/fhir/Observation", Some(obs("Patient/123")), claims(P123, Some("123")), 200, "allowed", &[]),
        case("POST", "/fhir/Observation", Some(obs("Patient/456")), claims(P123, Some("123")), 403, "patient_compartment_violation", &["patient/Observation.c"]),
        case("PUT", "/fhir/Observation/1", Some(json!({"resourceType":"Observation","id":"1","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/123"}})), claims(P123, Some("123")), 200, "allowed", &[]),
        case("DELETE", "/fhir/Observation/1", None, claims(P123, Some("123")), 403, "insufficient_scope", &["patient/Observation.d"]),
        case("GET", "/fhir/Observation?patient=123&_include=Observation:subject:Patient", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?patient=123&_include=*", None, claims(P123, Some("123")), 403, "include_not_permitted", &["patient/Observation.s"]),
        case("GET", "/fhir/Observation?patient=123&subject.name=x", None, claims(P123, Some("123")), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?code=y&subject.name=x", None, claims(P123, Some("123")), 403, "chained_search_not_permitted", &["patient/Observation.s"]),
        case("GET", "/fhir/Observation?code=x", None, claims("user/Observation.rs", None), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?code=x", None, Some(json!({"scope": ["user/Observation.rs"]})), 200, "allowed", &[]),
        case("GET", "/fhir/Observation?code=x", None, Some(json!({"scope": 42})), 403, "unsupported_claims", &[]),
        case("GET", "/fhir/metadata", None, Some(json!({"scope": 42})), 200, "public_endpoint", &[]),
        case("GET", "/fhir/Observation?code=x", None, claims("user/Condition.rs", None), 403, "insufficient_scope", &["user/Observation.s"]),
        case("GET", "/fhir/observation/1", None, claims("user/*.rs", None), 400, "invalid_request", &[]),
        case("POST", "/fhir", Some(json!({"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/123"}}, {"request":{"method":"GET","url":"Patient/456"}}, {"request":{"method":"GET","url":"Observation?patient=123"}}]})), claims(P123, Some("123")), 200, "allowed", &[]),
        case("POST", "/fhir", Some(json!({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient/123"}}, {"request":{"method":"GET","url":"Patient/456"}}]})), claims(P123, Some("123")), 403, "bundle_entry_denied", &["patient/Patient.r"]),
        case("GET", "/fhir?_getpages=abc", None, claims("user/Observation.s", None), 200, "allowed", &[]),
    ];
    let mut failures = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Case {
            method,
            path,
            body,
            claims,
            status,
            reason,
            required,
        } = row;
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
            headers: headers.into(),
            body: bytes.as_deref(),
        };
        let d = decide_claims(&config, &req, claims.as_ref());
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

/// (method, path, content type, body, claims, status, reason, obligation types)
type WriteRow<'a> = (
    &'a str,
    &'a str,
    &'a str,
    String,
    Option<Value>,
    u16,
    &'a str,
    &'a [&'a str],
);

/// Issue 8, the write side, end to end from raw HTTP requests: PATCH
/// documents and their content types, transactions referring to their own
/// Patient entry by `fullUrl`, conditional references, the write pre-check
/// obligation.
#[test]
#[rustfmt::skip]
fn engine_write_hardening() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap();
    const JP: &str = "application/json-patch+json";
    const FJ: &str = "application/fhir+json";
    let tp = claims("patient/Observation.cruds patient/Patient.ru", Some("123"));
    let tu = claims("user/Observation.cruds", None);
    let tx = |entries: Value| json!({"resourceType":"Bundle","type":"transaction","entry":entries}).to_string();
    let own_patient = json!({"resourceType":"Patient","id":"123"});
    let obs_for = |r: &str| json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":r}});
    let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
    let rows: Vec<WriteRow<'_>> = vec![
        ("PATCH", "/fhir/Observation/o1", JP, r#"[{"op":"replace","path":"/status","value":"final"}]"#.into(), tp.clone(), 200, "allowed", &["check_stored"]),
        ("PATCH", "/fhir/Observation/o1", "application/json-patch+json; charset=UTF-8", r#"[{"op":"replace","path":"/status","value":"final"}]"#.into(), tp.clone(), 200, "allowed", &["check_stored"]),
        ("PATCH", "/fhir/Observation/o1", JP, r#"[{"op":"replace","path":"/subject/reference","value":"Patient/456"}]"#.into(), tp.clone(), 403, "patient_compartment_violation", &[]),
        ("PATCH", "/fhir/Observation/o1", "Application/JSON-Patch+json", "[]".into(), tp.clone(), 400, "invalid_request", &[]),
        ("PATCH", "/fhir/Observation/o1", "application/json", "[]".into(), tu.clone(), 400, "invalid_request", &[]),
        ("PATCH", "/fhir/Observation/o1", "application/xml-patch+xml", "<diff/>".into(), tu.clone(), 400, "invalid_request", &[]),
        ("PATCH", "/fhir/Observation/o1", FJ, r#"{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"replace"},{"name":"path","valueString":"Observation.subject"},{"name":"value","valueReference":{"reference":"Patient/456"}}]}]}"#.into(), tp.clone(), 403, "patient_compartment_violation", &[]),
        ("PATCH", "/fhir/Observation?patient=Patient/123&code=x", JP, r#"[{"op":"replace","path":"/status","value":"final"}]"#.into(), tp.clone(), 200, "allowed", &[]),
        ("PATCH", "/fhir/Observation?code=x", JP, r#"[{"op":"replace","path":"/status","value":"final"}]"#.into(), tp.clone(), 403, "patient_compartment_violation", &[]),
        ("PATCH", "/fhir/Patient/123", JP, r#"[{"op":"replace","path":"/active","value":true}]"#.into(), claims("patient/Patient.u", Some("123")), 200, "allowed", &[]),
        ("PUT", "/fhir/Observation/o1", FJ, json!({"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/123"}}).to_string(), tp.clone(), 200, "allowed", &["check_stored"]),
        ("DELETE", "/fhir/Observation/o1", "", String::new(), tp.clone(), 200, "allowed", &["check_stored"]),
        ("PUT", "/fhir/Observation?patient=123&code=x", FJ, json!({"resourceType":"Observation","id":"o456","subject":{"reference":"Patient/123"}}).to_string(), tp.clone(), 400, "invalid_request", &[]),
        ("POST", "/fhir/Observation", FJ, json!({"resourceType":"Observation","subject":{"reference":"Patient?identifier=urn:mrn|456"}}).to_string(), tp.clone(), 403, "patient_compartment_violation", &[]),
        ("POST", "/fhir/Observation", FJ, json!({"resourceType":"Observation","subject":{"reference":"Patient/123"},"basedOn":[{"reference":"ServiceRequest?code=HIV"}]}).to_string(), tu.clone(), 403, "insufficient_scope", &[]),
        ("POST", "/fhir", FJ, tx(json!([
            {"fullUrl":"urn:uuid:a","resource":own_patient,"request":{"method":"PUT","url":"Patient/123"}},
            {"fullUrl":"urn:uuid:b","resource":obs_for("urn:uuid:a"),"request":{"method":"POST","url":"Observation"}}])), claims("patient/Observation.c patient/Patient.u", Some("123")), 200, "allowed", &[]),
        ("POST", "/fhir", FJ, tx(json!([
            {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
            {"resource":obs_for("urn:uuid:a"),"request":{"method":"POST","url":"Observation"}}])), claims("patient/Observation.c user/Patient.c", Some("123")), 403, "bundle_entry_denied", &[]),
        ("POST", "/fhir", FJ, tx(json!([
            {"resource":{"resourceType":"Binary","contentType":JP,"data":b64(r#"[{"op":"replace","path":"/subject/reference","value":"Patient/456"}]"#)},"request":{"method":"PATCH","url":"Observation/o1"}}])), tp.clone(), 403, "bundle_entry_denied", &[]),
        ("POST", "/fhir", FJ, tx(json!([
            {"resource":{"resourceType":"Binary","contentType":JP,"data":b64(r#"[{"op":"replace","path":"/status","value":"final"}]"#)},"request":{"method":"PATCH","url":"Observation/o1"}}])), tp.clone(), 200, "allowed", &["check_stored"]),
        ("POST", "/fhir", FJ, tx(json!([
            {"resource":{"resourceType":"Binary","id":"b","contentType":JP,"data":b64("[]")},"request":{"method":"PUT","url":"Binary/b"}}])), tu.clone(), 400, "invalid_request", &[]),
        // Two entries with one fullUrl: which one a reference names is the server's
        // guess, so it names no known patient.
        ("POST", "/fhir", FJ, tx(json!([
            {"fullUrl":"urn:uuid:a","resource":own_patient,"request":{"method":"PUT","url":"Patient/123"}},
            {"fullUrl":"urn:uuid:a","resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}},
            {"fullUrl":"urn:uuid:b","resource":obs_for("urn:uuid:a"),"request":{"method":"POST","url":"Observation"}}])),
            claims("patient/Observation.c patient/Patient.u user/Patient.c", Some("123")), 403, "bundle_entry_denied", &[]),
        // The issue's letters-split example.
        ("PUT", "/fhir/Observation?_id=o456", FJ, obs_for("Patient/123").to_string(), claims("patient/Observation.u user/Observation.s", Some("123")), 403, "insufficient_scope", &[]),
    ];
    let mut failures = Vec::new();
    for (i, (method, path, ct, body, claims, status, reason, obligations)) in rows.iter().enumerate() {
        let headers = if ct.is_empty() { vec![] } else { vec![("content-type".to_string(), ct.to_string())] };
        let req = RequestParts { method, path, headers: headers.into(), body: Some(body.as_bytes()) };
        let d = decide_claims(&config, &req, claims.as_ref());
        let kinds: Vec<String> = d.obligations.iter().map(|o| serde_json::to_value(o).unwrap()["type"].as_str().unwrap().to_string()).collect();
        if d.status != *status || d.reason.as_str() != *reason || kinds != *obligations {
            failures.push(format!("row {i} {method} {path}: want {status} {reason} {obligations:?}, got {} {} {kinds:?}: {}", d.status, d.reason.as_str(), d.message));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
