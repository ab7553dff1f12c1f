//! The label policy on responses ([`crate::decision::Obligation::FilterLabels`]):
//! a resource carrying a label the token may not see is refused; a Bundle's
//! entries carrying one are withheld (or, with `policy.labels.response =
//! deny`, the whole response is refused). A searchset that was not narrowed
//! loses `Bundle.total` and gains an OperationOutcome entry (search mode
//! `outcome`) saying entries may be withheld: always, so its presence says
//! nothing about what was withheld.

use super::{hidden_labels_in, hidden_labels_on, LabelResponse};
use crate::decision::{Decision, LabelFilter};
use crate::policy::PolicyConfig;
use serde_json::Value;

/// The `outcome` entry of a filtered searchset, and of a narrowed one that
/// lost an included entry.
const OUTCOME_FILTERED: &str = r#"{"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"suppressed","diagnostics":"Entries carrying security labels this token is not cleared for are withheld from this page, if there are any; Bundle.total is left out."}]},"search":{"mode":"outcome"}}"#;
const OUTCOME_NARROWED: &str = r#"{"resource":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"suppressed","diagnostics":"Entries carrying security labels this token is not cleared for are withheld from this page."}]},"search":{"mode":"outcome"}}"#;

/// Nested Bundles (a batch-response's searchsets) are filtered to this depth.
const MAX_DEPTH: u8 = 3;

/// What filtering one response did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelsFiltered {
    /// The body to send instead of the server's (`None`: unchanged).
    pub body: Option<Vec<u8>>,
    /// Entries withheld (a refused resource counts one).
    pub withheld: u64,
    /// The hidden labels they carried.
    pub labels: Vec<String>,
    /// Why the whole response is refused, if it is.
    pub refused: Option<String>,
}

impl LabelsFiltered {
    /// Put what was withheld into the decision's label facts (the audit
    /// record's `labels.withheld`, `labels.withheld_labels`).
    pub fn record(&self, d: &mut Decision) {
        let facts = d.labels.get_or_insert_with(Default::default);
        facts.withheld = Some(self.withheld);
        facts.withheld_labels.clone_from(&self.labels);
    }
}

/// Filter a response body by a [`LabelFilter`].
pub fn filter_labels(
    policy: &PolicyConfig,
    filter: &LabelFilter,
    response: &Value,
) -> LabelsFiltered {
    let deny = policy
        .labels
        .as_ref()
        .is_some_and(|l| l.response == LabelResponse::Deny);
    let mut out = LabelsFiltered::default();
    let Some(rtype) = type_of(response) else {
        out.refused = Some("the response is not a FHIR resource (no resourceType) and cannot be checked for security labels".into());
        return out;
    };
    if rtype != "Bundle" {
        let found = hidden_in(filter, response);
        if !found.is_empty() {
            out.withheld = 1;
            out.labels = found;
            out.refused = Some(format!(
                "{rtype}/{} carries a security label this token is not cleared for",
                response.get("id").and_then(Value::as_str).unwrap_or("?")
            ));
        }
        return out;
    }
    let mut bundle = response.clone();
    if let Err(why) = filter_bundle(filter, &mut bundle, 0, &mut out) {
        out.refused = Some(why);
        return out;
    }
    if deny && out.withheld > 0 {
        out.refused = Some("the response holds entries carrying security labels this token is not cleared for (policy.labels.response = deny)".into());
        return out;
    }
    let btype = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let searchset = btype == "searchset";
    let mut changed = out.withheld > 0;
    if !filter.narrowed && matches!(btype, "searchset" | "history") {
        if let Some(o) = bundle.as_object_mut() {
            changed |= o.remove("total").is_some();
        }
    }
    if searchset && (!filter.narrowed || out.withheld > 0) {
        let note = if filter.narrowed {
            OUTCOME_NARROWED
        } else {
            OUTCOME_FILTERED
        };
        let outcome: Value = serde_json::from_str(note).unwrap_or(Value::Null);
        if let Some(o) = bundle.as_object_mut() {
            match o.get_mut("entry").and_then(Value::as_array_mut) {
                Some(entries) => entries.push(outcome),
                None => {
                    o.insert("entry".into(), Value::Array(vec![outcome]));
                }
            }
        }
        changed = true;
    }
    if changed {
        out.body = serde_json::to_vec(&bundle).ok();
        if out.body.is_none() {
            out.refused = Some("the filtered response could not be written".into());
        }
    }
    out
}

