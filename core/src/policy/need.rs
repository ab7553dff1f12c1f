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
