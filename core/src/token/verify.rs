//! JWT validation and the per-configuration verifier state (issuers, key
//! stores). One `TokenVerifier` per worker VM; pure apart from `&mut self`.

use super::alg::JwsAlgorithm;
use super::bearer::BearerToken;
use super::cache::{CacheEntry, CacheKey, TokenStore};
use super::error::TokenError;
use super::introspection::{self, IntrospectionRequest};
use super::jose::{self, JoseHeader, TimeClaims};
use super::keys::{FetchReason, JwksUpdate, KeySet, KeyStore};
use super::settings::{validate_issuers, IssuerConfig, TokenSettings, TrustConfig};
use super::signature::SignatureVerifier;
use super::verified::{TokenSource, VerifiedToken};
use crate::config_error::ConfigError;
use crate::decision::Reason;
use serde_json::{Map, Value};

/// Keys tried for a token without `kid` (issuers with several keys of one
/// type should publish `kid`s).
pub const MAX_KIDLESS_CANDIDATES: usize = 4;

/// A JWKS fetch the shell should dispatch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFetch {
    pub issuer_index: usize,
    pub reason: FetchReason,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub timeout_ms: u64,
}

/// Outcome of [`TokenVerifier::authenticate`].
#[derive(Debug, Clone, PartialEq)]
pub enum Authenticated<V> {
    /// Valid; `cached` = answered from the cache (no signature check).
    Verified { value: V, cached: bool },
    /// Opaque token: dispatch this call, then
    /// [`TokenVerifier::complete_introspection`].
    Introspect(IntrospectionRequest),
}

#[derive(Debug, Clone)]
struct IssuerState {
    config: IssuerConfig,
    audiences: Vec<String>,
    algorithms: Vec<JwsAlgorithm>,
    store: KeyStore,
}

/// Verifies tokens for one configuration.
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    issuers: Vec<IssuerState>,
    settings: TokenSettings,
    introspection_issuer: Option<usize>,
}

impl TokenVerifier {
    pub fn new(trust: TrustConfig<'_>) -> Result<TokenVerifier, ConfigError> {
        let TrustConfig {
            issuers,
            settings,
            base_url,
        } = trust;
        validate_issuers(issuers, base_url)?;
        settings.validate("token")?;
        let mut states = Vec::with_capacity(issuers.len());
        let mut introspection_issuer = None;
        for (i, cfg) in issuers.iter().enumerate() {
            let store = if let Some(jwks) = &cfg.jwks {
                KeyStore::inline(
                    KeySet::from_value(jwks)
                        .map_err(|e| ConfigError::new(format!("issuers[{i}].jwks"), e))?,
                )
            } else if cfg.jwks_uri.is_some() {
                KeyStore::remote(cfg.jwks_refresh_seconds, cfg.jwks_min_refetch_seconds)
            } else {
                KeyStore::empty()
            };
            if cfg.introspection.is_some() {
                introspection_issuer = Some(i);
            }
            states.push(IssuerState {
                config: cfg.clone(),
                audiences: cfg.effective_audiences(base_url),
                algorithms: cfg.effective_algorithms(),
                store,
            });
        }
        Ok(TokenVerifier {
            issuers: states,
            settings: settings.clone(),
            introspection_issuer,
        })
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }

    pub fn issuer_count(&self) -> usize {
        self.issuers.len()
    }

    pub fn issuer_config(&self, i: usize) -> Option<&IssuerConfig> {
        self.issuers.get(i).map(|s| &s.config)
    }

    pub fn key_store(&self, i: usize) -> Option<&KeyStore> {
        self.issuers.get(i).map(|s| &s.store)
    }

    pub fn key_store_mut(&mut self, i: usize) -> Option<&mut KeyStore> {
        self.issuers.get_mut(i).map(|s| &mut s.store)
    }

    /// Key-set generation of issuer `i` (0: no keys yet).
    pub fn generation(&self, i: usize) -> Option<u64> {
        self.issuers.get(i).map(|s| s.store.generation())
    }

    /// The key-set id of issuer `i` (the cache compares it).
    pub fn key_set_id(&self, i: usize) -> Option<u64> {
        self.issuers.get(i).map(|s| s.store.key_set_id())
    }

