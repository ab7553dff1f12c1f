//! What a search's parameters read besides the searched types: chains
//! (`subject:Patient.name=`), reverse chains (`_has:Condition:subject:code=`),
//! chained sort keys, `_list`, `_filter` and `_query`. Each type they read
//! needs `s`, in every scope context; a type that cannot be known from the R4
//! search parameters is refused (`400`), never guessed.
//!
//! Parameters that are not R4 parameters of the searched types (nor R4's
//! control parameters) are left to the server: a decision never rests on
//! them (pins and granular parameters are always R4 parameters of the type),
//! and a server that does not know one refuses it under the
//! `Prefer: handling=strict` the filter sends with every search whose allow
//! rests on a parameter.

use super::evaluator::Evaluator;
use super::need::{fail, Fail, Rule, ScopeContexts};
use crate::decision::Reason;
use crate::fhir::r4::{self, ControlParam};
use crate::fhir::resource_types::resource_type;
use crate::fhir::{split_name, SearchParam};
use crate::scope::Perms;

/// Server paging parameters (HAPI): never part of a search.
const PAGING: [&str; 3] = ["_getpages", "_getpagesoffset", "_pageId"];

/// The functional lists R4 defines (lists.html), usable as `_list` values.
const FUNCTIONAL_LISTS: [&str; 3] = [
    "$current-allergies",
    "$current-problems",
    "$current-medications",
];

/// Longest chain followed (hops); longer ones are refused.
const MAX_HOPS: usize = 4;

/// The needs of the types `params` read besides `types` (the searched types;
/// empty = every type, a search across all types).
pub(super) fn parameters(
    ev: &mut Evaluator<'_>,
    params: &[SearchParam],
    types: &[&str],
) -> Result<(), Fail> {
    for sp in params {
        match r4::control_param(&sp.name) {
            Some(ControlParam::Has) => has(ev, sp, types)?,
            // R4's functional lists are the server's view of the searched
            // patient's own records, not List resources.
            Some(ControlParam::List) if sp.values.iter().all(|v| FUNCTIONAL_LISTS.contains(&v.as_str())) => {}
            Some(ControlParam::List) => reads_list(ev)?,
            Some(ControlParam::Filter) => reads_every_type(ev, "_filter")?,
            Some(ControlParam::Contained) if sp.values.iter().all(|v| v == "false") => {}
            // `_contained=true|both` (and `_containedType`, which only means
            // something with it) returns the containers of the matches: any
            // type, any patient's record (R4 search.html).
            Some(ControlParam::Contained | ControlParam::ContainedType) => {
                reads_every_type(ev, &format!("{}={}", sp.name, sp.values.join(",")))?
            }
            Some(ControlParam::Sort) => {
                for key in &sp.values {
                    let key = key.strip_prefix('-').unwrap_or(key);
                    let (name, modifier, chain) = split_name(key);
                    if let Some(rest) = chain {
                        follow_chain(ev, types, name, modifier, rest, &format!("_sort={key}"))?;
                    }
                }
            }
            Some(_) => {}
            None if sp.name == "_query" => reads_every_type(ev, "_query")?,
            None if PAGING.contains(&sp.name.as_str()) => {
                return Err(unknowable(format!(
                    "`{}` belongs to a paging request ([base]?_getpages=...), not to a search: a server may answer it with a page of another search",
                    sp.name
                )))
            }
            None => {
                if let Some(rest) = &sp.chain {
                    let what = format!("{}.{rest}", display_name(sp));
                    follow_chain(ev, types, &sp.name, sp.modifier.as_deref(), rest, &what)?;
                }
            }
        }
    }
    Ok(())
}

/// `name[:modifier]` as sent.
fn display_name(sp: &SearchParam) -> String {
    match &sp.modifier {
        Some(m) => format!("{}:{m}", sp.name),
        None => sp.name.clone(),
    }
}

fn unknowable(message: String) -> Fail {
    fail(Reason::InvalidRequest, message)
}

/// `s` on a type a parameter reads (`what` names the parameter).
fn need_read(ev: &mut Evaluator<'_>, rtype: &str, what: &str) -> Result<(), Fail> {
    ev.need(rtype, Perms::S, Rule::Traversed, ScopeContexts::ALL)
        .map_err(|f| fail(f.reason, format!("`{what}` reads {rtype}: {}", f.message)))
}

/// `_filter` and `_query` can reach any type (chains inside a filter
/// expression; a named query's meaning is the server's), and so can
/// `_contained` (containers of any type): `s` on every type, never under
/// patient/ scopes.
fn reads_every_type(ev: &mut Evaluator<'_>, name: &str) -> Result<(), Fail> {
    ev.need("*", Perms::S, Rule::NoPatient, ScopeContexts::ALL)
        .map_err(|f| {
            fail(
                f.reason,
                format!(
                    "`{name}` can reach every resource type, so it needs s on all types (user/*.s or system/*.s) and is refused under patient/ scopes: {}",
                    f.message
                ),
            )
        })
}

