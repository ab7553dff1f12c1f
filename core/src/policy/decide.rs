//! Deciding one classified interaction against an [`AuthContext`].
//!
//! Every interaction is reduced to *needs*: SMART letters on a resource type
//! plus a patient rule (what a patient/ scope must additionally satisfy).
//! A need is met, in this order, by a user/ or system/ scope (type and
//! letters only), a user/ or system/ granular scope (search must carry the
//! scope's parameter; reads get a response obligation), or a patient/ scope
//! (patient context + compartment rule, possibly granular too).

use super::compartment;
use super::context::AuthContext;
use super::response::{body_in_own_compartment, refers_to_patient, resource_matches_query};
use super::settings::{
    OpLevel, OpPatientRule, OpTarget, PatientPaging, PatientUpdateById, PolicyConfig,
    ReadOutsideRequest,
};
use crate::decision::{Decision, EntryDenial, Obligation, Reason};
use crate::fhir::{FhirBase, Interaction, InteractionKind, Level, SearchParam};
use crate::scope::{render, Perms, ResourceScope, ScopeContext};
use serde_json::Value;
use std::collections::HashMap;

/// Why a need failed.
#[derive(Debug, Clone)]
struct Fail {
    reason: Reason,
    message: String,
}

fn fail(reason: Reason, message: impl Into<String>) -> Fail {
    Fail {
        reason,
        message: message.into(),
    }
}

