//! The whole decision for one request: classify, then authorize. Pure.

use crate::config::Config;
use crate::decision::{Decision, Reason};
use crate::fhir::{classify, RequestParts};
use crate::policy::{authorize, AuthContext};
use serde_json::Value;

/// What the policy derives from verified claims, once per token: the parsed
/// scopes and patient context, or the denial for claims it cannot use.
pub fn auth_context(config: &Config, claims: &Value) -> Result<AuthContext, Decision> {
    AuthContext::from_claims(&config.claims, &config.base, claims)
}

/// Whether this request's decision needs its body (see [`crate::fhir::body_needed`]).
pub fn body_needed(config: &Config, req: &RequestParts) -> bool {
    crate::fhir::body_needed(&config.base, req)
}

/// Decide from verified claims (`None` = no token). Builds the
/// [`AuthContext`] on every call; the filter builds it once per token
/// ([`auth_context`]) and uses [`decide_prepared`].
pub fn decide(config: &Config, req: &RequestParts, claims: Option<&Value>) -> Decision {
    match claims.map(|c| auth_context(config, c)) {
        None => decide_prepared(config, req, None),
        Some(ctx) => decide_prepared(config, req, Some(&ctx)),
    }
}

/// [`decide`] with the result of [`auth_context`] already at
/// hand (`None` = no token).
pub fn decide_prepared(
    config: &Config,
    req: &RequestParts,
    ctx: Option<&Result<AuthContext, Decision>>,
) -> Decision {
    match ctx {
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
        Ok(it) => authorize(&config.policy, &config.base, it, ctx),
        Err(e) => Decision::deny(Reason::InvalidRequest, e.message),
    }
}
