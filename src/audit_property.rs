//! Where the audit record goes: the stream property (filter state
//! `wasm.fhir_smart_authz_audit`) that the access log prints, as JSON text
//! or a `google.protobuf.Struct` (declared once per root context).

use crate::host::{property_u64, Host, HostError, LogLevel};
use fhir_smart_authz_core::audit::pbstruct::declare_property_args;
use fhir_smart_authz_core::audit::{
    add_log_facts, record_bytes, record_fields, AuditEncoding, LogFacts,
};
use fhir_smart_authz_core::config::Config;

/// Property (filter state `wasm.fhir_smart_authz_audit`) holding the audit record.
pub const AUDIT_PROPERTY: &str = "fhir_smart_authz_audit";

/// The type the property is declared with in `"struct"` encoding.
pub const STRUCT_TYPE_URL: &str = "type.googleapis.com/google.protobuf.Struct";

/// Envoy's foreign function that declares a property's type.
pub const DECLARE_PROPERTY_FUNCTION: &str = "declare_property";

/// Declare the audit property as a `google.protobuf.Struct` so the access
/// log's `%FILTER_STATE(wasm.fhir_smart_authz_audit:TYPED)%` renders a
/// nested object.
pub fn declare_audit_property(host: &dyn Host) -> Result<(), HostError> {
    let args = declare_property_args(AUDIT_PROPERTY, Some(STRUCT_TYPE_URL));
    host.call_foreign_function(DECLARE_PROPERTY_FUNCTION, &args)
        .map(|_| ())
}

/// The audit encoding of a configuration, given what this root context has
/// already declared. The property is declared (`declare`, Envoy's
/// `declare_property` foreign function) at most once per root context, and
/// only when a configuration asks for `"struct"`:
/// - nothing declared yet: `"line"`/`"fields"`/`"json"` → JSON text (written
///   at log time / at decision time), nothing declared; `"struct"` → declare; on
///   success Struct, if refused JSON text (warned);
/// - already declared as a Struct (an earlier configuration of this root
///   context): Struct, whatever is asked — JSON text would not parse as the
///   declared Struct and the record would be lost, so a text
///   wish is ignored with a warning;
/// - declaration refused earlier: JSON text, without asking again.
pub fn resolve_audit_encoding(
    host: &dyn Host,
    config: &Config,
    declared: &mut Option<Result<(), HostError>>,
    declare: &mut dyn FnMut() -> Result<(), HostError>,
) -> AuditEncoding {
    match declared {
        Some(Ok(())) => {
            if config.audit.encoding.is_text() {
                host.log(
                    LogLevel::Warn,
                    "fhir-smart-authz: audit.encoding \"line\"/\"fields\"/\"json\" ignored: this plugin already declared the audit property as a Struct; the record stays a Struct until Envoy reloads the plugin",
                );
            }
            AuditEncoding::Struct
        }
        // Refused earlier: JSON text, at the time the configuration wants.
        Some(Err(_)) if config.audit.encoding == AuditEncoding::Struct => AuditEncoding::Json,
        Some(Err(_)) => config.audit.encoding,
        None if config.audit.encoding.is_text() => config.audit.encoding,
        None => {
            let r = declare();
            let e = match &r {
                Ok(()) => AuditEncoding::Struct,
                Err(err) => {
                    host.log(
                        LogLevel::Warn,
                        &format!(
                            "fhir-smart-authz: foreign function {DECLARE_PROPERTY_FUNCTION:?} failed ({err:?}); the audit record is written as JSON text"
                        ),
                    );
                    AuditEncoding::Json
                }
            };
            *declared = Some(r);
            e
        }
    }
}

/// Write the record (its JSON text) into the audit property.
pub fn write_audit_record(host: &dyn Host, encoding: AuditEncoding, record_json: Vec<u8>) {
    let bytes = record_bytes(encoding, record_json);
    if host.set_property(&[AUDIT_PROPERTY], &bytes).is_err() {
        host.log(
            LogLevel::Warn,
            "could not write the audit record (set_property failed)",
        );
    }
}

/// A record (the core's JSON text) of a request with `method` and `path`,
/// in `encoding`: written now, or, in `"line"` encoding, handed back to be
/// written by [`write_line_record`] when Envoy logs the request.
pub fn write_or_keep_record(
    host: &dyn Host,
    encoding: AuditEncoding,
    record: Vec<u8>,
    method: &str,
    path: &str,
) -> Option<Vec<u8>> {
    match encoding {
        AuditEncoding::Line => return Some(record),
        AuditEncoding::Fields => write_audit_record(
            host,
            AuditEncoding::Fields,
            record_fields(record, method, path),
        ),
        encoding => write_audit_record(host, encoding, record),
    }
    None
}

/// Envoy logs the request (`"line"` encoding): its host runs the filter's
/// log hook before the access loggers, so the record written here is in
/// this request's access-log line, with the response code, duration, start
/// time, method and path added.
pub fn write_line_record(host: &dyn Host, mut record: Vec<u8>, method: &str, path: &str) {
    let number = |path: &[&str]| host.property(path).as_deref().and_then(property_u64);
    let duration_ns = number(&["request", "duration"]).unwrap_or(0);
    // Envoy's start time to the millisecond, from one clock read (µs).
    let start_us = host.now_us().saturating_sub(duration_ns / 1000);
    let facts = LogFacts {
        method,
        path,
        response_code: number(&["response", "code"]).unwrap_or(0),
        duration_ms: duration_ns / 1_000_000,
        start_ms: start_us / 1000,
    };
    add_log_facts(&mut record, &facts);
    write_audit_record(host, AuditEncoding::Line, record);
}
