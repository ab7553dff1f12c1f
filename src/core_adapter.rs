//! Production implementations of the ports over the pure core. This is the
//! one place that adapts to the signatures of `fhir_smart_authz_core::token`, `fhir_smart_authz_core::engine`
//! and `fhir_smart_authz_core::policy`.

use crate::host::{Host, HttpCall, LogLevel};
use crate::ports::{Engine, Pending, TokenInput, TokenPort, TokenStep};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::engine::{self, PresentedToken, TokenContext};
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::token::binding::{
    check_binding_with, Binding, BindingRequest, ProofKeys, ReplayStore,
};
use fhir_smart_authz_core::token::host_crypto::VERIFY_SIGNATURE_FUNCTION;
use fhir_smart_authz_core::token::service::{Cached, TokenService};
use fhir_smart_authz_core::token::{
    extract_bearer, jose, HostAssistedVerifier, KeySet, RustCryptoVerifier, SignatureVerifier,
    TokenCache, TokenStore,
};
use serde_json::Value;
use std::borrow::Cow;
use std::rc::Rc;

/// The production ports of a configuration (the root's factory in every
/// shell).
pub fn core_ports(config: Rc<Config>) -> (Box<dyn TokenPort>, Box<dyn Engine>) {
    (Box::new(CoreTokens::new(config)), Box::new(CoreEngine))
}

/// [`core_ports`] keeping verified tokens in `store` (a shell's cache
/// shared by its threads).
pub fn core_ports_with_store<S: TokenStore<Cached> + 'static>(
    config: Rc<Config>,
    store: S,
) -> (Box<dyn TokenPort>, Box<dyn Engine>) {
    (
        Box::new(CoreTokens::with_store(config, store)),
        Box::new(CoreEngine),
    )
}

/// The decision engine: classifier + policy.
#[derive(Debug, Default)]
pub struct CoreEngine;

impl Engine for CoreEngine {
    fn body_needed(&self, config: &Config, req: &RequestParts) -> bool {
        engine::body_needed(config, req)
    }

    fn token_context(&self, config: &Config, claims: &Value) -> Option<TokenContext> {
        Some(engine::token_context(config, claims))
    }

    fn decide(
        &self,
        config: &Config,
        req: &RequestParts,
        token: Option<TokenInput<'_>>,
    ) -> Decision {
        let Some(token) = token else {
            return engine::decide_token(config, req, None);
        };
        let derived;
        let context = match token.context {
            Some(context) => context,
            None => {
                derived = engine::token_context(config, token.claims);
                &derived
            }
        };
        let presented = PresentedToken {
            context,
            binding: Some(token.binding),
        };
        engine::decide_token(config, req, Some(presented))
    }

    fn check_response(
        &self,
        config: &Config,
        obligation: &Obligation,
        response: &Value,
    ) -> Result<(), String> {
        fhir_smart_authz_core::policy::check_response(
            &config.policy,
            config.base.url.as_deref(),
            obligation,
            response,
        )
    }
}

/// RS256/384/512 and ES256/384 through Envoy's `verify_signature`
/// (BoringSSL); anything else, or a host failure, through the pure-Rust
/// verifier (inside [`HostAssistedVerifier`]). `host_crypto: false`
/// (`token.host_crypto`) forces the pure-Rust verifier. The first host
/// failure of a worker VM is logged (`warned`): the answers stay right, but
/// every such token then costs the pure path's time.
fn with_verifier<R>(
    host: &dyn Host,
    host_crypto: bool,
    warned: &mut bool,
    f: impl FnOnce(&dyn SignatureVerifier) -> R,
) -> R {
    if !host_crypto {
        return f(&RustCryptoVerifier);
    }
    let last_error = std::cell::RefCell::new(String::new());
    let sig = HostAssistedVerifier::new(|args: &[u8]| {
        host.call_foreign_function(VERIFY_SIGNATURE_FUNCTION, args)
            .map_err(|e| format!("foreign function {VERIFY_SIGNATURE_FUNCTION:?} failed ({e:?})"))
            .and_then(|r| r.ok_or_else(|| "empty verify_signature result".to_string()))
            .inspect_err(|e| *last_error.borrow_mut() = e.clone())
    });
    let r = f(&sig);
    if sig.host_failures.get() > 0 && !*warned {
        *warned = true;
        host.log(
            LogLevel::Warn,
            &format!(
                "fhir-smart-authz: Envoy's verify_signature could not check a signature ({}); verified in pure Rust instead (slower); logged once",
                last_error.borrow()
            ),
        );
    }
    r
}

/// Token handling over [`TokenService`] (one per worker VM and
/// configuration), keeping verified tokens in `S`: its own cache, or one the
/// shell shares between its threads ([`CoreTokens::with_store`]).
pub struct CoreTokens<S = TokenCache<Cached>> {
    /// `Err`: the issuers could not be set up (already caught by config
    /// validation; kept to fail closed).
    service: Result<TokenService<S>, String>,
    /// `token.host_crypto`.
    host_crypto: bool,
    /// A host verification failure was logged (once per VM).
    host_failure_logged: bool,
    /// DPoP proof headers already checked (one per client key).
    proof_keys: ProofKeys,
}

impl CoreTokens {
    /// Its own cache, bounded by `token.cache_max_entries`.
    pub fn new(config: Rc<Config>) -> CoreTokens {
        let cache = TokenCache::new(config.token.cache_max_entries);
        CoreTokens::with_store(config, cache)
    }
}

impl<S: TokenStore<Cached>> CoreTokens<S> {
    /// Verified tokens kept in `store` (bound it by `token.cache_max_entries`).
    pub fn with_store(config: Rc<Config>, store: S) -> CoreTokens<S> {
        CoreTokens {
            service: TokenService::with_store(config.trust(), &config.claims, store)
                .map_err(|e| e.to_string()),
            host_crypto: config.token.host_crypto,
            host_failure_logged: false,
            proof_keys: ProofKeys::default(),
        }
    }

