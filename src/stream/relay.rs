//! The relay of a response check: a decision with obligations (patient
//! compartment / granular scope checks on the returned resource) is carried
//! out by the filter itself. It fetches the response through
//! `upstream.cluster` with the request's headers (rewritten when the
//! decision narrows the request), checks it, and relays it as a local
//! reply, or replaces it with 403/404. When the FHIR server does not serve
//! it (Envoy's 503/504 for a refused or timed-out connection, the server's
//! own 502–504) that answer is relayed and the check audited as failed; 502
//! when the call got no answer at all. A narrowed request whose headers
//! already went upstream is relayed the same way, without a check.

use super::rewrite::rewrite_headers;
use super::{Phase, Stream};
use crate::host::{response_status, Buffer, Flow, HeaderMap, Host, HttpCall, LogLevel};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::policy::ResponseVerdict;
use fhir_smart_authz_core::relay::{
    relayed_reply, response_denied_reply, response_gate, response_json, ResponseGate,
};
use fhir_smart_authz_core::reply::gateway_error_reply;

impl Stream {
    /// Fetch the response through `upstream.cluster` to check obligations.
    pub(super) fn start_relay(&mut self, host: &dyn Host) -> Flow {
        let mut headers = self.call_headers(host, false);
        if let Some(rw) = self.decision.as_ref().and_then(|d| d.rewrite.as_ref()) {
            rewrite_headers(&mut headers, rw);
        }
        // The decision is made: the body is not read again, it goes to the call.
        let body = self.body.take();
        match self.call_upstream(host, headers, body, Phase::Relaying, "obligation fetch") {
            Ok(flow) => flow,
            Err(why) => self.relay_failed(
                host,
                &format!("the FHIR server could not be called ({why})"),
            ),
        }
    }

    /// The request's headers for a call the filter makes to
    /// `upstream.cluster` on its behalf: without hop-by-hop and length
    /// headers, with an `:authority` and `Accept-Encoding: identity` (the
    /// answer must be read to be checked: never an encoded one); for a `read`
    /// of the stored resource also without the method, path, body,
    /// conditional, `Prefer` and `Accept` headers (the read sets its own).
    /// Once the headers went upstream Envoy no longer lends them: then the
    /// copy kept at their release.
    pub(super) fn call_headers(&self, host: &dyn Host, read: bool) -> Vec<(String, String)> {
        let sent = match &self.forwarded_headers {
            Some(h) => h.clone(),
            None => host.headers(HeaderMap::Request),
        };
        let mut headers: Vec<(String, String)> = sent
            .into_iter()
            .filter(|(n, _)| {
                let n = n.to_ascii_lowercase();
                let hop = matches!(
                    n.as_str(),
                    "connection"
                        | "keep-alive"
                        | "proxy-connection"
                        | "transfer-encoding"
                        | "te"
                        | "upgrade"
                        | "content-length"
                        | "expect"
                        | "accept-encoding"
                );
                let replaced = read
                    && (matches!(n.as_str(), ":method" | ":path" | "prefer" | "accept")
                        || n.starts_with("content-")
                        || n.starts_with("if-"));
                !(hop || replaced)
            })
            .collect();
        headers.push(("accept-encoding".into(), "identity".into()));
        if !headers.iter().any(|(n, _)| n == ":authority") {
            headers.push((":authority".into(), self.config().upstream.cluster.clone()));
        }
        headers
    }

    /// Call `upstream.cluster` on the request's behalf; the stream waits in
    /// the phase `waiting` makes of the call's token. `Err`: why Envoy
    /// refused the call (logged under `what`).
    pub(super) fn call_upstream(
        &mut self,
        host: &dyn Host,
        headers: Vec<(String, String)>,
        body: Option<Vec<u8>>,
        waiting: fn(u32) -> Phase,
        what: &str,
    ) -> Result<Flow, String> {
        let config = self.config();
        let call = HttpCall {
            cluster: config.upstream.cluster.clone(),
            headers,
            body,
            timeout_ms: config.upstream.timeout_ms,
        };
        match host.dispatch_http_call(&call) {
            Ok(id) => {
                self.phase = waiting(id);
                Ok(self.pause())
            }
            Err(e) => {
                let why = crate::host::refusal(&call, e);
                host.log(LogLevel::Error, &format!("{what}: {why}"));
                Err(why)
            }
        }
    }

