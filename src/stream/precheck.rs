//! The write pre-check (`Obligation::CheckStored`): before an update, patch
//! or delete by id under a patient/ scope goes upstream, the filter reads
//! the stored resource through `upstream.cluster` (`GET`, `Accept-Encoding:
//! identity`) and lets the core decide on it (`policy::check_stored`). The
//! request stays held meanwhile: its headers when they are still held (then
//! an allowed update or patch gets `If-Match` with the checked version, unless
//! the client sent one), else its body, so that a refusal resets the
//! upstream request before it is complete. Several pre-checks (Bundle
//! entries) run one after the other. A read that fails or cannot be used
//! fails closed: 502 `upstream_unavailable`.

use super::{Phase, Stream};
use crate::host::{response_status, Buffer, Flow, HeaderMap, Host};
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::policy::Stored;

impl Stream {
    /// Start the first pre-check of an allowed decision (`d` keeps its
    /// obligations; each answered pre-check is removed from it).
    pub(super) fn start_precheck(
        &mut self,
        host: &dyn Host,
        d: Decision,
        from_async: bool,
    ) -> Flow {
        let base = &self.shared.config.base.path;
        let path = d.obligations.iter().find_map(|o| match o {
            Obligation::CheckStored {
                resource_type, id, ..
            } => Some(format!("{base}/{resource_type}/{id}")),
            _ => None,
        });
        self.decision = Some(d);
        let Some(path) = path else {
            return self.precheck_done(host, None, from_async);
        };
        let mut headers = self.call_headers(host, true);
        for (n, v) in [
            (":method", "GET"),
            (":path", &path),
            ("accept", "application/fhir+json"),
        ] {
            headers.push((n.to_string(), v.to_string()));
        }
        match self.call_upstream(host, headers, None, Phase::Prechecking, "write pre-check") {
            Ok(flow) => flow,
            Err(why) => self.precheck_refused(host, Reason::UpstreamUnavailable, why, from_async),
        }
    }

    /// The read of the stored resource: decide on it, then the next
    /// pre-check, the write, a refusal or the server's own 404/410.
    pub(super) fn on_precheck_response(&mut self, host: &dyn Host, body_size: usize) {
        self.phase = Phase::Released;
        let config = self.config();
        let Some(mut d) = self.decision.take() else {
            return;
        };
        let Some(pos) = d.obligations.iter().position(Obligation::is_precheck) else {
            return;
        };
        let o = d.obligations.remove(pos);
        let headers = host.headers(HeaderMap::CallResponse);
        // A body over max_body_bytes is cut there: not JSON, so unusable.
        let body = host
            .body(
                Buffer::CallResponseBody,
                body_size.min(config.max_body_bytes),
            )
            .unwrap_or_default();
        // No answer at all: status 0, unusable.
        let status = response_status(&headers).unwrap_or(0);
        let stored = self.shared.engine.check_stored(
            &o,
            status,
            &headers,
            &body,
            config.base.url.as_deref(),
        );
        self.decision = Some(d);
        match stored {
            Stored::Allow { if_match } => {
                self.shared.count(host, "precheck.pass");
                self.precheck_done(host, if_match, true);
            }
            Stored::Refuse(why) => {
                self.shared.count(host, "precheck.fail");
                self.precheck_refused(host, Reason::PatientCompartmentViolation, why, true);
            }
            Stored::Unavailable(why) => {
                self.precheck_refused(host, Reason::UpstreamUnavailable, why, true);
            }
        }
    }

    /// One pre-check passed (`if_match`: the version to pin the write to):
    /// the next one, or the decision carried out.
    fn precheck_done(
        &mut self,
        host: &dyn Host,
        if_match: Option<String>,
        from_async: bool,
    ) -> Flow {
        // Pin the write to the checked version while its headers are held,
        // unless the client pinned it (a failed set only loses the pin).
        if let Some(v) = if_match {
            if self.forwarded_headers.is_none()
                && !self.headers.iter().any(|(n, _)| n == "if-match")
            {
                let _ = host.set_header(HeaderMap::Request, "if-match", Some(&v));
            }
        }
        let Some(d) = self.decision.take() else {
            return Flow::Pause;
        };
        if d.obligations.iter().any(Obligation::is_precheck) {
            return self.start_precheck(host, d, from_async);
        }
        self.carry_out(host, d, from_async)
    }

    /// A pre-check refused the write (or could not be made): the decision
    /// becomes that denial, carried out (in shadow mode: audited, released).
    fn precheck_refused(
        &mut self,
        host: &dyn Host,
        reason: Reason,
        why: String,
        from_async: bool,
    ) -> Flow {
        if reason == Reason::UpstreamUnavailable {
            self.shared.count(host, "precheck.upstream_failure");
        }
        let Some(allowed) = self.decision.take() else {
            return Flow::Pause;
        };
        let mut d = Decision::deny(reason, why);
        d.interaction = allowed.interaction;
        d.required_scopes = allowed.required_scopes;
        self.carry_out(host, d, from_async)
    }
}
