//! The audit record (IHE BALP / FHIR AuditEvent shaped JSON). Pure.
//!
//! One JSON object per request, written by the filter at decision time (and
//! rewritten when a response obligation fails). The access log adds the
//! response status. Field reference: README.md, "Audit record".
//!
//! Privacy: the record never holds the token, a body, or search parameter
//! *values* (they can carry names, birth dates, identifiers). It holds the
//! parameter names (with modifiers), the resource type/id/version from the
//! path, the compartment, and the context patient id.

mod identity;
mod record;
mod settings;

pub use identity::Identity;
pub use record::{action, record, rfc3339_ms, subtype, AuditInput};
pub use settings::{AuditConfig, AuditEncoding};

#[cfg(test)]
mod tests;
