//! The whole decision for one request: classify, then authorize. Pure.

use crate::bulk;
use crate::config::Config;
use crate::decision::{Decision, Narrowing, Reason};
use crate::fhir::{classify, InteractionKind, RequestParts};
use crate::policy::{authorize, AuthContext};
use crate::rewrite::rewrite;
use crate::token::binding::{
    check_binding, BindingRequest, ConnectionFacts, MemoryReplayStore, ReplayStore,
};
use crate::token::{extract_bearer, offline, RustCryptoVerifier};
use serde_json::Value;

/// What the policy derives from a token's verified claims, once per token:
/// the parsed scopes and patient context, or the denial for claims it cannot
/// use.
pub type TokenContext = Result<AuthContext, Decision>;

/// The [`TokenContext`] of verified claims.
pub fn token_context(config: &Config, claims: &Value) -> TokenContext {
    let mut ctx = AuthContext::from_claims(&config.claims, &config.base, claims)?;
    if let Some(labels) = &config.policy.labels {
        ctx.labels = labels
            .claims_of(claims, &config.claims.scope, &mut ctx.diagnostics)
            .map_err(|m| Decision::deny(Reason::UnsupportedClaims, m))?;
    }
    Ok(ctx)
}

/// Whether this request's decision needs its body (see [`crate::fhir::body_needed`]).
pub fn body_needed(config: &Config, req: &RequestParts) -> bool {
    crate::fhir::body_needed(&config.base, req)
}

/// Decide from verified claims (`None` = no token). Builds the
/// [`AuthContext`] on every call; the filter builds it once per token
/// ([`token_context`]) and uses [`decide_with_token`].
pub fn decide(config: &Config, req: &RequestParts, claims: Option<&Value>) -> Decision {
    match claims.map(|c| token_context(config, c)) {
        None => decide_with_token(config, req, None),
        Some(ctx) => decide_with_token(config, req, Some(&ctx)),
    }
}

/// [`decide`] with the [`TokenContext`] already at
/// hand (`None` = no token).
pub fn decide_with_token(
    config: &Config,
    req: &RequestParts,
    token: Option<&TokenContext>,
) -> Decision {
    match token {
        None => decide_with_context(config, req, None),
        Some(Ok(ctx)) => decide_with_context(config, req, Some(ctx)),
        Some(Err(denial)) => {
            // Unusable claims: public endpoints stay public, everything else is refused.
            let d = decide_with_context(config, req, None);
            if d.reason == Reason::PublicEndpoint || d.reason == Reason::InvalidRequest {
                return d;
            }
            match d.interaction {
                Some(it) => denial.clone().with_interaction(it),
                None => denial.clone(),
            }
        }
    }
}

/// The filter's decision for a request as it arrives, offline (the CLI): the
/// bearer token is taken from the request exactly as the filter takes it
/// (`Authorization` header, or `access_token` with
/// `token.allow_query_parameter`; two credentials → 400, another scheme → no
/// token), verified with the issuers' inline keys at `now` (Unix seconds),
/// its sender constraint checked (a DPoP proof replayed within one run is
/// refused as the filter refuses it), then decided. Issuers whose keys are
/// fetched (`jwks_uri`) or introspected answer what the filter answers when
/// it cannot reach them (`keys_unavailable`, `introspection_unavailable`). A
/// refused token names the interaction when the request classifies.
pub fn decide_offline(config: &Config, req: &RequestParts, now: u64) -> Decision {
    let mut replay = MemoryReplayStore::default();
    decide_offline_with(config, req, ConnectionFacts::default(), now, &mut replay)
}

/// [`decide_offline`] with the request's connection (its client
/// certificate) and a replay cache kept across requests.
pub fn decide_offline_with(
    config: &Config,
    req: &RequestParts,
    connection: ConnectionFacts<'_>,
    now: u64,
    replay: &mut dyn ReplayStore,
) -> Decision {
    match extract_bearer(req, &config.token) {
        Err(d) => d,
        Ok(None) => decide(config, req, None),
        Ok(Some(bearer)) => {
            let claims = offline::verify_claims(config.trust(), &bearer.token, now);
            decide_verified(config, req, claims, connection, now, replay)
        }
    }
}

