//! One reference grammar in every position (issue 17): each place the
//! filter reads a reference or an id, with a value the grammar does not
//! accept (dot segments after `_history`, a `..` id, encoded slashes), and
//! the exact decision. Driven end to end through `engine::decide` from raw
//! HTTP requests, so each row exercises the position as the filter reads it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Obligation;
use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::policy::check_response;
use serde_json::{json, Value};

const BASE: &str = "https://ehr.example.org/fhir";
/// RFC 3986 resolves it to `Patient/456`; a naive reader sees `Patient/123`.
const DOTTED: &str = "Patient/123/_history/../../456";
const DOTTED_ENC: &str = "Patient%2F123%2F_history%2F..%2F..%2F456";
const SCOPES: &str = "patient/*.cruds";

struct Position {
    /// Where the value is read.
    position: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<String>,
    claims: Value,
    status: u16,
    reason: &'static str,
}

fn claims(patient: &str) -> Value {
    json!({"scope": SCOPES, "patient": patient, "sub": "u", "client_id": "app"})
}

fn pos(
    position: &'static str,
    method: &'static str,
    path: &str,
    body: Option<Value>,
    status: u16,
    reason: &'static str,
) -> Position {
    let headers = match &body {
        Some(_) => vec![("content-type", "application/fhir+json".to_string())],
        None => vec![],
    };
    Position {
        position,
        method,
        path: path.to_string(),
        headers,
        body: body.map(|b| b.to_string()),
        claims: claims("123"),
        status,
        reason,
    }
}

fn obs(subject: &str) -> Value {
    json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":subject}})
}

fn params(name: &str, value: Value) -> Value {
    let mut p = json!({"name": name});
    p.as_object_mut()
        .unwrap()
        .extend(value.as_object().unwrap().clone());
    json!({"resourceType":"Parameters","parameter":[p]})
}

fn batch(entries: Value) -> Value {
    json!({"resourceType":"Bundle","type":"batch","entry":entries})
}

fn transaction(entries: Value) -> Value {
    json!({"resourceType":"Bundle","type":"transaction","entry":entries})
}

