//! One filter configuration (created on Envoy's main thread): the plugin
//! configuration bytes, validated as the wasm build validates them, the
//! metrics, defined up front (Envoy freezes stat creation once the
//! configuration is loaded) under the names the wasm build uses, and the
//! main thread's tick that fetches key sets for every worker, and the
//! verified-token cache all workers share.

use crate::abi::{self, ConfigEnvoyPtr, FilterEnvoyPtr, ModuleBuffer, SchedulerPtr};
use crate::token_cache::{process_token_cache, ProcessTokenCache};
use fhir_smart_authz::metrics::all_names;
use fhir_smart_authz::root::TICK_MS;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::secret::ProcessSecrets;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Marks a histogram id (counters, gauges and histograms are numbered apart).
const HISTOGRAM: u32 = 1 << 31;
/// Marks a gauge id.
const GAUGE: u32 = 1 << 30;
/// The kind bits of an id.
const KIND: u32 = HISTOGRAM | GAUGE;

/// What a metric is, as Envoy numbers it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn of(id: u32) -> Kind {
        match id & KIND {
            HISTOGRAM => Kind::Histogram,
            GAUGE => Kind::Gauge,
            _ => Kind::Counter,
        }
    }

    fn bit(self) -> u32 {
        match self {
            Kind::Counter => 0,
            Kind::Gauge => GAUGE,
            Kind::Histogram => HISTOGRAM,
        }
    }
}

pub struct NativeConfig {
    /// Tells this configuration's per-worker state apart from others'.
    pub id: u64,
    pub bytes: Vec<u8>,
    /// Envoy's side of the configuration (main-thread callouts, metrics).
    envoy: usize,
    /// Full metric name → id (with its [`Kind`] bit).
    metrics: HashMap<String, u32>,
    /// The main thread's tick (periodic JWKS fetches), while the configuration lives.
    ticker: Mutex<Option<Ticker>>,
    /// Verified tokens, for every worker of the process.
    pub token_cache: ProcessTokenCache,
}

/// A thread that asks Envoy every `TICK_MS` to run the configuration's
/// tick on the main thread (`on_http_filter_config_scheduled`).
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    scheduler: usize,
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
        let config =
            Config::from_json_with_secrets(bytes, &ProcessSecrets).map_err(|e| e.to_string())?;
        let names = all_names(&config);
        let mut metrics = HashMap::new();
        let kinds = [
            (names.counters, Kind::Counter),
            (names.gauges, Kind::Gauge),
            (names.histograms, Kind::Histogram),
        ];
        for (names, kind) in kinds {
            for name in names {
                if let Some(id) = define(envoy, &name, kind) {
                    metrics.insert(name, id | kind.bit());
                }
            }
        }
        Ok(NativeConfig {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bytes: bytes.to_vec(),
            envoy: envoy as usize,
            metrics,
            ticker: Mutex::new(None),
            token_cache: process_token_cache(&config),
        })
    }

    pub fn envoy(&self) -> ConfigEnvoyPtr {
        self.envoy as ConfigEnvoyPtr
    }

    /// Start the main thread's tick (once the configuration is Envoy's).
    pub fn start_ticker(&self) {
        // SAFETY: the configuration is live; the scheduler is deleted in
        // `stop_ticker`, after the thread that commits to it has ended.
        let scheduler = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.envoy())
        };
        if scheduler.is_null() {
            return;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, target) = (stop.clone(), scheduler as usize);
        let thread = std::thread::Builder::new()
            .name("fhir-smart-authz-config-tick".into())
            .spawn(move || {
                while !flag.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(TICK_MS));
                    if flag.load(Ordering::Acquire) {
                        break;
                    }
                    // SAFETY: the scheduler outlives this thread (see above).
                    unsafe {
                        abi::envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
                            target as SchedulerPtr,
                            0,
                        )
                    };
                }
            });
        match (thread, self.ticker.lock()) {
            (Ok(thread), Ok(mut t)) => {
                *t = Some(Ticker {
                    stop,
                    thread,
                    scheduler: scheduler as usize,
                })
            }
            // SAFETY: no thread commits to it.
            _ => unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler)
            },
        }
    }

    /// Stop the main thread's tick (the configuration is being destroyed).
    pub fn stop_ticker(&self) {
        let Some(t) = self.ticker.lock().ok().and_then(|mut t| t.take()) else {
            return;
        };
        t.stop.store(true, Ordering::Release);
        let _ = t.thread.join();
        // SAFETY: the thread that committed to it has ended.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
                t.scheduler as SchedulerPtr,
            )
        };
    }

    /// The id of a metric defined up front.
    pub fn metric(&self, name: &str) -> Option<u32> {
        self.metrics.get(name).copied()
    }

    /// Count (`by`), set (a gauge) or record (a histogram's `value`) a
    /// metric of a stream of this configuration (a null `filter`: of the
    /// configuration itself, on the main thread).
    pub fn record(&self, filter: FilterEnvoyPtr, id: u32, value: u64) {
        let index = (id & !KIND) as usize;
        let null = std::ptr::null_mut();
        // SAFETY: `filter` is null or a live filter created from this
        // configuration, which is live; no labels.
        unsafe {
            if filter.is_null() {
                let f = match Kind::of(id) {
                    Kind::Counter => {
                        abi::envoy_dynamic_module_callback_http_filter_config_increment_counter
                    }
                    Kind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_set_gauge,
                    Kind::Histogram => {
                        abi::envoy_dynamic_module_callback_http_filter_config_record_histogram_value
                    }
                };
                f(self.envoy(), index, null, 0, value);
            } else {
                let f = match Kind::of(id) {
                    Kind::Counter => {
                        abi::envoy_dynamic_module_callback_http_filter_increment_counter
                    }
                    Kind::Gauge => abi::envoy_dynamic_module_callback_http_filter_set_gauge,
                    Kind::Histogram => {
                        abi::envoy_dynamic_module_callback_http_filter_record_histogram_value
                    }
                };
                f(filter, index, null, 0, value);
            }
        }
    }
}

fn define(envoy: ConfigEnvoyPtr, name: &str, kind: Kind) -> Option<u32> {
    let mut id: usize = 0;
    // SAFETY: `envoy` is the configuration Envoy is creating (main thread);
    // `name` and `id` outlive the call.
    let r = unsafe {
        let f = match kind {
            Kind::Counter => abi::envoy_dynamic_module_callback_http_filter_config_define_counter,
            Kind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            Kind::Histogram => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
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
        .filter(|id| id & KIND == 0)
}
