//! A narrowed allow carried out: the request the upstream receives gets the
//! decision's rewritten `:path` and headers (`Prefer: handling=strict`)
//! before it goes on. When its headers already went upstream (a
//! body-decided request without `upstream.hold_headers_for_body`), the
//! filter sends the rewritten request itself (the relay) and the original
//! one, still without its body, is reset by the local reply: never
//! forwarded unnarrowed.

use super::Stream;
use crate::host::{Flow, HeaderMap, Host, LogLevel};
use fhir_smart_authz_core::decision::{Decision, Reason, Rewrite};

/// `rw` applied to a header list (`:path` and the headers it sets).
pub(super) fn rewrite_headers(headers: &mut Vec<(String, String)>, rw: &Rewrite) {
    let set = std::iter::once((":path", rw.path.as_str()))
        .chain(rw.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    for (name, value) in set {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            headers.push((name.to_string(), value.to_string()));
        }
    }
}

impl Stream {
    /// Apply an allowed decision's rewrite to the held request (enforced,
    /// its headers not yet upstream), before the decision is counted and
    /// audited: when the host refuses to set `:path` or a header, the
    /// decision becomes a 500 `internal_error` denial, so the reply, the
    /// audit record and the metrics all say the request was not forwarded.
    pub(super) fn narrow_held_request(&mut self, host: &dyn Host, d: Decision) -> Decision {
        let held = self.shared.config.enforce && self.forwarded_headers.is_none();
        let Some(rw) = d.rewrite.as_ref().filter(|_| d.is_allow() && held) else {
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

    /// Carry out an allowed decision's rewrite `rw` (the decision is in
    /// `self.decision`; `checked`: it has response obligations), then let the
    /// request go on, or relay it. A held request was already narrowed
    /// ([`Self::narrow_held_request`]).
    pub(super) fn carry_out_rewrite(
        &mut self,
        host: &dyn Host,
        checked: bool,
        from_async: bool,
    ) -> Flow {
        if !self.shared.config.enforce {
            // Shadow mode changes no request.
            self.shared.count(host, "rewrite.shadow");
        } else if self.forwarded_headers.is_some() {
            self.shared.count(host, "rewrite.relayed");
            return self.start_relay(host);
        }
        if checked {
            return self.start_relay(host);
        }
        self.release(host, from_async)
    }
}

/// `:path` (when it changes) and the rewrite's headers on the request; `Err`
/// names the one the host refused.
fn set_request_headers<'r>(host: &dyn Host, rw: &'r Rewrite, path: &str) -> Result<(), &'r str> {
    let changed = (rw.path != path).then_some((":path", rw.path.as_str()));
    let set = changed
        .into_iter()
        .chain(rw.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    for (name, value) in set {
        if host
            .set_header(
                HeaderMap::Request,
                name,
                Some(value).filter(|v| !v.is_empty()),
            )
            .is_err()
        {
            return Err(name);
        }
    }
    Ok(())
}
