//! Granular scopes (`patient/Observation.rs?category=...`): whether a
//! request stays inside a scope's query, what to add to a search's URL so
//! that it does (narrowing), or what the response must match.

use super::need::{fail, Fail, Met, Rule, WriteTo};
use super::resource::resource_matches;
use crate::decision::{AddedParam, Obligation, Reason};
use crate::fhir::{r4, SearchParam};
use crate::scope::ResourceScope;
use std::collections::HashMap;

/// Evaluate granular scopes (all on the same context, type and letter).
/// `narrow`: a search may be narrowed by adding the scopes' parameters.
pub(super) fn granular(
    rtype: &str,
    rule: Rule<'_>,
    g: &[&ResourceScope],
    narrow: bool,
) -> Result<Met, Fail> {
    let queries = || g.iter().map(|s| s.raw_query.clone()).collect::<Vec<_>>();
    match rule {
        Rule::Search(c) | Rule::CompartmentOf(_, _, c) => {
            if search_within_granular(c.params, g) {
                return Ok(Met::strict());
            }
            let outside = |why: String| {
                fail(
                    Reason::GranularScopeViolation,
                    format!(
                        "the {rtype} search must be restricted to the granted scope queries ({}) with the same parameter and values inside them{why}",
                        queries().join(" or ")
                    ),
                )
            };
            if !narrow {
                return Err(outside(String::new()));
            }
            narrowing(rtype, c.params, g)
                .map(Met::narrowed)
                .map_err(|why| outside(format!(": {why}")))
        }
        Rule::ReadId(_) | Rule::Included => Ok(Met::check(Obligation::CheckResponseGranular {
            resource_type: rtype.to_string(),
            queries: queries(),
        })),
        // The body is inside a scope, but by id it overwrites a stored
        // resource the request cannot show to be.
        Rule::Write(_, WriteTo::Id(id)) => Err(fail(
            Reason::GranularScopeViolation,
            format!(
                "the granted {rtype} scopes are restricted to {} and an update of {rtype}/{id} by id cannot show that the stored resource is inside them; send a conditional update whose criteria carry the scope's parameters ({rtype}?_id={id}&...)",
                queries().join(" or ")
            ),
        )),
        Rule::Write(Some(res), _) if g.iter().any(|s| resource_matches(res, &s.query)) => {
            Ok(Met::done())
        }
        _ => Err(fail(
            Reason::GranularScopeViolation,
            format!(
                "the granted {rtype} scopes are restricted to {} and this request cannot be shown to stay inside them",
                queries().join(" or ")
            ),
        )),
    }
}

/// A plain instance (no modifier, no chain) of parameter `name`.
fn plain<'p>(params: &'p [SearchParam], name: &'p str) -> impl Iterator<Item = &'p SearchParam> {
    params
        .iter()
        .filter(move |sp| sp.name == name && sp.modifier.is_none() && sp.chain.is_none())
}

/// Whether a search stays inside granular scopes: inside one scope's whole
/// query, or (for single-parameter scopes) inside the union of the values
/// granted for one parameter.
fn search_within_granular(params: &[SearchParam], g: &[&ResourceScope]) -> bool {
    let within = |name: &str, ok: &dyn Fn(&str) -> bool| {
        plain(params, name).any(|sp| !sp.values.is_empty() && sp.values.iter().all(|v| ok(v)))
    };
    if g.iter().any(|s| {
        s.query
            .iter()
            .all(|q| within(&q.name, &|v| value_within(v, &q.value)))
    }) {
        return true;
    }
    single_parameter_union(g)
        .iter()
        .any(|(name, vals)| within(name, &|v| vals.iter().any(|g| value_within(v, g))))
}

/// For the scopes restricting one parameter each: per parameter, the values
/// any of them grants.
fn single_parameter_union<'s>(g: &[&'s ResourceScope]) -> HashMap<&'s str, Vec<&'s str>> {
    let mut merged: HashMap<&str, Vec<&str>> = HashMap::new();
    for s in g {
        if let [q] = s.query.as_slice() {
            merged
                .entry(q.name.as_str())
                .or_default()
                .push(q.value.as_str());
        }
    }
    merged
}

/// The parameters that put a search inside the granted scopes when added
/// to its URL (AND): every scope restricting the same one parameter → that
/// parameter once, with the granted values as one comma-OR value; a single
/// scope → its whole query. `Err` says why the search cannot be narrowed:
/// a value outside the scopes (refused, not narrowed), scopes whose union
/// no AND of parameters expresses, a parameter R4 does not define on the
/// type (a server could ignore it).
fn narrowing(
    rtype: &str,
    params: &[SearchParam],
    g: &[&ResourceScope],
) -> Result<Vec<AddedParam>, String> {
    let union = single_parameter_union(g);
    // (name, granted values) to enforce.
    let wanted: Vec<(&str, Vec<&str>)> = match g {
        [one] => one
            .query
            .iter()
            .map(|q| (q.name.as_str(), vec![q.value.as_str()]))
            .collect(),
        _ if union.len() == 1 && g.iter().all(|s| s.query.len() == 1) => union.into_iter().collect(),
        _ => {
            return Err(
                "the granted scopes restrict different parameters, so no parameter added to the URL expresses them; add one scope's parameters yourself".into(),
            )
        }
    };
    let mut added = Vec::new();
    for (name, values) in wanted {
        if r4::search_param(rtype, name).is_none() {
            return Err(format!(
                "`{name}` is not an R4 search parameter of {rtype}, so a server might ignore it"
            ));
        }
        // An instance inside the scopes restricts the search already; one
        // in a broader form (`category=laboratory` under `…|laboratory`)
        // does not, and the scope's value is added beside it (AND).
        let mut present = false;
        for sp in plain(params, name) {
            let mut inside = true;
            for v in &sp.values {
                if values.iter().any(|g| value_within(v, g)) {
                    continue;
                }
                if !values.iter().any(|g| broader_form(v, g)) {
                    return Err(format!("`{name}={v}` is outside them"));
                }
                inside = false;
            }
            present |= inside;
        }
        if !present {
            added.push(AddedParam::new(name, values.join(",")));
        }
    }
    Ok(added)
}

/// Whether a search value is a scope value's code without its system
/// (`laboratory` for `…/observation-category|laboratory`, as US Core
/// clients send it): it selects more than the scope, never something else.
fn broader_form(search: &str, scope: &str) -> bool {
    !search.contains('|')
        && scope
            .split_once('|')
            .is_some_and(|(system, code)| !system.is_empty() && code == search)
}

/// Whether a search value selects a subset of what a granular scope value
/// selects: equal, or a `system|code` / `|code` value under a scope value
/// that is a bare `code` (any system).
fn value_within(search: &str, scope: &str) -> bool {
    search == scope
        || (!scope.contains('|')
            && search
                .rsplit_once('|')
                .is_some_and(|(_, code)| code == scope))
}
