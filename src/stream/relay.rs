//! The relay in the stream: a decision with obligations (patient
//! compartment / granular scope checks on the returned resource), a partly
//! allowed batch, or a narrowed request whose headers already went upstream
//! is carried out by the filter itself. It fetches the response through
//! `upstream.cluster` and answers with what the core makes of it
//! (`fhir_smart_authz_core::relay`: the call, the gates, the check, the
//! relayed, merged or replaced answer); this file dispatches the call, reads
//! the answer, counts and audits. 502 when the call cannot be made or gets
//! no answer (in shadow mode the request goes on through its route).

use super::{AnswerHook, Phase, Stream};
use crate::host::{response_status, Buffer, Flow, HeaderMap, Host, HttpCall, LogLevel};
use fhir_smart_authz_core::decision::Decision;
use fhir_smart_authz_core::relay::{failed_reply, fetch_call, relay_answer, Fetched, RelayAnswer};
use fhir_smart_authz_core::shadow::{after_failed_call, AfterFailedCall, FilterCall};

impl Stream {
    /// Fetch the response of decision `d` through `upstream.cluster`.
    pub(super) fn start_relay(&mut self, host: &dyn Host, d: Decision) -> Flow {
        let config = self.config();
        // The decision is made: the body is not read again, it goes to the call.
        let body = self.body.take();
        let call = match fetch_call(&config, &d, self.sent_headers(host), body) {
            Ok(call) => call,
            Err(why) => return self.relay_failed(host, d, &why),
        };
        match self.dispatch_upstream(host, &call, "obligation fetch") {
            Ok(call) => {
                self.phase = Phase::Relaying { call, decision: d };
                self.pause()
            }
            Err(why) => self.relay_failed(
                host,
                d,
                &format!("the FHIR server could not be called ({why})"),
            ),
        }
    }

    /// The request's headers as they went upstream: once they did, Envoy
    /// no longer lends them, so the copy kept at their release.
    pub(super) fn sent_headers(&self, host: &dyn Host) -> Vec<(String, String)> {
        match &self.forwarded_headers {
            Some(h) => h.clone(),
            None => host.headers(HeaderMap::Request),
        }
    }

    /// Make a call to `upstream.cluster` on the request's behalf: its
    /// token, or why Envoy refused it (logged under `what`).
    pub(super) fn dispatch_upstream(
        &self,
        host: &dyn Host,
        call: &HttpCall,
        what: &str,
    ) -> Result<u32, String> {
        host.dispatch_http_call(call).map_err(|e| {
            let why = crate::host::refusal(call, e);
            host.log(LogLevel::Error, &format!("{what}: {why}"));
            why
        })
    }

    /// The response could not be fetched or relayed: 502, and the audit
    /// record says the check failed (with the status sent). In shadow mode
    /// the request goes upstream through its route instead (core `shadow`),
    /// audited as what enforcing would have done.
    fn relay_failed(&mut self, host: &dyn Host, d: Decision, why: &str) -> Flow {
        self.shared.count(host, "response_check.upstream_failure");
        let after = after_failed_call(self.shared.config.enforce, FilterCall::ResponseFetch, why);
        let why = match &after {
            AfterFailedCall::Refuse => why.to_string(),
            AfterFailedCall::Continue { why } => why.clone(),
        };
        self.write_audit_as(host, &d, Some(Err(why.clone())), 502);
        match after {
            AfterFailedCall::Refuse => self.reply(host, failed_reply(Some(&d), &why)),
            AfterFailedCall::Continue { .. } => {
                self.shared.count(host, "shadow.call_failed");
                self.released(host, d, AnswerHook::Off)
            }
        }
    }

    /// The fetched response of decision `d`: the core's answer carried out.
    pub(super) fn on_relay_response(&mut self, host: &dyn Host, mut d: Decision, body_size: usize) {
        let config = self.config();
        let headers = host.headers(HeaderMap::CallResponse);
        let fetched = Fetched {
            status: response_status(&headers),
            headers: &headers,
            body_size,
        };
        let answer = relay_answer(
            &config,
            &d,
            self.method(),
            fetched,
            &mut || {
                host.body(Buffer::CallResponseBody, body_size)
                    .unwrap_or_default()
            },
            |v| {
                self.shared
                    .engine
                    .check_obligations(&config, &d.obligations, v)
            },
        );
        match answer {
            RelayAnswer::Failed(why) => {
                self.relay_failed(host, d, &why);
            }
            RelayAnswer::NotServed { status, why, reply } => {
                self.shared.count(host, "response_check.upstream_failure");
                self.write_audit_as(host, &d, Some(Err(why)), status);
                self.reply(host, reply);
            }
            RelayAnswer::Checked {
                check,
                verdict,
                would_deny,
                then,
            } => {
                if verdict
                    .as_ref()
                    .and_then(|v| v.labels.as_ref())
                    .is_some_and(|l| l.withheld > 0)
                {
                    self.shared.count(host, "labels.withheld");
                }
                if let Some(result) = check {
                    self.shared.count(
                        host,
                        if result.is_err() {
                            "response_check.fail"
                        } else {
                            "response_check.pass"
                        },
                    );
                    if let Some(v) = &verdict {
                        v.record(&mut d);
                    }
                    self.write_audit(host, &d, Some(result));
                }
                if would_deny {
                    self.shared.count(host, "shadow.would_deny");
                }
                match then {
                    Ok(reply) => self.reply(host, reply),
                    Err(why) => self.relay_failed(host, d, &why),
                };
            }
        }
    }
}
