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
//! - a write by id under a patient/ scope is held while the filter reads
//!   the stored resource through `upstream.cluster` (`precheck`), and goes
//!   on (with `If-Match` where the headers are still held) only if it is the
//!   patient's;
//! - a decision with response obligations (patient compartment / granular
//!   scope checks on the returned resource) is carried out by the filter
//!   itself: it fetches the response through `upstream.cluster`
//!   (`dispatch_http_call` with the request's headers), checks it, and relays
//!   it — or replaces it with 403/404 — as a local reply;
//! - a narrowed allow (the decision's `rewrite`) sets the new `:path` and
//!   `Prefer` on the request before it goes on; when the headers already
//!   went upstream, the filter relays the rewritten request itself.
//!
//! Each [`Phase`] holds what exists while the stream is in it: the token
//! kept while verifying, the call and the decision of a pre-check or a
//! relay, the decision and the answer hook of a released request. What
//! outlives a phase is the stream's: the request (headers, body), the
//! verified token, a token call in flight (its answer still reaches the key
//! store after a refusal). Every rule is the core's (`engine`,
//! `disposition`, `relay`, `precheck`, `bulk`, `capability_statement`,
//! `reply`); the stream only adapts its host.
//!
//! The stream's code follows its phases: `request` (headers and body
//! callbacks), `token` (verification, key fetches, waits for another VM's
//! keys), `decision` (the engine's decision, carried out), `precheck` (the
//! write pre-check), `rewrite` (a narrowed request), `relay` (the response
//! check of an obligation), `metadata` (the SMART section in the
//! CapabilityStatement), `audit` (the audit record, written at the decision
//! or when Envoy logs the request).

mod audit;
mod binding;
mod bulk;
mod decision;
mod metadata;
mod precheck;
mod relay;
mod request;
mod rewrite;
mod token;

use crate::host::{Flow, Host, LogLevel};
use crate::ports::Pending;
use crate::shared::{Shared, TokenFacts};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Decision;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::relay::with_answer_headers;
use fhir_smart_authz_core::reply::Reply;
use fhir_smart_authz_core::token::binding::Binding;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

/// Where the stream is, and what it holds in each phase.
enum Phase {
    /// Reading the request and verifying its token (a key fetch, an
    /// introspection call or a wait for another VM's keys may be under way).
    Verifying(Verifying),
    /// The token is resolved; the body the decision needs is still arriving
    /// (headers released, or held with `upstream.hold_headers_for_body`).
    AwaitingBody,
    /// Allowed if the stored resource of a write by id is the patient's:
    /// the filter reads it (`call`) before the write goes on. `decision`
    /// keeps the pre-checks still to make.
    Prechecking { call: u32, decision: Decision },
    /// Allowed with obligations (or sent by the filter itself: a partly
    /// allowed batch, a narrowed request whose headers already went
    /// upstream): the filter fetches the response (`call`).
    Relaying { call: u32, decision: Decision },
    /// Decided and let through (in shadow mode, whatever the decision);
    /// `answer`: what the response callbacks still do with the answer.
    Released {
        decision: Decision,
        answer: AnswerHook,
    },
    /// Answered locally (a denial, a relayed or replaced response, the
    /// discovery document, a gateway error).
    Replied,
}

/// The token phase's own state.
#[derive(Default)]
struct Verifying {
    /// The token, kept when verifying goes on after the headers callback.
    token: Option<String>,
    /// Waited once for another VM's JWKS fetch (never twice).
    waited_for_keys: bool,
    /// The classifier needs the body and it was still to come at the headers.
    body_needed: bool,
    /// A body callback arrived while the headers were paused: the host
    /// delivers body callbacks to paused headers, so holding them is safe.
    body_seen_while_paused: bool,
}

/// What the response callbacks of a released request do with its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum AnswerHook {
    /// Nothing (the answer passes as it is).
    #[default]
    Off,
    /// The SMART section in a `/metadata` answer.
    Capability(metadata::CapabilityRewrite),
    /// The answer of a Bulk Data request the job registry needs.
    Bulk(bulk::BulkHook),
}

