//! The decision: the token is resolved, the engine decides (now, or at the
//! end of the body), and the decision is carried out: audit record, metrics,
//! the verified facts forwarded upstream, then release, relay or reply.

use super::{AnswerHook, Phase, PresentedToken, Stream};
use crate::host::{Flow, HeaderMap, Host, LogLevel};
use crate::ports::TokenInput;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::disposition::{disposition, prechecks_first, Disposition, Narrowed};
use fhir_smart_authz_core::reply::deny_reply;
use fhir_smart_authz_core::token::binding::Binding;
use serde_json::Value;
use std::rc::Rc;

impl Stream {
    /// The token is resolved (`verified`: its claims and binding, `None`
    /// without a token): prepare the upstream headers, then decide now or
    /// wait for the body.
    pub(super) fn after_token(
        &mut self,
        host: &dyn Host,
        verified: Option<(Rc<Value>, Binding)>,
    ) -> Flow {
        let config = self.config();
        self.token = verified.map(|(claims, binding)| PresentedToken {
            facts: self.shared.token_facts(&claims),
            claims,
            binding,
        });
        if let Err(what) = self.timed(host, "facts", |s| s.forward_facts(host, &config)) {
            // Fail closed, in shadow mode too (as for a spoofed identity
            // header that cannot be removed): the upstream would miss a fact
            // it relies on, or still see the token it should not.
            let d = Decision::deny(
                Reason::InternalError,
                format!("the gateway could not {what}; the request was not forwarded"),
            );
            self.account(host, &d);
            return self.reply(host, deny_reply(&config, &d, d.status));
        }
        let (body_needed, body_seen_while_paused) = match &self.phase {
            Phase::Verifying(v) => (v.body_needed, v.body_seen_while_paused),
            _ => (false, false),
        };
        if body_needed && self.body.is_none() {
            self.phase = Phase::AwaitingBody;
            if config.upstream.hold_headers_for_body || body_seen_while_paused {
                // Keep the headers (and the facts just set on them) until the
                // decision at the end of the body: a denial never reaches the
                // upstream. Needs a host that delivers body callbacks to paused
                // headers (Envoy's `allow_on_headers_stop_iteration`).
                return self.pause();
            }
            self.forwarded_headers = Some(host.headers(HeaderMap::Request));
            return self.release(host);
        }
        self.consult_engine(host)
    }

    /// Ask the engine for the decision on the request as it is now, and
    /// carry it out.
    pub(super) fn consult_engine(&mut self, host: &dyn Host) -> Flow {
        let config = self.config();
        let d = self.timed(host, "decide", |s| {
            s.with_parts(|s, parts| {
                let token = s.token.as_ref().map(|t| TokenInput {
                    claims: &t.claims,
                    context: t.facts.context.as_ref(),
                    binding: &t.binding,
                });
                s.shared.engine.decide(&config, parts, token)
            })
        });
        self.carry_out(host, d)
    }

    /// Count a decision and write its audit record.
    pub(super) fn account(&mut self, host: &dyn Host, d: &Decision) {
        if let Ok(mut m) = self.shared.metrics.try_borrow_mut() {
            m.decision(host, d);
            // Once per request: the first account is the decision.
            if let Some(start) = self.started_us.take() {
                m.latency(host, host.now_us().saturating_sub(start));
            }
        }
        if d.labels.as_ref().is_some_and(|l| l.break_glass) {
            self.shared.count(host, "labels.break_glass");
        }
        self.write_audit(host, d, None);
    }

    /// Carry out a decision: check the stored resource of a write first (an
    /// allowed write pre-check), count it, audit it, then let the request go
    /// on (allowed, rewritten when narrowed, or shadow mode), fetch the
    /// response to check its obligations, or answer the denial.
    pub(super) fn carry_out(&mut self, host: &dyn Host, d: Decision) -> Flow {
        if prechecks_first(&d) {
            // Counted and audited once the stored resource is checked.
            return self.start_precheck(host, d);
        }
        let config = self.config();
        let d = self.settle_bulk(host, d);
        let d = self.narrow_held_request(host, d);
        self.account(host, &d);
        let bulk = super::bulk::hook_for(&d);
        if !d.is_allow() && !config.enforce {
            self.shared.count(host, "shadow.would_deny");
            host.log(
                LogLevel::Info,
                &format!(
                    "shadow mode: would deny ({}) {}",
                    d.reason.as_str(),
                    d.message
                ),
            );
        }
        let forwarded = self.forwarded_headers.is_some();
        let (way, narrowed) = disposition(config.enforce, &d, forwarded);
        match narrowed {
            Some(Narrowed::Shadow) => self.shared.count(host, "rewrite.shadow"),
            Some(Narrowed::Relayed) => self.shared.count(host, "rewrite.relayed"),
            // Counted where it was narrowed (rewrite.rs).
            Some(Narrowed::InPlace) | None => {}
        }
        match way {
            Disposition::Relay => self.start_relay(host, d),
            Disposition::Release => {
                let answer = match bulk {
                    AnswerHook::Off if narrowed.is_none() => {
                        self.arm_capability_rewrite(host, &config, &d)
                    }
                    hook => hook,
                };
                self.released(host, d, answer)
            }
            Disposition::Deny => self.reply(host, deny_reply(&config, &d, d.status)),
        }
    }

    /// Let the request go on with decision `d`; `answer`: what the response
    /// callbacks do with its answer.
    pub(super) fn released(&mut self, host: &dyn Host, d: Decision, answer: AnswerHook) -> Flow {
        self.phase = Phase::Released {
            decision: d,
            answer,
        };
        self.release(host)
    }

    /// The verified facts as request headers (`upstream.forward_headers`,
    /// derived once per token: `UpstreamConfig::fact_headers` in the core), and
    /// `Authorization` removed when `upstream.strip_authorization`. `Err`:
    /// what the host refused, for the denial.
    fn forward_facts(&self, host: &dyn Host, config: &Config) -> Result<(), String> {
        if config.upstream.strip_authorization
            && host
                .set_header(HeaderMap::Request, "authorization", None)
                .is_err()
        {
            host.log(LogLevel::Error, "could not remove the authorization header");
            return Err(
                "remove the Authorization header (upstream.strip_authorization)".to_string(),
            );
        }
        let Some(facts) = self.facts() else {
            return Ok(());
        };
        for (name, value) in &facts.headers {
            if host
                .set_header(HeaderMap::Request, name, Some(value))
                .is_err()
            {
                host.log(
                    LogLevel::Error,
                    &format!("could not set the fact header {name}"),
                );
                return Err(format!("set the {name} header"));
            }
        }
        Ok(())
    }
}
