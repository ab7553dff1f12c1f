//! Response obligations: the filter fetches the response, checks it, relays or replaces it.

use super::*;

fn obligation_run(config: &'static str, status: &str, body: &str) -> (FakeHost, Flow) {
    obligation_run_as("GET", &[], config, status, body)
}

/// [`obligation_run`] of a request with this method and these headers.
fn obligation_run_as(
    method: &str,
    extra: &[(&str, &str)],
    config: &'static str,
    status: &str,
    body: &str,
) -> (FakeHost, Flow) {
    let h = host(method, "/fhir/Observation/o1", Some("Bearer good"), extra);
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

/// Issue 17: a HEAD or conditional GET of a checked read is decided as the
/// full GET: the filter fetches the full answer (GET, no conditional or
/// range headers), checks it, and relays a HEAD's answer without the body;
/// an answer that carries no resource to check (304, redirect, an empty
/// success) is refused, and an error carrying a resource is checked.
#[test]
fn answers_without_a_body_are_decided_as_the_full_get() {
    let own = r#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}"#;
    let other = r#"{"resourceType":"Observation","subject":{"reference":"Patient/p2"}}"#;
    let conditional = [
        ("if-none-match", "W/\"3\""),
        ("if-modified-since", "Mon, 07 Dec 2026 00:00:00 GMT"),
        ("range", "bytes=0-10"),
    ];
    for (method, status, body, want, body_relayed) in [
        ("HEAD", "200", own, 200, false),
        ("HEAD", "200", other, 403, false),
        ("GET", "200", own, 200, true),
        ("GET", "200", other, 403, false),
        ("GET", "304", "", 403, false),
        ("GET", "412", "", 412, false),
        ("GET", "302", "", 403, false),
        ("GET", "200", "", 403, false),
        ("GET", "404", other, 403, false),
        (
            "GET",
            "404",
            r#"{"resourceType":"OperationOutcome"}"#,
            404,
            true,
        ),
    ] {
        let (h, _) = obligation_run_as(method, &conditional, "{}", status, body);
        let call = h.state.borrow().calls.last().cloned().unwrap().1;
        assert!(
            call.headers.contains(&(":method".into(), "GET".into())),
            "{method} {status}"
        );
        for (name, _) in conditional {
            assert!(
                !call.headers.iter().any(|(n, _)| n == name),
                "{method}: {name} is not sent with the checked fetch"
            );
        }
        let r = h.state.borrow().replies.last().cloned().unwrap();
        assert_eq!(r.status, want, "{method} {status} {body}");
        if want == 200 || want == 404 {
            assert_eq!(r.body.is_empty(), !body_relayed, "{method} {status}");
        }
        if want == 403 {
            assert_eq!(
                audit(&h)["reason"],
                "response_not_permitted",
                "{method} {status}"
            );
            assert!(!String::from_utf8_lossy(&r.body).contains("p2\"}"));
        }
    }
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
