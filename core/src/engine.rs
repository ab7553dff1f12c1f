//! The whole decision for one request: classify, then authorize. Pure.

use crate::config::Config;
use crate::decision::{Decision, Reason};
use crate::fhir::{classify, RequestParts};
use crate::policy::{authorize, AuthContext};
use crate::rewrite::rewrite;
use serde_json::Value;

/// What the policy derives from a token's verified claims, once per token:
/// the parsed scopes and patient context, or the denial for claims it cannot
/// use.
pub type TokenContext = Result<AuthContext, Decision>;

/// The [`TokenContext`] of verified claims.
pub fn token_context(config: &Config, claims: &Value) -> TokenContext {
    AuthContext::from_claims(&config.claims, &config.base, claims)
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

/// Decide with an already-built context (`None` = no token).
pub fn decide_with_context(
    config: &Config,
    req: &RequestParts,
    ctx: Option<&AuthContext>,
) -> Decision {
    match classify(&config.base, req) {
        Ok(it) => {
            let mut d = authorize(&config.policy, &config.base, it, ctx);
            if d.is_allow() {
                d.rewrite = d.narrowing.as_ref().map(|n| rewrite(req, n));
            }
            d
        }
        Err(e) => Decision::deny(Reason::InvalidRequest, e.message),
    }
}
