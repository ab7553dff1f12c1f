//! Bulk Data jobs through the shell (the real engine): the kick-off's `202`
//! registers the job in shared data, and two fake hosts sharing one store
//! play two worker VMs: the owner reaches the job on either, anyone else
//! gets the 404 of a job that does not exist.

use super::*;
use fhir_smart_authz::core_adapter::CoreEngine;
use fhir_smart_authz::fake::SharedStore;

const CFG: &str =
    r#"{"fhir_base_url": "https://fhir.example/fhir", "bulk": {"max_active_per_client": 1}}"#;
const STATUS: &str = "https://fhir.example/fhir/bulk-status/j1";

fn bulk_tokens() -> FakeTokens {
    let mut t = FakeTokens::default();
    let who = |client: &str, scope: &str| json!({"iss": "https://as", "sub": "svc", "client_id": client, "scope": scope});
    for (token, client, scope) in [
        ("owner", "app", "system/Patient.rs"),
        ("intruder", "other", "system/Patient.rs"),
        ("narrower", "app", "system/Observation.rs"),
    ] {
        t.tokens
            .insert(token.into(), FakeToken::Valid(who(client, scope)));
    }
    t
}

fn bulk_stream() -> Stream {
    let config = Rc::new(Config::from_json(CFG.as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(bulk_tokens());
    let e: Box<dyn Engine> = Box::new(CoreEngine);
    Stream::new(Shared::new(config, t, e, AuditEncoding::Json))
}

/// A worker VM's host for one request, on the shared store.
fn vm(store: &SharedStore, method: &str, path: &str, token: &str) -> FakeHost {
    let h = host(
        method,
        path,
        Some(&format!("Bearer {token}")),
        &[("prefer", "respond-async")],
    );
    h.state.borrow_mut().shared_store = Some(store.clone());
    h
}

fn respond(
    h: &FakeHost,
    s: &mut Stream,
    status: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<Flow> {
    {
        let mut st = h.state.borrow_mut();
        st.response_headers = vec![(":status".into(), status.into())];
        st.response_headers
            .extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        st.response_body = body.as_bytes().to_vec();
    }
    let mut flows = vec![s.on_response_headers(h)];
    if !body.is_empty() {
        flows.push(s.on_response_body(h, body.len() / 2, false));
        flows.push(s.on_response_body(h, body.len(), true));
    }
    flows
}

/// The request's flow and the status of the filter's reply (0: forwarded).
fn ask(store: &SharedStore, method: &str, path: &str, token: &str) -> (FakeHost, Stream, u16) {
    let h = vm(store, method, path, token);
    let mut s = bulk_stream();
    let flow = s.on_request_headers(&h, true);
    let status = replies(&h).last().copied().unwrap_or(0);
    assert_eq!(flow == Flow::Continue, status == 0, "{method} {path}");
    (h, s, status)
}

#[test]
fn a_job_is_its_clients_on_every_worker() {
    let store = SharedStore::default();
    // VM 1: the kick-off, answered 202 with the status URL.
    let (h, mut s, status) = ask(&store, "GET", "/fhir/$export?_type=Patient", "owner");
    assert_eq!(status, 0);
    assert_eq!(
        respond(&h, &mut s, "202", &[("content-location", STATUS)], ""),
        [Flow::Continue]
    );
    let entity = &audit(&h)["entity"];
    assert_eq!(
        (entity["bulk"].as_str(), entity["job"].as_str()),
        (Some("kick-off"), Some("bulk-status/j1"))
    );
    assert_eq!(h.counter("fhir_smart_authz.bulk.job_registered"), 1);

    // VM 2: the owner polls; the manifest names a file under the gateway.
    let (h, mut s, status) = ask(&store, "GET", "/fhir/bulk-status/j1", "owner");
    assert_eq!(status, 0);
    let manifest = r#"{"output":[{"type":"Patient","url":"https://fhir.example/fhir/bulk-files/j1/Patient.ndjson"}]}"#;
    let flows = respond(
        &h,
        &mut s,
        "200",
        &[("content-type", "application/json")],
        manifest,
    );
    assert_eq!(flows, [Flow::Continue, Flow::Pause, Flow::Continue]);
    assert_eq!(
        h.state.borrow().response_body,
        manifest.as_bytes(),
        "the manifest passes unmodified"
    );

    for (token, allowed) in [("owner", true), ("intruder", false), ("narrower", false)] {
        for (method, path) in [
            ("GET", "/fhir/bulk-status/j1"),
            ("GET", "/fhir/bulk-files/j1/Patient.ndjson"),
            ("DELETE", "/fhir/bulk-status/j1"),
        ] {
            let (h, _, status) = ask(&store, method, path, token);
            if allowed {
                assert_eq!(status, 0, "{token} {method} {path}");
            } else {
                assert_eq!(status, 404, "{token} {method} {path}");
                assert_eq!(reply_header(&h, "www-authenticate"), None);
                assert_eq!(reply_json(&h)["issue"][0]["code"], "not-found");
                assert_eq!(audit(&h)["reason"], "bulk_job_not_found");
            }
        }
    }
    // A file the manifest did not list.
    assert_eq!(
        ask(&store, "GET", "/fhir/bulk-files/j1/Other.ndjson", "owner").2,
        404
    );
    // The owner cancels: 202 forgets the job.
    let (h, mut s, _) = ask(&store, "DELETE", "/fhir/bulk-status/j1", "owner");
    respond(&h, &mut s, "202", &[], "");
    assert_eq!(ask(&store, "GET", "/fhir/bulk-status/j1", "owner").2, 404);
}

#[test]
fn kickoffs_beyond_the_limit_get_429_with_retry_after() {
    let store = SharedStore::default();
    let (h, mut s, _) = ask(&store, "GET", "/fhir/$export?_type=Patient", "owner");
    respond(&h, &mut s, "202", &[("content-location", STATUS)], "");
    let (h, _, status) = ask(&store, "GET", "/fhir/$export?_type=Patient", "owner");
    assert_eq!(status, 429);
    assert_eq!(reply_header(&h, "retry-after").as_deref(), Some("120"));
    assert_eq!(reply_header(&h, "www-authenticate"), None);
    assert_eq!(audit(&h)["reason"], "export_limit_reached");
    // Another client is not held back.
    assert_eq!(
        ask(&store, "GET", "/fhir/$export?_type=Patient", "intruder").2,
        0
    );
}
