//! Batch and transaction Bundles: one decision from the entries' decisions.

use super::context::AuthContext;
use super::interaction::evaluate;
use super::settings::PolicyConfig;
use crate::decision::{Decision, EntryDenial, Narrowing, Obligation, Reason};
use crate::fhir::{FhirBase, Interaction, InteractionKind};

/// Every entry decided as if sent alone; one denied entry denies the whole
/// request (`bundle_entry_denied`). Entries' obligations apply to the whole
/// response. Entries are never narrowed (their URLs are in the body); when
/// an entry's allow rests on search parameters the request gets
/// `Prefer: handling=strict`.
pub(super) fn authorize_bundle(
    policy: &PolicyConfig,
    base: &FhirBase,
    ctx: &AuthContext,
    it: Interaction,
) -> Decision {
    let mut denied = Vec::new();
    let mut obligations: Vec<Obligation> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    let mut narrowing = Narrowing::default();
    for e in &it.entries {
        let sub = evaluate(policy, base, &e.interaction, ctx, true);
        match sub.result {
            Ok(()) => {
                narrowing.merge(sub.narrowing);
                for o in sub.obligations {
                    if !obligations.contains(&o) {
                        obligations.push(o);
                    }
                }
            }
            Err(f) => {
                for r in &sub.required_scopes {
                    if !required.contains(r) {
                        required.push(r.clone());
                    }
                }
                denied.push(EntryDenial {
                    index: e.index,
                    reason: f.reason,
                    message: f.message,
                    required_scopes: sub.required_scopes,
                });
            }
        }
    }
    if denied.is_empty() {
        let mut d = Decision::allow(Reason::Allowed, it);
        d.obligations = obligations;
        d.narrowing = (!narrowing.is_empty()).then_some(narrowing);
        d
    } else {
        let list: Vec<String> = denied
            .iter()
            .map(|d| format!("#{} {}", d.index, d.reason.as_str()))
            .collect();
        let mut d = Decision::deny(
            Reason::BundleEntryDenied,
            format!(
                "{} of {} bundle entries denied ({}); the whole {} is refused",
                denied.len(),
                it.entries.len(),
                list.join(", "),
                if it.kind == InteractionKind::Batch {
                    "batch"
                } else {
                    "transaction"
                }
            ),
        )
        .with_interaction(it);
        d.denied_entries = denied;
        d.required_scopes = required;
        d
    }
}
