//! `_include` and `_revinclude`: the types they add to a search's response,
//! from the R4 reference targets of the parameter they name.
//!
//! * `_include=S:p:T`: `T` must be a target of `S:p`; `r` on `T`.
//! * `_include=S:p` (no target type, as client libraries write it): every
//!   target of `S:p` may come back. `r` on each; targets the token may not
//!   read are allowed only absent from the response (a response check),
//!   and when it may read none the include is refused.
//! * `_revinclude=S:p[:T]`: `S:p` must be able to point at a searched type
//!   (at `T` when given); `s` on `S`.
//! * `:iterate` (and R3's `:recurse`) follow the same rules; under patient/
//!   scopes every included resource is checked on the response anyway.
//! * `*`: `r` on every type; under patient/ scopes only with
//!   `policy.allow_wildcard_include`.
//!
//! A parameter R4 does not define as a reference of `S`, or that names no
//! target types, is refused: what it returns cannot be known.

use super::evaluator::Evaluator;
use super::need::{fail, Fail, Rule, ScopeContexts};
use crate::decision::{Obligation, Reason};
use crate::fhir::r4;
use crate::fhir::resource_types::resource_type;
use crate::fhir::SearchParam;
use crate::scope::Perms;

pub(super) fn includes(
    ev: &mut Evaluator<'_>,
    params: &[SearchParam],
    types: &[&str],
) -> Result<(), Fail> {
    for sp in params {
        let rev = match sp.name.as_str() {
            "_include" => false,
            "_revinclude" => true,
            _ => continue,
        };
        let iterate = match sp.modifier.as_deref() {
            None => false,
            Some("iterate" | "recurse") => true,
            Some(m) => {
                return Err(invalid(format!(
                    "`{}:{m}`: the only modifier of {} is :iterate",
                    sp.name, sp.name
                )))
            }
        };
        if let Some(c) = &sp.chain {
            return Err(invalid(format!("`{}.{c}` is not an include", sp.name)));
        }
        for v in &sp.values {
            let label = format!("{}{}={v}", sp.name, if iterate { ":iterate" } else { "" });
            if v == "*" {
                wildcard(ev, &label)?;
            } else {
                include(ev, &label, rev, iterate, v, types)?;
            }
        }
    }
    Ok(())
}

fn invalid(message: String) -> Fail {
    fail(Reason::InvalidRequest, message)
}

fn not_permitted(label: &str, f: Fail) -> Fail {
    fail(
        if f.reason == Reason::NoPatientContext {
            f.reason
        } else {
            Reason::IncludeNotPermitted
        },
        format!("`{label}`: {}", f.message),
    )
}

fn wildcard(ev: &mut Evaluator<'_>, label: &str) -> Result<(), Fail> {
    if ev.used_patient && !ev.policy.allow_wildcard_include {
        return Err(fail(
            Reason::IncludeNotPermitted,
            format!("`{label}` is refused under patient/ scopes (policy.allow_wildcard_include = false)"),
        ));
    }
    ev.need("*", Perms::R, Rule::Included, ScopeContexts::ALL)
        .map_err(|f| not_permitted(label, f))
}

/// One `S:p[:T]` value.
fn include(
    ev: &mut Evaluator<'_>,
    label: &str,
    rev: bool,
    iterate: bool,
    value: &str,
    types: &[&str],
) -> Result<(), Fail> {
    let parts: Vec<&str> = value.split(':').collect();
    let (source, param, target) = match parts.as_slice() {
        [s, p] => (*s, *p, None),
        [s, p, t] => (*s, *p, Some(*t)),
        _ => {
            return Err(invalid(format!(
                "`{label}` is not of the form Type:parameter[:TargetType]"
            )))
        }
    };
    let known = |t: &str| {
        resource_type(t)
            .ok_or_else(|| invalid(format!("`{label}`: `{t}` is not an R4 resource type")))
    };
    let source = known(source)?;
    let target = target.map(known).transpose()?;
    let targets = r4::reference_targets(source, param).ok_or_else(|| {
        invalid(format!(
            "`{label}`: `{param}` is not a reference search parameter of {source}"
        ))
    })?;
    if targets.is_empty() {
        return Err(fail(
            Reason::IncludeNotPermitted,
            format!("`{label}`: R4 names no target types for {source}:{param}, so what it returns cannot be known"),
        ));
    }
    if let Some(t) = target {
        if !targets.contains(t) {
            return Err(invalid(format!(
                "`{label}`: {t} is not a type {source}:{param} can point at ({})",
                targets.iter().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    if rev {
        let points_at_searched = |t: &str| target.map_or(targets.contains(t), |x| x == t);
        if !iterate && !types.is_empty() && !types.iter().any(|t| points_at_searched(t)) {
            return Err(invalid(format!(
                "`{label}`: {source}:{param} cannot point at the searched {}",
                types.join(", ")
            )));
        }
        return ev
            .need(source, Perms::S, Rule::Included, ScopeContexts::ALL)
            .map_err(|f| not_permitted(label, f));
    }
    match target {
        Some(t) => ev
            .need(t, Perms::R, Rule::Included, ScopeContexts::ALL)
            .map_err(|f| not_permitted(label, f)),
        None => untyped(ev, label, targets),
    }
}

/// `_include=S:p` without a target type: `r` on the targets the token can
/// read, the others absent from the response.
fn untyped(ev: &mut Evaluator<'_>, label: &str, targets: r4::Targets) -> Result<(), Fail> {
    let mut absent: Vec<String> = Vec::new();
    let mut last = None;
    for t in targets.iter() {
        match ev.try_need(t, Perms::R, Rule::Included, ScopeContexts::ALL) {
            Ok(()) => {}
            Err(f) if f.reason == Reason::NoPatientContext => return Err(not_permitted(label, f)),
            Err(f) => {
                absent.push(t.to_string());
                last = Some(f);
            }
        }
    }
    if absent.len() == targets.len() {
        for t in targets.iter() {
            ev.record_unmet(t, Perms::R, ScopeContexts::ALL);
        }
        let f = last.unwrap_or_else(|| fail(Reason::IncludeNotPermitted, "no target is readable"));
        return Err(fail(
            Reason::IncludeNotPermitted,
            format!(
                "`{label}` can return {}, and the token may read none of them ({}); name a target type the token may read (`{label}:Type`)",
                absent.join(", "),
                f.message
            ),
        ));
    }
    if !absent.is_empty() {
        ev.push_obligation(Obligation::CheckResponseTypesAbsent {
            resource_types: absent,
        });
    }
    Ok(())
}
