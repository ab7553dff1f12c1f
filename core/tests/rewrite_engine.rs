//! The rewrite of a narrowed allow, end to end through `engine::decide`:
//! the exact request target the upstream receives (added parameters first),
//! `Prefer: handling=strict`, and the names the audit record shows.
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

const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
const VITAL: &str = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs";
const LAB_ENC: &str =
    "http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory";
const VITAL_ENC: &str =
    "http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Cvital-signs";

/// One request and what the filter sends upstream.
struct Row<'a> {
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a str>,
    scope: &'a str,
    status: u16,
    reason: &'a str,
    /// `(path, prefer, added)`: the rewrite, `None` when the request goes unchanged.
    rewrite: Option<(&'a str, &'a str, &'a [&'a str])>,
}

const FORM: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencoded")];

#[test]
#[rustfmt::skip]
fn rewrites() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap();
    let deny = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir","policy":{"patient_search":"deny"}}"#).unwrap();
    let lab_scope = format!("patient/Observation.rs?category={LAB}");
    let two_scopes = format!("patient/Observation.rs?category={LAB} patient/Observation.rs?category={VITAL}");
    let lab_path = format!("/fhir/Observation?category={LAB_ENC}&patient=123");
    let both_path = format!("/fhir/Observation?category={LAB_ENC}%2C{VITAL_ENC}&patient=123");
    let comp_path = format!("/fhir/Patient/123/Observation?category={LAB_ENC}");
    let comp_given = format!("/fhir/Patient/123/Observation?category={LAB_ENC}");
    let lab_broader = format!("/fhir/Observation?category={LAB_ENC}&patient=123&category=laboratory");
    let strict = "handling=strict";
    let rows = vec![
        // patient pin added in front of the query
        Row { method: "GET", path: "/fhir/Observation?code=8867-4", headers: &[], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=Patient%2F123&code=8867-4", strict, &["patient"])) },
        Row { method: "GET", path: "/fhir/Observation", headers: &[], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=Patient%2F123", strict, &["patient"])) },
        Row { method: "HEAD", path: "/fhir/Patient?name=Alpha", headers: &[], body: None, scope: "patient/Patient.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Patient?_id=123&name=Alpha", strict, &["_id"])) },
        Row { method: "GET", path: "/fhir/Patient?identifier=urn%3Amrn%7Ca&birthdate=1980-01-01", headers: &[], body: None, scope: "patient/Patient.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Patient?_id=123&identifier=urn%3Amrn%7Ca&birthdate=1980-01-01", strict, &["_id"])) },
        Row { method: "GET", path: "/fhir/AdverseEvent?seriousness=x", headers: &[], body: None, scope: "patient/AdverseEvent.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/AdverseEvent?subject=Patient%2F123&seriousness=x", strict, &["subject"])) },
        Row { method: "GET", path: "/fhir?_type=Observation,Condition&code=x", headers: &[], body: None, scope: "patient/*.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir?patient=Patient%2F123&_type=Observation,Condition&code=x", strict, &["patient"])) },
        // the client's Prefer tokens stay, its handling is replaced
        Row { method: "GET", path: "/fhir/Observation?code=x", headers: &[("prefer", "return=representation, handling=lenient")], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=Patient%2F123&code=x", "return=representation, handling=strict", &["patient"])) },
        // POST _search: the pin goes into the URL, the body stays
        Row { method: "POST", path: "/fhir/Observation/_search", headers: FORM, body: Some("code=x"), scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation/_search?patient=Patient%2F123", strict, &["patient"])) },
        Row { method: "POST", path: "/fhir/Observation/_search?_count=10", headers: FORM, body: Some("code=x"), scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation/_search?patient=Patient%2F123&_count=10", strict, &["patient"])) },
        // pinned by the client (in the query or the form body): only strict handling
        Row { method: "GET", path: "/fhir/Observation?patient=123", headers: &[], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=123", strict, &[])) },
        Row { method: "POST", path: "/fhir/Observation/_search", headers: FORM, body: Some("patient=123"), scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation/_search", strict, &[])) },
        // a query pin and a form-body pin that disagree
        Row { method: "POST", path: "/fhir/Observation/_search?patient=123", headers: FORM, body: Some("patient=456"), scope: "patient/Observation.rs", status: 400, reason: "invalid_request", rewrite: None },
        Row { method: "POST", path: "/fhir/Observation/_search", headers: FORM, body: Some("patient=456"), scope: "patient/Observation.rs", status: 403, reason: "patient_compartment_violation", rewrite: None },
        // granular: the scope's parameter, several scopes as one OR value
        Row { method: "GET", path: "/fhir/Observation?patient=123", headers: &[], body: None, scope: &lab_scope, status: 200, reason: "allowed",
              rewrite: Some((&lab_path, strict, &["category"])) },
        Row { method: "GET", path: "/fhir/Observation?patient=123", headers: &[], body: None, scope: &two_scopes, status: 200, reason: "allowed",
              rewrite: Some((&both_path, strict, &["category"])) },
        Row { method: "GET", path: "/fhir/Patient/123/Observation", headers: &[], body: None, scope: &lab_scope, status: 200, reason: "allowed",
              rewrite: Some((&comp_path, strict, &["category"])) },
        Row { method: "GET", path: &comp_given, headers: &[], body: None, scope: &lab_scope, status: 200, reason: "allowed",
              rewrite: Some((&comp_given, strict, &[])) },
        // user/ scopes: the request goes as sent
        Row { method: "GET", path: "/fhir/Observation?code=x", headers: &[("prefer", "handling=lenient")], body: None, scope: "user/Observation.rs", status: 200, reason: "allowed", rewrite: None },
        // reads are checked on the response, not rewritten
        Row { method: "GET", path: "/fhir/Observation/1", headers: &[], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed", rewrite: None },
        // issue 17: a search with `Prefer: respond-async` is answered synchronously (the preference dropped)
        Row { method: "GET", path: "/fhir/Observation?patient=123", headers: &[("prefer", "respond-async")], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=123", strict, &[])) },
        Row { method: "GET", path: "/fhir/Observation?code=x", headers: &[("prefer", "return=minimal, respond-async")], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=Patient%2F123&code=x", "return=minimal, handling=strict", &["patient"])) },
        Row { method: "GET", path: "/fhir/Observation?code=x", headers: &[("prefer", "respond-async")], body: None, scope: "user/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?code=x", "", &[])) },
        Row { method: "GET", path: "/fhir/Observation?code=x", headers: &[("prefer", "return=minimal; respond-async, handling=lenient")], body: None, scope: "user/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?code=x", "return=minimal, handling=lenient", &[])) },
        // issue 17: a granular parameter in a broader form (the code without its system) gets the scope's exact value beside it
        Row { method: "GET", path: "/fhir/Observation?patient=123&category=laboratory", headers: &[], body: None, scope: &lab_scope, status: 200, reason: "allowed",
              rewrite: Some((&lab_broader, strict, &["category"])) },
    ];
    check(&config, &rows);
    check(&deny, &[
        Row { method: "GET", path: "/fhir/Observation?code=x", headers: &[], body: None, scope: "patient/Observation.rs", status: 403, reason: "patient_compartment_violation", rewrite: None },
        Row { method: "GET", path: "/fhir/Observation?patient=123", headers: &[], body: None, scope: "patient/Observation.rs", status: 200, reason: "allowed",
              rewrite: Some(("/fhir/Observation?patient=123", strict, &[])) },
    ]);
}

fn check(config: &Config, rows: &[Row<'_>]) {
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let req = RequestParts {
            method: r.method,
            path: r.path,
            headers: r
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: r.body.map(str::as_bytes),
        };
        let d = decide_claims(
            config,
            &req,
            Some(&json!({"scope": r.scope, "patient": "123"})),
        );
        let got = d.rewrite.as_ref().map(|rw| {
            (
                rw.path.as_str(),
                rw.header("prefer").unwrap_or(""),
                rw.added.iter().map(String::as_str).collect::<Vec<_>>(),
            )
        });
        let want = r.rewrite.map(|(p, h, a)| (p, h, a.to_vec()));
        if d.status != r.status || d.reason.as_str() != r.reason || got != want {
            failures.push(format!(
                "row {i} {} {}: want {} {} {want:?}\n   got {} {} {got:?}: {}",
                r.method,
                r.path,
                r.status,
                r.reason,
                d.status,
                d.reason.as_str(),
                d.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `decide` output: `rewrite` with the path and headers as the filter sends them.
#[test]
fn decide_json_carries_the_rewrite() {
    let config = Config::from_json(br#"{}"#).unwrap();
    let req = RequestParts {
        method: "GET",
        path: "/fhir/Observation?code=x",
        headers: vec![].into(),
        body: None,
    };
    let d = decide_claims(
        &config,
        &req,
        Some(&json!({"scope": "patient/Observation.rs", "patient": "123"})),
    );
    let v = serde_json::to_value(&d).unwrap();
    assert_eq!(
        v["rewrite"],
        json!({"path": "/fhir/Observation?patient=Patient%2F123&code=x",
               "headers": {"prefer": "handling=strict"}, "added": ["patient"]})
    );
    assert!(v.get("narrowing").is_none());
}

/// `policy.labels` with `server_supports_security_not`: one
/// `_security:not` per hidden label in front of the query (with a patient
/// pin, after it), cleared labels left out, `Prefer: handling=strict`.
#[test]
fn security_labels_are_narrowed_in_the_url() {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir","policy":{"labels":{
        "restricted":["http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R","http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH"],
        "clearance_claim":"clearance","server_supports_security_not":true}}}"#).unwrap();
    let r =
        "_security%3Anot=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fv3-Confidentiality%7CR";
    let eth = "_security%3Anot=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fv3-ActCode%7CETH";
    for (claims, path) in [
        (
            json!({"scope": "user/Observation.rs"}),
            format!("/fhir/Observation?{r}&{eth}&code=8867-4"),
        ),
        (
            json!({"scope": "user/Observation.rs", "clearance": ["http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R"]}),
            format!("/fhir/Observation?{eth}&code=8867-4"),
        ),
        (
            json!({"scope": "patient/Observation.rs", "patient": "123"}),
            format!("/fhir/Observation?patient=Patient%2F123&{r}&{eth}&code=8867-4"),
        ),
    ] {
        let req = RequestParts {
            method: "GET",
            path: "/fhir/Observation?code=8867-4",
            headers: vec![].into(),
            body: None,
        };
        let d = decide_claims(&config, &req, Some(&claims));
        assert!(d.is_allow(), "{claims}: {}", d.message);
        let rw = d.rewrite.unwrap();
        assert_eq!(rw.path, path, "{claims}");
        assert_eq!(rw.header("prefer"), Some("handling=strict"));
    }
}
