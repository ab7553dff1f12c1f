//! The proxy-wasm shell's request flows against the fake host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::type_complexity
)]

use fhir_smart_authz::audit_property::resolve_audit_encoding;
use fhir_smart_authz::fake::{FakeEngine, FakeHost, FakeToken, FakeTokens};
use fhir_smart_authz::host::HostError;
use fhir_smart_authz::pbstruct::encode_struct;
use fhir_smart_authz::ports::{Engine, TokenPort};
use fhir_smart_authz::root::Root;
use fhir_smart_authz::{Flow, Shared, Stream};
use fhir_smart_authz_core::audit::AuditEncoding;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::{Interaction, InteractionKind, Level, RequestParts};
use serde_json::{json, Value};
use std::rc::Rc;

const NOW_MS: u64 = 1_795_614_593_123;

fn read_interaction() -> Interaction {
    let mut it = Interaction::new(InteractionKind::Read, Level::Instance);
    it.resource_type = Some("Observation".into());
    it.id = Some("o1".into());
    it
}

/// Engine: allow when claims carry scope "ok", 403 otherwise; 401 without token.
fn scripted_engine(body_needed: bool, obligations: bool) -> FakeEngine {
    FakeEngine {
        body_needed,
        decide: Box::new(move |req: &RequestParts, claims: Option<&Value>| {
            if req.path.contains("bad") {
                return Decision::deny(Reason::InvalidRequest, "the path is not a FHIR REST path");
            }
            match claims {
                None => Decision::deny(Reason::MissingToken, "this request needs a bearer token"),
                Some(c) if c["scope"] == "ok" => {
                    if body_needed
                        && req.body != Some(b"{\"resourceType\":\"Observation\"}".as_slice())
                    {
                        return Decision::deny(Reason::InvalidRequest, "unexpected body");
                    }
                    let mut d = Decision::allow(Reason::Allowed, read_interaction());
                    d.required_scopes = vec!["patient/Observation.rs".into()];
                    if obligations {
                        d.obligations = vec![Obligation::CheckResponseCompartment {
                            resource_type: "Observation".into(),
                            patient: "p1".into(),
                        }];
                    }
                    d
                }
                Some(_) => {
                    let mut d = Decision::deny(
                        Reason::InsufficientScope,
                        "read of Observation needs patient/Observation.rs",
                    )
                    .with_interaction(read_interaction());
                    d.required_scopes = vec![
                        "patient/Observation.rs".into(),
                        "user/Observation.rs".into(),
                    ];
                    d
                }
            }
        }),
        check: Box::new(|_o: &Obligation, v: &Value| {
            if v["subject"]["reference"] == "Patient/p1" {
                Ok(())
            } else {
                Err("Observation/o1 is not in the compartment of Patient/p1".into())
            }
        }),
    }
}

fn claims(scope: &str) -> Value {
    json!({"iss": "https://as", "sub": "u1", "client_id": "app", "scope": scope, "patient": "p1", "fhirUser": "Practitioner/pr1", "jti": "j-1"})
}

fn tokens() -> FakeTokens {
    let mut t = FakeTokens::default();
    t.tokens
        .insert("good".into(), FakeToken::Valid(claims("ok")));
    t.tokens.insert(
        "weak".into(),
        FakeToken::Valid(claims("patient/Patient.rs")),
    );
    t.tokens
        .insert("expired".into(), FakeToken::Invalid("the token expired"));
    t.tokens
        .insert("newkid".into(), FakeToken::NeedsKeys(claims("ok")));
    t.tokens
        .insert("opaque".into(), FakeToken::Introspect(claims("ok")));
    t
}

struct Setup {
    config: &'static str,
    body_needed: bool,
    obligations: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            config: "{}",
            body_needed: false,
            obligations: false,
        }
    }
}

