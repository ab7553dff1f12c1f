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

use super::relay::relayed;
use super::{Phase, Stream};
use crate::host::{response_status, Buffer, Flow, HeaderMap, Host, LogLevel};
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::InteractionKind;
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
        let next = d.obligations.iter().find(|o| o.is_precheck()).cloned();
        self.decision = Some(d);
        let Some(Obligation::CheckStored {
            resource_type, id, ..
        }) = next
        else {
            return self.precheck_done(host, None, from_async);
        };
        let config = self.config();
        let mut headers = self.call_headers(host);
        headers.retain(|(n, _)| {
            let replaced = matches!(
                n.as_str(),
                ":method" | ":path" | "accept" | "accept-encoding" | "prefer"
            );
            !(replaced || n.starts_with("content-") || n.starts_with("if-"))
        });
        for (n, v) in [
            (":method", "GET"),
            (
                ":path",
                &format!("{}/{resource_type}/{id}", config.base.path),
            ),
            ("accept", "application/fhir+json"),
            ("accept-encoding", "identity"),
        ] {
            headers.push((n.to_string(), v.to_string()));
        }
        match self.call_upstream(host, headers, None, Phase::Prechecking, "write pre-check") {
            Ok(flow) => flow,
            Err(why) => self.precheck_refused(
                host,
                Reason::UpstreamUnavailable,
                format!("the FHIR server could not be called to check the stored resource ({why})"),
                from_async,
            ),
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
        let stored = match response_status(&headers) {
            None => Stored::Unavailable("the FHIR server did not answer the pre-check read".into()),
            Some(status) => self.shared.engine.check_stored(
                &o,
                status,
                &headers,
                &body,
                config.base.url.as_deref(),
            ),
        };
        self.decision = Some(d);
        match stored {
            Stored::Allow { if_match } => {
                self.shared.count(host, "precheck.pass");
                let top = matches!(&o, Obligation::CheckStored { entry: None, interaction, .. }
                    if *interaction != InteractionKind::Delete);
                self.precheck_done(host, if_match.filter(|_| top), true);
            }
            Stored::Refuse(why) => {
                self.shared.count(host, "precheck.fail");
                self.precheck_refused(host, Reason::PatientCompartmentViolation, why, true);
            }
            Stored::Unavailable(why) => {
                host.log(LogLevel::Warn, &format!("write pre-check: {why}"));
                self.precheck_refused(host, Reason::UpstreamUnavailable, why, true);
            }
            Stored::Relay if !config.enforce => {
                self.precheck_done(host, None, true);
            }
            Stored::Relay => {
                // Nothing to write: the server's own answer (404/410).
                self.shared.count(host, "precheck.pass");
                if let Some(d) = &self.decision {
                    self.account(host, d);
                }
                let status = response_status(&headers).unwrap_or(404);
                let reply = relayed(host, status, headers, body_size);
                self.reply(host, &reply);
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
        if let Some(v) = if_match {
            let client_sent = self.headers.iter().any(|(n, _)| n == "if-match");
            if self.forwarded_headers.is_none()
                && !client_sent
                && host
                    .set_header(HeaderMap::Request, "if-match", Some(&v))
                    .is_err()
            {
                host.log(
                    LogLevel::Error,
                    "could not set If-Match on the checked write",
                );
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
