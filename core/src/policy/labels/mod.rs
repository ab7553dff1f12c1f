//! Security labels (`meta.security`): which labels a token may see
//! (`policy.labels`), on requests (`request.rs`: searches narrowed or
//! refused, writes that change labels) and on responses (`response.rs`:
//! entries withheld, reads refused).
//!
//! A label is written `system|code`, one grammar everywhere: the
//! configuration, the clearance claim, granular `_security` scopes, the
//! `_security:not` parameters added to searches and the audit record.
//! A token may see a restricted label when its clearance claim or a granted
//! granular scope `..?_security=system|code` names it (a v3-Confidentiality
//! level also clears the lower ones), or when it carries a break-glass
//! purpose of use. Unlabelled data is normal: everyone sees it.

mod request;
mod response;
mod settings;

pub use request::apply_labels;
pub use response::{filter_labels, LabelsFiltered};
pub use settings::{LabelPolicy, LabelResponse, DEFAULT_RESTRICTED_LABELS};

use super::context::AuthContext;
use crate::decision::{LabelFacts, LabelFilter};
use serde_json::Value;

/// The v3 Confidentiality code system (`meta.security` levels).
pub const CONFIDENTIALITY: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality";
/// The v3 ActReason code system (purposes of use, e.g. `BTG`).
pub const ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// Confidentiality levels, lowest first: clearance for one clears those below.
const LEVELS: [&str; 6] = ["U", "L", "M", "N", "R", "V"];

/// Whether `s` is `system|code`: an absolute system URI, one `|`, a code
/// that needs no escape in a search value.
pub(crate) fn is_label(s: &str) -> bool {
    let Some((system, code)) = s.split_once('|') else {
        return false;
    };
    let plain = |t: &str| {
        !t.is_empty()
            && !t
                .chars()
                .any(|c| c.is_whitespace() || matches!(c, '|' | ',' | '$' | '\\'))
    };
    plain(system) && plain(code) && system.contains(':')
}

/// Whether clearance for `cleared` covers `label`: the same, or a higher
/// confidentiality level.
fn covers(cleared: &str, label: &str) -> bool {
    if cleared == label {
        return true;
    }
    let level = |l: &str| {
        l.strip_prefix(CONFIDENTIALITY)
            .and_then(|c| c.strip_prefix('|'))
            .and_then(|c| LEVELS.iter().position(|x| *x == c))
    };
    matches!((level(cleared), level(label)), (Some(a), Some(b)) if a >= b)
}

/// What a token's claims say for the label policy, read once per token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelClaims {
    /// Labels the clearance claim names.
    pub cleared: Vec<String>,
    /// Purposes of use (`system|code`).
    pub purposes: Vec<String>,
    /// The relabel scope or claim allows writes that change labels.
    pub relabel: bool,
}

/// The items of a claim that is a string (space-delimited), an array of
/// strings, or (`objects`) codings `{system, code}`. `Err` for other shapes.
fn claim_items(claims: &Value, name: &str, objects: bool) -> Result<Vec<String>, String> {
    let item = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) if objects => {
            let system = o.get("system").and_then(Value::as_str)?;
            let code = o.get("code").and_then(Value::as_str)?;
            Some(format!("{system}|{code}"))
        }
        _ => None,
    };
    let shape = || {
        format!(
            "claim `{name}` must be a space-delimited string or an array of strings{}",
            if objects {
                " or {system, code} objects"
            } else {
                ""
            }
        )
    };
    match claims.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s
            .split(' ')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()),
        Some(Value::Array(a)) => a.iter().map(|v| item(v).ok_or_else(shape)).collect(),
        Some(v @ Value::Object(_)) if objects => item(v).map(|i| vec![i]).ok_or_else(shape),
        Some(_) => Err(shape()),
    }
}

