//! One object per worker VM that the filter's token port can wrap 1:1:
//! extraction, cache + verification, JWKS fetch scheduling (incl. one
//! unknown-`kid` refetch per request) and introspection, all pure.

use super::bearer::extract_bearer;
use super::cache::{CacheKey, TokenCache, TokenStore};
use super::error::TokenError;
use super::introspection;
use super::keys::FetchReason;
use super::settings::TrustConfig;
use super::signature::SignatureVerifier;
use super::verified::VerifiedToken;
use super::verify::{Authenticated, KeyFetch, TokenVerifier};
use crate::claims::ClaimsConfig;
use crate::config_error::ConfigError;
use crate::decision::{Decision, Reason};
use crate::fhir::RequestParts;
use serde_json::Value;
use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::rc::Rc;
use std::sync::Arc;

/// Cached claims larger than this (compact JSON bytes) are not cached, so
/// 10 000 entries stay within a few MiB even with generous tokens.
pub const MAX_CACHED_CLAIMS_BYTES: usize = 4096;

/// An HTTP call for the shell to dispatch (every shell's `HttpCall`).
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundCall {
    pub cluster: String,
    /// Including `:method`, `:path`, `:authority`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for OutboundCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Introspection bodies and headers carry secrets.
        f.debug_struct("OutboundCall")
            .field("cluster", &self.cluster)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

/// What an outstanding call is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPurpose {
    Jwks { issuer: usize },
    Introspection { issuer: usize },
}

impl CallPurpose {
    /// For logs.
    pub fn what(&self) -> &'static str {
        match self {
            CallPurpose::Jwks { .. } => "JWKS",
            CallPurpose::Introspection { .. } => "introspection",
        }
    }
}

/// One step of verifying a token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenStep {
    Verified {
        claims: Rc<Value>,
        cache_hit: bool,
    },
    /// Dispatch `call`, then report with [`TokenService::call_done`].
    Call {
        call: OutboundCall,
        purpose: CallPurpose,
    },
    Denied(Box<Decision>),
}

impl TokenStep {
    /// The token is refused with `d`.
    pub fn denied(d: Decision) -> TokenStep {
        TokenStep::Denied(Box::new(d))
    }

    /// After an introspection call: whether the call failed (an answer
    /// that says nothing about the token: an error status, garbage, a
    /// timeout). An inactive token is an answer.
    pub fn introspection_failed(&self) -> bool {
        matches!(self, TokenStep::Denied(d) if d.reason == Reason::IntrospectionUnavailable)
    }
}

/// Whether a JWKS fetch that answered `status` succeeded: a `200` with a
/// key set the verifier can use (`usable`); anything else is a failed fetch,
/// neither shared with the other workers nor holding the lease.
pub fn jwks_fetch_succeeded(status: Option<u16>, usable: impl FnOnce() -> bool) -> bool {
    status == Some(200) && usable()
}

/// Claims always kept (besides the configured scope and patient claims):
/// what the policy engine and the audit record read.
pub const KEPT_CLAIMS: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "azp",
    "fhirUser",
    "scope",
    // The token's binding (RFC 7800): checked on every request.
    "cnf",
];

/// Cached value: the kept claims as compact JSON (small; re-parsed on a hit,
/// far cheaper than a signature check). `None`: too large to cache. An
/// `Arc` so that one cache can serve the threads of a process (the native
/// module); in the wasm build (no threads) it costs what an `Rc` does.
pub type Cached = Option<Arc<str>>;

/// Entries of the hot tier (see [`TokenService`]); when full it is cleared.
pub const HOT_ENTRIES: usize = 256;

/// A hot-tier entry: the token text, the main cache key, the cached JSON it
/// was parsed from (identity-compared with the main cache's value on every
/// use) and the parsed claims.
struct Hot {
    token: Box<str>,
    key: CacheKey,
    json: Arc<str>,
    claims: Rc<Value>,
}

