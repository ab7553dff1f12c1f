//! An in-memory host and fake ports for native tests of the shell.

use crate::host::{Buffer, HeaderMap, Host, HostError, HostResult, HttpCall, LogLevel};
use crate::ports::{Engine, Pending, TokenInput, TokenPort, TokenStep};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::reply::Reply;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// A recorded local reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub request_headers: Vec<(String, String)>,
    pub call_response_headers: Vec<(String, String)>,
    pub request_body: Vec<u8>,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Vec<u8>,
    /// When set, replacing the response body fails (the host refuses).
    pub fail_body_write: bool,
    pub call_response_body: Vec<u8>,
    pub replies: Vec<SentReply>,
    pub resumed_requests: u32,
    /// Properties the filter set (`a.b` for `["a", "b"]`).
    pub properties: BTreeMap<String, Vec<u8>>,
    /// Properties the host offers for reading (`response.code`, ...).
    pub host_properties: BTreeMap<String, Vec<u8>>,
    pub calls: Vec<(u32, HttpCall)>,
    pub next_call: u32,
    pub fail_calls: bool,
    /// When set, removing a request header fails (the host refuses).
    pub fail_header_removal: bool,
    /// When set, setting a request header fails (the host refuses).
    pub fail_header_set: bool,
    /// Request headers (lower case, e.g. `:path`) the host refuses to set.
    pub fail_header_set_of: Vec<String>,
    /// When set, reading any body fails (the host refuses).
    pub fail_body_read: bool,
    pub shared: HashMap<String, (Vec<u8>, u32)>,
    /// When set, shared data lives here instead of `shared`: give two fake
    /// hosts the same store to model two worker VMs.
    pub shared_store: Option<SharedStore>,
    /// The last `set_effective_context` target.
    pub effective_context: Option<u32>,
    pub counters: BTreeMap<String, i64>,
    pub counter_names: Vec<String>,
    pub logs: Vec<(LogLevel, String)>,
    pub now_ms: u64,
    pub tick_ms: u64,
    /// What `memory_bytes` reports.
    pub memory_bytes: u64,
    pub configuration: Option<Vec<u8>>,
    /// The VM's environment variables (`Host::env_var`).
    pub env: BTreeMap<String, String>,
    /// Envoy's `verify_signature` foreign function (arguments → result
    /// bytes; `Err` = `BadArgument`); absent by default, as in a host
    /// without it.
    pub verify_signature: Option<VerifySignature>,
    /// Every host call made, by `Host` method name (what a request costs
    /// at the V8 boundary).
    pub host_calls: BTreeMap<&'static str, u32>,
}

/// A stand-in for Envoy's `verify_signature`: arguments → result bytes.
pub type VerifySignature = fn(&[u8]) -> Result<Vec<u8>, String>;

/// Shared data common to several fake hosts (VMs).
pub type SharedStore = std::rc::Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

/// The fake host. All state is inspectable through `state`.
#[derive(Debug, Default)]
pub struct FakeHost {
    pub state: RefCell<FakeState>,
}

impl FakeHost {
    pub fn new(now_ms: u64) -> FakeHost {
        let h = FakeHost::default();
        h.state.borrow_mut().now_ms = now_ms;
        h
    }

    /// Count a host call.
    fn called(&self, method: &'static str) {
        *self
            .state
            .borrow_mut()
            .host_calls
            .entry(method)
            .or_insert(0) += 1;
    }

    fn define_metric(&self, name: &str) -> Option<u32> {
        let mut s = self.state.borrow_mut();
        s.counter_names.push(name.to_string());
        s.counters.entry(name.to_string()).or_insert(0);
        u32::try_from(s.counter_names.len() - 1).ok()
    }

    /// Host calls made so far, in all.
    pub fn host_call_count(&self) -> u32 {
        self.state.borrow().host_calls.values().sum()
    }

    /// Forget the host calls made so far.
    pub fn reset_host_calls(&self) {
        self.state.borrow_mut().host_calls.clear();
    }

    pub fn counter(&self, name: &str) -> i64 {
        self.state.borrow().counters.get(name).copied().unwrap_or(0)
    }

    pub fn request_header(&self, name: &str) -> Option<String> {
        self.state
            .borrow()
            .request_headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }
}

fn set_in(map: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    map.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    if let Some(v) = value {
        map.push((name.to_string(), v.to_string()));
    }
}

