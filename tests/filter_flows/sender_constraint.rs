//! DPoP and certificate-bound tokens through the shell, with the real token
//! port and engine: the replay cache shared by two worker VMs, the deny
//! reply's challenges and `DPoP-Nonce`, the `DPoP` header kept from the
//! upstream, the fresh nonce on a response, the audit record's binding.

#[path = "../../core/tests/token_support/mod.rs"]
mod token_support;

use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fhir_smart_authz::core_adapter::{CoreEngine, CoreTokens};
use fhir_smart_authz::fake::SharedStore;
use sha2::{Digest, Sha256};
use token_support::{jkt, jws_raw, public_jwk, token_with, ISS, JWKS, NOW};

const HTU: &str = "https://fhir.example.org/fhir/Patient/123";

fn config(issuer_extra: Value, sender: Value) -> Rc<Config> {
    Rc::new(Config::from_json(config_json(issuer_extra, sender).as_bytes()).unwrap())
}

/// The plugin configuration [`config`] reads.
fn config_json(issuer_extra: Value, sender: Value) -> String {
    let mut issuer = json!({"issuer": ISS, "jwks": serde_json::from_str::<Value>(JWKS).unwrap()});
    for (k, v) in issuer_extra.as_object().unwrap() {
        issuer[k] = v.clone();
    }
    let c = json!({
        "fhir_base_url": "https://fhir.example.org/fhir",
        "issuers": [issuer],
        "sender_constraint": sender,
        "discovery": {"authorization_endpoint": "https://as/authorize", "token_endpoint": "https://as/token"},
        "token": {"host_crypto": false},
        "allow_insecure_inline_secrets": true,
    });
    c.to_string()
}

fn bound_token() -> String {
    let mut c = token_support::claims();
    c["cnf"] = json!({"jkt": jkt("p256")});
    token_with("ES256", &c)
}

fn proof(token: &str, jti: &str, nonce: Option<&str>) -> String {
    proof_for(HTU, token, jti, nonce)
}