    /// The response could not be fetched: 502, and the audit record says
    /// the check failed (with the status sent).
    fn relay_failed(&mut self, host: &dyn Host, why: &str) -> Flow {
        self.shared.count(host, "response_check.upstream_failure");
        if let Some(d) = self.decision.take() {
            self.write_audit_as(host, &d, Some(Err(why.to_string())), 502);
            self.decision = Some(d);
        }
        self.reply(host, &gateway_error_reply(502, "transient", why))
    }

    /// The fetched response: check it, audit the result, then relay it or
    /// answer the denial (the gates: the core's `relay`).
    pub(super) fn on_relay_response(&mut self, host: &dyn Host, body_size: usize) {
        self.phase = Phase::Released;
        let config = self.config();
        let headers = host.headers(HeaderMap::CallResponse);
        let Some(status) = response_status(&headers) else {
            self.relay_failed(host, "the FHIR server did not answer");
            return;
        };
        let checked = self
            .decision
            .as_ref()
            .is_some_and(|d| !d.obligations.is_empty());
        // Read from the host at most once: by the check, then for the relay.
        let mut body = None;
        let mut verdict = None;
        let result =
            match response_gate(checked, config.max_body_bytes, status, &headers, body_size) {
                ResponseGate::NotServed(why) => {
                    self.shared.count(host, "response_check.upstream_failure");
                    if let Some(d) = self.decision.take() {
                        self.write_audit_as(host, &d, Some(Err(why)), status);
                        self.decision = Some(d);
                    }
                    let reply = relayed_reply(status, headers, call_body(host, body_size));
                    self.reply(host, &reply);
                    return;
                }
                ResponseGate::Pass => Ok(()),
                ResponseGate::Fail(why) => Err(why),
                ResponseGate::ReadBody => {
                    let bytes = call_body(host, body_size);
                    let r = self.check_obligations(&config, &bytes, &mut body, &mut verdict);
                    body.get_or_insert(bytes);
                    r
                }
            };
        if verdict
            .as_ref()
            .and_then(|v| v.labels.as_ref())
            .is_some_and(|l| l.withheld > 0)
        {
            self.shared.count(host, "labels.withheld");
        }
        if checked {
            self.shared.count(
                host,
                if result.is_err() {
                    "response_check.fail"
                } else {
                    "response_check.pass"
                },
            );
            if let Some(mut d) = self.decision.take() {
                if let Some(v) = &verdict {
                    v.record(&mut d);
                }
                self.write_audit(host, &d, Some(result.clone()));
                self.decision = Some(d);
            }
        }
        if let Err(why) = result {
            if config.enforce {
                self.reply(host, &response_denied_reply(&config, why));
                return;
            }
            self.shared.count(host, "shadow.would_deny");
            if body_size > config.max_body_bytes {
                self.relay_failed(host, "the response is too large to relay in shadow mode");
                return;
            }
        }
        let body = body.unwrap_or_else(|| call_body(host, body_size));
        self.reply(host, &relayed_reply(status, headers, body));
    }

    /// Whether the response body satisfies the decision's obligations
    /// (`Err` says why not; `verdict`: the core's whole verdict). When the
    /// core filtered the body (labels; enforced only) that body goes in
    /// `relayed` for the relay.
    fn check_obligations(
        &self,
        config: &Config,
        body: &[u8],
        relayed: &mut Option<Vec<u8>>,
        verdict: &mut Option<ResponseVerdict>,
    ) -> Result<(), String> {
        let v = response_json(body)?;
        let Some(d) = self.decision.as_ref() else {
            return Ok(());
        };
        let checked = self
            .shared
            .engine
            .check_obligations(config, &d.obligations, &v);
        if let (Some(b), true) = (checked.body(), config.enforce) {
            *relayed = Some(b.to_vec());
        }
        let result = checked.result.clone();
        *verdict = Some(checked);
        result
    }
}

/// The body of the call's answer (empty when the host has none).
fn call_body(host: &dyn Host, body_size: usize) -> Vec<u8> {
    host.body(Buffer::CallResponseBody, body_size)
        .unwrap_or_default()
}
