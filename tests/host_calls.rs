//! What one request costs at the V8 boundary: the host calls the shell
//! makes, counted by the fake host, with the production token service and
//! engine. Each call crosses from wasm into Envoy (0.3–3 µs each in Envoy
//! 1.40, docs/performance.md); the cache-hit budget below fails this test
//! when a change adds one to the hot path.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "../core/tests/token_support/mod.rs"]
mod token_support;

use fhir_smart_authz::core_adapter::{CoreEngine, CoreTokens};
use fhir_smart_authz::fake::FakeHost;
use fhir_smart_authz::host::LogLevel;
use fhir_smart_authz::ports::{Engine, TokenPort};
use fhir_smart_authz::{Flow, Shared, Stream};
use fhir_smart_authz_core::audit::AuditEncoding;
use fhir_smart_authz_core::config::Config;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::rc::Rc;
use token_support::{config_json, envoy_verify_signature, token_with, AUD, ISS, NOW};

/// Host calls of a verified-token cache hit, from the request headers to the
/// access log (audit record included): the budget.
const CACHE_HIT_HOST_CALLS: u32 = 14;

fn claims(jti: &str) -> Value {
    json!({
        "iss": ISS, "aud": AUD, "exp": NOW + 3600, "iat": NOW - 10, "sub": "user-1", "jti": jti,
        "client_id": "app-1", "fhirUser": "Patient/123", "patient": "123",
        "scope": "launch/patient patient/Patient.rs patient/Observation.rs",
    })
}

fn shared(encoding: AuditEncoding) -> Rc<Shared> {
    shared_with(encoding, json!({}))
}

/// With these `metrics` settings.
fn shared_with(encoding: AuditEncoding, metrics: Value) -> Rc<Shared> {
    let mut cfg = config_json(json!({}), json!({}));
    cfg["metrics"] = metrics;
    let config = Rc::new(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(CoreTokens::new(config.clone()));
    let e: Box<dyn Engine> = Box::new(CoreEngine);
    Shared::new(config, t, e, encoding)
}

/// One `GET Patient/123` through headers and the log callback: the host
/// calls made, by `Host` method.
fn request(sh: &Rc<Shared>, token: &str) -> BTreeMap<&'static str, u32> {
    request_on(&FakeHost::new(NOW * 1000), sh, token)
}

fn request_on(h: &FakeHost, sh: &Rc<Shared>, token: &str) -> BTreeMap<&'static str, u32> {
    {
        let mut st = h.state.borrow_mut();
        st.verify_signature.get_or_insert(envoy_verify_signature);
        st.request_headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/fhir/Patient/123".into()),
            (":authority".into(), "fhir.example.org".into()),
            ("x-request-id".into(), "r-1".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ];
        st.host_properties
            .insert("response.code".into(), 200u64.to_le_bytes().to_vec());
        st.host_properties.insert(
            "request.duration".into(),
            1_000_000u64.to_le_bytes().to_vec(),
        );
    }
    let mut s = Stream::new(sh.clone());
    assert_eq!(s.on_request_headers(h, true), Flow::Continue);
    s.on_log(h);
    assert!(h
        .state
        .borrow()
        .properties
        .contains_key("fhir_smart_authz_audit"));
    let calls = h.state.borrow().host_calls.clone();
    calls
}

