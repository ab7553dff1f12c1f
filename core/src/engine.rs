//! The whole decision for one request: classify, then authorize. Pure.
//!
//! Three entry points, named after what they take: [`decide_token`] (a
//! verified token as the request presents it: every shell),
//! [`decide_request`] (the request as it arrives, its credential verified
//! offline: the CLI) and [`decide_claims`] (verified claims, for the tests
//! of the policy).

use crate::bulk;
use crate::config::Config;
use crate::decision::{Decision, Narrowing, Reason};
use crate::fhir::{classify, InteractionKind, RequestParts};
use crate::policy::{authorize, AuthContext};
use crate::rewrite::rewrite;
use crate::token::binding::{check_binding, Binding, BindingRequest, ConnectionFacts, ReplayStore};
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

/// The refusal of a request whose body is over `max_body_bytes`: it cannot
/// be checked.
pub fn body_too_large(config: &Config) -> Decision {
    Decision::deny(
        Reason::BodyTooLarge,
        format!(
            "the request body is larger than {} bytes (max_body_bytes) and cannot be checked; send a smaller request",
            config.max_body_bytes
        ),
    )
}

/// The refusal of a request decided on its body that ends with trailers:
/// the body is not checked with trailers.
pub fn trailers_refused() -> Decision {
    Decision::deny(
        Reason::InvalidRequest,
        "the request ends with trailers, and the filter decides this request on its body, which it does not check with trailers; send the request without trailers",
    )
}

/// Whether this request's decision needs its body (see [`crate::fhir::body_needed`]).
pub fn body_needed(config: &Config, req: &RequestParts) -> bool {
    crate::fhir::body_needed(&config.base, req)
}

/// A verified token as one request presents it: what the policy derived
/// from its claims (once per token: [`token_context`]) and how the request
/// proved the token's binding (its sender constraint, and the headers that
/// adds to every answer: a fresh `DPoP-Nonce`).
#[derive(Debug, Clone, Copy)]
pub struct PresentedToken<'t> {
    pub context: &'t TokenContext,
    /// `None`: the caller does not check the binding (the policy's tests).
    pub binding: Option<&'t Binding>,
}

/// The decision on a request with its verified token (`None` = no token):
/// what every shell calls. The binding's answer headers go into
/// [`Decision::reply_headers`], so every answer carries them.
pub fn decide_token(
    config: &Config,
    req: &RequestParts,
    token: Option<PresentedToken<'_>>,
) -> Decision {
    let Some(token) = token else {
        return decide_context(config, req, None);
    };
    let mut d = match token.context {
        Ok(ctx) => decide_context(config, req, Some(ctx)),
        Err(denial) => {
            // Unusable claims: public endpoints stay public, everything else is refused.
            let d = decide_context(config, req, None);
            if d.reason == Reason::PublicEndpoint || d.reason == Reason::InvalidRequest {
                d
            } else {
                match d.interaction {
                    Some(it) => denial.clone().with_interaction(it),
                    None => denial.clone(),
                }
            }
        }
    };
    if let Some(binding) = token.binding {
        d.reply_headers
            .extend(binding.response_headers.iter().cloned());
    }
    d
}

/// The decision on verified claims (`None` = no token) whose binding the
/// caller does not check (the tests of the policy): [`decide_token`] with
/// the context derived on every call.
pub fn decide_claims(config: &Config, req: &RequestParts, claims: Option<&Value>) -> Decision {
    let context = claims.map(|c| token_context(config, c));
    let token = context.as_ref().map(|context| PresentedToken {
        context,
        binding: None,
    });
    decide_token(config, req, token)
}

/// The credential of a request decided offline ([`decide_request`]).
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    /// The bearer token taken from the request exactly as the filter takes
    /// it (`Authorization` header, or `access_token` with
    /// `token.allow_query_parameter`; two credentials → 400, another scheme
    /// → no token).
    InRequest,
    /// A token given apart from the request.
    Token(&'a str),
    /// Claims the caller verified.
    Claims(&'a Value),
}

/// The filter's decision for a request as it arrives, offline (the CLI): its
/// token verified with the issuers' inline keys at `now` (Unix seconds), its
/// sender constraint checked against the request and `connection` (a DPoP
/// proof replayed within `replay` is refused as the filter refuses it), then
/// [`decide_token`], then the Bulk Data step settled against an empty job
/// registry ([`bulk::EmptyRegistry`]: the filter's answer in a fresh Envoy).
/// Issuers whose keys are fetched (`jwks_uri`) or introspected answer what
/// the filter answers when it cannot reach them (`keys_unavailable`,
/// `introspection_unavailable`). A refused token names the interaction when
/// the request classifies.
pub fn decide_request(
    config: &Config,
    req: &RequestParts,
    credential: Credential<'_>,
    connection: ConnectionFacts<'_>,
    now: u64,
    replay: &mut dyn ReplayStore,
) -> Decision {
    let claims = match credential {
        Credential::Claims(claims) => Ok(claims.clone()),
        Credential::Token(token) => offline::verify_claims(config.trust(), token, now),
        Credential::InRequest => match extract_bearer(req, &config.token) {
            Err(d) => return d,
            Ok(None) => {
                return settle_without_jobs(config, decide_token(config, req, None), None, now)
            }
            Ok(Some(bearer)) => offline::verify_claims(config.trust(), &bearer.token, now),
        },
    };
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
            let context = token_context(config, &claims);
            let token = PresentedToken {
                context: &context,
                binding: Some(&binding),
            };
            let d = decide_token(config, req, Some(token));
            settle_without_jobs(config, d, context.as_ref().ok(), now)
        }
        Err(d) => match decide_token(config, req, None).interaction {
            Some(it) => d.with_interaction(it),
            None => d,
        },
    }
}

/// `d` with its Bulk Data step settled as the filter settles it, against a
/// registry that holds no job.
fn settle_without_jobs(
    config: &Config,
    d: Decision,
    ctx: Option<&AuthContext>,
    now: u64,
) -> Decision {
    bulk::settle(&config.bulk, &bulk::EmptyRegistry, d, ctx, now).0
}

/// The decision with the policy's view of the token (`None` = no token).
pub(crate) fn decide_context(
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
