//! The proxy-wasm shell's request flows against the fake host.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::type_complexity
)]

mod audit_encoding;
mod batches;
mod bodies;
mod bulk;
mod failed_request;
mod faults;
mod headers;
mod key_rotation;
mod labels;
mod metadata;
mod metrics;
mod obligations;
mod prechecks;
mod rewrites;
mod root;
mod sender_constraint;
mod token_calls;

use fhir_smart_authz::audit_property::resolve_audit_encoding;
use fhir_smart_authz::fake::{FakeEngine, FakeHost, FakeToken, FakeTokens};
use fhir_smart_authz::host::{HostError, LogLevel};
use fhir_smart_authz::ports::{Engine, TokenPort};
use fhir_smart_authz::root::Root;
use fhir_smart_authz::{Flow, Shared, Stream};
use fhir_smart_authz_core::audit::pbstruct::encode_struct;
use fhir_smart_authz_core::audit::AuditEncoding;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{client_text, Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::{Interaction, InteractionKind, Level, RequestParts};
use serde_json::{json, Value};
use std::rc::Rc;

const NOW_MS: u64 = 1_795_614_593_123;

fn read_interaction() -> Interaction {
    let mut it = Interaction::new(InteractionKind::Read, Level::Instance);
    it.resource_type = Some("Observation".into());
    it.id = Some("o1".into());
    it
}

/// Engine: allow when claims carry scope "ok", 403 otherwise; 401 without token.
fn scripted_engine(body_needed: bool, obligations: bool) -> FakeEngine {
    FakeEngine {
        body_needed,
        decide: Box::new(move |req: &RequestParts, claims: Option<&Value>| {
            if req.path.contains("bad") {
                return Decision::deny(Reason::InvalidRequest, "the path is not a FHIR REST path");
            }
            match claims {
                None => Decision::deny(Reason::MissingToken, "this request needs a bearer token"),
                Some(c) if c["scope"] == "ok" => {
                    if body_needed
                        && req.body != Some(b"{\"resourceType\":\"Observation\"}".as_slice())
                    {
                        return Decision::deny(Reason::InvalidRequest, "unexpected body");
                    }
                    let mut d = Decision::allow(Reason::Allowed, read_interaction());
                    d.required_scopes = vec!["patient/Observation.rs".into()];
                    if obligations {
                        d.obligations = vec![Obligation::CheckResponseCompartment {
                            resource_type: "Observation".into(),
                            patient: "p1".into(),
                        }];
                    }
                    d
                }
                Some(_) => {
                    let mut d = Decision::deny(
                        Reason::InsufficientScope,
                        "read of Observation needs patient/Observation.rs",
                    )
                    .with_interaction(read_interaction());
                    d.required_scopes = vec![
                        "patient/Observation.rs".into(),
                        "user/Observation.rs".into(),
                    ];
                    d
                }
            }
        }),
        check: Box::new(|_o: &Obligation, v: &Value| {
            // As the core's check: an OperationOutcome always passes.
            if v["subject"]["reference"] == "Patient/p1" || v["resourceType"] == "OperationOutcome"
            {
                Ok(())
            } else {
                Err("Observation/o1 is not in the compartment of Patient/p1".into())
            }
        }),
    }
}

fn claims(scope: &str) -> Value {
    json!({"iss": "https://as", "sub": "u1", "client_id": "app", "scope": scope, "patient": "p1", "fhirUser": "Practitioner/pr1", "jti": "j-1"})
}

fn tokens() -> FakeTokens {
    let mut t = FakeTokens::default();
    t.tokens
        .insert("good".into(), FakeToken::Valid(claims("ok")));
    t.tokens.insert(
        "weak".into(),
        FakeToken::Valid(claims("patient/Patient.rs")),
    );
    t.tokens
        .insert("expired".into(), FakeToken::Invalid("the token expired"));
    t.tokens
        .insert("newkid".into(), FakeToken::NeedsKeys(claims("ok")));
    t.tokens
        .insert("opaque".into(), FakeToken::Introspect(claims("ok")));
    t
}

struct Setup {
    config: &'static str,
    body_needed: bool,
    obligations: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            config: "{}",
            body_needed: false,
            obligations: false,
        }
    }
}

fn stream(s: Setup) -> Stream {
    stream_with(s, AuditEncoding::Json)
}

fn stream_with(s: Setup, encoding: AuditEncoding) -> Stream {
    let config = Rc::new(Config::from_json(s.config.as_bytes()).unwrap());
    let t: Box<dyn TokenPort> = Box::new(tokens());
    let e: Box<dyn Engine> = Box::new(scripted_engine(s.body_needed, s.obligations));
    Stream::new(Shared::new(config, t, e, encoding))
}

fn host(method: &str, path: &str, auth: Option<&str>, extra: &[(&str, &str)]) -> FakeHost {
    let h = FakeHost::new(NOW_MS);
    {
        let mut s = h.state.borrow_mut();
        s.request_headers = vec![
            (":method".into(), method.into()),
            (":path".into(), path.into()),
            (":authority".into(), "fhir.example".into()),
            ("x-request-id".into(), "rid-7".into()),
        ];
        if let Some(a) = auth {
            s.request_headers.push(("authorization".into(), a.into()));
        }
        for (n, v) in extra {
            s.request_headers.push((n.to_string(), v.to_string()));
        }
    }
    h
}

fn audit(h: &FakeHost) -> Value {
    let s = h.state.borrow();
    let bytes = s
        .properties
        .get("fhir_smart_authz_audit")
        .expect("audit written");
    serde_json::from_slice(bytes).unwrap()
}

fn reply_header(h: &FakeHost, name: &str) -> Option<String> {
    let s = h.state.borrow();
    s.replies
        .last()?
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn reply_json(h: &FakeHost) -> Value {
    serde_json::from_slice(&h.state.borrow().replies.last().unwrap().body).unwrap()
}

fn replies(h: &FakeHost) -> Vec<u16> {
    h.state.borrow().replies.iter().map(|r| r.status).collect()
}

/// Answer the stream's call 1 with `status` and a key set (the fake token
/// port takes any JSON object with `keys` as usable keys).
fn answer_call(h: &FakeHost, s: &mut Stream, status: &str) {
    const KEYS: &[u8] = br#"{"keys":[]}"#;
    {
        let mut st = h.state.borrow_mut();
        st.call_response_headers = vec![(":status".into(), status.into())];
        st.call_response_body = KEYS.to_vec();
    }
    s.on_call_response(h, 1, KEYS.len());
}

fn resumed(h: &FakeHost) -> u32 {
    h.state.borrow().resumed_requests
}

// --- key rotation across worker VMs ------------------------------------------

const ROT_CFG: &[u8] = br#"{"fhir_base_url":"https://fhir.example/fhir","issuers":[{"issuer":"https://as","jwks_uri":"https://as/jwks","jwks_cluster":"issuer","jwks_min_refetch_seconds":30}]}"#;
