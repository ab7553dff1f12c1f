//! One filter configuration (created on Envoy's main thread): the plugin
//! configuration bytes, validated as the wasm build validates them, and the
//! metrics, defined up front (Envoy freezes stat creation once the
//! configuration is loaded) under the names the wasm build uses.

use crate::abi::{self, ConfigEnvoyPtr, FilterEnvoyPtr, ModuleBuffer};
use fhir_smart_authz::metrics::all_names;
use fhir_smart_authz_core::config::Config;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Marks a histogram id (counters and histograms are numbered apart).
const HISTOGRAM: u32 = 1 << 31;

pub struct NativeConfig {
    /// Tells this configuration's per-worker state apart from others'.
    pub id: u64,
    pub bytes: Vec<u8>,
    /// Full metric name → id (with [`HISTOGRAM`] for histograms).
    metrics: HashMap<String, u32>,
}

impl NativeConfig {
    /// Validate the configuration and define its metrics; `Err` says why
    /// Envoy must refuse it (the field and the fix, as `check-config` says).
    pub fn new(envoy: ConfigEnvoyPtr, bytes: &[u8]) -> Result<NativeConfig, String> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let bytes = if bytes.is_empty() {
            b"{}".as_slice()
        } else {
            bytes
        };
        let config = Config::from_json(bytes).map_err(|e| e.to_string())?;
        let (counters, histograms) = all_names(&config.metrics.prefix);
        let mut metrics = HashMap::new();
        for name in counters {
            if let Some(id) = define(envoy, &name, false) {
                metrics.insert(name, id);
            }
        }
        if config.metrics.phase_timing {
            for name in histograms {
                if let Some(id) = define(envoy, &name, true) {
                    metrics.insert(name, id | HISTOGRAM);
                }
            }
        }
        Ok(NativeConfig {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bytes: bytes.to_vec(),
            metrics,
        })
    }

    /// The id of a metric defined up front.
    pub fn metric(&self, name: &str) -> Option<u32> {
        self.metrics.get(name).copied()
    }

    /// Count (`by`) or record (`value`) a metric of a stream of this
    /// configuration.
    pub fn record(&self, filter: FilterEnvoyPtr, id: u32, value: u64) {
        let index = (id & !HISTOGRAM) as usize;
        // SAFETY: `filter` is a live filter created from this configuration;
        // no labels.
        unsafe {
            if id & HISTOGRAM == 0 {
                abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                    filter,
                    index,
                    std::ptr::null_mut(),
                    0,
                    value,
                );
            } else {
                abi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                    filter,
                    index,
                    std::ptr::null_mut(),
                    0,
                    value,
                );
            }
        }
    }
}

fn define(envoy: ConfigEnvoyPtr, name: &str, histogram: bool) -> Option<u32> {
    let mut id: usize = 0;
    // SAFETY: `envoy` is the configuration Envoy is creating (main thread);
    // `name` and `id` outlive the call.
    let r = unsafe {
        let f = if histogram {
            abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
        } else {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter
        };
        f(
            envoy,
            ModuleBuffer::of(name.as_bytes()),
            std::ptr::null_mut(),
            0,
            &mut id,
        )
    };
    (r == abi::METRICS_SUCCESS)
        .then(|| u32::try_from(id).ok())
        .flatten()
        .filter(|id| id & HISTOGRAM == 0)
}
