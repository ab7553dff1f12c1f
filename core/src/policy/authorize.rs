//! The policy's entry point: one classified interaction and the token's
//! [`AuthContext`] in, one [`Decision`] out.

use super::bundle::authorize_bundle;
use super::context::AuthContext;
use super::interaction::{evaluate, is_public};
use super::labels::apply_labels;
use super::settings::PolicyConfig;
use crate::decision::{Decision, Reason};
use crate::fhir::{FhirBase, Interaction, InteractionKind};

/// Decide one classified interaction. `ctx` is `None` when the request
/// carries no token. Public endpoints are allowed without one.
pub fn authorize(
    policy: &PolicyConfig,
    base: &FhirBase,
    it: Interaction,
    ctx: Option<&AuthContext>,
) -> Decision {
    if is_public(policy, &it) {
        let mut d = Decision::allow(Reason::PublicEndpoint, it);
        d.message = "public endpoint".into();
        return d;
    }
    let Some(ctx) = ctx else {
        return Decision::deny(
            Reason::MissingToken,
            "this request needs a bearer token (Authorization: Bearer ...)",
        )
        .with_interaction(it);
    };
    let mut d = match it.kind {
        InteractionKind::Batch | InteractionKind::Transaction => {
            authorize_bundle(policy, base, ctx, it)
        }
        _ => {
            let o = evaluate(policy, base, &it, ctx, None);
            let mut d = match o.result {
                Ok(()) => {
                    let mut d = Decision::allow(Reason::Allowed, it);
                    d.obligations = o.obligations;
                    d.narrowing = (!o.narrowing.is_empty()).then_some(o.narrowing);
                    d
                }
                Err(f) => Decision::deny(f.reason, f.message).with_interaction(it),
            };
            d.required_scopes = o.required_scopes;
            d
        }
    };
    if let Some(labels) = &policy.labels {
        apply_labels(labels, ctx, &mut d);
    }
    d.diagnostics.clone_from(&ctx.diagnostics);
    d
}
