//! Counters (and the memory gauge, and the debug phase histograms) under
//! `metrics.prefix`. Each is defined once, on first use, and then
//! incremented by its cached id: the hot path neither formats names nor
//! allocates.

use crate::host::Host;
use fhir_smart_authz_core::decision::{Decision, Verdict};
use std::collections::HashMap;

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

    /// Full name of a counter.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}.{}", self.prefix, suffix)
    }

    pub fn inc(&mut self, host: &dyn Host, suffix: &'static str) {
        let id = match self.ids.get(suffix) {
            Some(id) => *id,
            None => {
                let id = host.define_counter(&self.name(suffix));
                self.ids.insert(suffix, id);
                id
            }
        };
        if let Some(id) = id {
            host.increment_counter(id, 1);
        }
    }

    /// `decision.<allow|deny>.<reason>`.
    pub fn decision(&mut self, host: &dyn Host, d: &Decision) {
        let allow = d.decision == Verdict::Allow;
        let reason = d.reason.as_str();
        let id = match self.decisions.get(&(allow, reason)) {
            Some(id) => *id,
            None => {
                let verdict = if allow { "allow" } else { "deny" };
                let id = host.define_counter(&self.name(&format!("decision.{verdict}.{reason}")));
                self.decisions.insert((allow, reason), id);
                id
            }
        };
        if let Some(id) = id {
            host.increment_counter(id, 1);
        }
    }

    /// Record one timing of a phase in the histogram `phase.<name>_us`.
    pub fn phase(&mut self, host: &dyn Host, name: &'static str, micros: u64) {
        let id = match self.phases.get(name) {
            Some(id) => *id,
            None => {
                let id = host.define_histogram(&self.name(&format!("phase.{name}_us")));
                self.phases.insert(name, id);
                id
            }
        };
        if let Some(id) = id {
            host.record_metric(id, micros);
        }
    }

    /// Set the `vm.memory_bytes` gauge (the VM's linear memory size).
    pub fn memory(&mut self, host: &dyn Host, bytes: u64) {
        let id = match self.memory_gauge {
            Some(id) => id,
            None => {
                let id = host.define_gauge(&self.name("vm.memory_bytes"));
                self.memory_gauge = Some(id);
                id
            }
        };
        if let Some(id) = id {
            host.record_metric(id, bytes);
        }
    }
}
