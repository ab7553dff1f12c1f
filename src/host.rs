//! The narrow host interface the filter logic needs, and (on wasm32) its one
//! implementation over `proxy_wasm::hostcalls`. Every host error is handled
//! here: reads degrade to "absent", writes and actions report a
//! [`HostError`]. The SDK's `Context` convenience methods (which unwrap and
//! trap) are never used.

use fhir_smart_authz_core::reply::Reply;
use fhir_smart_authz_core::secret::SecretSource;
use std::ffi::OsString;
use std::fmt;

/// Log severity (mirrors proxy-wasm's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// Which buffered body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buffer {
    RequestBody,
    /// The upstream's response body (buffered while the response body
    /// callback pauses).
    ResponseBody,
    /// The body of the current `dispatch_http_call` response.
    CallResponseBody,
}

/// Which header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderMap {
    Request,
    /// The upstream's response headers (in the response header callback).
    Response,
    /// The headers of the current `dispatch_http_call` response.
    CallResponse,
}

/// What the host should do after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// What a host call that answers nothing returns.
pub type HostResult = Result<(), HostError>;

/// A host call that failed: the proxy-wasm status the host answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostError {
    NotFound,
    /// The arguments were refused (for an HTTP call: an unknown cluster or
    /// bad headers).
    BadArgument,
    SerializationFailure,
    ParseFailure,
    Empty,
    /// A compare-and-swap write lost: someone else wrote first.
    CasMismatch,
    InternalFailure,
    /// A status this filter does not know.
    Other,
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// An outgoing HTTP call through an Envoy cluster (the core's type).
pub use fhir_smart_authz_core::token::service::OutboundCall as HttpCall;

/// Why the host refused to dispatch `call`, for logs and replies.
pub fn refusal(call: &HttpCall, e: HostError) -> String {
    match e {
        HostError::BadArgument => format!(
            "Envoy refused the call: unknown cluster {:?} or bad headers",
            call.cluster
        ),
        other => format!("Envoy refused the call ({other:?})"),
    }
}

