//! The evaluator: every interaction is reduced to *needs* (SMART letters on
//! a resource type plus a [`Rule`] for patient/ scopes), and each need is
//! met, in this order, by user/ or system/ scopes (type and letters only;
//! then granular ones: a search must carry the scope's parameter, reads get
//! a response obligation), or by patient/ scopes (patient context +
//! [`patient_rule`], possibly granular too). The letters of one need are met
//! all by user/ and system/ scopes or all by patient/ scopes, never mixed.

use super::context::AuthContext;
use super::granular::granular;
use super::need::{fail, Fail, Met, Rule, ScopeContexts};
use super::patient_rule::patient_rule;
use super::references::RefContext;
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
    /// How references are read: `fhir_base_url` (absolute references to
    /// the context patient) and, in a Bundle, its Patient entries.
    pub(super) refs: RefContext<'a>,
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
            refs: RefContext {
                base_url: base.url.as_deref(),
                bundle: &[],
            },
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

    /// The context to suggest in `required_scopes`: one of `allowed` the
    /// token's clinical scopes already use (patient/ first), else patient/
    /// when the token has a patient context, else user/.
    pub(super) fn preferred(&self, allowed: ScopeContexts) -> ScopeContext {
        use ScopeContext::{Patient, System, User};
        let s = &self.ctx.scopes;
        let used = [Patient, User, System]
            .into_iter()
            .find(|c| s.has_context(*c) && allowed.allows(*c));
        let first = match used {
            Some(c) => c,
            None if self.ctx.patient.is_some() => Patient,
            None => User,
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
        self.need_all(rtype, &[(letters, rule)], allowed)
    }

    /// [`Self::need`] that leaves no trace when it fails (an alternative).
    pub(super) fn try_need(
        &mut self,
        rtype: &str,
        letters: Perms,
        rule: Rule<'_>,
        allowed: ScopeContexts,
    ) -> Result<(), Fail> {
        self.try_need_all(rtype, &[(letters, rule)], allowed)
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
        let met = self.try_need_all(rtype, parts, allowed);
        if met.is_err() {
            let letters = parts.iter().fold(Perms::NONE, |a, (l, _)| a.union(*l));
            // Suggest only a context that could meet it: a patient/ scope
            // never meets `Rule::NoPatient`, whatever it grants.
            let suggestable = if parts.iter().any(|(_, r)| r.never_patient()) {
                allowed.without_patient()
            } else {
                allowed
            };
            if suggestable.any() {
                self.record_unmet(rtype, letters, suggestable);
            }
        }
        met
    }

    /// [`Self::need_all`] that leaves no trace when it fails. A search is
    /// first met as sent; only when that fails may it be narrowed (a
    /// parameter added to its URL), and then that attempt's failure is the
    /// answer.
    fn try_need_all(
        &mut self,
        rtype: &str,
        parts: &[(Perms, Rule<'_>)],
        allowed: ScopeContexts,
    ) -> Result<(), Fail> {
        let narrowable = self.may_narrow && parts.iter().any(|(_, r)| r.narrowable());
        match self.meet(rtype, parts, allowed, false) {
            Err(_) if narrowable => self.meet(rtype, parts, allowed, true),
            met => met,
        }
    }

    /// A need no scope met, in the context to suggest.
    pub(super) fn record_unmet(&mut self, rtype: &str, letters: Perms, allowed: ScopeContexts) {
        let pref = self.preferred(allowed);
        self.record(rtype, letters, pref);
    }

    /// One attempt (narrowing or not) at [`Self::try_need_all`].
    fn meet(
        &mut self,
        rtype: &str,
        parts: &[(Perms, Rule<'_>)],
        allowed: ScopeContexts,
        narrow: bool,
    ) -> Result<(), Fail> {
        let mut letters = Perms::NONE;
        for (l, _) in parts {
            letters = letters.union(*l);
        }
        let mut failure = match self.without_patient(rtype, parts, allowed, narrow) {
            Ok((c, mets)) => {
                mets.into_iter().for_each(|m| self.apply(m));
                self.record(rtype, letters, c);
                return Ok(());
            }
            Err(f) => f,
        };
        if allowed.patient {
            match self.through_patient_scope(rtype, letters, parts, narrow) {
                Some(Ok(mets)) => {
                    mets.into_iter().for_each(|m| self.apply(m));
                    self.used_patient = true;
                    self.record(rtype, letters, ScopeContext::Patient);
                    return Ok(());
                }
                // The last step: its failure is the answer.
                Some(Err(f)) => failure = Some(f),
                None => {}
            }
        }
        Err(failure.unwrap_or_else(|| self.not_granted(rtype, letters)))
    }

    /// How `c` grants `letter` on `rtype`: `None` not at all, else the
    /// granular scopes that do (empty: a plain scope does).
    fn granted<'s>(
        &'s self,
        c: ScopeContext,
        rtype: &'s str,
        letter: Perms,
    ) -> Option<Vec<&'s ResourceScope>> {
        let scopes = &self.ctx.scopes;
        if scopes.grants(c, rtype, letter) {
            return Some(Vec::new());
        }
        let g: Vec<&ResourceScope> = scopes.granular(c, rtype, letter).collect();
        (!g.is_empty()).then_some(g)
    }

    /// Why no context grants `letters` on `rtype`: one of them nowhere, or
    /// not all in one context group.
    fn not_granted(&self, rtype: &str, letters: Perms) -> Fail {
        fail(
            Reason::InsufficientScope,
            format!("no granted scope allows {letters} on {rtype} in one context (patient/ alone, or user/ and system/ alone: one interaction's letters are never split between them)"),
        )
    }

    /// Meet every letter through user/ or system/ scopes: plain grants
    /// first, then granular ones. `Err(None)`: some letter is not granted
    /// there; `Err(Some)`: a granular scope's query is not met.
    fn without_patient(
        &self,
        rtype: &str,
        parts: &[(Perms, Rule<'_>)],
        allowed: ScopeContexts,
        narrow: bool,
    ) -> Result<(ScopeContext, Vec<Met>), Option<Fail>> {
        let mut used = ScopeContext::User;
        let mut mets = Vec::new();
        for (letters, rule) in parts {
            'letter: for letter in letters.letters() {
                let mut last = None;
                for granular_pass in [false, true] {
                    for c in [ScopeContext::System, ScopeContext::User] {
                        let Some(g) = self.granted(c, rtype, letter).filter(|_| allowed.allows(c))
                        else {
                            continue;
                        };
                        if g.is_empty() != granular_pass {
                            used = c;
                            if granular_pass {
                                match granular(rtype, *rule, &g, narrow) {
                                    Ok(m) => mets.push(m),
                                    Err(f) => {
                                        last = Some(f);
                                        continue;
                                    }
                                }
                            }
                            continue 'letter;
                        }
                    }
                }
                return Err(last);
            }
        }
        Ok((used, mets))
    }

    /// Meet every letter through patient/ scopes: `None` when they do not
    /// grant them all, else whether the patient context and every part's
    /// [`patient_rule`] (and a granular scope's query) allow it.
    fn through_patient_scope(
        &self,
        rtype: &str,
        letters: Perms,
        parts: &[(Perms, Rule<'_>)],
        narrow: bool,
    ) -> Option<Result<Vec<Met>, Fail>> {
        for l in letters.letters() {
            self.granted(ScopeContext::Patient, rtype, l)?;
        }
        let Some(patient) = self.ctx.patient.as_deref() else {
            return Some(Err(fail(
                Reason::NoPatientContext,
                format!(
                    "a patient/ scope grants {letters} on {rtype} but the token carries no patient context; launch the app with launch/patient or use a user/ scope"
                ),
            )));
        };
        let mut mets = Vec::new();
        for (letters, rule) in parts {
            match patient_rule(self.policy, &self.refs, rtype, *rule, patient, narrow) {
                Ok(m) => mets.push(m),
                Err(f) => return Some(Err(f)),
            }
            for l in letters.letters() {
                let g = self.granted(ScopeContext::Patient, rtype, l)?;
                if !g.is_empty() {
                    match granular(rtype, *rule, &g, narrow) {
                        Ok(m) => mets.push(m),
                        Err(f) => return Some(Err(f)),
                    }
                }
            }
        }
        Some(Ok(mets))
    }

    pub(super) fn required_scopes(&self) -> Vec<String> {
        self.needs
            .iter()
            .map(|n| render(n.context, &n.resource_type, n.letters, ""))
            .collect()
    }
}
