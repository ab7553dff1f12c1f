//! What one worker thread keeps per configuration: the root (its key sets,
//! the streams' shared state; what a proxy-wasm worker VM keeps; its token
//! cache is the configuration's, one for all workers), the live streams by context id (the effective context), the HTTP
//! callouts in flight, and the tick. The main thread runs the whole tick
//! every `TICK_MS` (the configuration's scheduler; its JWKS fetches are the
//! configuration's callouts, which outlive any request) and publishes the
//! key sets; a worker runs it without fetches (a fetch sent through a
//! request's filter dies with the request): from requests at most every
//! `TICK_MS`, and every `WAIT_TICK_MS` through a filter scheduler while its
//! streams wait for keys. A stream that needs keys now fetches them itself.

use crate::abi::{self, FilterEnvoyPtr};
use crate::config::NativeConfig;
use crate::host::NativeHost;
use crate::token_cache::ports_over;
use fhir_smart_authz::audit_property::resolve_audit_encoding;
use fhir_smart_authz::host::{Host, HostError};
use fhir_smart_authz::root::{Root, TICK_MS};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

pub struct WorkerCtx {
    pub config: Arc<NativeConfig>,
    /// Live streams: context id → their filter.
    filters: RefCell<HashMap<u32, FilterEnvoyPtr>>,
    /// Callouts in flight: (filter, Envoy's callout id) → (the token the
    /// shell knows the call by, whether the root's tick made it).
    calls: RefCell<HashMap<(usize, u64), (u32, bool)>>,
    next_token: Cell<u32>,
    next_context: Cell<u32>,
    /// The root's tick is running (its calls are answered to the root).
    in_root: Cell<bool>,
    /// The tick period the shell asked for last.
    pub tick_period_ms: Cell<u64>,
    last_refresh_ms: Cell<u64>,
}

pub struct Worker {
    pub ctx: WorkerCtx,
    pub root: RefCell<Root>,
}

thread_local! {
    static WORKERS: RefCell<HashMap<u64, Rc<Worker>>> = RefCell::new(HashMap::new());
}

/// This thread's state for `config`, configured on first use (through the
/// first stream's filter).
pub fn worker_for(config: &Arc<NativeConfig>, filter: FilterEnvoyPtr) -> Option<Rc<Worker>> {
    // (On the main thread `filter` is null: the configuration's own state.)
    if let Some(w) = WORKERS.with(|m| m.borrow().get(&config.id).cloned()) {
        return Some(w);
    }
    let worker = Rc::new(Worker {
        ctx: WorkerCtx {
            config: config.clone(),
            filters: RefCell::new(HashMap::new()),
            calls: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            next_context: Cell::new(1),
            in_root: Cell::new(false),
            tick_period_ms: Cell::new(TICK_MS),
            last_refresh_ms: Cell::new(0),
        },
        root: RefCell::new(Root::default()),
    });
    {
        let host = NativeHost::new(filter, &worker.ctx);
        let bytes = host.plugin_configuration();
        let mut declared = None;
        let ports = ports_over(&config.token_cache);
        let ok = worker.root.try_borrow_mut().ok()?.configure_with(
            &host,
            bytes.as_deref(),
            &ports,
            &mut |c| {
                resolve_audit_encoding(&host, c, &mut declared, &mut || Err(HostError::NotFound))
            },
        );
        if !ok {
            return None;
        }
    }
    WORKERS.with(|m| m.borrow_mut().insert(config.id, worker.clone()));
    Some(worker)
}

/// The configuration is gone: this thread's state for it goes too.
pub fn forget(config_id: u64) {
    let _ = WORKERS.try_with(|m| m.try_borrow_mut().map(|mut m| m.remove(&config_id)));
}

impl WorkerCtx {
    /// A new stream of this worker: its context id.
    pub fn register(&self, filter: FilterEnvoyPtr) -> u32 {
        let id = self.next_context.get();
        self.next_context.set(id.wrapping_add(1).max(1));
        if let Ok(mut f) = self.filters.try_borrow_mut() {
            f.insert(id, filter);
        }
        id
    }

    /// The stream is gone: its context and its callouts (Envoy cancels them).
    pub fn unregister(&self, context_id: u32, filter: FilterEnvoyPtr) {
        if let Ok(mut f) = self.filters.try_borrow_mut() {
            f.remove(&context_id);
        }
        if let Ok(mut c) = self.calls.try_borrow_mut() {
            c.retain(|(f, _), _| *f != filter as usize);
        }
    }

