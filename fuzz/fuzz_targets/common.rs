#![allow(dead_code)]
//! Shared by the targets: the configuration, the tokens' claims, and a
//! decision whose every path must return (never panic, never hang).

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::RequestParts;
use serde_json::{json, Value};

pub fn config() -> Config {
    Config::from_json(
        br#"{"fhir_base_path":"/fhir","fhir_base_url":"https://ehr.example.org/fhir"}"#,
    )
    .unwrap_or_else(|e| panic!("fuzz config: {e}"))
}

/// A patient app, a clinician app with granular scopes, and a backend.
pub fn claims() -> [Value; 3] {
    [
        json!({"scope": "launch/patient patient/*.rs patient/Observation.cu", "patient": "123"}),
        json!({"scope": "user/Observation.rs?category=laboratory user/Patient.cruds user/Condition.s"}),
        json!({"scope": "system/*.rs system/Observation.cud"}),
    ]
}

/// Decide the request for no token and for each of [`claims`]; the answer
/// must be consistent with itself.
pub fn decide_all(config: &Config, req: &RequestParts<'_>) {
    let d = decide_claims(config, req, None);
    assert!(d.status >= 200 && !d.message.is_empty());
    for c in claims() {
        let d = decide_claims(config, req, Some(&c));
        if d.is_allow() {
            assert_eq!(d.status, 200);
        } else {
            assert!(d.status >= 400, "{}", d.message);
        }
    }
}

pub const METHODS: [&str; 8] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "get",
];
