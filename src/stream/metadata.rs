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

use super::Stream;
use crate::host::{Buffer, Flow, HeaderMap, Host, LogLevel};
use fhir_smart_authz_core::capability_statement::{is_json_content_type, with_smart_security};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Decision;
use fhir_smart_authz_core::decision::Reason;
use fhir_smart_authz_core::fhir::InteractionKind;
use fhir_smart_authz_core::public_answer::vary_with_origin;

/// Where the rewrite of a `/metadata` answer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) enum CapabilityRewrite {
    /// Not a request whose answer is rewritten (or already done).
    #[default]
    Off,
    /// Forwarded; the answer's headers decide.
    Armed,
    /// A JSON `200` answer: buffering its body to rewrite it at the end.
    Buffering,
}

impl Stream {
    /// Before an allowed request goes upstream: arm the rewrite of a
    /// `GET [base]/metadata` answer and ask for an unencoded one.
    pub(super) fn arm_capability_rewrite(
        &mut self,
        host: &dyn Host,
        config: &Config,
        d: &Decision,
    ) {
        let capabilities = d
            .interaction
            .as_ref()
            .is_some_and(|it| it.kind == InteractionKind::Capabilities);
        if config.discovery.is_none() || !d.is_allow() || !capabilities || self.method() != "GET" {
            return;
        }
        if host
            .set_header(HeaderMap::Request, "accept-encoding", Some("identity"))
            .is_err()
        {
            host.log(
                LogLevel::Warn,
                "metadata: could not set accept-encoding; the CapabilityStatement passes unmodified",
            );
            return;
        }
        self.capability = CapabilityRewrite::Armed;
    }

    /// A public answer (`/metadata`, an upstream discovery document) gets
    /// `Vary: Origin` (core `public_answer`); a failure is logged, the
    /// answer goes on.
    fn vary_public_answer(&self, host: &dyn Host) {
        let public = self
            .decision
            .as_ref()
            .is_some_and(|d| d.reason == Reason::PublicEndpoint);
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
        self.add_response_headers(host);
        if self.bulk_hook != super::bulk::BulkHook::Off {
            return self.bulk_response_headers(host);
        }
        if self.capability != CapabilityRewrite::Armed {
            return Flow::Continue;
        }
        self.capability = CapabilityRewrite::Off;
        let headers = host.headers(HeaderMap::Response);
        let value = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        if value(":status") != Some("200") {
            return Flow::Continue;
        }
        let why = if !value("content-type").is_some_and(is_json_content_type) {
            Some("not JSON (XML is passed as the server wrote it)")
        } else if value("content-encoding")
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            Some("the server sent it encoded despite Accept-Encoding: identity")
        } else if host
            .set_header(HeaderMap::Response, "content-length", None)
            .is_err()
        {
            Some("its Content-Length could not be removed")
        } else {
            None
        };
        match why {
            Some(why) => self.capability_unmodified(host, why),
            None => self.capability = CapabilityRewrite::Buffering,
        }
        Flow::Continue
    }

    pub fn on_response_body(
        &mut self,
        host: &dyn Host,
        body_size: usize,
        end_of_stream: bool,
    ) -> Flow {
        if self.bulk_hook == super::bulk::BulkHook::Manifest {
            return self.bulk_response_body(host, body_size, end_of_stream);
        }
        if self.capability != CapabilityRewrite::Buffering {
            return Flow::Continue;
        }
        let config = self.config();
        if body_size > config.max_body_bytes {
            self.capability = CapabilityRewrite::Off;
            self.capability_unmodified(host, "larger than max_body_bytes");
            return Flow::Continue;
        }
        if !end_of_stream {
            return Flow::Pause;
        }
        self.capability = CapabilityRewrite::Off;
        let Some(discovery) = config.discovery.as_ref() else {
            return Flow::Continue;
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
        Flow::Continue
    }

    fn capability_unmodified(&self, host: &dyn Host, why: &str) {
        self.shared.count(host, "capability_statement.unmodified");
        host.log(
            LogLevel::Info,
            &format!("metadata: the CapabilityStatement passes without the SMART security section: {why}"),
        );
    }
}
