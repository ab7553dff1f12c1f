//! fhir-smart-authz as an Envoy dynamic module (Envoy 1.40.0, ABI `v0.2.0`):
//! the entry points Envoy calls. Each one only adapts: it finds the stream,
//! wraps the hook's pointers in a [`host::NativeHost`] and calls the same
//! host-agnostic `Stream`/`Root` the proxy-wasm build runs, so every rule
//! lives in one place (the core, and the stream driver of the
//! `fhir-smart-authz` crate).
//!
//! Every entry point catches panics ([`guard`]): a panic while a request is
//! undecided refuses it (fail closed: 500 `internal_error` with an
//! OperationOutcome, counted, with an audit record; the shell's
//! `failed_request`) and the stream does nothing more; Envoy goes on serving.

pub mod abi;
mod config;
pub mod crypto;
pub mod host;
pub mod shared_data;
pub mod token_cache;
mod worker;

use crate::abi::{EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr};
use crate::config::NativeConfig;
use crate::host::{CallAnswer, NativeHost};
use crate::worker::{worker_for, Worker};
use fhir_smart_authz::failed_request::Failed;
use fhir_smart_authz::host::{Flow, LogLevel};
use fhir_smart_authz::{Shared, Stream};
use fhir_smart_authz_core::internal_failure;
use fhir_smart_authz_core::reply::{gateway_error_reply, unconfigured_reply, Reply};
use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::{Arc, Once};

/// One HTTP stream's state in the module.
struct Filter {
    /// `None` when the configuration could not be applied on this worker.
    worker: Option<Rc<Worker>>,
    /// The configuration's state on this worker (what a panicked request's
    /// refusal reads: the stream is not trusted then).
    shared: Option<Rc<Shared>>,
    stream: Option<Rc<RefCell<Stream>>>,
    context_id: u32,
    /// When the stream began (µs since the epoch).
    started_us: u64,
    /// `upstream.hold_headers_for_body`: held headers let body callbacks
    /// through (what proxy-wasm needs Envoy's
    /// `allow_on_headers_stop_iteration` for).
    hold_headers: bool,
    /// A tick is scheduled on this filter.
    tick_armed: Cell<bool>,
    /// A hook panicked: the request was answered 500; nothing more happens.
    failed: Cell<bool>,
    /// The request a hook panicked on, refused (its `"line"` audit record
    /// is written when Envoy logs the request).
    failed_request: RefCell<Option<Failed>>,
}

/// Run a hook; a panic becomes `on_panic` (after refusing the request when
/// `reply`: every hook of the request and of its response, whose check a
/// panic may have cut short).
fn guard<R>(
    filter: FilterEnvoyPtr,
    state: Option<&Filter>,
    reply: bool,
    on_panic: R,
    f: impl FnOnce() -> R,
) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            host::log(LogLevel::Critical, "fhir-smart-authz: a hook panicked; the request is refused (500) and the stream ends here");
            let first = !state.is_some_and(|s| s.failed.replace(true));
            if reply && first && !filter.is_null() {
                refuse_failed(filter, state);
            }
            on_panic
        }
    }
}

/// Refuse the request a hook panicked on: the core's reply, counted, with
/// its audit record (from the request headers Envoy still has). Without
/// the configuration's state (none was applied), or should that panic too,
/// the same status and issue code without a record.
fn refuse_failed(filter: FilterEnvoyPtr, state: Option<&Filter>) {
    let refused = catch_unwind(AssertUnwindSafe(|| {
        let s = state?;
        let (worker, shared) = (s.worker.as_ref()?, s.shared.as_ref()?);
        let host = NativeHost::new(filter, &worker.ctx).with_start(s.started_us);
        let (failed, reply) = Failed::refuse(&host, shared);
        *s.failed_request.try_borrow_mut().ok()? = Some(failed);
        Some(reply)
    }));
    let reply = refused
        .ok()
        .flatten()
        .unwrap_or_else(|| gateway_error_reply(500, "exception", internal_failure::MESSAGE));
    // SAFETY: the hook's own filter.
    unsafe { send(filter, &reply) };
}

/// # Safety
/// `filter` is the live filter of the current hook.
unsafe fn send(filter: FilterEnvoyPtr, r: &Reply) {
    host::send_response(filter, r.status, &r.headers, &r.body);
}

/// # Safety
/// `module` is null or a pointer this module returned from `filter_new`
/// and Envoy has not destroyed yet.
unsafe fn filter_ref<'a>(module: *const c_void) -> Option<&'a Filter> {
    (module as *const Filter).as_ref()
}

