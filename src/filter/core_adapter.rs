//! Production implementations of the ports over the pure core. This is the
//! one place that adapts to the signatures of `crate::token`, `crate::engine`
//! and `crate::policy`.

use super::host::{Host, HttpCall};
use super::ports::{Engine, Pending, TokenPort, TokenStep};
use crate::config::Config;
use crate::decision::{Decision, Obligation, Reason};
use crate::fhir::RequestParts;
use crate::token::host_crypto::VERIFY_SIGNATURE_FUNCTION;
use crate::token::{
    extract_bearer, introspection, Authenticated, BearerToken, HostAssistedVerifier, Jwk,
    JwsAlgorithm, KeyFetch, RustCryptoVerifier, SignatureVerifier, TokenCache, TokenError,
    TokenLocation, TokenVerifier, VerifierError,
};
use serde_json::Value;
use std::rc::Rc;

/// The decision engine: classifier + policy.
#[derive(Debug, Default)]
pub struct CoreEngine;

impl Engine for CoreEngine {
    fn body_needed(&self, config: &Config, req: &RequestParts) -> bool {
        crate::fhir::body_needed(config, req)
    }

    fn decide(&self, config: &Config, req: &RequestParts, claims: Option<&Value>) -> Decision {
        crate::engine::decide(config, req, claims)
    }

    fn check_response(
        &self,
        obligation: &Obligation,
        response: &Value,
        base_url: Option<&str>,
    ) -> Result<(), String> {
        crate::policy::check_response(obligation, response, base_url)
    }
}

/// RS256/384/512 through Envoy's `verify_signature` (BoringSSL); anything
/// else, or a host failure, through the pure-Rust verifier.
struct ShellVerifier<'h> {
    host: &'h dyn Host,
}

impl SignatureVerifier for ShellVerifier<'_> {
    fn verify(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, VerifierError> {
        let assisted = HostAssistedVerifier {
            call: |args: &[u8]| {
                self.host
                    .call_foreign_function(VERIFY_SIGNATURE_FUNCTION, args)
                    .and_then(|r| r.ok_or_else(|| "empty verify_signature result".to_string()))
            },
        };
        match assisted.verify(alg, key, signing_input, signature) {
            Ok(v) => Ok(v),
            // The host could not run the check (not a signature mismatch).
            Err(_) => RustCryptoVerifier.verify(alg, key, signing_input, signature),
        }
    }
}

fn jwks_call(f: &KeyFetch) -> HttpCall {
    HttpCall {
        cluster: f.cluster.clone(),
        headers: vec![
            (":method".into(), "GET".into()),
            (":path".into(), f.path.clone()),
            (":authority".into(), f.authority.clone()),
            ("accept".into(), "application/json".into()),
        ],
        body: None,
        timeout_ms: f.timeout_ms,
    }
}

fn denied(e: TokenError) -> TokenStep {
    TokenStep::Denied(e.into_decision())
}

/// Token handling over `crate::token` (one per worker VM and configuration).
pub struct CoreTokens {
    config: Rc<Config>,
    /// `Err`: the issuers could not be set up (already caught by config
    /// validation; kept to fail closed).
    verifier: Result<TokenVerifier, String>,
    cache: TokenCache<Value>,
}

impl CoreTokens {
    pub fn new(config: Rc<Config>) -> CoreTokens {
        let verifier = TokenVerifier::new(&config).map_err(|e| e.to_string());
        let cache = TokenCache::new(config.token.cache_max_entries);
        CoreTokens {
            config,
            verifier,
            cache,
        }
    }

    /// A JWKS fetch for `issuer` on behalf of a request: when a fetch is due
    /// (unknown `kid`, rate-limited), or when no keys were ever loaded and the
    /// startup fetch is still in flight (the request would otherwise fail).
    fn request_fetch(&mut self, issuer: usize, now: u64) -> Option<HttpCall> {
        let v = self.verifier.as_mut().ok()?;
        if let Some(f) = v
            .fetches_due(now)
            .into_iter()
            .find(|f| f.issuer_index == issuer)
        {
            v.begin_fetch(issuer, now);
            return Some(jwks_call(&f));
        }
        let never_loaded = v.generation(issuer) == Some(0);
        let cfg = v.issuer_config(issuer)?;
        if !never_loaded {
            return None;
        }
        let (authority, path) = cfg.jwks_authority_and_path()?;
        Some(jwks_call(&KeyFetch {
            issuer_index: issuer,
            reason: crate::token::FetchReason::Startup,
            cluster: cfg.jwks_cluster.clone()?,
            authority,
            path,
            timeout_ms: cfg.jwks_timeout_ms,
        }))
    }

