//! `$operations`: the row of `policy.operations` that permits one, and the
//! needs it implies (letters on its target types, who may invoke it, and
//! what a patient/ scope additionally requires).

use super::evaluator::Evaluator;
use super::need::{fail, Criteria, Fail, Rule, ScopeContexts, WriteTo};
use super::settings::{OpLevel, OpPatientRule, OpTarget, OperationRule};
use crate::decision::Reason;
use crate::fhir::{Interaction, Level};
use crate::scope::{Perms, ScopeContext};

pub(super) fn operation(ev: &mut Evaluator<'_>, it: &Interaction) -> Result<(), Fail> {
    let name = it.operation.as_deref().unwrap_or("");
    let rtype = it.resource_type.as_deref();
    let policy = ev.policy;
    let Some(rule) = find_rule(&policy.operations, name, it.level, rtype) else {
        return Err(fail(
            Reason::OperationNotPermitted,
            format!(
                "operation {name} at {} level{} is not permitted (not in policy.operations)",
                format!("{:?}", it.level).to_lowercase(),
                rtype.map(|t| format!(" on {t}")).unwrap_or_default()
            ),
        ));
    };
    if rule.target == OpTarget::None {
        return Ok(());
    }
    let letters = Perms::parse_any_order(&rule.letters).unwrap_or(Perms::ALL);
    let patient_rule = patient_rule_of(rule, it);
    let allowed = contexts_of(rule);
    if rule.target == OpTarget::AnyType {
        return any_type(ev, name, letters, allowed, rule);
    }
    if name == "$export" && rule.target == OpTarget::TypeParam {
        return super::export::export(ev, it, rule, letters, allowed);
    }
    for t in targets(rule, it) {
        ev.need(&t, letters, patient_rule, allowed).map_err(|f| {
            fail(
                f.reason,
                format!("operation {name}{}: {}", only_contexts(rule), f.message),
            )
        })?;
    }
    if ev.used_patient && it.params("_mdm").next().is_some() {
        return Err(fail(
            Reason::OperationNotPermitted,
            format!("operation {name}: `_mdm` reaches other patients' linked records and is refused under patient/ scopes; send it without `_mdm`"),
        ));
    }
    Ok(())
}

/// `target: any_type`: a plain scope in an allowed context with the letters
/// on some type (patient/ scopes never: the request names no patient).
fn any_type(
    ev: &mut Evaluator<'_>,
    name: &str,
    letters: Perms,
    allowed: ScopeContexts,
    rule: &OperationRule,
) -> Result<(), Fail> {
    let met = ev.ctx.scopes.scopes.iter().find(|s| {
        s.context != ScopeContext::Patient
            && allowed.allows(s.context)
            && !s.is_granular()
            && s.perms.contains(letters)
    });
    if let Some(s) = met {
        let (context, t) = (s.context, s.resource_type.clone());
        ev.record(t.as_deref().unwrap_or("*"), letters, context);
        return Ok(());
    }
    let preferred = ev.preferred(allowed.without_patient());
    ev.record("*", letters, preferred);
    Err(fail(
        Reason::InsufficientScope,
        format!(
            "operation {name}{} needs a scope with `{letters}` on some type",
            only_contexts(rule)
        ),
    ))
}

/// The first row naming the operation at this level (and type).
fn find_rule<'r>(
    rules: &'r [OperationRule],
    name: &str,
    level: Level,
    rtype: Option<&str>,
) -> Option<&'r OperationRule> {
    let level = match level {
        Level::System => OpLevel::System,
        Level::Type => OpLevel::Type,
        Level::Instance => OpLevel::Instance,
    };
    rules.iter().find(|r| {
        r.name == name
            && r.levels.contains(&level)
            && (r.types.is_empty() || rtype.is_some_and(|t| r.types.iter().any(|x| x == t)))
    })
}

/// The scope contexts that may authorize it (`contexts`; empty = all).
fn contexts_of(rule: &OperationRule) -> ScopeContexts {
    if rule.contexts.is_empty() {
        return ScopeContexts::ALL;
    }
    ScopeContexts {
        patient: rule.contexts.iter().any(|c| c == "patient"),
        user: rule.contexts.iter().any(|c| c == "user"),
        system: rule.contexts.iter().any(|c| c == "system"),
    }
}

/// ` (authorized by patient/, user/ scopes only)` when `contexts` limits it.
pub(super) fn only_contexts(rule: &OperationRule) -> String {
    if rule.contexts.is_empty() {
        return String::new();
    }
    format!(
        " (authorized by {} scopes only)",
        rule.contexts
            .iter()
            .map(|c| format!("{c}/"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// What a patient/ scope must additionally satisfy (`patient`).
fn patient_rule_of<'i>(rule: &OperationRule, it: &'i Interaction) -> Rule<'i> {
    let id = it
        .id
        .as_deref()
        .or(it.compartment.as_ref().map(|c| c.id.as_str()));
    match (rule.patient, id) {
        // No criteria: the operation's parameters (`$everything?category=`)
        // are not a search the server applies, so they meet no granular scope.
        (OpPatientRule::OwnPatient, Some(id)) if rule.target == OpTarget::Compartment => {
            Rule::CompartmentOf(
                it.resource_type.as_deref().unwrap_or("Patient"),
                id,
                Criteria::fixed(&[]),
            )
        }
        (OpPatientRule::OwnPatient, Some(id)) => Rule::ById(id),
        (OpPatientRule::OwnPatient, None) => Rule::NoPatient,
        (OpPatientRule::Pinned, _) => Rule::Search(Criteria::fixed(&it.search)),
        (OpPatientRule::PublicTypes, _) => Rule::Unpinnable,
        (OpPatientRule::Body, _) => Rule::Write(it.resource.as_ref(), WriteTo::New),
        (OpPatientRule::Deny, _) => Rule::NoPatient,
    }
}

/// The types the letters are needed on (`target`).
fn targets(rule: &OperationRule, it: &Interaction) -> Vec<String> {
    match rule.target {
        OpTarget::Resource => vec![it.resource_type.as_deref().unwrap_or("*").to_string()],
        OpTarget::Compartment => vec!["*".to_string()],
        OpTarget::TypeParam => {
            let mut ts: Vec<String> = it.types.clone();
            if ts.is_empty() {
                ts = it
                    .params("_type")
                    .flat_map(|p| p.values.iter().cloned())
                    .collect();
            }
            if ts.is_empty() {
                ts.push("*".into());
            }
            ts
        }
        OpTarget::None | OpTarget::AnyType => Vec::new(),
    }
}
