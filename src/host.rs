//! The narrow host interface the filter logic needs, and (on wasm32) its one
//! implementation over `proxy_wasm::hostcalls`. Every host error is handled
//! here: reads degrade to "absent", writes report `false`/`Err`. The SDK's
//! `Context` convenience methods (which unwrap and trap) are never used.

/// Log severity (mirrors proxy-wasm's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

/// Which buffered body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    Request,
    Response,
    /// The body of the current `dispatch_http_call` response.
    CallResponse,
}

/// Which header map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Headers {
    Request,
    Response,
    CallResponse,
}

/// An outgoing HTTP call through an Envoy cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    pub cluster: String,
    /// Including `:method`, `:path`, `:authority`.
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub timeout_ms: u64,
}

/// Result of a compare-and-swap shared-data write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWrite {
    Ok,
    /// Someone else wrote first.
    CasMismatch,
    Failed,
}

pub trait Host {
    fn log(&self, level: Level, message: &str);
    /// Wall clock, Unix milliseconds.
    fn now_ms(&self) -> u64;

    fn headers(&self, which: Headers) -> Vec<(String, String)>;
    /// Set (`Some`) or remove (`None`) a header. `false` on host failure.
    fn set_header(&self, which: Headers, name: &str, value: Option<&str>) -> bool;
    /// Up to `max` bytes of a body buffer (`None` when absent).
    fn body(&self, which: Body, max: usize) -> Option<Vec<u8>>;

    /// Reply locally instead of forwarding.
    fn send_local_reply(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> bool;
    fn resume_request(&self) -> bool;
    fn resume_response(&self) -> bool;

    /// Set a stream property (filter state `wasm.<path>`).
    fn set_property(&self, path: &[&str], value: &[u8]) -> bool;

    /// Dispatch an HTTP call; the token identifies the answer.
    fn dispatch_http_call(&self, call: &HttpCall) -> Result<u32, String>;

    /// Shared data across the VMs of this plugin: value and CAS token.
    fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> SharedWrite;

    fn call_foreign_function(&self, name: &str, args: &[u8]) -> Result<Option<Vec<u8>>, String>;

    /// Define a counter; `None` when the host refuses.
    fn define_counter(&self, name: &str) -> Option<u32>;
    fn increment_counter(&self, id: u32, by: i64);
    /// Define a gauge; `None` when the host refuses.
    fn define_gauge(&self, name: &str) -> Option<u32>;
    /// Set a gauge.
    fn record_metric(&self, id: u32, value: u64);
    /// Size of this VM's linear memory in bytes.
    fn memory_bytes(&self) -> u64;

    fn set_tick_period_ms(&self, ms: u64) -> bool;
    /// Make `context_id` (an HTTP stream of this VM) the target of the
    /// following calls, e.g. to resume a stream from the root's tick.
    fn set_effective_context(&self, context_id: u32) -> bool;
    /// The plugin configuration bytes (root context only).
    fn plugin_configuration(&self) -> Option<Vec<u8>>;
}

#[cfg(target_arch = "wasm32")]
pub use wasm::ProxyHost;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::*;
    use proxy_wasm::hostcalls as hc;
    use proxy_wasm::types::{BufferType, LogLevel, MapType, MetricType, Status};
    use std::time::{Duration, UNIX_EPOCH};

    /// The real host: `proxy_wasm::hostcalls`, every `Result` handled.
    #[derive(Debug, Default, Clone, Copy)]
    pub struct ProxyHost;

    fn map(which: Headers) -> MapType {
        match which {
            Headers::Request => MapType::HttpRequestHeaders,
            Headers::Response => MapType::HttpResponseHeaders,
            Headers::CallResponse => MapType::HttpCallResponseHeaders,
        }
    }

    impl Host for ProxyHost {
        fn log(&self, level: Level, message: &str) {
            let l = match level {
                Level::Trace => LogLevel::Trace,
                Level::Debug => LogLevel::Debug,
                Level::Info => LogLevel::Info,
                Level::Warn => LogLevel::Warn,
                Level::Error => LogLevel::Error,
                Level::Critical => LogLevel::Critical,
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

        fn headers(&self, which: Headers) -> Vec<(String, String)> {
            hc::get_map(map(which)).unwrap_or_default()
        }

        fn set_header(&self, which: Headers, name: &str, value: Option<&str>) -> bool {
            hc::set_map_value(map(which), name, value).is_ok()
        }

        fn body(&self, which: Body, max: usize) -> Option<Vec<u8>> {
            let b = match which {
                Body::Request => BufferType::HttpRequestBody,
                Body::Response => BufferType::HttpResponseBody,
                Body::CallResponse => BufferType::HttpCallResponseBody,
            };
            hc::get_buffer(b, 0, max).ok().flatten()
        }

        fn send_local_reply(&self, status: u16, headers: &[(String, String)], body: &[u8]) -> bool {
            let h: Vec<(&str, &str)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            hc::send_http_response(u32::from(status), h, Some(body)).is_ok()
        }

        fn resume_request(&self) -> bool {
            hc::resume_http_request().is_ok()
        }

        fn resume_response(&self) -> bool {
            hc::resume_http_response().is_ok()
        }

        fn set_property(&self, path: &[&str], value: &[u8]) -> bool {
            hc::set_property(path.to_vec(), Some(value)).is_ok()
        }

        fn dispatch_http_call(&self, call: &HttpCall) -> Result<u32, String> {
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
            .map_err(|s| match s {
                Status::BadArgument => format!(
                    "Envoy refused the call: unknown cluster {:?} or bad headers",
                    call.cluster
                ),
                other => format!("Envoy refused the call ({other:?})"),
            })
        }

        fn shared_get(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
            hc::get_shared_data(key).unwrap_or((None, None))
        }

        fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> SharedWrite {
            match hc::set_shared_data(key, Some(value), cas) {
                Ok(()) => SharedWrite::Ok,
                Err(Status::CasMismatch) => SharedWrite::CasMismatch,
                Err(_) => SharedWrite::Failed,
            }
        }

        fn call_foreign_function(
            &self,
            name: &str,
            args: &[u8],
        ) -> Result<Option<Vec<u8>>, String> {
            hc::call_foreign_function(name, Some(args))
                .map_err(|s| format!("foreign function {name:?} failed ({s:?})"))
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

        fn record_metric(&self, id: u32, value: u64) {
            let _ = hc::record_metric(id, value);
        }

        fn memory_bytes(&self) -> u64 {
            (core::arch::wasm32::memory_size(0) as u64).saturating_mul(65536)
        }

        fn set_tick_period_ms(&self, ms: u64) -> bool {
            hc::set_tick_period(Duration::from_millis(ms)).is_ok()
        }

        fn set_effective_context(&self, context_id: u32) -> bool {
            hc::set_effective_context(context_id).is_ok()
        }

        fn plugin_configuration(&self) -> Option<Vec<u8>> {
            hc::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
                .ok()
                .flatten()
        }
    }
}