fn type_of(v: &Value) -> Option<&str> {
    v.get("resourceType").and_then(Value::as_str)
}

/// The hidden labels a (non-Bundle) resource carries, for its type.
fn hidden_in(filter: &LabelFilter, r: &Value) -> Vec<String> {
    let rtype = type_of(r).unwrap_or("*");
    let hidden: Vec<&str> = filter.hidden_on(rtype).collect();
    let mut found = Vec::new();
    hidden_labels_in(r, &hidden, &mut found);
    found.into_iter().map(str::to_string).collect()
}

/// Withhold a Bundle's entries (in place); nested Bundles are filtered the
/// same way. `Err`: why the response cannot be filtered.
fn filter_bundle(
    filter: &LabelFilter,
    bundle: &mut Value,
    depth: u8,
    out: &mut LabelsFiltered,
) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(
            "the response nests Bundles too deeply to be checked for security labels".into(),
        );
    }
    // A Bundle labelled itself (a stored document, read by id) is refused whole.
    let hidden: Vec<&str> = filter.hidden_on("Bundle").collect();
    let mut own = Vec::new();
    hidden_labels_on(bundle, &hidden, &mut own);
    if !own.is_empty() {
        out.withheld += 1;
        out.labels.extend(own.iter().map(|l| l.to_string()));
        return Err("the Bundle carries a security label this token is not cleared for".into());
    }
    let btype = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // Entries of these Bundles stand on their own; in others (a document,
    // a message) withholding one would change what the rest mean.
    let removable = matches!(
        btype.as_str(),
        "searchset" | "history" | "collection" | "batch-response" | "transaction-response"
    );
    let Some(entries) = bundle.get_mut("entry").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    let mut kept = Vec::with_capacity(entries.len());
    for mut e in std::mem::take(entries) {
        let Some(r) = e.get_mut("resource") else {
            kept.push(e);
            continue;
        };
        if type_of(r) == Some("Bundle") {
            filter_bundle(filter, r, depth + 1, out)?;
            kept.push(e);
            continue;
        }
        let found = hidden_in(filter, r);
        if found.is_empty() {
            kept.push(e);
            continue;
        }
        if !removable {
            return Err(format!(
                "a {btype} Bundle holds an entry carrying a security label this token is not cleared for"
            ));
        }
        out.withheld += 1;
        for l in found {
            if !out.labels.contains(&l) {
                out.labels.push(l);
            }
        }
    }
    *entries = kept;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use serde_json::json;

    const ETH: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH";
    const R: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R";

    fn policy(response: &str) -> PolicyConfig {
        let json = format!(r#"{{"policy":{{"labels":{{"response":"{response}"}}}}}}"#);
        Config::from_json(json.as_bytes()).unwrap().policy
    }

    fn filter(narrowed: bool) -> LabelFilter {
        LabelFilter {
            hidden: vec![R.into(), ETH.into()],
            cleared_on: vec![("Condition".into(), vec![ETH.into()])],
            narrowed,
        }
    }

    fn labelled(t: &str, id: &str, label: Option<&str>) -> Value {
        let mut r = json!({"resourceType": t, "id": id});
        if let Some((system, code)) = label.and_then(|l| l.split_once('|')) {
            r["meta"] = json!({"security": [{"system": system, "code": code}]});
        }
        r
    }

    fn searchset(resources: &[Value]) -> Value {
        json!({"resourceType": "Bundle", "type": "searchset", "total": resources.len(),
               "entry": resources.iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<_>>()})
    }

    fn ids(body: &[u8]) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).unwrap();
        v["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let r = &e["resource"];
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap(),
                    r["id"].as_str().unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn single_resource_refused_or_passed() {
        let p = policy("filter");
        let f = filter(false);
        let hidden = filter_labels(&p, &f, &labelled("Observation", "o1", Some(R)));
        assert_eq!(
            hidden.refused.as_deref(),
            Some("Observation/o1 carries a security label this token is not cleared for")
        );
        assert_eq!(
            (hidden.withheld, hidden.labels.as_slice()),
            (1, [R.to_string()].as_slice())
        );
        assert_eq!(
            filter_labels(&p, &f, &labelled("Observation", "o2", None)),
            LabelsFiltered::default()
        );
        // Cleared on Condition by a granular `_security` scope.
        assert_eq!(
            filter_labels(&p, &f, &labelled("Condition", "c1", Some(ETH))),
            LabelsFiltered::default()
        );
        assert!(filter_labels(&p, &f, &labelled("Condition", "c2", Some(R)))
            .refused
            .is_some());
        assert!(filter_labels(&p, &f, &json!({"id": "x"})).refused.is_some());
    }

    #[test]
    fn searchset_entries_withheld_total_removed_outcome_added() {
        let p = policy("filter");
        let page = searchset(&[
            labelled("Observation", "o1", None),
            labelled("Observation", "o2", Some(ETH)),
            labelled("Observation", "o3", Some(R)),
            labelled("Condition", "c1", Some(ETH)),
        ]);
        let got = filter_labels(&p, &filter(false), &page);
        assert_eq!(got.refused, None);
        assert_eq!(got.withheld, 2);
        assert_eq!(got.labels, vec![ETH.to_string(), R.to_string()]);
        let body = got.body.unwrap();
        assert_eq!(
            ids(&body),
            ["Observation/o1", "Condition/c1", "OperationOutcome/-"]
        );
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v.get("total").is_none());
        assert_eq!(v["entry"][2]["search"]["mode"], "outcome");
        assert_eq!(v["entry"][2]["resource"]["issue"][0]["code"], "suppressed");
        // Nothing withheld, not narrowed: still no total, still the outcome entry.
        let clean = filter_labels(
            &p,
            &filter(false),
            &searchset(&[labelled("Observation", "o1", None)]),
        );
        let v: Value = serde_json::from_slice(&clean.body.unwrap()).unwrap();
        assert!(v.get("total").is_none());
        assert_eq!(v["entry"].as_array().unwrap().len(), 2);
        // Narrowed and nothing withheld: unchanged, total kept.
        let narrowed = filter_labels(
            &p,
            &filter(true),
            &searchset(&[labelled("Observation", "o1", None)]),
        );
        assert_eq!(narrowed, LabelsFiltered::default());
        // Narrowed, an entry withheld all the same (an include): total kept, outcome entry.
        let got = filter_labels(&p, &filter(true), &page);
        let v: Value = serde_json::from_slice(&got.body.unwrap()).unwrap();
        assert_eq!(v["total"], 4);
        assert_eq!(v["entry"][2]["resource"]["issue"][0]["diagnostics"], "Entries carrying security labels this token is not cleared for are withheld from this page.");
        // Deny mode refuses the page.
        let denied = filter_labels(&policy("deny"), &filter(false), &page);
        assert!(denied
            .refused
            .unwrap()
            .contains("policy.labels.response = deny"));
    }

    #[test]
    fn nested_and_other_bundles() {
        let p = policy("filter");
        let inner = searchset(&[
            labelled("Observation", "o1", None),
            labelled("Observation", "o2", Some(R)),
        ]);
        let batch = json!({"resourceType": "Bundle", "type": "batch-response", "entry": [{"resource": inner}]});
        let got = filter_labels(&p, &filter(false), &batch);
        assert_eq!(got.withheld, 1);
        let v: Value = serde_json::from_slice(&got.body.unwrap()).unwrap();
        assert_eq!(
            v["entry"][0]["resource"]["entry"].as_array().unwrap().len(),
            1
        );
        let mut stored = labelled("Bundle", "b1", Some(R));
        stored["type"] = json!("collection");
        let got = filter_labels(&p, &filter(false), &stored);
        assert_eq!(
            got.refused.as_deref(),
            Some("the Bundle carries a security label this token is not cleared for")
        );
        assert_eq!(got.labels, [R]);
        let document = json!({"resourceType": "Bundle", "type": "document", "entry": [{"resource": labelled("Observation", "o2", Some(R))}]});
        assert!(filter_labels(&p, &filter(false), &document)
            .refused
            .unwrap()
            .contains("document Bundle"));
        let history = json!({"resourceType": "Bundle", "type": "history", "total": 2, "entry": [
            {"resource": labelled("Observation", "o1", Some(R))}, {"resource": labelled("Observation", "o1", None)}]});
        let got = filter_labels(&p, &filter(false), &history);
        let v: Value = serde_json::from_slice(&got.body.unwrap()).unwrap();
        assert!(v.get("total").is_none());
        assert_eq!(
            v["entry"].as_array().unwrap().len(),
            1,
            "no outcome entry in a history Bundle"
        );
    }
}