/// Whether two token texts are the same, compared 8 bytes at a time: the
/// wasm build's `memcmp` (wasi-libc) goes byte by byte over the ~1 KB token.
fn same_text(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let (wa, wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest = wa.remainder() == wb.remainder();
    rest && wa.zip(wb).all(|(x, y)| word(x) == word(y))
}

/// An 8-byte chunk as one word.
fn word(chunk: &[u8]) -> u64 {
    u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]))
}

/// Token handling for one worker VM (or worker thread), over a token store
/// `S`: its own [`TokenCache`] (the default), or one shared by the threads
/// of a process ([`super::SharedTokenCache`]).
///
/// The main cache keeps compact JSON per SHA-256 of the token (small, so
/// 10 000 entries fit in a few MiB). A small hot tier remembers the cache
/// key and the parsed claims of recently used tokens, under a keyed hash of
/// the token text's length and tail (not its ~1 KB) and compared with the
/// whole text on every use (a token that only shares the hash misses): a
/// repeat skips hashing the token with SHA-256 and re-parsing the JSON. The
/// main cache stays authoritative: a hot entry is only used while the main
/// cache still holds the very same value (expiry, key-set generation and
/// time checks run as before).
pub struct TokenService<S = TokenCache<Cached>> {
    verifier: TokenVerifier,
    cache: S,
    hot: std::collections::HashMap<u64, Hot>,
    /// The key of the hot tier's hash (see [`Self::hot_slot`]).
    hot_seed: std::collections::hash_map::RandomState,
    /// The configured claims kept besides [`KEPT_CLAIMS`]: scope,
    /// patient, and those `policy.labels` reads.
    kept: Vec<String>,
}

impl TokenService {
    /// `claims`: which claims hold the scopes and the patient (kept in the
    /// cache besides [`KEPT_CLAIMS`]). The service's own cache, bounded by
    /// `token.cache_max_entries`.
    pub fn new(trust: TrustConfig<'_>, claims: &ClaimsConfig) -> Result<TokenService, ConfigError> {
        let cache = TokenCache::new(trust.settings.cache_max_entries);
        TokenService::with_store(trust, claims, cache)
    }
}

impl<S: TokenStore<Cached>> TokenService<S> {
    /// [`TokenService::new`] over the token store `cache` (its bound is the
    /// caller's to set from `token.cache_max_entries`).
    pub fn with_store(
        trust: TrustConfig<'_>,
        claims: &ClaimsConfig,
        cache: S,
    ) -> Result<TokenService<S>, ConfigError> {
        Ok(TokenService {
            verifier: TokenVerifier::new(trust)?,
            cache,
            hot: std::collections::HashMap::new(),
            hot_seed: std::collections::hash_map::RandomState::new(),
            kept: [&claims.scope, &claims.patient]
                .into_iter()
                .chain(&claims.also_kept)
                .cloned()
                .collect(),
        })
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }

    pub fn verifier_mut(&mut self) -> &mut TokenVerifier {
        &mut self.verifier
    }

    /// Drop expired cache entries (call from the tick).
    pub fn purge_cache(&mut self, now: u64) {
        self.cache.purge_expired(now);
    }

    /// RFC 6750 extraction with the configured settings.
    pub fn extract<'r>(&self, req: &'r RequestParts<'_>) -> Result<Option<Cow<'r, str>>, Decision> {
        extract_bearer(req, self.verifier.settings()).map(|b| b.map(|b| b.token))
    }

    /// Verify `token` at `now`. May ask for a JWKS fetch (unknown `kid` or
    /// keys not loaded, when a fetch is allowed now) or an introspection call.
    pub fn verify(&mut self, token: &str, now: u64, sig: &dyn SignatureVerifier) -> TokenStep {
        self.step(token, now, sig, true)
    }

