//! A narrowed allow carried out: the request the upstream receives gets the
//! decision's rewritten `:path` and headers (`Prefer: handling=strict`)
//! before it goes on. When its headers already went upstream (a
//! body-decided request without `upstream.hold_headers_for_body`), the
//! filter sends the rewritten request itself (the relay) and the original
//! one, still without its body, is reset by the local reply: never
//! forwarded unnarrowed.

use super::Stream;
use crate::host::{HeaderMap, Host, LogLevel};
use fhir_smart_authz_core::decision::{Decision, Reason, Rewrite};
use fhir_smart_authz_core::disposition::narrows_held_request;

impl Stream {
    /// Apply an allowed decision's rewrite to the held request (enforced,
    /// its headers not yet upstream), before the decision is counted and
    /// audited: when the host refuses to set `:path` or a header, the
    /// decision becomes a 500 `internal_error` denial, so the reply, the
    /// audit record and the metrics all say the request was not forwarded.
    pub(super) fn narrow_held_request(&mut self, host: &dyn Host, d: Decision) -> Decision {
        let forwarded = self.forwarded_headers.is_some();
        if !narrows_held_request(self.shared.config.enforce, &d, forwarded) {
            return d;
        }
        let Some(rw) = d.rewrite.as_ref() else {
            return d;
        };
        match set_request_headers(host, rw, self.path()) {
            Ok(()) => {
                let counter = if rw.added.is_empty() {
                    "rewrite.strict"
                } else {
                    "rewrite.narrowed"
                };
                self.shared.count(host, counter);
                d
            }
            Err(name) => {
                host.log(
                    LogLevel::Error,
                    &format!("could not set {name} of a narrowed request"),
                );
                self.shared.count(host, "rewrite.failed");
                let mut denial = Decision::deny(
                    Reason::InternalError,
                    format!("the gateway could not narrow the request to what the token allows (the proxy refused to set {name}); it was not forwarded"),
                );
                denial.interaction = d.interaction;
                denial
            }
        }
    }
}

/// The rewrite's changes on the request; `Err` names the header the host
/// refused.
fn set_request_headers<'r>(host: &dyn Host, rw: &'r Rewrite, path: &str) -> Result<(), &'r str> {
    for (name, value) in rw.changes(Some(path)) {
        if host.set_header(HeaderMap::Request, name, value).is_err() {
            return Err(name);
        }
    }
    Ok(())
}
