//! The letters each interaction kind needs (README "Decision rules"), for
//! one interaction on its own: a request, or one entry of a Bundle.

use super::context::AuthContext;
use super::evaluator::Evaluator;
use super::need::{fail, Criteria, Fail, Rule, ScopeContexts};
use super::operations::operation;
use super::search::search;
use super::settings::{PatientPaging, PolicyConfig};
use crate::decision::{Narrowing, Obligation, Reason};
use crate::fhir::{FhirBase, Interaction, InteractionKind, Level};
use crate::scope::{Perms, ScopeContext};

/// The outcome of one (non-bundle) interaction, before it becomes a Decision.
pub(super) struct Outcome {
    pub(super) result: Result<(), Fail>,
    pub(super) obligations: Vec<Obligation>,
    /// Parameters to add to the URL, `Prefer: handling=strict`.
    pub(super) narrowing: Narrowing,
    pub(super) required_scopes: Vec<String>,
}

/// `metadata` and the SMART configuration, when the policy makes them public.
pub(super) fn is_public(policy: &PolicyConfig, it: &Interaction) -> bool {
    match it.kind {
        InteractionKind::Capabilities => policy.public_capabilities,
        InteractionKind::SmartConfiguration => policy.public_smart_configuration,
        _ => false,
    }
}

/// Evaluate one interaction (a Bundle entry may not be a Bundle itself;
/// its URL is inside the body, so it is never narrowed).
pub(super) fn evaluate(
    policy: &PolicyConfig,
    base: &FhirBase,
    it: &Interaction,
    ctx: &AuthContext,
    bundle_entry: bool,
) -> Outcome {
    if is_public(policy, it) {
        return Outcome {
            result: Ok(()),
            obligations: Vec::new(),
            narrowing: Narrowing::default(),
            required_scopes: Vec::new(),
        };
    }
    let mut ev = Evaluator::new(policy, base, ctx);
    if bundle_entry {
        ev = ev.without_narrowing();
    }
    let result = match it.kind {
        InteractionKind::Batch | InteractionKind::Transaction => Err(fail(
            Reason::InvalidRequest,
            "a bundle entry may not itself be a batch or transaction",
        )),
        _ => needs(&mut ev, it),
    };
    Outcome {
        result,
        required_scopes: ev.required_scopes(),
        obligations: ev.obligations,
        narrowing: ev.narrowing,
    }
}

/// Meet the needs of one interaction kind.
fn needs(ev: &mut Evaluator<'_>, it: &Interaction) -> Result<(), Fail> {
    let all = ScopeContexts::ALL;
    match it.kind {
        InteractionKind::Capabilities | InteractionKind::SmartConfiguration => Ok(()),
        InteractionKind::Read | InteractionKind::Vread => {
            ev.need(type_of(it)?, Perms::R, Rule::ReadId(id_of(it)?), all)
        }
        InteractionKind::History => match it.level {
            Level::Instance => ev.need(type_of(it)?, Perms::R, Rule::ReadId(id_of(it)?), all),
            Level::Type => ev.need(type_of(it)?, Perms::S, Rule::Unpinnable, all),
            Level::System => ev.need("*", Perms::S, Rule::Unpinnable, all),
        },
        InteractionKind::Search => search(ev, it),
        InteractionKind::Create
        | InteractionKind::Update
        | InteractionKind::Patch
        | InteractionKind::Delete => write(ev, it),
        InteractionKind::Operation => operation(ev, it),
        InteractionKind::Batch | InteractionKind::Transaction => Ok(()), // handled by the caller
        InteractionKind::Paging => paging(ev),
    }
}

fn type_of(it: &Interaction) -> Result<&str, Fail> {
    it.resource_type
        .as_deref()
        .ok_or_else(|| fail(Reason::InvalidRequest, "the request names no resource type"))
}

fn id_of(it: &Interaction) -> Result<&str, Fail> {
    it.id
        .as_deref()
        .ok_or_else(|| fail(Reason::InvalidRequest, "the request names no resource id"))
}

/// Create (c), update (u), patch (u), delete (d); conditional forms also s
/// on the type, for their criteria.
fn write(ev: &mut Evaluator<'_>, it: &Interaction) -> Result<(), Fail> {
    let all = ScopeContexts::ALL;
    let t = type_of(it)?;
    let criteria = |ev: &mut Evaluator<'_>, letters| {
        ev.need(t, letters, Rule::Search(Criteria::fixed(&it.search)), all)
            .map_err(criteria_failed)
    };
    match it.kind {
        InteractionKind::Create | InteractionKind::Update => {
            let (letter, url_id) = if it.kind == InteractionKind::Create {
                (Perms::C, None)
            } else {
                (Perms::U, it.id.as_deref())
            };
            let body = ev.need(t, letter, Rule::Write(it.resource.as_ref(), url_id), all);
            if it.conditional {
                return body.and(criteria(ev, Perms::S));
            }
            body
        }
        _ => {
            let letter = if it.kind == InteractionKind::Patch {
                Perms::U
            } else {
                Perms::D
            };
            if it.conditional {
                let a = criteria(ev, letter);
                let b = criteria(ev, Perms::S);
                a.and(b)
            } else {
                ev.need(t, letter, Rule::ById(id_of(it)?), all)
            }
        }
    }
}

/// Prefix a failed conditional-criteria need.
fn criteria_failed(f: Fail) -> Fail {
    fail(
        f.reason,
        format!(
            "conditional criteria (query or If-None-Exist): {}",
            f.message
        ),
    )
}

/// Paging (`_getpages`): see the module documentation of [`super`].
fn paging(ev: &mut Evaluator<'_>) -> Result<(), Fail> {
    let s = &ev.ctx.scopes;
    let unrestricted = s.scopes.iter().any(|x| {
        x.context != ScopeContext::Patient && !x.is_granular() && x.perms.contains(Perms::S)
    });
    if unrestricted {
        return Ok(());
    }
    let patient = s.scopes.iter().any(|x| {
        x.context == ScopeContext::Patient && !x.is_granular() && x.perms.contains(Perms::S)
    });
    if !patient {
        let preferred = ev.preferred(ScopeContexts::ALL);
        ev.record("*", Perms::S, preferred);
        return Err(fail(
            Reason::InsufficientScope,
            "paging needs a (non-granular) scope with the s letter on some type",
        ));
    }
    let Some(p) = ev.ctx.patient.clone() else {
        return Err(fail(
            Reason::NoPatientContext,
            "paging under patient/ scopes needs a patient context",
        ));
    };
    ev.used_patient = true;
    match ev.policy.patient_paging {
        PatientPaging::CheckResponse => {
            ev.push_obligation(Obligation::CheckResponseCompartment {
                resource_type: "*".into(),
                patient: p,
            });
            Ok(())
        }
        PatientPaging::Deny => Err(fail(
            Reason::PatientCompartmentViolation,
            "paging under patient/ scopes is refused (policy.patient_paging = deny); repeat the pinned search instead",
        )),
    }
}
