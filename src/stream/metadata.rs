//! The SMART security section in the FHIR server's CapabilityStatement: when
//! `discovery` is configured, an allowed `GET [base]/metadata` is forwarded
//! with `Accept-Encoding: identity` (the filter cannot rewrite a compressed
//! body), and a `200` JSON answer is buffered to its end and replaced by the
//! same CapabilityStatement with `rest[].security` naming the authorization
//! server (`fhir_smart_authz_core::capability_statement`). The response
//! headers are not paused (Envoy delivers body callbacks only then): they go
//! on without `Content-Length`, the body follows rewritten.
//!
//! Anything else passes unmodified, counted and logged: XML (`_format=xml`,
//! an XML `Accept`), an encoded body the server sent anyway, a body larger
//! than `max_body_bytes`, or one that is not a CapabilityStatement. The
//! endpoint is public and `.well-known/smart-configuration` carries the same
//! endpoints, so a client is better served by the server's own statement than
//! by an error.
//!
//! Every public answer (also without `discovery`) gets `Vary: Origin`: Envoy's
//! CORS filter echoes the caller's `Origin` into it.

use super::bulk::BulkHook;
use super::{AnswerHook, Phase, Stream};
use crate::host::{Buffer, Flow, HeaderMap, Host, LogLevel};
use fhir_smart_authz_core::capability_statement::{
    rewrite_gate, rewrites_answer, with_smart_security, RewriteGate,
};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Decision;
use fhir_smart_authz_core::public_answer::{is_public_answer, vary_with_origin};

/// Where the rewrite of a `/metadata` answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CapabilityRewrite {
    /// Forwarded; the answer's headers decide.
    Armed,
    /// A JSON `200` answer: buffering its body to rewrite it at the end.
    Buffering,
}

impl Stream {
    /// Before the allowed decision `d` lets the request go upstream: arm the
    /// rewrite of a `GET [base]/metadata` answer and ask for an unencoded
    /// one.
    pub(super) fn arm_capability_rewrite(
        &mut self,
        host: &dyn Host,
        config: &Config,
        d: &Decision,
    ) -> AnswerHook {
        if !rewrites_answer(config, d, self.method()) {
            return AnswerHook::Off;
        }
        if host
            .set_header(HeaderMap::Request, "accept-encoding", Some("identity"))
            .is_err()
        {
            host.log(
                LogLevel::Warn,
                "metadata: could not set accept-encoding; the CapabilityStatement passes unmodified",
            );
            return AnswerHook::Off;
        }
        AnswerHook::Capability(CapabilityRewrite::Armed)
    }

    /// A public answer (`/metadata`, an upstream discovery document) gets
    /// `Vary: Origin` (core `public_answer`); a failure is logged, the
    /// answer goes on.
    fn vary_public_answer(&self, host: &dyn Host) {
        let public =
            matches!(&self.phase, Phase::Released { decision, .. } if is_public_answer(decision));
        if !public {
            return;
        }
        let headers = host.headers(HeaderMap::Response);
        let existing = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("vary"))
            .map(|(_, v)| v.as_str());
        if let Some(vary) = vary_with_origin(existing) {
            if host
                .set_header(HeaderMap::Response, "vary", Some(&vary))
                .is_err()
            {
                host.log(
                    LogLevel::Warn,
                    "could not set Vary: Origin on a public answer",
                );
            }
        }
    }

    pub fn on_response_headers(&mut self, host: &dyn Host) -> Flow {
        self.vary_public_answer(host);
        self.add_answer_headers(host);
        let (decision, answer) = match self.take_phase() {
            Phase::Released { decision, answer } => (decision, answer),
            phase => {
                self.phase = phase;
                return Flow::Continue;
            }
        };
        match answer {
            AnswerHook::Bulk(BulkHook::Armed(action)) => {
                return self.bulk_response_headers(host, decision, action)
            }
            AnswerHook::Capability(CapabilityRewrite::Armed) => {}
            answer => {
                self.phase = Phase::Released { decision, answer };
                return Flow::Continue;
            }
        }
        self.phase = Phase::Released {
            decision,
            answer: AnswerHook::Off,
        };
        let gate = match rewrite_gate(&host.headers(HeaderMap::Response)) {
            RewriteGate::Buffer
                if host
                    .set_header(HeaderMap::Response, "content-length", None)
                    .is_err() =>
            {
                RewriteGate::Unmodified("its Content-Length could not be removed")
            }
            gate => gate,
        };
        match gate {
            RewriteGate::Pass => {}
            RewriteGate::Unmodified(why) => self.capability_unmodified(host, why),
            RewriteGate::Buffer => {
                self.set_answer_hook(AnswerHook::Capability(CapabilityRewrite::Buffering))
            }
        }
        Flow::Continue
    }

    /// What the response callbacks still do with the answer of a released
    /// request.
    fn set_answer_hook(&mut self, hook: AnswerHook) {
        if let Phase::Released { answer, .. } = &mut self.phase {
            *answer = hook;
        }
    }

    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        let (decision, answer) = match self.take_phase() {
            Phase::Released { decision, answer } => (decision, answer),
            phase => {
                self.phase = phase;
                return Flow::Continue;
            }
        };
        let (flow, answer) = match answer {
            AnswerHook::Bulk(BulkHook::Manifest) => {
                match self.bulk_response_body(host, &decision, body_size, end_of_stream) {
                    Some(flow) => (flow, AnswerHook::Off),
                    None => (Flow::Pause, answer),
                }
            }
            AnswerHook::Capability(CapabilityRewrite::Buffering) => {
                self.capability_body(host, body_size, end_of_stream)
            }
            answer => (Flow::Continue, answer),
        };
        self.phase = Phase::Released { decision, answer };
        flow
    }

    /// The body of a `/metadata` answer being buffered: rewritten at its
    /// end. Returns the hook that stays.
    fn capability_body(
        &self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> (Flow, AnswerHook) {
        let config = self.config();
        if body_size > config.max_body_bytes {
            self.capability_unmodified(host, "larger than max_body_bytes");
            return (Flow::Continue, AnswerHook::Off);
        }
        if !end_of_stream {
            return (
                Flow::Pause,
                AnswerHook::Capability(CapabilityRewrite::Buffering),
            );
        }
        let Some(discovery) = config.discovery.as_ref() else {
            return (Flow::Continue, AnswerHook::Off);
        };
        let body = host
            .body(Buffer::ResponseBody, body_size)
            .unwrap_or_default();
        match with_smart_security(&body, discovery) {
            Ok(rewritten) if host.set_response_body(body_size, &rewritten).is_ok() => {
                self.shared.count(host, "capability_statement.smart_added");
            }
            Ok(_) => self.capability_unmodified(host, "the host refused the new body"),
            Err(why) => self.capability_unmodified(host, why.as_str()),
        }
        (Flow::Continue, AnswerHook::Off)
    }

    fn capability_unmodified(&self, host: &dyn Host, why: &str) {
        self.shared.count(host, "capability_statement.unmodified");
        host.log(
            LogLevel::Info,
            &format!("metadata: the CapabilityStatement passes without the SMART security section: {why}"),
        );
    }
}
