//! Key rotation across worker VMs: a new kid uses, or waits for, the key set another VM fetches.

use super::*;

/// One worker VM: its host (sharing `store` with the others), its root, and
/// a token port allowed `budget` unknown-kid fetches of its own.
fn vm(store: &fhir_smart_authz::fake::SharedStore, budget: u32, now_ms: u64) -> (FakeHost, Root) {
    vm_with(store, budget, now_ms, false)
}

/// [`vm`] whose engine allows with a response check (`obligations`).
fn vm_with(
    store: &fhir_smart_authz::fake::SharedStore,
    budget: u32,
    now_ms: u64,
    obligations: bool,
) -> (FakeHost, Root) {
    let factory = move |_c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn Engine>) {
        let mut t = tokens();
        t.fetched = vec![0];
        t.fetch_budget = budget;
        t.tokens
            .insert("rotated".into(), FakeToken::NewKid(claims("ok")));
        (Box::new(t), Box::new(scripted_engine(false, obligations)))
    };
    let h = host("GET", "/fhir/Observation/o1", Some("Bearer rotated"), &[]);
    {
        let mut s = h.state.borrow_mut();
        s.now_ms = now_ms;
        s.shared_store = Some(store.clone());
    }
    let mut root = Root::default();
    assert!(root.configure(&h, Some(ROT_CFG), &factory, AuditEncoding::Json));
    (h, root)
}

fn vm_stream(root: &Root, context_id: u32) -> Rc<std::cell::RefCell<Stream>> {
    Stream::new_shared(root.shared.clone().unwrap(), context_id)
}

fn answer_jwks(h: &FakeHost, status: &str, body: &[u8]) {
    let mut st = h.state.borrow_mut();
    st.call_response_headers = vec![(":status".into(), status.into())];
    st.call_response_body = body.to_vec();
}

const NEW_JWKS: &[u8] = b"{\"keys\":[\"new\"]}";

#[test]
fn rotated_kid_uses_the_key_set_another_vm_shared() {
    let store = fhir_smart_authz::fake::SharedStore::default();
    // VM A sees the new kid first and fetches (it takes the cross-VM lease).
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    assert_eq!(a.state.borrow().calls.len(), 1);
    answer_jwks(&a, "200", NEW_JWKS);
    sa.borrow_mut().on_call_response(&a, 1, NEW_JWKS.len());
    assert_eq!(resumed(&a), 1);
    assert_eq!(audit(&a)["decision"], "allow");
    // VM B, 300 ms later, before its 1 s tick: its own fetch is rate-limited,
    // but the key set A shared verifies the token: no 401, no second fetch.
    let (b, root_b) = vm(&store, 0, NOW_MS + 300);
    let sb = vm_stream(&root_b, 1);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Continue);
    assert_eq!(audit(&b)["decision"], "allow");
    assert!(b.state.borrow().calls.is_empty());
    assert!(replies(&b).is_empty());
    // VM C whose port would fetch: A's fetch 500 ms ago holds the lease
    // (jwks_min_refetch_seconds across VMs); the shared set verifies it.
    let (c, root_c) = vm(&store, 1, NOW_MS + 500);
    let sc = vm_stream(&root_c, 1);
    assert_eq!(sc.borrow_mut().on_request_headers(&c, true), Flow::Continue);
    assert!(c.state.borrow().calls.is_empty());
    // Verified once, with the shared keys: one miss, not a hit.
    assert_eq!(c.counter("fhir_smart_authz.token_cache.miss"), 1);
    assert_eq!(c.counter("fhir_smart_authz.token_cache.hit"), 0);
    // A kid that is in no key set: A's fetch (moments ago) did not have it;
    // B refuses at once, without a fetch of its own and without waiting
    // (at most one fetch per jwks_min_refetch_seconds across VMs).
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    const OLD_JWKS: &[u8] = b"{\"keys\":[\"old\"]}";
    answer_jwks(&a, "200", OLD_JWKS);
    sa.borrow_mut().on_call_response(&a, 1, OLD_JWKS.len());
    assert_eq!(replies(&a), vec![401]);
    let (b, root_b) = vm(&store, 1, NOW_MS + 300);
    let sb = vm_stream(&root_b, 1);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    assert_eq!(replies(&b), vec![401]);
    assert!(b.state.borrow().calls.is_empty());
    assert!(root_b
        .shared
        .as_ref()
        .unwrap()
        .jwks
        .waiting
        .borrow()
        .is_empty());
}

