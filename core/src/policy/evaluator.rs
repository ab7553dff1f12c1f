//! The evaluator: every interaction is reduced to *needs* (SMART letters on
//! a resource type plus a [`Rule`] for patient/ scopes), and each need is
//! met, in this order, by a user/ or system/ scope (type and letters only),
//! a user/ or system/ granular scope (a search must carry the scope's
//! parameter; reads get a response obligation), or a patient/ scope (patient
//! context + [`patient_rule`], possibly granular too).

use super::context::AuthContext;
use super::granular::granular;
use super::need::{fail, Fail, Met, Rule, ScopeContexts};
use super::patient_rule::patient_rule;
use super::settings::PolicyConfig;
use crate::decision::{Narrowing, Obligation, Reason};
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
    /// `fhir_base_url`: absolute references to the context patient.
    pub(super) base_url: Option<&'a str>,
    pub(super) ctx: &'a AuthContext,
    pub(super) obligations: Vec<Obligation>,
    /// What the URL needs for the allow to hold (narrowing), and whether it
    /// rests on search parameters.
    pub(super) narrowing: Narrowing,
    /// A search's missing pin or granular parameter may be added to its URL
    /// (`policy.patient_search = narrow`, and not a Bundle entry).
    may_narrow: bool,
    needs: Vec<Need>,
    /// Some need was met through a patient/ scope.
    pub(super) used_patient: bool,
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(policy: &'a PolicyConfig, base: &'a FhirBase, ctx: &'a AuthContext) -> Self {
        Evaluator {
            policy,
            base_url: base.url.as_deref(),
            ctx,
            obligations: Vec::new(),
            narrowing: Narrowing::default(),
            may_narrow: policy.narrows_patient_searches(),
            needs: Vec::new(),
            used_patient: false,
        }
    }

    /// No narrowing: a Bundle entry's URL cannot be changed.
    pub(super) fn without_narrowing(mut self) -> Self {
        self.may_narrow = false;
        self
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

    /// What meeting a need left to do.
    fn apply(&mut self, met: Met) {
        if let Some(o) = met.obligation {
            self.push_obligation(o);
        }
        self.narrowing.merge(met.narrowing);
    }

    /// Meet `letters` on `rtype` under `rule`; a need that fails is recorded
    /// for `required_scopes` too.
    pub(super) fn need(
        &mut self,
        rtype: &str,
        letters: Perms,
        rule: Rule<'_>,
        allowed: ScopeContexts,
    ) -> Result<(), Fail> {
        let met = self.try_need(rtype, letters, rule, allowed);
        if met.is_err() {
            self.record_unmet(rtype, letters, allowed);
        }
        met
    }

    /// [`Self::need`] that leaves no trace when it fails (an alternative).
    pub(super) fn try_need(
        &mut self,
        rtype: &str,
        letters: Perms,
        rule: Rule<'_>,
        allowed: ScopeContexts,
    ) -> Result<(), Fail> {
        let mut used = None;
        for letter in letters.letters() {
            let c = self.letter(rtype, letter, rule, allowed)?;
            if c == ScopeContext::Patient {
                self.used_patient = true;
            }
            used = Some(c);
        }
        let c = used.unwrap_or_else(|| self.preferred(allowed));
        self.record(rtype, letters, c);
        Ok(())
    }

    /// A need no scope met, in the context to suggest.
    pub(super) fn record_unmet(&mut self, rtype: &str, letters: Perms, allowed: ScopeContexts) {
        let pref = self.preferred(allowed);
        self.record(rtype, letters, pref);
    }

    /// Meet one letter: the context that met it, or why none did. A search
    /// is first met as sent; only when that fails may it be narrowed (a
    /// parameter added to its URL), and then that attempt's failure is the
    /// answer.
    fn letter(
        &mut self,
        rtype: &str,
        letter: Perms,
        rule: Rule<'_>,
        allowed: ScopeContexts,
    ) -> Result<ScopeContext, Fail> {
        match self.letter_as(rtype, letter, rule, allowed, false) {
            Err(_) if self.may_narrow && rule.narrowable() => {
                self.letter_as(rtype, letter, rule, allowed, true)
            }
            met => met,
        }
    }

    /// [`Self::letter`], narrowing or not.
    fn letter_as(
        &mut self,
        rtype: &str,
        letter: Perms,
        rule: Rule<'_>,
        allowed: ScopeContexts,
        narrow: bool,
    ) -> Result<ScopeContext, Fail> {
        let scopes = &self.ctx.scopes;
        for c in [ScopeContext::System, ScopeContext::User] {
            if allowed.allows(c) && scopes.grants(c, rtype, letter) {
                return Ok(c);
            }
        }
        let mut last: Option<Fail> = None;
        for c in [ScopeContext::System, ScopeContext::User] {
            if !allowed.allows(c) {
                continue;
            }
            let g: Vec<&ResourceScope> = scopes.granular(c, rtype, letter).collect();
            if g.is_empty() {
                continue;
            }
            match granular(rtype, rule, &g, narrow) {
                Ok(met) => {
                    self.apply(met);
                    return Ok(c);
                }
                Err(f) => last = Some(f),
            }
        }
        if allowed.allows(ScopeContext::Patient) {
            if let Some(met) = self.through_patient_scope(rtype, letter, rule, narrow) {
                // The last step: its failure is the answer.
                return met.map(|()| ScopeContext::Patient);
            }
        }
        Err(last.unwrap_or_else(|| {
            fail(
                Reason::InsufficientScope,
                format!("no granted scope allows {letter} on {rtype}"),
            )
        }))
    }

    /// Meet one letter through a patient/ scope: `None` when no patient/
    /// scope grants it, else whether the patient context and the
    /// [`patient_rule`] (and a granular scope's query) allow it.
    fn through_patient_scope(
        &mut self,
        rtype: &str,
        letter: Perms,
        rule: Rule<'_>,
        narrow: bool,
    ) -> Option<Result<(), Fail>> {
        let scopes = &self.ctx.scopes;
        let plain = scopes.grants(ScopeContext::Patient, rtype, letter);
        let g: Vec<&ResourceScope> = scopes
            .granular(ScopeContext::Patient, rtype, letter)
            .collect();
        if !plain && g.is_empty() {
            return None;
        }
        let Some(patient) = self.ctx.patient.as_deref() else {
            return Some(Err(fail(
                Reason::NoPatientContext,
                format!(
                    "a patient/ scope grants {letter} on {rtype} but the token carries no patient context; launch the app with launch/patient or use a user/ scope"
                ),
            )));
        };
        let found = match patient_rule(self.policy, self.base_url, rtype, rule, patient, narrow) {
            Ok(m) if plain => Ok(vec![m]),
            Ok(m) => granular(rtype, rule, &g, narrow).map(|gm| vec![m, gm]),
            Err(f) => Err(f),
        };
        Some(found.map(|mets| {
            for m in mets {
                self.apply(m);
            }
        }))
    }

    pub(super) fn required_scopes(&self) -> Vec<String> {
        self.needs
            .iter()
            .map(|n| render(n.context, &n.resource_type, n.letters, ""))
            .collect()
    }
}
