//! Faults of the filter's own calls: each fails closed with its status, an
//! audit record and a metric (the real-Envoy side is tests/e2e/test_faults.py).

use super::*;
use fhir_smart_authz::host::MAX_TOKEN_CALL_BYTES;
use fhir_smart_authz::jwks_sync::{lease_state, Lease};

/// A request with `auth` whose token needs a call (JWKS or introspection),
/// answered with `status` and `body` (`body_size` as the host reports it).
fn call_answered(auth: &str, status: Option<&str>, body: &str, body_size: usize) -> FakeHost {
    let h = host("GET", "/fhir/Observation/o1", Some(auth), &[]);
    let mut s = stream(Setup::default());
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = status
            .map(|s| vec![(":status".into(), s.into())])
            .unwrap_or_default();
        st.call_response_body = body.as_bytes().to_vec();
    }
    s.on_call_response(&h, 1, body_size);
    h
}

#[test]
fn key_set_faults_are_failed_fetches() {
    // (case, status, body, body size): each answers 401 keys_unavailable
    let huge = MAX_TOKEN_CALL_BYTES + 1;
    let cases: [(&str, Option<&str>, &str, usize); 5] = [
        ("down", None, "", 0),
        ("error status", Some("503"), "upstream connect error", 23),
        ("garbage", Some("200"), "<html>oops</html>", 17),
        ("not a key set", Some("200"), r#"{"issuer":"x"}"#, 14),
        ("huge", Some("200"), r#"{"keys":[]}"#, huge),
    ];
    for (case, status, body, size) in cases {
        let h = call_answered("Bearer newkid", status, body, size);
        assert_eq!(replies(&h), [401], "{case}");
        assert_eq!(audit(&h)["reason"], "keys_unavailable", "{case}");
        assert_eq!(
            h.counter("fhir_smart_authz.jwks_fetch.failure"),
            1,
            "{case}"
        );
        assert_eq!(
            h.counter("fhir_smart_authz.jwks_fetch.success"),
            0,
            "{case}"
        );
        assert_eq!(resumed(&h), 0, "{case}");
        // nothing is shared with the other VMs, and the lease is free for the next fetch
        let config = Config::from_json(b"{}").unwrap();
        assert!(
            !h.state
                .borrow()
                .shared
                .contains_key("fhir_smart_authz.jwks.0."),
            "{case}"
        );
        assert!(
            matches!(lease_state(&h, &config, 0, NOW_MS), Lease::Free(_)),
            "{case}"
        );
    }
    // and the fault ends: the next answer is used
    let h = call_answered("Bearer newkid", Some("200"), r#"{"keys":[]}"#, 11);
    assert_eq!(resumed(&h), 1);
    assert_eq!(audit(&h)["decision"], "allow");
    assert_eq!(h.counter("fhir_smart_authz.jwks_fetch.success"), 1);
}

#[test]
fn introspection_faults_are_failed_calls() {
    let huge = MAX_TOKEN_CALL_BYTES + 1;
    for (case, status, size) in [
        ("down", None, 0),
        ("error status", Some("500"), 5),
        ("huge", Some("200"), huge),
    ] {
        let h = call_answered("Bearer opaque", status, "{}", size);
        assert_eq!(replies(&h), [401], "{case}");
        assert_eq!(audit(&h)["reason"], "introspection_unavailable", "{case}");
        assert_eq!(
            h.counter("fhir_smart_authz.introspection.failure"),
            1,
            "{case}"
        );
        assert_eq!(
            h.counter("fhir_smart_authz.introspection.success"),
            0,
            "{case}"
        );
    }
}

fn obligation_stream(h: &FakeHost) -> Stream {
    let mut s = stream(Setup {
        obligations: true,
        ..Setup::default()
    });
    assert_eq!(s.on_request_headers(h, true), Flow::Pause);
    s
}

#[test]
fn obligation_fetch_asks_for_an_unencoded_answer_and_refuses_an_encoded_one() {
    let h = host(
        "GET",
        "/fhir/Observation/o1",
        Some("Bearer good"),
        &[("accept-encoding", "gzip, br")],
    );
    let mut s = obligation_stream(&h);
    let call = h.state.borrow().calls.last().cloned().unwrap().1;
    let encodings: Vec<&str> = call
        .headers
        .iter()
        .filter(|(n, _)| n == "accept-encoding")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(encodings, ["identity"]);
    // the server compresses anyway: the answer cannot be checked
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), "application/fhir+json".into()),
            ("content-encoding".into(), "gzip".into()),
        ];
        st.call_response_body = b"\x1f\x8b\x08\x00...".to_vec();
    }
    s.on_call_response(&h, 1, 7);
    assert_eq!(replies(&h), [403]);
    let a = audit(&h);
    assert_eq!(
        (a["reason"].as_str(), a["obligation"].as_str()),
        (Some("response_not_permitted"), Some("failed"))
    );
    assert!(
        a["message"]
            .as_str()
            .unwrap()
            .contains("Content-Encoding: gzip"),
        "{a}"
    );
    assert_eq!(h.counter("fhir_smart_authz.response_check.fail"), 1);
}

#[test]
fn obligation_fetch_failure_is_502_and_audited() {
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut s = obligation_stream(&h);
    s.on_call_response(&h, 1, 0); // no :status: reset, timeout, connection refused
    assert_eq!(replies(&h), [502]);
    assert_eq!(reply_json(&h)["issue"][0]["code"], "transient");
    let a = audit(&h);
    assert_eq!(a["decision"], "deny");
    assert_eq!(a["reason"], "response_not_permitted");
    assert_eq!(a["obligation"], "failed");
    assert_eq!(a["status"], 502);
    assert_eq!(
        h.counter("fhir_smart_authz.response_check.upstream_failure"),
        1
    );
}

#[test]
fn obligation_fetch_not_served_is_relayed_and_audited_as_failed() {
    // Envoy answers the call itself when the FHIR server refuses the
    // connection (503) or does not answer in time (504)
    for (status, body) in [
        (
            "503",
            "upstream connect error or disconnect/reset before headers",
        ),
        ("504", "upstream request timeout"),
    ] {
        let h = host("GET", "/fhir/Observation/o1", Some("Bearer good"), &[]);
        let mut s = obligation_stream(&h);
        {
            let mut st = h.state.borrow_mut();
            st.call_response_headers = vec![
                (":status".into(), status.into()),
                ("content-type".into(), "text/plain".into()),
            ];
            st.call_response_body = body.as_bytes().to_vec();
        }
        s.on_call_response(&h, 1, body.len());
        let reply = h.state.borrow().replies.last().cloned().unwrap();
        assert_eq!(
            (reply.status.to_string(), reply.body),
            (status.to_string(), body.as_bytes().to_vec())
        );
        let a = audit(&h);
        assert_eq!(
            (a["decision"].as_str(), a["obligation"].as_str()),
            (Some("deny"), Some("failed")),
            "{status}"
        );
        assert_eq!(a["status"].to_string(), status);
        assert_eq!(
            h.counter("fhir_smart_authz.response_check.upstream_failure"),
            1
        );
        assert_eq!(h.counter("fhir_smart_authz.response_check.pass"), 0);
    }
}