impl Host for FakeHost {
    fn log(&self, level: LogLevel, message: &str) {
        self.called("log");
        self.state
            .borrow_mut()
            .logs
            .push((level, message.to_string()));
    }
    fn now_ms(&self) -> u64 {
        self.called("now_ms");
        self.state.borrow().now_ms
    }
    fn now_us(&self) -> u64 {
        self.called("now_us");
        self.state.borrow().now_ms.saturating_mul(1000)
    }
    fn headers(&self, which: HeaderMap) -> Vec<(String, String)> {
        self.called("headers");
        let s = self.state.borrow();
        match which {
            HeaderMap::Request => s.request_headers.clone(),
            HeaderMap::Response => s.response_headers.clone(),
            HeaderMap::CallResponse => s.call_response_headers.clone(),
        }
    }
    fn set_header(&self, which: HeaderMap, name: &str, value: Option<&str>) -> HostResult {
        self.called("set_header");
        let mut s = self.state.borrow_mut();
        match which {
            HeaderMap::Request if value.is_none() && s.fail_header_removal => {
                Err(HostError::InternalFailure)
            }
            HeaderMap::Request
                if value.is_some()
                    && (s.fail_header_set || s.fail_header_set_of.iter().any(|n| n == name)) =>
            {
                Err(HostError::InternalFailure)
            }
            HeaderMap::Request => {
                set_in(&mut s.request_headers, name, value);
                Ok(())
            }
            HeaderMap::Response => {
                set_in(&mut s.response_headers, name, value);
                Ok(())
            }
            HeaderMap::CallResponse => Err(HostError::BadArgument),
        }
    }
    fn body(&self, which: Buffer, max: usize) -> Option<Vec<u8>> {
        self.called("body");
        let s = self.state.borrow();
        if s.fail_body_read {
            return None;
        }
        let b = match which {
            Buffer::RequestBody => &s.request_body,
            Buffer::ResponseBody => &s.response_body,
            Buffer::CallResponseBody => &s.call_response_body,
        };
        Some(b.iter().take(max).copied().collect())
    }
    fn set_response_body(&self, len: usize, body: &[u8]) -> Result<(), HostError> {
        let mut s = self.state.borrow_mut();
        if s.fail_body_write {
            return Err(HostError::InternalFailure);
        }
        let at = len.min(s.response_body.len());
        let keep = s.response_body.split_off(at);
        s.response_body = body.iter().copied().chain(keep).collect();
        Ok(())
    }
    fn send_local_reply(&self, reply: &Reply) -> HostResult {
        self.called("send_local_reply");
        self.state.borrow_mut().replies.push(SentReply {
            status: reply.status,
            headers: reply.headers.clone(),
            body: reply.body.clone(),
        });
        Ok(())
    }
    fn resume_request(&self) -> Result<(), HostError> {
        self.called("resume_request");
        self.state.borrow_mut().resumed_requests += 1;
        Ok(())
    }
    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        self.called("set_property");
        self.state
            .borrow_mut()
            .properties
            .insert(path.join("."), value.to_vec());
        Ok(())
    }
    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.called("property");
        self.state
            .borrow()
            .host_properties
            .get(&path.join("."))
            .cloned()
    }
    fn dispatch_http_call(&self, call: &HttpCall) -> Result<u32, HostError> {
        self.called("dispatch_http_call");
        let mut s = self.state.borrow_mut();
        if s.fail_calls {
            return Err(HostError::BadArgument);
        }
        s.next_call += 1;
        let id = s.next_call;
        s.calls.push((id, call.clone()));
        Ok(id)
    }
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.called("shared_get");
        let s = self.state.borrow();
        let found = match &s.shared_store {
            Some(store) => store.borrow().get(key).cloned(),
            None => s.shared.get(key).cloned(),
        };
        match found {
            Some((v, cas)) => (Some(v), Some(cas)),
            None => (None, None),
        }
    }
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.called("shared_set");
        let mut s = self.state.borrow_mut();
        let store = s.shared_store.clone();
        let mut own = std::mem::take(&mut s.shared);
        let result = {
            let mut guard = store.as_ref().map(|st| st.borrow_mut());
            let map = match guard.as_deref_mut() {
                Some(m) => m,
                None => &mut own,
            };
            let current = map.get(key).map(|(_, c)| *c);
            match (cas, current) {
                (Some(want), Some(have)) if want != have => Err(HostError::CasMismatch),
                _ => {
                    let next = current.unwrap_or(0) + 1;
                    map.insert(key.to_string(), (value.to_vec(), next));
                    Ok(())
                }
            }
        };
        s.shared = own;
        result
    }
    fn call_foreign_function(&self, name: &str, args: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        self.called("call_foreign_function");
        match self.state.borrow().verify_signature {
            Some(verify) if name == "verify_signature" => {
                verify(args).map(Some).map_err(|_| HostError::BadArgument)
            }
            _ => Err(HostError::NotFound),
        }
    }
    fn define_counter(&self, name: &str) -> Option<u32> {
        self.called("define_counter");
        self.define_metric(name)
    }
    fn increment_counter(&self, id: u32, by: i64) {
        self.called("increment_counter");
        let mut s = self.state.borrow_mut();
        if let Some(name) = s.counter_names.get(id as usize).cloned() {
            *s.counters.entry(name).or_insert(0) += by;
        }
    }
    fn define_gauge(&self, name: &str) -> Option<u32> {
        self.called("define_gauge");
        self.define_metric(name)
    }
    fn define_histogram(&self, name: &str) -> Option<u32> {
        self.called("define_histogram");
        self.define_metric(name)
    }
    fn record_metric(&self, id: u32, value: u64) {
        self.called("record_metric");
        let mut s = self.state.borrow_mut();
        if let Some(name) = s.counter_names.get(id as usize).cloned() {
            s.counters
                .insert(name, i64::try_from(value).unwrap_or(i64::MAX));
        }
    }
    fn memory_bytes(&self) -> u64 {
        // `memory.size`: an instruction, not a host call.
        self.state.borrow().memory_bytes
    }
    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
        self.called("set_tick_period_ms");
        self.state.borrow_mut().tick_ms = ms;
        Ok(())
    }
    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        self.called("set_effective_context");
        self.state.borrow_mut().effective_context = Some(context_id);
        Ok(())
    }
    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        self.called("plugin_configuration");
        self.state.borrow().configuration.clone()
    }
    fn env_var(&self, name: &str) -> Option<std::ffi::OsString> {
        self.called("env_var");
        self.state.borrow().env.get(name).map(Into::into)
    }
}