    /// JWKS fetches to dispatch now. Call [`TokenVerifier::begin_fetch`] for
    /// each dispatched one.
    pub fn fetches_due(&self, now: u64) -> Vec<KeyFetch> {
        self.issuers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| self.key_fetch(i, s.store.fetch_due(now)?))
            .collect()
    }

    /// The JWKS fetch of issuer `i` (`None` unless its keys are fetched).
    pub fn key_fetch(&self, i: usize, reason: FetchReason) -> Option<KeyFetch> {
        let s = self.issuers.get(i)?;
        let (authority, path) = s.config.jwks_authority_and_path()?;
        Some(KeyFetch {
            issuer_index: i,
            reason,
            cluster: s.config.jwks_cluster.clone()?,
            authority,
            path,
            timeout_ms: s.config.jwks_timeout_ms,
        })
    }

    pub fn begin_fetch(&mut self, i: usize, now: u64) {
        if let Some(s) = self.issuers.get_mut(i) {
            s.store.begin_fetch(now);
        }
    }

    /// Hand back a fetch result: `Ok((status, body))` for an HTTP answer,
    /// `Err(message)` for a failed call. Non-200 is a failure; the last good
    /// key set is kept on any failure.
    pub fn on_jwks_response(
        &mut self,
        i: usize,
        response: Result<(u16, &[u8]), &str>,
        now: u64,
    ) -> Result<JwksUpdate, String> {
        let s = self
            .issuers
            .get_mut(i)
            .ok_or_else(|| format!("no issuer {i}"))?;
        let issuer = s.config.issuer.clone();
        let result = match response {
            Ok((200, body)) => s.store.on_fetch_success(body, now),
            Ok((status, _)) => {
                let msg = format!("JWKS endpoint answered HTTP {status}");
                s.store.on_fetch_failure(&msg, now);
                Err(msg)
            }
            Err(e) => {
                let msg = format!("JWKS fetch failed: {e}");
                s.store.on_fetch_failure(&msg, now);
                Err(msg)
            }
        };
        result.map_err(|e| format!("issuer {issuer}: {e}"))
    }

    /// Full path for a request: cache, else JWT verification, else an
    /// introspection call. `to_value` turns a fresh verification into the
    /// cached value (keep it small).
    pub fn authenticate<V: Clone>(
        &mut self,
        cache: &mut impl TokenStore<V>,
        bearer: &BearerToken,
        now: u64,
        verifier: &dyn SignatureVerifier,
        to_value: impl FnOnce(&VerifiedToken) -> V,
    ) -> Result<Authenticated<V>, TokenError> {
        let key = CacheKey::of(&bearer.token);
        self.authenticate_keyed(cache, &key, &bearer.token, now, verifier, |v| to_value(v))
    }

    /// [`Self::authenticate`] with the token's cache key already computed
    /// (SHA-256 of the whole token: the caller keeps it for its own use).
    /// `to_value` may take what it needs out of the token's `claims`: they
    /// are not read after it.
    pub fn authenticate_keyed<V: Clone>(
        &mut self,
        cache: &mut impl TokenStore<V>,
        key: &CacheKey,
        token: &str,
        now: u64,
        verifier: &dyn SignatureVerifier,
        to_value: impl FnOnce(&mut VerifiedToken) -> V,
    ) -> Result<Authenticated<V>, TokenError> {
        let issuers = &self.issuers;
        if let Some(hit) = cache.get(key, now, |i| issuers.get(i).map(|s| s.store.key_set_id())) {
            hit.times.check(now, self.settings.leeway_seconds)?;
            return Ok(Authenticated::Verified {
                value: hit.value,
                cached: true,
            });
        }
        if let Some(i) = self.introspection_target(token) {
            if self.verifies_then_introspects(i, token) {
                // Keys and introspection on one issuer: the JWT must verify
                // here first; introspection then says whether it is revoked
                // (its answer cached per introspection.max_cache_seconds).
                self.verify_jwt(token, now, verifier)?;
            }
            let cfg = self
                .issuers
                .get(i)
                .and_then(|s| s.config.introspection.as_ref())
                .ok_or_else(|| TokenError::invalid("introspection is not configured"))?;
            return Ok(Authenticated::Introspect(introspection::build_request(
                i, cfg, token,
            )?));
        }
        let mut verified = self.verify_jwt(token, now, verifier)?;
        let key_set = self.key_set_id(verified.issuer_index).unwrap_or(0);
        // `exp` is required for JWTs; time checks rerun on every hit anyway.
        let expires_at = verified
            .times
            .exp
            .unwrap_or(now)
            .saturating_add(self.settings.leeway_seconds);
        let value = to_value(&mut verified);
        let entry = CacheEntry {
            issuer_index: verified.issuer_index,
            key_set,
            expires_at,
            times: verified.times,
            value: value.clone(),
        };
        cache.insert(*key, entry);
        Ok(Authenticated::Verified {
            value,
            cached: false,
        })
    }

    /// The cache-hit half of [`Self::authenticate`] for an already computed
    /// key: `None` on a miss (expired, another key set, evicted),
    /// else the value after the same time checks.
    pub fn cached<V: Clone>(
        &self,
        cache: &mut impl TokenStore<V>,
        key: &CacheKey,
        now: u64,
    ) -> Option<Result<V, TokenError>> {
        let issuers = &self.issuers;
        let hit = cache.get(key, now, |i| issuers.get(i).map(|s| s.store.key_set_id()))?;
        Some(
            hit.times
                .check(now, self.settings.leeway_seconds)
                .map(|()| hit.value),
        )
    }

    /// Whether issuer `i` has keys as well as introspection and `token` is a
    /// JWT: it is verified locally before it is introspected.
    fn verifies_then_introspects(&self, i: usize, token: &str) -> bool {
        self.issuers
            .get(i)
            .is_some_and(|s| s.config.jwks.is_some() || s.config.jwks_uri.is_some())
            && jose::split_compact(token).is_some()
    }

    /// The introspection issuer for this token, if it must be introspected:
    /// non-JWTs when an introspection issuer exists, and JWTs whose `iss` is
    /// that issuer.
    pub fn introspection_target(&self, token: &str) -> Option<usize> {
        let i = self.introspection_issuer?;
        if jose::split_compact(token).is_none() {
            return Some(i);
        }
        let iss = jose::peek_issuer(token)?;
        let s = self.issuers.get(i)?;
        (s.config.issuer == iss).then_some(i)
    }

    /// Finish an introspection call (`Ok((status, body))` or `Err(message)`
    /// for a failed/timed-out call) and cache the answer.
    pub fn complete_introspection<V: Clone>(
        &self,
        cache: &mut impl TokenStore<V>,
        request: &IntrospectionRequest,
        token: &str,
        response: Result<(u16, &[u8]), &str>,
        now: u64,
        to_value: impl FnOnce(&VerifiedToken) -> V,
    ) -> Result<V, TokenError> {
        let i = request.issuer_index;
        let s = self
            .issuers
            .get(i)
            .ok_or_else(|| TokenError::invalid("introspection issuer not configured"))?;
        let cfg = s
            .config
            .introspection
            .as_ref()
            .ok_or_else(|| TokenError::invalid("introspection issuer not configured"))?;
        let (status, body) =
            response.map_err(|e| introspection::unavailable(&s.config.issuer, e))?;
        let from = introspection::IntrospectionIssuer {
            index: i,
            issuer: &s.config.issuer,
            config: cfg,
            audiences: &s.audiences,
        };
        let (verified, cache_until) =
            introspection::parse_response(from, status, body, now, self.settings.leeway_seconds)?;
        let value = to_value(&verified);
        if cache_until > now {
            let entry = CacheEntry {
                issuer_index: i,
                key_set: s.store.key_set_id(),
                expires_at: cache_until,
                times: verified.times,
                value: value.clone(),
            };
            cache.insert(CacheKey::of(token), entry);
        }
        Ok(value)
    }

    /// Verify a compact JWS: structure, header rules, issuer, algorithm
    /// pinning, key selection, signature, then claims.
    pub fn verify_jwt(
        &mut self,
        token: &str,
        now: u64,
        verifier: &dyn SignatureVerifier,
    ) -> Result<VerifiedToken, TokenError> {
        let jws = Jws::parse(token, self.settings.max_bytes)?;
        let iss = match jws.claims.get("iss") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(TokenError::invalid(
                    "the token claim `iss` must be a string",
                ))
            }
            None => return Err(TokenError::invalid("the token has no `iss` claim")),
        };
        let (index, state) = self
            .issuers
            .iter_mut()
            .enumerate()
            .find(|(_, s)| s.config.issuer == iss)
            .ok_or_else(|| {
                TokenError::invalid(
                    "the token issuer (`iss`) is not a trusted issuer of this server",
                )
            })?;
        state.check_header(index, &jws)?;
        let key_id = state.check_signature(index, &jws, now, verifier)?;
        let times = state.check_claims(index, &jws.claims, now, self.settings.leeway_seconds)?;
        let jti = jose::optional_string(&jws.claims, "jti", "payload")?;
        let subject = jose::optional_string(&jws.claims, "sub", "payload")?;
        Ok(VerifiedToken {
            issuer_index: index,
            issuer: state.config.issuer.clone(),
            claims: Value::Object(jws.claims),
            times,
            jti,
            subject,
            algorithm: Some(jws.alg),
            key_id,
            source: TokenSource::Jwt,
        })
    }
}

