//! One HTTP stream: headers → bearer token → (key fetch / introspection /
//! body) → decision → continue or local reply. Host-agnostic; driven by the
//! wasm entry points or by tests.
//!
//! By default Envoy's proxy-wasm host turns a paused header callback into
//! `StopAllIterationAndWatermark`: while headers are held, no body callback
//! arrives. Hence:
//! - a request whose decision needs the body releases its headers once the
//!   token is verified, buffers the body (`max_body_bytes`) and decides at its
//!   end; a denial then answers locally and Envoy resets the upstream request
//!   (which never received the body). With `upstream.hold_headers_for_body`
//!   (for Envoy's `allow_on_headers_stop_iteration: true`, under which a
//!   paused header callback is a plain `StopIteration` and body callbacks
//!   still arrive) the headers stay paused until the decision at the end of
//!   the body, so the upstream sees nothing of a denied request. A body
//!   callback that arrives while the headers are paused for the token proves
//!   the host delivers them, so such a request is held in either mode;
//! - a decision with response obligations (patient compartment / granular
//!   scope checks on the returned resource) is carried out by the filter
//!   itself: it fetches the response through `upstream.cluster`
//!   (`dispatch_http_call` with the request's headers), checks it, and relays
//!   it — or replaces it with 403/404 — as a local reply.

use crate::host::{Body, Headers, Host, HttpCall, Level, SharedWrite};
use crate::metrics::Metrics;
use crate::ports::{Engine, Pending, Prepared, TokenPort, TokenStep};
use crate::response::{deny_reply, discovery_reply, Reply};
use fhir_smart_authz_core::audit::{self, AuditEncoding, AuditInput, Identity};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::config::Fact;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::fhir::{Interaction, InteractionKind, Level as FhirLevel, RequestParts};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

/// Root tick period while requests wait for another VM's JWKS fetch.
pub const WAIT_TICK_MS: u64 = 50;

/// Property (filter state `wasm.fhir_smart_authz_audit`) holding the audit record.
pub const AUDIT_PROPERTY: &str = "fhir_smart_authz_audit";

/// What the host should do after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// Everything the streams of one plugin configuration share (per VM).
pub struct Shared {
    pub config: Rc<Config>,
    pub tokens: RefCell<Box<dyn TokenPort>>,
    pub engine: Box<dyn Engine>,
    pub metrics: RefCell<Metrics>,
    pub audit_encoding: AuditEncoding,
    /// What is derived from a token's claims, kept per claims object (the
    /// token service hands out the same `Rc` for repeats of a cached token).
    tokens_seen: RefCell<TokensSeen>,
    /// Per issuer: the stamp (ms) of the shared JWKS this VM last loaded.
    pub seen: RefCell<HashMap<usize, u64>>,
    /// Requests waiting for another VM's JWKS fetch (woken by the root tick).
    pub waiting: RefCell<Vec<Waiter>>,
}

/// A request paused until another VM's JWKS fetch for `issuer` lands.
pub struct Waiter {
    pub issuer: usize,
    /// `Shared::seen` of the issuer when the wait began.
    pub since: u64,
    pub deadline_ms: u64,
    pub context_id: u32,
    pub stream: Weak<RefCell<Stream>>,
}

/// Claims object address → (the claims, kept alive so the address stays
/// theirs; what was derived from them).
type TokensSeen = HashMap<usize, (Rc<Value>, Rc<TokenFacts>)>;

/// Derived once per token: the identity facts and the engine's prepared state.
pub struct TokenFacts {
    pub identity: Rc<Identity>,
    pub prepared: Option<Prepared>,
}

