//! Counters under `metrics.prefix`. Defined lazily, ids cached per VM.

use super::host::Host;
use crate::decision::{Decision, Verdict};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct Metrics {
    prefix: String,
    ids: HashMap<String, Option<u32>>,
}

impl Metrics {
    pub fn new(prefix: &str) -> Self {
        Metrics {
            prefix: prefix.to_string(),
            ids: HashMap::new(),
        }
    }

    /// Full name of a counter.
    pub fn name(&self, suffix: &str) -> String {
        format!("{}.{}", self.prefix, suffix)
    }

    pub fn inc(&mut self, host: &dyn Host, suffix: &str) {
        let name = self.name(suffix);
        let id = match self.ids.get(&name) {
            Some(id) => *id,
            None => {
                let id = host.define_counter(&name);
                self.ids.insert(name, id);
                id
            }
        };
        if let Some(id) = id {
            host.increment_counter(id, 1);
        }
    }

    /// `decision.<allow|deny>.<reason>`.
    pub fn decision(&mut self, host: &dyn Host, d: &Decision) {
        let verdict = match d.decision {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        };
        self.inc(host, &format!("decision.{verdict}.{}", d.reason.as_str()));
    }
}
