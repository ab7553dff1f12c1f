//! Root context logic: configuration, JWKS fetch scheduling and sharing
//! across worker VMs. Host-agnostic.

use crate::host::{call_response, Host, LogLevel, VmSecrets, MAX_TOKEN_CALL_BYTES};
use crate::jwks_sync::{self, end_lease, publish_jwks, take_lease};
use crate::metrics;
use crate::ports::{Engine, TokenPort};
use crate::replay_store::SharedReplay;
use crate::shared::Shared;
use fhir_smart_authz_core::audit::AuditEncoding;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::token::binding::replay::prepare as prepare_replay_cache;
use fhir_smart_authz_core::token::binding::ReplayLayout;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Tick period: how often shared JWKS are picked up and refreshes checked.
pub const TICK_MS: u64 = 1000;

pub type Factory = dyn Fn(Rc<Config>) -> (Box<dyn TokenPort>, Box<dyn Engine>);

#[derive(Default)]
pub struct Root {
    pub shared: Option<Rc<Shared>>,
    /// Root JWKS fetches in flight: call id → (issuer, start ms).
    in_flight: HashMap<u32, (usize, u64)>,
    fetching: HashSet<usize>,
    ticks: u64,
    /// The tick runs at `WAIT_TICK_MS` while requests wait for keys.
    fast_tick: bool,
    /// When the configuration loaded (ms): the key-set age before any fetch.
    configured_ms: u64,
}

impl Root {
    /// Parse and apply a plugin configuration with a fixed audit encoding.
    /// `false` = Envoy rejects it.
    pub fn configure(
        &mut self,
        host: &dyn Host,
        bytes: Option<&[u8]>,
        factory: &Factory,
        audit_encoding: AuditEncoding,
    ) -> bool {
        self.configure_with(host, bytes, factory, &mut |_| audit_encoding)
    }