/// A proof for a GET of `htu`.
fn proof_for(htu: &str, token: &str, jti: &str, nonce: Option<&str>) -> String {
    let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk("p256")});
    let mut c = json!({"jti": jti, "htm": "GET", "htu": htu, "iat": NOW,
        "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))});
    if let Some(n) = nonce {
        c["nonce"] = json!(n);
    }
    jws_raw(&h.to_string(), &c.to_string(), "ES256", "p256")
}

/// A worker VM's stream over `store` (the shared data of the process).
fn vm(
    config: &Rc<Config>,
    store: &SharedStore,
    auth: &str,
    dpop: Option<&str>,
) -> (FakeHost, Stream) {
    vm_at(config, store, "/fhir/Patient/123", auth, dpop)
}

/// [`vm`] for a GET of `path`.
fn vm_at(
    config: &Rc<Config>,
    store: &SharedStore,
    path: &str,
    auth: &str,
    dpop: Option<&str>,
) -> (FakeHost, Stream) {
    let mut extra = vec![];
    if let Some(p) = dpop {
        extra.push(("dpop", p));
    }
    let h = host("GET", path, Some(auth), &extra);
    {
        let mut s = h.state.borrow_mut();
        s.shared_store = Some(store.clone());
        s.now_ms = NOW * 1000;
    }
    let shared = Shared::new(
        config.clone(),
        Box::new(CoreTokens::new(config.clone())),
        Box::new(CoreEngine),
        AuditEncoding::Json,
    );
    (h, Stream::new(shared))
}

fn challenges(h: &FakeHost) -> Vec<String> {
    let s = h.state.borrow();
    s.replies
        .last()
        .unwrap()
        .headers
        .iter()
        .filter(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.clone())
        .collect()
}

#[test]
fn a_proof_is_accepted_once_across_worker_vms() {
    let cfg = config(
        json!({"dpop": {"mode": "accepted", "algorithms": ["ES256", "RS256"]}}),
        json!({}),
    );
    let store = SharedStore::default();
    let token = bound_token();
    let auth = format!("DPoP {token}");
    let p = proof(&token, "once", None);
    let (a, mut sa) = vm(&cfg, &store, &auth, Some(&p));
    assert_eq!(sa.on_request_headers(&a, true), Flow::Continue);
    assert!(replies(&a).is_empty());
    // The proof is not forwarded; the binding is, and audited.
    assert_eq!(a.request_header("dpop"), None);
    assert_eq!(a.request_header("x-smart-binding").as_deref(), Some("dpop"));
    let record = audit(&a);
    assert_eq!(record["agent"]["binding"], "dpop");
    assert_eq!(
        record["agent"]["binding_thumbprint"]
            .as_str()
            .unwrap()
            .len(),
        43
    );
    // Another worker VM sees the replay.
    let (b, mut sb) = vm(&cfg, &store, &auth, Some(&p));
    assert_eq!(sb.on_request_headers(&b, true), Flow::Pause);
    assert_eq!(replies(&b), vec![401]);
    assert_eq!(audit(&b)["reason"], "dpop_proof_replayed");
    assert_eq!(
        b.counter("fhir_smart_authz.decision.deny.dpop_proof_replayed"),
        1
    );
    let rm =
        "resource_metadata=\"https://fhir.example.org/.well-known/oauth-protected-resource/fhir\"";
    assert_eq!(
        challenges(&b),
        vec![
            format!("Bearer realm=\"fhir\", {rm}"),
            format!("DPoP realm=\"fhir\", algs=\"ES256 RS256\", error=\"invalid_dpop_proof\", error_description=\"the DPoP proof was already used (`jti`); make a new proof for every request\", {rm}"),
        ]
    );
    assert_eq!(
        reply_json(&b)["issue"][0]["details"]["coding"][0]["code"],
        "dpop_proof_replayed"
    );
    // The same token as a bearer token: refused, both challenges say so.
    let (c, mut sc) = vm(
        &cfg,
        &store,
        &format!("Bearer {token}"),
        Some(&proof(&token, "other", None)),
    );
    sc.on_request_headers(&c, true);
    assert_eq!(replies(&c), vec![401]);
    let ch = challenges(&c);
    assert!(
        ch[0].starts_with("Bearer realm=\"fhir\", error=\"invalid_token\""),
        "{ch:?}"
    );
    assert!(
        ch[1].starts_with("DPoP realm=\"fhir\", algs=\"ES256 RS256\", error=\"invalid_token\""),
        "{ch:?}"
    );
}

/// Nonces on (60 s buckets): the configuration, the process's shared data,
/// a DPoP-bound token, its `Authorization`, and the nonce its first request
/// (proof `jti`, without a nonce) is refused with.
fn with_nonces(jti: &str) -> (Rc<Config>, SharedStore, String, String, String) {
    let key = "0123456789abcdef0123456789abcdef-nonce";
    let cfg = config(
        json!({"dpop": {"mode": "accepted", "nonce": true}}),
        json!({"nonce_secret": key, "nonce_lifetime_seconds": 60}),
    );
    let store = SharedStore::default();
    let token = bound_token();
    let auth = format!("DPoP {token}");
    let (a, mut sa) = vm(&cfg, &store, &auth, Some(&proof(&token, jti, None)));
    sa.on_request_headers(&a, true);
    assert_eq!(replies(&a), vec![401]);
    assert!(challenges(&a)[1].contains("error=\"use_dpop_nonce\""));
    let nonce = reply_header(&a, "dpop-nonce").expect("a nonce to use");
    (cfg, store, token, auth, nonce)
}

#[test]
fn nonces_are_asked_for_and_renewed_on_responses() {
    let (cfg, store, token, auth, nonce) = with_nonces("n1");
    // With it: allowed, and no new nonce while the bucket lasts.
    let (b, mut sb) = vm(
        &cfg,
        &store,
        &auth,
        Some(&proof(&token, "n2", Some(&nonce))),
    );
    assert_eq!(sb.on_request_headers(&b, true), Flow::Continue);
    sb.on_response_headers(&b);
    assert_eq!(
        b.state
            .borrow()
            .response_headers
            .iter()
            .find(|(n, _)| n == "dpop-nonce"),
        None
    );
    // The bucket turned: still allowed, the response carries the next nonce.
    let next_bucket = (NOW / 60 + 1) * 60;
    let (c, mut sc) = vm(
        &cfg,
        &store,
        &auth,
        Some(&proof(&token, "n3", Some(&nonce))),
    );
    c.state.borrow_mut().now_ms = next_bucket * 1000;
    assert_eq!(sc.on_request_headers(&c, true), Flow::Continue);
    sc.on_response_headers(&c);
    let renewed = c
        .state
        .borrow()
        .response_headers
        .iter()
        .find(|(n, _)| n == "dpop-nonce")
        .map(|(_, v)| v.clone());
    assert!(renewed.is_some_and(|n| n != nonce));
}

/// Every answer carries the fresh nonce once the bucket turned: also the
/// answers the filter relays from its own fetch of a checked read, the
/// replaced answer of a failed check and the gateway error of a failed
/// fetch.
#[test]
fn relayed_answers_carry_the_renewed_nonce() {
    let (cfg, store, token, auth, nonce) = with_nonces("r0");
    let next_bucket = (NOW / 60 + 1) * 60;
    let observation = |patient: &str| {
        json!({"resourceType": "Observation", "id": "o1", "status": "final",
               "code": {"text": "x"}, "subject": {"reference": format!("Patient/{patient}")}})
        .to_string()
    };
    // (row, the fetch's answer: status and body, or none; the reply's status)
    let rows: [(&str, Option<(&str, String)>, u16); 3] = [
        ("relayed", Some(("200", observation("123"))), 200),
        ("replaced", Some(("200", observation("456"))), 403),
        ("unanswered", None, 502),
    ];
    for (i, (row, answer, status)) in rows.into_iter().enumerate() {
        let path = "/fhir/Observation/o1";
        let htu = "https://fhir.example.org/fhir/Observation/o1";
        let p = proof_for(htu, &token, &format!("r{}", i + 1), Some(&nonce));
        let (h, mut s) = vm_at(&cfg, &store, path, &auth, Some(&p));
        h.state.borrow_mut().now_ms = next_bucket * 1000;
        assert_eq!(s.on_request_headers(&h, true), Flow::Pause, "{row}");
        let (id, _) = h.state.borrow().calls.last().cloned().expect("the fetch");
        let size = {
            let mut st = h.state.borrow_mut();
            if let Some((code, body)) = &answer {
                st.call_response_headers = vec![
                    (":status".into(), code.to_string()),
                    ("content-type".into(), "application/fhir+json".into()),
                ];
                st.call_response_body = body.clone().into_bytes();
            }
            st.call_response_body.len()
        };
        s.on_call_response(&h, id, size);
        assert_eq!(replies(&h), vec![status], "{row}");
        let renewed = reply_header(&h, "dpop-nonce");
        assert!(
            renewed.as_ref().is_some_and(|n| *n != nonce),
            "{row}: {renewed:?}"
        );
    }
}

#[test]
fn certificate_headers_from_untrusted_hops_never_reach_the_upstream() {
    let cfg = config(
        json!({}),
        json!({"certificate_source": "x_forwarded_client_cert", "trusted_hops": ["10.0.0.1"]}),
    );
    let store = SharedStore::default();
    let token = token_with("ES256", &token_support::claims());
    let (h, mut s) = vm(&cfg, &store, &format!("Bearer {token}"), None);
    {
        let mut st = h.state.borrow_mut();
        st.request_headers
            .push(("x-forwarded-client-cert".into(), "Hash=00".into()));
        st.host_properties
            .insert("source.address".into(), b"192.0.2.7:5000".to_vec());
    }
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    assert_eq!(h.request_header("x-forwarded-client-cert"), None);
    // From the trusted hop it stays.
    let (h, mut s) = vm(&cfg, &store, &format!("Bearer {token}"), None);
    {
        let mut st = h.state.borrow_mut();
        st.request_headers
            .push(("x-forwarded-client-cert".into(), "Hash=00".into()));
        st.host_properties
            .insert("source.address".into(), b"10.0.0.1:5000".to_vec());
    }
    assert_eq!(s.on_request_headers(&h, true), Flow::Continue);
    assert_eq!(
        h.request_header("x-forwarded-client-cert").as_deref(),
        Some("Hash=00")
    );
}

/// A worker VM configured through its root context over `store` (the
/// shared data of the process), and its stream for a GET with `auth` and
/// the proof `dpop`.
fn configured_vm(plugin: &str, store: &SharedStore, auth: &str, dpop: &str) -> (FakeHost, Stream) {
    let h = host("GET", "/fhir/Patient/123", Some(auth), &[("dpop", dpop)]);
    {
        let mut s = h.state.borrow_mut();
        s.shared_store = Some(store.clone());
        s.now_ms = NOW * 1000;
    }
    let mut root = Root::default();
    let ports = |c: Rc<Config>| -> (Box<dyn TokenPort>, Box<dyn fhir_smart_authz::ports::Engine>) {
        (Box::new(CoreTokens::new(c)), Box::new(CoreEngine))
    };
    assert!(root.configure(&h, Some(plugin.as_bytes()), &ports, AuditEncoding::Json));
    let shared = root.shared.clone().unwrap();
    (h, Stream::new(shared))
}

/// A configuration that changes `replay_cache_entries` while the process
/// runs keeps the shards the first one laid out: a proof used just before
/// the change is still found (in a new layout it would sit in another
/// shard and be accepted again), and the log says a restart re-shards.
#[test]
fn a_proof_stays_a_replay_when_a_new_configuration_resizes_the_cache() {
    let dpop = json!({"dpop": {"mode": "accepted", "algorithms": ["ES256"]}});
    let small = config_json(dpop.clone(), json!({"replay_cache_entries": 16384}));
    let large = config_json(dpop, json!({"replay_cache_entries": 1048576}));
    let store = SharedStore::default();
    let token = bound_token();
    let auth = format!("DPoP {token}");
    let p = proof(&token, "used-before-the-change", None);
    let (a, mut sa) = configured_vm(&small, &store, &auth, &p);
    assert_eq!(sa.on_request_headers(&a, true), Flow::Continue);
    assert!(replies(&a).is_empty());
    let (b, mut sb) = configured_vm(&large, &store, &auth, &p);
    assert_eq!(sb.on_request_headers(&b, true), Flow::Pause);
    assert_eq!(replies(&b), vec![401]);
    assert_eq!(audit(&b)["reason"], "dpop_proof_replayed");
    let warned = b
        .state
        .borrow()
        .logs
        .iter()
        .any(|(_, m)| m.contains("keeps the 64 shards") && m.contains("16384 entries a shard"));
    assert!(warned, "{:?}", b.state.borrow().logs);
    assert_eq!(
        store
            .borrow()
            .get("fhir_smart_authz.dpop_replay.layout")
            .map(|(v, _)| v.clone()),
        Some(64u32.to_be_bytes().to_vec())
    );
}