/// A token call (JWKS / introspection) in flight. Kept apart from the
/// phase: its answer still reaches the key store after a refusal.
struct TokenCall {
    id: u32,
    purpose: Pending,
    /// The token it verifies.
    token: String,
    /// When this stream took the issuer's JWKS fetch lease for it (ms).
    lease_started: Option<u64>,
}

/// The verified token as this request presents it.
struct PresentedToken {
    claims: Rc<Value>,
    /// What is derived from the claims once per token.
    facts: Rc<TokenFacts>,
    /// How the request proved the token's binding; its answer headers (a
    /// fresh `DPoP-Nonce`) go on every answer.
    binding: Binding,
}

/// Which host callback the stream is in: a request callback lets the
/// request go on by returning `Continue`, an asynchronous answer (a call's,
/// the end of a wait) by resuming it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Callback {
    Request,
    Async,
    /// Envoy logs the request: nothing goes on any more.
    Log,
}

/// Whether the request is held at the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    /// Not held (or continued by a callback's `Continue`).
    Flowing,
    /// A request callback returned `Pause` and the request was not continued.
    Paused,
    /// Resumed once with `resume_http_request` after an asynchronous answer;
    /// never resumed again.
    Resumed,
}

pub struct Stream {
    shared: Rc<Shared>,
    /// This stream, for the wait list (empty: the stream cannot wait).
    me: Weak<RefCell<Stream>>,
    /// The proxy-wasm context id (to resume from the root's tick).
    context_id: u32,
    phase: Phase,
    hold: Hold,
    /// The host callback being handled.
    callback: Callback,
    /// Where `:method` and `:path` are in `headers` (the last of each): read
    /// there, not copied.
    method_at: Option<usize>,
    path_at: Option<usize>,
    headers: Vec<(String, String)>,
    /// The verified token, once resolved; `None` without one.
    token: Option<PresentedToken>,
    /// The token call in flight.
    token_call: Option<TokenCall>,
    body: Option<Vec<u8>>,
    /// The headers as they went upstream before the decision (a body-decided
    /// request not held): a rewrite can no longer change them, and Envoy no
    /// longer lends them to the filter, so a relay starts from this copy.
    forwarded_headers: Option<Vec<(String, String)>>,
    /// The audit record (JSON text) kept for `on_log` (`audit.encoding: "line"`).
    audit_line: Option<Vec<u8>>,
    /// The clock as read in this callback (see `now_ms`).
    clock_ms: Cell<Option<u64>>,
    /// When the request's headers arrived (µs; `metrics.decision_latency`).
    started_us: Option<u64>,
}

