//! Root context logic: configuration, JWKS fetch scheduling and sharing
//! across worker VMs. Host-agnostic.

use super::host::{Body, Headers, Host, Level, SharedWrite};
use super::ports::{Engine, TokenPort};
use super::stream::{jwks_shared_key, publish_jwks, AuditEncoding, Shared};
use crate::config::Config;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// Tick period: how often shared JWKS are picked up and refreshes checked.
pub const TICK_MS: u64 = 1000;

pub type Factory = dyn Fn(Rc<Config>) -> (Box<dyn TokenPort>, Box<dyn Engine>);

#[derive(Default)]
pub struct Root {
    pub shared: Option<Rc<Shared>>,
    in_flight: HashMap<u32, usize>,
    fetching: HashSet<usize>,
    seen: HashMap<usize, u64>,
    ticks: u64,
}

impl Root {
    /// Parse and apply a plugin configuration. `false` = Envoy rejects it.
    pub fn configure(
        &mut self,
        host: &dyn Host,
        bytes: Option<&[u8]>,
        factory: &Factory,
        audit_encoding: AuditEncoding,
    ) -> bool {
        let bytes = bytes.filter(|b| !b.is_empty()).unwrap_or(b"{}");
        let config = match Config::from_json(bytes) {
            Ok(c) => Rc::new(c),
            Err(e) => {
                host.log(Level::Critical, &format!("fhir-smart-authz: {e}"));
                return false;
            }
        };
        let (tokens, engine) = factory(config.clone());
        self.shared = Some(Shared::new(config.clone(), tokens, engine, audit_encoding));
        self.in_flight.clear();
        self.fetching.clear();
        self.seen.clear();
        host.log(
            Level::Info,
            &format!(
                "fhir-smart-authz: configured (base path {:?}, {} issuer(s), enforce={})",
                config.base_path,
                config.issuers.len(),
                config.enforce
            ),
        );
        if !host.set_tick_period_ms(TICK_MS) {
            host.log(Level::Warn, "fhir-smart-authz: could not set the tick period; JWKS refresh relies on on-demand fetches");
        }
        // The first JWKS fetches start on the first tick: during
        // on_configure Envoy's clusters may not accept calls yet.
        true
    }

    /// Pick up JWKS other VMs fetched, then start due fetches (one VM per
    /// issuer wins a short lease in shared data).
    pub fn tick(&mut self, host: &dyn Host) {
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
            let (value, _) = host.shared_get(&jwks_shared_key(&config, issuer));
            let Some(value) = value else { continue };
            let Some((ts, bytes)) = split_stamp(&value) else {
                continue;
            };
            if self.seen.get(&issuer).is_some_and(|s| *s >= ts) {
                continue;
            }
            self.seen.insert(issuer, ts);
            if let Err(e) = tokens.jwks_shared(issuer, bytes, ts / 1000, now) {
                host.log(
                    Level::Warn,
                    &format!("fhir-smart-authz: shared JWKS of issuers[{issuer}] rejected: {e}"),
                );
            }
        }
        for (issuer, call) in tokens.due_jwks_fetches(now) {
            if self.fetching.contains(&issuer) {
                continue;
            }
            let lease_key = format!("{}.lease", jwks_shared_key(&config, issuer));
            let (lease, cas) = host.shared_get(&lease_key);
            if lease
                .as_deref()
                .and_then(split_stamp)
                .is_some_and(|(until, _)| until > now_ms)
            {
                continue; // another VM is fetching
            }
            let until = now_ms.saturating_add(call.timeout_ms).saturating_add(1000);
            if host.shared_set(&lease_key, &until.to_be_bytes(), cas) != SharedWrite::Ok {
                continue;
            }
            match host.dispatch_http_call(&call) {
                Ok(id) => {
                    self.in_flight.insert(id, issuer);
                    self.fetching.insert(issuer);
                }
                Err(e) => {
                    host.log(
                        Level::Warn,
                        &format!("fhir-smart-authz: JWKS fetch for issuers[{issuer}]: {e}"),
                    );
                    shared.count(host, "jwks_fetch.failure");
                    let _ = tokens.jwks_response(issuer, Err(&e), now);
                }
            }
        }
    }

    /// The answer to a root-initiated JWKS fetch.
    pub fn on_call_response(&mut self, host: &dyn Host, token_id: u32, body_size: usize) {
        let Some(issuer) = self.in_flight.remove(&token_id) else {
            return;
        };
        self.fetching.remove(&issuer);
        let Some(shared) = self.shared.clone() else {
            return;
        };
        let now_ms = host.now_ms();
        let status = host
            .headers(Headers::CallResponse)
            .iter()
            .find(|(n, _)| n == ":status")
            .and_then(|(_, v)| v.parse::<u16>().ok());
        let body = host.body(Body::CallResponse, body_size).unwrap_or_default();
        let Ok(mut tokens) = shared.tokens.try_borrow_mut() else {
            return;
        };
        let response = status
            .map(|s| (s, body.as_slice()))
            .ok_or("the call failed");
        match tokens.jwks_response(issuer, response, now_ms / 1000) {
            Ok(()) => {
                shared.count(host, "jwks_fetch.success");
                publish_jwks(host, &shared.config, issuer, &body, now_ms);
                self.seen.insert(issuer, now_ms);
            }
            Err(e) => {
                shared.count(host, "jwks_fetch.failure");
                host.log(
                    Level::Warn,
                    &format!("fhir-smart-authz: JWKS fetch for issuers[{issuer}] failed: {e}"),
                );
            }
        }
    }
}

/// `8-byte big-endian stamp ++ payload`.
fn split_stamp(v: &[u8]) -> Option<(u64, &[u8])> {
    let head: [u8; 8] = v.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(head), v.get(8..)?))
}