/// A compact JWS taken apart (nothing verified yet but its structure).
struct Jws<'t> {
    header: JoseHeader,
    alg: JwsAlgorithm,
    claims: Map<String, Value>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'t [u8],
    signature: Vec<u8>,
}

/// Why a token that is not a JWT is refused when no issuer introspects
/// tokens (the filter and `decide` alike).
pub(crate) const NOT_A_JWT: &str =
    "the token is not a JWT (three base64url parts separated by dots) and no introspection issuer is configured";

impl<'t> Jws<'t> {
    fn parse(token: &'t str, max_bytes: usize) -> Result<Jws<'t>, TokenError> {
        if token.len() > max_bytes {
            return Err(TokenError::invalid(format!(
                "the bearer token is larger than token.max_bytes ({max_bytes} bytes)"
            )));
        }
        let (h64, p64, s64) =
            jose::split_compact(token).ok_or_else(|| TokenError::invalid(NOT_A_JWT))?;
        let header = jose::parse_header(h64)?;
        let alg = check_alg_name(&header.alg)?;
        let claims = jose::decode_json_segment(p64, "payload")?;
        let signature = jose::decode_b64url(s64, "signature")?;
        let signing_input = token
            .get(..h64.len() + 1 + p64.len())
            .ok_or_else(|| TokenError::invalid("the token is malformed"))?
            .as_bytes();
        Ok(Jws {
            header,
            alg,
            claims,
            signing_input,
            signature,
        })
    }
}

impl IssuerState {
    /// The algorithm is one the issuer allows; `typ` when it requires one.
    fn check_header(&self, index: usize, jws: &Jws<'_>) -> Result<(), TokenError> {
        let issuer = &self.config.issuer;
        if !self.algorithms.contains(&jws.alg) {
            return Err(TokenError::invalid(format!(
                "algorithm {} is not allowed for issuer {issuer} (issuers[{index}].algorithms)",
                jws.alg.name()
            )));
        }
        if self.config.require_typ_at_jwt {
            let ok = jws.header.typ.as_deref().is_some_and(|t| {
                t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt")
            });
            if !ok {
                return Err(TokenError::invalid(format!(
                    "issuer {issuer} requires the header typ `at+jwt` (RFC 9068); this token is not an access token JWT"
                )));
            }
        }
        Ok(())
    }