/// Run `f` on the stream with a host for `filter` (and the answer of a
/// callout, if one is delivered); then, with the stream free again, send
/// what it asked for and arm the tick when streams of this worker wait for
/// keys.
fn with_stream<R>(
    filter: FilterEnvoyPtr,
    state: &Filter,
    answer: Option<CallAnswer>,
    f: impl FnOnce(&NativeHost<'_>, &mut Stream) -> R,
) -> Option<R> {
    if state.failed.get() {
        return None;
    }
    let worker = state.worker.as_ref()?;
    let stream = state.stream.as_ref()?;
    let mut host = NativeHost::new(filter, &worker.ctx).with_start(state.started_us);
    if let Some(a) = answer {
        host = host.with_answer(a);
    }
    let r = {
        let mut s = stream.try_borrow_mut().ok()?;
        f(&host, &mut s)
    };
    host.flush();
    if worker.has_waiters() && !state.tick_armed.replace(true) {
        worker.arm_tick(filter);
    }
    Some(r)
}

fn body_size(
    filter: FilterEnvoyPtr,
    buffered: i32,
    received: i32,
    received_is_buffered: bool,
) -> usize {
    // SAFETY: `filter` is the live filter of this body hook.
    unsafe {
        let r = abi::envoy_dynamic_module_callback_http_get_body_size(filter, received);
        if received_is_buffered {
            r
        } else {
            r + abi::envoy_dynamic_module_callback_http_get_body_size(filter, buffered)
        }
    }
}

/// A callout's answer as the shell reads it (no headers: the call failed).
///
/// # Safety
/// Envoy's arrays, valid for the current hook (or null).
unsafe fn call_answer(
    result: i32,
    headers: *const EnvoyHeader,
    n_headers: usize,
    chunks: *const EnvoyBuffer,
    n_chunks: usize,
) -> CallAnswer {
    let mut answer = CallAnswer::default();
    if result != abi::CALLOUT_RESULT_SUCCESS {
        return answer;
    }
    if !headers.is_null() {
        answer.headers = std::slice::from_raw_parts(headers, n_headers)
            .iter()
            .map(|h| h.pair())
            .collect();
    }
    if !chunks.is_null() {
        for c in std::slice::from_raw_parts(chunks, n_chunks) {
            answer.body.extend_from_slice(c.bytes());
        }
    }
    answer
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            host::log(
                LogLevel::Critical,
                &format!("fhir-smart-authz panicked: {info}"),
            );
            let _ = &previous;
        }));
    });
    abi::abi_version_of_loading_envoy().as_ptr()
}

/// # Safety
/// Envoy passes valid buffers for the duration of the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: abi::ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let bytes = config.bytes();
    guard(
        std::ptr::null_mut(),
        None,
        false,
        std::ptr::null(),
        || match NativeConfig::new(config_envoy, bytes) {
            Ok(c) => {
                c.start_ticker();
                Box::into_raw(Box::new(Arc::new(c))) as *const c_void
            }
            Err(e) => {
                host::log(LogLevel::Critical, &format!("fhir-smart-authz: {e}"));
                std::ptr::null()
            }
        },
    )
}

/// # Safety
/// `config` is a pointer `config_new` returned, destroyed once.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if !config.is_null() {
        let config = Box::from_raw(config as *mut Arc<NativeConfig>);
        let _ = catch_unwind(AssertUnwindSafe(|| {
            config.stop_ticker();
            worker::forget(config.id);
        }));
    }
}

/// # Safety
/// `config` is a live pointer `config_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    filter: FilterEnvoyPtr,
) -> *const c_void {
    let Some(config) = (config as *const Arc<NativeConfig>).as_ref() else {
        return std::ptr::null();
    };
    guard(filter, None, false, std::ptr::null(), || {
        let worker = worker_for(config, filter);
        let (shared, stream, context_id, hold_headers) = match &worker {
            Some(w) => {
                let context_id = w.ctx.register(filter);
                let shared = w.root.try_borrow().ok().and_then(|r| r.shared.clone());
                let hold = shared
                    .as_ref()
                    .is_some_and(|s| s.config.upstream.hold_headers_for_body);
                let stream = shared.clone().map(|s| Stream::new_shared(s, context_id));
                (shared, stream, context_id, hold)
            }
            None => (None, None, 0, false),
        };
        let state = Filter {
            worker,
            shared,
            stream,
            context_id,
            started_us: host::now_us(),
            hold_headers,
            tick_armed: Cell::new(false),
            failed: Cell::new(false),
            failed_request: RefCell::new(None),
        };
        Box::into_raw(Box::new(state)) as *const c_void
    })
}

