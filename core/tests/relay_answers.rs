//! The relay's answer gates (`relay::relay_answer`): what an answer the
//! filter fetched becomes (relayed, replaced by a denial, relayed unchecked,
//! failed), each row with the exact status, the reply's headers and the
//! check's result; every reply carries the decision's answer headers (a
//! renewed `DPoP-Nonce`). Also the fetch call the relay makes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::{Interaction, InteractionKind, Level};
use fhir_smart_authz_core::policy::ResponseVerdict;
use fhir_smart_authz_core::relay::{fetch_call, relay_answer, Fetched, RelayAnswer};
use serde_json::Value;

const NONCE: (&str, &str) = ("dpop-nonce", "fresh-nonce");

fn config(enforce: bool) -> Config {
    let j = format!(
        r#"{{"fhir_base_url":"https://fhir.example/fhir","enforce":{enforce},"max_body_bytes":64,"upstream":{{"cluster":"fhir"}}}}"#
    );
    Config::from_json(j.as_bytes()).unwrap()
}

/// An allowed read of Observation/o1; `checked`: with the compartment
/// obligation. Its answer headers: a renewed nonce.
fn decision(checked: bool) -> Decision {
    let mut it = Interaction::new(InteractionKind::Read, Level::Instance);
    it.resource_type = Some("Observation".into());
    let mut d = Decision::allow(Reason::Allowed, it);
    if checked {
        d.obligations = vec![Obligation::CheckResponseCompartment {
            resource_type: "Observation".into(),
            patient: "123".into(),
        }];
    }
    d.reply_headers = vec![(NONCE.0.into(), NONCE.1.into())];
    d
}