/// What a patient/ scope must additionally satisfy for a need.
#[derive(Clone, Copy)]
enum Rule<'i> {
    /// Read by id (read, vread, instance history).
    ReadId(&'i str),
    /// A search (or conditional criteria) that must be pinned to the patient.
    Search(&'i [SearchParam]),
    /// Cannot be pinned: only shared reference types.
    Unpinnable,
    /// Create/update body (id = the URL id for updates).
    Write(Option<&'i Value>, Option<&'i str>),
    /// Patch/delete/instance operation by id: only the patient's own Patient.
    ById(&'i str),
    /// Compartment `{ctype}/{id}/...`: only the patient's own compartment.
    CompartmentOf(&'i str, &'i str),
    /// `_include` target / `_revinclude` source: checked on the response.
    Included,
    /// Never under patient/ scopes.
    NoPatient,
}

/// Which scope contexts may satisfy a need.
#[derive(Clone, Copy)]
struct Ctxs {
    patient: bool,
    user: bool,
    system: bool,
}

const ALL_CTXS: Ctxs = Ctxs {
    patient: true,
    user: true,
    system: true,
};

impl Ctxs {
    fn allows(self, c: ScopeContext) -> bool {
        match c {
            ScopeContext::Patient => self.patient,
            ScopeContext::User => self.user,
            ScopeContext::System => self.system,
        }
    }
}

struct Ev<'a> {
    policy: &'a PolicyConfig,
    /// `fhir_base_url`: absolute references to the context patient.
    base_url: Option<&'a str>,
    ctx: &'a AuthContext,
    obligations: Vec<Obligation>,
    /// (type, letters, context that satisfied it or the preferred one).
    needs: Vec<(String, Perms, ScopeContext)>,
    /// Some need was met through a patient/ scope.
    used_patient: bool,
}

impl<'a> Ev<'a> {
    fn new(policy: &'a PolicyConfig, base: &'a FhirBase, ctx: &'a AuthContext) -> Self {
        Ev {
            policy,
            base_url: base.url.as_deref(),
            ctx,
            obligations: Vec::new(),
            needs: Vec::new(),
            used_patient: false,
        }
    }

    /// The context to suggest in `required_scopes`: the one the token's
    /// clinical scopes already use (patient/ first), else patient/ when the
    /// token has a patient context, else user/.
    fn preferred(&self, ctxs: Ctxs) -> ScopeContext {
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
            .find(|c| ctxs.allows(*c))
            .unwrap_or(System)
    }

    fn record(&mut self, rtype: &str, letters: Perms, c: ScopeContext) {
        if let Some(e) = self
            .needs
            .iter_mut()
            .find(|(t, _, cc)| t == rtype && *cc == c)
        {
            e.1 = e.1.union(letters);
        } else {
            self.needs.push((rtype.to_string(), letters, c));
        }
    }

    fn push_obligation(&mut self, o: Obligation) {
        if !self.obligations.contains(&o) {
            self.obligations.push(o);
        }
    }

    /// Meet `letters` on `rtype` under `rule`.
    fn need(
        &mut self,
        rtype: &str,
        letters: Perms,
        rule: Rule<'_>,
        ctxs: Ctxs,
    ) -> Result<(), Fail> {
        let mut used = None;
        for letter in letters.letters() {
            match self.letter(rtype, letter, rule, ctxs) {
                Ok(c) => {
                    if c == ScopeContext::Patient {
                        self.used_patient = true;
                    }
                    used = Some(c);
                }
                Err(f) => {
                    let pref = self.preferred(ctxs);
                    self.record(rtype, letters, pref);
                    return Err(f);
                }
            }
        }
        let c = used.unwrap_or_else(|| self.preferred(ctxs));
        self.record(rtype, letters, c);
        Ok(())
    }

    fn letter(
        &mut self,
        rtype: &str,
        letter: Perms,
        rule: Rule<'_>,
        ctxs: Ctxs,
    ) -> Result<ScopeContext, Fail> {
        let scopes = &self.ctx.scopes;
        for c in [ScopeContext::System, ScopeContext::User] {
            if ctxs.allows(c) && scopes.grants(c, rtype, letter) {
                return Ok(c);
            }
        }
        let mut last: Option<Fail> = None;
        for c in [ScopeContext::System, ScopeContext::User] {
            if !ctxs.allows(c) {
                continue;
            }
            let g: Vec<&ResourceScope> = scopes.granular(c, rtype, letter).collect();
            if g.is_empty() {
                continue;
            }
            match self.granular(rtype, rule, &g) {
                Ok(obl) => {
                    if let Some(o) = obl {
                        self.push_obligation(o);
                    }
                    return Ok(c);
                }
                Err(f) => last = Some(f),
            }
        }
        if ctxs.allows(ScopeContext::Patient) {
            let plain = scopes.grants(ScopeContext::Patient, rtype, letter);
            let g: Vec<&ResourceScope> = scopes
                .granular(ScopeContext::Patient, rtype, letter)
                .collect();
            if plain || !g.is_empty() {
                let Some(patient) = self.ctx.patient.clone() else {
                    return Err(fail(
                        Reason::NoPatientContext,
                        format!(
                            "a patient/ scope grants {letter} on {rtype} but the token carries no patient context; launch the app with launch/patient or use a user/ scope"
                        ),
                    ));
                };
                match self.patient_rule(rtype, rule, &patient) {
                    Ok(o) => {
                        if plain {
                            if let Some(o) = o {
                                self.push_obligation(o);
                            }
                            return Ok(ScopeContext::Patient);
                        }
                        match self.granular(rtype, rule, &g) {
                            Ok(go) => {
                                for x in [o, go].into_iter().flatten() {
                                    self.push_obligation(x);
                                }
                                return Ok(ScopeContext::Patient);
                            }
                            Err(f) => last = Some(f),
                        }
                    }
                    Err(f) => last = Some(f),
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            fail(
                Reason::InsufficientScope,
                format!("no granted scope allows {letter} on {rtype}"),
            )
        }))
    }

    /// Evaluate granular scopes (all on the same context, type and letter).
    fn granular(
        &self,
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

    fn patient_rule(
        &self,
        rtype: &str,
        rule: Rule<'_>,
        p: &str,
    ) -> Result<Option<Obligation>, Fail> {
        let policy = self.policy;
        let base = self.base_url;
        let violation = |m: String| Err(fail(Reason::PatientCompartmentViolation, m));
        let not_patient_type = || {
            format!(
                "{rtype} is not in the Patient compartment; under patient/ scopes only the patient's own data and the types in policy.patient_scope_public_types are reachable"
            )
        };
        match rule {
            Rule::ReadId(id) => {
                if rtype == "Patient" {
                    if id == p {
                        Ok(None)
                    } else {
                        violation(format!(
                            "Patient/{id} is not the context patient (Patient/{p})"
                        ))
                    }
                } else if compartment::in_compartment(rtype) {
                    match policy.read_outside_request {
                        ReadOutsideRequest::CheckResponse => Ok(Some(Obligation::CheckResponseCompartment {
                            resource_type: rtype.to_string(),
                            patient: p.to_string(),
                        })),
                        ReadOutsideRequest::Deny => violation(format!(
                            "reading {rtype} by id under a patient/ scope is refused (policy.read_outside_request = deny); search with {rtype}?{}={p} instead",
                            first_pin(rtype)
                        )),
                    }
                } else if policy.is_public_type(rtype) {
                    Ok(None)
                } else {
                    violation(not_patient_type())
                }
            }
            Rule::Search(params) => {
                if compartment::in_compartment(rtype) {
                    let pin = pinned(rtype, params, p, base);
                    if pin == Pin::Exact {
                        Ok(None)
                    } else if pin == Pin::BareId {
                        Ok(Some(Obligation::CheckResponseCompartment {
                            resource_type: rtype.to_string(),
                            patient: p.to_string(),
                        }))
                    } else {
                        violation(format!(
                            "a search on {rtype} under a patient/ scope must be restricted to the context patient, e.g. {rtype}?{}={p} (no other patient in the value)",
                            first_pin(rtype)
                        ))
                    }
                } else if policy.is_public_type(rtype) {
                    Ok(None)
                } else {
                    violation(not_patient_type())
                }
            }
            Rule::Unpinnable => {
                if policy.is_public_type(rtype) {
                    Ok(None)
                } else {
                    violation(format!(
                        "this {} interaction cannot be restricted to the context patient",
                        if rtype == "*" { "system-wide" } else { rtype }
                    ))
                }
            }
            Rule::Write(resource, id) => {
                if !compartment::in_compartment(rtype) {
                    return violation(format!(
                        "{rtype} is not patient data; patient/ scopes do not write it"
                    ));
                }
                if rtype == "Patient" {
                    match id {
                        None => {
                            return violation(
                                "patient/ scopes do not create Patient resources (the server assigns a new id)".into(),
                            )
                        }
                        Some(id) if id != p => {
                            return violation(format!(
                                "Patient/{id} is not the context patient (Patient/{p})"
                            ))
                        }
                        Some(_) => {}
                    }
                }
                if let Some(id) = id {
                    if rtype != "Patient" && policy.patient_update_by_id == PatientUpdateById::Deny
                    {
                        return violation(format!(
                            "updating {rtype}/{id} by id under a patient/ scope is refused (policy.patient_update_by_id = deny); use a conditional update pinned to Patient/{p}"
                        ));
                    }
                }
                match resource {
                    None => violation(format!(
                        "the {rtype} body is missing or unreadable, so it cannot be shown to belong to Patient/{p}"
                    )),
                    Some(r) => match body_in_own_compartment(r, rtype, p, base) {
                        Ok(()) => Ok(None),
                        Err(m) => violation(m),
                    },
                }
            }
            Rule::ById(id) => {
                if rtype == "Patient" && id == p {
                    Ok(None)
                } else {
                    violation(format!(
                        "{rtype}/{id} cannot be shown to belong to Patient/{p} from the request; under patient/ scopes only the patient's own Patient resource is reachable this way"
                    ))
                }
            }
            Rule::CompartmentOf(ctype, id) => {
                if ctype == "Patient" && id == p {
                    if rtype == "*" || compartment::in_compartment(rtype) {
                        Ok(None)
                    } else {
                        violation(not_patient_type())
                    }
                } else {
                    violation(format!(
                        "{ctype}/{id} is not the context patient's compartment (Patient/{p})"
                    ))
                }
            }
            Rule::Included => {
                if rtype == "*" {
                    if policy.allow_wildcard_include {
                        Ok(Some(Obligation::CheckResponseCompartment {
                            resource_type: "*".into(),
                            patient: p.to_string(),
                        }))
                    } else {
                        violation(
                            "wildcard includes cannot be restricted to the context patient (policy.allow_wildcard_include = false)".into(),
                        )
                    }
                } else if compartment::in_compartment(rtype) {
                    Ok(Some(Obligation::CheckResponseCompartment {
                        resource_type: rtype.to_string(),
                        patient: p.to_string(),
                    }))
                } else if policy.is_public_type(rtype) {
                    Ok(None)
                } else {
                    violation(not_patient_type())
                }
            }
            Rule::NoPatient => violation(format!(
                "this interaction on {rtype} is not available under patient/ scopes"
            )),
        }
    }

    fn interaction(&mut self, it: &Interaction) -> Result<(), Fail> {
        let rtype = it.resource_type.as_deref();
        let need_type = || {
            rtype.ok_or_else(|| fail(Reason::InvalidRequest, "the request names no resource type"))
        };
        let need_id = || {
            it.id
                .as_deref()
                .ok_or_else(|| fail(Reason::InvalidRequest, "the request names no resource id"))
        };
        match it.kind {
            InteractionKind::Capabilities | InteractionKind::SmartConfiguration => Ok(()),
            InteractionKind::Read | InteractionKind::Vread => {
                self.need(need_type()?, Perms::R, Rule::ReadId(need_id()?), ALL_CTXS)
            }
            InteractionKind::History => match it.level {
                Level::Instance => {
                    self.need(need_type()?, Perms::R, Rule::ReadId(need_id()?), ALL_CTXS)
                }
                Level::Type => self.need(need_type()?, Perms::S, Rule::Unpinnable, ALL_CTXS),
                Level::System => self.need("*", Perms::S, Rule::Unpinnable, ALL_CTXS),
            },
            InteractionKind::Search => self.search(it),
            InteractionKind::Create => {
                let t = need_type()?;
                let a = self.need(
                    t,
                    Perms::C,
                    Rule::Write(it.resource.as_ref(), None),
                    ALL_CTXS,
                );
                if it.conditional {
                    let b = self
                        .need(t, Perms::S, Rule::Search(&it.search), ALL_CTXS)
                        .map_err(criteria);
                    return a.and(b);
                }
                a
            }
            InteractionKind::Update => {
                let t = need_type()?;
                let a = self.need(
                    t,
                    Perms::U,
                    Rule::Write(it.resource.as_ref(), it.id.as_deref()),
                    ALL_CTXS,
                );
                if it.conditional {
                    let b = self
                        .need(t, Perms::S, Rule::Search(&it.search), ALL_CTXS)
                        .map_err(criteria);
                    return a.and(b);
                }
                a
            }
            InteractionKind::Patch | InteractionKind::Delete => {
                let t = need_type()?;
                let letter = if it.kind == InteractionKind::Patch {
                    Perms::U
                } else {
                    Perms::D
                };
                if it.conditional {
                    let a = self
                        .need(t, letter, Rule::Search(&it.search), ALL_CTXS)
                        .map_err(criteria);
                    let b = self
                        .need(t, Perms::S, Rule::Search(&it.search), ALL_CTXS)
                        .map_err(criteria);
                    a.and(b)
                } else {
                    self.need(t, letter, Rule::ById(need_id()?), ALL_CTXS)
                }
            }
            InteractionKind::Operation => self.operation(it),
            InteractionKind::Batch | InteractionKind::Transaction => Ok(()), // handled by the caller
            InteractionKind::Paging => self.paging(),
        }
    }

    fn search(&mut self, it: &Interaction) -> Result<(), Fail> {
        if let Some(c) = &it.compartment {
            let targets: Vec<&str> = if !it.types.is_empty() {
                it.types.iter().map(String::as_str).collect()
            } else {
                vec![it.resource_type.as_deref().unwrap_or("*")]
            };
            for t in targets {
                self.need(
                    t,
                    Perms::S,
                    Rule::CompartmentOf(&c.resource_type, &c.id),
                    ALL_CTXS,
                )?;
            }
        } else if it.level == Level::System {
            if it.types.is_empty() {
                self.need("*", Perms::S, Rule::Unpinnable, ALL_CTXS)?;
            } else {
                for t in &it.types {
                    self.need(t, Perms::S, Rule::Search(&it.search), ALL_CTXS)?;
                }
            }
        } else {
            let t = it
                .resource_type
                .as_deref()
                .ok_or_else(|| fail(Reason::InvalidRequest, "the search names no resource type"))?;
            self.need(t, Perms::S, Rule::Search(&it.search), ALL_CTXS)?;
        }
        self.search_features(it)
    }

    /// `_include`, `_revinclude`, `_has` and chained parameters.
    fn search_features(&mut self, it: &Interaction) -> Result<(), Fail> {
        let policy = self.policy;
        for sp in &it.search {
            let rev = match sp.name.as_str() {
                "_include" => false,
                "_revinclude" => true,
                _ => continue,
            };
            for v in &sp.values {
                let (letters, target) = if v == "*" {
                    if self.used_patient && !policy.allow_wildcard_include {
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
                            None if self.used_patient => {
                                return Err(fail(
                                    Reason::IncludeNotPermitted,
                                    format!("`_include={v}` has no target type; name it, e.g. `{v}:Patient`"),
                                ))
                            }
                            None => (Perms::R, "*".to_string()),
                        },
                        (false, [_, _, target]) => (Perms::R, target.to_string()),
                        _ => {
                            return Err(fail(
                                Reason::IncludeNotPermitted,
                                format!("`{}={v}` is not of the form Type:param[:TargetType]", sp.name),
                            ))
                        }
                    }
                };
                self.need(&target, letters, Rule::Included, ALL_CTXS)
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
        }
        // After the includes, so that whether a patient/ scope was used is settled.
        if !self.used_patient {
            return Ok(());
        }
        for sp in &it.search {
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

    fn operation(&mut self, it: &Interaction) -> Result<(), Fail> {
        let name = it.operation.as_deref().unwrap_or("");
        let level = match it.level {
            Level::System => OpLevel::System,
            Level::Type => OpLevel::Type,
            Level::Instance => OpLevel::Instance,
        };
        let rtype = it.resource_type.as_deref();
        let rule = self.policy.operations.iter().find(|r| {
            r.name == name
                && r.levels.contains(&level)
                && (r.types.is_empty() || rtype.is_some_and(|t| r.types.iter().any(|x| x == t)))
        });
        let Some(rule) = rule else {
            return Err(fail(
                Reason::OperationNotPermitted,
                format!(
                    "operation {name} at {} level{} is not permitted (not in policy.operations)",
                    format!("{:?}", it.level).to_lowercase(),
                    rtype.map(|t| format!(" on {t}")).unwrap_or_default()
                ),
            ));
        };
        let ctxs = if rule.contexts.is_empty() {
            ALL_CTXS
        } else {
            Ctxs {
                patient: rule.contexts.iter().any(|c| c == "patient"),
                user: rule.contexts.iter().any(|c| c == "user"),
                system: rule.contexts.iter().any(|c| c == "system"),
            }
        };
        if rule.target == OpTarget::None {
            return Ok(());
        }
        let letters = Perms::parse_any_order(&rule.letters).unwrap_or(Perms::ALL);
        let id = it
            .id
            .as_deref()
            .or(it.compartment.as_ref().map(|c| c.id.as_str()));
        let prule = match (rule.patient, id) {
            (OpPatientRule::OwnPatient, Some(id)) if rule.target == OpTarget::Compartment => {
                Rule::CompartmentOf(rtype.unwrap_or("Patient"), id)
            }
            (OpPatientRule::OwnPatient, Some(id)) => Rule::ById(id),
            (OpPatientRule::OwnPatient, None) => Rule::NoPatient,
            (OpPatientRule::Pinned, _) => Rule::Search(&it.search),
            (OpPatientRule::PublicTypes, _) => Rule::Unpinnable,
            (OpPatientRule::Body, _) => Rule::Write(it.resource.as_ref(), None),
            (OpPatientRule::Deny, _) => Rule::NoPatient,
        };
        let targets: Vec<String> = match rule.target {
            OpTarget::Resource => vec![rtype.unwrap_or("*").to_string()],
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
            OpTarget::None => Vec::new(),
        };
        for t in targets {
            self.need(&t, letters, prule, ctxs).map_err(|f| {
                let only = if rule.contexts.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (authorized by {} scopes only)",
                        rule.contexts
                            .iter()
                            .map(|c| format!("{c}/"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                fail(f.reason, format!("operation {name}{only}: {}", f.message))
            })?;
        }
        Ok(())
    }

    fn paging(&mut self) -> Result<(), Fail> {
        let s = &self.ctx.scopes;
        let unrestricted = s.scopes.iter().any(|x| {
            x.context != ScopeContext::Patient && !x.is_granular() && x.perms.contains(Perms::S)
        });
        if unrestricted {
            return Ok(());
        }
        let patient = s.scopes.iter().any(|x| {
            x.context == ScopeContext::Patient && !x.is_granular() && x.perms.contains(Perms::S)
        });
        if !patient {
            self.record("*", Perms::S, self.preferred(ALL_CTXS));
            return Err(fail(
                Reason::InsufficientScope,
                "paging needs a (non-granular) scope with the s letter on some type",
            ));
        }
        let Some(p) = self.ctx.patient.clone() else {
            return Err(fail(
                Reason::NoPatientContext,
                "paging under patient/ scopes needs a patient context",
            ));
        };
        self.used_patient = true;
        match self.policy.patient_paging {
            PatientPaging::CheckResponse => {
                self.push_obligation(Obligation::CheckResponseCompartment {
                    resource_type: "*".into(),
                    patient: p,
                });
                Ok(())
            }
            PatientPaging::Deny => Err(fail(
                Reason::PatientCompartmentViolation,
                "paging under patient/ scopes is refused (policy.patient_paging = deny); repeat the pinned search instead",
            )),
        }
    }

    fn required_scopes(&self) -> Vec<String> {
        self.needs
            .iter()
            .map(|(t, l, c)| render(*c, t, *l, ""))
            .collect()
    }
}

/// Prefix a failed conditional-criteria need.
fn criteria(f: Fail) -> Fail {
    fail(
        f.reason,
        format!(
            "conditional criteria (query or If-None-Exist): {}",
            f.message
        ),
    )
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

fn first_pin(rtype: &str) -> &'static str {
    if rtype == "Patient" {
        return "_id";
    }
    compartment::params(rtype)
        .and_then(|ps| ps.first())
        .map(|p| p.name)
        .unwrap_or("patient")
}

/// Whether a search on `rtype` is pinned to patient `p`: some parameter
/// instance on a compartment parameter (no chain, no modifier other than
/// `:Patient`) has only values referring to `p`.
fn pinned(rtype: &str, params: &[SearchParam], p: &str, base: Option<&str>) -> Pin {
    let mut best = Pin::No;
    for sp in params {
        if sp.values.is_empty() || sp.chain.is_some() {
            continue;
        }
        if rtype == "Patient" && sp.name == "_id" {
            if sp.modifier.is_none() && sp.values.iter().all(|v| v == p) {
                return Pin::Exact;
            }
            continue;
        }
        if !compartment::is_pin_param(rtype, &sp.name)
            || !matches!(sp.modifier.as_deref(), None | Some("Patient"))
            || !sp
                .values
                .iter()
                .all(|v| refers_to_patient(v, p, base, true))
        {
            continue;
        }
        // A bare id on a parameter that may reference other types
        // (`subject=123` also matches `Group/123`) pins only loosely.
        let typed =
            sp.name == "patient" || sp.modifier.is_some() || sp.values.iter().all(|v| v != p);
        if typed {
            return Pin::Exact;
        }
        best = Pin::BareId;
    }
    best
}

/// How a search is pinned to the context patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    No,
    /// Only through a bare id on a polymorphic reference parameter: allowed,
    /// with a response check that every result is the patient's.
    BareId,
    Exact,
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

/// The outcome of one (non-bundle) interaction, before it becomes a Decision.
struct Outcome {
    res: Result<(), Fail>,
    obligations: Vec<Obligation>,
    required: Vec<String>,
}

fn is_public(policy: &PolicyConfig, it: &Interaction) -> bool {
    match it.kind {
        InteractionKind::Capabilities => policy.public_capabilities,
        InteractionKind::SmartConfiguration => policy.public_smart_configuration,
        _ => false,
    }
}

fn evaluate(
    policy: &PolicyConfig,
    base: &FhirBase,
    it: &Interaction,
    ctx: &AuthContext,
) -> Outcome {
    if is_public(policy, it) {
        return Outcome {
            res: Ok(()),
            obligations: Vec::new(),
            required: Vec::new(),
        };
    }
    let mut ev = Ev::new(policy, base, ctx);
    let res = match it.kind {
        InteractionKind::Batch | InteractionKind::Transaction => Err(fail(
            Reason::InvalidRequest,
            "a bundle entry may not itself be a batch or transaction",
        )),
        _ => ev.interaction(it),
    };
    Outcome {
        res,
        required: ev.required_scopes(),
        obligations: ev.obligations,
    }
}

/// Decide one classified interaction. `ctx` is `None` when the request
/// carries no token. Public endpoints are allowed without one.
pub fn authorize(
    policy: &PolicyConfig,
    base: &FhirBase,
    it: Interaction,
    ctx: Option<&AuthContext>,
) -> Decision {
    if is_public(policy, &it) {
        let mut d = Decision::allow(Reason::PublicEndpoint, it);
        d.message = "public endpoint".into();
        return d;
    }
    let Some(ctx) = ctx else {
        return Decision::deny(
            Reason::MissingToken,
            "this request needs a bearer token (Authorization: Bearer ...)",
        )
        .with_interaction(it);
    };
    let mut d = match it.kind {
        InteractionKind::Batch | InteractionKind::Transaction => bundle(policy, base, ctx, it),
        _ => {
            let o = evaluate(policy, base, &it, ctx);
            let mut d = match o.res {
                Ok(()) => {
                    let mut d = Decision::allow(Reason::Allowed, it);
                    d.obligations = o.obligations;
                    d
                }
                Err(f) => Decision::deny(f.reason, f.message).with_interaction(it),
            };
            d.required_scopes = o.required;
            d
        }
    };
    d.diagnostics.clone_from(&ctx.diagnostics);
    d
}

fn bundle(policy: &PolicyConfig, base: &FhirBase, ctx: &AuthContext, it: Interaction) -> Decision {
    let mut denied = Vec::new();
    let mut obligations: Vec<Obligation> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    for e in &it.entries {
        let sub = evaluate(policy, base, &e.interaction, ctx);
        match sub.res {
            Ok(()) => {
                for o in sub.obligations {
                    if !obligations.contains(&o) {
                        obligations.push(o);
                    }
                }
            }
            Err(f) => {
                for r in &sub.required {
                    if !required.contains(r) {
                        required.push(r.clone());
                    }
                }
                denied.push(EntryDenial {
                    index: e.index,
                    reason: f.reason,
                    message: f.message,
                    required_scopes: sub.required,
                });
            }
        }
    }
    if denied.is_empty() {
        let mut d = Decision::allow(Reason::Allowed, it);
        d.obligations = obligations;
        d
    } else {
        let list: Vec<String> = denied
            .iter()
            .map(|d| format!("#{} {}", d.index, d.reason.as_str()))
            .collect();
        let mut d = Decision::deny(
            Reason::BundleEntryDenied,
            format!(
                "{} of {} bundle entries denied ({}); the whole {} is refused",
                denied.len(),
                it.entries.len(),
                list.join(", "),
                if it.kind == InteractionKind::Batch {
                    "batch"
                } else {
                    "transaction"
                }
            ),
        )
        .with_interaction(it);
        d.denied_entries = denied;
        d.required_scopes = required;
        d
    }
}