/// Claims objects remembered in [`Shared`]; when full it is cleared.
const TOKEN_FACTS_ENTRIES: usize = 256;

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
            tokens_seen: RefCell::new(HashMap::new()),
            seen: RefCell::new(HashMap::new()),
            waiting: RefCell::new(Vec::new()),
        })
    }

    /// The identity and prepared state of verified claims, derived once per
    /// claims object.
    pub fn token_facts(&self, claims: &Rc<Value>) -> Rc<TokenFacts> {
        let key = Rc::as_ptr(claims) as usize;
        if let Ok(seen) = self.tokens_seen.try_borrow() {
            if let Some((c, f)) = seen.get(&key) {
                if Rc::ptr_eq(c, claims) {
                    return f.clone();
                }
            }
        }
        let facts = Rc::new(TokenFacts {
            identity: Rc::new(Identity::from_claims(&self.config.claims, claims)),
            prepared: self.engine.prepare(&self.config, claims),
        });
        if let Ok(mut seen) = self.tokens_seen.try_borrow_mut() {
            if seen.len() >= TOKEN_FACTS_ENTRIES {
                seen.clear();
            }
            seen.insert(key, (claims.clone(), facts.clone()));
        }
        facts
    }

    /// Load the JWKS another VM published for `issuer` if it is newer than
    /// the one this VM has. `true` when a new set was loaded.
    pub fn pick_up_shared_jwks(
        &self,
        host: &dyn Host,
        tokens: &mut dyn TokenPort,
        issuer: usize,
    ) -> bool {
        let (value, _) = host.shared_get(&jwks_shared_key(&self.config, issuer));
        let Some((ts, bytes)) = value.as_deref().and_then(split_stamp) else {
            return false;
        };
        let Ok(mut seen) = self.seen.try_borrow_mut() else {
            return false;
        };
        if seen.get(&issuer).is_some_and(|s| *s >= ts) {
            return false;
        }
        seen.insert(issuer, ts);
        match tokens.jwks_shared(issuer, bytes, ts / 1000, host.now_ms() / 1000) {
            Ok(()) => true,
            Err(e) => {
                host.log(
                    Level::Warn,
                    &format!("fhir-smart-authz: shared JWKS of issuers[{issuer}] rejected: {e}"),
                );
                false
            }
        }
    }

    pub fn count(&self, host: &dyn Host, suffix: &'static str) {
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

/// `8-byte big-endian stamp ++ payload`.
pub fn split_stamp(v: &[u8]) -> Option<(u64, &[u8])> {
    let head: [u8; 8] = v.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(head), v.get(8..)?))
}

/// The cross-VM JWKS fetch lease of an issuer (shared data): `until` (ms,
/// big-endian) then `1` while a fetch is in flight, `0` once it is over
/// (no other fetch until `jwks_min_refetch_seconds` after its start).
fn lease_key(config: &Config, issuer: usize) -> String {
    format!("{}.lease", jwks_shared_key(config, issuer))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Nobody fetches: take it with this CAS token.
    Free(Option<u32>),
    /// Another VM's fetch is in flight.
    Fetching,
    /// A fetch ended less than `jwks_min_refetch_seconds` after its start.
    Resting,
}

pub fn lease_state(host: &dyn Host, config: &Config, issuer: usize, now_ms: u64) -> Lease {
    let (value, cas) = host.shared_get(&lease_key(config, issuer));
    match value.as_deref().and_then(split_stamp) {
        Some((until, rest)) if until > now_ms => {
            if rest.first() == Some(&0) {
                Lease::Resting
            } else {
                Lease::Fetching
            }
        }
        _ => Lease::Free(cas),
    }
}

/// Take the lease for a JWKS fetch starting now; `false`: another VM has it.
pub fn take_lease(
    host: &dyn Host,
    config: &Config,
    issuer: usize,
    now_ms: u64,
    timeout_ms: u64,
) -> bool {
    let Lease::Free(cas) = lease_state(host, config, issuer, now_ms) else {
        return false;
    };
    let mut v = now_ms
        .saturating_add(timeout_ms)
        .saturating_add(1000)
        .to_be_bytes()
        .to_vec();
    v.push(1);
    host.shared_set(&lease_key(config, issuer), &v, cas) == SharedWrite::Ok
}

/// The fetch that took the lease at `started_ms` is over. After a success no
/// VM fetches again until `jwks_min_refetch_seconds` after its start; after
/// a failure the lease is free (the next fetch, by any VM, may go).
pub fn end_lease(host: &dyn Host, config: &Config, issuer: usize, started_ms: u64, ok: bool) {
    let until = if ok {
        let min_s = config
            .issuers
            .get(issuer)
            .map_or(0, |i| i.jwks_min_refetch_seconds);
        started_ms.saturating_add(min_s.saturating_mul(1000))
    } else {
        0
    };
    let mut v = until.to_be_bytes().to_vec();
    v.push(0);
    let (_, cas) = host.shared_get(&lease_key(config, issuer));
    let _ = host.shared_set(&lease_key(config, issuer), &v, cas);
}

