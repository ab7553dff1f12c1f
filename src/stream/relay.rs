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
use fhir_smart_authz_core::batch::{forwarded_request, merged_response};
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::policy::{
    answer_gate, full_answer_request, AnswerGate, ResponseVerdict,
};
use fhir_smart_authz_core::reply::{answered_entries, deny_reply, gateway_error_reply, Reply};
use fhir_smart_authz_core::shadow::{after_failed_call, AfterFailedCall, FilterCall};
use serde_json::Value;

impl Stream {
    /// Fetch the response through `upstream.cluster` to check obligations.
    pub(super) fn start_relay(&mut self, host: &dyn Host, from_async: bool) -> Flow {
        let mut headers = self.call_headers(host, false);
        if let Some(rw) = self.decision.as_ref().and_then(|d| d.rewrite.as_ref()) {
            rewrite_headers(&mut headers, rw);
        }
        if self
            .decision
            .as_ref()
            .is_some_and(|d| !d.obligations.is_empty())
        {
            // The full answer of a GET, which the check reads (core's rule).
            full_answer_request(&mut headers);
        }
        // The decision is made: the body is not read again, it goes to the call
        // (of a partly allowed batch: its allowed entries, core `batch`).
        let mut body = self.body.take();
        if let Some(d) = self.decision.as_ref().filter(|d| d.is_partial_batch()) {
            match body
                .as_deref()
                .map(|b| forwarded_request(b, &d.denied_entries))
            {
                Some(Ok(b)) => body = Some(b),
                _ => {
                    return self.relay_failed(
                        host,
                        "the batch's allowed entries could not be written",
                        from_async,
                    )
                }
            }
        }
        match self.call_upstream(host, headers, body, Phase::Relaying, "obligation fetch") {
            Ok(flow) => flow,
            Err(why) => self.relay_failed(
                host,
                &format!("the FHIR server could not be called ({why})"),
                from_async,
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
    /// the check failed (with the status sent). In shadow mode the request
    /// goes upstream through its route instead (core `shadow`), audited as
    /// what enforcing would have done.
    fn relay_failed(&mut self, host: &dyn Host, why: &str, from_async: bool) -> Flow {
        self.shared.count(host, "response_check.upstream_failure");
        let after = after_failed_call(self.shared.config.enforce, FilterCall::ResponseFetch, why);
        let why = match &after {
            AfterFailedCall::Refuse => why.to_string(),
            AfterFailedCall::Continue { why } => why.clone(),
        };
        if let Some(d) = self.decision.take() {
            self.write_audit_as(host, &d, Some(Err(why.clone())), 502);
            self.decision = Some(d);
        }
        match after {
            AfterFailedCall::Refuse => {
                self.reply(host, &gateway_error_reply(502, "transient", &why))
            }
            AfterFailedCall::Continue { .. } => {
                self.shared.count(host, "shadow.call_failed");
                self.release(host, from_async)
            }
        }
    }

    /// The fetched response: check it, audit the result, then relay it or
    /// answer the denial.
    pub(super) fn on_relay_response(&mut self, host: &dyn Host, body_size: usize) {
        self.phase = Phase::Released;
        let config = self.config();
        let headers = host.headers(HeaderMap::CallResponse);
        let Some(status) = response_status(&headers) else {
            self.relay_failed(host, "the FHIR server did not answer", true);
            return;
        };
        let checked = self
            .decision
            .as_ref()
            .is_some_and(|d| !d.obligations.is_empty());
        if checked && (502..=504).contains(&status) && !config.enforce {
            // Shadow mode: the request goes upstream through its route.
            let why = format!("the FHIR server did not serve the request (HTTP {status})");
            self.relay_failed(host, &why, true);
            return;
        }
        if checked && (502..=504).contains(&status) {
            // Not served: the FHIR server unavailable, or Envoy's own answer
            // for a refused (503) or timed-out (504) connection. Relayed as the
            // route would answer it; audited as a failed check.
            self.shared.count(host, "response_check.upstream_failure");
            if let Some(d) = self.decision.take() {
                let why = format!("the FHIR server did not serve the request (HTTP {status})");
                self.write_audit_as(host, &d, Some(Err(why)), status);
                self.decision = Some(d);
            }
            let reply = relayed(host, status, headers, body_size, None);
            self.reply(host, &reply);
            return;
        }
        // Read from the host at most once: by the check, then for the relay.
        let mut body = None;
        let mut verdict = None;
        let result = self.check_response(
            host,
            &config,
            status,
            &headers,
            body_size,
            &mut body,
            &mut verdict,
        );
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
                let denial = Decision::deny(Reason::ResponseNotPermitted, why);
                let reply = deny_reply(&config, &denial, config.responses.obligation_denied_status);
                self.reply(host, &reply);
                return;
            }
            self.shared.count(host, "shadow.would_deny");
            if body_size > config.max_body_bytes {
                self.relay_failed(
                    host,
                    "the response is too large to relay in shadow mode",
                    true,
                );
                return;
            }
        }
        let mut reply = relayed(host, status, headers, body_size, body);
        if let Some(d) = self.decision.as_ref().filter(|d| d.is_partial_batch()) {
            // A batch-response gets the denied entries back at their places;
            // a refusal of the whole forwarded batch is relayed as it is.
            if (200..300).contains(&reply.status) {
                let total = d.interaction.as_ref().map_or(0, |it| it.entries.len());
                match merged_response(&reply.body, total, &answered_entries(d)) {
                    Ok(merged) => reply.body = merged,
                    Err(why) => {
                        self.relay_failed(host, &why, true);
                        return;
                    }
                }
            }
        }
        if self.method() == "HEAD" {
            // Fetched as GET to be checked; the client asked for the headers.
            reply.body.clear();
        }
        self.reply(host, &reply);
    }

    /// Whether the response satisfies the decision's obligations (`Err`
    /// says why not; `verdict`: the core's whole verdict). A body it reads
    /// is left in `body` for the relay: the label filter's body when the
    /// core filtered it (enforced only).
    #[allow(clippy::too_many_arguments)]
    fn check_response(
        &self,
        host: &dyn Host,
        config: &Config,
        status: u16,
        headers: &[(String, String)],
        body_size: usize,
        body: &mut Option<Vec<u8>>,
        verdict: &mut Option<ResponseVerdict>,
    ) -> Result<(), String> {
        let Some(d) = self.decision.as_ref().filter(|d| !d.obligations.is_empty()) else {
            // Fetched only to send the rewritten request (see `rewrite.rs`).
            return Ok(());
        };
        if body_size > config.max_body_bytes {
            return Err(format!(
                "the response is larger than {} bytes (max_body_bytes) and cannot be checked against the token's patient/granular scopes",
                config.max_body_bytes
            ));
        }
        match answer_gate(status, body_size) {
            AnswerGate::CheckBody => {}
            AnswerGate::Relay => return Ok(()),
            AnswerGate::Refuse(why) => return Err(why),
        }
        let encoding = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-encoding"))
            .map(|(_, v)| v)
            .filter(|v| !v.trim().eq_ignore_ascii_case("identity"));
        if let Some(encoding) = encoding {
            return Err(format!(
                "the FHIR server sent the response encoded (Content-Encoding: {encoding}) although the filter asked for identity; it cannot be checked against the token's patient/granular scopes"
            ));
        }
        let bytes = body.get_or_insert_with(|| call_body(host, body_size));
        let Ok(v) = serde_json::from_slice::<Value>(bytes) else {
            return Err("the response is not JSON and cannot be checked against the token's patient/granular scopes".to_string());
        };
        let checked = self
            .shared
            .engine
            .check_obligations(config, &d.obligations, &v);
        if let (Some(b), true) = (checked.body(), config.enforce) {
            *body = Some(b.to_vec());
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

/// The fetched response as a local reply, without its hop-by-hop headers
/// (`body`: already read from the host, if it was).
fn relayed(
    host: &dyn Host,
    status: u16,
    headers: Vec<(String, String)>,
    body_size: usize,
    body: Option<Vec<u8>>,
) -> Reply {
    let body = body.unwrap_or_else(|| call_body(host, body_size));
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .filter(|(n, _)| {
            !n.starts_with(':')
                && !matches!(
                    n.as_str(),
                    "content-length" | "transfer-encoding" | "connection" | "keep-alive"
                )
        })
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}
