//! Searches: type, system and compartment searches, then the features
//! patient/ scopes restrict (`_include`/`_revinclude`, `_has`, chains,
//! named queries).

use super::evaluator::Evaluator;
use super::need::{fail, Fail, Rule, ScopeContexts};
use crate::decision::Reason;
use crate::fhir::{Interaction, Level, SearchParam};
use crate::scope::Perms;

pub(super) fn search(ev: &mut Evaluator<'_>, it: &Interaction) -> Result<(), Fail> {
    let all = ScopeContexts::ALL;
    if let Some(c) = &it.compartment {
        let targets: Vec<&str> = if !it.types.is_empty() {
            it.types.iter().map(String::as_str).collect()
        } else {
            vec![it.resource_type.as_deref().unwrap_or("*")]
        };
        for t in targets {
            ev.need(
                t,
                Perms::S,
                Rule::CompartmentOf(&c.resource_type, &c.id),
                all,
            )?;
        }
    } else if it.level == Level::System {
        if it.types.is_empty() {
            ev.need("*", Perms::S, Rule::Unpinnable, all)?;
        } else {
            for t in &it.types {
                ev.need(t, Perms::S, Rule::Search(&it.search), all)?;
            }
        }
    } else {
        let t = it
            .resource_type
            .as_deref()
            .ok_or_else(|| fail(Reason::InvalidRequest, "the search names no resource type"))?;
        ev.need(t, Perms::S, Rule::Search(&it.search), all)?;
    }
    for sp in &it.search {
        includes(ev, sp)?;
    }
    // After the includes, so that whether a patient/ scope was used is settled.
    if ev.used_patient {
        patient_search_limits(ev, &it.search)?;
    }
    Ok(())
}

/// `_include` (r on the target type) and `_revinclude` (s on the source).
fn includes(ev: &mut Evaluator<'_>, sp: &SearchParam) -> Result<(), Fail> {
    let rev = match sp.name.as_str() {
        "_include" => false,
        "_revinclude" => true,
        _ => return Ok(()),
    };
    for v in &sp.values {
        let (letters, target) = if v == "*" {
            if ev.used_patient && !ev.policy.allow_wildcard_include {
                return Err(fail(
                    Reason::IncludeNotPermitted,
                    format!("`{}=*` is refused under patient/ scopes (policy.allow_wildcard_include = false)", sp.name),
                ));
            }
            (Perms::R, "*".to_string())
        } else {
            let parts: Vec<&str> = v.split(':').collect();
            match (rev, parts.as_slice()) {
                (true, [source, _, ..]) => (Perms::S, source.to_string()),
                (false, [_, param]) => match include_target(param) {
                    Some(t) => (Perms::R, t.to_string()),
                    None if ev.used_patient => {
                        return Err(fail(
                            Reason::IncludeNotPermitted,
                            format!(
                                "`_include={v}` has no target type; name it, e.g. `{v}:Patient`"
                            ),
                        ))
                    }
                    None => (Perms::R, "*".to_string()),
                },
                (false, [_, _, target]) => (Perms::R, target.to_string()),
                _ => {
                    return Err(fail(
                        Reason::IncludeNotPermitted,
                        format!(
                            "`{}={v}` is not of the form Type:param[:TargetType]",
                            sp.name
                        ),
                    ))
                }
            }
        };
        ev.need(&target, letters, Rule::Included, ScopeContexts::ALL)
            .map_err(|f| {
                fail(
                    if f.reason == Reason::NoPatientContext {
                        f.reason
                    } else {
                        Reason::IncludeNotPermitted
                    },
                    format!("`{}={v}`: {}", sp.name, f.message),
                )
            })?;
    }
    Ok(())
}

/// Under patient/ scopes: no named queries, and `_has` and chained
/// parameters only where the policy allows them.
fn patient_search_limits(ev: &Evaluator<'_>, search: &[SearchParam]) -> Result<(), Fail> {
    let policy = ev.policy;
    for sp in search {
        if sp.name == "_query" {
            return Err(fail(
                Reason::PatientCompartmentViolation,
                "named queries (`_query`) are refused under patient/ scopes: their results cannot be tied to the context patient",
            ));
        }
        let is_has = sp.name == "_has" || sp.name.starts_with("_has:");
        if is_has && !policy.allow_has {
            return Err(fail(
                Reason::ChainedSearchNotPermitted,
                "`_has` is refused under patient/ scopes (policy.allow_has = false)",
            ));
        }
        if sp.chain.is_some() && !policy.allow_chained {
            return Err(fail(
                Reason::ChainedSearchNotPermitted,
                format!(
                    "chained parameter `{}.{}` is refused under patient/ scopes (policy.allow_chained = false)",
                    sp.name,
                    sp.chain.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    Ok(())
}

/// A type commonly targeted by an include parameter of that name (only
/// unambiguous ones; otherwise the client must name the target).
fn include_target(param: &str) -> Option<&'static str> {
    match param {
        "patient" => Some("Patient"),
        "medication" => Some("Medication"),
        "encounter" => Some("Encounter"),
        "organization" => Some("Organization"),
        "location" => Some("Location"),
        "practitioner" => Some("Practitioner"),
        _ => None,
    }
}