fn stream(s: Setup) -> Stream {
    let config = Rc::new(Config::from_json(s.config.as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(tokens());
    let e: Box<dyn Engine> = Box::new(scripted_engine(s.body_needed, s.obligations));
    Stream::new(Shared::new(config, t, e, AuditEncoding::Json))
}

fn host(method: &str, path: &str, auth: Option<&str>, extra: &[(&str, &str)]) -> FakeHost {
    let h = FakeHost::new(NOW_MS);
    {
        let mut s = h.state.borrow_mut();
        s.request_headers = vec![
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            (":authority".into(), "fhir.example".into()),
            ("x-request-id".into(), "rid-7".into()),
        ];
        if let Some(a) = auth {
            s.request_headers.push(("authorization".into(), a.into()));
        }
        for (n, v) in extra {
            s.request_headers.push((n.to_string(), v.to_string()));
        }
    }
    h
}

fn audit(h: &FakeHost) -> Value {
    let s = h.state.borrow();
    let bytes = s
        .properties
        .get("fhir_smart_authz_audit")
        .expect("audit written");
    serde_json::from_slice(bytes).unwrap()
}

fn reply_header(h: &FakeHost, name: &str) -> Option<String> {
    let s = h.state.borrow();
    s.replies
        .last()?
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn reply_json(h: &FakeHost) -> Value {
    serde_json::from_slice(&h.state.borrow().replies.last().unwrap().body).unwrap()
}

#[test]
fn header_only_flows() {
    // (path, authorization, expected flow, reply status, www-authenticate, audit reason, metric)
    let cases: &[(
        &str,
        Option<&str>,
        Flow,
        Option<u16>,
        Option<&str>,
        &str,
        &str,
    )] = &[
        (
            "/fhir/Observation/o1",
            None,
            Flow::Pause,
            Some(401),
            Some(r#"Bearer realm="fhir""#),
            "missing_token",
            "fhir_smart_authz.decision.deny.missing_token",
        ),
        (
            "/fhir/Observation/o1",
            Some("Bearer expired"),
            Flow::Pause,
            Some(401),
            Some(
                r#"Bearer realm="fhir", error="invalid_token", error_description="the token expired""#,
            ),
            "invalid_token",
            "fhir_smart_authz.decision.deny.invalid_token",
        ),
        (
            "/fhir/Observation/o1",
            Some("Bearer weak"),
            Flow::Pause,
            Some(403),
            Some(
                r#"Bearer realm="fhir", error="insufficient_scope", scope="patient/Observation.rs user/Observation.rs", error_description="read of Observation needs patient/Observation.rs""#,
            ),
            "insufficient_scope",
            "fhir_smart_authz.decision.deny.insufficient_scope",
        ),
        (
            "/fhir/bad",
            Some("Bearer good"),
            Flow::Pause,
            Some(400),
            Some(
                r#"Bearer realm="fhir", error="invalid_request", error_description="the path is not a FHIR REST path""#,
            ),
            "invalid_request",
            "fhir_smart_authz.decision.deny.invalid_request",
        ),
        (
            "/fhir/Observation/o1",
            Some("Bearer good"),
            Flow::Continue,
            None,
            None,
            "allowed",
            "fhir_smart_authz.decision.allow.allowed",
        ),
    ];
    for (path, auth, flow, status, www, reason, metric) in cases {
        let h = host("GET", path, *auth, &[]);
        let mut s = stream(Setup::default());
        assert_eq!(s.on_request_headers(&h, true), *flow, "{path} {auth:?}");
        let st = h.state.borrow().replies.last().map(|r| r.status);
        assert_eq!(st, *status, "{path} {auth:?}");
        assert_eq!(
            reply_header(&h, "www-authenticate").as_deref(),
            *www,
            "{path} {auth:?}"
        );
        if status.is_some() {
            assert_eq!(
                reply_header(&h, "content-type").as_deref(),
                Some("application/fhir+json")
            );
            let oo = reply_json(&h);
            assert_eq!(oo["resourceType"], "OperationOutcome");
            assert_eq!(oo["issue"][0]["details"]["coding"][0]["code"], *reason);
            assert!(!oo.to_string().contains("expired\"") || *reason == "invalid_token");
        }
        let a = audit(&h);
        assert_eq!(a["reason"], *reason);
        assert_eq!(a["request_id"], "rid-7");
        assert_eq!(a["enforced"], true);
        assert_eq!(h.counter(metric), 1, "{metric}");
        assert_eq!(h.state.borrow().resumed_requests, 0);
    }
}

#[test]
fn allow_forwards_facts_and_removes_spoofed_headers() {
    let h = host(
        "GET",
        "/fhir/Observation/o1",
        Some("Bearer good"),
        &[
            ("x-smart-patient", "evil"),
            ("X-Smart-Scopes", "user/*.cruds"),
            ("x-smart-client-id", "evil"),
        ],
    );
    let mut s = stream(Setup {
        config: r#"{"upstream":{"forward_headers":["patient","scopes"],"strip_authorization":true}}"#,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    assert_eq!(h.request_header("x-smart-patient").as_deref(), Some("p1"));
    assert_eq!(h.request_header("x-smart-scope").as_deref(), Some("ok"));
    assert_eq!(
        h.request_header("x-smart-client-id"),
        None,
        "spoofed, not forwarded"
    );
    assert!(!h
        .state
        .borrow()
        .request_headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("X-Smart-Scopes") && n != "x-smart-scopes"));
    assert_eq!(
        h.request_header("authorization"),
        None,
        "strip_authorization"
    );
    let a = audit(&h);
    assert_eq!(
        a["agent"],
        json!({"client_id": "app", "user": "Practitioner/pr1", "requestor": true})
    );
    assert_eq!(a["policy"], "urn:ietf:params:oauth:jti:j-1");
    assert_eq!(
        a["entity"],
        json!({"reference": "Observation/o1", "resource_type": "Observation", "id": "o1", "patient": "Patient/p1"})
    );
    assert_eq!(a["recorded"], "2026-11-25T13:49:53.123Z");
    assert_eq!(h.counter("fhir_smart_authz.token_cache.miss"), 1);
}

#[test]
fn spoofed_headers_removed_even_when_denied_or_anonymous() {
    let h = host(
        "GET",
        "/fhir/Observation/o1",
        None,
        &[("x-smart-patient", "evil")],
    );
    let mut s = stream(Setup {
        config: r#"{"enforce": false}"#,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    assert_eq!(h.request_header("x-smart-patient"), None);
}

#[test]
fn spoofed_header_that_cannot_be_removed_is_never_forwarded() {
    // Even in shadow mode: forwarding would hand the upstream a forged identity.
    for config in [r#"{}"#, r#"{"enforce": false}"#] {
        let h = host(
            "GET",
            "/fhir/Observation/o1",
            Some("Bearer good"),
            &[("x-smart-patient", "evil")],
        );
        h.state.borrow_mut().fail_header_removal = true;
        let mut s = stream(Setup {
            config,
            ..Setup::default()
        });
        assert_eq!(s.on_request_headers(&h, true), Flow::Pause, "{config}");
        let st = h.state.borrow();
        assert_eq!(st.replies.len(), 1, "{config}");
        assert_eq!(st.replies[0].status, 500, "{config}");
        let body: Value = serde_json::from_slice(&st.replies[0].body).unwrap();
        assert_eq!(body["issue"][0]["code"], "exception");
        assert_eq!(st.resumed_requests, 0);
    }
}

#[test]
fn shadow_mode_never_denies_but_audits() {
    for auth in [None, Some("Bearer weak"), Some("Bearer expired")] {
        let h = host("GET", "/fhir/Observation/o1", auth, &[]);
        let mut s = stream(Setup {
            config: r#"{"enforce": false}"#,
            ..Setup::default()
        });
        assert_eq!(s.on_request_headers(&h, true), Flow::Continue, "{auth:?}");
        assert!(h.state.borrow().replies.is_empty());
        let a = audit(&h);
        assert_eq!(a["decision"], "deny");
        assert_eq!(a["enforced"], false);
        assert_eq!(h.counter("fhir_smart_authz.shadow.would_deny"), 1);
    }
}

#[test]
fn unreadable_request_body_is_refused_not_decided_as_empty() {
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    h.state.borrow_mut().request_body = b"{\"resourceType\":\"Observation\"}".to_vec();
    let mut s = stream(Setup {
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
    h.state.borrow_mut().fail_body_read = true;
    assert_eq!(s.on_request_body(&h, 30, true), Flow::Pause);
    let st = h.state.borrow();
    assert_eq!(st.replies.len(), 1);
    assert_eq!(st.replies[0].status, 500);
    assert!(st.properties.is_empty(), "no decision was taken");
}

#[test]
fn body_needed_then_decided() {
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    h.state.borrow_mut().request_body = b"{\"resourceType\":\"Observation\"}".to_vec();
    let mut s = stream(Setup {
        body_needed: true,
        ..Setup::default()
    });
    // Headers are released once the token is verified (Envoy delivers no body
    // callbacks while headers are held); the body is buffered and decided at its end.
    assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
    assert_eq!(h.request_header("x-smart-patient").as_deref(), Some("p1"));
    assert!(h.state.borrow().properties.is_empty(), "not decided yet");
    assert_eq!(s.on_request_body(&h, 10, false), Flow::Pause);
    assert_eq!(s.on_request_body(&h, 30, true), Flow::Continue);
    assert_eq!(audit(&h)["decision"], "allow");
    assert_eq!(
        h.state.borrow().resumed_requests,
        0,
        "decided inside a callback: no resume"
    );
    assert!(h.state.borrow().replies.is_empty());

    // The same with a body the engine refuses: local reply at the end of the body.
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    h.state.borrow_mut().request_body = b"{}".to_vec();
    let mut s = stream(Setup {
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
    assert_eq!(s.on_request_body(&h, 2, true), Flow::Pause);
    let st = h.state.borrow().replies.last().map(|r| r.status);
    assert_eq!(st, Some(400));
}

#[test]
fn body_needed_but_absent_is_decided_on_an_empty_body() {
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        body_needed: true,
        ..Setup::default()
    });
    // The scripted engine refuses anything but the expected body.
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(400));
}

#[test]
fn body_not_needed_is_not_buffered() {
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
    assert_eq!(s.on_request_body(&h, 5_000_000, true), Flow::Continue);
}

#[test]
fn body_too_large() {
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        config: r#"{"max_body_bytes": 100}"#,
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
    assert_eq!(s.on_request_body(&h, 100, false), Flow::Pause);
    assert!(h.state.borrow().replies.is_empty());
    assert_eq!(s.on_request_body(&h, 101, false), Flow::Pause);
    let st = h.state.borrow().replies.last().map(|r| r.status);
    assert_eq!(st, Some(413));
    assert_eq!(reply_json(&h)["issue"][0]["code"], "too-long");
    assert_eq!(audit(&h)["reason"], "body_too_large");
    // Later chunks are dropped, never continued.
    assert_eq!(s.on_request_body(&h, 200, true), Flow::Pause);
}

#[test]
fn key_fetch_pauses_and_resumes_exactly_once() {
    let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
    h.state.borrow_mut().request_body = b"{\"resourceType\":\"Observation\"}".to_vec();
    let mut s = stream(Setup {
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(h.state.borrow().calls.len(), 1);
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "200".into())];
        st.call_response_body = b"{\"keys\":[]}".to_vec();
    }
    s.on_call_response(&h, 99, 11); // unknown token id: ignored
    assert_eq!(h.state.borrow().resumed_requests, 0);
    s.on_call_response(&h, 1, 11);
    assert_eq!(
        h.state.borrow().resumed_requests,
        1,
        "headers released for the body"
    );
    s.on_call_response(&h, 1, 11); // duplicate: ignored
    assert_eq!(h.state.borrow().resumed_requests, 1);
    // The body arrives after the resume and is decided synchronously.
    assert_eq!(s.on_request_body(&h, 30, true), Flow::Continue);
    assert_eq!(h.state.borrow().resumed_requests, 1);
    assert_eq!(audit(&h)["decision"], "allow");
    assert_eq!(h.counter("fhir_smart_authz.jwks_fetch.success"), 1);
    // The fetched JWKS is shared with the other VMs, stamped with the time.
    let shared = h
        .state
        .borrow()
        .shared
        .get("fhir_smart_authz.jwks.0.")
        .cloned()
        .unwrap()
        .0;
    assert_eq!(&shared[..8], &NOW_MS.to_be_bytes());
    assert_eq!(&shared[8..], b"{\"keys\":[]}");

    // Without a body: decided on the call answer, resumed once.
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    h.state.borrow_mut().call_response_headers = vec![(":status".into(), "200".into())];
    s.on_call_response(&h, 1, 0);
    assert_eq!(h.state.borrow().resumed_requests, 1);
    assert_eq!(audit(&h)["decision"], "allow");
}

#[test]
fn key_fetch_failure_denies_without_resume() {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    h.state.borrow_mut().call_response_headers = vec![(":status".into(), "503".into())];
    s.on_call_response(&h, 1, 0);
    assert_eq!(h.state.borrow().resumed_requests, 0);
    let st = h.state.borrow().replies.last().map(|r| r.status);
    assert_eq!(st, Some(401));
    assert_eq!(audit(&h)["reason"], "keys_unavailable");
    assert_eq!(h.counter("fhir_smart_authz.jwks_fetch.failure"), 1);
}

#[test]
fn dispatch_failure_fails_closed() {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer opaque"), &[]);
    h.state.borrow_mut().fail_calls = true;
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    let st = h.state.borrow().replies.last().map(|r| r.status);
    assert_eq!(st, Some(401));
    assert_eq!(audit(&h)["reason"], "introspection_unavailable");
    assert_eq!(h.counter("fhir_smart_authz.introspection.failure"), 1);
}

#[test]
fn introspection_success_resumes() {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer opaque"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    h.state.borrow_mut().call_response_headers = vec![(":status".into(), "200".into())];
    s.on_call_response(&h, 1, 0);
    assert_eq!(h.state.borrow().resumed_requests, 1);
    assert_eq!(h.counter("fhir_smart_authz.introspection.success"), 1);
    assert_eq!(h.request_header("x-smart-patient").as_deref(), Some("p1"));
}

fn obligation_run(config: &'static str, status: &str, body: &str) -> (FakeHost, Flow) {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        config,
        obligations: true,
        ..Setup::default()
    });
    let f = s.on_request_headers(&h, true);
    assert_eq!(f, Flow::Pause, "held while the filter fetches the response");
    assert_eq!(audit(&h)["obligation"], "pending");
    {
        let st = h.state.borrow();
        let (id, call) = st.calls.last().cloned().unwrap();
        assert_eq!(id, 1);
        assert_eq!(call.cluster, "fhir");
        assert!(call
            .headers
            .contains(&(":path".into(), "/fhir/Observation/o1".into())));
        assert!(call
            .headers
            .contains(&("x-smart-patient".into(), "p1".into())));
    }
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![
            (":status".into(), status.into()),
            ("content-type".into(), "application/fhir+json".into()),
            ("content-length".into(), body.len().to_string()),
            ("etag".into(), "W/\"3\"".into()),
        ];
        st.call_response_body = body.as_bytes().to_vec();
    }
    s.on_call_response(&h, 1, body.len());
    (h, f)
}

#[test]
fn response_obligation_pass_relays_the_response() {
    let body = r#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}"#;
    let (h, _) = obligation_run("{}", "200", body);
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, body.as_bytes());
    assert_eq!(
        r.headers,
        vec![
            (
                "content-type".to_string(),
                "application/fhir+json".to_string()
            ),
            ("etag".to_string(), "W/\"3\"".to_string())
        ]
    );
    assert_eq!(audit(&h)["obligation"], "passed");
    assert_eq!(h.counter("fhir_smart_authz.response_check.pass"), 1);
    assert_eq!(h.state.borrow().resumed_requests, 0);
}

#[test]
fn response_obligation_fail_is_replaced() {
    let other = r#"{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}"#;
    for (config, status, code) in [
        ("{}", 403, "forbidden"),
        (
            r#"{"responses":{"obligation_denied_status":404}}"#,
            404,
            "not-found",
        ),
    ] {
        let (h, _) = obligation_run(config, "200", other);
        let r = h.state.borrow().replies.last().cloned().unwrap();
        assert_eq!(r.status, status);
        assert!(
            !String::from_utf8_lossy(&r.body).contains("p2\"}"),
            "the resource is not leaked"
        );
        assert_eq!(reply_json(&h)["issue"][0]["code"], code);
        let a = audit(&h);
        assert_eq!(a["obligation"], "failed");
        assert_eq!(a["decision"], "deny");
        assert_eq!(a["reason"], "response_not_permitted");
        assert_eq!(a["status"], status);
        assert_eq!(h.counter("fhir_smart_authz.response_check.fail"), 1);
    }
    // Not JSON: fail closed.
    let (h, _) = obligation_run("{}", "200", "<html>");
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(403));
    // Error statuses are relayed untouched.
    let (h, _) = obligation_run("{}", "404", r#"{"resourceType":"OperationOutcome"}"#);
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(404));
    assert_eq!(audit(&h)["obligation"], "passed");
    // Shadow mode: audited, relayed.
    let (h, _) = obligation_run(r#"{"enforce": false}"#, "200", other);
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, other.as_bytes());
    assert_eq!(audit(&h)["obligation"], "failed");
    assert_eq!(audit(&h)["enforced"], false);
}

#[test]
fn response_obligation_too_large_or_upstream_down() {
    let (h, _) = obligation_run(
        r#"{"max_body_bytes": 10}"#,
        "200",
        r#"{"resourceType":"Observation"}"#,
    );
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(403));
    assert_eq!(audit(&h)["obligation"], "failed");

    // The call fails (no :status): 502, never the unchecked resource.
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        obligations: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    s.on_call_response(&h, 1, 0);
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(502));

    // The cluster is unknown: 502 right away.
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    h.state.borrow_mut().fail_calls = true;
    let mut s = stream(Setup {
        obligations: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(502));
}

#[test]
fn discovery_document_served() {
    let cfg = r#"{"discovery":{"authorization_endpoint":"https://as/authorize","token_endpoint":"https://as/token","capabilities":["launch-standalone"]}}"#;
    let h = host(
        "GET",
        "/fhir/.well-known/smart-configuration?x=1",
        None,
        &[("accept", "text/html")],
    );
    let mut s = stream(Setup {
        config: cfg,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(r.status, 200);
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(doc["token_endpoint"], "https://as/token");
    let a = audit(&h);
    assert_eq!(a["reason"], "public_endpoint");
    assert_eq!(a["subtype"], "smart-configuration");
    assert_eq!(
        h.counter("fhir_smart_authz.decision.allow.public_endpoint"),
        1
    );
    // Without `discovery` the request goes through the normal flow.
    let h = host("GET", "/fhir/.well-known/smart-configuration", None, &[]);
    let mut s = stream(Setup::default());
    s.on_request_headers(&h, true);
    assert_eq!(audit(&h)["reason"], "missing_token");
}

#[test]
fn multiple_credentials_400() {
    let h = host(
        "GET",
        "/fhir/Observation/o1",
        Some("Bearer good"),
        &[("authorization", "Bearer weak")],
    );
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    let st = h.state.borrow().replies.last().map(|r| r.status);
    assert_eq!(st, Some(400));
    assert_eq!(audit(&h)["reason"], "multiple_credentials");
}

#[test]
fn root_configure_rejects_invalid_json_naming_the_field() {
    let h = FakeHost::new(NOW_MS);
    let mut root = Root::default();
    let factory = |c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        let _ = c;
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    assert!(!root.configure(
        &h,
        Some(br#"{"metrics":{"prefx":"a"}}"#),
        &factory,
        AuditEncoding::Json
    ));
    let logs = h.state.borrow().logs.clone();
    assert!(
        logs.iter()
            .any(|(_, m)| m.contains("`metrics.prefx`") || m.contains("prefx")),
        "{logs:?}"
    );
    assert!(root.shared.is_none());
    assert!(root.configure(&h, None, &factory, AuditEncoding::Json));
    assert_eq!(h.state.borrow().tick_ms, 1000);
}

#[test]
fn root_shares_jwks_fetches_across_vms() {
    let factory = |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        let mut t = tokens();
        t.fetched = vec![0];
        t.due = vec![(0, fhir_smart_authz::fake::jwks_call())];
        (Box::new(t), Box::new(scripted_engine(false, false)))
    };
    let cfg = br#"{"fhir_base_url":"https://fhir.example/fhir","issuers":[{"issuer":"https://as","jwks_uri":"https://as/jwks","jwks_cluster":"issuer"}]}"#;
    // VM A wins the lease and fetches.
    let a = FakeHost::new(NOW_MS);
    let mut root_a = Root::default();
    assert!(root_a.configure(&a, Some(cfg), &factory, AuditEncoding::Json));
    assert_eq!(
        a.state.borrow().calls.len(),
        0,
        "no calls during on_configure"
    );
    root_a.tick(&a);
    assert_eq!(a.state.borrow().calls.len(), 1);
    // VM B (same shared data) sees the lease and does not fetch.
    let b = FakeHost::new(NOW_MS);
    b.state.borrow_mut().shared = a.state.borrow().shared.clone();
    let mut root_b = Root::default();
    assert!(root_b.configure(&b, Some(cfg), &factory, AuditEncoding::Json));
    root_b.tick(&b);
    assert_eq!(b.state.borrow().calls.len(), 0);
    // A's fetch answers; the JWKS lands in shared data; B picks it up on tick.
    {
        let mut st = a.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "200".into())];
        st.call_response_body = b"{\"keys\":[1]}".to_vec();
    }
    root_a.on_call_response(&a, 1, 12);
    assert_eq!(a.counter("fhir_smart_authz.jwks_fetch.success"), 1);
    b.state.borrow_mut().shared = a.state.borrow().shared.clone();
    root_b.tick(&b);
    // B's fake token port got the bytes (observable through a second tick: no refetch, no panic).
    let key = "fhir_smart_authz.jwks.0.https://as";
    let v = b.state.borrow().shared.get(key).cloned().unwrap().0;
    assert_eq!(&v[8..], b"{\"keys\":[1]}");
}

const GOOD_BODY: &[u8] = b"{\"resourceType\":\"Observation\"}";

fn replies(h: &FakeHost) -> Vec<u16> {
    h.state.borrow().replies.iter().map(|r| r.status).collect()
}

fn resumed(h: &FakeHost) -> u32 {
    h.state.borrow().resumed_requests
}

#[test]
fn hold_mode_keeps_headers_until_the_body_decision() {
    const HOLD: &str = r#"{"upstream":{"hold_headers_for_body":true}}"#;
    // (body, expected reply, expected final flow)
    for (body, reply, last) in [
        (GOOD_BODY, None, Flow::Continue),
        (b"{}".as_slice(), Some(400), Flow::Pause),
    ] {
        let h = host(
            "POST",
            "/fhir/Observation",
            Some("Bearer good"),
            &[("x-smart-patient", "spoofed")],
        );
        h.state.borrow_mut().request_body = body.to_vec();
        let mut s = stream(Setup {
            config: HOLD,
            body_needed: true,
            ..Setup::default()
        });
        // Headers held (Envoy: StopIteration), facts already set on them.
        assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
        assert_eq!(h.request_header("x-smart-patient").as_deref(), Some("p1"));
        assert!(h.state.borrow().properties.is_empty(), "not decided yet");
        assert_eq!(s.on_request_body(&h, 10, false), Flow::Pause);
        assert_eq!(s.on_request_body(&h, body.len(), true), last);
        assert_eq!(replies(&h), reply.into_iter().collect::<Vec<_>>());
        assert_eq!(resumed(&h), 0, "decided inside the body callback");
        let expected = if reply.is_none() { "allow" } else { "deny" };
        assert_eq!(audit(&h)["decision"], expected);
    }

    // Over max_body_bytes while held: 413, never continued.
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        config: r#"{"max_body_bytes": 100, "upstream":{"hold_headers_for_body":true}}"#,
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(s.on_request_body(&h, 101, false), Flow::Pause);
    assert_eq!(replies(&h), vec![413]);
    assert_eq!(s.on_request_body(&h, 200, true), Flow::Pause);
    assert_eq!(resumed(&h), 0);

    // Requests without a body decision are not held.
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        config: HOLD,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        config: HOLD,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
    assert_eq!(s.on_request_body(&h, 5, true), Flow::Continue);
    // A body-needed request without a body is decided on the headers.
    let h = host("POST", "/fhir/Observation", Some("Bearer good"), &[]);
    let mut s = stream(Setup {
        config: HOLD,
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    assert_eq!(replies(&h), vec![400]);
}

#[test]
fn hold_mode_key_fetch_then_body_is_never_resumed_early() {
    let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
    h.state.borrow_mut().request_body = GOOD_BODY.to_vec();
    let mut s = stream(Setup {
        config: r#"{"upstream":{"hold_headers_for_body":true}}"#,
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    h.state.borrow_mut().call_response_headers = vec![(":status".into(), "200".into())];
    s.on_call_response(&h, 1, 0);
    assert_eq!(resumed(&h), 0, "still held for the body");
    assert_eq!(h.request_header("x-smart-patient").as_deref(), Some("p1"));
    assert_eq!(s.on_request_body(&h, GOOD_BODY.len(), true), Flow::Continue);
    assert_eq!(resumed(&h), 0);
    assert_eq!(audit(&h)["decision"], "allow");
}

#[test]
fn body_delivered_while_token_pending_is_decided_when_the_token_resolves() {
    // Both modes: a body callback during the token pause means the host
    // delivers bodies to paused headers (allow_on_headers_stop_iteration).
    for config in ["{}", r#"{"upstream":{"hold_headers_for_body":true}}"#] {
        for (body, token_status, resumes, reply) in [
            (GOOD_BODY, "200", 1, None),
            (b"{}".as_slice(), "200", 0, Some(400)),
            (GOOD_BODY, "503", 0, Some(401)),
        ] {
            let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
            h.state.borrow_mut().request_body = body.to_vec();
            let mut s = stream(Setup {
                config,
                body_needed: true,
                ..Setup::default()
            });
            assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
            assert_eq!(s.on_request_body(&h, 1, false), Flow::Pause);
            assert_eq!(s.on_request_body(&h, body.len(), true), Flow::Pause);
            assert!(h.state.borrow().properties.is_empty(), "not decided yet");
            h.state.borrow_mut().call_response_headers =
                vec![(":status".into(), token_status.into())];
            s.on_call_response(&h, 1, 0);
            assert_eq!(resumed(&h), resumes, "{config} {token_status}");
            assert_eq!(replies(&h), reply.into_iter().collect::<Vec<_>>());
            s.on_call_response(&h, 1, 0); // duplicate: ignored
            assert_eq!(resumed(&h), resumes);
        }
        // Part of the body before the token resolves: held in either mode,
        // decided on the complete body.
        let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
        h.state.borrow_mut().request_body = GOOD_BODY.to_vec();
        let mut s = stream(Setup {
            config,
            body_needed: true,
            ..Setup::default()
        });
        assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
        assert_eq!(s.on_request_body(&h, 3, false), Flow::Pause);
        h.state.borrow_mut().call_response_headers = vec![(":status".into(), "200".into())];
        s.on_call_response(&h, 1, 0);
        assert_eq!(resumed(&h), 0, "{config}: not released with half a body");
        assert_eq!(s.on_request_body(&h, GOOD_BODY.len(), true), Flow::Continue);
        assert_eq!(audit(&h)["decision"], "allow");
    }

    // Too large while the token is pending: 413 at once; the late key answer
    // is taken by the key store but decides nothing.
    let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup {
        config: r#"{"max_body_bytes": 100}"#,
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(s.on_request_body(&h, 101, false), Flow::Pause);
    assert_eq!(replies(&h), vec![413]);
    h.state.borrow_mut().call_response_headers = vec![(":status".into(), "200".into())];
    s.on_call_response(&h, 1, 0);
    assert_eq!(replies(&h), vec![413]);
    assert_eq!(resumed(&h), 0);
    assert_eq!(audit(&h)["reason"], "body_too_large");
    assert_eq!(h.counter("fhir_smart_authz.jwks_fetch.success"), 1);

    // A body that is not needed is buffered by Envoy until the token resolves.
    let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(s.on_request_body(&h, 3, true), Flow::Pause);
    h.state.borrow_mut().call_response_headers = vec![(":status".into(), "200".into())];
    s.on_call_response(&h, 1, 0);
    assert_eq!(resumed(&h), 1);
    assert_eq!(audit(&h)["decision"], "allow");
}

// --- key rotation across worker VMs ------------------------------------------

const ROT_CFG: &[u8] = br#"{"fhir_base_url":"https://fhir.example/fhir","issuers":[{"issuer":"https://as","jwks_uri":"https://as/jwks","jwks_cluster":"issuer","jwks_min_refetch_seconds":30}]}"#;

/// One worker VM: its host (sharing `store` with the others), its root, and
/// a token port allowed `budget` unknown-kid fetches of its own.
fn vm(store: &fhir_smart_authz::fake::SharedStore, budget: u32, now_ms: u64) -> (FakeHost, Root) {
    let factory = move |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        let mut t = tokens();
        t.fetched = vec![0];
        t.fetch_budget = budget;
        t.tokens
            .insert("rotated".into(), FakeToken::NewKid(claims("ok")));
        (Box::new(t), Box::new(scripted_engine(false, false)))
    };
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer rotated"), &[]);
    {
        let mut s = h.state.borrow_mut();
        s.now_ms = now_ms;
        s.shared_store = Some(store.clone());
    }
    let mut root = Root::default();
    assert!(root.configure(&h, Some(ROT_CFG), &factory, AuditEncoding::Json));
    (h, root)
}

fn vm_stream(root: &Root, context_id: u32) -> Rc<std::cell::RefCell<Stream>> {
    Stream::new_shared(root.shared.clone().unwrap(), context_id)
}

fn answer_jwks(h: &FakeHost, status: &str, body: &[u8]) {
    let mut st = h.state.borrow_mut();
    st.call_response_headers = vec![(":status".into(), status.into())];
    st.call_response_body = body.to_vec();
}

const NEW_JWKS: &[u8] = b"{\"keys\":[\"new\"]}";

#[test]
fn rotated_kid_uses_the_key_set_another_vm_shared() {
    let store = fhir_smart_authz::fake::SharedStore::default();
    // VM A sees the new kid first and fetches (it takes the cross-VM lease).
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    assert_eq!(a.state.borrow().calls.len(), 1);
    answer_jwks(&a, "200", NEW_JWKS);
    sa.borrow_mut().on_call_response(&a, 1, NEW_JWKS.len());
    assert_eq!(resumed(&a), 1);
    assert_eq!(audit(&a)["decision"], "allow");
    // VM B, 300 ms later, before its 1 s tick: its own fetch is rate-limited,
    // but the key set A shared verifies the token: no 401, no second fetch.
    let (b, root_b) = vm(&store, 0, NOW_MS + 300);
    let sb = vm_stream(&root_b, 1);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Continue);
    assert_eq!(audit(&b)["decision"], "allow");
    assert!(b.state.borrow().calls.is_empty());
    assert!(replies(&b).is_empty());
    // VM C whose port would fetch: A's fetch 500 ms ago holds the lease
    // (jwks_min_refetch_seconds across VMs); the shared set verifies it.
    let (c, root_c) = vm(&store, 1, NOW_MS + 500);
    let sc = vm_stream(&root_c, 1);
    assert_eq!(sc.borrow_mut().on_request_headers(&c, true), Flow::Continue);
    assert!(c.state.borrow().calls.is_empty());
    // A kid that is in no key set: A's fetch (moments ago) did not have it;
    // B refuses at once, without a fetch of its own and without waiting
    // (at most one fetch per jwks_min_refetch_seconds across VMs).
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    answer_jwks(&a, "200", b"{\"keys\":[\"old\"]}");
    sa.borrow_mut().on_call_response(&a, 1, 14);
    assert_eq!(replies(&a), vec![401]);
    let (b, root_b) = vm(&store, 1, NOW_MS + 300);
    let sb = vm_stream(&root_b, 1);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    assert_eq!(replies(&b), vec![401]);
    assert!(b.state.borrow().calls.is_empty());
    assert!(root_b
        .shared
        .as_ref()
        .unwrap()
        .jwks
        .waiting
        .borrow()
        .is_empty());
}

#[test]
fn rotated_kid_waits_for_the_fetch_in_flight_on_another_vm() {
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    // B's port would fetch too, but A's fetch is in flight: B waits, no call.
    let (b, mut root_b) = vm(&store, 1, NOW_MS + 100);
    let sb = vm_stream(&root_b, 42);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    assert!(b.state.borrow().calls.is_empty(), "no stampede");
    assert!(replies(&b).is_empty(), "no 401 while A fetches");
    assert_eq!(b.state.borrow().tick_ms, 50, "short tick while waiting");
    root_b.tick(&b); // A has not answered yet: still waiting
    assert_eq!(resumed(&b), 0);
    // A's fetch lands in shared data; B's next tick resumes the request.
    answer_jwks(&a, "200", NEW_JWKS);
    sa.borrow_mut().on_call_response(&a, 1, NEW_JWKS.len());
    b.state.borrow_mut().now_ms += 50;
    root_b.tick(&b);
    assert_eq!(b.state.borrow().effective_context, Some(42));
    assert_eq!(resumed(&b), 1);
    assert_eq!(audit(&b)["decision"], "allow");
    assert_eq!(b.request_header("x-smart-patient").as_deref(), Some("p1"));
    assert_eq!(b.state.borrow().tick_ms, 1000, "back to the 1 s tick");
    root_b.tick(&b);
    assert_eq!(resumed(&b), 1, "resumed exactly once");
}

#[test]
fn waiting_for_another_vm_is_bounded() {
    // A's fetch fails: the lease is released and B fetches itself.
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    let (b, mut root_b) = vm(&store, 2, NOW_MS + 100);
    let sb = vm_stream(&root_b, 9);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    answer_jwks(&a, "503", b"");
    sa.borrow_mut().on_call_response(&a, 1, 0);
    assert_eq!(replies(&a), vec![401]);
    root_b.tick(&b);
    assert_eq!(b.state.borrow().calls.len(), 1, "B takes the free lease");
    answer_jwks(&b, "200", NEW_JWKS);
    sb.borrow_mut().on_call_response(&b, 1, NEW_JWKS.len());
    assert_eq!(resumed(&b), 1);
    assert_eq!(audit(&b)["decision"], "allow");

    // A's fetch never answers: B answers 401 once its wait times out
    // (jwks_timeout_ms + 1 s), without fetching.
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    let (b, mut root_b) = vm(&store, 1, NOW_MS + 100);
    let sb = vm_stream(&root_b, 9);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    b.state.borrow_mut().now_ms = NOW_MS + 3000;
    root_b.tick(&b);
    assert!(replies(&b).is_empty(), "still within the bound");
    b.state.borrow_mut().now_ms = NOW_MS + 100 + 6000;
    root_b.tick(&b);
    assert_eq!(replies(&b), vec![401]);
    assert_eq!(audit(&b)["reason"], "invalid_token");
    assert!(b.state.borrow().calls.is_empty());
    assert_eq!(resumed(&b), 0);
    drop(sb);
}

/// Configure a root with `cfg` as `on_configure` does (declaring lazily
/// through `resolve_audit_encoding`), run one allowed read, and return the
/// audit property's bytes, the encoding chosen and how often the property was
/// declared.
fn audit_bytes_for(cfg: &[u8]) -> (Vec<u8>, AuditEncoding, usize) {
    let factory = |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        (Box::new(tokens()), Box::new(scripted_engine(false, false)))
    };
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut root = Root::default();
    let mut declared = None;
    let mut declares = 0;
    let mut declare = || -> Result<(), HostError> {
        declares += 1;
        Ok(())
    };
    assert!(root.configure_with(&h, Some(cfg), &factory, &mut |c| {
        resolve_audit_encoding(&h, c, &mut declared, &mut declare)
    }));
    let shared = root.shared.clone().unwrap();
    let encoding = shared.audit_encoding;
    let mut s = Stream::new(shared);
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    let bytes = h.state.borrow().properties["fhir_smart_authz_audit"].clone();
    (bytes, encoding, declares)
}

#[test]
fn audit_encoding_json_writes_the_struct_modes_record_as_json_text() {
    let (struct_bytes, struct_enc, struct_declares) = audit_bytes_for(b"{}");
    assert_eq!(struct_enc, AuditEncoding::Struct);
    assert_eq!(struct_declares, 1, "struct mode declares the property");
    let (json_bytes, json_enc, json_declares) =
        audit_bytes_for(br#"{"audit":{"encoding":"json"}}"#);
    assert_eq!(json_enc, AuditEncoding::Json);
    assert_eq!(json_declares, 0, "json mode never declares the property");
    // The JSON text is the record itself, compact serde_json text…
    let record: Value = serde_json::from_slice(&json_bytes).unwrap();
    assert_eq!(json_bytes, record.to_string().into_bytes());
    assert_eq!(record["subtype"], "read");
    assert_eq!(record["outcome"], "0");
    // …and exactly what struct mode serialized as a google.protobuf.Struct.
    assert_eq!(encode_struct(&record), struct_bytes);
}

#[test]
fn audit_encoding_is_declared_once_per_root_and_never_contradicts_a_declaration() {
    let h = FakeHost::new(NOW_MS);
    let json_cfg = Config::from_json(br#"{"audit":{"encoding":"json"}}"#).unwrap();
    let struct_cfg = Config::from_json(b"{}").unwrap();
    let ok = || -> Result<(), HostError> { Ok(()) };
    let refused = || -> Result<(), HostError> { Err(HostError::NotFound) };
    // (configs in order, declare outcome, expected encodings, declare calls)
    let cases: &[(&[&Config], bool, &[AuditEncoding], usize)] = &[
        (&[&json_cfg], true, &[AuditEncoding::Json], 0),
        (&[&struct_cfg], true, &[AuditEncoding::Struct], 1),
        (
            &[&json_cfg, &struct_cfg],
            true,
            &[AuditEncoding::Json, AuditEncoding::Struct],
            1,
        ),
        // Declared as Struct: a later "json" config stays Struct (JSON text
        // would not parse as the declared Struct).
        (
            &[&struct_cfg, &json_cfg, &struct_cfg],
            true,
            &[
                AuditEncoding::Struct,
                AuditEncoding::Struct,
                AuditEncoding::Struct,
            ],
            1,
        ),
        // Host refuses: JSON text, asked once.
        (
            &[&struct_cfg, &struct_cfg],
            false,
            &[AuditEncoding::Json, AuditEncoding::Json],
            1,
        ),
    ];
    for (i, (configs, accept, want, want_calls)) in cases.iter().enumerate() {
        let mut declared = None;
        let mut calls = 0;
        let mut declare = || {
            calls += 1;
            if *accept {
                ok()
            } else {
                refused()
            }
        };
        let got: Vec<AuditEncoding> = configs
            .iter()
            .map(|c| resolve_audit_encoding(&h, c, &mut declared, &mut declare))
            .collect();
        assert_eq!(&got, want, "case {i}");
        assert_eq!(calls, *want_calls, "case {i}");
    }
}
