//! The SMART security section written into the FHIR server's `/metadata`
//! answer (the real engine decides; the fake host plays Envoy's response
//! callbacks: headers not paused, body buffered until its end).

use super::*;
use fhir_smart_authz::core_adapter::CoreEngine;
use fhir_smart_authz_core::capability_statement::OAUTH_URIS;

const DISCOVERY_CFG: &str = r#"{"max_body_bytes": 4096, "discovery": {"authorization_endpoint": "https://as/authorize", "token_endpoint": "https://as/token", "revocation_endpoint": "https://as/revoke"}}"#;

const STATEMENT: &str = r#"{"resourceType":"CapabilityStatement","status":"active","fhirVersion":"4.0.1","rest":[{"mode":"server","security":{"description":"none"}}]}"#;

fn metadata_stream(config: &str) -> Stream {
    let config = Rc::new(Config::from_json(config.as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(tokens());
    let e: Box<dyn Engine> = Box::new(CoreEngine);
    Stream::new(Shared::new(config, t, e, AuditEncoding::Json))
}

/// The upstream's answer as the response callbacks see it.
fn answer(h: &FakeHost, status: &str, headers: &[(&str, &str)], body: &str) {
    let mut s = h.state.borrow_mut();
    s.response_headers = vec![(":status".into(), status.into())];
    s.response_headers
        .extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    s.response_body = body.as_bytes().to_vec();
}

fn response_header(h: &FakeHost, name: &str) -> Option<String> {
    let s = h.state.borrow();
    s.response_headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// Run a `/metadata` request and its answer (the body in two chunks);
/// returns the flows of the response callbacks.
fn run(
    cfg: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (FakeHost, Vec<Flow>) {
    let mut s = metadata_stream(cfg);
    let h = host(method, path, None, &[("accept-encoding", "gzip, br")]);
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    answer(&h, "200", headers, body);
    let half = body.len() / 2;
    let flows = vec![
        s.on_response_headers(&h),
        s.on_response_body(&h, half, false),
        s.on_response_body(&h, body.len(), true),
    ];
    (h, flows)
}

fn security(h: &FakeHost) -> Value {
    let v: Value = serde_json::from_slice(&h.state.borrow().response_body).unwrap();
    v["rest"][0]["security"].clone()
}

#[test]
fn json_statement_gets_the_smart_section() {
    let json = [
        ("content-type", "application/fhir+json;charset=utf-8"),
        ("content-length", "140"),
    ];
    let (h, flows) = run(DISCOVERY_CFG, "GET", "/fhir/metadata", &json, STATEMENT);
    // headers go on (no pause: Envoy delivers body callbacks only then), the
    // body is held to its end and replaced
    assert_eq!(flows, [Flow::Continue, Flow::Pause, Flow::Continue]);
    assert_eq!(
        h.request_header("accept-encoding").as_deref(),
        Some("identity")
    );
    assert_eq!(response_header(&h, "content-length"), None);
    let sec = security(&h);
    assert_eq!(sec["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
    assert_eq!(sec["extension"][0]["url"], OAUTH_URIS);
    let uris: Vec<(&str, &str)> = sec["extension"][0]["extension"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["url"].as_str().unwrap(), e["valueUri"].as_str().unwrap()))
        .collect();
    assert_eq!(
        uris,
        [
            ("authorize", "https://as/authorize"),
            ("token", "https://as/token"),
            ("revoke", "https://as/revoke")
        ]
    );
    assert!(
        sec.get("description").is_none(),
        "the server's own security section is replaced"
    );
    assert_eq!(
        h.counter("fhir_smart_authz.capability_statement.smart_added"),
        1
    );
    assert_eq!(audit(&h)["reason"], "public_endpoint");
}

#[test]
fn answers_passed_unmodified() {
    let json = ("content-type", "application/fhir+json");
    let xml_statement = r#"<CapabilityStatement xmlns="http://hl7.org/fhir"><rest><mode value="server"/></rest></CapabilityStatement>"#;
    let big = format!(
        r#"{{"resourceType":"CapabilityStatement","rest":[{{"mode":"server"}}],"text":{{"div":"{}"}}}}"#,
        "x".repeat(5000)
    );
    let terminology = r#"{"resourceType":"TerminologyCapabilities","status":"active"}"#;
    // (case, path, response headers, body, flows of the response callbacks)
    let cases: Vec<(&str, &str, Vec<(&str, &str)>, &str, [Flow; 3])> = vec![
        (
            "xml",
            "/fhir/metadata?_format=xml",
            vec![("content-type", "application/fhir+xml")],
            xml_statement,
            [Flow::Continue; 3],
        ),
        (
            "gzip anyway",
            "/fhir/metadata",
            vec![json, ("content-encoding", "gzip")],
            "\u{1f}\u{8b}...",
            [Flow::Continue; 3],
        ),
        // buffered until it passes max_body_bytes, then let go as it is
        (
            "too large",
            "/fhir/metadata",
            vec![json],
            &big,
            [Flow::Continue, Flow::Pause, Flow::Continue],
        ),
        (
            "terminology",
            "/fhir/metadata?mode=terminology",
            vec![json],
            terminology,
            [Flow::Continue, Flow::Pause, Flow::Continue],
        ),
        (
            "not json",
            "/fhir/metadata",
            vec![json],
            "{oops",
            [Flow::Continue, Flow::Pause, Flow::Continue],
        ),
    ];
    for (case, path, headers, body, want) in cases {
        let (h, flows) = run(DISCOVERY_CFG, "GET", path, &headers, body);
        assert_eq!(flows, want, "{case}");
        assert_eq!(h.state.borrow().response_body, body.as_bytes(), "{case}");
        assert_eq!(
            h.counter("fhir_smart_authz.capability_statement.unmodified"),
            1,
            "{case}"
        );
        assert_eq!(
            h.counter("fhir_smart_authz.capability_statement.smart_added"),
            0,
            "{case}"
        );
    }
}

/// Issue 17: a public answer gets `Vary: Origin` (Envoy's CORS filter
/// echoes the Origin), added to the server's own `Vary`; a token-checked
/// answer is left alone.
#[test]
fn public_answers_vary_by_origin() {
    let json = [("content-type", "application/fhir+json")];
    for (cfg, vary, want) in [
        ("{}", None, "Origin"),
        ("{}", Some("Accept"), "Accept, Origin"),
        ("{}", Some("Origin"), "Origin"),
        (DISCOVERY_CFG, None, "Origin"),
    ] {
        let mut headers = json.to_vec();
        headers.extend(vary.map(|v| ("vary", v)));
        let (h, _) = run(cfg, "GET", "/fhir/metadata", &headers, STATEMENT);
        assert_eq!(
            response_header(&h, "vary").as_deref(),
            Some(want),
            "{cfg} {vary:?}"
        );
    }
    let mut s = metadata_stream("{}");
    let h = host("GET", "/fhir/Observation?code=x", Some("Bearer good"), &[]);
    s.on_request_headers(&h, true);
    answer(&h, "200", &json, "{}");
    s.on_response_headers(&h);
    assert_eq!(response_header(&h, "vary"), None);
}

#[test]
fn not_armed_without_discovery_for_other_requests_or_statuses() {
    let json = [("content-type", "application/fhir+json")];
    // no `discovery`: the server's statement and Accept-Encoding stay as they are
    let (h, flows) = run("{}", "GET", "/fhir/metadata", &json, STATEMENT);
    assert_eq!(flows, [Flow::Continue; 3]);
    assert_eq!(
        h.request_header("accept-encoding").as_deref(),
        Some("gzip, br")
    );
    assert_eq!(h.state.borrow().response_body, STATEMENT.as_bytes());
    // HEAD has no body to rewrite
    let (h, flows) = run(DISCOVERY_CFG, "HEAD", "/fhir/metadata", &json, "");
    assert_eq!(flows, [Flow::Continue; 3]);
    assert_eq!(
        h.request_header("accept-encoding").as_deref(),
        Some("gzip, br")
    );
    // an error answer is relayed as it is
    let mut s = metadata_stream(DISCOVERY_CFG);
    let h = host("GET", "/fhir/metadata", None, &[]);
    s.on_request_headers(&h, true);
    answer(&h, "500", &json, r#"{"resourceType":"OperationOutcome"}"#);
    assert_eq!(s.on_response_headers(&h), Flow::Continue);
    assert_eq!(s.on_response_body(&h, 10, true), Flow::Continue);
    assert_eq!(
        h.counter("fhir_smart_authz.capability_statement.unmodified"),
        0
    );
    // a refused /metadata (not public) is answered locally: nothing to rewrite
    let cfg = r#"{"policy": {"public_capabilities": false}, "discovery": {"authorization_endpoint": "https://as/authorize", "token_endpoint": "https://as/token"}}"#;
    let mut s = metadata_stream(cfg);
    let h = host("GET", "/fhir/metadata", None, &[]);
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    assert_eq!(replies(&h), [401]);
    answer(&h, "401", &json, "{}");
    assert_eq!(s.on_response_headers(&h), Flow::Continue);
}

#[test]
fn a_refused_body_write_passes_the_statement_unmodified() {
    let mut s = metadata_stream(DISCOVERY_CFG);
    let h = host("GET", "/fhir/metadata", None, &[]);
    s.on_request_headers(&h, true);
    answer(
        &h,
        "200",
        &[("content-type", "application/json")],
        STATEMENT,
    );
    h.state.borrow_mut().fail_body_write = true;
    assert_eq!(s.on_response_headers(&h), Flow::Continue);
    assert_eq!(
        s.on_response_body(&h, STATEMENT.len(), true),
        Flow::Continue
    );
    assert_eq!(h.state.borrow().response_body, STATEMENT.as_bytes());
    assert_eq!(
        h.counter("fhir_smart_authz.capability_statement.unmodified"),
        1
    );
}
