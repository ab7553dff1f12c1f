//! The write pre-check: a write by id under a patient/ scope is held while
//! the filter reads the stored resource through `upstream.cluster`, then
//! goes on (with `If-Match` on held headers), is refused (403), answered
//! with the server's 404/410, or fails closed (502).

use super::*;

const OWN: &str = r#"{"resourceType":"Observation","id":"o1","meta":{"versionId":"3"},"subject":{"reference":"Patient/p1"}}"#;
const OTHER: &str =
    r#"{"resourceType":"Observation","id":"o1","subject":{"reference":"Patient/p2"}}"#;

fn pre(kind: InteractionKind, id: &str, entry: Option<usize>) -> Obligation {
    Obligation::CheckStored {
        resource_type: "Observation".into(),
        id: id.into(),
        patient: "p1".into(),
        interaction: kind,
        entry,
    }
}

/// A stream whose engine allows every request with these pre-checks (its
/// interaction `kind` on `Observation/o1`; a transaction when they name
/// Bundle entries).
fn precheck_stream(config: &str, kind: InteractionKind, checks: Vec<Obligation>) -> Stream {
    let body_needed = kind != InteractionKind::Delete;
    let engine = FakeEngine {
        body_needed,
        decide: Box::new(move |_req: &RequestParts, _claims: Option<&Value>| {
            let bundle = checks
                .iter()
                .any(|o| matches!(o, Obligation::CheckStored { entry: Some(_), .. }));
            let mut it = if bundle {
                Interaction::new(InteractionKind::Transaction, Level::System)
            } else {
                Interaction::new(kind, Level::Instance)
            };
            if !bundle {
                it.resource_type = Some("Observation".into());
                it.id = Some("o1".into());
            }
            let mut d = Decision::allow(Reason::Allowed, it);
            d.required_scopes = vec!["patient/Observation.u".into()];
            d.obligations = checks.clone();
            d
        }),
        check: Box::new(|_o: &Obligation, _v: &Value| Ok(())),
    };
    let config = Rc::new(Config::from_json(config.as_bytes()).unwrap());
    Stream::new(Shared::new(
        config,
        Box::new(tokens()),
        Box::new(engine),
        AuditEncoding::Json,
    ))
}

/// The pre-check read in flight answers `status` with `body` (and `extra`
/// response headers).
fn answer(h: &FakeHost, s: &mut Stream, status: &str, body: &str, extra: &[(&str, &str)]) {
    let id = {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), status.into())];
        for (n, v) in extra {
            st.call_response_headers
                .push((n.to_string(), v.to_string()));
        }
        st.call_response_body = body.as_bytes().to_vec();
        st.calls.last().map(|(id, _)| *id).unwrap()
    };
    s.on_call_response(h, id, body.len());
}

