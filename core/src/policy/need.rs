//! The vocabulary of a need: which contexts may meet it, what a patient/
//! scope must additionally satisfy, and why it failed.

use crate::decision::Reason;
use crate::fhir::SearchParam;
use crate::scope::ScopeContext;
use serde_json::Value;

/// Why a need failed.
#[derive(Debug, Clone)]
pub(super) struct Fail {
    pub(super) reason: Reason,
    pub(super) message: String,
}

pub(super) fn fail(reason: Reason, message: impl Into<String>) -> Fail {
    Fail {
        reason,
        message: message.into(),
    }
}

/// What a patient/ scope must additionally satisfy for a need.
#[derive(Clone, Copy)]
pub(super) enum Rule<'i> {
    /// Read by id (read, vread, instance history).
    ReadId(&'i str),
    /// A search (or conditional create criteria) that must be pinned to the patient.
    Search(&'i [SearchParam]),
    /// The criteria of a conditional update/patch/delete: pinned exactly (a
    /// response check would come after the write).
    Criteria(&'i [SearchParam]),
    /// Cannot be pinned: only shared reference types.
    Unpinnable,
    /// A create or update body (`None`: unreadable) and what it writes to.
    Write(Option<&'i Value>, WriteTo<'i>),
    /// A patch document (`None`: unreadable) and the id it patches (`None`:
    /// a conditional patch).
    Patch(Option<&'i Value>, Option<&'i str>),
    /// Delete by id.
    Delete(&'i str),
    /// Instance operation by id: only the patient's own Patient.
    ById(&'i str),
    /// Compartment `{ctype}/{id}/...`: only the patient's own compartment.
    CompartmentOf(&'i str, &'i str),
    /// `_include` target / `_revinclude` source: checked on the response.
    Included,
    /// Never under patient/ scopes.
    NoPatient,
}

/// What a create or update writes to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteTo<'i> {
    /// A new resource (create, `$validate`).
    New,
    /// The resource with this id (update by id).
    Id(&'i str),
    /// The one matching the criteria (conditional update).
    Match,
}

/// Which scope contexts may satisfy a need.
#[derive(Clone, Copy)]
pub(super) struct ScopeContexts {
    pub(super) patient: bool,
    pub(super) user: bool,
    pub(super) system: bool,
}

impl ScopeContexts {
    pub(super) const ALL: ScopeContexts = ScopeContexts {
        patient: true,
        user: true,
        system: true,
    };

    pub(super) fn allows(self, c: ScopeContext) -> bool {
        match c {
            ScopeContext::Patient => self.patient,
            ScopeContext::User => self.user,
            ScopeContext::System => self.system,
        }
    }
}
