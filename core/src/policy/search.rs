//! Searches: type, system and compartment searches (narrowed when allowed),
//! then what their parameters read besides the searched types
//! (`traversal.rs`), what they add to the response (`include.rs`), and what
//! patient/ scopes refuse.

use super::compartment;
use super::evaluator::Evaluator;
use super::include::includes;
use super::need::{fail, Criteria, Fail, Rule, ScopeContexts};
use super::traversal::parameters;
use crate::decision::{Obligation, Reason};
use crate::fhir::{r4, Interaction, Level, SearchParam};
use crate::scope::Perms;
use std::borrow::Cow;

pub(super) fn search(ev: &mut Evaluator<'_>, it: &Interaction) -> Result<(), Fail> {
    let all = ScopeContexts::ALL;
    let criteria = Criteria::narrowable(&it.search);
    if let Some(c) = &it.compartment {
        let targets: Vec<&str> = if !it.types.is_empty() {
            it.types.iter().map(String::as_str).collect()
        } else {
            vec![it.resource_type.as_deref().unwrap_or("*")]
        };
        for t in &targets {
            let rule = Rule::CompartmentOf(&c.resource_type, &c.id, criteria);
            ev.need(t, Perms::S, rule, all)?;
        }
    } else if it.level == Level::System {
        if it.types.is_empty() {
            ev.need("*", Perms::S, Rule::Unpinnable, all)?;
        } else {
            for t in &it.types {
                ev.need(t, Perms::S, Rule::Search(criteria), all)?;
            }
            narrowing_fits_every_type(ev, &it.types)?;
        }
    } else {
        let t = it
            .resource_type
            .as_deref()
            .ok_or_else(|| fail(Reason::InvalidRequest, "the search names no resource type"))?;
        ev.need(t, Perms::S, Rule::Search(criteria), all)?;
    }
    let types = searched_types(it);
    let pinned = pinned_by_request(ev, &types);
    let search = paging_in_pinned_search(ev, it, pinned);
    // Refused under patient/ scopes before the types they read are looked at.
    if ev.used_patient && !pinned {
        patient_search_limits(ev, &search)?;
    }
    parameters(ev, &search, &types)?;
    includes(ev, &search, &types)?;
    // Again: a type read only through a patient/ scope makes the same refusals apply.
    if ev.used_patient && !pinned {
        patient_search_limits(ev, &search)?;
    }
    Ok(())
}

/// Whether a search under patient/ scopes is pinned to the context patient
/// by the request itself (its pin parameter, or a compartment path), not by
/// a pin narrowing adds. Chains and `_has` inside it only narrow the
/// patient's own results (the types they read still need `s`). A search of
/// a shared type (`policy.patient_scope_public_types`) is pinned to no one:
/// a chain or `_has` from it could ask about any patient's records.
fn pinned_by_request(ev: &Evaluator<'_>, types: &[&str]) -> bool {
    let patient_pin_added = ev.narrowing.added.iter().any(|a| {
        types
            .iter()
            .any(|t| compartment::narrowing_pin(t) == Some(a.name.as_str()))
    });
    ev.used_patient
        && !types.is_empty()
        && types.iter().all(|t| compartment::in_compartment(t))
        && !patient_pin_added
}

/// A paging offset in a search pinned by the request (`_getpagesoffset`,
/// `_pageId`, as in the links some servers write): allowed under patient/
/// scopes with the paging check of the answer (every resource the
/// patient's, or a shared type), so whatever page a server reads it as,
/// only the patient's data comes back. Returns the parameters left to
/// decide. (`_getpages` names another search: refused everywhere.)
fn paging_in_pinned_search<'i>(
    ev: &mut Evaluator<'_>,
    it: &'i Interaction,
    pinned: bool,
) -> Cow<'i, [SearchParam]> {
    let offset = |sp: &SearchParam| matches!(sp.name.as_str(), "_getpagesoffset" | "_pageId");
    let patient = ev.ctx.patient.clone();
    match patient {
        Some(p) if pinned && it.search.iter().any(offset) => {
            ev.push_obligation(Obligation::CheckResponseCompartment {
                resource_type: "*".into(),
                patient: p,
            });
            Cow::Owned(it.search.iter().filter(|sp| !offset(sp)).cloned().collect())
        }
        _ => Cow::Borrowed(&it.search),
    }
}

/// The types a search returns as matches: empty = every type.
fn searched_types(it: &Interaction) -> Vec<&str> {
    if !it.types.is_empty() {
        return it.types.iter().map(String::as_str).collect();
    }
    it.resource_type.as_deref().into_iter().collect()
}

/// A search across several types is narrowed only by parameters R4 defines
/// on every one of them (the same parameters apply to all the types), and
/// never by `_id` (Patient's pin would select other types by id).
fn narrowing_fits_every_type(ev: &Evaluator<'_>, types: &[String]) -> Result<(), Fail> {
    for a in &ev.narrowing.added {
        let misfit = a.name == "_id" && types.len() > 1
            || types.iter().any(|t| r4::search_param(t, &a.name).is_none());
        if misfit {
            return Err(fail(
                Reason::PatientCompartmentViolation,
                format!(
                    "this search across {} cannot be narrowed with one `{}` parameter; search each type on its own, or pin it yourself",
                    types.join(", "),
                    a.name
                ),
            ));
        }
    }
    Ok(())
}

/// Under patient/ scopes: `_has` and chained parameters only where the
/// policy allows them.
fn patient_search_limits(ev: &Evaluator<'_>, search: &[SearchParam]) -> Result<(), Fail> {
    let policy = ev.policy;
    for sp in search {
        if sp.name == "_has" && !policy.allow_has {
            return Err(fail(
                Reason::ChainedSearchNotPermitted,
                "`_has` is refused under patient/ scopes (policy.allow_has = false)",
            ));
        }
        let chained =
            sp.chain.is_some() || (sp.name == "_sort" && sp.values.iter().any(|v| v.contains('.')));
        if chained && !policy.allow_chained {
            return Err(fail(
                Reason::ChainedSearchNotPermitted,
                format!(
                    "chained parameter `{}{}` is refused under patient/ scopes (policy.allow_chained = false)",
                    sp.name,
                    sp.chain.as_deref().map(|c| format!(".{c}")).unwrap_or_default()
                ),
            ));
        }
    }
    Ok(())
}
