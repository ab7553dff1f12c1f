//! The project's own minimal binding over Envoy's dynamic-modules C ABI
//! (`source/extensions/dynamic_modules/abi/abi.h`, ABI `v0.2.0`, Envoy
//! 1.40.0): only the types and callbacks this module uses. Every callback
//! declared here is one the 1.40.0 binary exports (`nm -D --defined-only
//! envoy | grep envoy_dynamic_module_callback`); `tests/e2e/test_native_abi.py`
//! checks the built module's imports against the Envoy in use.
//!
//! The raw calls are `unsafe`; [`crate::host::NativeHost`] wraps each one
//! with the pointers Envoy handed to the current hook, which stay valid for
//! the hook's duration.

use std::ffi::c_void;

/// The ABI version Envoy 1.40 expects from `envoy_dynamic_module_on_program_init`.
pub const ABI_VERSION_1_40: &[u8] = b"v0.2.0\0";
/// The ABI version Envoy 1.39 expects. The ABI header promises v0.1.y stays compatible with
/// v0.2.x, and every callback this module calls is exported by both releases
/// (tests/e2e/test_native_abi.py checks that against the Envoy in use).
pub const ABI_VERSION_1_39: &[u8] = b"v0.1.0\0";
/// A callback 1.40 exports and 1.39 does not: its presence in the loading process tells the
/// two releases apart (the module is not linked against Envoy, so this is the only way to
/// learn which release loaded it before answering the version).
const ONLY_IN_1_40: &[u8] = b"envoy_dynamic_module_callback_access_logger_get_timing_info_v2\0";

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
}

/// The ABI version string of the Envoy release that loaded the module: `v0.2.0` on 1.40,
/// `v0.1.0` on 1.39 (each release says "ABI version ... matched" only for its own string).
pub fn abi_version_of_loading_envoy() -> &'static [u8] {
    // SAFETY: RTLD_DEFAULT (a null handle on Linux) searches the global symbol table of the
    // process; the name is NUL-terminated and nothing is called through the result.
    let found = unsafe { dlsym(std::ptr::null_mut(), ONLY_IN_1_40.as_ptr().cast()) };
    if found.is_null() {
        ABI_VERSION_1_39
    } else {
        ABI_VERSION_1_40
    }
}

pub type FilterEnvoyPtr = *mut c_void;
pub type ConfigEnvoyPtr = *mut c_void;
pub type SchedulerPtr = *mut c_void;

/// A buffer Envoy owns (valid until the end of the current hook).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl EnvoyBuffer {
    pub const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes (empty for a null buffer).
    ///
    /// # Safety
    /// `ptr` must point to `length` readable bytes for the returned lifetime
    /// (Envoy guarantees it until the end of the hook that handed it out).
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.length == 0 {
            &[]
        } else {
            std::slice::from_raw_parts(self.ptr, self.length)
        }
    }
}

/// A buffer the module owns (lent to Envoy for one call).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    pub ptr: *const u8,
    pub length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// The null buffer (for `set_header`: remove the header).
    pub const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// A header the module owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl ModuleHeader {
    pub fn of(name: &str, value: &str) -> ModuleHeader {
        ModuleHeader {
            key_ptr: name.as_ptr(),
            key_length: name.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }
    }
}

/// A header Envoy owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHeader {
    pub key_ptr: *const u8,
    pub key_length: usize,
    pub value_ptr: *const u8,
    pub value_length: usize,
}

impl EnvoyHeader {
    pub const NULL: EnvoyHeader = EnvoyHeader {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };

    /// Name and value as text (bytes that are not UTF-8 become U+FFFD, as
    /// the wasm shell reads them).
    ///
    /// # Safety
    /// Both buffers are Envoy's, valid in the current hook.
    pub unsafe fn pair(&self) -> (String, String) {
        let text = |ptr, length| {
            let b = EnvoyBuffer { ptr, length };
            fhir_smart_authz::host::utf8_or_lossy(b.bytes().to_vec())
        };
        (
            text(self.key_ptr, self.key_length),
            text(self.value_ptr, self.value_length),
        )
    }
}

// C enums (`int`): the values this module passes or reads.
pub const HEADER_REQUEST: i32 = 0;
pub const HEADER_RESPONSE: i32 = 2;

pub const BODY_RECEIVED_REQUEST: i32 = 0;
pub const BODY_BUFFERED_REQUEST: i32 = 1;
pub const BODY_RECEIVED_RESPONSE: i32 = 2;
pub const BODY_BUFFERED_RESPONSE: i32 = 3;

pub const LOG_TRACE: i32 = 0;
pub const LOG_DEBUG: i32 = 1;
pub const LOG_INFO: i32 = 2;
pub const LOG_WARN: i32 = 3;
pub const LOG_ERROR: i32 = 4;
pub const LOG_CRITICAL: i32 = 5;

pub const CALLOUT_INIT_SUCCESS: i32 = 0;
pub const CALLOUT_INIT_CLUSTER_NOT_FOUND: i32 = 2;
pub const CALLOUT_RESULT_SUCCESS: i32 = 0;

pub const METRICS_SUCCESS: i32 = 0;

/// `request.duration` and `response.code` (`envoy_dynamic_module_type_attribute_id`).
pub const ATTRIBUTE_REQUEST_DURATION: i32 = 12;
pub const ATTRIBUTE_RESPONSE_CODE: i32 = 15;
/// `source.address` and `connection.sha256_peer_certificate_digest` (strings).
pub const ATTRIBUTE_SOURCE_ADDRESS: i32 = 24;
pub const ATTRIBUTE_PEER_CERTIFICATE_DIGEST: i32 = 38;

// Hook return values.
pub const HEADERS_CONTINUE: i32 = 0;
pub const HEADERS_STOP_ITERATION: i32 = 1;
pub const HEADERS_STOP_ALL_AND_WATERMARK: i32 = 4;
pub const BODY_CONTINUE: i32 = 0;
pub const BODY_STOP_AND_BUFFER: i32 = 1;
pub const TRAILERS_CONTINUE: i32 = 0;
pub const TRAILERS_STOP: i32 = 1;
pub const LOCAL_REPLY_CONTINUE: i32 = 0;

extern "C" {
    pub fn envoy_dynamic_module_callback_log(level: i32, message: ModuleBuffer);

    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: i32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: i32,
        result: *mut EnvoyHeader,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: i32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: i32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: i32,
        result: *mut EnvoyBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body_type: i32,
    ) -> usize;
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body_type: i32,
        number_of_bytes: usize,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body_type: i32,
        data: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: FilterEnvoyPtr,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    pub fn envoy_dynamic_module_callback_http_set_dynamic_metadata_bool(
        filter: FilterEnvoyPtr,
        namespace: ModuleBuffer,
        key: ModuleBuffer,
        value: bool,
    );
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoyPtr,
        attribute_id: i32,
        result: *mut u64,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: i32,
        result: *mut EnvoyBuffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> i32;

    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);

    pub fn envoy_dynamic_module_callback_http_filter_scheduler_new(
        filter: FilterEnvoyPtr,
    ) -> SchedulerPtr;
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_scheduler_delete(scheduler: SchedulerPtr);

    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: ConfigEnvoyPtr,
    ) -> SchedulerPtr;
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: SchedulerPtr,
        event_id: u64,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: SchedulerPtr,
    );
    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: ConfigEnvoyPtr,
        callout_id_out: *mut u64,
        cluster_name: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_size: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;

    pub fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;

    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        id_out: *mut usize,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_set_gauge(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> i32;
}