/// [`decide_offline`] for a token given apart from the request (its sender
/// constraint is still checked: a bound token needs its proof in the request).
pub fn decide_with_raw_token(
    config: &Config,
    req: &RequestParts,
    token: &str,
    now: u64,
) -> Decision {
    let claims = offline::verify_claims(config.trust(), token, now);
    let mut replay = MemoryReplayStore::default();
    decide_verified(
        config,
        req,
        claims,
        ConnectionFacts::default(),
        now,
        &mut replay,
    )
}

/// Decide on claims the caller verified: their sender constraint checked
/// first (a bound token never goes without its proof).
pub fn decide_claims(
    config: &Config,
    req: &RequestParts,
    claims: &Value,
    connection: ConnectionFacts<'_>,
    now: u64,
    replay: &mut dyn ReplayStore,
) -> Decision {
    decide_verified(config, req, Ok(claims.clone()), connection, now, replay)
}

/// The decision once the token is verified (or refused).
fn decide_verified(
    config: &Config,
    req: &RequestParts,
    claims: Result<Value, Decision>,
    connection: ConnectionFacts<'_>,
    now: u64,
    replay: &mut dyn ReplayStore,
) -> Decision {
    let bound = claims.and_then(|claims| {
        let sender = BindingRequest {
            parts: req,
            connection,
            now,
        };
        check_binding(
            &config.binding(),
            &sender,
            &claims,
            &RustCryptoVerifier,
            replay,
        )
        .map(|binding| (claims, binding))
    });
    match bound {
        Ok((claims, binding)) => {
            let mut d = decide(config, req, Some(&claims));
            d.reply_headers.extend(binding.response_headers);
            d
        }
        Err(d) => match decide(config, req, None).interaction {
            Some(it) => d.with_interaction(it),
            None => d,
        },
    }
}

/// Decide with an already-built context (`None` = no token).
pub fn decide_with_context(
    config: &Config,
    req: &RequestParts,
    ctx: Option<&AuthContext>,
) -> Decision {
    if let Some(d) = bulk::decide_job_request(&config.bulk, &config.base, req.method, req.path, ctx)
    {
        return d;
    }
    match classify(&config.base, req) {
        Ok(it) => {
            let mut d = authorize(&config.policy, &config.base, it, ctx);
            if d.is_allow() {
                d = refuse_body_narrowing(req, d);
            }
            if d.is_allow() {
                // A search is answered synchronously (its checks apply).
                let synchronous = d
                    .interaction
                    .as_ref()
                    .is_some_and(|i| i.kind == InteractionKind::Search);
                d.rewrite = match &d.narrowing {
                    Some(n) => Some(rewrite(req, n, synchronous)),
                    None => Some(rewrite(req, &Narrowing::default(), synchronous))
                        .filter(|r| !r.headers.is_empty()),
                };
                bulk::mark_kickoff(&mut d);
            }
            d
        }
        Err(e) => Decision::deny(Reason::InvalidRequest, e.message),
    }
}

/// A POST operation reads its parameters from its body only
/// (`fhir::parameters`): a narrowing the URL would carry (a `$export`
/// without `_type` under per-type scopes) is refused with what to send.
fn refuse_body_narrowing(req: &RequestParts, d: Decision) -> Decision {
    let Some(n) = d.narrowing.as_ref().filter(|n| !n.added.is_empty()) else {
        return d;
    };
    let operation = d.interaction.as_ref().and_then(|it| it.operation.clone());
    let (Some(op), "POST") = (operation, req.method) else {
        return d;
    };
    let added: Vec<String> = n
        .added
        .iter()
        .map(|a| format!("`{}={}`", a.name, a.value))
        .collect();
    let mut out = Decision::deny(
        Reason::InsufficientScope,
        format!(
            "POST {op} takes its parameters from the body, where the gateway cannot add what the token's scopes need: send {} in the Parameters body",
            added.join(" and ")
        ),
    );
    out.interaction = d.interaction;
    out.required_scopes = d.required_scopes;
    out
}