    /// A key of the issuer verifies the signature: its `kid`. Keys not
    /// loaded yet, or an unknown `kid`, may ask for a refetch.
    fn check_signature(
        &mut self,
        index: usize,
        jws: &Jws<'_>,
        now: u64,
        verifier: &dyn SignatureVerifier,
    ) -> Result<Option<String>, TokenError> {
        let issuer = &self.config.issuer;
        let alg = jws.alg;
        let Some(keys) = self.store.keys() else {
            let mut e = TokenError::new(
                Reason::KeysUnavailable,
                match self.store.last_error() {
                    Some(err) => format!(
                        "no signing keys are available yet for issuer {issuer} (last fetch: {err})"
                    ),
                    None => format!("no signing keys are available yet for issuer {issuer}"),
                },
            );
            if self.store.fetch_pending(now) {
                e.refetch_keys = Some(index);
            }
            return Err(e);
        };
        let kid = jws.header.kid.as_deref();
        // Without a `kid` at most MAX_KIDLESS_CANDIDATES keys are tried, so a
        // forged kid-less token cannot cost dozens of RSA operations.
        let mut candidates = keys
            .candidates(kid, alg)
            .take(MAX_KIDLESS_CANDIDATES)
            .peekable();
        if candidates.peek().is_none() {
            // Ends the borrow of the key set (the refetch below needs it).
            drop(candidates);
            let known_kid = kid.is_some_and(|k| keys.has_kid(k));
            let mut e = TokenError::invalid(match (kid, known_kid) {
                (Some(_), true) => format!(
                    "the key named by the token's kid cannot verify {} for issuer {issuer}",
                    alg.name()
                ),
                (Some(_), false) => {
                    format!("no key with the token's kid is known for issuer {issuer}")
                }
                (None, _) => format!(
                    "the token has no kid and issuer {issuer} has no key for {}",
                    alg.name()
                ),
            });
            if !known_kid && self.store.request_unknown_kid_refetch(now) {
                e.refetch_keys = Some(index);
            }
            return Err(e);
        }
        for key in candidates {
            match verifier.verify(alg, key, jws.signing_input, &jws.signature) {
                Ok(true) => return Ok(key.kid.clone()),
                Ok(false) => {}
                Err(e) => {
                    return Err(TokenError::invalid(format!(
                        "the token signature could not be checked ({e})"
                    )))
                }
            }
        }
        Err(TokenError::invalid(format!(
            "the token signature is invalid for issuer {issuer}"
        )))
    }

