//! Granular scopes (`patient/Observation.rs?category=...`): whether a
//! request stays inside a scope's query, or what the response must match.

use super::need::{fail, Fail, Rule};
use super::resource::resource_matches_query;
use crate::decision::{Obligation, Reason};
use crate::fhir::SearchParam;
use crate::scope::ResourceScope;
use std::collections::HashMap;

/// Evaluate granular scopes (all on the same context, type and letter).
pub(super) fn granular(
    rtype: &str,
    rule: Rule<'_>,
    g: &[&ResourceScope],
) -> Result<Option<Obligation>, Fail> {
    let queries = || g.iter().map(|s| s.raw_query.clone()).collect::<Vec<_>>();
    match rule {
        Rule::Search(params) => {
            if search_within_granular(params, g) {
                Ok(None)
            } else {
                Err(fail(
                    Reason::GranularScopeViolation,
                    format!(
                        "the {rtype} search must be restricted to the granted scope queries ({}) with the same parameter and values inside them",
                        queries().join(" or ")
                    ),
                ))
            }
        }
        Rule::ReadId(_) | Rule::Included => Ok(Some(Obligation::CheckResponseGranular {
            resource_type: rtype.to_string(),
            queries: queries(),
        })),
        Rule::Write(Some(res), _) if g.iter().any(|s| resource_matches_query(res, &s.raw_query)) => Ok(None),
        _ => Err(fail(
            Reason::GranularScopeViolation,
            format!(
                "the granted {rtype} scopes are restricted to {} and this request cannot be shown to stay inside them",
                queries().join(" or ")
            ),
        )),
    }
}

/// Whether a search stays inside granular scopes: inside one scope's whole
/// query, or (for single-parameter scopes) inside the union of the values
/// granted for one parameter.
fn search_within_granular(params: &[SearchParam], g: &[&ResourceScope]) -> bool {
    let within = |name: &str, ok: &dyn Fn(&str) -> bool| {
        params.iter().any(|sp| {
            sp.name == name
                && sp.modifier.is_none()
                && sp.chain.is_none()
                && !sp.values.is_empty()
                && sp.values.iter().all(|v| ok(v))
        })
    };
    if g.iter().any(|s| {
        s.query
            .iter()
            .all(|q| within(&q.name, &|v| value_within(v, &q.value)))
    }) {
        return true;
    }
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
        .iter()
        .any(|(name, vals)| within(name, &|v| vals.iter().any(|g| value_within(v, g))))
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
