//! Counters (and the memory gauge, and the debug phase histograms) under
//! `metrics.prefix`. Each is defined once, on first use, and then
//! incremented by its cached id: the hot path neither formats names nor
//! allocates.

use crate::host::Host;
use fhir_smart_authz_core::decision::{Decision, Reason, Verdict};
use std::collections::HashMap;
use std::hash::Hash;

/// Every counter suffix the streams count (`Shared::count`).
pub const COUNTERS: &[&str] = &[
    "bulk.job_registered",
    "bulk.job_unrecorded",
    "capability_statement.smart_added",
    "capability_statement.unmodified",
    "introspection.failure",
    "introspection.success",
    "jwks_fetch.failure",
    "labels.break_glass",
    "labels.withheld",
    "jwks_fetch.success",
    "precheck.fail",
    "precheck.pass",
    "precheck.upstream_failure",
    "response_check.fail",
    "response_check.pass",
    "response_check.upstream_failure",
    "rewrite.failed",
    "rewrite.narrowed",
    "rewrite.relayed",
    "rewrite.shadow",
    "rewrite.strict",
    "shadow.would_deny",
    "token_cache.hit",
    "token_cache.miss",
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

/// The full names of every counter and phase histogram under `prefix`, for
/// a host that defines its metrics before the first request (Envoy's
/// dynamic modules freeze stat creation once the configuration is loaded).
pub fn all_names(prefix: &str) -> (Vec<String>, Vec<String>) {
    let mut counters: Vec<String> = COUNTERS.iter().map(|s| format!("{prefix}.{s}")).collect();
    for verdict in ["allow", "deny"] {
        for r in Reason::ALL {
            counters.push(format!("{prefix}.decision.{verdict}.{}", r.as_str()));
        }
    }
    let phases = PHASES
        .iter()
        .map(|p| format!("{prefix}.phase.{p}_us"))
        .collect();
    (counters, phases)
}

#[derive(Debug, Default)]
pub struct Metrics {
    prefix: String,
    /// By suffix (`token_cache.hit`, ...).
    ids: HashMap<&'static str, Option<u32>>,
    /// `decision.<allow|deny>.<reason>` by (allow, reason code).
    decisions: HashMap<(bool, &'static str), Option<u32>>,
    /// `vm.memory_bytes` (gauge): `None` = not defined yet, `Some(None)` = refused.
    memory_gauge: Option<Option<u32>>,
    /// `phase.<name>_us` histograms (`metrics.phase_timing`) by phase name.
    phases: HashMap<&'static str, Option<u32>>,
}

impl Metrics {
    pub fn new(prefix: &str) -> Self {
        Metrics {
            prefix: prefix.to_string(),
            ..Metrics::default()
        }
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

    /// `decision.<allow|deny>.<reason>`.
    pub fn decision(&mut self, host: &dyn Host, d: &Decision) {
        let allow = d.decision == Verdict::Allow;
        let reason = d.reason.as_str();
        let prefix = &self.prefix;
        let id = defined(&mut self.decisions, (allow, reason), || {
            let verdict = if allow { "allow" } else { "deny" };
            host.define_counter(&format!("{prefix}.decision.{verdict}.{reason}"))
        });
        if let Some(id) = id {
            host.increment_counter(id, 1);
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

    /// Set the `vm.memory_bytes` gauge (the VM's linear memory size).
    pub fn memory(&mut self, host: &dyn Host, bytes: u64) {
        let prefix = &self.prefix;
        let id = *self
            .memory_gauge
            .get_or_insert_with(|| host.define_gauge(&format!("{prefix}.vm.memory_bytes")));
        if let Some(id) = id {
            host.record_metric(id, bytes);
        }
    }
}

/// The metric id under `key`, defined on first use (a refusal, `None`, is
/// remembered too: the host is asked once).
fn defined<K: Eq + Hash>(
    ids: &mut HashMap<K, Option<u32>>,
    key: K,
    define: impl FnOnce() -> Option<u32>,
) -> Option<u32> {
    *ids.entry(key).or_insert_with(define)
}

#[cfg(test)]
mod tests {
    use super::COUNTERS;
    use std::path::Path;

    /// Every counter suffix the shell's sources count is in [`COUNTERS`]
    /// (a host that defines metrics up front would miss it otherwise).
    #[test]
    fn every_counted_suffix_is_listed() {
        fn sources(dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    sources(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(std::fs::read_to_string(&p).unwrap());
                }
            }
        }
        let mut texts = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut texts,
        );
        let mut found = 0;
        for text in &texts {
            for (at, _) in text.match_indices(".count(") {
                // the suffixes of one call: string literals up to its `;`
                let call = &text[at..];
                let call = &call[..call.find(';').unwrap_or(call.len())];
                for literal in call.split('"').skip(1).step_by(2) {
                    if literal.contains('.') && !literal.contains(' ') {
                        found += 1;
                        assert!(COUNTERS.contains(&literal), "{literal} is not in COUNTERS");
                    }
                }
            }
        }
        assert!(
            found >= COUNTERS.len() - 4,
            "only {found} counted suffixes found"
        );
    }
}