/// # Safety
/// `module` is a live pointer `filter_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    let state = filter_ref(module);
    guard(filter, state, true, abi::HEADERS_STOP_ITERATION, || {
        let Some(state) = state else {
            return abi::HEADERS_STOP_ITERATION;
        };
        if state.stream.is_none() {
            send(filter, &unconfigured_reply());
            return abi::HEADERS_STOP_ITERATION;
        }
        #[cfg(feature = "fault-injection")]
        if let Some(w) = &state.worker {
            fhir_smart_authz::fault_injection::trap_if_asked(&NativeHost::new(filter, &w.ctx));
        }
        if let Some(w) = &state.worker {
            w.refresh_if_due(filter);
        }
        match with_stream(filter, state, None, |h, s| {
            s.on_request_headers(h, end_of_stream)
        }) {
            Some(Flow::Continue) => abi::HEADERS_CONTINUE,
            _ if state.hold_headers => abi::HEADERS_STOP_ITERATION,
            // As proxy-wasm's default: held headers hold the body too.
            _ => abi::HEADERS_STOP_ALL_AND_WATERMARK,
        }
    })
}

/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    body_hook(filter, module, end_of_stream, true)
}

/// A body hook: the stream sees the body's size so far (what Envoy
/// buffered for this filter and the chunk of this hook). A body the stream
/// holds is buffered; a panic refuses the request (in the response: a 500
/// in its place while its headers have not gone downstream, else Envoy
/// resets the stream).
///
/// # Safety
/// As for the request headers.
unsafe fn body_hook(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
    request: bool,
) -> i32 {
    let (flowing, held) = (abi::BODY_CONTINUE, abi::BODY_STOP_AND_BUFFER);
    // A refused request's own 500 passes through the response hooks.
    let unavailable = if request { held } else { flowing };
    stream_hook(filter, module, (flowing, held), unavailable, |h, s| {
        // SAFETY: the hook's own filter.
        let size = unsafe {
            if request {
                let same =
                    abi::envoy_dynamic_module_callback_http_received_buffered_request_body(filter);
                body_size(
                    filter,
                    abi::BODY_BUFFERED_REQUEST,
                    abi::BODY_RECEIVED_REQUEST,
                    same,
                )
            } else {
                let same =
                    abi::envoy_dynamic_module_callback_http_received_buffered_response_body(filter);
                body_size(
                    filter,
                    abi::BODY_BUFFERED_RESPONSE,
                    abi::BODY_RECEIVED_RESPONSE,
                    same,
                )
            }
        };
        if request {
            s.on_request_body(h, size, end_of_stream)
        } else {
            s.on_response_body(h, size, end_of_stream)
        }
    })
}

/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    filter: FilterEnvoyPtr,
    module: *const c_void,
) -> i32 {
    let held = abi::TRAILERS_STOP;
    stream_hook(
        filter,
        module,
        (abi::TRAILERS_CONTINUE, held),
        held,
        |h, s| s.on_request_trailers(h),
    )
}

/// A hook that hands the stream one event: its flow as Envoy's status
/// (`statuses`: continue, pause; `unavailable` when the stream cannot take
/// it: none, or refused after a panic), and the pause status when a panic
/// is caught (the request is refused then).
///
/// # Safety
/// As for the request headers.
unsafe fn stream_hook(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    statuses: (i32, i32),
    unavailable: i32,
    f: impl FnOnce(&NativeHost<'_>, &mut Stream) -> Flow,
) -> i32 {
    let state = filter_ref(module);
    guard(filter, state, true, statuses.1, || {
        let Some(state) = state else {
            return unavailable;
        };
        match with_stream(filter, state, None, f) {
            Some(Flow::Continue) => statuses.0,
            Some(Flow::Pause) => statuses.1,
            None => unavailable,
        }
    })
}

/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    _end_of_stream: bool,
) -> i32 {
    let flowing = abi::HEADERS_CONTINUE;
    stream_hook(
        filter,
        module,
        (flowing, abi::HEADERS_STOP_ITERATION),
        flowing,
        |h, s| {
            #[cfg(feature = "fault-injection")]
            fhir_smart_authz::fault_injection::trap_on_response_if_asked(h);
            s.on_response_headers(h)
        },
    )
}

/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> i32 {
    body_hook(filter, module, end_of_stream, false)
}

/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
) -> i32 {
    abi::TRAILERS_CONTINUE
}

/// Envoy logs the request after this: the audit record (`"line"`) is written here.
///
/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter: FilterEnvoyPtr,
    module: *const c_void,
) {
    let state = filter_ref(module);
    guard(filter, state, false, (), || {
        let Some(state) = state else {
            return;
        };
        let failed = state
            .failed_request
            .try_borrow_mut()
            .ok()
            .and_then(|mut f| f.take());
        match (failed, &state.worker) {
            (Some(mut failed), Some(w)) => {
                failed.on_log(&NativeHost::new(filter, &w.ctx).with_start(state.started_us))
            }
            _ => {
                let _ = with_stream(filter, state, None, |h, s| s.on_log(h));
            }
        }
    })
}

