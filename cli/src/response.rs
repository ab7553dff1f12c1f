//! `decide`/`explain` with a `"response"`: the response check the filter
//! would make on the FHIR server's answer, offline (the core's
//! `check_obligations`: obligations, then the label filter).

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, LabelFacts};
use fhir_smart_authz_core::policy::check_obligations;
use serde_json::{json, Value};

/// The `response` member of an output line for a 200 answer `response`:
/// `result` (`not_sent` for a denied request, `relayed` without
/// obligations, `passed`, `filtered` with the `body` the filter sends and
/// how many entries it `withheld`, or `refused` with `status`, `reason`
/// and `message`). What the label filter withheld also goes into the
/// decision's `labels`.
pub fn check_line_response(config: &Config, d: &mut Decision, response: &Value) -> Value {
    if !d.is_allow() {
        return json!({"result": "not_sent"});
    }
    if d.obligations.is_empty() {
        return json!({"result": "relayed", "status": 200});
    }
    let verdict = check_obligations(
        &config.policy,
        config.base.url.as_deref(),
        &d.obligations,
        response,
    );
    verdict.record(d);
    let withheld = verdict.labels.as_ref().map(|l| l.withheld).unwrap_or(0);
    match (&verdict.result, verdict.body()) {
        (Err(why), _) => {
            let status = if config.enforce {
                config.responses.obligation_denied_status
            } else {
                200
            };
            json!({"result": "refused", "status": status, "reason": "response_not_permitted", "message": why, "enforced": config.enforce})
        }
        (Ok(()), Some(body)) => {
            let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
            json!({"result": "filtered", "status": 200, "withheld": withheld, "body": body})
        }
        (Ok(()), None) => json!({"result": "passed", "status": 200}),
    }
}

/// The `explain` lines of the label policy's facts.
pub fn explain_labels(l: &LabelFacts) -> String {
    let mut s = String::new();
    if !l.hidden.is_empty() {
        let how = if l.break_glass {
            "opened by break-glass"
        } else {
            "withheld from this token"
        };
        s.push_str(&format!("  labels {how}: {}\n", l.hidden.join(" ")));
    }
    if !l.purpose_of_use.is_empty() {
        s.push_str(&format!(
            "  purpose of use: {}\n",
            l.purpose_of_use.join(" ")
        ));
    }
    if let Some(n) = l.withheld {
        s.push_str(&format!("  response entries withheld: {n}"));
        if !l.withheld_labels.is_empty() {
            s.push_str(&format!(" (labels {})", l.withheld_labels.join(" ")));
        }
        s.push('\n');
    }
    s
}

/// The `explain` line of a response check.
pub fn explain_response(r: &Value) -> String {
    let result = r["result"].as_str().unwrap_or_default();
    match result {
        "refused" => format!(
            "  response: refused (HTTP {}) — {}\n",
            r["status"],
            r["message"].as_str().unwrap_or_default()
        ),
        "filtered" => format!(
            "  response: filtered, {} entries withheld; sent as {}\n",
            r["withheld"], r["body"]
        ),
        other => format!("  response: {other}\n"),
    }
}
