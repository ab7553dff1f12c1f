//! The two seams between the shell and the pure core: token handling and the
//! decision engine. The production implementations live in
//! [`crate::core_adapter`]; tests plug in fakes.

use crate::host::{Host, HttpCall};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, LabelFilter, Obligation};
use fhir_smart_authz_core::engine::TokenContext;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::policy::{LabelsFiltered, ResponseVerdict, Stored};
use fhir_smart_authz_core::token::binding::{check_binding, Binding, BindingRequest, ReplayStore};
use fhir_smart_authz_core::token::RustCryptoVerifier;
use serde_json::Value;
use std::borrow::Cow;

/// What an outstanding HTTP call is for, and one step of verifying a
/// bearer token: the core's types (a `Call` is made, then reported with
/// [`TokenPort::call_done`]; `Denied` is a 401).
pub use fhir_smart_authz_core::token::service::{CallPurpose as Pending, TokenStep};

/// Token extraction, verification and key management.
pub trait TokenPort {
    /// The bearer token of a request: `Ok(None)` when there is none, `Err`
    /// for malformed or multiple credentials. Borrowed from `req` where it
    /// can be: the stream copies it only when verifying goes on later.
    fn extract<'r>(
        &self,
        config: &Config,
        req: &'r RequestParts<'_>,
    ) -> Result<Option<Cow<'r, str>>, Decision>;
    /// Verify a token at `now` (Unix seconds).
    fn verify(&mut self, host: &dyn Host, token: &str, now: u64) -> TokenStep;
    /// The answer to a [`TokenStep::Call`]: `status` is `None` when the call
    /// failed. Continues verifying the same token.
    fn call_done(
        &mut self,
        host: &dyn Host,
        pending: Pending,
        token: &str,
        status: Option<u16>,
        body: &[u8],
        now: u64,
    ) -> TokenStep;
    /// JWKS fetches due now (startup and periodic refresh): `(issuer, call)`.
    fn due_jwks_fetches(&mut self, now: u64) -> Vec<(usize, HttpCall)>;
    /// The answer to a root-initiated JWKS fetch: `Ok((status, body))` or
    /// `Err(why)` when the call failed.
    fn jwks_response(
        &mut self,
        issuer: usize,
        response: Result<(u16, &[u8]), &str>,
        now: u64,
    ) -> Result<(), String>;
    /// JWKS bytes another VM fetched at `fetched_at` (shared data).
    fn jwks_shared(
        &mut self,
        issuer: usize,
        bytes: &[u8],
        fetched_at: u64,
        now: u64,
    ) -> Result<(), String>;
    /// Whether JWKS bytes hold a key set the verifier can use (a fetch that
    /// answered 200 with anything else is a failed fetch).
    fn usable_jwks(&self, _bytes: &[u8]) -> bool {
        true
    }
    /// The sender constraint of a verified token (DPoP proof, client
    /// certificate), checked on every request; `Err` is the denial.
    fn check_binding(
        &mut self,
        _host: &dyn Host,
        config: &Config,
        req: &BindingRequest<'_, '_>,
        claims: &Value,
        replay: &mut dyn ReplayStore,
    ) -> Result<Binding, Decision> {
        check_binding(&config.binding(), req, claims, &RustCryptoVerifier, replay)
    }
    /// Housekeeping from the root tick (e.g. drop expired cache entries).
    fn housekeeping(&mut self, _now: u64) {}
    /// Indexes of issuers whose keys are fetched (`jwks_uri`).
    fn fetched_issuers(&self) -> Vec<usize>;
    /// The fetched (`jwks_uri`) issuer of `token` when its current key set
    /// cannot verify it: a `kid` not in the set, or no keys yet. Asked only
    /// after a refusal, so another worker VM's newer key set can be tried.
    fn unknown_kid_issuer(&self, _token: &str) -> Option<usize> {
        None
    }
}

/// A verified token as the stream hands it to the engine.
#[derive(Debug, Clone, Copy)]
pub struct TokenInput<'t> {
    pub claims: &'t Value,
    /// What the engine derived from the claims once per token
    /// ([`Engine::token_context`]), if it derives anything.
    pub context: Option<&'t TokenContext>,
    /// How the request proved the token's binding.
    pub binding: &'t Binding,
}

/// The pure decision core.
pub trait Engine {
    fn body_needed(&self, config: &Config, req: &RequestParts) -> bool;
    /// Per-token state derived from the claims once (the shell keeps it
    /// with the token): `None` when the engine has none.
    fn token_context(&self, _config: &Config, _claims: &Value) -> Option<TokenContext> {
        None
    }
    /// The decision on a request with its verified token (`None`: no
    /// token): the core's `engine::decide_token`.
    fn decide(
        &self,
        config: &Config,
        req: &RequestParts,
        token: Option<TokenInput<'_>>,
    ) -> Decision;
    /// Whether a response satisfies an obligation (`Err` says why not).
    fn check_response(
        &self,
        config: &Config,
        obligation: &Obligation,
        response: &Value,
    ) -> Result<(), String>;
    /// The label filter of a response (`Obligation::FilterLabels`): the
    /// body to send instead, or why it is refused (pure; the core's own).
    fn filter_labels(
        &self,
        config: &Config,
        filter: &LabelFilter,
        response: &Value,
    ) -> LabelsFiltered {
        fhir_smart_authz_core::policy::filter_labels(&config.policy, filter, response)
    }
    /// Every obligation of a decision on a response, in the core's order
    /// ([`fhir_smart_authz_core::policy::check_obligations_with`]).
    fn check_obligations(
        &self,
        config: &Config,
        obligations: &[Obligation],
        response: &Value,
    ) -> ResponseVerdict {
        fhir_smart_authz_core::policy::check_obligations_with(
            obligations,
            |o| self.check_response(config, o, response),
            |f| self.filter_labels(config, f, response),
        )
    }
    /// The write pre-check on the read of the stored resource (pure; the
    /// core's own decision unless a test scripts another).
    fn check_stored(
        &self,
        obligation: &Obligation,
        status: u16,
        headers: &[(String, String)],
        body: &[u8],
        base_url: Option<&str>,
    ) -> Stored {
        fhir_smart_authz_core::policy::check_stored(obligation, status, headers, body, base_url)
    }
}
