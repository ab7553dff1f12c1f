//! Counters, gauges and histograms under `metrics.prefix`. Every counter is
//! defined when the configuration loads ([`Metrics::define_all`]), so each
//! is exported at zero before it first fires (alerts on rates need the
//! series); each is then incremented by its cached id: the hot path neither
//! formats names nor allocates.

use crate::host::Host;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};

/// Every counter besides `decision.<allow|deny>.<reason>` (docs/audit-and-metrics.md;
/// `examples/monitoring/` reads them). A counter the shell increments that is
/// missing here is a test failure (`every_counted_suffix_is_listed`).
pub const COUNTERS: &[&str] = &[
    "shadow.would_deny",
    "shadow.call_failed",
    "token_cache.hit",
    "token_cache.miss",
    "jwks_fetch.success",
    "jwks_fetch.failure",
    "introspection.success",
    "introspection.failure",
    "response_check.pass",
    "response_check.fail",
    "response_check.upstream_failure",
    "precheck.pass",
    "precheck.fail",
    "precheck.upstream_failure",
    "rewrite.narrowed",
    "rewrite.strict",
    "rewrite.relayed",
    "rewrite.failed",
    "rewrite.shadow",
    "capability_statement.smart_added",
    "capability_statement.unmodified",
    "bulk.job_registered",
    "bulk.job_unrecorded",
    "labels.break_glass",
    "labels.withheld",
];

/// Every phase `Stream::timed` measures (`metrics.phase_timing`).
pub const PHASES: &[&str] = &[
    "audit",
    "decide",
    "facts",
    "log",
    "read_headers",
    "request_headers",
    "token",
];

/// `decision.latency_us` (`metrics.decision_latency`).
pub const LATENCY_HISTOGRAM: &str = "decision.latency_us";

/// The full names of every metric a configuration can emit, for a host
/// that defines its metrics before the first request (Envoy's dynamic
/// modules freeze stat creation once the configuration is loaded).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct AllNames {
    /// [`COUNTERS`] and `decision.<allow|deny>.<reason>` (each reason under
    /// its one verdict, as [`Metrics::define_all`] defines them).
    pub counters: Vec<String>,
    /// The phase histograms (`metrics.phase_timing`) and `decision.latency_us`
    /// (`metrics.decision_latency`).
    pub histograms: Vec<String>,
    /// The key-set gauges of each issuer whose keys are fetched
    /// (`jwks_uri`); not `vm.memory_bytes` (a wasm VM's).
    pub gauges: Vec<String>,
}

pub fn all_names(config: &Config) -> AllNames {
    let prefix = &config.metrics.prefix;
    let full = |suffix: &str| format!("{prefix}.{suffix}");
    let mut counters: Vec<String> = COUNTERS.iter().map(|s| full(s)).collect();
    counters.extend(Reason::ALL.iter().map(|r| full(&decision_counter(*r))));
    let mut histograms = Vec::new();
    if config.metrics.phase_timing {
        histograms.extend(PHASES.iter().map(|p| full(&format!("phase.{p}_us"))));
    }
    if config.metrics.decision_latency {
        histograms.push(full(LATENCY_HISTOGRAM));
    }
    let fetched = config.issuers.iter().enumerate();
    let gauges = fetched
        .filter(|(_, issuer)| issuer.jwks_uri.is_some())
        .flat_map(|(i, _)| [key_set_age_gauge(i), refresh_failing_gauge(i)])
        .map(|g| full(&g))
        .collect();
    AllNames {
        counters,
        histograms,
        gauges,
    }
}

/// `decision.<allow|deny>.<reason>`: the counter of a reason.
fn decision_counter(reason: Reason) -> String {
    let verdict = if reason.is_allow() { "allow" } else { "deny" };
    format!("decision.{verdict}.{}", reason.as_str())
}