impl LabelPolicy {
    /// The label facts of verified claims (`scope_claim`: where the relabel
    /// scope is looked for). `Err` names a claim of a shape the filter does
    /// not understand; clearance items that are not `system|code` are
    /// ignored (they clear nothing) and reported in `diagnostics`.
    pub fn claims_of(
        &self,
        claims: &Value,
        scope_claim: &str,
        diagnostics: &mut Vec<String>,
    ) -> Result<LabelClaims, String> {
        let mut out = LabelClaims::default();
        if let Some(name) = &self.clearance_claim {
            for c in claim_items(claims, name, false)? {
                if is_label(&c) {
                    out.cleared.push(c);
                } else {
                    diagnostics.push(format!(
                        "clearance {c:?} in claim `{name}` is not system|code: ignored"
                    ));
                }
            }
        }
        if let Some(name) = &self.purpose_of_use_claim {
            for p in claim_items(claims, name, true)? {
                // A bare code is a v3-ActReason purpose of use.
                out.purposes.push(if p.contains('|') {
                    p
                } else {
                    format!("{ACT_REASON}|{p}")
                });
            }
        }
        let by_claim = self
            .relabel_claim
            .as_deref()
            .is_some_and(|c| claims.get(c) == Some(&Value::Bool(true)));
        let by_scope = self.relabel_scope.as_deref().is_some_and(|s| {
            claim_items(claims, scope_claim, false)
                .map(|items| items.iter().any(|i| i == s))
                .unwrap_or(false)
        });
        out.relabel = by_claim || by_scope;
        Ok(out)
    }

    /// What one token may see: the restricted labels it is not cleared for
    /// (on every type, and those a granular `_security` scope clears on one
    /// type), and whether a break-glass purpose opens them.
    pub(crate) fn view(&self, ctx: &AuthContext) -> TokenView {
        let claims = &ctx.labels;
        // Labels granular `_security` scopes name: on every type (`*`), per type.
        let mut everywhere: Vec<String> = Vec::new();
        let mut typed: Vec<(String, Vec<String>)> = Vec::new();
        for s in &ctx.scopes.scopes {
            for q in s.query.iter().filter(|q| q.name == "_security") {
                for v in q.value.split(',').filter(|v| is_label(v)) {
                    match &s.resource_type {
                        None => everywhere.push(v.to_string()),
                        Some(t) => match typed.iter_mut().find(|(x, _)| x == t) {
                            Some((_, labels)) => labels.push(v.to_string()),
                            None => typed.push((t.clone(), vec![v.to_string()])),
                        },
                    }
                }
            }
        }
        let mut hidden = Vec::new();
        for l in &self.restricted {
            if !claims
                .cleared
                .iter()
                .chain(&everywhere)
                .any(|c| covers(c, l))
            {
                hidden.push(l.clone());
            }
        }
        let mut cleared_on = Vec::new();
        for (t, labels) in typed {
            let opened: Vec<String> = hidden
                .iter()
                .filter(|h| labels.iter().any(|c| covers(c, h)))
                .cloned()
                .collect();
            if !opened.is_empty() {
                cleared_on.push((t, opened));
            }
        }
        let break_glass = claims
            .purposes
            .iter()
            .any(|p| self.break_glass.iter().any(|b| b == p));
        TokenView {
            filter: LabelFilter {
                hidden,
                cleared_on,
                narrowed: false,
            },
            break_glass,
            purposes: claims.purposes.clone(),
        }
    }
}

/// What one token may see under the label policy.
#[derive(Debug, Clone)]
pub(crate) struct TokenView {
    /// The labels it may not see (before break-glass).
    pub(crate) filter: LabelFilter,
    pub(crate) break_glass: bool,
    pub(crate) purposes: Vec<String>,
}

impl TokenView {
    /// Whether anything is withheld from this token.
    pub(crate) fn restricted(&self) -> bool {
        !self.break_glass && !self.filter.hidden.is_empty()
    }

    /// The labels hidden on every one of `types` (empty = all types: on any).
    pub(crate) fn hidden_on_all(&self, types: &[&str]) -> Vec<String> {
        self.filter
            .hidden
            .iter()
            .filter(|h| {
                types.is_empty()
                    || types
                        .iter()
                        .any(|t| self.filter.hidden_on(t).any(|x| x == h.as_str()))
            })
            .cloned()
            .collect()
    }

