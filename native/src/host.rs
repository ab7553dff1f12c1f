//! `NativeHost`: the shell's narrow `Host` trait over the dynamic-modules
//! ABI, for one hook call on a worker thread. What proxy-wasm gives a VM
//! and the ABI does not is built here from ordinary Rust: shared data
//! across workers ([`crate::shared_data`]), the effective context (the
//! filter a resumed stream belongs to), and the tick (a filter scheduler,
//! [`crate::worker`]). A host without a filter is the configuration's, on
//! Envoy's main thread: its calls and metrics go through the configuration.

use crate::abi::{self, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer, ModuleHeader};
use crate::crypto;
use crate::shared_data;
use crate::worker::WorkerCtx;
use fhir_smart_authz::audit_property::AUDIT_PROPERTY;
use fhir_smart_authz::host::{Buffer, HeaderMap, Host, HostError, HostResult, HttpCall, LogLevel};
use fhir_smart_authz_core::reply::Reply;
use fhir_smart_authz_core::secret::{ProcessSecrets, SecretSource};
use fhir_smart_authz_core::token::host_crypto::VERIFY_SIGNATURE_FUNCTION;
use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::time::{SystemTime, UNIX_EPOCH};

/// The filter-state key of the audit record: the proxy-wasm build's
/// (`wasm.` + its property name, [`AUDIT_PROPERTY`]), so one access-log
/// format serves both.
pub const AUDIT_FILTER_STATE_KEY: &str = "wasm.fhir_smart_authz_audit";

/// The dynamic metadata that says a request has an audit record
/// (`fhir_smart_authz` / `audit_record: true`, set with the record): what
/// envoy/envoy-native.yaml's access loggers select on with a
/// `metadata_filter`, which costs Envoy far less per request than the CEL
/// expression over the filter state the proxy-wasm configuration needs
/// (docs/performance.md, "Issue 18").
pub const AUDIT_METADATA_NAMESPACE: &str = "fhir_smart_authz";
pub const AUDIT_METADATA_KEY: &str = "audit_record";

/// The answer of an HTTP callout, while its hook runs.
#[derive(Default)]
pub struct CallAnswer {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What ends or resumes a stream, carried out once the shell let go of it:
/// Envoy may complete the stream inside these calls (a local reply sent
/// from a callout's answer does) and call back into the module, which must
/// find the stream free (the audit record is written then).
enum Deferred {
    Reply {
        filter: FilterEnvoyPtr,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    Resume(FilterEnvoyPtr),
}

pub struct NativeHost<'w> {
    /// The filter the calls go to (switched by `set_effective_context`).
    filter: Cell<FilterEnvoyPtr>,
    worker: &'w WorkerCtx,
    /// The callout answer being delivered, if any.
    answer: RefCell<Option<CallAnswer>>,
    deferred: RefCell<Vec<Deferred>>,
    /// When the module saw the stream begin (µs): `request.duration` when
    /// Envoy does not give it.
    started_us: Cell<Option<u64>>,
}

impl<'w> NativeHost<'w> {
    pub fn new(filter: FilterEnvoyPtr, worker: &'w WorkerCtx) -> NativeHost<'w> {
        NativeHost {
            filter: Cell::new(filter),
            worker,
            answer: RefCell::new(None),
            deferred: RefCell::new(Vec::new()),
            started_us: Cell::new(None),
        }
    }

    pub fn with_start(self, started_us: u64) -> NativeHost<'w> {
        self.started_us.set(Some(started_us));
        self
    }

    /// Send the local replies and resumptions asked for (call once the
    /// stream is no longer borrowed).
    pub fn flush(&self) {
        let actions = std::mem::take(&mut *self.deferred.borrow_mut());
        for a in actions {
            // SAFETY: each filter is live: it was the hook's own or a
            // registered (not yet destroyed) stream of this worker, and the
            // hook has not returned.
            match a {
                Deferred::Reply {
                    filter,
                    status,
                    headers,
                    body,
                } => unsafe { send_response(filter, status, &headers, &body) },
                Deferred::Resume(filter) => unsafe {
                    abi::envoy_dynamic_module_callback_http_filter_continue_decoding(filter)
                },
            }
        }
    }

    pub fn with_answer(self, answer: CallAnswer) -> NativeHost<'w> {
        *self.answer.borrow_mut() = Some(answer);
        self
    }

