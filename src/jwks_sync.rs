//! JWKS fetches across the worker VMs of one plugin (shared data): one VM
//! fetches under a lease, publishes the key set with its fetch time, and the
//! others load it (or wait for the fetch in flight) instead of fetching too.
//!
//! Shared data of issuer `i`: `fhir_smart_authz.jwks.<i>.<iss>` holds the
//! fetch time (ms, 8 bytes big-endian) followed by the JWKS bytes;
//! `<that key>.lease` holds the fetch lease (its rules: the core's
//! `token::fetch_lease`).

use crate::host::{Host, LogLevel};
use crate::ports::TokenPort;
use fhir_smart_authz_core::config::Config;
pub use fhir_smart_authz_core::token::fetch_lease::Lease;
use fhir_smart_authz_core::token::fetch_lease::{self, lease_ended, lease_taken};
use fhir_smart_authz_core::token::{decode_shared_jwks, encode_shared_jwks};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Weak;

/// Root tick period while requests wait for another VM's JWKS fetch.
pub const WAIT_TICK_MS: u64 = 50;

/// This VM's view of the shared key sets.
#[derive(Default)]
pub struct JwksSync {
    /// Per issuer: the stamp (ms) of the shared JWKS this VM last loaded.
    pub seen: RefCell<HashMap<usize, u64>>,
    /// Requests waiting for another VM's JWKS fetch (woken by the root tick).
    pub waiting: RefCell<Vec<Waiter>>,
    /// Calls that resumed requests made from the root's tick, by token: the
    /// SDK files a call under the context it last called into (the root),
    /// so the root hands its answer to the request ([`answer_forwarded`]).
    pub forwarded: RefCell<Vec<(u32, Waiter)>>,
}

/// A request that can wait for another VM's key set (the HTTP stream).
pub trait KeysWaiter {
    /// The wait is over: the keys arrived, the other VM's fetch ended, or
    /// the deadline passed. Called from the root's tick, in the stream's
    /// context.
    fn keys_wait_over(&mut self, host: &dyn Host);
    /// The call (JWKS fetch, introspection, response check) the request
    /// waits for, if any.
    fn call_in_flight(&self) -> Option<u32>;
    /// The answer to that call, handed over by the root.
    fn call_answered(&mut self, host: &dyn Host, token_id: u32, body_size: usize);
}

/// A request paused until another VM's JWKS fetch for `issuer` lands.
pub struct Waiter {
    pub issuer: usize,
    /// [`JwksSync::seen`] of the issuer when the wait began.
    pub since: u64,
    pub deadline_ms: u64,
    pub context_id: u32,
    pub stream: Weak<RefCell<dyn KeysWaiter>>,
}

impl JwksSync {
    /// This VM loaded (or fetched) the key set of `issuer` stamped `ms`.
    pub fn saw(&self, issuer: usize, ms: u64) {
        if let Ok(mut seen) = self.seen.try_borrow_mut() {
            seen.insert(issuer, ms);
        }
    }

    /// When the key set of `issuer` this VM holds was fetched (ms).
    pub fn seen_ms(&self, issuer: usize) -> Option<u64> {
        self.seen.try_borrow().ok()?.get(&issuer).copied()
    }

    /// Load the JWKS another VM published for `issuer` if it is newer than
    /// the one this VM has. `true` when a new set was loaded.
    pub fn pick_up(
        &self,
        host: &dyn Host,
        config: &Config,
        tokens: &mut dyn TokenPort,
        issuer: usize,
    ) -> bool {
        let (value, _) = host.shared_get(&jwks_shared_key(config, issuer));
        let Some((ts, bytes)) = value.as_deref().and_then(decode_shared_jwks) else {
            return false;
        };
        let Ok(mut seen) = self.seen.try_borrow_mut() else {
            return false;
        };
        if seen.get(&issuer).is_some_and(|s| *s >= ts) {
            return false;
        }
        seen.insert(issuer, ts);
        match tokens.jwks_shared(issuer, bytes, ts / 1000, host.now_ms() / 1000) {
            Ok(()) => true,
            Err(e) => {
                host.log(
                    LogLevel::Warn,
                    &format!("fhir-smart-authz: shared JWKS of issuers[{issuer}] rejected: {e}"),
                );
                false
            }
        }
    }
}