fn table(rows: &[(&'static str, u32)]) -> BTreeMap<&'static str, u32> {
    rows.iter().copied().collect()
}

#[test]
fn a_cache_hit_stays_within_its_host_call_budget() {
    for encoding in [
        AuditEncoding::Line,
        AuditEncoding::Fields,
        AuditEncoding::Json,
        AuditEncoding::Struct,
    ] {
        let sh = shared(encoding);
        let token = token_with("RS256", &claims("j-1"));
        let first = request(&sh, &token);
        request(&sh, &token);
        let hit = request(&sh, &token);
        let line = encoding == AuditEncoding::Line;
        let mut want = table(&[
            ("headers", 1),
            // the token's time checks and the record's time
            ("now_ms", 1),
            // token_cache.hit, decision.allow.allowed
            ("increment_counter", 2),
            // the six fact headers
            ("set_header", 6),
            ("set_property", 1),
        ]);
        if line {
            // at log time: response.code and request.duration, the clock
            want.insert("property", 2);
            want.insert("now_us", 1);
        }
        assert_eq!(hit, want, "{encoding:?}");
        let total: u32 = hit.values().sum();
        assert!(
            total <= CACHE_HIT_HOST_CALLS,
            "{encoding:?}: {total} host calls on a cache hit"
        );
        // The first request verified the signature through the host and
        // defined every counter (a shell not configured through a root
        // defines them all at its first decision; a root does at load).
        let mut first_want = want.clone();
        first_want.insert("call_foreign_function", 1);
        let all = fhir_smart_authz::metrics::COUNTERS.len()
            + fhir_smart_authz_core::decision::Reason::ALL.len();
        first_want.insert("define_counter", u32::try_from(all).unwrap());
        assert_eq!(first, first_want, "{encoding:?}");
    }
}

#[test]
fn a_fresh_ecdsa_token_is_verified_by_the_host() {
    let sh = shared(AuditEncoding::Line);
    for (i, alg) in ["ES256", "ES384", "RS256"].into_iter().enumerate() {
        let calls = request(&sh, &token_with(alg, &claims(&format!("j-{i}"))));
        assert_eq!(
            calls.get("call_foreign_function"),
            Some(&1),
            "{alg}: one verify_signature"
        );
    }
}

#[test]
fn phase_timing_is_a_debug_switch_recording_one_histogram_per_phase() {
    let token = token_with("RS256", &claims("j-9"));
    let off = request(&shared(AuditEncoding::Line), &token);
    assert_eq!(off.get("now_us"), Some(&1), "the log's clock only: {off:?}");
    assert!(!off.contains_key("define_histogram"), "{off:?}");
    let sh = shared_with(AuditEncoding::Line, json!({"phase_timing": true}));
    let h = FakeHost::new(NOW * 1000);
    let on = request_on(&h, &sh, &token);
    let phases = [
        "request_headers",
        "read_headers",
        "token",
        "facts",
        "decide",
        "audit",
        "log",
    ];
    assert_eq!(on["define_histogram"], phases.len() as u32);
    assert_eq!(
        on["now_us"],
        2 * phases.len() as u32 + 1,
        "two clock reads a phase, and the log's"
    );
    let names = h.state.borrow().counter_names.clone();
    for p in phases {
        let name = format!("fhir_smart_authz.phase.{p}_us");
        assert!(names.contains(&name), "{name} in {names:?}");
    }
}

#[test]
fn a_host_that_cannot_verify_falls_back_to_pure_rust_and_says_so_once() {
    let sh = shared(AuditEncoding::Line);
    let refusing: fn(&[u8]) -> Result<Vec<u8>, String> = |_| Err("BadArgument".into());
    let mut warnings = 0;
    for (i, alg) in ["ES256", "RS256", "ES384"].into_iter().enumerate() {
        let h = FakeHost::new(NOW * 1000);
        h.state.borrow_mut().verify_signature = Some(refusing);
        let calls = request_on(&h, &sh, &token_with(alg, &claims(&format!("f-{i}"))));
        assert_eq!(calls.get("call_foreign_function"), Some(&1), "{alg}");
        let st = h.state.borrow();
        assert!(
            st.replies.is_empty(),
            "{alg}: allowed through the pure path"
        );
        warnings += st
            .logs
            .iter()
            .filter(|(l, m)| *l == LogLevel::Warn && m.contains("verify_signature"))
            .count();
    }
    assert_eq!(warnings, 1, "logged once per VM");
}
