//! Decisions on headers alone: allow/deny replies, forwarded facts, anti-spoofing, shadow mode, the discovery document.

use super::*;

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

/// A fact header the host refuses to set, or an `Authorization` header it
/// refuses to strip (`upstream.strip_authorization`): the upstream would miss
/// a fact it relies on or still see the token. Refused with a 500
/// `internal_error`, audited and counted, in shadow mode too; nothing goes on.
#[test]
fn a_fact_header_or_token_removal_the_host_refuses_is_never_forwarded() {
    let cases: &[(&str, &str, &str)] = &[
        ("x-smart-patient", "{}", "set the x-smart-patient header"),
        ("x-smart-scope", "{}", "set the x-smart-scope header"),
        (
            "authorization",
            r#"{"upstream":{"strip_authorization":true}}"#,
            "remove the Authorization header (upstream.strip_authorization)",
        ),
    ];
    for &(refused, config, what) in cases {
        for enforce in [true, false] {
            let case = format!("{refused}, enforce {enforce}");
            let config: &'static str = if enforce {
                config
            } else if config == "{}" {
                r#"{"enforce":false}"#
            } else {
                r#"{"enforce":false,"upstream":{"strip_authorization":true}}"#
            };
            let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
            if refused == "authorization" {
                h.state.borrow_mut().fail_header_removal = true;
            } else {
                h.state.borrow_mut().fail_header_set_of = vec![refused.to_string()];
            }
            let mut s = stream(Setup {
                config,
                ..Setup::default()
            });
            assert_eq!(s.on_request_headers(&h, true), Flow::Pause, "{case}");
            assert_eq!(replies(&h), vec![500], "{case}");
            assert_eq!(h.state.borrow().resumed_requests, 0, "{case}");
            let body = reply_json(&h);
            // the client reads it without the configuration key; the audit record keeps it
            assert_eq!(
                body["issue"][0]["diagnostics"],
                client_text(&format!(
                    "the gateway could not {what}; the request was not forwarded"
                )),
                "{case}"
            );
            assert!(!body.to_string().contains("upstream."), "{case}");
            let a = audit(&h);
            assert_eq!(
                a["message"],
                format!("the gateway could not {what}; the request was not forwarded"),
                "{case}"
            );
            assert_eq!(
                (
                    a["decision"].as_str(),
                    a["reason"].as_str(),
                    a["status"].as_u64()
                ),
                (Some("deny"), Some("internal_error"), Some(500)),
                "{case}"
            );
            assert_eq!(
                h.counter("fhir_smart_authz.decision.deny.internal_error"),
                1,
                "{case}"
            );
            assert_eq!(
                h.counter("fhir_smart_authz.decision.allow.allowed"),
                0,
                "{case}"
            );
        }
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
    // cacheable, and Envoy's CORS filter echoes the Origin into it
    assert!(r.headers.contains(&("vary".into(), "Origin".into())));
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