/// How the fake token port treats one token.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeToken {
    Valid(Value),
    /// First needs a JWKS fetch for issuer 0; valid once the fetch answers 200.
    NeedsKeys(Value),
    /// Needs introspection; active (these claims) when the call answers 200.
    Introspect(Value),
    Invalid(&'static str),
    /// Signed with a rotated key: valid once a key set containing `new` is
    /// loaded (own fetch or shared data); else an unknown `kid` of issuer 0
    /// that asks for a fetch while `fetch_budget` lasts.
    NewKid(Value),
}

#[derive(Debug, Default)]
pub struct FakeTokens {
    pub tokens: HashMap<String, FakeToken>,
    pub cached: std::collections::HashSet<String>,
    pub keys_loaded: Vec<(usize, Vec<u8>)>,
    pub due: Vec<(usize, HttpCall)>,
    pub fetched: Vec<usize>,
    /// How many unknown-`kid` fetches `verify` may still ask for.
    pub fetch_budget: u32,
}

impl FakeTokens {
    fn has_new_keys(&self) -> bool {
        self.keys_loaded
            .iter()
            .any(|(_, b)| b.windows(3).any(|w| w == b"new"))
    }
}

pub fn jwks_call() -> HttpCall {
    HttpCall {
        cluster: "issuer".into(),
        headers: vec![
            (":method".into(), "GET".into()),
            (":path".into(), "/jwks".into()),
            (":authority".into(), "issuer".into()),
        ],
        body: None,
        timeout_ms: 5000,
    }
}