    /// The answer to a [`TokenStep::Call`]: `status` `None` = the call failed.
    /// Continues verifying the same token (a JWKS refetch is tried once).
    pub fn call_done(
        &mut self,
        purpose: CallPurpose,
        token: &str,
        status: Option<u16>,
        body: &[u8],
        now: u64,
        sig: &dyn SignatureVerifier,
    ) -> TokenStep {
        let response = match status {
            Some(s) => Ok((s, body)),
            None => Err("the call failed or timed out"),
        };
        match purpose {
            CallPurpose::Jwks { issuer } => {
                // A failed refetch keeps the last good keys; the retry below
                // gives the definitive answer (no second fetch).
                let _ = self.verifier.on_jwks_response(issuer, response, now);
                self.step(token, now, sig, false)
            }
            CallPurpose::Introspection { issuer } => {
                self.introspected(issuer, token, response, now)
            }
        }
    }

    /// The introspection answer for `token`: its claims, cached per
    /// `max_cache_seconds`, or why it is refused.
    fn introspected(
        &mut self,
        issuer: usize,
        token: &str,
        response: Result<(u16, &[u8]), &str>,
        now: u64,
    ) -> TokenStep {
        let request = self
            .verifier
            .issuer_config(issuer)
            .and_then(|c| c.introspection.as_ref())
            .and_then(|c| introspection::build_request(issuer, c, token).ok());
        let Some(request) = request else {
            return TokenStep::Denied(Box::new(Decision::deny(
                Reason::IntrospectionUnavailable,
                "the introspection answer does not match a configured introspection issuer",
            )));
        };
        let mut fresh = None;
        let kept = &self.kept;
        let r = self.verifier.complete_introspection(
            &mut self.cache,
            &request,
            token,
            response,
            now,
            // Introspection is the rare path: the claims are lent, so copied.
            |v: &VerifiedToken| keep(project(v.claims.clone(), kept), &mut fresh),
        );
        match (r, fresh) {
            (Ok(_), Some(claims)) => TokenStep::Verified {
                claims,
                cache_hit: false,
            },
            (Ok(_), None) => TokenStep::Denied(Box::new(Decision::deny(
                Reason::IntrospectionUnavailable,
                "the introspection answer could not be used",
            ))),
            (Err(e), _) => TokenStep::Denied(Box::new(e.into_decision())),
        }
    }

    fn step(
        &mut self,
        token: &str,
        now: u64,
        sig: &dyn SignatureVerifier,
        may_fetch: bool,
    ) -> TokenStep {
        if let Some(step) = self.hot_step(token, now, may_fetch) {
            return step;
        }
        // SHA-256 of the token once: the cache lookup/insert and the hot tier.
        let key = CacheKey::of(token);
        // At most two rounds: a hit on an uncacheable (`None`) entry is
        // removed and verified afresh.
        for _ in 0..2 {
            let mut fresh: Option<Rc<Value>> = None;
            let kept = &self.kept;
            let result = self.verifier.authenticate_keyed(
                &mut self.cache,
                &key,
                token,
                now,
                sig,
                |v: &mut VerifiedToken| {
                    // The claims are not read after this: projected in place.
                    let claims = std::mem::take(&mut v.claims);
                    keep(project(claims, kept), &mut fresh)
                },
            );
            match result {
                Ok(Authenticated::Verified { value, cached }) => {
                    if let Some(step) = self.verified(token, &key, fresh, value, cached) {
                        return step;
                    }
                }
                Ok(Authenticated::Introspect(req)) => {
                    return TokenStep::Call {
                        purpose: CallPurpose::Introspection {
                            issuer: req.issuer_index,
                        },
                        call: OutboundCall {
                            cluster: req.cluster,
                            headers: req.headers,
                            body: Some(req.body),
                            timeout_ms: req.timeout_ms,
                        },
                    }
                }
                Err(e) => return self.denied_or_fetch(e, now, may_fetch),
            }
        }
        TokenStep::Denied(Box::new(Decision::deny(
            Reason::InvalidToken,
            "the token could not be verified; retry the request",
        )))
    }

