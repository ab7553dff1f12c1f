//! The audit record of the stream: built when the decision is carried out
//! (and again after a response check), and written into the audit property
//! then (`audit.encoding` `"fields"`/`"struct"`/`"json"`) or once when Envoy
//! logs the request (`"line"`), with the response code and timing added.

use super::{Callback, Stream};
use crate::audit_property::{write_line_record, write_or_keep_record};
use crate::host::Host;
use fhir_smart_authz_core::audit::{self, AuditInput};
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
        let encoding = self.shared.audit_encoding;
        if let Some(line) = write_or_keep_record(host, encoding, record, self.method(), self.path())
        {
            self.audit_line = Some(line);
        }
    }

    /// Envoy logs the request: the last record built, in `"line"` encoding
    /// (see [`write_line_record`]).
    pub fn on_log(&mut self, host: &dyn Host) {
        self.callback(Callback::Log);
        if self.audit_line.is_some() {
            self.timed(host, "log", |s| s.log_record(host));
        }
    }

    fn log_record(&mut self, host: &dyn Host) {
        if let Some(record) = self.audit_line.take() {
            write_line_record(host, record, self.method(), self.path());
        }
    }
}
