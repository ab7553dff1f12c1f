//! Key fetches and introspection calls on behalf of a request: pause, resume once, fail closed.

use super::*;

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
    answer_call(&h, &mut s, "200");
    assert_eq!(h.state.borrow().resumed_requests, 1);
    assert_eq!(audit(&h)["decision"], "allow");
}

#[test]
fn key_fetch_failure_denies_without_resume() {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    answer_call(&h, &mut s, "503");
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
    answer_call(&h, &mut s, "200");
    assert_eq!(h.state.borrow().resumed_requests, 1);
    assert_eq!(h.counter("fhir_smart_authz.introspection.success"), 1);
    assert_eq!(h.request_header("x-smart-patient").as_deref(), Some("p1"));
}
