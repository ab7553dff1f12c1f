//! A narrowed allow carried out: the request the upstream receives gets the
//! decision's rewritten `:path` and headers (`Prefer: handling=strict`)
//! before it goes on. When its headers already went upstream (a
//! body-decided request without `upstream.hold_headers_for_body`), the
//! filter sends the rewritten request itself (the relay) and the original
//! one, still without its body, is reset by the local reply: never
//! forwarded unnarrowed.

use super::Stream;
use crate::host::{Flow, HeaderMap, Host, LogLevel};
use crate::reply::gateway_error_reply;
use fhir_smart_authz_core::decision::{Decision, Rewrite};

/// `rw` applied to a header list (`:path` and the headers it sets).
pub(super) fn rewrite_headers(headers: &mut Vec<(String, String)>, rw: &Rewrite) {
    let set = std::iter::once((":path", rw.path.as_str()))
        .chain(rw.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    for (name, value) in set {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.to_string(), value.to_string()));
    }
}

impl Stream {
    /// Carry out an allowed decision's rewrite: `None` when the request can
    /// go on (rewritten, or nothing to rewrite), else the flow that took
    /// over (the relay, or a refusal when the host would not take the
    /// change).
    pub(super) fn carry_out_rewrite(&mut self, host: &dyn Host, d: &Decision) -> Option<Flow> {
        let rw = d.rewrite.as_ref()?;
        if !self.shared.config.enforce {
            // Shadow mode changes no request.
            self.shared.count(host, "rewrite.shadow");
            return None;
        }
        if self.headers_forwarded {
            self.shared.count(host, "rewrite.relayed");
            self.decision = Some(d.clone());
            return Some(self.start_relay(host));
        }
        let changed = (rw.path != self.path).then_some((":path", rw.path.as_str()));
        let set = changed
            .into_iter()
            .chain(rw.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        for (name, value) in set {
            if host
                .set_header(HeaderMap::Request, name, Some(value))
                .is_err()
            {
                host.log(
                    LogLevel::Error,
                    &format!("could not set {name} of a narrowed request"),
                );
                self.shared.count(host, "rewrite.failed");
                return Some(self.reply(
                    host,
                    &gateway_error_reply(
                        500,
                        "exception",
                        "the gateway could not narrow the request to what the token allows; it was not forwarded",
                    ),
                ));
            }
        }
        self.shared.count(
            host,
            if rw.added.is_empty() {
                "rewrite.strict"
            } else {
                "rewrite.narrowed"
            },
        );
        None
    }
}