    pub fn filter(&self) -> FilterEnvoyPtr {
        self.filter.get()
    }

    fn body_chunks(&self, body_type: i32, out: &mut Vec<u8>, max: usize) {
        let f = self.filter.get();
        // SAFETY: `f` is the live filter of this hook; the chunk array is
        // sized by Envoy's own count and read before any other call.
        unsafe {
            let n = abi::envoy_dynamic_module_callback_http_get_body_chunks_size(f, body_type);
            if n == 0 {
                return;
            }
            let mut chunks = vec![EnvoyBuffer::NULL; n];
            if !abi::envoy_dynamic_module_callback_http_get_body_chunks(
                f,
                body_type,
                chunks.as_mut_ptr(),
            ) {
                return;
            }
            for c in &chunks {
                let room = max.saturating_sub(out.len());
                let bytes = c.bytes();
                out.extend_from_slice(bytes.get(..room.min(bytes.len())).unwrap_or_default());
            }
        }
    }

    /// The body so far: what Envoy buffered for this filter, then the chunk
    /// of the current body hook (unless that chunk is the buffer itself).
    fn whole_body(
        &self,
        buffered: i32,
        received: i32,
        received_is_buffered: bool,
        max: usize,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        if !received_is_buffered {
            self.body_chunks(buffered, &mut out, max);
        }
        self.body_chunks(received, &mut out, max);
        out
    }
}

fn log_level(level: LogLevel) -> i32 {
    match level {
        LogLevel::Trace => abi::LOG_TRACE,
        LogLevel::Debug => abi::LOG_DEBUG,
        LogLevel::Info => abi::LOG_INFO,
        LogLevel::Warn => abi::LOG_WARN,
        LogLevel::Error => abi::LOG_ERROR,
        LogLevel::Critical => abi::LOG_CRITICAL,
    }
}

fn header_type(which: HeaderMap) -> Option<i32> {
    match which {
        HeaderMap::Request => Some(abi::HEADER_REQUEST),
        HeaderMap::Response => Some(abi::HEADER_RESPONSE),
        HeaderMap::CallResponse => None,
    }
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Send a local reply on `filter`.
///
/// # Safety
/// `filter` is a live filter, in one of its hooks.
pub unsafe fn send_response(
    filter: FilterEnvoyPtr,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) {
    let mut h: Vec<ModuleHeader> = headers
        .iter()
        .map(|(n, v)| ModuleHeader::of(n, v))
        .collect();
    // SAFETY: the header array and buffers outlive the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            filter,
            u32::from(status),
            h.as_mut_ptr(),
            h.len(),
            ModuleBuffer::of(body),
            ModuleBuffer::of(b"fhir_smart_authz"),
        );
    }
}

/// The wall clock in µs since the epoch.
pub fn now_us() -> u64 {
    u64::try_from(since_epoch().as_micros()).unwrap_or(u64::MAX)
}

/// Log through Envoy (any thread).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the buffer is valid for the call.
    unsafe {
        abi::envoy_dynamic_module_callback_log(
            log_level(level),
            ModuleBuffer::of(message.as_bytes()),
        )
    }
}