#[test]
fn every_position_refuses_a_value_outside_the_grammar() {
    let config = Config::from_json(format!(r#"{{"fhir_base_url":"{BASE}"}}"#).as_bytes()).unwrap();
    let mut rows = vec![
        pos(
            "URL path: id `..`",
            "GET",
            "/fhir/Patient/..",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "URL path: version `..`",
            "GET",
            "/fhir/Patient/123/_history/..",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "URL path: encoded dot segment",
            "GET",
            "/fhir/Patient/123/_history/%2e%2e",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "URL path: encoded slash in id",
            "GET",
            "/fhir/Patient/123%2F..%2F456",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "query: pin with dot segments",
            "GET",
            &format!("/fhir/Observation?patient={DOTTED}"),
            None,
            400,
            "invalid_request",
        ),
        pos(
            "query: pin encoded",
            "GET",
            &format!("/fhir/Observation?subject={DOTTED_ENC}"),
            None,
            400,
            "invalid_request",
        ),
        pos(
            "query: pin `_history/..`",
            "GET",
            "/fhir/Observation?subject=Patient/123/_history/..",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "query: bare id `..`",
            "GET",
            "/fhir/Observation?patient=..",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "query: absolute on base, dotted",
            "GET",
            &format!("/fhir/Observation?patient={BASE}/{DOTTED}"),
            None,
            400,
            "invalid_request",
        ),
        pos(
            "query: Patient `_id` not an id",
            "GET",
            "/fhir/Patient?_id=123/../456",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "compartment path: id `..`",
            "GET",
            "/fhir/Patient/../Observation",
            None,
            400,
            "invalid_request",
        ),
        pos(
            "operation URL parameter",
            "GET",
            &format!("/fhir/Observation/$lastn?patient={DOTTED_ENC}"),
            None,
            400,
            "invalid_request",
        ),
        pos(
            "operation Parameters body: valueReference",
            "POST",
            "/fhir/Observation/$lastn",
            Some(params(
                "patient",
                json!({"valueReference":{"reference": DOTTED}}),
            )),
            400,
            "invalid_request",
        ),
        pos(
            "operation Parameters body: valueString",
            "POST",
            "/fhir/Observation/$lastn",
            Some(params("patient", json!({"valueString": DOTTED}))),
            400,
            "invalid_request",
        ),
        pos(
            "written body reference",
            "POST",
            "/fhir/Observation",
            Some(obs(DOTTED)),
            400,
            "invalid_request",
        ),
        pos(
            "written body reference `_history/..`",
            "POST",
            "/fhir/Observation",
            Some(obs("Patient/123/_history/..")),
            400,
            "invalid_request",
        ),
        pos(
            "conditional update criteria",
            "PUT",
            &format!("/fhir/Observation?patient={DOTTED_ENC}"),
            Some(obs("Patient/123")),
            400,
            "invalid_request",
        ),
        pos(
            "conditional delete criteria",
            "DELETE",
            &format!("/fhir/Observation?patient={DOTTED_ENC}"),
            None,
            400,
            "invalid_request",
        ),
        pos(
            "Bundle entry request.url path",
            "POST",
            "/fhir",
            Some(batch(
                json!([{"request":{"method":"GET","url":"Patient/123/_history/.."}}]),
            )),
            400,
            "invalid_request",
        ),
        pos(
            "Bundle entry request.url pin",
            "POST",
            "/fhir",
            Some(batch(
                json!([{"request":{"method":"GET","url":format!("Observation?patient={DOTTED_ENC}")}}]),
            )),
            403,
            "bundle_entry_denied",
        ),
        pos(
            "Bundle entry ifNoneExist",
            "POST",
            "/fhir",
            Some(transaction(
                json!([{"resource": obs("Patient/123"), "request":{"method":"POST","url":"Observation","ifNoneExist":format!("patient={DOTTED_ENC}")}}]),
            )),
            403,
            "bundle_entry_denied",
        ),
        pos(
            "Bundle entry resource reference",
            "POST",
            "/fhir",
            Some(transaction(
                json!([{"resource": obs(DOTTED), "request":{"method":"POST","url":"Observation"}}]),
            )),
            403,
            "bundle_entry_denied",
        ),
        pos(
            "Bundle entry fullUrl naming another patient",
            "POST",
            "/fhir",
            Some(transaction(json!([
                {"fullUrl": format!("{BASE}/Patient/456"), "resource": {"resourceType":"Patient","id":"123"}, "request":{"method":"PUT","url":"Patient/123"}},
                {"resource": obs(&format!("{BASE}/Patient/456")), "request":{"method":"POST","url":"Observation"}}
            ]))),
            400,
            "invalid_request",
        ),
        pos(
            "Bundle entry fullUrl with dot segments",
            "POST",
            "/fhir",
            Some(transaction(json!([
                {"fullUrl": format!("{BASE}/{DOTTED}"), "resource": obs("Patient/123"), "request":{"method":"POST","url":"Observation"}}
            ]))),
            400,
            "invalid_request",
        ),
    ];
    let mut if_none_exist = pos(
        "If-None-Exist header",
        "POST",
        "/fhir/Observation",
        Some(obs("Patient/123")),
        400,
        "invalid_request",
    );
    if_none_exist
        .headers
        .push(("if-none-exist", format!("patient={DOTTED_ENC}")));
    rows.push(if_none_exist);
    let mut form = pos(
        "POST _search form",
        "POST",
        "/fhir/Observation/_search",
        None,
        400,
        "invalid_request",
    );
    form.headers
        .push(("content-type", "application/x-www-form-urlencoded".into()));
    form.body = Some(format!("patient={DOTTED_ENC}"));
    rows.push(form);
    let mut claim = pos(
        "token / introspection patient claim `..`",
        "GET",
        "/fhir/Patient/..",
        None,
        400,
        "invalid_request",
    );
    claim.path = "/fhir/Observation?code=x".into();
    claim.claims = claims("..");
    claim.status = 403;
    claim.reason = "unsupported_claims";
    rows.push(claim);

    let mut failures = Vec::new();
    for row in &rows {
        let headers: Vec<(String, String)> = row
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        let req = RequestParts {
            method: row.method,
            path: &row.path,
            headers: headers.into(),
            body: row.body.as_deref().map(str::as_bytes),
        };
        let d = decide_claims(&config, &req, Some(&row.claims));
        if d.status != row.status || d.reason.as_str() != row.reason {
            failures.push(format!(
                "{}: {} {}: want {} {}, got {} {}: {}",
                row.position,
                row.method,
                row.path,
                row.status,
                row.reason,
                d.status,
                d.reason.as_str(),
                d.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The positions the server answers: a returned resource whose compartment
/// reference is outside the grammar is not the patient's, nor is a
/// Provenance whose target is.
#[test]
fn answers_read_with_the_same_grammar() {
    let config = Config::from_json(format!(r#"{{"fhir_base_url":"{BASE}"}}"#).as_bytes()).unwrap();
    let check = |o: &Obligation, v: &Value| check_response(&config.policy, Some(BASE), o, v);
    let compartment = |t: &str| Obligation::CheckResponseCompartment {
        resource_type: t.into(),
        patient: "123".into(),
    };
    let mut own = obs("Patient/123");
    own["id"] = json!("o1");
    assert!(check(&compartment("Observation"), &own).is_ok());
    for subject in [
        DOTTED,
        "Patient/123/_history/..",
        "Patient/123/",
        "Patient/123%2F",
    ] {
        let mut o = obs(subject);
        o["id"] = json!("o2");
        assert!(check(&compartment("Observation"), &o).is_err(), "{subject}");
    }
    let provenance = |target: &str| {
        json!({"resourceType":"Bundle","type":"searchset","entry":[
            {"resource": own.clone()},
            {"resource": {"resourceType":"Provenance","id":"pv","target":[{"reference": target}]}}
        ]})
    };
    assert!(check(&compartment("*"), &provenance("Observation/o1")).is_ok());
    assert!(check(
        &compartment("*"),
        &provenance("Observation/o1/_history/../../o9")
    )
    .is_err());
}

/// The claims: a patient claim or `fhirUser` outside the grammar is no
/// patient context (`unsupported_claims`, or no patient from `fhirUser`).
#[test]
fn claims_read_with_the_same_grammar() {
    let config = Config::from_json(
        format!(r#"{{"fhir_base_url":"{BASE}","claims":{{"patient_from_fhir_user":true}}}}"#)
            .as_bytes(),
    )
    .unwrap();
    let ctx = |c: Value| fhir_smart_authz_core::engine::token_context(&config, &c);
    for bad in [".", "..", "123/../456", "Patient/123"] {
        assert!(
            ctx(json!({"scope": SCOPES, "patient": bad})).is_err(),
            "{bad}"
        );
    }
    for (fhir_user, want) in [
        ("Patient/9", Some("9")),
        (&*format!("{BASE}/Patient/9"), Some("9")),
        ("Patient/..", None),
        ("Patient/9/_history/../../8", None),
        (&*format!("{BASE}/Patient/9/../8"), None),
        ("Patient/9/_history/1", None),
    ] {
        let c = ctx(json!({"scope": SCOPES, "fhirUser": fhir_user})).unwrap();
        assert_eq!(c.patient.as_deref(), want, "{fhir_user}");
    }
}
