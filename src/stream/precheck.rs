//! The write pre-check in the stream (`Obligation::CheckStored`; its rules:
//! the core's `precheck` and `policy::check_stored`): the filter reads the
//! stored resource through `upstream.cluster` and hands the answer to the
//! core. The request stays held meanwhile: its headers when they are still
//! held (then an allowed update or patch gets `If-Match` with the checked
//! version), else its body, so that a refusal resets the upstream request
//! before it is complete. Several pre-checks (Bundle entries) run one after
//! the other. A read that fails or cannot be used fails closed: 502
//! `upstream_unavailable`.

use super::{Phase, Stream};
use crate::host::{response_status, Buffer, Flow, HeaderMap, Host};
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::policy::Stored;
use fhir_smart_authz_core::precheck::{if_match_pin, read_call, refusal};

impl Stream {
    /// Start the first pre-check of the allowed decision `d` (it keeps its
    /// obligations; each answered pre-check is removed from it).
    pub(super) fn start_precheck(&mut self, host: &dyn Host, d: Decision) -> Flow {
        let config = self.config();
        let Some(call) = read_call(&config, &d, self.sent_headers(host)) else {
            return self.precheck_done(host, d, None);
        };
        match self.dispatch_upstream(host, &call, "write pre-check") {
            Ok(call) => {
                self.phase = Phase::Prechecking { call, decision: d };
                self.pause()
            }
            Err(why) => self.precheck_refused(host, d, Reason::UpstreamUnavailable, why),
        }
    }

    /// The read of the stored resource for decision `d`: decide on it, then
    /// the next pre-check, the write, a refusal or the server's own 404/410.
    pub(super) fn on_precheck_response(
        &mut self,
        host: &dyn Host,
        mut d: Decision,
        body_size: usize,
    ) {
        let config = self.config();
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
        match stored {
            Stored::Allow { if_match } => {
                self.shared.count(host, "precheck.pass");
                self.precheck_done(host, d, if_match);
            }
            Stored::Refuse(why) => {
                self.shared.count(host, "precheck.fail");
                self.precheck_refused(host, d, Reason::PatientCompartmentViolation, why);
            }
            Stored::Unavailable(why) => {
                self.precheck_refused(host, d, Reason::UpstreamUnavailable, why);
            }
        }
    }

    /// One pre-check of `d` passed (`if_match`: the version to pin the write
    /// to): the next one, or the decision carried out.
    fn precheck_done(&mut self, host: &dyn Host, d: Decision, if_match: Option<String>) -> Flow {
        let held = self.forwarded_headers.is_none();
        if let Some(v) = if_match_pin(if_match, held, &self.headers) {
            // A failed set only loses the pin.
            let _ = host.set_header(HeaderMap::Request, "if-match", Some(&v));
        }
        if d.obligations.iter().any(Obligation::is_precheck) {
            return self.start_precheck(host, d);
        }
        self.carry_out(host, d)
    }

    /// A pre-check refused the `allowed` write (or could not be made): the
    /// decision becomes that denial, carried out (in shadow mode: audited,
    /// released).
    fn precheck_refused(
        &mut self,
        host: &dyn Host,
        allowed: Decision,
        reason: Reason,
        why: String,
    ) -> Flow {
        if reason == Reason::UpstreamUnavailable {
            self.shared.count(host, "precheck.upstream_failure");
        }
        self.carry_out(host, refusal(allowed, reason, why))
    }
}