impl JwksSync {
    /// Take the waiting requests whose keys arrived (picked up before),
    /// whose other VM's fetch ended or whose wait timed out: whether any
    /// request waited, and the ones to [`resume`]. `None` while the lists
    /// are in use.
    pub fn take_ready(
        &self,
        host: &dyn Host,
        config: &Config,
        now_ms: u64,
    ) -> Option<(bool, Vec<Waiter>)> {
        let mut waiting = self.waiting.try_borrow_mut().ok()?;
        let seen = self.seen.try_borrow().ok()?;
        let had_waiters = !waiting.is_empty();
        let (ready, keep): (Vec<Waiter>, Vec<Waiter>) = waiting.drain(..).partition(|w| {
            w.stream.strong_count() == 0
                || seen.get(&w.issuer).is_some_and(|s| *s > w.since)
                || now_ms >= w.deadline_ms
                || lease_state(host, config, w.issuer, now_ms) != Lease::Fetching
        });
        *waiting = keep;
        Some((had_waiters, ready))
    }

    /// Whether requests still wait for keys.
    pub fn has_waiters(&self) -> bool {
        self.waiting.try_borrow().map_or(true, |w| !w.is_empty())
    }
}

/// Resume the requests [`JwksSync::take_ready`] returned: each verifies its
/// token again in its own context.
pub fn resume(host: &dyn Host, sync: &JwksSync, ready: Vec<Waiter>) {
    for w in ready {
        drive(host, sync, w, |s| s.keys_wait_over(host));
    }
}

/// The answer to a call the root did not make: a request resumed from the
/// root's tick made it ([`JwksSync::forwarded`]). `false` when none did.
pub fn answer_forwarded(host: &dyn Host, sync: &JwksSync, token_id: u32, body_size: usize) -> bool {
    let found = sync.forwarded.try_borrow_mut().ok().and_then(|mut f| {
        let i = f.iter().position(|(id, _)| *id == token_id)?;
        Some(f.swap_remove(i).1)
    });
    let Some(w) = found else {
        return false;
    };
    drive(host, sync, w, |s| {
        s.call_answered(host, token_id, body_size)
    });
    true
}

/// Run `step` on the waiting request in its own context; a call it makes
/// there is filed under the root by the SDK, so note it for the root.
fn drive(host: &dyn Host, sync: &JwksSync, w: Waiter, step: impl FnOnce(&mut dyn KeysWaiter)) {
    let Some(stream) = w.stream.upgrade() else {
        return;
    };
    if host.set_effective_context(w.context_id).is_err() {
        return; // the stream is gone
    }
    let Ok(mut s) = stream.try_borrow_mut() else {
        return;
    };
    step(&mut *s);
    if let Some(id) = s.call_in_flight() {
        drop(s);
        if let Ok(mut f) = sync.forwarded.try_borrow_mut() {
            f.push((id, w));
        }
    }
}

/// Key under which fetched JWKS bytes are shared across VMs.
pub fn jwks_shared_key(config: &Config, issuer: usize) -> String {
    let iss = config
        .issuers
        .get(issuer)
        .map(|i| i.issuer.as_str())
        .unwrap_or("");
    format!("fhir_smart_authz.jwks.{issuer}.{iss}")
}

/// Publish fetched JWKS bytes (prefixed with the fetch time) to shared data.
pub fn publish_jwks(host: &dyn Host, config: &Config, issuer: usize, bytes: &[u8], now_ms: u64) {
    let v = encode_shared_jwks(now_ms, bytes);
    let _ = host.shared_set(&jwks_shared_key(config, issuer), &v, None);
}

/// The cross-VM JWKS fetch lease of an issuer.
fn lease_key(config: &Config, issuer: usize) -> String {
    format!("{}.lease", jwks_shared_key(config, issuer))
}

pub fn lease_state(host: &dyn Host, config: &Config, issuer: usize, now_ms: u64) -> Lease {
    let (value, cas) = host.shared_get(&lease_key(config, issuer));
    fetch_lease::lease_state(value.as_deref(), cas, now_ms)
}

/// Take the lease for a JWKS fetch starting now; `false`: another VM has it.
pub fn take_lease(
    host: &dyn Host,
    config: &Config,
    issuer: usize,
    now_ms: u64,
    timeout_ms: u64,
) -> bool {
    let Lease::Free(cas) = lease_state(host, config, issuer, now_ms) else {
        return false;
    };
    let v = lease_taken(now_ms, timeout_ms);
    host.shared_set(&lease_key(config, issuer), &v, cas).is_ok()
}

/// The fetch that took the lease at `started_ms` is over (see
/// [`lease_ended`]).
pub fn end_lease(host: &dyn Host, config: &Config, issuer: usize, started_ms: u64, ok: bool) {
    let min_s = config
        .issuers
        .get(issuer)
        .map_or(0, |i| i.jwks_min_refetch_seconds);
    let v = lease_ended(started_ms, ok, min_s);
    let (_, cas) = host.shared_get(&lease_key(config, issuer));
    let _ = host.shared_set(&lease_key(config, issuer), &v, cas);
}
