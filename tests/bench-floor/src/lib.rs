//! The proxy-wasm floor row of `make bench`: per request exactly the host
//! calls `fhir-smart-authz` makes for a cached token as shipped, and nothing
//! else (no token check, no decision). Every host error is ignored on
//! purpose: the bench checks the access-log line and the answers instead.

use proxy_wasm::hostcalls as hc;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType, MetricType};

/// The property the real filter writes its audit record to (filter state
/// `wasm.fhir_smart_authz_audit`, which envoy.yaml's access logger prints).
const AUDIT_PROPERTY: &str = "fhir_smart_authz_audit";

/// What a real record's `"fields"` encoding holds for an allowed read, in
/// size and shape, around the request's `x-request-id` (the bench finds its
/// line by it and checks `decision`).
const RECORD_HEAD: &str = r#""decision":"allow","reason":"bench_floor","interaction":"read","resource_type":"Patient","id":"pat-a","level":"instance","enforced":true,"timestamp":"2026-01-01T00:00:00.000Z","request_id":""#;
const RECORD_TAIL: &str = r#"","agent":{"iss":"http://127.0.0.1/issuer","sub":"bench","client_id":"bench-app","patient":"pat-a","fhir_user":"Patient/pat-a","scope":"patient/*.read launch/patient openid fhirUser"},"method":"GET","path":"/fhir/Patient/pat-a""#;

/// The six fact headers the real filter forwards (`upstream.forward_headers`).
const FACTS: [(&str, &str); 6] = [
    ("x-smart-patient", "pat-a"),
    ("x-smart-fhir-user", "Patient/pat-a"),
    ("x-smart-client-id", "bench-app"),
    (
        "x-smart-scope",
        "patient/*.read launch/patient openid fhirUser",
    ),
    ("x-smart-subject", "bench"),
    ("x-smart-issuer", "http://127.0.0.1/issuer"),
];

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(FloorRoot::default()) });
}}

#[derive(Default, Clone, Copy)]
struct FloorRoot {
    /// The two counters a cached request increments (token cache hit, decision).
    counters: [u32; 2],
}

impl Context for FloorRoot {}

impl RootContext for FloorRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        for (slot, name) in self
            .counters
            .iter_mut()
            .zip(["bench_floor.token_cache.hit", "bench_floor.decision.allow"])
        {
            *slot = hc::define_metric(MetricType::Counter, name).unwrap_or(0);
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(FloorStream { root: *self }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct FloorStream {
    root: FloorRoot,
}

impl Context for FloorStream {}

impl HttpContext for FloorStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let headers = hc::get_map(MapType::HttpRequestHeaders).unwrap_or_default();
        let _ = hc::get_current_time();
        for id in self.root.counters {
            let _ = hc::increment_metric(id, 1);
        }
        for (name, value) in FACTS {
            let _ = hc::set_map_value(MapType::HttpRequestHeaders, name, Some(value));
        }
        let request_id = headers
            .iter()
            .find(|(name, _)| name == "x-request-id")
            .map_or("", |(_, value)| value.as_str());
        let record = [RECORD_HEAD, request_id, RECORD_TAIL].concat();
        let _ = hc::set_property(vec![AUDIT_PROPERTY], Some(record.as_bytes()));
        Action::Continue
    }
}
