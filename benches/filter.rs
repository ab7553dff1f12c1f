//! The whole per-request flow of the filter (`Stream` over the fake host,
//! with the production token service and decision engine), natively:
//! `cargo bench --bench filter`. Covers a verified-token cache hit (patient
//! app read and a pinned search) and cold verification with the pure-Rust
//! verifier (the fake host has no `verify_signature`), per algorithm, and
//! `cold_host/RS256`: the cache off and the host's `verify_signature`
//! stubbed to answer "valid" at once, i.e. everything a fresh token costs
//! inside the filter besides BoringSSL's check; each from the request
//! headers to the audit record written at log time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

#[path = "../core/tests/token_support/mod.rs"]
mod token_support;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use fhir_smart_authz::core_adapter::{CoreEngine, CoreTokens};
use fhir_smart_authz::fake::FakeHost;
use fhir_smart_authz::ports::{Engine, TokenPort};
use fhir_smart_authz::{Flow, Shared, Stream};

use fhir_smart_authz_core::audit::AuditEncoding;
use fhir_smart_authz_core::config::Config;
use serde_json::json;
use std::rc::Rc;
use token_support::{config_json, token_with, AUD, ISS, NOW};

const SCOPES: &str = "openid fhirUser launch/patient offline_access patient/Patient.rs patient/Observation.rs \
patient/Condition.rs patient/MedicationRequest.rs patient/Encounter.rs patient/AllergyIntolerance.rs";

fn claims(jti: usize) -> serde_json::Value {
    json!({
        "iss": ISS, "aud": AUD, "exp": NOW + 3600, "iat": NOW - 10,
        "sub": "user-1", "jti": format!("jti-{jti}"), "client_id": "app-1",
        "fhirUser": "Patient/123", "scope": SCOPES, "patient": "123",
    })
}

fn shared(cache_max_entries: usize) -> Rc<Shared> {
    let cfg = config_json(json!({}), json!({"cache_max_entries": cache_max_entries}));
    let config = Rc::new(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(CoreTokens::new(config.clone()));
    let e: Box<dyn Engine> = Box::new(CoreEngine);
    Shared::new(config, t, e, AuditEncoding::Line)
}

fn host(path: &str, token: &str) -> FakeHost {
    let h = FakeHost::new(NOW * 1000);
    let mut st = h.state.borrow_mut();
    st.host_properties
        .insert("response.code".into(), 200u64.to_le_bytes().to_vec());
    st.host_properties.insert(
        "request.duration".into(),
        1_000_000u64.to_le_bytes().to_vec(),
    );
    st.request_headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), path.into()),
        (":authority".into(), "fhir.example.org".into()),
        (":scheme".into(), "https".into()),
        ("user-agent".into(), "bench/1.0".into()),
        ("accept".into(), "application/fhir+json".into()),
        (
            "x-request-id".into(),
            "5f3c9a6e-8d1b-4a51-9a3e-0d6f1e2b7c44".into(),
        ),
        ("authorization".into(), format!("Bearer {token}")),
    ];
    drop(st);
    h
}

/// The request headers, then the log callback (the default `audit.encoding:
/// "line"` writes the record there).
fn run(shared: &Rc<Shared>, h: &FakeHost) {
    let mut s = Stream::new(shared.clone());
    let flow = s.on_request_headers(h, true);
    assert_eq!(flow, Flow::Continue);
    s.on_log(h);
}

const READ: &str = "/fhir/Patient/123";
const SEARCH: &str = "/fhir/Observation?patient=123&category=laboratory&_count=50";

fn bench(c: &mut Criterion) {
    // Cache hits: one token, verified once before measuring.
    let sh = shared(10_000);
    let token = token_with("RS256", &claims(0));
    for (name, path) in [("read", READ), ("pinned_search", SEARCH)] {
        let warm = host(path, &token);
        run(&sh, &warm);
        assert!(warm.state.borrow().replies.is_empty());
        c.bench_function(&format!("filter/cache_hit/{name}"), |b| {
            b.iter_batched(
                || host(path, &token),
                |h| run(&sh, &h),
                BatchSize::SmallInput,
            )
        });
    }
    // Cold: the cache disabled, so every request verifies the signature
    // (pure Rust: the fake host has no verify_signature).
    let cold = shared(0);
    for alg in ["RS256", "ES256", "EdDSA"] {
        let token = token_with(alg, &claims(1));
        let h = host(READ, &token);
        run(&cold, &h);
        assert!(h.state.borrow().replies.is_empty(), "{alg}");
        c.bench_function(&format!("filter/cold_pure/{alg}"), |b| {
            b.iter_batched(
                || host(READ, &token),
                |h| run(&cold, &h),
                BatchSize::SmallInput,
            )
        });
    }
    // Cold with the host path: the stub answers `VerifySignatureResult { result: true }`.
    fn host_says_valid(_args: &[u8]) -> Result<Vec<u8>, String> {
        Ok(vec![0x08, 0x01])
    }
    let token = token_with("RS256", &claims(2));
    let with_stub = |path: &str| {
        let h = host(path, &token);
        h.state.borrow_mut().verify_signature = Some(host_says_valid);
        h
    };
    let h = with_stub(READ);
    run(&cold, &h);
    assert!(h.state.borrow().replies.is_empty());
    assert_eq!(
        h.state.borrow().host_calls.get("call_foreign_function"),
        Some(&1)
    );
    c.bench_function("filter/cold_host/RS256", |b| {
        b.iter_batched(
            || with_stub(READ),
            |h| run(&cold, &h),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
