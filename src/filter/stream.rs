//! One HTTP stream: headers → bearer token → (key fetch / introspection /
//! body) → decision → continue or local reply; then response obligations.
//! Host-agnostic; driven by the wasm entry points or by tests.

use super::host::{Body, Headers, Host, Level};
use super::metrics::Metrics;
use super::ports::{Engine, Pending, TokenPort, TokenStep};
use super::response::{deny_reply, discovery_reply, Reply};
use crate::audit::{self, AuditInput, Identity};
use crate::config::shell::Fact;
use crate::config::Config;
use crate::decision::{Decision, Reason};
use crate::fhir::RequestParts;
use serde_json::Value;
use std::cell::RefCell;
use std::rc::Rc;

/// Property (filter state `wasm.fhir_smart_authz_audit`) holding the audit record.
pub const AUDIT_PROPERTY: &str = "fhir_smart_authz_audit";

/// What the host should do after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// How the audit record is encoded for `set_property`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditEncoding {
    /// JSON text (a String-typed property).
    Json,
    /// A serialized `google.protobuf.Struct` (a Protobuf-typed property), so
    /// `%FILTER_STATE(...:TYPED)%` renders a nested JSON object.
    Struct,
}

/// Everything the streams of one plugin configuration share (per VM).
pub struct Shared {
    pub config: Rc<Config>,
    pub tokens: RefCell<Box<dyn TokenPort>>,
    pub engine: Box<dyn Engine>,
    pub metrics: RefCell<Metrics>,
    pub audit_encoding: AuditEncoding,
}

impl Shared {
    pub fn new(
        config: Rc<Config>,
        tokens: Box<dyn TokenPort>,
        engine: Box<dyn Engine>,
        audit_encoding: AuditEncoding,
    ) -> Rc<Shared> {
        let metrics = Metrics::new(&config.metrics.prefix);
        Rc::new(Shared {
            config,
            tokens: RefCell::new(tokens),
            engine,
            metrics: RefCell::new(metrics),
            audit_encoding,
        })
    }

    pub fn count(&self, host: &dyn Host, suffix: &str) {
        if let Ok(mut m) = self.metrics.try_borrow_mut() {
            m.inc(host, suffix);
        }
    }
}

/// Key under which fetched JWKS bytes are shared across VMs.
pub fn jwks_shared_key(config: &Config, issuer: usize) -> String {
    let iss = config
        .issuers
        .get(issuer)
        .map(|i| i.issuer.as_str())
        .unwrap_or("");
    format!("fhir_smart_authz.jwks.{issuer}.{iss}")
}

/// Publish fetched JWKS bytes (prefixed with the fetch time) to shared data.
pub fn publish_jwks(host: &dyn Host, config: &Config, issuer: usize, bytes: &[u8], now_ms: u64) {
    let mut v = now_ms.to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    let _ = host.shared_set(&jwks_shared_key(config, issuer), &v, None);
}

fn call_status(host: &dyn Host) -> Option<u16> {
    host.headers(Headers::CallResponse)
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| v.parse().ok())
}

pub struct Stream {
    shared: Rc<Shared>,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    request_id: Option<String>,
    token: Option<String>,
    claims: Option<Value>,
    token_denial: Option<Decision>,
    token_done: bool,
    pending: Option<(u32, Pending)>,
    body_needed: bool,
    body: Option<Vec<u8>>,
    body_done: bool,
    /// A request callback returned `Pause` and the request was not continued yet.
    paused: bool,
    decided: bool,
    replied: bool,
    resumed: bool,
    decision: Option<Decision>,
    identity: Option<Identity>,
    check_response: bool,
}

impl Stream {
    pub fn new(shared: Rc<Shared>) -> Stream {
        Stream {
            shared,
            method: String::new(),
            path: String::new(),
            headers: Vec::new(),
            request_id: None,
            token: None,
            claims: None,
            token_denial: None,
            token_done: false,
            pending: None,
            body_needed: false,
            body: None,
            body_done: false,
            paused: false,
            decided: false,
            replied: false,
            resumed: false,
            decision: None,
            identity: None,
            check_response: false,
        }
    }

    fn config(&self) -> Rc<Config> {
        self.shared.config.clone()
    }