    /// `exp` (required), `nbf`/`iat`, the issuer's lifetime limit, `aud`.
    fn check_claims(
        &self,
        index: usize,
        claims: &Map<String, Value>,
        now: u64,
        leeway: u64,
    ) -> Result<TimeClaims, TokenError> {
        let issuer = &self.config.issuer;
        let times = TimeClaims::from_claims(claims)?;
        if times.exp.is_none() {
            return Err(TokenError::invalid(
                "the token has no `exp` claim; access tokens must expire",
            ));
        }
        times.check(now, leeway)?;
        if let Some(max) = self.config.max_lifetime_seconds {
            let (Some(exp), Some(iat)) = (times.exp, times.iat) else {
                return Err(TokenError::invalid(format!(
                    "issuer {issuer} limits token lifetime (issuers[{index}].max_lifetime_seconds) but the token has no `iat`"
                )));
            };
            if exp.saturating_sub(iat) > max {
                return Err(TokenError::invalid(format!(
                    "the token lifetime (exp - iat) exceeds {max} seconds (issuers[{index}].max_lifetime_seconds)"
                )));
            }
        }
        let aud = jose::audiences(claims)?;
        if aud.is_empty() {
            return Err(TokenError::invalid(format!(
                "the token has no `aud` claim; expected one of: {}",
                self.audiences.join(", ")
            )));
        }
        if !aud
            .iter()
            .any(|a| self.audiences.iter().any(|ours| ours == a))
        {
            return Err(jose::audience_mismatch(&aud, &self.audiences));
        }
        Ok(times)
    }
}

/// Map the header `alg` to a supported algorithm; unsigned and symmetric
/// algorithms get their own messages. Unknown names are not echoed.
fn check_alg_name(name: &str) -> Result<JwsAlgorithm, TokenError> {
    if let Some(a) = JwsAlgorithm::from_name(name) {
        return Ok(a);
    }
    if name.trim().eq_ignore_ascii_case("none") || name.is_empty() {
        return Err(TokenError::invalid(
            "unsigned tokens (alg none) are never accepted",
        ));
    }
    let upper = name.to_ascii_uppercase();
    if matches!(upper.as_str(), "HS256" | "HS384" | "HS512") {
        return Err(TokenError::invalid(format!(
            "symmetric algorithm {upper} is not accepted; tokens must be signed with the issuer's asymmetric key"
        )));
    }
    Err(TokenError::invalid(
        "the token algorithm (`alg`) is not supported; supported: RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
    ))
}
