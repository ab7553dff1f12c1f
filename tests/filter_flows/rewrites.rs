//! Narrowed allows: the request the upstream receives carries the
//! decision's rewritten `:path` and `Prefer`; when the headers already went
//! upstream the filter relays the rewritten request itself; nothing is
//! forwarded unnarrowed.

use super::*;
use fhir_smart_authz_core::decision::Rewrite;

const NARROWED: &str = "/fhir/Observation?patient=Patient%2Fp1&code=x";

fn rewrite(path: &str, added: &[&str]) -> Rewrite {
    Rewrite {
        path: path.into(),
        headers: vec![("prefer".to_string(), "handling=strict".to_string())],
        added: added.iter().map(|a| a.to_string()).collect(),
    }
}

/// Allows with `rw` (and a response check when `obligations`).
fn narrowing_stream(
    config: &'static str,
    body_needed: bool,
    rw: Rewrite,
    obligations: bool,
) -> Stream {
    narrowing_stream_with(config, body_needed, rw, obligations, AuditEncoding::Json)
}

/// [`narrowing_stream`] writing its audit record in `encoding`.
fn narrowing_stream_with(
    config: &'static str,
    body_needed: bool,
    rw: Rewrite,
    obligations: bool,
    encoding: AuditEncoding,
) -> Stream {
    let engine = FakeEngine {
        body_needed,
        decide: Box::new(move |_req: &RequestParts, _claims: Option<&Value>| {
            let mut d = Decision::allow(Reason::Allowed, read_interaction());
            d.rewrite = Some(rw.clone());
            if obligations {
                d.obligations = vec![Obligation::CheckResponseCompartment {
                    resource_type: "Observation".into(),
                    patient: "p1".into(),
                }];
            }
            d
        }),
        check: Box::new(|_o: &Obligation, _v: &Value| Ok(())),
    };
    let config = Rc::new(Config::from_json(config.as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(tokens());
    let e: Box<dyn Engine> = Box::new(engine);
    Stream::new(Shared::new(config, t, e, encoding))
}

#[test]
fn decided_on_headers_the_request_goes_on_rewritten() {
    for (rw, counter) in [
        (rewrite(NARROWED, &["patient"]), "rewrite.narrowed"),
        (rewrite("/fhir/Observation?code=x", &[]), "rewrite.strict"),
    ] {
        let h = host(
            "GET",
            "/fhir/Observation?code=x",
            Some("Bearer good"),
            &[("prefer", "handling=lenient")],
        );
        let mut s = narrowing_stream("{}", false, rw.clone(), false);
        assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
        assert_eq!(h.request_header(":path").as_deref(), Some(rw.path.as_str()));
        assert_eq!(
            h.request_header("prefer").as_deref(),
            Some("handling=strict")
        );
        assert_eq!(h.counter(&format!("fhir_smart_authz.{counter}")), 1);
        assert!(replies(&h).is_empty());
        let a = audit(&h);
        assert_eq!(a["decision"], "allow");
        assert_eq!(a["rewrite"]["headers"], json!(["prefer"]));
        assert!(!a.to_string().contains("p1%"), "no values in the record");
    }
}

#[test]
fn held_body_decision_rewrites_before_the_headers_go() {
    let h = host(
        "POST",
        "/fhir/Observation/_search",
        Some("Bearer good"),
        &[],
    );
    h.state.borrow_mut().request_body = b"code=x".to_vec();
    let rw = rewrite(
        "/fhir/Observation/_search?patient=Patient%2Fp1",
        &["patient"],
    );
    let mut s = narrowing_stream(
        r#"{"upstream":{"hold_headers_for_body":true}}"#,
        true,
        rw,
        false,
    );
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(
        h.request_header(":path").as_deref(),
        Some("/fhir/Observation/_search")
    );
    assert_eq!(s.on_request_body(&h, 6, true), Flow::Continue);
    assert_eq!(
        h.request_header(":path").as_deref(),
        Some("/fhir/Observation/_search?patient=Patient%2Fp1")
    );
    assert_eq!(
        h.request_header("prefer").as_deref(),
        Some("handling=strict")
    );
    assert!(h.state.borrow().calls.is_empty());
    assert_eq!(h.counter("fhir_smart_authz.rewrite.narrowed"), 1);
}

/// Headers already upstream (not held): the filter sends the rewritten
/// request itself and relays its answer; the original, still without its
/// body, is reset by the local reply.
#[test]
fn released_headers_are_relayed_rewritten() {
    let h = host(
        "POST",
        "/fhir/Observation/_search",
        Some("Bearer good"),
        &[("prefer", "return=minimal")],
    );
    h.state.borrow_mut().request_body = b"code=x".to_vec();
    let rw = rewrite(
        "/fhir/Observation/_search?patient=Patient%2Fp1",
        &["patient"],
    );
    let mut s = narrowing_stream("{}", true, rw, false);
    assert_eq!(
        s.on_request_headers(&h, false),
        Flow::Continue,
        "released for the body"
    );
    // Envoy no longer lends the headers of a continued request to the filter.
    let sent = std::mem::take(&mut h.state.borrow_mut().request_headers);
    assert!(sent.contains(&("x-smart-patient".into(), "p1".into())));
    assert_eq!(s.on_request_body(&h, 6, true), Flow::Pause);
    {
        let st = h.state.borrow();
        let (_, call) = st
            .calls
            .last()
            .cloned()
            .expect("the rewritten request is sent");
        assert!(call.headers.contains(&(
            ":path".into(),
            "/fhir/Observation/_search?patient=Patient%2Fp1".into()
        )));
        assert!(call
            .headers
            .contains(&("prefer".into(), "handling=strict".into())));
        assert_eq!(
            call.headers.iter().filter(|(n, _)| n == "prefer").count(),
            1
        );
        assert!(call.headers.contains(&(":method".into(), "POST".into())));
        assert!(call
            .headers
            .contains(&("x-smart-patient".into(), "p1".into())));
        assert_eq!(call.body.as_deref(), Some(b"code=x".as_slice()));
    }
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "200".into())];
        st.call_response_body = b"<not json, relayed unchecked>".to_vec();
    }
    s.on_call_response(&h, 1, 30);
    assert_eq!(replies(&h), vec![200]);
    assert_eq!(h.counter("fhir_smart_authz.rewrite.relayed"), 1);
    assert_eq!(h.counter("fhir_smart_authz.response_check.pass"), 0);
}