    /// Parse and apply a plugin configuration; `audit_encoding` is asked,
    /// only once the configuration is valid, how this configuration's audit
    /// record is written (see [`crate::audit_property::resolve_audit_encoding`]).
    pub fn configure_with(
        &mut self,
        host: &dyn Host,
        bytes: Option<&[u8]>,
        factory: &Factory,
        audit_encoding: &mut dyn FnMut(&Config) -> AuditEncoding,
    ) -> bool {
        let bytes = bytes.filter(|b| !b.is_empty()).unwrap_or(b"{}");
        let config = match Config::from_json_with_secrets(bytes, &VmSecrets(host)) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                host.log(LogLevel::Critical, &format!("fhir-smart-authz: {e}"));
                return false;
            }
        };
        for field in &config.inline_secrets {
            host.log(
                LogLevel::Warn,
                &format!("fhir-smart-authz: `{field}` is a secret written in the configuration (allow_insecure_inline_secrets): /config_dump shows it"),
            );
        }
        let audit_encoding = audit_encoding(&config);
        let (tokens, engine) = factory(config.clone());
        let shared = Shared::new(config.clone(), tokens, engine, audit_encoding);
        if config.binding().dpop_accepted() {
            // The first write of a shard cannot be compare-and-swapped:
            // create them before requests come (existing ones are kept,
            // and so is their count: see `replay::prepare`).
            let entries = config.sender_constraint.replay_cache_entries;
            let layout = prepare_replay_cache(&mut SharedReplay::new(host), entries);
            if layout != ReplayLayout::for_capacity(entries) {
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "fhir-smart-authz: the DPoP replay cache keeps the {} shards this Envoy process started with (sender_constraint.replay_cache_entries {entries} now: {} entries a shard); restart Envoy to lay it out for the new size",
                        layout.shards, layout.per_shard
                    ),
                );
            }
            shared.replay_shards.set(Some(layout.shards));
        }
        self.shared = Some(shared);
        self.in_flight.clear();
        self.fetching.clear();
        host.log(
            LogLevel::Info,
            &format!(
                "fhir-smart-authz: configured (base path {:?}, {} issuer(s), enforce={})",
                config.base.path,
                config.issuers.len(),
                config.enforce
            ),
        );
        if let Some(Ok(mut m)) = self.shared.as_ref().map(|s| s.metrics.try_borrow_mut()) {
            m.define_all(host);
        }
        self.configured_ms = host.now_ms();
        if host.set_tick_period_ms(TICK_MS).is_err() {
            host.log(LogLevel::Warn, "fhir-smart-authz: could not set the tick period; JWKS refresh relies on on-demand fetches");
        }
        // The first JWKS fetches start on the first tick: during
        // on_configure Envoy's clusters may not accept calls yet.
        true
    }

    /// Pick up JWKS other VMs fetched, then start due fetches (one VM per
    /// issuer wins a short lease in shared data).
    pub fn tick(&mut self, host: &dyn Host) {
        self.tick_with(host, true);
    }

    /// The tick without fetches of its own: housekeeping, key sets other
    /// workers fetched, the waiting requests woken. For a host whose worker
    /// has no context that outlives a request to fetch through (the native
    /// module's workers; its main thread fetches).
    pub fn refresh(&mut self, host: &dyn Host) {
        self.tick_with(host, false);
    }

    fn tick_with(&mut self, host: &dyn Host, fetch: bool) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let config = shared.config.clone();
        let now_ms = host.now_ms();
        let now = now_ms / 1000;
        if let Ok(mut m) = shared.metrics.try_borrow_mut() {
            m.memory(host, host.memory_bytes());
        }
        let Ok(mut tokens) = shared.tokens.try_borrow_mut() else {
            return;
        };
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks % 60 == 0 {
            tokens.housekeeping(now);
        }
        for issuer in tokens.fetched_issuers() {
            shared.pick_up_shared_jwks(host, &mut **tokens, issuer);
            let fetched_ms = shared.jwks.seen_ms(issuer).unwrap_or(self.configured_ms);
            if let Ok(mut m) = shared.metrics.try_borrow_mut() {
                let age = now_ms.saturating_sub(fetched_ms) / 1000;
                m.gauge(host, &metrics::key_set_age_gauge(issuer), age);
            }
        }
        let due = if fetch {
            tokens.due_jwks_fetches(now)
        } else {
            Vec::new()
        };
        for (issuer, call) in due {
            if self.fetching.contains(&issuer) {
                continue;
            }
            if !take_lease(host, &config, issuer, now_ms, call.timeout_ms) {
                continue; // another VM is fetching, or fetched moments ago
            }
            match host.dispatch_http_call(&call) {
                Ok(id) => {
                    self.in_flight.insert(id, (issuer, now_ms));
                    self.fetching.insert(issuer);
                }
                Err(e) => {
                    let why = crate::host::refusal(&call, e);
                    host.log(
                        LogLevel::Warn,
                        &format!("fhir-smart-authz: JWKS fetch for issuers[{issuer}]: {why}"),
                    );
                    shared.jwks_fetched(host, issuer, false);
                    end_lease(host, &config, issuer, now_ms, false);
                    let _ = tokens.jwks_response(issuer, Err(&why), now);
                }
            }
        }
        drop(tokens);
        self.wake_waiters(host, &shared, now_ms);
    }

    /// Resume the requests waiting for another VM's JWKS fetch whose keys
    /// arrived (picked up above), whose fetch ended or whose wait timed out.
    fn wake_waiters(&mut self, host: &dyn Host, shared: &Rc<Shared>, now_ms: u64) {
        let Some((had_waiters, ready)) = shared.jwks.take_ready(host, &shared.config, now_ms)
        else {
            return;
        };
        // A waiting stream shortened the tick (WAIT_TICK_MS); back to TICK_MS
        // once nobody waits.
        self.fast_tick |= had_waiters;
        if self.fast_tick && !shared.jwks.has_waiters() {
            self.fast_tick = false;
            let _ = host.set_tick_period_ms(TICK_MS);
        }
        jwks_sync::resume(host, &shared.jwks, ready);
    }

    /// The answer to a root-initiated JWKS fetch.
    /// (Or to a call a request made while the root's tick resumed it: handed
    /// to that request.)
    pub fn on_call_response(&mut self, host: &dyn Host, token_id: u32, body_size: usize) {
        let Some((issuer, started_ms)) = self.in_flight.remove(&token_id) else {
            if let Some(shared) = &self.shared {
                jwks_sync::answer_forwarded(host, &shared.jwks, token_id, body_size);
            }
            return;
        };
        self.fetching.remove(&issuer);
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now_ms = host.now_ms();
        let answer = call_response(host, body_size, MAX_TOKEN_CALL_BYTES);
        let Ok(mut tokens) = shared.tokens.try_borrow_mut() else {
            return;
        };
        let response = match &answer {
            Ok((status, body)) => Ok((*status, body.as_slice())),
            Err(why) => Err(why.as_str()),
        };
        let result = tokens.jwks_response(issuer, response, now_ms / 1000);
        end_lease(host, &shared.config, issuer, started_ms, result.is_ok());
        match (result, answer) {
            (Ok(()), Ok((_, body))) => {
                shared.jwks_fetched(host, issuer, true);
                publish_jwks(host, &shared.config, issuer, &body, now_ms);
                shared.jwks.saw(issuer, now_ms);
            }
            (Err(e), _) | (_, Err(e)) => {
                shared.jwks_fetched(host, issuer, false);
                host.log(
                    LogLevel::Warn,
                    &format!("fhir-smart-authz: JWKS fetch for issuers[{issuer}] failed: {e}"),
                );
            }
        }
    }
}