impl TokenPort for FakeTokens {
    fn extract<'r>(
        &self,
        config: &Config,
        req: &'r RequestParts<'_>,
    ) -> Result<Option<std::borrow::Cow<'r, str>>, Decision> {
        crate::core_adapter::CoreTokens::new(std::rc::Rc::new(config.clone())).extract(config, req)
    }
    fn verify(&mut self, _host: &dyn Host, token: &str, _now: u64) -> TokenStep {
        let cache_hit = !self.cached.insert(token.to_string());
        match self.tokens.get(token) {
            Some(FakeToken::Valid(c)) => TokenStep::Verified {
                claims: std::rc::Rc::new(c.clone()),
                cache_hit,
            },
            Some(FakeToken::NeedsKeys(_)) => TokenStep::Call {
                call: jwks_call(),
                purpose: Pending::Jwks { issuer: 0 },
            },
            Some(FakeToken::Introspect(_)) => TokenStep::Call {
                call: HttpCall {
                    cluster: "issuer".into(),
                    headers: vec![
                        (":method".into(), "POST".into()),
                        (":path".into(), "/introspect".into()),
                    ],
                    body: Some(b"token=...".to_vec()),
                    timeout_ms: 5000,
                },
                purpose: Pending::Introspection { issuer: 0 },
            },
            Some(FakeToken::Invalid(why)) => {
                TokenStep::denied(Decision::deny(Reason::InvalidToken, *why))
            }
            Some(FakeToken::NewKid(c)) => {
                if self.has_new_keys() {
                    TokenStep::Verified {
                        claims: std::rc::Rc::new(c.clone()),
                        cache_hit,
                    }
                } else if self.fetch_budget > 0 {
                    self.fetch_budget -= 1;
                    TokenStep::Call {
                        call: jwks_call(),
                        purpose: Pending::Jwks { issuer: 0 },
                    }
                } else {
                    TokenStep::denied(Decision::deny(
                        Reason::InvalidToken,
                        "no key with the token's kid is known",
                    ))
                }
            }
            None => TokenStep::denied(Decision::deny(
                Reason::InvalidToken,
                "the token signature is not valid",
            )),
        }
    }
    fn call_done(
        &mut self,
        _host: &dyn Host,
        pending: Pending,
        token: &str,
        status: Option<u16>,
        body: &[u8],
        _now: u64,
    ) -> TokenStep {
        if let Some(FakeToken::NewKid(c)) = self.tokens.get(token).cloned() {
            if let (Pending::Jwks { issuer }, Some(200)) = (pending, status) {
                self.keys_loaded.push((issuer, body.to_vec()));
            }
            return if self.has_new_keys() {
                TokenStep::Verified {
                    claims: std::rc::Rc::new(c),
                    cache_hit: false,
                }
            } else {
                TokenStep::denied(Decision::deny(
                    Reason::InvalidToken,
                    "no key with the token's kid is known",
                ))
            };
        }
        match (pending, status, self.tokens.get(token)) {
            (Pending::Jwks { issuer }, Some(200), Some(FakeToken::NeedsKeys(c)))
                if self.usable_jwks(body) =>
            {
                self.keys_loaded.push((issuer, body.to_vec()));
                TokenStep::Verified {
                    claims: std::rc::Rc::new(c.clone()),
                    cache_hit: false,
                }
            }
            (Pending::Introspection { .. }, Some(200), Some(FakeToken::Introspect(c))) => {
                TokenStep::Verified {
                    claims: std::rc::Rc::new(c.clone()),
                    cache_hit: false,
                }
            }
            (Pending::Introspection { .. }, _, _) => TokenStep::denied(Decision::deny(
                Reason::IntrospectionUnavailable,
                "the introspection endpoint did not answer",
            )),
            _ => TokenStep::denied(Decision::deny(
                Reason::KeysUnavailable,
                "the issuer's keys could not be fetched",
            )),
        }
    }
    fn due_jwks_fetches(&mut self, _now: u64) -> Vec<(usize, HttpCall)> {
        std::mem::take(&mut self.due)
    }
    fn jwks_response(
        &mut self,
        issuer: usize,
        response: Result<(u16, &[u8]), &str>,
        _now: u64,
    ) -> Result<(), String> {
        match response {
            Ok((200, b)) => {
                self.keys_loaded.push((issuer, b.to_vec()));
                Ok(())
            }
            Ok((s, _)) => Err(format!("HTTP {s}")),
            Err(e) => Err(e.to_string()),
        }
    }
    fn jwks_shared(
        &mut self,
        issuer: usize,
        bytes: &[u8],
        _at: u64,
        _now: u64,
    ) -> Result<(), String> {
        self.keys_loaded.push((issuer, bytes.to_vec()));
        Ok(())
    }
    /// A JSON object with a `keys` array (the fake's key sets carry no real keys).
    fn usable_jwks(&self, bytes: &[u8]) -> bool {
        serde_json::from_slice::<Value>(bytes)
            .is_ok_and(|v| v.get("keys").is_some_and(Value::is_array))
    }
    fn fetched_issuers(&self) -> Vec<usize> {
        self.fetched.clone()
    }
    fn unknown_kid_issuer(&self, token: &str) -> Option<usize> {
        match self.tokens.get(token) {
            Some(FakeToken::NewKid(_)) if !self.has_new_keys() => Some(0),
            _ => None,
        }
    }
}

type DecideFn = dyn Fn(&RequestParts, Option<&Value>) -> Decision;
type CheckFn = dyn Fn(&Obligation, &Value) -> Result<(), String>;

/// A scripted engine.
pub struct FakeEngine {
    pub body_needed: bool,
    pub decide: Box<DecideFn>,
    pub check: Box<CheckFn>,
}

impl Engine for FakeEngine {
    fn body_needed(&self, _config: &Config, _req: &RequestParts) -> bool {
        self.body_needed
    }
    fn decide(
        &self,
        _config: &Config,
        req: &RequestParts,
        token: Option<TokenInput<'_>>,
    ) -> Decision {
        (self.decide)(req, token.map(|t| t.claims))
    }
    fn check_response(&self, _config: &Config, o: &Obligation, v: &Value) -> Result<(), String> {
        (self.check)(o, v)
    }
}