    fn now_s(host: &dyn Host) -> u64 {
        host.now_ms() / 1000
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            path: &self.path,
            headers: self.headers.clone(),
            body: self.body.as_deref(),
        }
    }

    fn reply(&mut self, host: &dyn Host, r: &Reply) -> Flow {
        if !host.send_local_reply(r.status, &r.headers, &r.body) {
            host.log(Level::Error, "could not send the local reply");
        }
        self.replied = true;
        self.decided = true;
        Flow::Pause
    }

    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        let config = self.config();
        let mut headers = host.headers(Headers::Request);
        // Anti-spoofing: incoming copies of the fact headers never reach upstream.
        let fact_headers = config.upstream.all_header_names();
        headers.retain(|(n, _)| {
            let lower = n.to_ascii_lowercase();
            if fact_headers.contains(&lower) {
                if !host.set_header(Headers::Request, &lower, None) {
                    host.log(Level::Error, &format!("could not remove header {lower}"));
                }
                false
            } else {
                true
            }
        });
        for (n, v) in &headers {
            match n.as_str() {
                ":method" => self.method = v.clone(),
                ":path" => self.path = v.clone(),
                "x-request-id" => self.request_id = Some(v.clone()),
                _ => {}
            }
        }
        self.headers = headers
            .into_iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v))
            .collect();

        if let Some(disc) = &config.discovery {
            let path_only = self.path.split('?').next().unwrap_or("");
            if matches!(self.method.as_str(), "GET" | "HEAD")
                && path_only == format!("{}/.well-known/smart-configuration", config.base_path)
            {
                self.shared.count(host, "decision.allow.public_endpoint");
                return self.reply(host, &discovery_reply(&disc.document()));
            }
        }

        let engine_needs_body = {
            let parts = self.parts();
            !end_of_stream && self.shared.engine.body_needed(&config, &parts)
        };
        self.body_needed = engine_needs_body;
        self.body_done = !engine_needs_body;

        let extracted = {
            let parts = self.parts();
            self.shared.tokens.borrow().extract(&config, &parts)
        };
        match extracted {
            Err(d) => {
                self.token_denial = Some(d);
                self.token_done = true;
            }
            Ok(None) => self.token_done = true,
            Ok(Some(t)) => {
                let now = Self::now_s(host);
                let step = match self.shared.tokens.try_borrow_mut() {
                    Ok(mut tp) => tp.verify(host, &t, now),
                    Err(_) => TokenStep::Denied(Decision::deny(
                        Reason::KeysUnavailable,
                        "internal: token verifier busy; retry",
                    )),
                };
                self.token = Some(t);
                self.handle_step(host, step);
            }
        }
        self.progress(host, false)
    }

    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.replied {
            return Flow::Pause;
        }
        if self.decided {
            return Flow::Continue;
        }
        let config = self.config();
        if self.body_needed && !self.body_done {
            if body_size > config.max_body_bytes {
                self.body_done = true;
                let d = Decision::deny(
                    Reason::BodyTooLarge,
                    format!(
                        "the request body is larger than {} bytes (max_body_bytes); it cannot be checked",
                        config.max_body_bytes
                    ),
                );
                return self.apply(host, d, false);
            }
            if !end_of_stream {
                self.paused = true;
                return Flow::Pause;
            }
            self.body = Some(host.body(Body::Request, body_size).unwrap_or_default());
            self.body_done = true;
        }
        self.progress(host, false)
    }

    pub fn on_call_response(&mut self, host: &dyn Host, token_id: u32, body_size: usize) {
        let pending = match self.pending {
            Some((id, p)) if id == token_id => p,
            _ => return,
        };
        self.pending = None;
        let config = self.config();
        let status = call_status(host);
        let body = host
            .body(
                Body::CallResponse,
                body_size.min(config.max_body_bytes.max(1 << 20)),
            )
            .unwrap_or_default();
        let ok = status == Some(200);
        match pending {
            Pending::Jwks { issuer } => {
                self.shared.count(
                    host,
                    if ok {
                        "jwks_fetch.success"
                    } else {
                        "jwks_fetch.failure"
                    },
                );
                if ok {
                    publish_jwks(host, &config, issuer, &body, host.now_ms());
                }
            }
            Pending::Introspection { .. } => self.shared.count(
                host,
                if ok {
                    "introspection.success"
                } else {
                    "introspection.failure"
                },
            ),
        }
        let token = self.token.clone().unwrap_or_default();
        let now = Self::now_s(host);
        let step = match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => tp.call_done(host, pending, &token, status, &body, now),
            Err(_) => TokenStep::Denied(Decision::deny(
                Reason::KeysUnavailable,
                "internal: token verifier busy; retry",
            )),
        };
        self.handle_step(host, step);
        self.progress(host, true);
    }

    fn handle_step(&mut self, host: &dyn Host, mut step: TokenStep) {
        for _ in 0..4 {
            match step {
                TokenStep::Verified { claims, cache_hit } => {
                    self.shared.count(
                        host,
                        if cache_hit {
                            "token_cache.hit"
                        } else {
                            "token_cache.miss"
                        },
                    );
                    self.claims = Some(claims);
                    self.token_done = true;
                    return;
                }
                TokenStep::Denied(d) => {
                    self.token_denial = Some(d);
                    self.token_done = true;
                    return;
                }
                TokenStep::Call { call, pending } => match host.dispatch_http_call(&call) {
                    Ok(id) => {
                        self.pending = Some((id, pending));
                        return;
                    }
                    Err(e) => {
                        host.log(Level::Warn, &e);
                        let what = match pending {
                            Pending::Jwks { .. } => "jwks_fetch.failure",
                            Pending::Introspection { .. } => "introspection.failure",
                        };
                        self.shared.count(host, what);
                        let token = self.token.clone().unwrap_or_default();
                        let now = Self::now_s(host);
                        step = match self.shared.tokens.try_borrow_mut() {
                            Ok(mut tp) => tp.call_done(host, pending, &token, None, b"", now),
                            Err(_) => break,
                        };
                    }
                },
            }
        }
        self.token_denial = Some(Decision::deny(
            Reason::KeysUnavailable,
            "the token's signing keys could not be obtained; retry later",
        ));
        self.token_done = true;
    }

    /// Decide when everything is known. `from_async`: called outside a
    /// request callback (an HTTP call answer), so the request is resumed.
    fn progress(&mut self, host: &dyn Host, from_async: bool) -> Flow {
        if self.decided {
            return if self.replied {
                Flow::Pause
            } else {
                Flow::Continue
            };
        }
        if let Some(d) = self.token_denial.take() {
            return self.apply(host, d, from_async);
        }
        if !self.token_done || !self.body_done {
            self.paused = true;
            return Flow::Pause;
        }
        let config = self.config();
        let d = {
            let parts = self.parts();
            self.shared
                .engine
                .decide(&config, &parts, self.claims.as_ref())
        };
        self.apply(host, d, from_async)
    }

    fn write_audit(&self, host: &dyn Host, d: &Decision, obligation: Option<Result<(), String>>) {
        let config = &self.shared.config;
        if !config.audit.enabled {
            return;
        }
        let rec = audit::record(
            config,
            &AuditInput {
                method: &self.method,
                request_id: self.request_id.as_deref(),
                decision: d,
                identity: self.identity.as_ref(),
                enforced: config.enforce,
                now_ms: host.now_ms(),
                obligation_result: obligation,
            },
        );
        let bytes = match self.shared.audit_encoding {
            AuditEncoding::Json => rec.to_string().into_bytes(),
            AuditEncoding::Struct => super::pbstruct::encode_struct(&rec),
        };
        if !host.set_property(&[AUDIT_PROPERTY], &bytes) {
            host.log(
                Level::Warn,
                "could not write the audit record (set_property failed)",
            );
        }
    }

    fn apply(&mut self, host: &dyn Host, d: Decision, from_async: bool) -> Flow {
        let config = self.config();
        self.decided = true;
        self.identity = self
            .claims
            .as_ref()
            .map(|c| Identity::from_claims(&config, c));
        if let Ok(mut m) = self.shared.metrics.try_borrow_mut() {
            m.decision(host, &d);
        }
        self.write_audit(host, &d, None);
        let allow = d.is_allow();
        if !allow && !config.enforce {
            self.shared.count(host, "shadow.would_deny");
            host.log(
                Level::Info,
                &format!(
                    "shadow mode: would deny ({}) {}",
                    d.reason.as_str(),
                    d.message
                ),
            );
        }
        if allow || !config.enforce {
            self.forward_facts(host, &config);
            self.check_response = !d.obligations.is_empty();
            self.decision = Some(d);
            if from_async && self.paused && !self.resumed {
                self.resumed = true;
                self.paused = false;
                if !host.resume_request() {
                    host.log(Level::Error, "could not resume the request");
                }
            }
            return Flow::Continue;
        }
        let reply = deny_reply(&config, &d, d.status);
        self.decision = Some(d);
        self.reply(host, &reply)
    }

    fn forward_facts(&self, host: &dyn Host, config: &Config) {
        if config.upstream.strip_authorization
            && !host.set_header(Headers::Request, "authorization", None)
        {
            host.log(Level::Error, "could not remove the authorization header");
        }
        let Some(id) = &self.identity else { return };
        for fact in &config.upstream.forward_headers {
            let value = match fact {
                Fact::Patient => id.patient.as_deref(),
                Fact::FhirUser => id.fhir_user.as_deref(),
                Fact::ClientId => id.client_id.as_deref(),
                Fact::Scopes => id.scopes.as_deref(),
                Fact::Subject => id.sub.as_deref(),
                Fact::Issuer => id.iss.as_deref(),
            };
            if let Some(v) = value {
                let clean: String = v
                    .chars()
                    .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
                    .collect();
                if !host.set_header(
                    Headers::Request,
                    &config.upstream.header_name(*fact),
                    Some(&clean),
                ) {
                    host.log(Level::Error, "could not set a fact header");
                }
            }
        }
    }

    pub fn on_response_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        if !self.check_response {
            return Flow::Continue;
        }
        let status: u16 = host
            .headers(Headers::Response)
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if !(200..300).contains(&status) {
            // Error responses carry no resource of the obligation's type.
            self.check_response = false;
            return Flow::Continue;
        }
        if end_of_stream {
            self.check_response = false;
            self.response_verdict(host, Ok(()));
            return Flow::Continue;
        }
        Flow::Pause
    }

    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if !self.check_response {
            return Flow::Continue;
        }
        let config = self.config();
        if body_size > config.max_body_bytes {
            self.check_response = false;
            return self.response_verdict(
                host,
                Err(format!(
                    "the response is larger than {} bytes (max_body_bytes) and cannot be checked against the token's patient/granular scopes",
                    config.max_body_bytes
                )),
            );
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.check_response = false;
        let bytes = host.body(Body::Response, body_size).unwrap_or_default();
        let result = match serde_json::from_slice::<Value>(&bytes) {
            Err(_) => Err("the response is not JSON and cannot be checked against the token's patient/granular scopes".to_string()),
            Ok(v) => {
                let obligations = self
                    .decision
                    .as_ref()
                    .map(|d| d.obligations.clone())
                    .unwrap_or_default();
                obligations
                    .iter()
                    .try_for_each(|o| self.shared.engine.check_response(o, &v, config.base_url.as_deref()))
            }
        };
        self.response_verdict(host, result)
    }

    fn response_verdict(&mut self, host: &dyn Host, result: Result<(), String>) -> Flow {
        let config = self.config();
        let Some(d) = self.decision.clone() else {
            return Flow::Continue;
        };
        let failed = result.is_err();
        self.shared.count(
            host,
            if failed {
                "response_check.fail"
            } else {
                "response_check.pass"
            },
        );
        let why = result.as_ref().err().cloned();
        self.write_audit(host, &d, Some(result));
        let Some(why) = why else {
            return Flow::Continue;
        };
        if !config.enforce {
            self.shared.count(host, "shadow.would_deny");
            return Flow::Continue;
        }
        let denial = Decision::deny(Reason::ResponseNotPermitted, why);
        let reply = deny_reply(&config, &denial, config.responses.obligation_denied_status);
        if !host.send_local_reply(reply.status, &reply.headers, &reply.body) {
            host.log(Level::Error, "could not replace the response");
        }
        Flow::Pause
    }
}