/// `_list=` selects the members of a List: `r` on List, never under
/// patient/ scopes (a List of another patient, or a server's functional
/// list, would decide which of the patient's records match).
fn reads_list(ev: &mut Evaluator<'_>) -> Result<(), Fail> {
    ev.need("List", Perms::R, Rule::NoPatient, ScopeContexts::ALL)
        .map_err(|f| fail(f.reason, format!("`_list` reads a List: {}", f.message)))
}

/// The types a chain `name[:T].rest` from `from` reads: at each hop the
/// targets of the reference parameter (only `T` with a type modifier), kept
/// when they define the next parameter (as servers follow a chain). `s` on
/// each.
fn follow_chain(
    ev: &mut Evaluator<'_>,
    from: &[&str],
    name: &str,
    modifier: Option<&str>,
    rest: &str,
    what: &str,
) -> Result<(), Fail> {
    if from.is_empty() {
        return Err(unknowable(format!(
            "the chain `{what}` in a search across all types cannot be followed: name the types with _type"
        )));
    }
    let mut current: Vec<&str> = from.to_vec();
    let (mut name, mut modifier, mut rest) = (name, modifier, rest);
    for _ in 0..MAX_HOPS {
        let mut targets: Vec<&'static str> = Vec::new();
        let mut reference = false;
        for t in &current {
            if let Some(ts) = r4::reference_targets(t, name) {
                reference = true;
                for target in ts.iter() {
                    if !targets.contains(&target) {
                        targets.push(target);
                    }
                }
            }
        }
        if !reference {
            return Err(unknowable(format!(
                "`{what}`: `{name}` is not a reference search parameter of {}, so the chain cannot be followed",
                current.join(", ")
            )));
        }
        if let Some(m) = modifier {
            let t = resource_type(m)
                .filter(|t| targets.contains(t))
                .ok_or_else(|| {
                    unknowable(format!(
                        "`{what}`: `{m}` is not a type `{name}` can point at ({})",
                        targets.join(", ")
                    ))
                })?;
            targets = vec![t];
        }
        let (next, next_modifier, next_rest) = split_name(rest);
        let reached: Vec<&'static str> = targets
            .into_iter()
            .filter(|t| match next_rest {
                Some(_) => r4::reference_targets(t, next).is_some(),
                None => r4::search_param(t, next).is_some(),
            })
            .collect();
        if reached.is_empty() {
            return Err(unknowable(format!(
                "`{what}`: no type `{name}` can point at defines the search parameter `{next}`"
            )));
        }
        for t in &reached {
            need_read(ev, t, what)?;
        }
        let Some(next_rest) = next_rest else {
            return Ok(());
        };
        current = reached;
        (name, modifier, rest) = (next, next_modifier, next_rest);
    }
    Err(unknowable(format!(
        "`{what}` chains more than {MAX_HOPS} references; the filter does not follow it"
    )))
}

/// `_has:S:p:rest=v` (reverse chaining): S's reference parameter `p` must be
/// able to point at a searched type; `s` on S; `rest` is a parameter of S
/// (possibly chained) or another `_has` from S.
fn has(ev: &mut Evaluator<'_>, sp: &SearchParam, types: &[&str]) -> Result<(), Fail> {
    let mut spec = sp.modifier.as_deref().unwrap_or("").to_string();
    let mut current: Vec<&str> = types.to_vec();
    for _ in 0..MAX_HOPS {
        let what = format!("_has:{spec}");
        let mut parts = spec.splitn(3, ':');
        let (Some(source), Some(param), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(unknowable(format!(
                "`{what}` is not of the form _has:Type:parameter:parameter"
            )));
        };
        let source = resource_type(source).ok_or_else(|| {
            unknowable(format!("`{what}`: `{source}` is not an R4 resource type"))
        })?;
        let targets = r4::reference_targets(source, param).ok_or_else(|| {
            unknowable(format!(
                "`{what}`: `{param}` is not a reference search parameter of {source}"
            ))
        })?;
        if !current.is_empty() && !current.iter().any(|t| targets.contains(t)) {
            return Err(unknowable(format!(
                "`{what}`: {source}:{param} cannot point at {}",
                current.join(", ")
            )));
        }
        need_read(ev, source, &what)?;
        if let Some(inner) = rest.strip_prefix("_has:") {
            spec = inner.to_string();
            current = vec![source];
            continue;
        }
        let (name, modifier, chain) = split_name(rest);
        return match chain {
            Some(c) => follow_chain(ev, &[source], name, modifier, c, &what),
            None if r4::search_param(source, name).is_some() => Ok(()),
            None => Err(unknowable(format!(
                "`{what}`: `{name}` is not a search parameter of {source}"
            ))),
        };
    }
    Err(unknowable(format!(
        "`_has:{}` nests more than {MAX_HOPS} levels; the filter does not follow it",
        sp.modifier.as_deref().unwrap_or("")
    )))
}