    /// A repeat answered by the hot tier, while the main cache still holds
    /// the same entry (`None`: verify through the main path).
    fn hot_step(&mut self, token: &str, now: u64, may_fetch: bool) -> Option<TokenStep> {
        if self.hot.is_empty() {
            // No cache (or nothing in it yet): no hash to compute.
            return None;
        }
        let slot = self.hot_slot(token);
        let h = self.hot.get(&slot).filter(|h| same_text(&h.token, token))?;
        match self.verifier.cached(&mut self.cache, &h.key, now) {
            Some(Ok(Some(json))) if Arc::ptr_eq(&json, &h.json) => Some(TokenStep::Verified {
                claims: h.claims.clone(),
                cache_hit: true,
            }),
            Some(Err(e)) => Some(self.denied_or_fetch(e, now, may_fetch)),
            _ => {
                self.hot.remove(&slot);
                None
            }
        }
    }

    /// The hot tier's slot of a token: its length and last 32 bytes (the
    /// signature's tail), hashed with the VM's random key.
    fn hot_slot(&self, token: &str) -> u64 {
        let bytes = token.as_bytes();
        let tail = bytes.get(bytes.len().saturating_sub(32)..).unwrap_or(bytes);
        let mut h = self.hot_seed.build_hasher();
        h.write_usize(bytes.len());
        h.write(tail);
        h.finish()
    }

    /// The claims of a verified token: the fresh projection, or the cached
    /// JSON parsed (`None`: the cached entry is unusable and was removed).
    fn verified(
        &mut self,
        token: &str,
        key: &CacheKey,
        fresh: Option<Rc<Value>>,
        value: Cached,
        cached: bool,
    ) -> Option<TokenStep> {
        if let Some(claims) = fresh {
            if let Some(json) = value {
                self.remember(token, key, json, &claims);
            }
            return Some(TokenStep::Verified {
                claims,
                cache_hit: false,
            });
        }
        let parsed = value.and_then(|s| {
            serde_json::from_str::<Value>(&s)
                .ok()
                .map(|c| (s, Rc::new(c)))
        });
        match parsed {
            Some((json, claims)) => {
                self.remember(token, key, json, &claims);
                Some(TokenStep::Verified {
                    claims,
                    cache_hit: cached,
                })
            }
            None => {
                self.cache.remove(key);
                None
            }
        }
    }

    /// Put a verified, cached token into the hot tier.
    fn remember(&mut self, token: &str, key: &CacheKey, json: Arc<str>, claims: &Rc<Value>) {
        if self.cache.capacity() == 0 {
            return;
        }
        if self.hot.len() >= HOT_ENTRIES {
            self.hot.clear();
        }
        self.hot.insert(
            self.hot_slot(token),
            Hot {
                token: token.into(),
                key: *key,
                json,
                claims: claims.clone(),
            },
        );
    }

    fn denied_or_fetch(&mut self, e: TokenError, now: u64, may_fetch: bool) -> TokenStep {
        if may_fetch {
            if let Some(issuer) = e.refetch_keys {
                if let Some(fetch) = self
                    .verifier
                    .fetches_due(now)
                    .into_iter()
                    .find(|f| f.issuer_index == issuer)
                {
                    self.verifier.begin_fetch(issuer, now);
                    return TokenStep::Call {
                        call: jwks_call(&fetch),
                        purpose: CallPurpose::Jwks { issuer },
                    };
                }
            }
        }
        TokenStep::Denied(Box::new(e.into_decision()))
    }

    /// JWKS fetches due now (start-up, refresh, retry); each returned fetch
    /// is marked in flight.
    pub fn due_jwks_fetches(&mut self, now: u64) -> Vec<(usize, OutboundCall)> {
        let due = self.verifier.fetches_due(now);
        due.iter()
            .map(|f| {
                self.verifier.begin_fetch(f.issuer_index, now);
                (f.issuer_index, jwks_call(f))
            })
            .collect()
    }