/// The check: passes for the body `{"ok":true}`.
fn check(v: &Value) -> ResponseVerdict {
    ResponseVerdict {
        result: if v["ok"] == true {
            Ok(())
        } else {
            Err("not the patient's".into())
        },
        labels: None,
    }
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// What a row expects.
#[derive(Debug, PartialEq)]
enum Expect {
    Failed(&'static str),
    NotServed(u16),
    /// The reply's status, its body, the check's result (`None`: not
    /// checked), shadow's would-deny.
    Reply(u16, &'static str, Option<bool>, bool),
    /// Checked (result), then failed.
    FailedAfter(bool, &'static str),
}

/// (row, enforce, checked, method, status, answer headers, body, expected)
type Row = (
    &'static str,
    bool,
    bool,
    &'static str,
    Option<u16>,
    Vec<(&'static str, &'static str)>,
    &'static str,
    Expect,
);

#[test]
fn answers_of_the_relay() {
    const PASS: &str = r#"{"ok":true}"#;
    const FAIL: &str = r#"{"ok":false}"#;
    let json = || vec![("content-type", "application/fhir+json")];
    #[rustfmt::skip]
    let rows: Vec<Row> = vec![
        ("no answer", true, true, "GET", None, vec![], "", Expect::Failed("the FHIR server did not answer")),
        ("passes", true, true, "GET", Some(200), json(), PASS, Expect::Reply(200, PASS, Some(true), false)),
        ("HEAD: no body", true, true, "HEAD", Some(200), json(), PASS, Expect::Reply(200, "", Some(true), false)),
        ("fails: replaced", true, true, "GET", Some(200), json(), FAIL, Expect::Reply(403, "", Some(false), false)),
        ("fails in shadow: relayed", false, true, "GET", Some(200), json(), FAIL, Expect::Reply(200, FAIL, Some(false), true)),
        ("not served", true, true, "GET", Some(503), vec![], "down", Expect::NotServed(503)),
        ("not served in shadow", false, true, "GET", Some(504), vec![], "", Expect::Failed("the FHIR server did not serve the request (HTTP 504)")),
        ("error without a body", true, true, "GET", Some(404), vec![], "", Expect::Reply(404, "", Some(true), false)),
        ("success without a body", true, true, "GET", Some(204), vec![], "", Expect::Reply(403, "", Some(false), false)),
        ("encoded", true, true, "GET", Some(200), vec![("content-encoding", "gzip")], PASS, Expect::Reply(403, "", Some(false), false)),
        ("not JSON", true, true, "GET", Some(200), vec![], "<html/>", Expect::Reply(403, "", Some(false), false)),
        ("too large", true, true, "GET", Some(200), json(), "", Expect::Reply(403, "", Some(false), false)),
        ("too large in shadow", false, true, "GET", Some(200), json(), "", Expect::FailedAfter(false, "the response is too large to relay in shadow mode")),
        ("unchecked: relayed", true, false, "GET", Some(200), vec![("connection", "close"), ("x-server", "s")], "anything", Expect::Reply(200, "anything", None, false)),
        ("unchecked not served: relayed", true, false, "GET", Some(502), vec![], "bad", Expect::Reply(502, "bad", None, false)),
    ];
    let big = "y".repeat(100);
    for (row, enforce, checked, method, status, answer_headers, body, expected) in rows {
        let config = config(enforce);
        let d = decision(checked);
        // Over max_body_bytes (64).
        let body = if row.starts_with("too large") {
            big.as_str()
        } else {
            body
        };
        let answer_headers = headers(&answer_headers);
        let mut reads = 0;
        let fetched = Fetched {
            status,
            headers: &answer_headers,
            body_size: body.len(),
        };
        let answer = relay_answer(
            &config,
            &d,
            method,
            fetched,
            &mut || {
                reads += 1;
                body.as_bytes().to_vec()
            },
            check,
        );
        assert!(reads <= 1, "{row}: the body is read at most once");
        let reply = match (&answer, &expected) {
            (RelayAnswer::Failed(why), Expect::Failed(w)) => {
                assert_eq!(why, w, "{row}");
                continue;
            }
            (RelayAnswer::NotServed { status, why, reply }, Expect::NotServed(s)) => {
                assert_eq!((*status, reply.status), (*s, *s), "{row}");
                assert_eq!(
                    why,
                    &format!("the FHIR server did not serve the request (HTTP {s})"),
                    "{row}"
                );
                reply
            }
            (RelayAnswer::Checked { check, then, .. }, Expect::FailedAfter(ok, why)) => {
                assert_eq!(check.as_ref().map(|c| c.is_ok()), Some(*ok), "{row}");
                assert_eq!(then.as_ref().err().map(String::as_str), Some(*why), "{row}");
                continue;
            }
            (
                RelayAnswer::Checked {
                    check,
                    would_deny,
                    then,
                    ..
                },
                Expect::Reply(s, b, ok, deny),
            ) => {
                let reply = then.as_ref().expect("a reply");
                assert_eq!(reply.status, *s, "{row}");
                if reply.status != 403 {
                    assert_eq!(String::from_utf8_lossy(&reply.body), *b, "{row}");
                }
                assert_eq!(check.as_ref().map(|c| c.is_ok()), *ok, "{row}");
                assert_eq!(would_deny, deny, "{row}");
                reply
            }
            _ => panic!("{row}: {answer:?}, expected {expected:?}"),
        };
        // Every reply carries the answer headers, never hop-by-hop ones.
        let named = |n: &str| reply.headers.iter().filter(|(h, _)| h == n).count();
        assert_eq!(named(NONCE.0), 1, "{row}: {:?}", reply.headers);
        assert_eq!(named("connection"), 0, "{row}");
        if row == "unchecked: relayed" {
            assert_eq!(named("x-server"), 1, "{row}");
        }
    }
}

#[test]
fn the_fetch_is_the_request_as_the_decision_sends_it() {
    let config = config(true);
    let sent = headers(&[
        (":method", "HEAD"),
        (":path", "/fhir/Observation/o1"),
        ("if-none-match", "W/\"1\""),
        ("accept-encoding", "gzip"),
        ("connection", "keep-alive"),
        ("x-request-id", "r1"),
    ]);
    let call = fetch_call(&config, &decision(true), sent, None).unwrap();
    assert_eq!(call.cluster, "fhir");
    assert_eq!(
        call.headers,
        headers(&[
            (":method", "GET"),
            (":path", "/fhir/Observation/o1"),
            ("x-request-id", "r1"),
            ("accept-encoding", "identity"),
            (":authority", "fhir"),
        ])
    );
}