    fn authenticate(
        &mut self,
        host: &dyn Host,
        token: &str,
        now: u64,
        may_fetch: bool,
    ) -> TokenStep {
        let Ok(v) = self.verifier.as_mut() else {
            return TokenStep::Denied(Decision::deny(
                Reason::KeysUnavailable,
                "the token issuers are misconfigured; see the filter's startup log",
            ));
        };
        let bearer = BearerToken {
            token: token.to_string(),
            location: TokenLocation::Header,
        };
        let sig = ShellVerifier { host };
        match v.authenticate(&mut self.cache, &bearer, now, &sig, |t| t.claims.clone()) {
            Ok(Authenticated::Verified { value, cached }) => TokenStep::Verified {
                claims: value,
                cache_hit: cached,
            },
            Ok(Authenticated::Introspect(req)) => TokenStep::Call {
                call: HttpCall {
                    cluster: req.cluster.clone(),
                    headers: req.headers.clone(),
                    body: Some(req.body.clone()),
                    timeout_ms: req.timeout_ms,
                },
                pending: Pending::Introspection {
                    issuer: req.issuer_index,
                },
            },
            Err(e) => match e.refetch_keys {
                Some(issuer) if may_fetch => match self.request_fetch(issuer, now) {
                    Some(call) => TokenStep::Call {
                        call,
                        pending: Pending::Jwks { issuer },
                    },
                    None => denied(e),
                },
                _ => denied(e),
            },
        }
    }
}

impl TokenPort for CoreTokens {
    fn extract(&self, config: &Config, req: &RequestParts) -> Result<Option<String>, Decision> {
        extract_bearer(req, &config.token).map(|b| b.map(|b| b.token))
    }

    fn verify(&mut self, host: &dyn Host, token: &str, now: u64) -> TokenStep {
        self.authenticate(host, token, now, true)
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
        let response = status.map(|s| (s, body)).ok_or("the call failed");
        match pending {
            Pending::Jwks { issuer } => {
                let Ok(v) = self.verifier.as_mut() else {
                    return self.authenticate(host, token, now, false);
                };
                if let Err(e) = v.on_jwks_response(issuer, response, now) {
                    if v.generation(issuer) == Some(0) {
                        return TokenStep::Denied(Decision::deny(
                            Reason::KeysUnavailable,
                            format!("the token's signing keys could not be fetched ({e}); try again later"),
                        ));
                    }
                }
                // Retry once with whatever keys we now have; never fetch again.
                self.authenticate(host, token, now, false)
            }
            Pending::Introspection { issuer } => {
                let Ok(v) = self.verifier.as_ref() else {
                    return self.authenticate(host, token, now, false);
                };
                let Some(cfg) = self
                    .config
                    .issuers
                    .get(issuer)
                    .and_then(|i| i.introspection.as_ref())
                else {
                    return TokenStep::Denied(Decision::deny(
                        Reason::IntrospectionUnavailable,
                        "introspection is not configured for this issuer",
                    ));
                };
                let req = introspection::build_request(issuer, cfg, token);
                match v.complete_introspection(&mut self.cache, &req, token, response, now, |t| {
                    t.claims.clone()
                }) {
                    Ok(claims) => TokenStep::Verified {
                        claims,
                        cache_hit: false,
                    },
                    Err(e) => denied(e),
                }
            }
        }
    }

    fn due_jwks_fetches(&mut self, now: u64) -> Vec<(usize, HttpCall)> {
        let Ok(v) = self.verifier.as_mut() else {
            return Vec::new();
        };
        let due = v.fetches_due(now);
        due.iter()
            .map(|f| {
                v.begin_fetch(f.issuer_index, now);
                (f.issuer_index, jwks_call(f))
            })
            .collect()
    }

    fn jwks_response(
        &mut self,
        issuer: usize,
        response: Result<(u16, &[u8]), &str>,
        now: u64,
    ) -> Result<(), String> {
        let v = self.verifier.as_mut().map_err(|e| e.clone())?;
        v.on_jwks_response(issuer, response, now).map(|_| ())
    }

    fn jwks_shared(
        &mut self,
        issuer: usize,
        bytes: &[u8],
        fetched_at: u64,
        now: u64,
    ) -> Result<(), String> {
        let v = self.verifier.as_mut().map_err(|e| e.clone())?;
        let store = v
            .key_store_mut(issuer)
            .ok_or_else(|| format!("no issuer {issuer}"))?;
        store.on_shared_jwks(bytes, fetched_at, now).map(|_| ())
    }

    fn fetched_issuers(&self) -> Vec<usize> {
        let Ok(v) = self.verifier.as_ref() else {
            return Vec::new();
        };
        (0..v.issuer_count())
            .filter(|i| v.key_store(*i).is_some_and(|s| s.is_remote()))
            .collect()
    }
}
