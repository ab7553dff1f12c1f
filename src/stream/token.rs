//! The token phase: verify the bearer token through the token port, make
//! the calls it asks for (JWKS fetch under the cross-VM lease,
//! introspection), and wait (once, bounded) for a key set another worker VM
//! is fetching rather than answer 401.

use super::{Callback, Phase, Stream, TokenCall};
use crate::host::{call_response, Flow, Host, LogLevel, MAX_TOKEN_CALL_BYTES};
use crate::jwks_sync::{
    end_lease, lease_state, publish_jwks, take_lease, KeysWaiter, Lease, Waiter, WAIT_TICK_MS,
};
use crate::ports::{Pending, TokenStep};
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::token::service::jwks_fetch_succeeded;

fn verifier_busy() -> TokenStep {
    TokenStep::denied(Decision::deny(
        Reason::KeysUnavailable,
        "internal: token verifier busy; retry",
    ))
}

impl Stream {
    fn port_verify(&self, host: &dyn Host, token: &str) -> TokenStep {
        let now = self.now_s(host);
        match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => tp.verify(host, token, now),
            Err(_) => verifier_busy(),
        }
    }

    /// A JWKS fetch the token port asked for is not made (another VM has
    /// it, or fetched within `jwks_min_refetch_seconds`): the port's answer
    /// without it.
    fn skip_fetch(&self, host: &dyn Host, pending: Pending, token: &str) -> TokenStep {
        let now = self.now_s(host);
        match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => tp.call_done(host, pending, token, None, b"", now),
            Err(_) => verifier_busy(),
        }
    }

    /// The issuer whose current key set cannot verify this token (unknown
    /// `kid`, no keys yet), as the token port sees it.
    fn unknown_kid_issuer(&self, token: &str) -> Option<usize> {
        self.shared
            .tokens
            .try_borrow()
            .ok()
            .and_then(|t| t.unknown_kid_issuer(token))
    }

    /// The token port's first answer for `token`, and the issuer whose
    /// current key set cannot verify it (keys to fetch, or to wait for),
    /// if any.
    pub(super) fn first_step(&self, host: &dyn Host, token: &str) -> (TokenStep, Option<usize>) {
        let start = self.timer_start(host);
        let step = self.port_verify(host, token);
        self.timer_stop(host, "token", start);
        let issuer = match &step {
            TokenStep::Call {
                purpose: Pending::Jwks { issuer },
                ..
            } => Some(*issuer),
            TokenStep::Denied(_) => self.unknown_kid_issuer(token),
            _ => None,
        };
        (step, issuer)
    }

    /// The token kept for verifying after the headers callback ("" if none).
    fn kept_token(&self) -> String {
        match &self.phase {
            Phase::Verifying(v) => v.token.clone().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// Verify the stream's token (kept from the request's headers).
    fn verify_token(&mut self, host: &dyn Host) -> Flow {
        let token = self.kept_token();
        let (step, issuer) = self.first_step(host, &token);
        self.token_step(host, step, issuer)
    }

    /// Go on from the port's first answer (see [`Self::first_step`]). When
    /// the issuer's keys cannot verify the token (unknown `kid`, no keys
    /// yet), first load the key set another worker VM may have shared; fetch
    /// only with the cross-VM lease (no stampede); if another VM's fetch is
    /// in flight, wait for it (once, bounded) instead of answering 401.
    pub(super) fn token_step(
        &mut self,
        host: &dyn Host,
        mut step: TokenStep,
        issuer: Option<usize>,
    ) -> Flow {
        let Some(issuer) = issuer else {
            return self.handle_step(host, step, None);
        };
        // Keys to fetch or wait for (rare): a copy is fine.
        let token = self.kept_token();
        let picked_up = match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => self.shared.pick_up_shared_jwks(host, &mut **tp, issuer),
            Err(_) => false,
        };
        if picked_up {
            // The abandoned fetch's answer verifies with the picked-up keys:
            // that is this request's step (a miss). Verifying again would
            // count the same request as a cache hit.
            let verified = match step {
                TokenStep::Call {
                    purpose: pending, ..
                } => match self.skip_fetch(host, pending, &token) {
                    v @ TokenStep::Verified { .. } => Some(v),
                    _ => None,
                },
                _ => None,
            };
            step = match verified {
                Some(v) => v,
                None => self.port_verify(host, &token),
            };
        }
        let config = self.config();
        let now_ms = self.now_ms(host);
        match step {
            TokenStep::Call {
                call,
                purpose: Pending::Jwks { issuer },
            } => {
                if take_lease(host, &config, issuer, now_ms, call.timeout_ms) {
                    let step = TokenStep::Call {
                        call,
                        purpose: Pending::Jwks { issuer },
                    };
                    return self.handle_step(host, step, Some(now_ms));
                }
                let denied = self.skip_fetch(host, Pending::Jwks { issuer }, &token);
                if lease_state(host, &config, issuer, now_ms) == Lease::Fetching {
                    if let Some(flow) = self.wait_for_keys(host, issuer) {
                        return flow;
                    }
                }
                self.handle_step(host, denied, None)
            }
            TokenStep::Denied(d) => {
                let still_unknown = self.unknown_kid_issuer(&token) == Some(issuer);
                if still_unknown && lease_state(host, &config, issuer, now_ms) == Lease::Fetching {
                    if let Some(flow) = self.wait_for_keys(host, issuer) {
                        return flow;
                    }
                }
                self.handle_step(host, TokenStep::Denied(d), None)
            }
            other => self.handle_step(host, other, None),
        }
    }

    /// Pause until the root's tick sees the new key set of `issuer` (or the
    /// other VM's fetch ends, or `jwks_timeout_ms` + 1 s pass). `None` when
    /// this stream cannot wait (already waited, or not resumable).
    fn wait_for_keys(&mut self, host: &dyn Host, issuer: usize) -> Option<Flow> {
        let Phase::Verifying(v) = &self.phase else {
            return None;
        };
        if v.waited_for_keys || self.me.strong_count() == 0 {
            return None;
        }
        let config = self.config();
        let timeout = config
            .issuers
            .get(issuer)
            .map_or(5000, |i| i.jwks_timeout_ms);
        let jwks = &self.shared.jwks;
        let since = jwks.seen.try_borrow().ok()?.get(&issuer).copied();
        jwks.waiting.try_borrow_mut().ok()?.push(Waiter {
            issuer,
            since: since.unwrap_or(0),
            deadline_ms: self
                .now_ms(host)
                .saturating_add(timeout)
                .saturating_add(1000),
            context_id: self.context_id,
            stream: self.me.clone(),
        });
        if let Phase::Verifying(v) = &mut self.phase {
            v.waited_for_keys = true;
        }
        if host.set_tick_period_ms(WAIT_TICK_MS).is_err() {
            host.log(
                LogLevel::Warn,
                "could not shorten the tick period while waiting for keys",
            );
        }
        Some(self.pause())
    }

    /// The JWKS fetch this stream made under the cross-VM lease taken at
    /// `lease_started` is over: release the lease.
    fn end_own_lease(
        &self,
        host: &dyn Host,
        purpose: Pending,
        lease_started: Option<u64>,
        ok: bool,
    ) {
        if let (Pending::Jwks { issuer }, Some(started)) = (purpose, lease_started) {
            end_lease(host, &self.shared.config, issuer, started, ok);
        }
    }

    /// The answer to a call this stream made: a token call, a pre-check or
    /// the relay.
    pub fn on_call_response(&mut self, host: &dyn Host, token_id: u32, body_size: usize) {
        self.callback(Callback::Async);
        match self.take_phase() {
            Phase::Relaying { call, decision } if call == token_id => {
                self.on_relay_response(host, decision, body_size);
                return;
            }
            Phase::Prechecking { call, decision } if call == token_id => {
                self.on_precheck_response(host, decision, body_size);
                return;
            }
            phase => self.phase = phase,
        }
        let Some(TokenCall {
            purpose: pending,
            token,
            lease_started,
            ..
        }) = self.token_call.take_if(|c| c.id == token_id)
        else {
            return;
        };
        let config = self.config();
        let (status, body) = match call_response(host, body_size, MAX_TOKEN_CALL_BYTES) {
            Ok((status, body)) => (Some(status), body),
            Err(why) => {
                host.log(
                    LogLevel::Warn,
                    &format!("fhir-smart-authz: {} call: {why}", pending.what()),
                );
                (None, Vec::new())
            }
        };
        if let Pending::Jwks { issuer } = pending {
            let ok = jwks_fetch_succeeded(status, || {
                self.shared
                    .tokens
                    .try_borrow()
                    .is_ok_and(|t| t.usable_jwks(&body))
            });
            self.shared.jwks_fetched(host, issuer, ok);
            if ok {
                let now_ms = self.now_ms(host);
                publish_jwks(host, &config, issuer, &body, now_ms);
                self.shared.jwks.saw(issuer, now_ms);
            }
            self.end_own_lease(host, pending, lease_started, ok);
        }
        let now = self.now_s(host);
        let step = match self.shared.tokens.try_borrow_mut() {
            Ok(mut tp) => tp.call_done(host, pending, &token, status, &body, now),
            Err(_) => verifier_busy(),
        };
        if let Pending::Introspection { .. } = pending {
            self.shared.count(
                host,
                if step.introspection_failed() {
                    "introspection.failure"
                } else {
                    "introspection.success"
                },
            );
        }
        if self.decided() {
            // Refused while the call was in flight (e.g. a body over
            // `max_body_bytes` delivered to paused headers); the key store
            // still took the answer above.
            return;
        }
        self.handle_step(host, step, None);
    }

    /// Act on the token port's answer: carry on with the claims, refuse, or
    /// make the call it asks for (a failed dispatch is answered as a failed
    /// call, at most a few times). `lease_started`: the JWKS fetch lease
    /// taken for the call asked for.
    fn handle_step(
        &mut self,
        host: &dyn Host,
        mut step: TokenStep,
        mut lease_started: Option<u64>,
    ) -> Flow {
        for _ in 0..4 {
            match step {
                TokenStep::Verified { claims, cache_hit } => {
                    self.shared.count(
                        host,
                        if cache_hit {
                            "token_cache.hit"
                        } else {
                            "token_cache.miss"
                        },
                    );
                    return match self.check_binding(host, &claims) {
                        Err(d) => self.carry_out(host, d),
                        Ok(binding) => self.after_token(host, Some((claims, binding))),
                    };
                }
                TokenStep::Denied(d) => return self.carry_out(host, *d),
                TokenStep::Call {
                    call,
                    purpose: pending,
                } => match host.dispatch_http_call(&call) {
                    Ok(id) => {
                        self.token_call = Some(TokenCall {
                            id,
                            purpose: pending,
                            token: self.kept_token(),
                            lease_started,
                        });
                        return self.pause();
                    }
                    Err(e) => {
                        host.log(LogLevel::Warn, &crate::host::refusal(&call, e));
                        self.end_own_lease(host, pending, lease_started.take(), false);
                        match pending {
                            Pending::Jwks { issuer } => {
                                self.shared.jwks_fetched(host, issuer, false)
                            }
                            Pending::Introspection { .. } => {
                                self.shared.count(host, "introspection.failure")
                            }
                        }
                        let token = self.kept_token();
                        let now = self.now_s(host);
                        step = match self.shared.tokens.try_borrow_mut() {
                            Ok(mut tp) => tp.call_done(host, pending, &token, None, b"", now),
                            Err(_) => break,
                        };
                    }
                },
            }
        }
        let d = Decision::deny(
            Reason::KeysUnavailable,
            "the token's signing keys could not be obtained; retry later",
        );
        self.carry_out(host, d)
    }
}

impl KeysWaiter for Stream {
    /// The root's tick ends a wait for keys (`wait_for_keys`).
    fn keys_wait_over(&mut self, host: &dyn Host) {
        self.callback(Callback::Async);
        match &self.phase {
            Phase::Verifying(v) if v.token.is_some() => {
                self.verify_token(host);
            }
            _ => {}
        }
    }

    fn call_in_flight(&self) -> Option<u32> {
        match &self.phase {
            Phase::Relaying { call, .. } => Some(*call),
            _ => self.token_call.as_ref().map(|c| c.id),
        }
    }

    fn call_answered(&mut self, host: &dyn Host, token_id: u32, body_size: usize) {
        self.on_call_response(host, token_id, body_size);
    }
}