#[test]
fn rotated_kid_waits_for_the_fetch_in_flight_on_another_vm() {
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    // B's port would fetch too, but A's fetch is in flight: B waits, no call.
    let (b, mut root_b) = vm(&store, 1, NOW_MS + 100);
    let sb = vm_stream(&root_b, 42);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    assert!(b.state.borrow().calls.is_empty(), "no stampede");
    assert!(replies(&b).is_empty(), "no 401 while A fetches");
    assert_eq!(b.state.borrow().tick_ms, 50, "short tick while waiting");
    root_b.tick(&b); // A has not answered yet: still waiting
    assert_eq!(resumed(&b), 0);
    // A's fetch lands in shared data; B's next tick resumes the request.
    answer_jwks(&a, "200", NEW_JWKS);
    sa.borrow_mut().on_call_response(&a, 1, NEW_JWKS.len());
    b.state.borrow_mut().now_ms += 50;
    root_b.tick(&b);
    assert_eq!(b.state.borrow().effective_context, Some(42));
    assert_eq!(resumed(&b), 1);
    assert_eq!(audit(&b)["decision"], "allow");
    assert_eq!(b.request_header("x-smart-patient").as_deref(), Some("p1"));
    assert_eq!(b.state.borrow().tick_ms, 1000, "back to the 1 s tick");
    root_b.tick(&b);
    assert_eq!(resumed(&b), 1, "resumed exactly once");
}

#[test]
fn waiting_for_another_vm_is_bounded() {
    // A's fetch fails: the lease is released and B fetches itself.
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    let (b, mut root_b) = vm(&store, 2, NOW_MS + 100);
    let sb = vm_stream(&root_b, 9);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    answer_jwks(&a, "503", b"");
    sa.borrow_mut().on_call_response(&a, 1, 0);
    assert_eq!(replies(&a), vec![401]);
    root_b.tick(&b);
    assert_eq!(b.state.borrow().calls.len(), 1, "B takes the free lease");
    answer_jwks(&b, "200", NEW_JWKS);
    sb.borrow_mut().on_call_response(&b, 1, NEW_JWKS.len());
    assert_eq!(resumed(&b), 1);
    assert_eq!(audit(&b)["decision"], "allow");

    // A's fetch never answers: B answers 401 once its wait times out
    // (jwks_timeout_ms + 1 s), without fetching.
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    let (b, mut root_b) = vm(&store, 1, NOW_MS + 100);
    let sb = vm_stream(&root_b, 9);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    b.state.borrow_mut().now_ms = NOW_MS + 3000;
    root_b.tick(&b);
    assert!(replies(&b).is_empty(), "still within the bound");
    b.state.borrow_mut().now_ms = NOW_MS + 100 + 6000;
    root_b.tick(&b);
    assert_eq!(replies(&b), vec![401]);
    assert_eq!(audit(&b)["reason"], "invalid_token");
    assert!(b.state.borrow().calls.is_empty());
    assert_eq!(resumed(&b), 0);
    drop(sb);
}

#[test]
fn answers_to_calls_made_from_the_root_tick_reach_the_request() {
    // Envoy's SDK files a call under the context it last called into: a call
    // made by a request resumed from the root's tick is answered to the root,
    // which must hand it to the request (else the request hangs).
    let store = fhir_smart_authz::fake::SharedStore::default();
    let (a, root_a) = vm(&store, 1, NOW_MS);
    let sa = vm_stream(&root_a, 1);
    assert_eq!(sa.borrow_mut().on_request_headers(&a, true), Flow::Pause);
    let (b, mut root_b) = vm_with(&store, 1, NOW_MS + 100, true);
    let sb = vm_stream(&root_b, 42);
    assert_eq!(sb.borrow_mut().on_request_headers(&b, true), Flow::Pause);
    answer_jwks(&a, "200", NEW_JWKS);
    sa.borrow_mut().on_call_response(&a, 1, NEW_JWKS.len());
    b.state.borrow_mut().now_ms += 50;
    root_b.tick(&b); // resumed: verified, then the response-check fetch
    let (id, call) = b.state.borrow().calls.last().cloned().unwrap();
    assert_eq!(call.cluster, "fhir");
    let body = br#"{"resourceType":"Observation","subject":{"reference":"Patient/p1"}}"#;
    {
        let mut st = b.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), "200".into())];
        st.call_response_body = body.to_vec();
    }
    root_b.on_call_response(&b, id, body.len()); // as the SDK delivers it
    assert_eq!(replies(&b), vec![200]);
    assert_eq!(audit(&b)["obligation"], "passed");
    assert_eq!(b.state.borrow().effective_context, Some(42));
    // a second answer with that id is nobody's
    root_b.on_call_response(&b, id, body.len());
    assert_eq!(replies(&b), vec![200]);
}
