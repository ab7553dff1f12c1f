//! Issue 17: a partly allowed batch (the real engine decides). Only the
//! allowed entries go to the server; the client's batch-response holds
//! every entry in order, the denied ones answered in place.

use super::*;
use fhir_smart_authz::core_adapter::CoreEngine;

fn core_stream(config: &str) -> Stream {
    let config = Rc::new(Config::from_json(config.as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(tokens());
    let e: Box<dyn Engine> = Box::new(CoreEngine);
    Stream::new(Shared::new(config, t, e, AuditEncoding::Json))
}

const BATCH: &str = r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/p1"}},{"request":{"method":"GET","url":"Patient/p2"}}]}"#;

/// The batch sent under `weak` (patient/Patient.rs, patient p1), the
/// server's answer `(status, body)`; returns the host after the reply.
fn run_batch(kind: &str, status: &str, answer: &str) -> FakeHost {
    let body = BATCH.replace("\"batch\"", &format!("\"{kind}\""));
    let h = host(
        "POST",
        "/fhir",
        Some("Bearer weak"),
        &[("content-type", "application/fhir+json")],
    );
    h.state.borrow_mut().request_body = body.as_bytes().to_vec();
    let mut s = core_stream("{}");
    s.on_request_headers(&h, false);
    s.on_request_body(&h, body.len(), true);
    if !h.state.borrow().calls.is_empty() {
        {
            let mut st = h.state.borrow_mut();
            st.call_response_headers = vec![
                (":status".into(), status.into()),
                ("content-type".into(), "application/fhir+json".into()),
            ];
            st.call_response_body = answer.as_bytes().to_vec();
        }
        s.on_call_response(&h, 1, answer.len());
    }
    h
}

#[test]
fn a_denied_batch_entry_is_answered_in_place() {
    let served = r#"{"resourceType":"Bundle","type":"batch-response","entry":[{"response":{"status":"200 OK"},"resource":{"resourceType":"Patient","id":"p1"}}]}"#;
    let h = run_batch("batch", "200", served);
    // only the allowed entry went to the server
    let call = h.state.borrow().calls.last().cloned().unwrap().1;
    let sent: Value = serde_json::from_slice(call.body.as_deref().unwrap()).unwrap();
    assert_eq!(sent["entry"].as_array().unwrap().len(), 1);
    assert_eq!(sent["entry"][0]["request"]["url"], "Patient/p1");
    // the client's batch-response: both entries, the denied one in place
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!(r.status, 200);
    let answer: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(answer["type"], "batch-response");
    assert_eq!(answer["entry"][0]["resource"]["id"], "p1");
    assert_eq!(answer["entry"][1]["response"]["status"], "403 Forbidden");
    let outcome = &answer["entry"][1]["response"]["outcome"];
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "forbidden");
    assert_eq!(
        outcome["issue"][0]["details"]["coding"][0]["code"],
        "patient_compartment_violation"
    );
    let a = audit(&h);
    assert_eq!(a["decision"], "allow");
    assert_eq!(a["denied_entries"], json!([1]));
}

#[test]
fn batch_answers_that_do_not_fit_and_transactions() {
    // a batch-response that does not answer the forwarded entries: 502, nothing relayed
    let short = r#"{"resourceType":"Bundle","type":"batch-response","entry":[]}"#;
    let h = run_batch("batch", "200", short);
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(502));
    // the server refusing the whole forwarded batch is relayed as it is
    let refused =
        r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid"}]}"#;
    let h = run_batch("batch", "400", refused);
    let r = h.state.borrow().replies.last().cloned().unwrap();
    assert_eq!((r.status, r.body.as_slice()), (400, refused.as_bytes()));
    // a transaction stays all-or-nothing
    let h = run_batch("transaction", "200", "{}");
    assert!(h.state.borrow().calls.is_empty());
    assert_eq!(h.state.borrow().replies.last().map(|r| r.status), Some(403));
    assert_eq!(audit(&h)["reason"], "bundle_entry_denied");
}
