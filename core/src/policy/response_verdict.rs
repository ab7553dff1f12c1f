//! The whole response check of a decision: every obligation's check on the
//! response as the server sent it, then the label filter, which may refuse
//! it or give the body to send instead. The one order the filter and the
//! CLI (`decide` with a `response`) share.

use super::labels::{filter_labels, LabelsFiltered};
use super::response_check::check_response;
use super::settings::PolicyConfig;
use crate::decision::{Decision, LabelFilter, Obligation};
use serde_json::Value;

/// The outcome of checking one response against a decision's obligations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseVerdict {
    /// `Err` says why the response is refused.
    pub result: Result<(), String>,
    /// What the label filter did, when the decision has one.
    pub labels: Option<LabelsFiltered>,
}

impl ResponseVerdict {
    /// The body to send instead of the server's, if any.
    pub fn body(&self) -> Option<&[u8]> {
        self.labels.as_ref().and_then(|l| l.body.as_deref())
    }

    /// Put what the label filter withheld into the decision's label facts.
    pub fn record(&self, d: &mut Decision) {
        if let Some(l) = &self.labels {
            l.record(d);
        }
    }
}

/// [`check_obligations`] with the checks given (the filter's engine port
/// lets tests script them).
pub fn check_obligations_with(
    obligations: &[Obligation],
    check: impl Fn(&Obligation) -> Result<(), String>,
    filter: impl Fn(&LabelFilter) -> LabelsFiltered,
) -> ResponseVerdict {
    if let Err(why) = obligations.iter().try_for_each(check) {
        return ResponseVerdict {
            result: Err(why),
            labels: None,
        };
    }
    let mut verdict = ResponseVerdict {
        result: Ok(()),
        labels: None,
    };
    for o in obligations {
        if let Obligation::FilterLabels(f) = o {
            let filtered = filter(f);
            if let Some(why) = &filtered.refused {
                verdict.result = Err(why.clone());
            }
            verdict.labels = Some(filtered);
        }
    }
    verdict
}

/// Check a (JSON) response against a decision's obligations.
pub fn check_obligations(
    policy: &PolicyConfig,
    base_url: Option<&str>,
    obligations: &[Obligation],
    response: &Value,
) -> ResponseVerdict {
    check_obligations_with(
        obligations,
        |o| check_response(policy, base_url, o, response),
        |f| filter_labels(policy, f, response),
    )
}