impl Stream {
    pub fn new(shared: Rc<Shared>) -> Stream {
        Stream {
            shared,
            me: Weak::new(),
            context_id: 0,
            phase: Phase::Verifying(Verifying::default()),
            hold: Hold::Flowing,
            callback: Callback::Request,
            method_at: None,
            path_at: None,
            headers: Vec::new(),
            token: None,
            token_call: None,
            body: None,
            forwarded_headers: None,
            audit_line: None,
            clock_ms: Cell::new(None),
            started_us: None,
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

    /// The proxy's clock, read at most once per callback (a host call each):
    /// every check and record of one callback sees the same instant.
    fn now_ms(&self, host: &dyn Host) -> u64 {
        if let Some(t) = self.clock_ms.get() {
            return t;
        }
        let t = host.now_ms();
        self.clock_ms.set(Some(t));
        t
    }

    fn now_s(&self, host: &dyn Host) -> u64 {
        self.now_ms(host) / 1000
    }

    /// Run `f`; with `metrics.phase_timing` (a debug switch) record the time
    /// it took in the histogram `phase.<name>_us`.
    fn timed<R>(
        &mut self,
        host: &dyn Host,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> R,
    ) -> R {
        let start = self.timer_start(host);
        let r = f(self);
        self.timer_stop(host, name, start);
        r
    }

    /// [`Self::timed`] in two halves, for code that holds `&self` only: the
    /// start (`None` without `metrics.phase_timing`) ...
    fn timer_start(&self, host: &dyn Host) -> Option<u64> {
        self.shared
            .config
            .metrics
            .phase_timing
            .then(|| host.now_us())
    }

    /// ... and the record of the time since it.
    fn timer_stop(&self, host: &dyn Host, name: &'static str, start: Option<u64>) {
        let Some(start) = start else {
            return;
        };
        let micros = host.now_us().saturating_sub(start);
        if let Ok(mut m) = self.shared.metrics.try_borrow_mut() {
            m.phase(host, name, micros);
        }
    }

    /// A host callback begins: time has passed since the last one.
    fn callback(&mut self, callback: Callback) {
        self.clock_ms.set(None);
        self.callback = callback;
    }

    /// Whether the decision was made (or a reply sent instead).
    fn decided(&self) -> bool {
        !matches!(self.phase, Phase::Verifying(_) | Phase::AwaitingBody)
    }

    /// The phase, taken to be replaced (by `Replied` meanwhile).
    fn take_phase(&mut self) -> Phase {
        std::mem::replace(&mut self.phase, Phase::Replied)
    }

    /// The identity and token context of the verified token, if any.
    fn facts(&self) -> Option<&TokenFacts> {
        self.token.as_ref().map(|t| &*t.facts)
    }

    /// The headers every answer to this request carries (the binding's: a
    /// fresh `DPoP-Nonce`).
    fn answer_headers(&self) -> &[(String, String)] {
        self.token
            .as_ref()
            .map_or(&[], |t| t.binding.response_headers.as_slice())
    }

    /// The request's `x-request-id` (the last, if repeated).
    fn request_id(&self) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == "x-request-id")
            .map(|(_, v)| v.as_str())
    }

    /// The value of the request header at `at` in `headers` ("" if none).
    fn header_at(&self, at: Option<usize>) -> &str {
        at.and_then(|i| self.headers.get(i))
            .map_or("", |(_, v)| v.as_str())
    }

    /// The request's `:method` ("" if none).
    fn method(&self) -> &str {
        self.header_at(self.method_at)
    }

    /// The request's `:path` ("" if none).
    fn path(&self) -> &str {
        self.header_at(self.path_at)
    }

    /// Run `f` over the request as the core sees it (borrowed, not copied).
    fn with_parts<R>(&self, f: impl FnOnce(&Stream, &RequestParts<'_>) -> R) -> R {
        let parts = RequestParts {
            method: self.method(),
            path: self.path(),
            headers: Cow::Borrowed(&self.headers),
            body: self.body.as_deref(),
        };
        f(self, &parts)
    }

    /// A request callback returns `Pause`.
    fn pause(&mut self) -> Flow {
        if self.hold == Hold::Flowing {
            self.hold = Hold::Paused;
        }
        Flow::Pause
    }

    /// Answer locally, with the headers every answer carries.
    fn reply(&mut self, host: &dyn Host, mut r: Reply) -> Flow {
        with_answer_headers(&mut r, self.answer_headers());
        if host.send_local_reply(&r).is_err() {
            host.log(LogLevel::Error, "could not send the local reply");
        }
        self.phase = Phase::Replied;
        Flow::Pause
    }

    /// Let the request go on: `Continue` inside a request callback, or one
    /// `resume_http_request` after an asynchronous answer.
    fn release(&mut self, host: &dyn Host) -> Flow {
        match (self.callback, self.hold) {
            // `Continue` from this callback lets paused headers go on too.
            (Callback::Request, Hold::Paused) => self.hold = Hold::Flowing,
            (Callback::Async, Hold::Paused) => {
                self.hold = Hold::Resumed;
                if host.resume_request().is_err() {
                    host.log(LogLevel::Error, "could not resume the request");
                }
            }
            _ => {}
        }
        Flow::Continue
    }
}
