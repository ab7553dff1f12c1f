//! The rewrite of a narrowed allow, end to end through `engine::decide_claims`:
//! its JSON form and the label narrowing. The rewrite rows (the exact
//! request target the upstream receives, added parameters first, `Prefer:
//! handling=strict`, the names the audit record shows) are in the decision
//! corpus, `tests/corpus/default/rewrites.jsonl`.
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
