//! The vocabulary of a need: which contexts may meet it, what a patient/
//! scope must additionally satisfy, and why it failed.

use crate::decision::{AddedParam, Narrowing, Obligation, Reason};
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

/// The parameters of a search (or conditional criteria), and whether a
/// missing pin or granular parameter may be added to its URL (only a
/// search's own URL: never conditional criteria, operations or Bundle
/// entries).
#[derive(Clone, Copy)]
pub(super) struct Criteria<'i> {
    pub(super) params: &'i [SearchParam],
    pub(super) narrowable: bool,
    /// The criteria of a conditional update, patch or delete: under
    /// patient/ scopes pinned exactly (a bare id may name a Group too, and a
    /// response check would come after the write).
    pub(super) exact: bool,
}

impl<'i> Criteria<'i> {
    /// Criteria the filter may only check, never narrow.
    pub(super) fn fixed(params: &'i [SearchParam]) -> Self {
        Criteria {
            params,
            narrowable: false,
            exact: false,
        }
    }

    /// The criteria of a conditional update, patch or delete.
    pub(super) fn write(params: &'i [SearchParam]) -> Self {
        Criteria {
            params,
            narrowable: false,
            exact: true,
        }
    }

    /// A search's own parameters: narrowable.
    pub(super) fn narrowable(params: &'i [SearchParam]) -> Self {
        Criteria {
            params,
            narrowable: true,
            exact: false,
        }
    }
}

/// What a patient/ scope must additionally satisfy for a need.
#[derive(Clone, Copy)]
pub(super) enum Rule<'i> {
    /// Read by id (read, vread, instance history).
    ReadId(&'i str),
    /// A search (or conditional criteria) that must be pinned to the patient.
    Search(Criteria<'i>),
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
    /// Compartment `{ctype}/{id}/...`: only the patient's own compartment
    /// (the criteria matter to granular scopes).
    CompartmentOf(&'i str, &'i str, Criteria<'i>),
    /// `_include` target / `_revinclude` source: checked on the response.
    Included,
    /// A type a chain or `_has` reads to filter the results (never returned):
    /// under patient/ scopes only compartment and shared reference types.
    Traversed,
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

impl Rule<'_> {
    /// Whether no patient/ scope can ever meet the need.
    pub(super) fn never_patient(&self) -> bool {
        matches!(self, Rule::NoPatient)
    }

    /// Whether meeting the need may add parameters to the URL.
    pub(super) fn narrowable(&self) -> bool {
        match self {
            Rule::Search(c) | Rule::CompartmentOf(_, _, c) => c.narrowable,
            _ => false,
        }
    }
}

/// What meeting a need leaves to do besides letting the request through.
#[derive(Debug, Default)]
pub(super) struct Met {
    /// A check of the response.
    pub(super) obligation: Option<Obligation>,
    /// Parameters to add to the URL, and whether the allow rests on
    /// search parameters (`Prefer: handling=strict`).
    pub(super) narrowing: Narrowing,
}

impl Met {
    /// Nothing left to do.
    pub(super) fn done() -> Met {
        Met::default()
    }

    /// The response must be checked.
    pub(super) fn check(o: Obligation) -> Met {
        Met {
            obligation: Some(o),
            ..Met::default()
        }
    }

    /// The allow rests on the search's own parameters.
    pub(super) fn strict() -> Met {
        Met {
            narrowing: Narrowing {
                added: Vec::new(),
                strict: true,
            },
            ..Met::default()
        }
    }

    /// The allow holds once `added` are in the URL.
    pub(super) fn narrowed(added: Vec<AddedParam>) -> Met {
        Met {
            narrowing: Narrowing {
                added,
                strict: true,
            },
            ..Met::default()
        }
    }
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

    /// The same contexts but patient/.
    pub(super) fn without_patient(self) -> ScopeContexts {
        ScopeContexts {
            patient: false,
            ..self
        }
    }

    /// Whether any context may satisfy it.
    pub(super) fn any(self) -> bool {
        self.patient || self.user || self.system
    }

    pub(super) fn allows(self, c: ScopeContext) -> bool {
        match c {
            ScopeContext::Patient => self.patient,
            ScopeContext::User => self.user,
            ScopeContext::System => self.system,
        }
    }
}