    /// The JWKS fetch of `issuer` made on behalf of a request before its
    /// first key set arrived (`None` unless its keys are fetched).
    pub fn startup_jwks_call(&self, issuer: usize) -> Option<OutboundCall> {
        self.verifier
            .key_fetch(issuer, FetchReason::Startup)
            .map(|f| jwks_call(&f))
    }

    /// JWKS bytes for `issuer` fetched at `fetched_at` (our own fetch, or
    /// another VM's via shared data).
    pub fn jwks_loaded(
        &mut self,
        issuer: usize,
        bytes: &[u8],
        fetched_at: u64,
    ) -> Result<(), String> {
        self.verifier
            .on_jwks_response(issuer, Ok((200, bytes)), fetched_at)
            .map(|_| ())
    }

    /// A JWKS fetch failed (non-200 or call failure).
    pub fn jwks_failed(&mut self, issuer: usize, now: u64) {
        let _ = self
            .verifier
            .on_jwks_response(issuer, Err("the call failed"), now);
    }

    /// Issuers whose keys are fetched (`jwks_uri`).
    pub fn fetched_issuers(&self) -> Vec<usize> {
        (0..self.verifier.issuer_count())
            .filter(|i| self.verifier.key_store(*i).is_some_and(|s| s.is_remote()))
            .collect()
    }
}

/// What the cache keeps of a fresh verification (the projected claims as
/// JSON); the projection itself goes to `fresh`.
fn keep(p: Value, fresh: &mut Option<Rc<Value>>) -> Cached {
    let c = to_cached(&p);
    *fresh = Some(Rc::new(p));
    c
}

fn is_kept(k: &str, kept: &[String]) -> bool {
    KEPT_CLAIMS.contains(&k) || kept.iter().any(|c| c == k)
}

/// The claims handed to the engine and cached: the [`KEPT_CLAIMS`] plus the
/// configured claims (`kept`), kept where they are (same order).
fn project(claims: Value, kept: &[String]) -> Value {
    match claims {
        Value::Object(mut obj) => {
            obj.retain(|k, _| is_kept(k, kept));
            Value::Object(obj)
        }
        _ => Value::Object(serde_json::Map::new()),
    }
}

fn jwks_call(f: &KeyFetch) -> OutboundCall {
    OutboundCall {
        cluster: f.cluster.clone(),
        headers: vec![
            (":method".into(), "GET".into()),
            (":path".into(), f.path.clone()),
            (":authority".into(), f.authority.clone()),
            (
                "accept".into(),
                "application/json, application/jwk-set+json".into(),
            ),
            // Without it any content coding is acceptable (RFC 9110 §12.5.3),
            // and the key set could not be read.
            ("accept-encoding".into(), "identity".into()),
        ],
        body: None,
        timeout_ms: f.timeout_ms,
    }
}

fn to_cached(claims: &Value) -> Cached {
    let json = serde_json::to_string(claims).ok()?;
    (json.len() <= MAX_CACHED_CLAIMS_BYTES).then(|| Arc::from(json.as_str()))
}

#[cfg(test)]
mod tests {
    use super::same_text;

    #[test]
    fn same_text_is_equality() {
        let base: String = (0..40u8).map(|i| char::from(b'a' + i % 26)).collect();
        for len in 0..=base.len() {
            let a = base.get(..len).unwrap();
            assert!(same_text(a, a));
            assert!(!same_text(a, base.get(..len.saturating_sub(1)).unwrap()) || len == 0);
            for at in 0..len {
                // One byte changed, in a word or in the remainder.
                let mut b = a.as_bytes().to_vec();
                b[at] = b'Z';
                let b = String::from_utf8(b).unwrap();
                assert!(!same_text(a, &b), "{len} {at}");
            }
        }
    }
}