fn call_status(host: &dyn Host) -> Option<u16> {
    host.headers(Headers::CallResponse)
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| v.parse().ok())
}

pub struct Stream {
    shared: Rc<Shared>,
    /// This stream, for the wait list (empty: the stream cannot wait).
    me: Weak<RefCell<Stream>>,
    /// The proxy-wasm context id (to resume from the root's tick).
    context_id: u32,
    /// The JWKS fetch lease this stream took: (issuer, start ms).
    lease: Option<(usize, u64)>,
    /// Waited once for another VM's JWKS fetch (never twice).
    waited: bool,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    request_id: Option<String>,
    token: Option<String>,
    claims: Option<Rc<Value>>,
    /// The token call (JWKS / introspection) in flight.
    pending: Option<(u32, Pending)>,
    /// The obligation fetch in flight.
    relay: Option<u32>,
    body_needed: bool,
    body: Option<Vec<u8>>,
    /// The token is resolved; waiting for the end of the body (headers
    /// released, or held with `upstream.hold_headers_for_body`).
    awaiting_body: bool,
    /// A body callback arrived while the headers were paused: the host
    /// delivers body callbacks to paused headers, so holding them is safe.
    body_seen_while_paused: bool,
    /// A request callback returned `Pause` and the request was not continued yet.
    paused: bool,
    resumed: bool,
    decided: bool,
    replied: bool,
    decision: Option<Decision>,
    identity: Option<Rc<Identity>>,
    facts: Option<Rc<TokenFacts>>,
}

impl Stream {
    pub fn new(shared: Rc<Shared>) -> Stream {
        Stream {
            shared,
            me: Weak::new(),
            context_id: 0,
            lease: None,
            waited: false,
            method: String::new(),
            path: String::new(),
            headers: Vec::new(),
            request_id: None,
            token: None,
            claims: None,
            pending: None,
            relay: None,
            body_needed: false,
            body: None,
            awaiting_body: false,
            body_seen_while_paused: false,
            paused: false,
            resumed: false,
            decided: false,
            replied: false,
            decision: None,
            identity: None,
            facts: None,
        }
    }

    /// A stream that can wait for another VM's JWKS fetch: the root's tick
    /// resumes it through `context_id`.
    pub fn new_shared(shared: Rc<Shared>, context_id: u32) -> Rc<RefCell<Stream>> {
        Rc::new_cyclic(|me| {
            let mut s = Stream::new(shared);
            s.me = me.clone();
            s.context_id = context_id;
            RefCell::new(s)
        })
    }

    fn config(&self) -> Rc<Config> {
        self.shared.config.clone()
    }

    fn now_s(host: &dyn Host) -> u64 {
        host.now_ms() / 1000
    }

