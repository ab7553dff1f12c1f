//! The letters each interaction kind needs (README "Decision rules"), for
//! one interaction on its own: a request, or one entry of a Bundle.

use super::context::AuthContext;
use super::evaluator::Evaluator;
use super::need::{fail, Criteria, Fail, Rule, ScopeContexts, WriteTo};
use super::operations::operation;
use super::patch::patch_references;
use super::references::{references, target, PatientEntry, Target};
use super::search::search;
use super::settings::{PatientPaging, PolicyConfig};
use crate::decision::{Narrowing, Obligation, Reason};
use crate::fhir::{parse_query, FhirBase, Interaction, InteractionKind, Level};
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

/// Evaluate one interaction: a request, or (`bundle`: the Bundle's Patient
/// entries) a Bundle entry, which may not be a Bundle itself; its URL is
/// inside the body, so it is never narrowed.
pub(super) fn evaluate(
    policy: &PolicyConfig,
    base: &FhirBase,
    it: &Interaction,
    ctx: &AuthContext,
    bundle: Option<&[PatientEntry]>,
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
    if let Some(entries) = bundle {
        ev = ev.without_narrowing();
        ev.refs.bundle = entries;
    }
    let result = needs(&mut ev, it);
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
        // A request's own Bundle is decided entry by entry (`bundle.rs`).
        InteractionKind::Batch | InteractionKind::Transaction => Err(fail(
            Reason::InvalidRequest,
            "a bundle entry may not itself be a batch or transaction",
        )),
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
/// on the type, for their criteria, met in the same scope context as the
/// write letter. Then the conditional references the body (or the patch)
/// writes, each a search on its type.
fn write(ev: &mut Evaluator<'_>, it: &Interaction) -> Result<(), Fail> {
    let t = type_of(it)?;
    let body = it.resource.as_ref();
    let id = if it.conditional || it.kind == InteractionKind::Create {
        None
    } else {
        Some(id_of(it)?)
    };
    let (letter, rule) = match (it.kind, id) {
        (InteractionKind::Create, _) => (Perms::C, Rule::Write(body, WriteTo::New)),
        (InteractionKind::Update, Some(id)) => (Perms::U, Rule::Write(body, WriteTo::Id(id))),
        (InteractionKind::Update, None) => (Perms::U, Rule::Write(body, WriteTo::Match)),
        (InteractionKind::Patch, id) => (Perms::U, Rule::Patch(body, id)),
        (_, Some(id)) => (Perms::D, Rule::Delete(id)),
        (_, None) => (Perms::D, Rule::Search(Criteria::write(&it.search))),
    };
    let criteria = match it.kind {
        // A conditional create writes nothing when it matches (the match is
        // returned, and response-checked when the pin is loose).
        InteractionKind::Create => Rule::Search(Criteria::fixed(&it.search)),
        _ => Rule::Search(Criteria::write(&it.search)),
    };
    let both = [(letter, rule), (Perms::S, criteria)];
    let parts = if it.conditional {
        &both[..]
    } else {
        both.get(..1).unwrap_or_default()
    };
    let mut written = Vec::new();
    if it.kind == InteractionKind::Patch {
        if let Some(doc) = body {
            written = patch_references(doc)?;
        }
    } else if let Some(r) = body {
        references(r, &mut written);
    }
    ev.need_all(t, parts, ScopeContexts::ALL)?;
    for r in written {
        conditional_reference(ev, r)?;
    }
    Ok(())
}

/// A conditional reference (`Type?criteria`, HAPI resolves it in any field
/// of any write) is a search on its type: s on the type, and under patient/
/// scopes pinned to the patient. Chains, `_has` and the other `_`
/// parameters (but `_id`) would read further types; a reference the
/// servers would read differently (a base URL before the type, another
/// letter case) is refused.
fn conditional_reference(ev: &mut Evaluator<'_>, r: &str) -> Result<(), Fail> {
    if !r.contains('?') {
        return Ok(());
    }
    let refused = || {
        fail(
            Reason::InvalidRequest,
            format!(
                "conditional reference `{}` refused: write Type?criteria (an R4 type, no base URL, plain parameters: no chains, `_has`, `_`-parameters but `_id`; `+` as %2B) or send Type/id",
                r.chars().take(80).collect::<String>()
            ),
        )
    };
    let Target::Conditional(ty, criteria) = target(r, None) else {
        return Err(refused());
    };
    let params = parse_query(criteria).map_err(|_| refused())?;
    for sp in &params {
        if sp.chain.is_some() || (sp.name.starts_with('_') && sp.name != "_id") {
            return Err(refused());
        }
    }
    // A failure names the search (`s` on the type) the reference needs.
    ev.need(
        ty,
        Perms::S,
        Rule::Search(Criteria::fixed(&params)),
        ScopeContexts::ALL,
    )
}

/// The types a token's plain (non-granular) scopes grant a letter on, in
/// patient/ (`Some(true)`), user|system/ (`Some(false)`) or any context
/// (`None`); `["*"]` when a wildcard does.
fn granted_types(ev: &Evaluator<'_>, patient: Option<bool>, letter: Perms) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for x in &ev.ctx.scopes.scopes {
        if patient.is_some_and(|p| (x.context == ScopeContext::Patient) != p)
            || x.is_granular()
            || !x.perms.contains(letter)
        {
            continue;
        }
        let t = x.resource_type.as_deref().unwrap_or("*");
        if t == "*" {
            return vec!["*".into()];
        }
        if !out.iter().any(|o| o == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Paging (`_getpages`): a paging link names no type, so the page is
/// checked on the response: every resource must be of a type the token may
/// receive (matches `s`, includes `r`; no check when wildcards grant both),
/// and under patient/ scopes in the patient's compartment (or refused:
/// `patient_paging = deny`). With both patient/ and user|system/ scopes, the
/// compartment check covers only the types that only patient/ scopes grant
/// (every type, when a `patient/*` scope is among them). Granular scopes grant no
/// paging. See the module documentation of [`super`].
#[inline(never)]
fn paging(ev: &mut Evaluator<'_>) -> Result<(), Fail> {
    let user_search = granted_types(ev, Some(false), Perms::S);
    let patient_search = granted_types(ev, Some(true), Perms::S);
    if user_search.is_empty() && patient_search.is_empty() {
        let preferred = ev.preferred(ScopeContexts::ALL);
        ev.record("*", Perms::S, preferred);
        return Err(fail(
            Reason::InsufficientScope,
            "paging needs a (non-granular) scope with the s letter on some type",
        ));
    }
    let patient = match (ev.ctx.patient.clone(), patient_search.is_empty()) {
        (_, true) => None,
        (None, false) if user_search.is_empty() => {
            return Err(fail(
                Reason::NoPatientContext,
                "paging under patient/ scopes needs a patient context",
            ))
        }
        (None, false) => None,
        (Some(_), false) if ev.policy.patient_paging == PatientPaging::Deny => {
            if user_search.is_empty() {
                return Err(fail(
                    Reason::PatientCompartmentViolation,
                    "paging under patient/ scopes is refused (policy.patient_paging = deny); repeat the pinned search instead",
                ));
            }
            None
        }
        (Some(p), false) => Some(p),
    };
    // The patient/ grants count only when the patient rule applies.
    let contexts = if patient.is_some() { None } else { Some(false) };
    let search = granted_types(ev, contexts, Perms::S);
    let read = granted_types(ev, contexts, Perms::R);
    if let Some(p) = patient {
        ev.used_patient = true;
        let only_patient: Vec<&String> = patient_search
            .iter()
            .filter(|t| !user_search.iter().any(|u| u == "*" || u == *t))
            .collect();
        if user_search.is_empty() || only_patient.iter().any(|t| *t == "*") {
            ev.push_obligation(Obligation::CheckResponseCompartment {
                resource_type: "*".into(),
                patient: p,
            });
        } else {
            for t in only_patient {
                ev.push_obligation(Obligation::CheckResponseCompartment {
                    resource_type: t.clone(),
                    patient: p.clone(),
                });
            }
        }
    }
    if !(search == ["*"] && read == ["*"]) {
        ev.push_obligation(Obligation::CheckResponseTypes { search, read });
    }
    Ok(())
}
