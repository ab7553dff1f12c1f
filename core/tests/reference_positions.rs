//! One reference grammar in every position (issue 17). The request
//! positions (each place the filter reads a reference or an id, with a value
//! the grammar does not accept: dot segments after `_history`, a `..` id,
//! encoded slashes) are rows of the decision corpus,
//! `tests/corpus/default/reference_positions.jsonl`, replayed in Envoy as
//! sent. Here: the answers and the claims, read with the same grammar.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Obligation;
use fhir_smart_authz_core::policy::check_response;
use serde_json::{json, Value};

const BASE: &str = "https://ehr.example.org/fhir";
/// RFC 3986 resolves it to `Patient/456`; a naive reader sees `Patient/123`.
const DOTTED: &str = "Patient/123/_history/../../456";
const SCOPES: &str = "patient/*.cruds";

fn obs(subject: &str) -> Value {
    json!({"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":subject}})
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