    /// The audit facts of this view.
    pub(crate) fn facts(&self) -> LabelFacts {
        LabelFacts {
            hidden: self.filter.hidden.clone(),
            purpose_of_use: self.purposes.clone(),
            break_glass: self.break_glass && !self.filter.hidden.is_empty(),
            withheld: None,
            withheld_labels: Vec::new(),
        }
    }
}

/// The labels (`system|code`, or `|code` without a system) a Coding array
/// at `security` holds.
fn codings(security: Option<&Value>) -> impl Iterator<Item = (Option<&str>, &str)> {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let code = c.get("code").and_then(Value::as_str)?;
            Some((c.get("system").and_then(Value::as_str), code))
        })
}

/// Whether a coding is the label `label`; a coding without a system is
/// read as any label with its code (fail closed).
fn is_coding_of(system: Option<&str>, code: &str, label: &str) -> bool {
    match label.split_once('|') {
        Some((s, c)) => c == code && system.map_or(true, |x| x == s),
        None => false,
    }
}

/// The hidden labels anywhere in `v`: its `meta.security`, that of the
/// resources it contains (`contained`, a Parameters' `resource`) and any
/// `valueMeta` (`$meta`). Nested Bundles are the caller's business.
pub(crate) fn hidden_labels_in<'h>(v: &Value, hidden: &[&'h str], out: &mut Vec<&'h str>) {
    match v {
        Value::Object(o) => {
            hidden_labels_on(v, hidden, out);
            for (k, child) in o {
                if k != "meta" {
                    hidden_labels_in(child, hidden, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| hidden_labels_in(c, hidden, out)),
        _ => {}
    }
}

/// The hidden labels of `v` itself: its `meta.security` (or a `valueMeta`'s).
pub(crate) fn hidden_labels_on<'h>(v: &Value, hidden: &[&'h str], out: &mut Vec<&'h str>) {
    for key in ["meta", "valueMeta"] {
        let security = v.get(key).and_then(|m| m.get("security"));
        for (system, code) in codings(security) {
            for h in hidden {
                if is_coding_of(system, code, h) && !out.contains(h) {
                    out.push(h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_grammar() {
        for ok in [
            "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R",
            "urn:oid:2.16.840.1.113883.5.25|V",
        ] {
            assert!(is_label(ok), "{ok}");
        }
        for bad in [
            "R",
            "|R",
            "http://x|",
            "x|R",
            "http://x|R|S",
            "http://x|R,S",
            "http://x|a b",
            "http://x|$R",
        ] {
            assert!(!is_label(bad), "{bad}");
        }
    }

    #[test]
    fn confidentiality_levels_cover_lower_ones() {
        let r = format!("{CONFIDENTIALITY}|R");
        let v = format!("{CONFIDENTIALITY}|V");
        assert!(covers(&v, &r));
        assert!(covers(&r, &r));
        assert!(!covers(&r, &v));
        assert!(!covers(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH",
            &r
        ));
    }

    #[test]
    fn hidden_labels_anywhere_in_a_resource() {
        let eth = "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH";
        let r = format!("{CONFIDENTIALITY}|R");
        let hidden = [eth, r.as_str()];
        let find = |v: Value| {
            let mut out = Vec::new();
            hidden_labels_in(&v, &hidden, &mut out);
            out
        };
        let coding =
            json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "ETH"});
        assert_eq!(
            find(json!({"resourceType": "Observation", "meta": {"security": [coding]}})),
            vec![eth]
        );
        assert_eq!(
            find(
                json!({"resourceType": "Observation", "contained": [{"resourceType": "Condition", "meta": {"security": [coding]}}]})
            ),
            vec![eth]
        );
        assert_eq!(
            find(
                json!({"resourceType": "Parameters", "parameter": [{"name": "return", "valueMeta": {"security": [{"code": "R"}]}}]})
            ),
            vec![r.as_str()]
        );
        assert!(find(json!({"resourceType": "Observation", "meta": {"security": [{"system": "http://other", "code": "R"}]}})).is_empty());
        assert!(find(json!({"resourceType": "Observation", "meta": {"tag": [coding]}})).is_empty());
    }

    fn policy(json: &str) -> LabelPolicy {
        let c = crate::config::Config::from_json(
            format!(r#"{{"policy":{{"labels":{json}}}}}"#).as_bytes(),
        )
        .unwrap();
        c.policy.labels.unwrap()
    }

    #[test]
    fn claims_of_every_shape() {
        let p = policy(
            r#"{"clearance_claim":"clearance","purpose_of_use_claim":"pou","break_glass":["http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG"],"relabel_claim":"relabel","relabel_scope":"system/labels.write"}"#,
        );
        let r = format!("{CONFIDENTIALITY}|R");
        let mut diagnostics = Vec::new();
        let got = p
            .claims_of(
                &json!({"clearance": [r.clone(), "R"], "pou": "BTG", "relabel": true}),
                "scope",
                &mut diagnostics,
            )
            .unwrap();
        assert_eq!(got.cleared, std::slice::from_ref(&r));
        assert_eq!(got.purposes, [format!("{ACT_REASON}|BTG")]);
        assert!(got.relabel);
        assert_eq!(
            diagnostics,
            ["clearance \"R\" in claim `clearance` is not system|code: ignored"]
        );
        let got = p.claims_of(&json!({"clearance": r.clone(), "pou": {"system": "urn:x", "code": "TREAT"}, "relabel": "true", "scope": "user/*.rs system/labels.write"}), "scope", &mut diagnostics).unwrap();
        assert_eq!(got.purposes, ["urn:x|TREAT"]);
        assert!(
            got.relabel,
            "by the scope; the string \"true\" is no permission"
        );
        let got = p
            .claims_of(
                &json!({"pou": [{"system": "urn:x", "code": "A"}, "B"], "relabel": "true"}),
                "scope",
                &mut diagnostics,
            )
            .unwrap();
        assert_eq!(
            got.purposes,
            ["urn:x|A".to_string(), format!("{ACT_REASON}|B")]
        );
        assert!(!got.relabel);
        for bad in [
            json!({"clearance": 5}),
            json!({"clearance": [{"system": "urn:x", "code": "R"}]}),
            json!({"pou": 1}),
            json!({"pou": [true]}),
        ] {
            assert!(
                p.claims_of(&bad, "scope", &mut diagnostics).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn validation_names_the_field() {
        for (json, field) in [
            (r#"{"restricted":[]}"#, "policy.labels.restricted"),
            (r#"{"restricted":["R"]}"#, "policy.labels.restricted[0]"),
            (
                r#"{"break_glass":["BTG"],"purpose_of_use_claim":"pou"}"#,
                "policy.labels.break_glass[0]",
            ),
            (
                r#"{"break_glass":["urn:x|BTG"]}"#,
                "policy.labels.purpose_of_use_claim",
            ),
            (
                r#"{"clearance_claim":" "}"#,
                "policy.labels.clearance_claim",
            ),
            (r#"{"relabel_scope":"a b"}"#, "policy.labels.relabel_scope"),
            (r#"{"response":"drop"}"#, "policy.labels.response"),
            (r#"{"restrict":[]}"#, "policy.labels.restrict"),
        ] {
            let e = crate::config::Config::from_json(
                format!(r#"{{"policy":{{"labels":{json}}}}}"#).as_bytes(),
            )
            .unwrap_err();
            assert_eq!(e.field, field, "{json}: {e}");
        }
        let c = crate::config::Config::from_json(
            br#"{"policy":{"labels":{"clearance_claim":"clr","purpose_of_use_claim":"pou"}}}"#,
        )
        .unwrap();
        assert_eq!(c.claims.also_kept, ["clr", "pou"]);
        assert!(crate::config::Config::default_config()
            .unwrap()
            .policy
            .labels
            .is_none());
    }
}
