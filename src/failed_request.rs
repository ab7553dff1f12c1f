//! A request the shell failed on: a panic it caught while the request was
//! undecided (the native module catches every one; a wasm VM traps and
//! cannot). The core says how it is refused and what its audit record is
//! (`fhir_smart_authz_core::internal_failure`); this counts it as an
//! `internal_error` denial and writes the record where the stream's would
//! go. After a panic the stream is not trusted: only the request headers
//! the host still has are read.

use crate::audit_property::{write_line_record, write_or_keep_record};
use crate::host::{HeaderMap, Host};
use crate::Shared;
use fhir_smart_authz_core::internal_failure::{
    failure_decision, failure_record, failure_reply, FailedRequest,
};
use fhir_smart_authz_core::reply::Reply;

/// What the shell still knows of the failed request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failed {
    pub method: String,
    pub path: String,
    pub request_id: Option<String>,
    /// Its `"line"` record, written when Envoy logs the request.
    line: Option<Vec<u8>>,
}

impl Failed {
    /// Count the failure as a denial (`decision.deny.internal_error`) and
    /// write its audit record (in `"line"` encoding kept for
    /// [`Failed::on_log`]); the reply to send.
    pub fn refuse(host: &dyn Host, shared: &Shared) -> (Failed, Reply) {
        let headers = host.headers(HeaderMap::Request);
        let last = |name: &str| {
            headers
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let mut failed = Failed {
            method: last(":method").unwrap_or_default(),
            path: last(":path").unwrap_or_default(),
            request_id: last("x-request-id"),
            line: None,
        };
        if let Ok(mut m) = shared.metrics.try_borrow_mut() {
            m.decision(host, &failure_decision());
        }
        let config = &shared.config;
        if config.audit.enabled {
            let record = failure_record(
                config,
                &FailedRequest {
                    method: &failed.method,
                    request_id: failed.request_id.as_deref(),
                    now_ms: host.now_ms(),
                },
            );
            failed.line = write_or_keep_record(
                host,
                shared.audit_encoding,
                record,
                &failed.method,
                &failed.path,
            );
        }
        (failed, failure_reply(config))
    }

    /// Envoy logs the request: write the `"line"` record, if any.
    pub fn on_log(&mut self, host: &dyn Host) {
        if let Some(record) = self.line.take() {
            write_line_record(host, record, &self.method, &self.path);
        }
    }
}
