//! classify + decide natively (`make bench-core`), 10 scopes, patient context.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::decide_with_context;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::policy::AuthContext;

const SCOPES: &str = "openid fhirUser launch/patient offline_access patient/Patient.rs patient/Observation.rs \
patient/Condition.rs patient/MedicationRequest.rs patient/Encounter.rs patient/AllergyIntolerance.rs";

fn bench(c: &mut Criterion) {
    let config = Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#)
        .unwrap_or_else(|e| panic!("{e}"));
    let ctx = AuthContext::from_scopes(SCOPES, Some("123"));
    let json = vec![(
        "content-type".to_string(),
        "application/fhir+json".to_string(),
    )];
    let bundle = br#"{"resourceType":"Bundle","type":"batch","entry":[
        {"request":{"method":"GET","url":"Patient/123"}},
        {"request":{"method":"GET","url":"Observation?patient=123&category=laboratory"}},
        {"request":{"method":"GET","url":"Condition?patient=123"}},
        {"request":{"method":"GET","url":"MedicationRequest?patient=123&status=active"}},
        {"request":{"method":"GET","url":"Encounter?patient=Patient/123"}}]}"#;
    let cases: Vec<(&str, RequestParts)> = vec![
        ("read", RequestParts { method: "GET", path: "/fhir/Patient/123", headers: vec![].into(), body: None }),
        (
            "pinned_search",
            RequestParts {
                method: "GET",
                path: "/fhir/Observation?patient=123&category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory&_count=50",
                headers: vec![].into(),
                body: None,
            },
        ),
        ("bundle_of_5", RequestParts { method: "POST", path: "/fhir", headers: json.into(), body: Some(bundle) }),
    ];
    for (name, req) in &cases {
        let d = decide_with_context(&config, req, Some(&ctx));
        assert!(d.is_allow(), "{name}: {}", d.message);
        c.bench_function(&format!("classify+decide/{name}"), |b| {
            b.iter(|| {
                decide_with_context(black_box(&config), black_box(req), Some(black_box(&ctx)))
            })
        });
    }
    c.bench_function("auth_context/from_scopes_10", |b| {
        b.iter(|| AuthContext::from_scopes(black_box(SCOPES), Some("123")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
