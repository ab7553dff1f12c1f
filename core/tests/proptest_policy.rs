//! Property tests for the policy: monotonicity in the granted scopes, scopes
//! as a set (order and repeats never matter), and no panics on arbitrary
//! scope strings and claims.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Reason;
use fhir_smart_authz_core::engine;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::policy::AuthContext;
use proptest::prelude::*;
use serde_json::{json, Value};

const SCOPES: &[&str] = &[
    "patient/Observation.rs",
    "patient/Observation.r",
    "patient/Observation.s",
    "patient/Observation.cu",
    "patient/Patient.rs",
    "patient/Patient.u",
    "patient/*.rs",
    "patient/*.cruds",
    "patient/Medication.rs",
    "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
    "user/Observation.rs",
    "user/Patient.r",
    "user/*.read",
    "user/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
    "user/Observation.cud",
    "system/*.rs",
    "system/Observation.s",
    "openid",
    "launch/patient",
    "patient/Observation.sr",
];

/// (method, path, body)
const REQUESTS: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/fhir/Patient/123", None),
    ("GET", "/fhir/Patient/456", None),
    ("GET", "/fhir/Observation/1", None),
    ("GET", "/fhir/Observation?patient=123", None),
    ("GET", "/fhir/Observation?patient=123,456", None),
    ("GET", "/fhir/Observation?code=x", None),
    ("GET", "/fhir/Observation?patient=123&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory", None),
    ("GET", "/fhir/Observation?patient=123&_include=Observation:subject:Patient", None),
    ("GET", "/fhir/Observation?patient=123&_revinclude=Provenance:target", None),
    ("GET", "/fhir/Patient/123/Observation", None),
    ("GET", "/fhir/Patient/123/*", None),
    ("GET", "/fhir/Patient/123/$everything", None),
    ("GET", "/fhir/$export", None),
    ("GET", "/fhir/Medication/m", None),
    ("GET", "/fhir/_history", None),
    ("GET", "/fhir?_getpages=abc", None),
    ("DELETE", "/fhir/Observation/1", None),
    ("POST", "/fhir/Observation", Some(r#"{"resourceType":"Observation","subject":{"reference":"Patient/123"},"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}]}"#)),
    ("PUT", "/fhir/Patient/123", Some(r#"{"resourceType":"Patient","id":"123"}"#)),
    ("POST", "/fhir", Some(r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/123"}},{"request":{"method":"GET","url":"Observation?patient=123"}}]}"#)),
];

fn allowed(config: &Config, scopes: &[&str], req: usize) -> bool {
    decision(config, scopes, req).0
}

/// Allowed, status and reason of request `req` under `scopes` (patient 123).
fn decision(config: &Config, scopes: &[&str], req: usize) -> (bool, u16, Reason) {
    let (method, path, body) = REQUESTS[req];
    let ctx = AuthContext::from_scopes(&scopes.join(" "), Some("123"));
    let mut headers = Vec::new();
    if body.is_some() {
        headers.push((
            "content-type".to_string(),
            "application/fhir+json".to_string(),
        ));
    }
    let parts = RequestParts {
        method,
        path,
        headers: headers.into(),
        body: body.map(str::as_bytes),
    };
    let token = engine::PresentedToken {
        context: &Ok(ctx),
        binding: None,
    };
    let d = engine::decide_token(config, &parts, Some(token));
    (d.is_allow(), d.status, d.reason)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn adding_a_scope_never_denies(
        mask in proptest::collection::vec(any::<bool>(), SCOPES.len()),
        extra in 0..SCOPES.len(),
        req in 0..REQUESTS.len(),
    ) {
        let config = Config::default_config().unwrap();
        let base: Vec<&str> = SCOPES.iter().zip(&mask).filter(|(_, m)| **m).map(|(s, _)| *s).collect();
        let mut more = base.clone();
        more.push(SCOPES[extra]);
        if allowed(&config, &base, req) {
            prop_assert!(allowed(&config, &more, req), "adding {} denied {:?} (base {:?})", SCOPES[extra], REQUESTS[req], base);
        }
    }

    /// Scopes are a set: their order and repeats never change the decision
    /// (allow or deny, status, reason).
    #[test]
    fn scope_order_and_repeats_never_matter(
        mask in proptest::collection::vec(any::<bool>(), SCOPES.len()),
        repeat in 0..SCOPES.len(),
        rotate in 0..SCOPES.len(),
        req in 0..REQUESTS.len(),
    ) {
        let config = Config::default_config().unwrap();
        let granted: Vec<&str> = SCOPES.iter().zip(&mask).filter(|(_, m)| **m).map(|(s, _)| *s).collect();
        let mut shuffled = granted.clone();
        shuffled.reverse();
        if !shuffled.is_empty() {
            let n = rotate % shuffled.len();
            shuffled.rotate_left(n);
            shuffled.push(shuffled[repeat % shuffled.len()]);
        }
        let a = decision(&config, &granted, req);
        let b = decision(&config, &shuffled, req);
        prop_assert_eq!(a, b, "{:?} vs {:?} on {:?}", granted, shuffled, REQUESTS[req]);
    }

    #[test]
    fn arbitrary_scope_strings_never_panic(s in "\\PC{0,80}", req in 0..REQUESTS.len()) {
        let config = Config::default_config().unwrap();
        let _ = allowed(&config, &[s.as_str()], req);
    }

    #[test]
    fn arbitrary_claims_never_panic(scope in prop_oneof![
            "\\PC{0,40}".prop_map(Value::String),
            any::<i64>().prop_map(|n| json!(n)),
            proptest::collection::vec("[a-z/*.?=|]{0,20}", 0..4).prop_map(|v| json!(v)),
            Just(json!({"a": 1})),
            Just(Value::Null),
        ],
        patient in prop_oneof![Just(json!("123")), Just(json!(5)), "\\PC{0,10}".prop_map(Value::String), Just(Value::Null)],
        req in 0..REQUESTS.len(),
    ) {
        let config = Config::default_config().unwrap();
        let (method, path, body) = REQUESTS[req];
        let parts = RequestParts { method, path, headers: vec![("content-type".into(), "application/fhir+json".into())].into(), body: body.map(str::as_bytes) };
        let claims = json!({"scope": scope, "patient": patient});
        let d = engine::decide_claims(&config, &parts, Some(&claims));
        prop_assert!(d.status == 200 || d.status >= 400);
    }
}
