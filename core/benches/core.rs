//! classify + decide natively (`make bench-core`), 10 scopes, patient context;
//! the label filter on a 100-entry searchset (`policy.labels`); and the sender-constraint check of a DPoP request (the proof verified on
//! every request, in pure Rust here: Envoy's `verify_signature` in the filter).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
#[path = "../tests/token_support/mod.rs"]
mod token_support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::engine::{decide_token, PresentedToken};
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::policy::{check_obligations, AuthContext};
use fhir_smart_authz_core::token::binding::{
    check_binding, BindingRequest, ConnectionFacts, MemoryReplayStore,
};
use fhir_smart_authz_core::token::RustCryptoVerifier;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

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
    let token = Ok(ctx);
    let presented = PresentedToken {
        context: &token,
        binding: None,
    };
    for (name, req) in &cases {
        let d = decide_token(&config, req, Some(presented));
        assert!(d.is_allow(), "{name}: {}", d.message);
        c.bench_function(&format!("classify+decide/{name}"), |b| {
            b.iter(|| {
                decide_token(
                    black_box(&config),
                    black_box(req),
                    Some(black_box(presented)),
                )
            })
        });
    }
    c.bench_function("auth_context/from_scopes_10", |b| {
        b.iter(|| AuthContext::from_scopes(black_box(SCOPES), Some("123")))
    });
}

/// The response check of a restricted clinician's search: a 100-entry
/// searchset (every tenth entry labelled ETH) parsed, filtered, written
/// again, as the filter does per response.
fn bench_labels(c: &mut Criterion) {
    let config = Config::from_json(
        br#"{"fhir_base_url":"https://ehr.example.org/fhir","policy":{"labels":{}}}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ctx = AuthContext::from_scopes("user/*.rs", None);
    let req = RequestParts {
        method: "GET",
        path: "/fhir/Observation?code=8867-4",
        headers: vec![].into(),
        body: None,
    };
    let token = Ok(ctx);
    let presented = PresentedToken {
        context: &token,
        binding: None,
    };
    let d = decide_token(&config, &req, Some(presented));
    assert_eq!(d.obligations.len(), 1, "{}", d.message);
    let entries: Vec<Value> = (0..100)
        .map(|i| {
            let mut r = json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
                "subject": {"reference": "Patient/123"}, "effectiveDateTime": "2026-01-01T00:00:00Z",
                "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"}});
            if i % 10 == 0 {
                r["meta"] = json!({"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"}]});
            }
            json!({"fullUrl": format!("https://ehr.example.org/fhir/Observation/o{i}"), "resource": r, "search": {"mode": "match"}})
        })
        .collect();
    let page =
        json!({"resourceType": "Bundle", "type": "searchset", "total": 100, "entry": entries})
            .to_string();
    let filter = |bytes: &[u8]| {
        let v: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
        check_obligations(&config.policy, None, &d.obligations, &v)
    };
    assert_eq!(filter(page.as_bytes()).labels.map(|l| l.withheld), Some(10));
    c.bench_function("labels/filter_searchset_100", |b| {
        b.iter(|| filter(black_box(page.as_bytes())))
    });
}

/// One DPoP request's binding check: proof parsed, key thumbprinted,
/// signature (ES256) verified, claims checked, replay recorded.
fn dpop(c: &mut Criterion) {
    use token_support::*;
    let config = config_with(json!({"dpop": {"mode": "accepted"}}));
    let mut claims = token_support::claims();
    claims["cnf"] = json!({"jkt": jkt("p256")});
    let token = token_with("ES256", &claims);
    let proof = jws_raw(
        &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk("p256")}).to_string(),
        &json!({"jti": "bench", "htm": "GET", "htu": "https://fhir.example.org/fhir/Patient/123",
                "iat": NOW, "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))})
        .to_string(),
        "ES256",
        "p256",
    );
    let headers = vec![
        ("authorization".to_string(), format!("DPoP {token}")),
        ("dpop".to_string(), proof),
    ];
    let parts = RequestParts {
        method: "GET",
        path: "/fhir/Patient/123",
        headers: headers.into(),
        body: None,
    };
    let req = BindingRequest {
        parts: &parts,
        connection: ConnectionFacts::default(),
        now: NOW,
    };
    let check = |store: &mut MemoryReplayStore| {
        check_binding(&config.binding(), &req, &claims, &RustCryptoVerifier, store)
    };
    assert!(check(&mut MemoryReplayStore::default()).is_ok());
    c.bench_function("sender_constraint/dpop_es256_pure", |b| {
        b.iter_batched(
            MemoryReplayStore::default,
            |mut store| check(black_box(&mut store)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench, bench_labels, dpop);
criterion_main!(benches);
