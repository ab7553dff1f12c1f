//! The audit record of the stream: built when the decision is carried out
//! (and again after a response check), and written into the audit property
//! then (`audit.encoding` `"fields"`/`"struct"`/`"json"`) or once when Envoy
//! logs the request (`"line"`), with the response code and timing added.

use super::{Callback, Stream};
use crate::audit_property::write_audit_record;
use crate::host::{property_u64, Host};
use fhir_smart_authz_core::audit::{
    self, add_log_facts, record_fields, AuditEncoding, AuditInput, LogFacts,
};
use fhir_smart_authz_core::decision::Decision;

impl Stream {
    /// The record of decision `d` (and of a response check): written now,
    /// or kept for [`Stream::on_log`] in `"line"` encoding.
    pub(super) fn write_audit(
        &mut self,
        host: &dyn Host,
        d: &Decision,
        obligation: Option<Result<(), String>>,
    ) {
        let status = self.shared.config.responses.obligation_denied_status;
        self.write_audit_as(host, d, obligation, status);
    }

    /// [`Self::write_audit`] with the status a failed obligation answers.
    pub(super) fn write_audit_as(
        &mut self,
        host: &dyn Host,
        d: &Decision,
        obligation: Option<Result<(), String>>,
        obligation_denied_status: u16,
    ) {
        self.timed(host, "audit", |s| {
            s.audit_record(host, d, obligation, obligation_denied_status)
        });
    }

    fn audit_record(
        &mut self,
        host: &dyn Host,
        d: &Decision,
        obligation: Option<Result<(), String>>,
        obligation_denied_status: u16,
    ) {
        let config = &self.shared.config;
        if !config.audit.enabled {
            return;
        }
        let record = audit::record_json(
            &config.audit,
            &AuditInput {
                method: self.method(),
                request_id: self.request_id(),
                decision: d,
                identity: self.facts().map(|f| &f.identity),
                enforced: config.enforce,
                now_ms: self.now_ms(host),
                obligation_result: obligation,
                obligation_denied_status,
            },
        );
        match self.shared.audit_encoding {
            AuditEncoding::Line => self.audit_line = Some(record),
            AuditEncoding::Fields => write_audit_record(
                host,
                AuditEncoding::Fields,
                record_fields(record, self.method(), self.path()),
            ),
            encoding => write_audit_record(host, encoding, record),
        }
    }

    /// Envoy logs the request. Its wasm host runs `on_log` before the access
    /// loggers of the listener, so a record written here is in this
    /// request's access-log line (`"line"` encoding): the last record built,
    /// with the response code, duration, start time, method and path.
    pub fn on_log(&mut self, host: &dyn Host) {
        self.callback(Callback::Log);
        if self.audit_line.is_some() {
            self.timed(host, "log", |s| s.log_record(host));
        }
    }

    fn log_record(&mut self, host: &dyn Host) {
        let Some(mut record) = self.audit_line.take() else {
            return;
        };
        let number = |path: &[&str]| host.property(path).as_deref().and_then(property_u64);
        let duration_ns = number(&["request", "duration"]).unwrap_or(0);
        // Envoy's start time to the millisecond, from one clock read (µs).
        let start_us = host.now_us().saturating_sub(duration_ns / 1000);
        let facts = LogFacts {
            method: self.method(),
            path: self.path(),
            response_code: number(&["response", "code"]).unwrap_or(0),
            duration_ms: duration_ns / 1_000_000,
            start_ms: start_us / 1000,
        };
        add_log_facts(&mut record, &facts);
        write_audit_record(host, AuditEncoding::Line, record);
    }
}