#[test]
fn a_response_check_fetches_the_rewritten_request() {
    let h = host("GET", "/fhir/Observation?code=x", Some("Bearer good"), &[]);
    let mut s = narrowing_stream("{}", false, rewrite(NARROWED, &["patient"]), true);
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    let st = h.state.borrow();
    let (_, call) = st.calls.last().cloned().unwrap();
    assert!(call.headers.contains(&(":path".into(), NARROWED.into())));
    assert!(call
        .headers
        .contains(&("prefer".into(), "handling=strict".into())));
}

#[test]
fn a_rewrite_the_host_refuses_is_never_forwarded() {
    let h = host("GET", "/fhir/Observation?code=x", Some("Bearer good"), &[]);
    // The rewrite's header (the fact headers before it are set).
    h.state.borrow_mut().fail_header_set_of = vec![":path".to_string()];
    let mut s = narrowing_stream("{}", false, rewrite(NARROWED, &["patient"]), false);
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    assert_eq!(replies(&h), vec![500]);
    assert_eq!(h.counter("fhir_smart_authz.rewrite.failed"), 1);
}

/// A refused rewrite is a denial in every account of the request: the
/// reply, the audit record (whenever the encoding writes it) and the
/// decision counters, never the allow it started as.
#[test]
fn a_refused_rewrite_is_audited_and_counted_as_a_500_internal_error() {
    const AUDIT: &str = "fhir_smart_authz_audit";
    for encoding in [
        AuditEncoding::Json,
        AuditEncoding::Struct,
        AuditEncoding::Line,
        AuditEncoding::Fields,
    ] {
        for (refused, obligations) in [(":path", false), ("prefer", false), (":path", true)] {
            let case = format!("{encoding:?}, {refused} refused, obligations {obligations}");
            let h = host("GET", "/fhir/Observation?code=x", Some("Bearer good"), &[]);
            h.state.borrow_mut().fail_header_set_of = vec![refused.to_string()];
            let rw = rewrite(NARROWED, &["patient"]);
            let mut s = narrowing_stream_with("{}", false, rw, obligations, encoding);
            assert_eq!(s.on_request_headers(&h, true), Flow::Pause, "{case}");
            let message = format!("the gateway could not narrow the request to what the token allows (the proxy refused to set {refused}); it was not forwarded");
            assert_eq!(replies(&h), vec![500], "{case}");
            assert!(h.state.borrow().calls.is_empty(), "{case}: nothing fetched");
            assert_eq!(reply_header(&h, "www-authenticate"), None, "{case}");
            assert_eq!(
                reply_json(&h),
                json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception",
                    "details":{"coding":[{"system":"urn:fhir-smart-authz:reason","code":"internal_error"}],"text":message},
                    "diagnostics":message}]}),
                "{case}"
            );
            for (counter, count) in [
                ("rewrite.failed", 1),
                ("rewrite.narrowed", 0),
                ("decision.deny.internal_error", 1),
                ("decision.allow.allowed", 0),
            ] {
                assert_eq!(
                    h.counter(&format!("fhir_smart_authz.{counter}")),
                    count,
                    "{case}: {counter}"
                );
            }
            // The record of the denial, never the allow it started as.
            let mut expected = json!({"action":"R",
                "agent":{"client_id":"app","requestor":true,"user":"Practitioner/pr1"},
                "decision":"deny","enforced":true,
                "entity":{"id":"o1","patient":"Patient/p1","reference":"Observation/o1","resource_type":"Observation"},
                "filter_version":env!("CARGO_PKG_VERSION"),
                "interaction":"read","message":message,"outcome":"4",
                "policy":"urn:ietf:params:oauth:jti:j-1","reason":"internal_error",
                "recorded":"2026-11-25T13:49:53.123Z","request_id":"rid-7","required_scopes":[],
                "schema":"urn:fhir-smart-authz:audit-record:1",
                "source":"fhir-smart-authz","status":500,"subtype":"read","type":"rest"});
            let at_decision = h.state.borrow().properties.get(AUDIT).cloned();
            s.on_log(&h);
            let written = h.state.borrow().properties.get(AUDIT).cloned();
            match encoding {
                AuditEncoding::Struct => {
                    assert_eq!(at_decision, Some(encode_struct(&expected)), "{case}");
                    assert_eq!(written, at_decision, "{case}: written once");
                }
                AuditEncoding::Json => {
                    assert_eq!(
                        at_decision,
                        Some(expected.to_string().into_bytes()),
                        "{case}"
                    );
                    assert_eq!(written, at_decision, "{case}: written once");
                }
                AuditEncoding::Fields => {
                    expected["method"] = json!("GET");
                    expected["path"] = json!("/fhir/Observation");
                    let text = String::from_utf8(at_decision.clone().unwrap()).unwrap();
                    let record: Value = serde_json::from_str(&format!("{{{text}}}")).unwrap();
                    assert_eq!(record, expected, "{case}");
                    assert_eq!(written, at_decision, "{case}: written once");
                }
                AuditEncoding::Line => {
                    assert_eq!(at_decision, None, "{case}: written at log time");
                    let log_facts = json!({"method":"GET","path":"/fhir/Observation","response_code":0,
                        "duration_ms":0,"start_time":"2026-11-25T13:49:53.123Z"});
                    for (k, v) in log_facts.as_object().unwrap() {
                        expected[k] = v.clone();
                    }
                    let record: Value = serde_json::from_slice(&written.unwrap()).unwrap();
                    assert_eq!(record, expected, "{case}");
                }
            }
        }
    }
}

#[test]
fn shadow_mode_changes_no_request() {
    let h = host("GET", "/fhir/Observation?code=x", Some("Bearer good"), &[]);
    let mut s = narrowing_stream(
        r#"{"enforce":false}"#,
        false,
        rewrite(NARROWED, &["patient"]),
        false,
    );
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    assert_eq!(
        h.request_header(":path").as_deref(),
        Some("/fhir/Observation?code=x")
    );
    assert_eq!(h.request_header("prefer"), None);
    assert_eq!(h.counter("fhir_smart_authz.rewrite.shadow"), 1);
}
