//! Repeats of a token (verified-token cache hit, the token service's hot
//! tier and the per-token AuthContext kept by the shell) give exactly what
//! the first request got: decision, reply, forwarded facts, audit record,
//! counters. Production token service and engine over the fake host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::type_complexity
)]

#[path = "../core/tests/token_support/mod.rs"]
mod token_support;

use fhir_smart_authz::core_adapter::{CoreEngine, CoreTokens};
use fhir_smart_authz::fake::FakeHost;
use fhir_smart_authz::ports::{Engine, TokenPort};
use fhir_smart_authz::{Flow, Shared, Stream};
use fhir_smart_authz_core::audit::AuditEncoding;
use fhir_smart_authz_core::config::Config;
use serde_json::{json, Value};
use std::rc::Rc;
use token_support::{claims, config_json, token_with, NOW};

fn shared(cache_max_entries: usize) -> Rc<Shared> {
    let cfg = config_json(json!({}), json!({"cache_max_entries": cache_max_entries}));
    let config = Rc::new(Config::from_json(cfg.to_string().as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(CoreTokens::new(config.clone()));
    let e: Box<dyn Engine> = Box::new(CoreEngine);
    Shared::new(config, t, e, AuditEncoding::Json)
}

/// What one request produced: flow, reply (status, body), request headers
/// after the filter, the audit record without its timestamp.
fn run(
    sh: &Rc<Shared>,
    path: &str,
    token: &str,
) -> (Flow, Option<(u16, String)>, Vec<(String, String)>, Value) {
    let h = FakeHost::new(NOW * 1000);
    h.state.borrow_mut().request_headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), path.into()),
        ("x-request-id".into(), "r1".into()),
        ("x-smart-patient".into(), "spoofed".into()),
        ("authorization".into(), format!("Bearer {token}")),
    ];
    let flow = Stream::new(sh.clone()).on_request_headers(&h, true);
    let s = h.state.borrow();
    let reply = s
        .replies
        .first()
        .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()));
    let mut audit: Value =
        serde_json::from_slice(s.properties.get("fhir_smart_authz_audit").unwrap()).unwrap();
    if let Some(o) = audit.as_object_mut() {
        o.retain(|k, _| !k.contains("time"));
    }
    (flow, reply, s.request_headers.clone(), audit)
}

#[test]
fn repeats_match_the_first_request() {
    let mut unusable = claims();
    unusable["scope"] = json!(42); // unsupported_claims, except on public endpoints
    let mut by_fhir_user = claims();
    by_fhir_user["fhirUser"] = json!("Patient/123");
    let tokens = [
        token_with("RS256", &claims()),
        token_with("ES256", &by_fhir_user),
        token_with("EdDSA", &unusable),
    ];
    let paths = [
        "/fhir/Patient/123",
        "/fhir/Patient/456",
        "/fhir/Observation?patient=123",
        "/fhir/Observation?patient=456",
        "/fhir/metadata",
        "/fhir/Patient/123/../x",
    ];
    // Reference: the cache disabled, every request verified and derived afresh.
    let fresh = shared(0);
    let cached = shared(100);
    let mut reasons = Vec::new();
    for token in &tokens {
        for path in paths {
            let expected = run(&fresh, path, token);
            reasons.push(expected.3["reason"].as_str().unwrap_or("").to_string());
            for round in 0..3 {
                assert_eq!(run(&cached, path, token), expected, "{path} round {round}");
            }
        }
    }
    let per_token = [
        "allowed",
        "patient_compartment_violation",
        "allowed",
        "patient_compartment_violation",
        "public_endpoint",
        "invalid_request",
    ];
    let unusable_row = [
        "unsupported_claims",
        "unsupported_claims",
        "unsupported_claims",
        "unsupported_claims",
        "public_endpoint",
        "invalid_request",
    ];
    let expected: Vec<&str> = per_token
        .iter()
        .chain(per_token.iter())
        .chain(unusable_row.iter())
        .copied()
        .collect();
    assert_eq!(reasons, expected);
}

/// The tick sets the `<prefix>.vm.memory_bytes` gauge to the VM's linear
/// memory size, and counters are defined once each.
#[test]
fn memory_gauge_and_counters_defined_once() {
    use fhir_smart_authz::root::Root;
    let h = FakeHost::new(NOW * 1000);
    h.state.borrow_mut().memory_bytes = 3 * 65536;
    let mut root = Root::default();
    let factory = |c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        (Box::new(CoreTokens::new(c)), Box::new(CoreEngine))
    };
    assert!(root.configure(
        &h,
        Some(br#"{"metrics":{"prefix":"p"}}"#),
        &factory,
        AuditEncoding::Json
    ));
    root.tick(&h);
    assert_eq!(h.counter("p.vm.memory_bytes"), 196_608);
    h.state.borrow_mut().memory_bytes = 4 * 65536;
    root.tick(&h);
    assert_eq!(h.counter("p.vm.memory_bytes"), 262_144);

    let sh = shared(100);
    let token = token_with("RS256", &claims());
    let h = FakeHost::new(NOW * 1000);
    for _ in 0..3 {
        h.state.borrow_mut().request_headers = vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/fhir/Patient/123".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ];
        Stream::new(sh.clone()).on_request_headers(&h, true);
    }
    // Every counter defined once (all of them at the first decision: this
    // shell was not configured through a root), none again per request.
    let mut names = h.state.borrow().counter_names.clone();
    names.sort();
    let defined = names.len();
    names.dedup();
    assert_eq!(names.len(), defined, "a counter defined twice");
    assert_eq!(
        defined,
        fhir_smart_authz::metrics::COUNTERS.len()
            + fhir_smart_authz_core::decision::Reason::ALL.len()
    );
    assert_eq!(h.counter("fhir_smart_authz.token_cache.miss"), 1);
    assert_eq!(h.counter("fhir_smart_authz.token_cache.hit"), 2);
    assert_eq!(h.counter("fhir_smart_authz.decision.allow.allowed"), 3);
}
