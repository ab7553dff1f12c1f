//! `$export` (Bulk Data kick-off, IG 2.0/3.0, at system, `Patient` and
//! `Group/[id]` level): the types it exports and every kick-off parameter
//! that widens its output, each decided against the token's scopes.
//!
//! - `_type`: each type needs the operation's letters; without `_type` the
//!   export reaches every type (`*`), and a token with per-type scopes only
//!   is narrowed by adding `_type` with the types it may export (a POST
//!   kick-off, whose parameters are in its body, is refused instead:
//!   `engine`);
//! - `Group/[id]/$export` needs the letters on `Group` too;
//! - `_typeFilter` (`Type?query`), `organizeOutputBy` and type-qualified
//!   `_elements` name types that need the letters; a `_typeFilter` query
//!   may not add resources (`_include`, `_revinclude`, `_contained`,
//!   `_containedType`);
//! - `includeAssociatedData` (`LatestProvenanceResources`,
//!   `RelevantProvenanceResources`) adds Provenance: it needs the letters on
//!   `Provenance`; other (server-defined) values are refused;
//! - `patient` (Patient and Group level only) must name `Patient/<id>`;
//! - `_since`, `_until`, `_outputFormat`, `allowPartialManifests`,
//!   `_format`, `_pretty` only narrow or shape the output;
//! - any other parameter is refused: the filter cannot tell what a server
//!   makes of it.

use super::evaluator::Evaluator;
use super::need::{fail, Fail, Rule, ScopeContexts};
use super::operations::only_contexts;
use super::settings::OperationRule;
use crate::decision::{AddedParam, Reason};
use crate::fhir::{is_valid_id, parse_query, short as shown, Interaction, Level};
use crate::scope::{is_type_name, Perms};

/// The kick-off parameters of Bulk Data 2.0 and 3.0 (and the response
/// shaping ones every FHIR request may carry).
const KNOWN: &[&str] = &[
    "_outputFormat",
    "_since",
    "_until",
    "_type",
    "_elements",
    "patient",
    "includeAssociatedData",
    "_typeFilter",
    "organizeOutputBy",
    "allowPartialManifests",
    "_format",
    "_pretty",
];

/// `_typeFilter` parameters that add resources instead of filtering.
const ADDING: &[&str] = &["_include", "_revinclude", "_contained", "_containedType"];

fn refused(message: String) -> Fail {
    fail(Reason::OperationNotPermitted, message)
}

/// Decide the kick-off `it` (the operations row gave `letters` and the
/// contexts that may authorize it).
pub(super) fn export(
    ev: &mut Evaluator<'_>,
    it: &Interaction,
    rule: &OperationRule,
    letters: Perms,
    allowed: ScopeContexts,
) -> Result<(), Fail> {
    let mut types: Vec<String> = Vec::new();
    let push = |t: &str, types: &mut Vec<String>| {
        if !types.iter().any(|x| x == t) {
            types.push(t.to_string());
        }
    };
    for p in &it.search {
        let name = p.name.as_str();
        if !KNOWN.contains(&name) || p.modifier.is_some() || p.chain.is_some() {
            return Err(refused(format!(
                "$export parameter `{}` is refused: the gateway decides only the Bulk Data kick-off parameters ({})",
                shown(&p.name),
                KNOWN.join(", ")
            )));
        }
        for v in &p.values {
            match name {
                "_type" => push(v, &mut types),
                "_typeFilter" => push(type_filter(v)?, &mut types),
                "organizeOutputBy" => push(v, &mut types),
                "_elements" => {
                    if let Some((t, _)) = v.split_once('.').filter(|(t, _)| is_type_name(t)) {
                        push(t, &mut types);
                    }
                }
                "includeAssociatedData" => match v.as_str() {
                    "LatestProvenanceResources" | "RelevantProvenanceResources" => {
                        push("Provenance", &mut types)
                    }
                    _ => {
                        return Err(refused(format!(
                            "includeAssociatedData=`{}` is refused: only LatestProvenanceResources and RelevantProvenanceResources (which need Provenance) can be decided",
                            shown(v)
                        )))
                    }
                },
                "patient" => patient(it, v)?,
                _ => {}
            }
        }
    }
    let explicit = it.params("_type").next().is_some() || !it.types.is_empty();
    for t in &it.types {
        push(t, &mut types);
    }
    if it.level == Level::Instance && it.resource_type.as_deref() == Some("Group") {
        ev.need("Group", letters, Rule::NoPatient, allowed)
            .map_err(|f| with_op(rule, f))?;
    }
    if !explicit {
        every_type(ev, letters, allowed).map_err(|f| with_op(rule, f))?;
    }
    for t in &types {
        ev.need(t, letters, Rule::NoPatient, allowed)
            .map_err(|f| with_op(rule, f))?;
    }
    Ok(())
}

fn with_op(rule: &OperationRule, f: Fail) -> Fail {
    fail(
        f.reason,
        format!("operation $export{}: {}", only_contexts(rule), f.message),
    )
}

/// No `_type`: every type, or the types the token may export added as `_type`.
fn every_type(ev: &mut Evaluator<'_>, letters: Perms, allowed: ScopeContexts) -> Result<(), Fail> {
    if ev.try_need("*", letters, Rule::NoPatient, allowed).is_ok() {
        return Ok(());
    }
    let mut granted: Vec<String> = Vec::new();
    for s in &ev.ctx.scopes.scopes {
        if let Some(t) = s.resource_type.as_deref() {
            if allowed.allows(s.context)
                && !s.is_granular()
                && ev.ctx.scopes.grants(s.context, t, letters)
                && !granted.iter().any(|g| g == t)
            {
                granted.push(t.to_string());
            }
        }
    }
    if granted.is_empty() {
        return ev.need("*", letters, Rule::NoPatient, allowed);
    }
    ev.narrowing
        .add(AddedParam::new("_type", granted.join(",")));
    // Recorded as the scopes used: the job's later requests need them still.
    for t in &granted {
        ev.need(t, letters, Rule::NoPatient, allowed)?;
    }
    Ok(())
}

/// The type of a `_typeFilter` value (`Type?query`); its query may only filter.
fn type_filter(v: &str) -> Result<&str, Fail> {
    let v_shown = shown(v);
    let Some((t, q)) = v.split_once('?').filter(|(t, _)| is_type_name(t)) else {
        return Err(refused(format!(
            "_typeFilter `{v_shown}` is refused: write each as `Type?query` (repeat _typeFilter rather than separating queries with commas)"
        )));
    };
    let params =
        parse_query(q).map_err(|e| refused(format!("_typeFilter `{v_shown}`: {}", e.message)))?;
    if let Some(p) = params.iter().find(|p| ADDING.contains(&p.name.as_str())) {
        return Err(refused(format!(
            "_typeFilter `{v_shown}` is refused: `{}` adds resources to the export; name the types in _type instead",
            p.name
        )));
    }
    Ok(t)
}

/// `patient`: `Patient/<id>`, at Patient or Group level.
fn patient(it: &Interaction, v: &str) -> Result<(), Fail> {
    if it.level == Level::System {
        return Err(refused(
            "$export parameter `patient` is defined for Patient/$export and Group/[id]/$export only".into(),
        ));
    }
    match v.strip_prefix("Patient/") {
        Some(id) if is_valid_id(id) => Ok(()),
        _ => Err(refused(format!(
            "$export parameter `patient` must be a reference `Patient/<id>` (got `{}`)",
            shown(v)
        ))),
    }
}