fn last_call_header(h: &FakeHost, name: &str) -> Option<String> {
    let st = h.state.borrow();
    let (_, call) = st.calls.last()?;
    call.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// A DELETE by id (no body: held at the headers while the stored resource
/// is read); with `refused_call`, Envoy refuses the read.
fn held_delete(config: &str, refused_call: bool) -> (FakeHost, Stream) {
    let h = host("DELETE", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    h.state.borrow_mut().fail_calls = refused_call;
    let mut s = precheck_stream(
        config,
        InteractionKind::Delete,
        vec![pre(InteractionKind::Delete, "o1", None)],
    );
    assert_eq!(s.on_request_headers(&h, true), Flow::Pause);
    (h, s)
}

/// A PUT by id whose headers are held (`hold_headers_for_body`): the read,
/// then the write with `If-Match` of the checked version.
fn held_put(extra: &[(&str, &str)]) -> (FakeHost, Stream) {
    let h = host(
        "PUT",
        "/fhir/Observation/o1?_format=json",
        Some("Bearer good"),
        extra,
    );
    h.state.borrow_mut().request_body = br#"{"resourceType":"Observation"}"#.to_vec();
    let mut s = precheck_stream(
        r#"{"upstream":{"hold_headers_for_body":true}}"#,
        InteractionKind::Update,
        vec![pre(InteractionKind::Update, "o1", None)],
    );
    assert_eq!(
        s.on_request_headers(&h, false),
        Flow::Pause,
        "headers held for the body"
    );
    assert_eq!(
        s.on_request_body(&h, 30, true),
        Flow::Pause,
        "held for the pre-check"
    );
    (h, s)
}

#[test]
fn allowed_write_goes_on_with_if_match() {
    let (h, mut s) = held_put(&[
        ("content-type", "application/fhir+json"),
        ("if-none-match", "*"),
    ]);
    {
        let st = h.state.borrow();
        assert_eq!(st.calls.len(), 1);
        let (_, call) = &st.calls[0];
        assert_eq!(call.cluster, "fhir");
        assert_eq!(call.body, None);
    }
    for (name, want) in [
        (":method", "GET"),
        (":path", "/fhir/Observation/o1"),
        ("accept-encoding", "identity"),
        ("accept", "application/fhir+json"),
        ("x-smart-patient", "p1"),
    ] {
        assert_eq!(last_call_header(&h, name).as_deref(), Some(want), "{name}");
    }
    assert_eq!(last_call_header(&h, "content-type"), None);
    assert_eq!(last_call_header(&h, "if-none-match"), None);
    assert!(
        h.state.borrow().properties.is_empty(),
        "audited once checked"
    );
    answer(&h, &mut s, "200", OWN, &[("etag", "W/\"3\"")]);
    assert_eq!(h.request_header("if-match").as_deref(), Some("W/\"3\""));
    assert_eq!(resumed(&h), 1);
    assert!(replies(&h).is_empty());
    assert_eq!(audit(&h)["decision"], "allow");
    assert_eq!(h.counter("fhir_smart_authz.precheck.pass"), 1);
    assert_eq!(h.counter("fhir_smart_authz.decision.allow.allowed"), 1);
}

#[test]
fn client_if_match_is_kept() {
    let (h, mut s) = held_put(&[("if-match", "W/\"2\"")]);
    answer(&h, &mut s, "200", OWN, &[("etag", "W/\"3\"")]);
    assert_eq!(h.request_header("if-match").as_deref(), Some("W/\"2\""));
    assert_eq!(resumed(&h), 1);
}

#[test]
fn released_headers_cannot_take_if_match_and_a_refusal_resets() {
    // Headers released before the body (the default): the write goes on
    // without If-Match; a refusal is a local reply, so Envoy resets the
    // upstream request, which never received the body.
    for (body, allowed) in [(OWN, true), (OTHER, false)] {
        let h = host("PUT", "/fhir/Observation/o1", Some("Bearer good"), &[]);
        let mut s = precheck_stream(
            "{}",
            InteractionKind::Update,
            vec![pre(InteractionKind::Update, "o1", None)],
        );
        assert_eq!(s.on_request_headers(&h, false), Flow::Continue);
        assert_eq!(
            s.on_request_body(&h, 10, true),
            Flow::Pause,
            "the body waits for the pre-check"
        );
        answer(&h, &mut s, "200", body, &[("etag", "W/\"3\"")]);
        assert_eq!(h.request_header("if-match"), None);
        assert_eq!(resumed(&h), u32::from(allowed));
        assert_eq!(replies(&h), if allowed { vec![] } else { vec![403] });
    }
}

#[test]
fn another_patients_resource_is_refused() {
    let (h, mut s) = held_put(&[]);
    answer(&h, &mut s, "200", OTHER, &[]);
    assert_eq!(replies(&h), vec![403]);
    assert_eq!(resumed(&h), 0);
    assert_eq!(h.request_header("if-match"), None);
    let a = audit(&h);
    assert_eq!(a["decision"], "deny");
    assert_eq!(a["reason"], "patient_compartment_violation");
    assert_eq!(reply_json(&h)["issue"][0]["code"], "forbidden");
    assert!(
        !String::from_utf8_lossy(&h.state.borrow().replies[0].body).contains("p2"),
        "the stored resource is not leaked"
    );
    assert_eq!(h.counter("fhir_smart_authz.precheck.fail"), 1);
    assert_eq!(
        h.counter("fhir_smart_authz.decision.deny.patient_compartment_violation"),
        1
    );
    assert_eq!(h.counter("fhir_smart_authz.decision.allow.allowed"), 0);
}

#[test]
fn failed_reads_fail_closed() {
    // (answer status or none, headers, body): each 502 upstream_unavailable.
    for (status, extra, body) in [
        (Some("500"), vec![], OWN),
        (Some("401"), vec![], OWN),
        (Some("200"), vec![("content-encoding", "gzip")], OWN),
        (Some("200"), vec![], "<Observation/>"),
        (None, vec![], ""),
    ] {
        let (h, mut s) = held_put(&[]);
        match status {
            Some(st) => answer(&h, &mut s, st, body, &extra),
            None => {
                h.state.borrow_mut().call_response_headers = vec![];
                s.on_call_response(&h, 1, 0);
            }
        }
        assert_eq!(replies(&h), vec![502], "{status:?} {extra:?}");
        assert_eq!(resumed(&h), 0);
        assert_eq!(reply_json(&h)["issue"][0]["code"], "transient");
        assert_eq!(reply_header(&h, "www-authenticate"), None);
        assert_eq!(audit(&h)["reason"], "upstream_unavailable");
        assert_eq!(h.counter("fhir_smart_authz.precheck.upstream_failure"), 1);
    }
    // Envoy refuses the call (unknown cluster): 502 at once.
    let (h, _s) = held_delete("{}", true);
    assert_eq!(replies(&h), vec![502]);
    assert_eq!(audit(&h)["reason"], "upstream_unavailable");
    // Larger than max_body_bytes: unusable, not guessed.
    let (h, mut s) = held_delete(r#"{"max_body_bytes":20}"#, false);
    answer(&h, &mut s, "200", OWN, &[]);
    assert_eq!(replies(&h), vec![502]);
}

#[test]
fn delete_and_patch_of_what_does_not_exist() {
    // A delete by id (no body): held at the headers; no If-Match for a delete.
    let (h, mut s) = held_delete("{}", false);
    answer(&h, &mut s, "200", OWN, &[("etag", "W/\"3\"")]);
    assert_eq!(resumed(&h), 1);
    assert_eq!(h.request_header("if-match"), None);
    // 404/410 to a patch or delete: nothing stored, the write goes on and
    // the server answers it itself.
    for status in ["404", "410"] {
        let (h, mut s) = held_delete("{}", false);
        answer(
            &h,
            &mut s,
            status,
            r#"{"resourceType":"OperationOutcome"}"#,
            &[],
        );
        assert!(replies(&h).is_empty());
        assert_eq!(resumed(&h), 1);
        assert_eq!(audit(&h)["decision"], "allow");
    }
    // 404 to an update: a create, allowed (the body rule was met), no If-Match.
    let (h, mut s) = held_put(&[]);
    answer(&h, &mut s, "404", "", &[]);
    assert_eq!(resumed(&h), 1);
    assert_eq!(h.request_header("if-match"), None);
    // 410 to an update: refused.
    let (h, mut s) = held_put(&[]);
    answer(&h, &mut s, "410", "", &[]);
    assert_eq!(replies(&h), vec![403]);
}

/// A transaction whose entries 0 and 2 write by id, its body complete.
fn bundle_run(config: &str, held: bool) -> (FakeHost, Stream) {
    let h = host("POST", "/fhir", Some("Bearer good"), &[]);
    let mut s = precheck_stream(
        config,
        InteractionKind::Update,
        vec![
            pre(InteractionKind::Update, "o1", Some(0)),
            pre(InteractionKind::Delete, "o2", Some(2)),
        ],
    );
    let headers = if held { Flow::Pause } else { Flow::Continue };
    assert_eq!(s.on_request_headers(&h, false), headers);
    assert_eq!(s.on_request_body(&h, 30, true), Flow::Pause);
    (h, s)
}

#[test]
fn bundle_entries_are_checked_one_after_the_other() {
    let (h, mut s) = bundle_run(r#"{"upstream":{"hold_headers_for_body":true}}"#, true);
    assert_eq!(
        last_call_header(&h, ":path").as_deref(),
        Some("/fhir/Observation/o1")
    );
    answer(&h, &mut s, "200", OWN, &[("etag", "W/\"3\"")]);
    assert_eq!(h.state.borrow().calls.len(), 2, "the next pre-check");
    assert_eq!(
        last_call_header(&h, ":path").as_deref(),
        Some("/fhir/Observation/o2")
    );
    assert_eq!(resumed(&h), 0);
    answer(&h, &mut s, "200", &OWN.replace("o1", "o2"), &[]);
    assert_eq!(resumed(&h), 1);
    assert_eq!(
        h.request_header("if-match"),
        None,
        "entries cannot carry If-Match"
    );
    assert_eq!(h.counter("fhir_smart_authz.precheck.pass"), 2);
    // The second entry belongs to another patient: the whole Bundle is refused.
    let (h, mut s) = bundle_run("{}", false);
    answer(&h, &mut s, "200", OWN, &[]);
    answer(&h, &mut s, "200", &OTHER.replace("o1", "o2"), &[]);
    assert_eq!(replies(&h), vec![403]);
    assert!(reply_json(&h)["issue"][0]["diagnostics"]
        .as_str()
        .unwrap()
        .contains("Observation/o2"));
}

#[test]
fn shadow_mode_checks_audits_and_releases() {
    let h = host("PUT", "/fhir/Observation/o1", Some("Bearer good"), &[]);
    let mut s = precheck_stream(
        r#"{"enforce":false,"upstream":{"hold_headers_for_body":true}}"#,
        InteractionKind::Update,
        vec![pre(InteractionKind::Update, "o1", None)],
    );
    assert_eq!(s.on_request_headers(&h, false), Flow::Pause);
    assert_eq!(s.on_request_body(&h, 30, true), Flow::Pause);
    answer(&h, &mut s, "200", OTHER, &[]);
    assert!(replies(&h).is_empty());
    assert_eq!(resumed(&h), 1);
    let a = audit(&h);
    assert_eq!(a["reason"], "patient_compartment_violation");
    assert_eq!(a["enforced"], false);
    assert_eq!(h.counter("fhir_smart_authz.shadow.would_deny"), 1);
    // A delete of what does not exist: forwarded (the server answers it).
    let (h, mut s) = held_delete(r#"{"enforce":false}"#, false);
    answer(&h, &mut s, "404", "", &[]);
    assert!(replies(&h).is_empty());
    assert_eq!(resumed(&h), 1);
}