/// # Safety
/// `module` is a pointer `filter_new` returned, destroyed once.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    if module.is_null() {
        return;
    }
    let state = Box::from_raw(module as *mut Filter);
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(w) = &state.worker {
            let filter = w
                .ctx
                .filter_of(state.context_id)
                .unwrap_or(std::ptr::null_mut());
            w.ctx.unregister(state.context_id, filter);
        }
        drop(state);
    }));
}

/// # Safety
/// Envoy passes `n_headers` headers and `n_chunks` body chunks, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    callout_id: u64,
    result: i32,
    headers: *const EnvoyHeader,
    n_headers: usize,
    chunks: *const EnvoyBuffer,
    n_chunks: usize,
) {
    let state = filter_ref(module);
    guard(filter, state, true, (), || {
        let Some(state) = state else {
            return;
        };
        let Some(worker) = state.worker.clone() else {
            return;
        };
        let Some((token, by_root)) = worker.ctx.take_call(filter, callout_id) else {
            return;
        };
        let answer = call_answer(result, headers, n_headers, chunks, n_chunks);
        let size = answer.body.len();
        if by_root {
            let host = NativeHost::new(filter, &worker.ctx).with_answer(answer);
            worker.root_call_answered(&host, token, size);
            host.flush();
        } else {
            let _ = with_stream(filter, state, Some(answer), |h, s| {
                s.on_call_response(h, token, size)
            });
        }
    })
}

/// The tick scheduled while streams wait for another's key fetch.
///
/// # Safety
/// As for the request headers.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    _event_id: u64,
) {
    let state = filter_ref(module);
    guard(filter, state, true, (), || {
        let Some(state) = state else {
            return;
        };
        state.tick_armed.set(false);
        if let Some(w) = &state.worker {
            w.refresh(&NativeHost::new(filter, &w.ctx));
            if w.has_waiters() && !state.tick_armed.replace(true) {
                w.arm_tick(filter);
            }
        }
    })
}

// Hooks of features this module does not use; Envoy resolves them all.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    host::log(
        LogLevel::Error,
        "fhir-smart-authz: per-route configuration is not supported",
    );
    std::ptr::null()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: *const c_void,
) {
}

/// The main thread's tick (the configuration's scheduler, every `TICK_MS`):
/// the JWKS fetches every worker then picks up.
///
/// # Safety
/// `config` is a live pointer `config_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: abi::ConfigEnvoyPtr,
    config: *const c_void,
    _event_id: u64,
) {
    let Some(config) = (config as *const Arc<NativeConfig>).as_ref() else {
        return;
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if let Some(w) = worker_for(config, std::ptr::null_mut()) {
            w.tick(std::ptr::null_mut());
        }
    }));
}

/// The answer to a call of the main thread's tick.
///
/// # Safety
/// `config` is a live pointer `config_new` returned; Envoy passes
/// `n_headers` headers and `n_chunks` body chunks, valid for the call.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: abi::ConfigEnvoyPtr,
    config: *const c_void,
    callout_id: u64,
    result: i32,
    headers: *const EnvoyHeader,
    n_headers: usize,
    chunks: *const EnvoyBuffer,
    n_chunks: usize,
) {
    let Some(config) = (config as *const Arc<NativeConfig>).as_ref() else {
        return;
    };
    let _ = catch_unwind(AssertUnwindSafe(|| {
        let null = std::ptr::null_mut();
        let Some(w) = worker_for(config, null) else {
            return;
        };
        let Some((token, _)) = w.ctx.take_call(null, callout_id) else {
            return;
        };
        let answer = call_answer(result, headers, n_headers, chunks, n_chunks);
        let size = answer.body.len();
        let host = NativeHost::new(null, &w.ctx).with_answer(answer);
        w.root_call_answered(&host, token, size);
    }));
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_headers(
    _config_envoy: abi::ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _n: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_data(
    _config_envoy: abi::ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _n: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_trailers(
    _config_envoy: abi::ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _n: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_complete(
    _config_envoy: abi::ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_stream_reset(
    _config_envoy: abi::ConfigEnvoyPtr,
    _config: *const c_void,
    _stream_id: u64,
    _reason: i32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _n: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _n: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _n: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
    _stream_id: u64,
    _reason: i32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_local_reply(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
    _response_code: u32,
    _details: EnvoyBuffer,
    _reset_imminent: bool,
) -> i32 {
    abi::LOCAL_REPLY_CONTINUE
}