    pub fn filter_of(&self, context_id: u32) -> Option<FilterEnvoyPtr> {
        self.filters.try_borrow().ok()?.get(&context_id).copied()
    }

    /// A callout was made through `filter`: the token the shell knows it by.
    pub fn note_call(&self, filter: FilterEnvoyPtr, callout_id: u64) -> u32 {
        let token = self.next_token.get();
        self.next_token.set(token.wrapping_add(1).max(1));
        if let Ok(mut c) = self.calls.try_borrow_mut() {
            c.insert((filter as usize, callout_id), (token, self.in_root.get()));
        }
        token
    }

    /// The call answered at `filter`: its token and whether the root made it.
    pub fn take_call(&self, filter: FilterEnvoyPtr, callout_id: u64) -> Option<(u32, bool)> {
        self.calls
            .try_borrow_mut()
            .ok()?
            .remove(&(filter as usize, callout_id))
    }
}

impl Worker {
    /// Run the root's tick through `filter` (null: the configuration's, on
    /// the main thread; its calls go out through it).
    pub fn tick(&self, filter: FilterEnvoyPtr) {
        let host = NativeHost::new(filter, &self.ctx);
        let Ok(mut root) = self.root.try_borrow_mut() else {
            return;
        };
        self.ctx.in_root.set(true);
        root.tick(&host);
        self.ctx.in_root.set(false);
        drop(root);
        host.flush();
    }

    /// On a worker thread, at most every `TICK_MS` from a request: the
    /// root's tick without fetches (key sets the main thread fetched, the
    /// waiting streams woken).
    pub fn refresh_if_due(&self, filter: FilterEnvoyPtr) {
        let host = NativeHost::new(filter, &self.ctx);
        let now = host.now_ms();
        if now.saturating_sub(self.ctx.last_refresh_ms.get()) < TICK_MS {
            return;
        }
        self.ctx.last_refresh_ms.set(now);
        self.refresh(&host);
    }

    /// The root's tick without fetches, through `host`.
    pub fn refresh(&self, host: &NativeHost<'_>) {
        if let Ok(mut root) = self.root.try_borrow_mut() {
            root.refresh(host);
        }
        host.flush();
    }

    /// Answer a callout of the root's tick (in the context of `filter`).
    pub fn root_call_answered(&self, host: &NativeHost<'_>, token: u32, body_size: usize) {
        if let Ok(mut root) = self.root.try_borrow_mut() {
            self.ctx.in_root.set(true);
            root.on_call_response(host, token, body_size);
            self.ctx.in_root.set(false);
        }
    }

    /// Whether streams of this worker wait for another's key fetch (then
    /// the tick must run every `tick_period_ms` until they are woken).
    pub fn has_waiters(&self) -> bool {
        let period_short = self.ctx.tick_period_ms.get() < TICK_MS;
        period_short
            && self
                .root
                .try_borrow()
                .ok()
                .and_then(|r| r.shared.as_ref().map(|s| s.jwks.has_waiters()))
                .unwrap_or(false)
    }

    /// Call `on_http_filter_scheduled` on `filter` after the tick period
    /// (a thread sleeps; waits for keys are rare and short).
    pub fn arm_tick(&self, filter: FilterEnvoyPtr) {
        let period = self.ctx.tick_period_ms.get();
        // SAFETY: `filter` is live; the scheduler is committed and deleted
        // once, by the thread below, which Envoy allows from any thread (a
        // commit after the filter is gone is a no-op).
        let scheduler =
            unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_new(filter) };
        if scheduler.is_null() {
            return;
        }
        let handed = SendPtr(scheduler);
        let spawned = std::thread::Builder::new()
            .name("fhir-smart-authz-tick".into())
            .spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(period));
                let s = handed;
                // SAFETY: see above.
                unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_scheduler_commit(s.0, 0);
                    abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(s.0);
                }
            });
        if spawned.is_err() {
            // SAFETY: never committed; deleted once here.
            unsafe { abi::envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler) };
        }
    }
}

/// A scheduler pointer handed to the timer thread (Envoy allows commit and
/// delete from any thread).
struct SendPtr(*mut std::ffi::c_void);
// SAFETY: the scheduler is thread-safe by the ABI's contract (see above).
unsafe impl Send for SendPtr {}
