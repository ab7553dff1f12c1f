//! Requests whose decision needs the body: released or held headers, limits, bodies that arrive while the token is pending.

use super::*;

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

const GOOD_BODY: &[u8] = b"{\"resourceType\":\"Observation\"}";

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
    answer_call(&h, &mut s, "200");
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
            answer_call(&h, &mut s, token_status);
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
        answer_call(&h, &mut s, "200");
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
    answer_call(&h, &mut s, "200");
    assert_eq!(replies(&h), vec![413]);
    assert_eq!(resumed(&h), 0);
    assert_eq!(audit(&h)["reason"], "body_too_large");
    assert_eq!(h.counter("fhir_smart_authz.jwks_fetch.success"), 1);

    // A body that is not needed is buffered by Envoy until the token resolves.
    let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(s.on_request_body(&h, 3, true), Flow::Pause);
    answer_call(&h, &mut s, "200");
    assert_eq!(resumed(&h), 1);
    assert_eq!(audit(&h)["decision"], "allow");
}

#[test]
fn request_trailers_before_the_body_decision_are_refused_never_continued() {
    // Envoy continues a request whose trailers callback answers `Continue`,
    // with the body the filter buffered: before a decision that needs the
    // body that would forward it unchecked.
    const HOLD: &str = r#"{"upstream":{"hold_headers_for_body":true}}"#;
    const REFUSAL: &str = "the request ends with trailers, and the filter decides this request on its body, which it does not check with trailers; send the request without trailers";
    // (token, config, body needed, headers flow, body flow, trailers flow, reply, audit reason)
    for (token, config, body_needed, at_headers, at_body, at_trailers, reply, reason) in [
        // Headers released once the token is verified, body buffered.
        (
            "good",
            "{}",
            true,
            Flow::Continue,
            Flow::Pause,
            Flow::Pause,
            Some(400),
            Some("invalid_request"),
        ),
        // Headers held for the body decision.
        (
            "good",
            HOLD,
            true,
            Flow::Pause,
            Flow::Pause,
            Flow::Pause,
            Some(400),
            Some("invalid_request"),
        ),
        // Headers held for the key fetch, the body arriving meanwhile.
        (
            "newkid",
            HOLD,
            true,
            Flow::Pause,
            Flow::Pause,
            Flow::Pause,
            Some(400),
            Some("invalid_request"),
        ),
        // Held for the key fetch only: the trailers wait with the request.
        (
            "newkid",
            HOLD,
            false,
            Flow::Pause,
            Flow::Pause,
            Flow::Pause,
            None,
            None,
        ),
        // Decided at the headers: the trailers go on with the request.
        (
            "good",
            "{}",
            false,
            Flow::Continue,
            Flow::Continue,
            Flow::Continue,
            None,
            Some("allowed"),
        ),
    ] {
        let case = format!("{token} {config} body_needed={body_needed}");
        let h = host(
            "POST",
            "/fhir/Observation",
            Some(&format!("Bearer {token}")),
            &[],
        );
        h.state.borrow_mut().request_body = GOOD_BODY.to_vec();
        let mut s = stream(Setup {
            config,
            body_needed,
            ..Setup::default()
        });
        assert_eq!(s.on_request_headers(&h, false), at_headers, "{case}");
        assert_eq!(s.on_request_body(&h, 10, false), at_body, "{case}");
        assert_eq!(s.on_request_trailers(&h), at_trailers, "{case}");
        assert_eq!(replies(&h), reply.into_iter().collect::<Vec<_>>(), "{case}");
        assert_eq!(resumed(&h), 0, "{case}");
        match reason {
            Some(reason) => {
                let a = audit(&h);
                assert_eq!(a["reason"], reason, "{case}");
                if reply.is_some() {
                    assert_eq!(a["decision"], "deny", "{case}");
                    assert_eq!(a["message"], REFUSAL, "{case}");
                    assert_eq!(reply_json(&h)["issue"][0]["diagnostics"], REFUSAL, "{case}");
                }
            }
            None => assert!(
                h.state.borrow().properties.is_empty(),
                "{case}: not decided yet"
            ),
        }
    }

    // The key fetch answered after the refusal: still refused, never resumed.
    let h = host("POST", "/fhir/Observation", Some("Bearer newkid"), &[]);
    let mut s = stream(Setup {
        config: HOLD,
        body_needed: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(s.on_request_trailers(&h), Flow::Pause);
    answer_call(&h, &mut s, "200");
    assert_eq!(replies(&h), vec![400]);
    assert_eq!(resumed(&h), 0);
}