#[derive(Debug, Default)]
pub struct Metrics {
    prefix: String,
    /// By suffix (`token_cache.hit`, ...), searched in order (a few dozen:
    /// vectors, not maps, keep the size-budgeted module small).
    ids: Vec<(&'static str, Option<u32>)>,
    /// `decision.<allow|deny>.<reason>` in the order of `Reason::ALL`
    /// (a vector, not a map: smaller code in the size-budgeted module).
    decisions: Vec<Option<u32>>,
    /// Gauges by suffix (`vm.memory_bytes`, `jwks.key_set_age_seconds.issuer_0`);
    /// a handful, searched in order.
    gauges: Vec<(String, Option<u32>)>,
    /// `phase.<name>_us` histograms (`metrics.phase_timing`) by phase name.
    phases: Vec<(&'static str, Option<u32>)>,
    /// `decision.latency_us` (`metrics.decision_latency`).
    latency: Option<Option<u32>>,
}

impl Metrics {
    pub fn new(prefix: &str) -> Self {
        Metrics {
            prefix: prefix.to_string(),
            ..Metrics::default()
        }
    }

    /// Define every counter (at zero): [`COUNTERS`] and one
    /// `decision.<allow|deny>.<reason>` per reason.
    pub fn define_all(&mut self, host: &dyn Host) {
        for suffix in COUNTERS {
            let prefix = &self.prefix;
            defined(&mut self.ids, suffix, || {
                host.define_counter(&format!("{prefix}.{suffix}"))
            });
        }
        let prefix = &self.prefix;
        self.decisions = Reason::ALL
            .iter()
            .map(|reason| host.define_counter(&format!("{prefix}.{}", decision_counter(*reason))))
            .collect();
    }

    pub fn inc(&mut self, host: &dyn Host, suffix: &'static str) {
        let prefix = &self.prefix;
        let id = defined(&mut self.ids, suffix, || {
            host.define_counter(&format!("{prefix}.{suffix}"))
        });
        if let Some(id) = id {
            host.increment_counter(id, 1);
        }
    }

    /// `decision.<allow|deny>.<reason>` (defined by [`Metrics::define_all`]).
    pub fn decision(&mut self, host: &dyn Host, d: &Decision) {
        if self.decisions.is_empty() {
            // A shell that did not configure through the root (tests, benches).
            self.define_all(host);
        }
        let at = Reason::ALL.iter().position(|r| *r == d.reason);
        if let Some(Some(id)) = at.and_then(|i| self.decisions.get(i)) {
            host.increment_counter(*id, 1);
        }
    }

    /// Record one timing of a phase in the histogram `phase.<name>_us`.
    pub fn phase(&mut self, host: &dyn Host, name: &'static str, micros: u64) {
        let prefix = &self.prefix;
        let id = defined(&mut self.phases, name, || {
            host.define_histogram(&format!("{prefix}.phase.{name}_us"))
        });
        if let Some(id) = id {
            host.record_metric(id, micros);
        }
    }

    /// Record one request's time to its decision in `decision.latency_us`.
    pub fn latency(&mut self, host: &dyn Host, micros: u64) {
        let prefix = &self.prefix;
        let id = *self
            .latency
            .get_or_insert_with(|| host.define_histogram(&format!("{prefix}.{LATENCY_HISTOGRAM}")));
        if let Some(id) = id {
            host.record_metric(id, micros);
        }
    }

    /// Set the gauge `<prefix>.<suffix>`.
    pub fn gauge(&mut self, host: &dyn Host, suffix: &str, value: u64) {
        let id = match self.gauges.iter().find(|(s, _)| s == suffix) {
            Some((_, id)) => *id,
            None => {
                let id = host.define_gauge(&format!("{}.{suffix}", self.prefix));
                self.gauges.push((suffix.to_string(), id));
                id
            }
        };
        if let Some(id) = id {
            host.record_metric(id, value);
        }
    }

    /// Set the `vm.memory_bytes` gauge (the VM's linear memory size).
    pub fn memory(&mut self, host: &dyn Host, bytes: u64) {
        self.gauge(host, "vm.memory_bytes", bytes);
    }
}

/// The gauge of issuer `i`'s key-set age: seconds since the key set this
/// VM holds was fetched (by any VM), or since the configuration loaded
/// while there is none.
pub fn key_set_age_gauge(issuer: usize) -> String {
    format!("jwks.key_set_age_seconds.issuer_{issuer}")
}

/// The gauge of issuer `i`'s last key-set refresh: 1 when it failed, 0 when
/// it succeeded.
pub fn refresh_failing_gauge(issuer: usize) -> String {
    format!("jwks.refresh_failing.issuer_{issuer}")
}

/// The metric id under `key`, defined on first use (a refusal, `None`, is
/// remembered too: the host is asked once).
fn defined(
    ids: &mut Vec<(&'static str, Option<u32>)>,
    key: &'static str,
    define: impl FnOnce() -> Option<u32>,
) -> Option<u32> {
    if let Some((_, id)) = ids.iter().find(|(k, _)| *k == key) {
        return *id;
    }
    let id = define();
    ids.push((key, id));
    id
}

#[cfg(test)]
mod tests {
    use super::COUNTERS;

    /// Every string the shell counts (`count(host, "x")`, or a literal
    /// chosen for it) is a defined counter.
    #[test]
    fn every_counted_suffix_is_listed() {
        let mut sources = Vec::new();
        let mut dirs = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap().flatten() {
                let p = entry.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|e| e == "rs")
                    && !p.ends_with("metrics.rs")
                    && !p.ends_with("fake.rs")
                {
                    sources.push(std::fs::read_to_string(p).unwrap());
                }
            }
        }
        let families = [
            "shadow.",
            "token_cache.",
            "jwks_fetch.",
            "introspection.",
            "response_check.",
            "precheck.",
            "rewrite.",
            "capability_statement.",
            "bulk.",
            "labels.",
        ];
        let mut found = 0;
        for text in &sources {
            for literal in text.split('"').skip(1).step_by(2) {
                let counted = families.iter().any(|f| literal.starts_with(f))
                    && literal
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.');
                if counted {
                    found += 1;
                    assert!(
                        COUNTERS.contains(&literal),
                        "{literal} is counted but not in COUNTERS"
                    );
                }
            }
        }
        assert!(found >= COUNTERS.len(), "found {found} counted literals");
    }
}
