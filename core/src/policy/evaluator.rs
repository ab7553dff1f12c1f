//! The evaluator: every interaction is reduced to *needs* (SMART letters on
//! a resource type plus a [`Rule`] for patient/ scopes), and each need is
//! met, in this order, by user/ or system/ scopes (type and letters only;
//! then granular ones: a search must carry the scope's parameter, reads get
//! a response obligation), or by patient/ scopes (patient context +
//! [`patient_rule`], possibly granular too). The letters of one need are met
//! all by user/ and system/ scopes or all by patient/ scopes, never mixed.

use super::context::AuthContext;
use super::granular::granular;
use super::need::{fail, Fail, Rule, ScopeContexts};
use super::patient_rule::patient_rule;
use super::references::RefContext;
use super::settings::PolicyConfig;
use crate::decision::{Obligation, Reason};
use crate::fhir::FhirBase;
use crate::scope::{render, Perms, ResourceScope, ScopeContext};

/// A need as `required_scopes` reports it: the letters on a type and the
/// context that met it (or the one to suggest).
struct Need {
    resource_type: String,
    letters: Perms,
    context: ScopeContext,
}

/// The needs of one interaction, and what meeting them left to do.
pub(super) struct Evaluator<'a> {
    pub(super) policy: &'a PolicyConfig,
    /// How references are read: `fhir_base_url` (absolute references to
    /// the context patient) and, in a Bundle, its Patient entries.
    pub(super) refs: RefContext<'a>,
    pub(super) ctx: &'a AuthContext,
    pub(super) obligations: Vec<Obligation>,
    needs: Vec<Need>,
    /// Some need was met through a patient/ scope.
    pub(super) used_patient: bool,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(policy: &'a PolicyConfig, base: &'a FhirBase, ctx: &'a AuthContext) -> Self {
        Evaluator {
            policy,
            refs: RefContext {
                base_url: base.url.as_deref(),
                bundle: &[],
            },
            ctx,
            obligations: Vec::new(),
            needs: Vec::new(),
            used_patient: false,
        }
    }

    /// The context to suggest in `required_scopes`: the one the token's
    /// clinical scopes already use (patient/ first), else patient/ when the
    /// token has a patient context, else user/.
    pub(super) fn preferred(&self, allowed: ScopeContexts) -> ScopeContext {
        use ScopeContext::{Patient, System, User};
        let s = &self.ctx.scopes;
        let first = if s.has_context(Patient) {
            Patient
        } else if s.has_context(User) {
            User
        } else if s.has_context(System) {
            System
        } else if self.ctx.patient.is_some() {
            Patient
        } else {
            User
        };
        [first, User, System, Patient]
            .into_iter()
            .find(|c| allowed.allows(*c))
            .unwrap_or(System)
    }

    pub(super) fn record(&mut self, rtype: &str, letters: Perms, context: ScopeContext) {
        if let Some(n) = self
            .needs
            .iter_mut()
            .find(|n| n.resource_type == rtype && n.context == context)
        {
            n.letters = n.letters.union(letters);
        } else {
            self.needs.push(Need {
                resource_type: rtype.to_string(),
                letters,
                context,
            });
        }
    }

    pub(super) fn push_obligation(&mut self, o: Obligation) {
        if !self.obligations.contains(&o) {
            self.obligations.push(o);
        }
    }

    /// Meet `letters` on `rtype` under `rule`.
    pub(super) fn need(
        &mut self,
        rtype: &str,
        letters: Perms,
        rule: Rule<'_>,
        allowed: ScopeContexts,
    ) -> Result<(), Fail> {
        self.need_all(rtype, &[(letters, rule)], allowed)
    }

    /// Meet the letters of one interaction on `rtype`, each part under its
    /// rule: all through user/ and system/ scopes (type and letters, or a
    /// granular scope's query), or all through patient/ scopes, with every
    /// part's patient rule. A patient/ letter never combines with a user/ or
    /// system/ one: the patient rule of one letter (a conditional update's
    /// body) would not cover what the other selects (its criteria).
    pub(super) fn need_all(
        &mut self,
        rtype: &str,
        parts: &[(Perms, Rule<'_>)],
        allowed: ScopeContexts,
    ) -> Result<(), Fail> {
        let letters = parts.iter().fold(Perms::NONE, |a, (l, _)| a.union(*l));
        let mut failure = None;
        match self.without_patient(rtype, parts, allowed) {
            Ok((context, obligations)) => return Ok(self.met(rtype, letters, context, obligations)),
            Err(f) => failure = f.or(failure),
        }
        if allowed.allows(ScopeContext::Patient) {
            match self.through_patient_scope(rtype, parts) {
                Some(Ok(obligations)) => {
                    self.used_patient = true;
                    return Ok(self.met(rtype, letters, ScopeContext::Patient, obligations));
                }
                // The last step: its failure is the answer.
                Some(Err(f)) => failure = Some(f),
                None => {}
            }
        }
        let pref = self.preferred(allowed);
        self.record(rtype, letters, pref);
        Err(failure.unwrap_or_else(|| self.not_granted(rtype, letters, allowed)))
    }

    fn met(&mut self, rtype: &str, letters: Perms, c: ScopeContext, obligations: Vec<Obligation>) {
        for o in obligations {
            self.push_obligation(o);
        }
        self.record(rtype, letters, c);
    }

    /// Why no context grants `letters` on `rtype`: a letter nothing grants,
    /// or letters split between patient/ and the other contexts.
    fn not_granted(&self, rtype: &str, letters: Perms, allowed: ScopeContexts) -> Fail {
        let s = &self.ctx.scopes;
        let by = |patient: bool, l: Perms| {
            [ScopeContext::System, ScopeContext::User, ScopeContext::Patient]
                .into_iter()
                .filter(|c| allowed.allows(*c) && (*c == ScopeContext::Patient) == patient)
                .any(|c| s.grants(c, rtype, l) || s.granular(c, rtype, l).next().is_some())
        };
        let missing = |patient: bool| letters.letters().filter(move |l| !by(patient, *l));
        match letters.letters().find(|l| !by(true, *l) && !by(false, *l)) {
            Some(l) => fail(
                Reason::InsufficientScope,
                format!("no granted scope allows {l} on {rtype}"),
            ),
            None => fail(
                Reason::InsufficientScope,
                format!(
                    "{letters} on {rtype} is one interaction: patient/ scopes lack {} and user/ or system/ scopes lack {}; a patient/ letter brings the patient rule for the whole interaction, so ask for {letters} in one context (e.g. patient/{rtype}.{letters})",
                    missing(true).map(|l| l.to_string()).collect::<String>(),
                    missing(false).map(|l| l.to_string()).collect::<String>(),
                ),
            ),
        }
    }

    /// Meet every letter through user/ or system/ scopes: plain grants
    /// first, then granular ones. `Err(None)`: some letter is not granted
    /// there; `Err(Some)`: a granular scope's query is not met.
    fn without_patient(
        &self,
        rtype: &str,
        parts: &[(Perms, Rule<'_>)],
        allowed: ScopeContexts,
    ) -> Result<(ScopeContext, Vec<Obligation>), Option<Fail>> {
        let scopes = &self.ctx.scopes;
        let mut used = None;
        let mut obligations = Vec::new();
        for (letters, rule) in parts {
            for letter in letters.letters() {
                let others = [ScopeContext::System, ScopeContext::User]
                    .into_iter()
                    .filter(|c| allowed.allows(*c));
                if let Some(c) = others.clone().find(|c| scopes.grants(*c, rtype, letter)) {
                    used = Some(c);
                    continue;
                }
                let mut last = None;
                let mut met = false;
                for c in others {
                    let g: Vec<&ResourceScope> = scopes.granular(c, rtype, letter).collect();
                    if g.is_empty() {
                        continue;
                    }
                    match granular(rtype, *rule, &g) {
                        Ok(o) => {
                            obligations.extend(o);
                            used = Some(c);
                            met = true;
                            break;
                        }
                        Err(f) => last = Some(f),
                    }
                }
                if !met {
                    return Err(last);
                }
            }
        }
        used.map(|c| (c, obligations)).ok_or(None)
    }

    /// Meet every letter through patient/ scopes: `None` when they do not
    /// grant them all, else whether the patient context and every part's
    /// [`patient_rule`] (and a granular scope's query) allow it.
    fn through_patient_scope(
        &self,
        rtype: &str,
        parts: &[(Perms, Rule<'_>)],
    ) -> Option<Result<Vec<Obligation>, Fail>> {
        let scopes = &self.ctx.scopes;
        let grants = |l: Perms| {
            let g: Vec<&ResourceScope> =
                scopes.granular(ScopeContext::Patient, rtype, l).collect();
            (scopes.grants(ScopeContext::Patient, rtype, l) || !g.is_empty()).then_some(g)
        };
        let letters = parts.iter().fold(Perms::NONE, |a, (l, _)| a.union(*l));
        if letters.letters().any(|l| grants(l).is_none()) {
            return None;
        }
        let Some(patient) = self.ctx.patient.as_deref() else {
            return Some(Err(fail(
                Reason::NoPatientContext,
                format!(
                    "a patient/ scope grants {letters} on {rtype} but the token carries no patient context; launch the app with launch/patient or use a user/ scope"
                ),
            )));
        };
        let mut obligations = Vec::new();
        for (letters, rule) in parts {
            let met = patient_rule(self.policy, &self.refs, rtype, *rule, patient).and_then(|o| {
                obligations.extend(o);
                for l in letters.letters() {
                    if !scopes.grants(ScopeContext::Patient, rtype, l) {
                        let g = grants(l).unwrap_or_default();
                        obligations.extend(granular(rtype, *rule, &g)?);
                    }
                }
                Ok(())
            });
            if let Err(f) = met {
                return Some(Err(f));
            }
        }
        Some(Ok(obligations))
    }

    pub(super) fn required_scopes(&self) -> Vec<String> {
        self.needs
            .iter()
            .map(|n| render(n.context, &n.resource_type, n.letters, ""))
            .collect()
    }
}