    /// Run `f` over the request as the core sees it. The headers are lent to
    /// the `RequestParts` (moved out and back), not copied.
    fn with_parts<R>(&mut self, f: impl FnOnce(&Stream, &RequestParts<'_>) -> R) -> R {
        let headers = std::mem::take(&mut self.headers);
        let parts = RequestParts {
            method: &self.method,
            path: &self.path,
            headers,
            body: self.body.as_deref(),
        };
        let r = f(self, &parts);
        self.headers = parts.headers;
        r
    }

    fn reply(&mut self, host: &dyn Host, r: &Reply) -> Flow {
        if !host.send_local_reply(r.status, &r.headers, &r.body) {
            host.log(Level::Error, "could not send the local reply");
        }
        self.replied = true;
        self.decided = true;
        Flow::Pause
    }

    /// Let the request go on: `Continue` inside a request callback, or one
    /// `resume_http_request` after an asynchronous answer.
    fn release(&mut self, host: &dyn Host, from_async: bool) -> Flow {
        if !from_async {
            // `Continue` from this callback lets paused headers go on too.
            self.paused = false;
        }
        if from_async && self.paused && !self.resumed {
            self.resumed = true;
            self.paused = false;
            if !host.resume_request() {
                host.log(Level::Error, "could not resume the request");
            }
        }
        Flow::Continue
    }

    pub fn on_request_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Flow {
        let config = self.config();
        let mut headers = host.headers(Headers::Request);
        // Lower-case in place (Envoy's names already are: usually a no-op).
        for (n, _) in headers.iter_mut() {
            n.make_ascii_lowercase();
        }
        // Anti-spoofing: incoming copies of the fact headers never reach upstream.
        let mut spoofed_header_kept = false;
        headers.retain(|(lower, _)| {
            if config.upstream.is_reserved(lower) {
                if !host.set_header(Headers::Request, lower, None) {
                    host.log(Level::Error, &format!("could not remove header {lower}"));
                    spoofed_header_kept = true;
                }
                false
            } else {
                true
            }
        });
        if spoofed_header_kept {
            // Fail closed: the upstream would trust an identity header the
            // client set.
            return self.reply(
                host,
                &crate::response::gateway_error_reply(
                    500,
                    "exception",
                    "the gateway could not remove a client-supplied identity header; the request was not forwarded",
                ),
            );
        }
        for (n, v) in &headers {
            match n.as_str() {
                ":method" => self.method = v.clone(),
                ":path" => self.path = v.clone(),
                "x-request-id" => self.request_id = Some(v.clone()),
                _ => {}
            }
        }
        self.headers = headers;

        if let Some(disc) = &config.discovery {
            let path_only = self.path.split('?').next().unwrap_or("");
            if matches!(self.method.as_str(), "GET" | "HEAD")
                && path_only.strip_prefix(config.base.path.as_str())
                    == Some("/.well-known/smart-configuration")
            {
                let d = Decision::allow(
                    Reason::PublicEndpoint,
                    Interaction::new(InteractionKind::SmartConfiguration, FhirLevel::System),
                );
                if let Ok(mut m) = self.shared.metrics.try_borrow_mut() {
                    m.decision(host, &d);
                }
                self.write_audit(host, &d, None);
                return self.reply(host, &discovery_reply(&disc.document()));
            }
        }

        let needs_body = self.with_parts(|s, parts| s.shared.engine.body_needed(&config, parts));
        if needs_body && end_of_stream {
            // The request has no body at all: decide on an empty one.
            self.body = Some(Vec::new());
        }
        self.body_needed = needs_body && !end_of_stream;

        let extracted =
            self.with_parts(|s, parts| s.shared.tokens.borrow().extract(&config, parts));
        match extracted {
            Err(d) => self.apply(host, d, false),
            Ok(None) => self.after_token(host, false),
            Ok(Some(t)) => {
                self.token = Some(t);
                self.verify_token(host, false)
            }
        }
    }

    fn port_verify(&self, host: &dyn Host, token: &str) -> TokenStep {
        let now = Self::now_s(host);
        match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => tp.verify(host, token, now),
            Err(_) => TokenStep::Denied(Decision::deny(
                Reason::KeysUnavailable,
                "internal: token verifier busy; retry",
            )),
        }
    }

