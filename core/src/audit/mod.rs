//! The audit record (IHE BALP / FHIR AuditEvent shaped JSON). Pure.
//!
//! One JSON object per request. With `audit.encoding: "line"` (the default)
//! the filter writes it once, when Envoy logs the request, with the response
//! status and timing added ([`LogFacts`]); with `"struct"`/`"json"` at
//! decision time (rewritten when a response obligation fails), and the access
//! log adds the response status. Field reference: README.md, "Audit record".
//!
//! Privacy: the record never holds the token, a body, or search parameter
//! *values* (they can carry names, birth dates, identifiers). It holds the
//! parameter names (with modifiers), the resource type/id/version from the
//! path, the compartment, and the context patient id.

mod identity;
pub mod pbstruct;
mod record;
mod settings;

pub use identity::Identity;
pub use record::{
    action, add_log_facts, record, record_fields, record_json, rfc3339_ms, subtype, AuditInput,
    LogFacts,
};
pub use settings::{AuditConfig, AuditEncoding};

/// The bytes a shell stores for the record (its JSON text) in this
/// encoding: the text itself, or a `google.protobuf.Struct` for `"struct"`.
pub fn record_bytes(encoding: AuditEncoding, record_json: Vec<u8>) -> Vec<u8> {
    match encoding {
        AuditEncoding::Json | AuditEncoding::Line | AuditEncoding::Fields => record_json,
        AuditEncoding::Struct => {
            let record: serde_json::Value =
                serde_json::from_slice(&record_json).unwrap_or(serde_json::Value::Null);
            pbstruct::encode_struct(&record)
        }
    }
}

#[cfg(test)]
mod tests;