/// A header value as text: UTF-8 as it is; anything else with U+FFFD in
/// place of the bytes that are not (the classifier refuses such a value).
pub fn utf8_or_lossy(value: Vec<u8>) -> String {
    String::from_utf8(value).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// An integer property as Envoy serializes it (`response.code`,
/// `request.duration` in ns, ...): 8 bytes, little-endian.
pub fn property_u64(bytes: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(bytes).ok().map(u64::from_le_bytes)
}

/// The `:status` of a response's headers.
pub fn response_status(headers: &[(String, String)]) -> Option<u16> {
    headers
        .iter()
        .find(|(n, _)| n == ":status")
        .and_then(|(_, v)| v.parse().ok())
}

/// Largest answer to a key (JWKS) or introspection call the filter reads.
/// Such documents are a few KiB: a larger one is a fault, treated as a failed
/// call (reading it would also grow the VM's memory for good).
pub const MAX_TOKEN_CALL_BYTES: usize = 1 << 20;

/// The answer to the current `dispatch_http_call`: `Ok((status, body))`, or
/// `Err(why)` when the call failed (no status) or the body is larger than `max`.
pub fn call_response(
    host: &dyn Host,
    body_size: usize,
    max: usize,
) -> Result<(u16, Vec<u8>), String> {
    let status = response_status(&host.headers(HeaderMap::CallResponse))
        .ok_or_else(|| "the call failed or timed out".to_string())?;
    if body_size > max {
        return Err(format!(
            "the answer (HTTP {status}) has {body_size} bytes, more than the {max} the filter reads"
        ));
    }
    Ok((
        status,
        host.body(Buffer::CallResponseBody, body_size)
            .unwrap_or_default(),
    ))
}

pub trait Host {
    fn log(&self, level: LogLevel, message: &str);
    /// Wall clock, Unix milliseconds.
    fn now_ms(&self) -> u64;
    /// Wall clock, Unix microseconds (for the debug phase timing).
    fn now_us(&self) -> u64;

    fn headers(&self, which: HeaderMap) -> Vec<(String, String)>;
    /// Set (`Some`) or remove (`None`) a header.
    fn set_header(&self, which: HeaderMap, name: &str, value: Option<&str>) -> HostResult;
    /// Up to `max` bytes of a body buffer (`None` when absent).
    fn body(&self, which: Buffer, max: usize) -> Option<Vec<u8>>;
    /// Replace the buffered response body (`len` bytes) with `body`.
    fn set_response_body(&self, len: usize, body: &[u8]) -> Result<(), HostError>;

    /// Reply locally instead of forwarding.
    fn send_local_reply(&self, reply: &Reply) -> HostResult;
    fn resume_request(&self) -> Result<(), HostError>;

    /// Set a stream property (filter state `wasm.<path>`).
    fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError>;
    /// Read a property (Envoy attribute, e.g. `["response", "code"]`);
    /// `None` when absent or refused.
    fn property(&self, path: &[&str]) -> Option<Vec<u8>>;

    /// Dispatch an HTTP call; the token identifies the answer.
    fn dispatch_http_call(&self, call: &HttpCall) -> Result<u32, HostError>;

    /// Shared data across the VMs of this plugin: value and CAS token.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Write shared data; with a CAS token, only if nobody wrote since
    /// ([`HostError::CasMismatch`] otherwise).
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;

    fn call_foreign_function(&self, name: &str, args: &[u8]) -> Result<Option<Vec<u8>>, HostError>;

    /// Define a counter; `None` when the host refuses.
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn increment_counter(&self, id: u32, by: i64);
    /// Define a gauge; `None` when the host refuses.
    fn define_gauge(&self, name: &str) -> Option<u32>;
    /// Define a histogram; `None` when the host refuses.
    fn define_histogram(&self, name: &str) -> Option<u32>;
    /// Set a gauge, or record a value in a histogram.
    fn record_metric(&self, id: u32, value: u64);
    /// Size of this VM's linear memory in bytes.
    fn memory_bytes(&self) -> u64;

    fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError>;
    /// Make `context_id` (an HTTP stream of this VM) the target of the
    /// following calls, e.g. to resume a stream from the root's tick.
    fn set_effective_context(&self, context_id: u32) -> Result<(), HostError>;
    /// The plugin configuration bytes (root context only).
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
    /// An environment variable of the VM (Envoy
    /// `vm_config.environment_variables`); `None` when not set.
    fn env_var(&self, name: &str) -> Option<OsString>;
    /// A file's bytes, for a secret reference. A proxy-wasm VM has no file
    /// system (Envoy answers every WASI file call with an error): refused,
    /// unless the host has one (the native module reads it in-process).
    fn read_file(&self, _path: &str) -> Result<Vec<u8>, String> {
        Err(r#"a proxy-wasm VM has no file system; use {"env": "NAME"}"#.into())
    }
}

/// Where the configuration's secret references are looked up: the host's
/// environment and files (a proxy-wasm VM has no files: [`Host::read_file`]).
pub struct VmSecrets<'a>(pub &'a dyn Host);

impl SecretSource for VmSecrets<'_> {
    fn env_var(&self, name: &str) -> Option<OsString> {
        self.0.env_var(name)
    }
    fn read_file(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0.read_file(path)
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::ProxyHost;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use proxy_wasm::hostcalls as hc;
    use proxy_wasm::types::{BufferType, LogLevel as ProxyLogLevel, MapType, MetricType, Status};
    use std::time::{Duration, UNIX_EPOCH};

    /// The real host: `proxy_wasm::hostcalls`, every `Result` handled.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct ProxyHost;

    fn map(which: HeaderMap) -> MapType {
        match which {
            HeaderMap::Request => MapType::HttpRequestHeaders,
            HeaderMap::Response => MapType::HttpResponseHeaders,
            HeaderMap::CallResponse => MapType::HttpCallResponseHeaders,
        }
    }

    fn host_error(status: Status) -> HostError {
        match status {
            Status::NotFound => HostError::NotFound,
            Status::BadArgument => HostError::BadArgument,
            Status::SerializationFailure => HostError::SerializationFailure,
            Status::ParseFailure => HostError::ParseFailure,
            Status::Empty => HostError::Empty,
            Status::CasMismatch => HostError::CasMismatch,
            Status::InternalFailure => HostError::InternalFailure,
            _ => HostError::Other,
        }
    }

    impl Host for ProxyHost {
        fn log(&self, level: LogLevel, message: &str) {
            let l = match level {
                LogLevel::Trace => ProxyLogLevel::Trace,
                LogLevel::Debug => ProxyLogLevel::Debug,
                LogLevel::Info => ProxyLogLevel::Info,
                LogLevel::Warn => ProxyLogLevel::Warn,
                LogLevel::Error => ProxyLogLevel::Error,
                LogLevel::Critical => ProxyLogLevel::Critical,
            };
            let _ = hc::log(l, message);
        }

        fn now_ms(&self) -> u64 {
            hc::get_current_time()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        }

        fn now_us(&self) -> u64 {
            hc::get_current_time()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        }

        fn headers(&self, which: HeaderMap) -> Vec<(String, String)> {
            // `get_map` unwraps `String::from_utf8` on every value and would
            // trap the VM on one byte such as `caf\xe9` (with FAIL_CLOSED every
            // later request is 503): read bytes, and let a value that is not
            // UTF-8 carry U+FFFD, which the classifier refuses.
            hc::get_map_bytes(map(which))
                .map(|pairs| {
                    pairs
                        .into_iter()
                        .map(|(name, value)| (name, utf8_or_lossy(value)))
                        .collect()
                })
                .unwrap_or_default()
        }

        fn set_header(&self, which: HeaderMap, name: &str, value: Option<&str>) -> HostResult {
            hc::set_map_value(map(which), name, value).map_err(host_error)
        }

        fn body(&self, which: Buffer, max: usize) -> Option<Vec<u8>> {
            let b = match which {
                Buffer::RequestBody => BufferType::HttpRequestBody,
                Buffer::ResponseBody => BufferType::HttpResponseBody,
                Buffer::CallResponseBody => BufferType::HttpCallResponseBody,
            };
            hc::get_buffer(b, 0, max).ok().flatten()
        }

        fn set_response_body(&self, len: usize, body: &[u8]) -> Result<(), HostError> {
            hc::set_buffer(BufferType::HttpResponseBody, 0, len, body).map_err(host_error)
        }

        fn send_local_reply(&self, reply: &Reply) -> HostResult {
            let h: Vec<(&str, &str)> = reply
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            hc::send_http_response(u32::from(reply.status), h, Some(&reply.body))
                .map_err(host_error)
        }

        fn resume_request(&self) -> Result<(), HostError> {
            hc::resume_http_request().map_err(host_error)
        }

        fn set_property(&self, path: &[&str], value: &[u8]) -> Result<(), HostError> {
            hc::set_property(path.to_vec(), Some(value)).map_err(host_error)
        }

        fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
            hc::get_property(path.to_vec()).ok().flatten()
        }

        fn dispatch_http_call(&self, call: &HttpCall) -> Result<u32, HostError> {
            let h: Vec<(&str, &str)> = call
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            hc::dispatch_http_call(
                &call.cluster,
                h,
                call.body.as_deref(),
                Vec::new(),
                Duration::from_millis(call.timeout_ms),
            )
            .map_err(host_error)
        }

        fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            hc::get_shared_data(key).unwrap_or((None, None))
        }

        fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
            hc::set_shared_data(key, Some(value), cas).map_err(host_error)
        }

        fn call_foreign_function(
            &self,
            name: &str,
            args: &[u8],
        ) -> Result<Option<Vec<u8>>, HostError> {
            hc::call_foreign_function(name, Some(args)).map_err(host_error)
        }

        fn define_counter(&self, name: &str) -> Option<u32> {
            hc::define_metric(MetricType::Counter, name).ok()
        }

        fn increment_counter(&self, id: u32, by: i64) {
            let _ = hc::increment_metric(id, by);
        }

        fn define_gauge(&self, name: &str) -> Option<u32> {
            hc::define_metric(MetricType::Gauge, name).ok()
        }

        fn define_histogram(&self, name: &str) -> Option<u32> {
            hc::define_metric(MetricType::Histogram, name).ok()
        }

        fn record_metric(&self, id: u32, value: u64) {
            let _ = hc::record_metric(id, value);
        }

        fn memory_bytes(&self) -> u64 {
            (core::arch::wasm32::memory_size(0) as u64).saturating_mul(65536)
        }

        fn set_tick_period_ms(&self, ms: u64) -> Result<(), HostError> {
            hc::set_tick_period(Duration::from_millis(ms)).map_err(host_error)
        }

        fn set_effective_context(&self, context_id: u32) -> Result<(), HostError> {
            hc::set_effective_context(context_id).map_err(host_error)
        }

        fn plugin_configuration(&self) -> Option<Vec<u8>> {
            hc::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
        }

        fn env_var(&self, name: &str) -> Option<OsString> {
            // WASI `environ_get`: Envoy gives the VM the variables its
            // `vm_config.environment_variables` names, nothing else.
            std::env::var_os(name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::utf8_or_lossy;

    #[test]
    fn header_values_that_are_not_utf8_carry_the_replacement_character() {
        let cases: [(&[u8], &str); 4] = [
            (b"caf\xc3\xa9", "café"),
            (b"caf\xe9", "caf\u{FFFD}"),
            (b"\xff\xfe", "\u{FFFD}\u{FFFD}"),
            (b"", ""),
        ];
        for (bytes, want) in cases {
            assert_eq!(utf8_or_lossy(bytes.to_vec()), want, "{bytes:?}");
        }
    }
}