impl Host for NativeHost<'_> {
    fn log(&self, level: LogLevel, message: &str) {
        log(level, message);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
    }

    fn now_us(&self) -> u64 {
        now_us()
    }

    fn headers(&self, which: HeaderMap) -> Vec<(String, String)> {
        let Some(t) = header_type(which) else {
            return self
                .answer
                .borrow()
                .as_ref()
                .map(|a| a.headers.clone())
                .unwrap_or_default();
        };
        let f = self.filter.get();
        // SAFETY: the array is sized by Envoy's count; the buffers it fills
        // are read at once, before any setter.
        unsafe {
            let n = abi::envoy_dynamic_module_callback_http_get_headers_size(f, t);
            let mut raw = vec![EnvoyHeader::NULL; n];
            if n == 0
                || !abi::envoy_dynamic_module_callback_http_get_headers(f, t, raw.as_mut_ptr())
            {
                return Vec::new();
            }
            raw.iter().map(|h| h.pair()).collect()
        }
    }

    fn set_header(&self, which: HeaderMap, name: &str, value: Option<&str>) -> HostResult {
        let t = header_type(which).ok_or(HostError::BadArgument)?;
        let v = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: the buffers are valid for the call.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter.get(),
                t,
                ModuleBuffer::of(name.as_bytes()),
                v,
            )
        };
        ok.then_some(()).ok_or(HostError::NotFound)
    }

    fn body(&self, which: Buffer, max: usize) -> Option<Vec<u8>> {
        let f = self.filter.get();
        Some(match which {
            Buffer::RequestBody => {
                // SAFETY: `f` is the live filter of this hook.
                let same = unsafe {
                    abi::envoy_dynamic_module_callback_http_received_buffered_request_body(f)
                };
                self.whole_body(
                    abi::BODY_BUFFERED_REQUEST,
                    abi::BODY_RECEIVED_REQUEST,
                    same,
                    max,
                )
            }
            Buffer::ResponseBody => {
                // SAFETY: as above.
                let same = unsafe {
                    abi::envoy_dynamic_module_callback_http_received_buffered_response_body(f)
                };
                self.whole_body(
                    abi::BODY_BUFFERED_RESPONSE,
                    abi::BODY_RECEIVED_RESPONSE,
                    same,
                    max,
                )
            }
            Buffer::CallResponseBody => {
                let answer = self.answer.borrow();
                let body = &answer.as_ref()?.body;
                body.get(..max.min(body.len())).unwrap_or_default().to_vec()
            }
        })
    }

    fn set_response_body(&self, _len: usize, body: &[u8]) -> Result<(), HostError> {
        let f = self.filter.get();
        // SAFETY: `f` is the live filter of this (response body) hook.
        unsafe {
            let same = abi::envoy_dynamic_module_callback_http_received_buffered_response_body(f);
            if !same {
                let n = abi::envoy_dynamic_module_callback_http_get_body_size(
                    f,
                    abi::BODY_BUFFERED_RESPONSE,
                );
                abi::envoy_dynamic_module_callback_http_drain_body(
                    f,
                    abi::BODY_BUFFERED_RESPONSE,
                    n,
                );
            }
            let n = abi::envoy_dynamic_module_callback_http_get_body_size(
                f,
                abi::BODY_RECEIVED_RESPONSE,
            );
            abi::envoy_dynamic_module_callback_http_drain_body(f, abi::BODY_RECEIVED_RESPONSE, n);
            let ok = abi::envoy_dynamic_module_callback_http_append_body(
                f,
                abi::BODY_RECEIVED_RESPONSE,
                ModuleBuffer::of(body),
            );
            ok.then_some(()).ok_or(HostError::InternalFailure)
        }
    }

    fn send_local_reply(&self, reply: &Reply) -> HostResult {
        self.deferred.borrow_mut().push(Deferred::Reply {
            filter: self.filter.get(),
            status: reply.status,
            headers: reply.headers.clone(),
            body: reply.body.clone(),
        });
        Ok(())
    }

    fn resume_request(&self) -> Result<(), HostError> {
        self.deferred
            .borrow_mut()
            .push(Deferred::Resume(self.filter.get()));
        Ok(())
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
        if path != [AUDIT_PROPERTY] {
            return Err(HostError::NotFound);
        }
        let f = self.filter.get();
        // SAFETY: the buffers are valid for the calls.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                f,
                ModuleBuffer::of(AUDIT_FILTER_STATE_KEY.as_bytes()),
                ModuleBuffer::of(value),
            )
        };
        if ok {
            // SAFETY: as above.
            unsafe {
                abi::envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(
                    f,
                    ModuleBuffer::of(AUDIT_METADATA_NAMESPACE.as_bytes()),
                    ModuleBuffer::of(AUDIT_METADATA_KEY.as_bytes()),
                    true,
                )
            };
        }
        ok.then_some(()).ok_or(HostError::InternalFailure)
    }

    fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        let text = match path {
            ["source", "address"] => Some(abi::ATTRIBUTE_SOURCE_ADDRESS),
            ["connection", "sha256_peer_certificate_digest"] => {
                Some(abi::ATTRIBUTE_PEER_CERTIFICATE_DIGEST)
            }
            _ => None,
        };
        if let Some(id) = text {
            let mut b = EnvoyBuffer::NULL;
            // SAFETY: `b` outlives the call; its bytes are copied at once.
            let ok = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                    self.filter.get(),
                    id,
                    &mut b,
                )
            };
            // SAFETY: Envoy's buffer, valid in this hook.
            return ok.then(|| unsafe { b.bytes() }.to_vec());
        }
        let id = match path {
            ["request", "duration"] => abi::ATTRIBUTE_REQUEST_DURATION,
            ["response", "code"] => abi::ATTRIBUTE_RESPONSE_CODE,
            _ => return None,
        };
        let mut v: u64 = 0;
        // SAFETY: `v` outlives the call.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(
                self.filter.get(),
                id,
                &mut v,
            )
        };
        if ok {
            return Some(v.to_le_bytes().to_vec());
        }
        // Envoy 1.40 does not give `request.duration` as an integer: the
        // time since the module saw the stream begin, in ns as Envoy's.
        let started = self
            .started_us
            .get()
            .filter(|_| id == abi::ATTRIBUTE_REQUEST_DURATION)?;
        let ns = self.now_us().saturating_sub(started).saturating_mul(1000);
        Some(ns.to_le_bytes().to_vec())
    }

    fn dispatch_http_call(&self, call: &HttpCall) -> Result<u32, HostError> {
        let mut h: Vec<ModuleHeader> = call
            .headers
            .iter()
            .map(|(n, v)| ModuleHeader::of(n, v))
            .collect();
        let body = call.body.as_deref().unwrap_or_default();
        let mut id: u64 = 0;
        let f = self.filter.get();
        // A stream's call goes through its filter; the configuration's own
        // (the main thread's tick: no filter) through the configuration.
        let callout = if f.is_null() {
            abi::envoy_dynamic_module_callback_http_filter_config_http_callout
        } else {
            abi::envoy_dynamic_module_callback_http_filter_http_callout
        };
        let target = if f.is_null() {
            self.worker.config.envoy()
        } else {
            f
        };
        // SAFETY: the filter or configuration is live; the header array and
        // buffers outlive the call; `id` too.
        let r = unsafe {
            callout(
                target,
                &mut id,
                ModuleBuffer::of(call.cluster.as_bytes()),
                h.as_mut_ptr(),
                h.len(),
                ModuleBuffer::of(body),
                call.timeout_ms,
            )
        };
        match r {
            abi::CALLOUT_INIT_SUCCESS => Ok(self.worker.note_call(f, id)),
            abi::CALLOUT_INIT_CLUSTER_NOT_FOUND => Err(HostError::BadArgument),
            _ => Err(HostError::InternalFailure),
        }
    }

    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        shared_data::get(key)
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        shared_data::set(key, value, cas)
    }

    fn call_foreign_function(&self, name: &str, args: &[u8]) -> Result<Option<Vec<u8>>, HostError> {
        // Signatures are checked natively (`ring`); the other proxy-wasm
        // foreign function the shell knows, `declare_property`, has no
        // counterpart: the audit record is JSON text.
        if name != VERIFY_SIGNATURE_FUNCTION {
            return Err(HostError::NotFound);
        }
        crypto::verify_signature(args)
            .map(Some)
            .ok_or(HostError::BadArgument)
    }

    fn define_counter(&self, name: &str) -> Option<u32> {
        self.worker.config.metric(name)
    }

    fn increment_counter(&self, id: u32, by: i64) {
        self.worker
            .config
            .record(self.filter.get(), id, u64::try_from(by).unwrap_or(0));
    }

    fn define_gauge(&self, name: &str) -> Option<u32> {
        // Defined with the configuration; not `vm.memory_bytes` (a wasm
        // VM's linear memory: no such thing here).
        self.worker.config.metric(name)
    }

    fn define_histogram(&self, name: &str) -> Option<u32> {
        self.worker.config.metric(name)
    }

    fn record_metric(&self, id: u32, value: u64) {
        self.worker.config.record(self.filter.get(), id, value);
    }

    fn memory_bytes(&self) -> u64 {
        0
    }

    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
        self.worker.tick_period_ms.set(ms);
        Ok(())
    }

    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
        let f = self
            .worker
            .filter_of(context_id)
            .ok_or(HostError::NotFound)?;
        self.filter.set(f);
        Ok(())
    }

    fn env_var(&self, name: &str) -> Option<OsString> {
        // Envoy's own process: the module runs in it.
        ProcessSecrets.env_var(name)
    }

    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        ProcessSecrets.read_file(path)
    }

    fn plugin_configuration(&self) -> Option<Vec<u8>> {
        Some(self.worker.config.bytes.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_audit_filter_state_key_is_the_wasm_builds() {
        assert_eq!(AUDIT_FILTER_STATE_KEY, format!("wasm.{AUDIT_PROPERTY}"));
    }
}