    /// A JWKS fetch the token port asked for is not made (another VM has
    /// it, or fetched within `jwks_min_refetch_seconds`): the port's answer
    /// without it.
    fn skip_fetch(&self, host: &dyn Host, pending: Pending, token: &str) -> TokenStep {
        let now = Self::now_s(host);
        match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => tp.call_done(host, pending, token, None, b"", now),
            Err(_) => TokenStep::Denied(Decision::deny(
                Reason::KeysUnavailable,
                "internal: token verifier busy; retry",
            )),
        }
    }

    /// Verify the bearer token. When its issuer's keys cannot verify it
    /// (unknown `kid`, no keys yet), first load the key set another worker VM
    /// may have shared; fetch only with the cross-VM lease (no stampede); if
    /// another VM's fetch is in flight, wait for it (once, bounded) instead
    /// of answering 401.
    fn verify_token(&mut self, host: &dyn Host, from_async: bool) -> Flow {
        let token = self.token.clone().unwrap_or_default();
        let mut step = self.port_verify(host, &token);
        let issuer = match &step {
            TokenStep::Call {
                pending: Pending::Jwks { issuer },
                ..
            } => Some(*issuer),
            TokenStep::Denied(_) => self
                .shared
                .tokens
                .try_borrow()
                .ok()
                .and_then(|t| t.unknown_kid_issuer(&token)),
            _ => None,
        };
        let Some(issuer) = issuer else {
            return self.handle_step(host, step, from_async);
        };
        let picked_up = match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => self.shared.pick_up_shared_jwks(host, &mut **tp, issuer),
            Err(_) => false,
        };
        if picked_up {
            if let TokenStep::Call { pending, .. } = step {
                let _ = self.skip_fetch(host, pending, &token);
            }
            step = self.port_verify(host, &token);
        }
        let config = self.config();
        let now_ms = host.now_ms();
        match step {
            TokenStep::Call {
                call,
                pending: Pending::Jwks { issuer },
            } => {
                if take_lease(host, &config, issuer, now_ms, call.timeout_ms) {
                    self.lease = Some((issuer, now_ms));
                    let step = TokenStep::Call {
                        call,
                        pending: Pending::Jwks { issuer },
                    };
                    return self.handle_step(host, step, from_async);
                }
                let denied = self.skip_fetch(host, Pending::Jwks { issuer }, &token);
                if lease_state(host, &config, issuer, now_ms) == Lease::Fetching {
                    if let Some(flow) = self.wait_for_keys(host, issuer) {
                        return flow;
                    }
                }
                self.handle_step(host, denied, from_async)
            }
            TokenStep::Denied(d) => {
                let still_unknown = self
                    .shared
                    .tokens
                    .try_borrow()
                    .ok()
                    .and_then(|t| t.unknown_kid_issuer(&token))
                    == Some(issuer);
                if still_unknown && lease_state(host, &config, issuer, now_ms) == Lease::Fetching {
                    if let Some(flow) = self.wait_for_keys(host, issuer) {
                        return flow;
                    }
                }
                self.handle_step(host, TokenStep::Denied(d), from_async)
            }
            other => self.handle_step(host, other, from_async),
        }
    }

    /// Pause until the root's tick sees the new key set of `issuer` (or the
    /// other VM's fetch ends, or `jwks_timeout_ms` + 1 s pass). `None` when
    /// this stream cannot wait (already waited, or not resumable).
    fn wait_for_keys(&mut self, host: &dyn Host, issuer: usize) -> Option<Flow> {
        if self.waited || self.me.strong_count() == 0 {
            return None;
        }
        let config = self.config();
        let timeout = config
            .issuers
            .get(issuer)
            .map_or(5000, |i| i.jwks_timeout_ms);
        let since = self.shared.seen.try_borrow().ok()?.get(&issuer).copied();
        self.shared.waiting.try_borrow_mut().ok()?.push(Waiter {
            issuer,
            since: since.unwrap_or(0),
            deadline_ms: host.now_ms().saturating_add(timeout).saturating_add(1000),
            context_id: self.context_id,
            stream: self.me.clone(),
        });
        self.waited = true;
        self.paused = true;
        if !host.set_tick_period_ms(WAIT_TICK_MS) {
            host.log(
                Level::Warn,
                "could not shorten the tick period while waiting for keys",
            );
        }
        Some(Flow::Pause)
    }

    /// The root's tick ends a wait for keys (`wait_for_keys`).
    pub fn keys_wait_over(&mut self, host: &dyn Host) {
        if self.decided || self.token.is_none() {
            return;
        }
        self.verify_token(host, true);
    }

    /// The JWKS fetch this stream made is over: release the cross-VM lease.
    fn end_own_lease(&mut self, host: &dyn Host, ok: bool) {
        if let Some((issuer, started)) = self.lease.take() {
            end_lease(host, &self.shared.config, issuer, started, ok);
        }
    }

    pub fn on_request_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.replied || self.relay.is_some() {
            return Flow::Pause;
        }
        if self.decided {
            return Flow::Continue;
        }
        if !self.awaiting_body {
            // The headers are paused for the token (JWKS fetch / introspection)
            // and the host still delivers the body (Envoy with
            // `allow_on_headers_stop_iteration`): Envoy buffers it until resumed.
            self.body_seen_while_paused = true;
            if !self.body_needed {
                return Flow::Pause;
            }
        }
        let config = self.config();
        if body_size > config.max_body_bytes {
            let d = Decision::deny(
                Reason::BodyTooLarge,
                format!(
                    "the request body is larger than {} bytes (max_body_bytes) and cannot be checked; send a smaller request",
                    config.max_body_bytes
                ),
            );
            return self.apply(host, d, false);
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        let body = host.body(Body::Request, body_size);
        if body.is_none() && body_size > 0 {
            // Deciding on an empty body would skip what it says (form
            // `_include`s, the resource's patient): fail closed.
            host.log(Level::Error, "could not read the buffered request body");
            return self.reply(
                host,
                &crate::response::gateway_error_reply(
                    500,
                    "exception",
                    "the gateway could not read the request body to check it; the request was not forwarded",
                ),
            );
        }
        self.body = Some(body.unwrap_or_default());
        if !self.awaiting_body {
            // The whole body is here before the token: decided when it resolves.
            return Flow::Pause;
        }
        self.awaiting_body = false;
        self.decide(host, false)
    }

    pub fn on_call_response(&mut self, host: &dyn Host, token_id: u32, body_size: usize) {
        if self.relay == Some(token_id) {
            self.relay = None;
            self.on_relay_response(host, body_size);
            return;
        }
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
                    let now_ms = host.now_ms();
                    publish_jwks(host, &config, issuer, &body, now_ms);
                    if let Ok(mut seen) = self.shared.seen.try_borrow_mut() {
                        seen.insert(issuer, now_ms);
                    }
                }
                self.end_own_lease(host, ok);
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
        if self.decided {
            // Refused while the call was in flight (e.g. a body over
            // `max_body_bytes` delivered to paused headers); the key store
            // still took the answer above.
            return;
        }
        self.handle_step(host, step, true);
    }

    fn handle_step(&mut self, host: &dyn Host, mut step: TokenStep, from_async: bool) -> Flow {
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
                    return self.after_token(host, from_async);
                }
                TokenStep::Denied(d) => return self.apply(host, d, from_async),
                TokenStep::Call { call, pending } => match host.dispatch_http_call(&call) {
                    Ok(id) => {
                        self.pending = Some((id, pending));
                        self.paused = true;
                        return Flow::Pause;
                    }
                    Err(e) => {
                        host.log(Level::Warn, &e);
                        self.end_own_lease(host, false);
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
        let d = Decision::deny(
            Reason::KeysUnavailable,
            "the token's signing keys could not be obtained; retry later",
        );
        self.apply(host, d, from_async)
    }

    /// The token is resolved (valid or absent): prepare the upstream headers,
    /// then decide now or wait for the body.
    fn after_token(&mut self, host: &dyn Host, from_async: bool) -> Flow {
        let config = self.config();
        self.facts = self.claims.as_ref().map(|c| self.shared.token_facts(c));
        self.identity = self.facts.as_ref().map(|f| f.identity.clone());
        self.forward_facts(host, &config);
        if self.body_needed && self.body.is_none() {
            self.awaiting_body = true;
            if config.upstream.hold_headers_for_body || self.body_seen_while_paused {
                // Keep the headers (and the facts just set on them) until the
                // decision at the end of the body: a denial never reaches the
                // upstream. Needs a host that delivers body callbacks to paused
                // headers (Envoy's `allow_on_headers_stop_iteration`).
                self.paused = true;
                return Flow::Pause;
            }
            return self.release(host, from_async);
        }
        self.decide(host, from_async)
    }

    fn decide(&mut self, host: &dyn Host, from_async: bool) -> Flow {
        let config = self.config();
        let d = self.with_parts(|s, parts| {
            s.shared.engine.decide_prepared(
                &config,
                parts,
                s.claims.as_deref(),
                s.facts.as_ref().and_then(|f| f.prepared.as_ref()),
            )
        });
        self.apply(host, d, from_async)
    }

    fn write_audit(&self, host: &dyn Host, d: &Decision, obligation: Option<Result<(), String>>) {
        let config = &self.shared.config;
        if !config.audit.enabled {
            return;
        }
        let rec = audit::record(
            &config.audit,
            &AuditInput {
                method: &self.method,
                request_id: self.request_id.as_deref(),
                decision: d,
                identity: self.identity.as_deref(),
                enforced: config.enforce,
                now_ms: host.now_ms(),
                obligation_result: obligation,
                obligation_denied_status: config.responses.obligation_denied_status,
            },
        );
        let bytes = match self.shared.audit_encoding {
            AuditEncoding::Json => rec.to_string().into_bytes(),
            AuditEncoding::Struct => crate::pbstruct::encode_struct(&rec),
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
        if allow && !d.obligations.is_empty() {
            self.decision = Some(d);
            return self.start_relay(host);
        }
        if allow || !config.enforce {
            self.decision = Some(d);
            return self.release(host, from_async);
        }
        let reply = deny_reply(&config, &d, d.status);
        self.decision = Some(d);
        self.reply(host, &reply)
    }

    /// Fetch the response through `upstream.cluster` to check obligations.
    fn start_relay(&mut self, host: &dyn Host) -> Flow {
        let config = self.config();
        let mut headers: Vec<(String, String)> = host
            .headers(Headers::Request)
            .into_iter()
            .filter(|(n, _)| {
                !matches!(
                    n.to_ascii_lowercase().as_str(),
                    "connection"
                        | "keep-alive"
                        | "proxy-connection"
                        | "transfer-encoding"
                        | "te"
                        | "upgrade"
                        | "content-length"
                        | "expect"
                )
            })
            .collect();
        if !headers.iter().any(|(n, _)| n == ":authority") {
            headers.push((":authority".into(), config.upstream.cluster.clone()));
        }
        let call = HttpCall {
            cluster: config.upstream.cluster.clone(),
            headers,
            body: self.body.clone(),
            timeout_ms: config.upstream.timeout_ms,
        };
        match host.dispatch_http_call(&call) {
            Ok(id) => {
                self.relay = Some(id);
                self.paused = true;
                Flow::Pause
            }
            Err(e) => {
                host.log(Level::Error, &format!("obligation fetch: {e}"));
                self.relay_failed(host, &format!("the FHIR server could not be called ({e})"))
            }
        }
    }

    fn relay_failed(&mut self, host: &dyn Host, why: &str) -> Flow {
        self.shared.count(host, "response_check.upstream_failure");
        self.reply(
            host,
            &crate::response::gateway_error_reply(502, "transient", why),
        )
    }

    fn on_relay_response(&mut self, host: &dyn Host, body_size: usize) {
        let config = self.config();
        let headers = host.headers(Headers::CallResponse);
        let status: Option<u16> = headers
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse().ok());
        let Some(status) = status else {
            self.relay_failed(host, "the FHIR server did not answer");
            return;
        };
        let result = if body_size > config.max_body_bytes {
            Err(format!(
                "the response is larger than {} bytes (max_body_bytes) and cannot be checked against the token's patient/granular scopes",
                config.max_body_bytes
            ))
        } else if !(200..300).contains(&status) || body_size == 0 {
            // Error responses and empty bodies carry no resource to check.
            Ok(())
        } else {
            let bytes = host.body(Body::CallResponse, body_size).unwrap_or_default();
            match serde_json::from_slice::<Value>(&bytes) {
                Err(_) => Err("the response is not JSON and cannot be checked against the token's patient/granular scopes".to_string()),
                Ok(v) => {
                    let obligations = self
                        .decision
                        .as_ref()
                        .map(|d| d.obligations.clone())
                        .unwrap_or_default();
                    obligations.iter().try_for_each(|o| {
                        self.shared
                            .engine
                            .check_response(o, &v, config.base.url.as_deref())
                    })
                }
            }
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
        if let Some(d) = self.decision.clone() {
            self.write_audit(host, &d, Some(result.clone()));
        }
        if let Err(why) = result {
            if config.enforce {
                let denial = Decision::deny(Reason::ResponseNotPermitted, why);
                let reply = deny_reply(&config, &denial, config.responses.obligation_denied_status);
                self.reply(host, &reply);
                return;
            }
            self.shared.count(host, "shadow.would_deny");
            if body_size > config.max_body_bytes {
                self.relay_failed(host, "the response is too large to relay in shadow mode");
                return;
            }
        }
        let body = host.body(Body::CallResponse, body_size).unwrap_or_default();
        let relayed: Vec<(String, String)> = headers
            .into_iter()
            .filter(|(n, _)| {
                !n.starts_with(':')
                    && !matches!(
                        n.as_str(),
                        "content-length" | "transfer-encoding" | "connection" | "keep-alive"
                    )
            })
            .collect();
        self.reply(
            host,
            &Reply {
                status,
                headers: relayed,
                body,
            },
        );
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
}