    /// The fetched (`jwks_uri`) issuer named by the token's (unverified) `iss`.
    fn fetched_issuer_of(&self, token: &str) -> Option<usize> {
        let v = self.service.as_ref().ok()?.verifier();
        let iss = jose::peek_issuer(token)?;
        (0..v.issuer_count()).find(|i| {
            v.issuer_config(*i).is_some_and(|c| c.issuer == iss)
                && v.key_store(*i).is_some_and(|k| k.is_remote())
        })
    }

    /// Keys were never loaded for this token's issuer and the start-up fetch
    /// is still in flight: fetch on behalf of the request instead of
    /// refusing it (only until the first key set arrives).
    fn startup_fetch(&mut self, token: &str) -> Option<(HttpCall, Pending)> {
        let svc = self.service.as_ref().ok()?;
        let i = self.fetched_issuer_of(token)?;
        if svc.verifier().generation(i) != Some(0) {
            return None;
        }
        Some((svc.startup_jwks_call(i)?, Pending::Jwks { issuer: i }))
    }
}

fn misconfigured() -> TokenStep {
    TokenStep::denied(Decision::deny(
        Reason::KeysUnavailable,
        "the token issuers are misconfigured; see the filter's startup log",
    ))
}

impl<S: TokenStore<Cached>> TokenPort for CoreTokens<S> {
    fn extract<'r>(
        &self,
        config: &Config,
        req: &'r RequestParts<'_>,
    ) -> Result<Option<Cow<'r, str>>, Decision> {
        extract_bearer(req, &config.token).map(|b| b.map(|b| b.token))
    }

    fn verify(&mut self, host: &dyn Host, token: &str, now: u64) -> TokenStep {
        let Ok(svc) = self.service.as_mut() else {
            return misconfigured();
        };
        let warned = &mut self.host_failure_logged;
        let s = with_verifier(host, self.host_crypto, warned, |sig| {
            svc.verify(token, now, sig)
        });
        if let TokenStep::Denied(d) = &s {
            if d.reason == Reason::KeysUnavailable {
                if let Some((call, pending)) = self.startup_fetch(token) {
                    return TokenStep::Call {
                        call,
                        purpose: pending,
                    };
                }
            }
        }
        s
    }

    fn call_done(
        &mut self,
        host: &dyn Host,
        pending: Pending,
        token: &str,
        status: Option<u16>,
        body: &[u8],
        now: u64,
    ) -> TokenStep {
        let Ok(svc) = self.service.as_mut() else {
            return misconfigured();
        };
        let warned = &mut self.host_failure_logged;
        with_verifier(host, self.host_crypto, warned, |sig| {
            svc.call_done(pending, token, status, body, now, sig)
        })
    }

    fn check_binding(
        &mut self,
        host: &dyn Host,
        config: &Config,
        req: &BindingRequest<'_, '_>,
        claims: &Value,
        replay: &mut dyn ReplayStore,
    ) -> Result<Binding, Decision> {
        let warned = &mut self.host_failure_logged;
        let keys = &mut self.proof_keys;
        with_verifier(host, self.host_crypto, warned, |sig| {
            check_binding_with(&config.binding(), req, claims, sig, replay, keys)
        })
    }

    fn due_jwks_fetches(&mut self, now: u64) -> Vec<(usize, HttpCall)> {
        let Ok(svc) = self.service.as_mut() else {
            return Vec::new();
        };
        svc.due_jwks_fetches(now)
    }

    fn jwks_response(
        &mut self,
        issuer: usize,
        response: Result<(u16, &[u8]), &str>,
        now: u64,
    ) -> Result<(), String> {
        let svc = self.service.as_mut().map_err(|e| e.clone())?;
        match response {
            Ok((200, body)) => svc.jwks_loaded(issuer, body, now),
            Ok((status, _)) => {
                svc.jwks_failed(issuer, now);
                Err(format!("the JWKS endpoint answered HTTP {status}"))
            }
            Err(e) => {
                svc.jwks_failed(issuer, now);
                Err(e.to_string())
            }
        }
    }

    fn jwks_shared(
        &mut self,
        issuer: usize,
        bytes: &[u8],
        fetched_at: u64,
        now: u64,
    ) -> Result<(), String> {
        let svc = self.service.as_mut().map_err(|e| e.clone())?;
        let store = svc
            .verifier_mut()
            .key_store_mut(issuer)
            .ok_or_else(|| format!("no issuer {issuer}"))?;
        store.on_shared_jwks(bytes, fetched_at, now).map(|_| ())
    }

    fn usable_jwks(&self, bytes: &[u8]) -> bool {
        KeySet::parse(bytes).is_ok_and(|set| !set.keys().is_empty())
    }

    fn housekeeping(&mut self, now: u64) {
        if let Ok(svc) = self.service.as_mut() {
            svc.purge_cache(now);
        }
    }

    fn fetched_issuers(&self) -> Vec<usize> {
        self.service
            .as_ref()
            .map(|s| s.fetched_issuers())
            .unwrap_or_default()
    }

    fn unknown_kid_issuer(&self, token: &str) -> Option<usize> {
        let v = self.service.as_ref().ok()?.verifier();
        let i = self.fetched_issuer_of(token)?;
        let Some(keys) = v.key_store(i).and_then(|k| k.keys()) else {
            return Some(i); // no keys yet
        };
        let (header, _, _) = jose::split_compact(token)?;
        let kid = jose::parse_header(header).ok()?.kid?;
        (!keys.has_kid(&kid)).then_some(i)
    }
}
