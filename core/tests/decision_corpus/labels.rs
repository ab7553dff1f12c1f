//! Security labels (`policy.labels`): the rows (which requests of a token
//! that may not see every restricted label are narrowed, filtered on the
//! response or refused, which writes need the relabel permission, what
//! break-glass opens) are in the decision corpus, `tests/corpus/labels*/`.
//! Here: the refusal messages, `$meta` operations (a clearance given without
//! a claim), writes without a body, and no change without `policy.labels`.

use super::*;
use fhir_smart_authz_core::decision::LabelFilter;
use fhir_smart_authz_core::policy::LabelClaims;

const R: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R";
const V: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V";
const ETH: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH";
const PART2: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode|42CFRPart2";
const BTG: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG";

const LABELS: Expect = expect(false, 403, Reason::SecurityLabelNotPermitted);

/// `policy.labels` restricting R, V, ETH and 42 CFR Part 2, with the claims
/// and knobs in `extra` (JSON members, may be empty).
fn labels_cfg(extra: &str) -> Config {
    let sep = if extra.is_empty() { "" } else { "," };
    let json = format!(
        r#"{{"policy":{{"labels":{{"restricted":["{R}","{V}","{ETH}","{PART2}"],"clearance_claim":"clearance","purpose_of_use_claim":"purpose_of_use","break_glass":["{BTG}"],"relabel_claim":"may_relabel"{sep}{extra}}}}}}}"#
    );
    Config::from_json(json.as_bytes()).unwrap()
}

/// What the response filter of an allow must be: `None` = no filter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Filter {
    None,
    /// Filtered; `Bundle.total` kept only when narrowed.
    Filtered {
        narrowed: bool,
    },
}
const NO_FILTER: Filter = Filter::None;
const FILTERED: Filter = Filter::Filtered { narrowed: false };

struct LRow {
    scopes: &'static str,
    cleared: &'static [&'static str],
    relabel: bool,
    req: Interaction,
    expect: Expect,
    filter: Filter,
}

fn lrow(scopes: &'static str, req: Interaction, expect: Expect, filter: Filter) -> LRow {
    LRow {
        scopes,
        cleared: &[],
        relabel: false,
        req,
        expect,
        filter,
    }
}

impl LRow {
    fn cleared(mut self, c: &'static [&'static str]) -> Self {
        self.cleared = c;
        self
    }
    fn relabel(mut self) -> Self {
        self.relabel = true;
        self
    }
}

fn label_filter(d: &Decision) -> Option<&LabelFilter> {
    d.obligations.iter().find_map(|o| match o {
        Obligation::FilterLabels(f) => Some(f),
        _ => None,
    })
}

fn check_labels(config: &Config, rows: Vec<LRow>) {
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let mut ctx = AuthContext::from_scopes(r.scopes, None);
        ctx.labels = LabelClaims {
            cleared: r.cleared.iter().map(|s| s.to_string()).collect(),
            purposes: Vec::new(),
            relabel: r.relabel,
        };
        let d = authorize(config, r.req.clone(), Some(&ctx));
        let e = r.expect;
        let filter = match label_filter(&d) {
            None => Filter::None,
            Some(f) => Filter::Filtered {
                narrowed: f.narrowed,
            },
        };
        let ok = d.is_allow() == e.allow
            && d.status == e.status
            && d.reason == e.reason
            && filter == r.filter;
        if !ok {
            failures.push(format!(
                "row {i}: scopes={:?} cleared={:?} {:?} {:?}\n   want allow={} {:?} filter {:?}\n   got  allow={} {:?} filter {:?} — {}",
                r.scopes, r.cleared, r.req.kind, r.req.resource_type,
                e.allow, e.reason, r.filter,
                d.is_allow(), d.reason, filter, d.message
            ));
        }
    }
    assert_rows(&failures, rows.len());
}

fn labelled(t: &str, label: &str) -> Value {
    let (system, code) = label.split_once('|').unwrap();
    json!({"resourceType": t, "meta": {"security": [{"system": system, "code": code}]}})
}

/// The label rows are in the decision corpus (`tests/corpus/labels*/`);
/// these two writes have no body, which HTTP cannot send: the classifier
/// refuses them first, and the label policy would too.
#[test]
#[rustfmt::skip]
fn writes_without_a_body() {
    check_labels(&labels_cfg(""), vec![
        lrow("user/*.cruds", create("Observation", None), LABELS, NO_FILTER),
        lrow("user/*.cruds", patch("Observation", "o1"), LABELS, NO_FILTER),
    ]);
}

/// `$meta-add` / `$meta-delete` (when the operations table allows them).
#[test]
#[rustfmt::skip]
fn meta_operations_need_permission() {
    let json = format!(
        r#"{{"policy":{{"labels":{{"restricted":["{R}","{V}","{ETH}","{PART2}"],"relabel_scope":"system/security-labels.write"}},
            "operations":[{{"name":"$meta-add","levels":["instance"],"letters":"u"}},{{"name":"$meta-delete","levels":["instance"],"letters":"u"}},{{"name":"$meta","levels":["instance"],"letters":"r"}}]}}}}"#
    );
    let c = Config::from_json(json.as_bytes()).unwrap();
    check_labels(&c, vec![
        lrow("user/*.cruds", op(Level::Instance, Some("Observation"), Some("o1"), "$meta-add", ""), LABELS, NO_FILTER).cleared(&[V, ETH, PART2]),
        lrow("user/*.cruds", op(Level::Instance, Some("Observation"), Some("o1"), "$meta-delete", ""), LABELS, NO_FILTER),
        lrow("user/*.cruds", op(Level::Instance, Some("Observation"), Some("o1"), "$meta-add", ""), ALLOW, NO_FILTER).cleared(&[V, ETH, PART2]).relabel(),
        lrow("user/*.cruds", op(Level::Instance, Some("Observation"), Some("o1"), "$meta", ""), ALLOW, FILTERED),
    ]);
}

/// The refusal names what was refused and how to proceed, never a label.
#[test]
fn refusal_messages() {
    let c = labels_cfg("");
    let ctx = AuthContext::from_scopes("user/*.cruds", None);
    let d = authorize(
        &c,
        search("Patient", "_has:Observation:patient:code=1"),
        Some(&ctx),
    );
    assert_eq!(d.message, "`_has` could reveal data carrying security labels this token is not cleared for; search without it, or use a token cleared for the labels");
    assert_eq!(d.reason.as_str(), "security_label_not_permitted");
    let d = authorize(
        &c,
        create("Observation", Some(labelled("Observation", R))),
        Some(&ctx),
    );
    assert_eq!(d.message, "a create whose resource carries meta.security could add or remove security labels; that needs the claim `may_relabel: true`");
    assert!(d.required_scopes.is_empty(), "no scope opens a label");
    let facts = d.labels.unwrap();
    assert_eq!(facts.hidden, [R, V, ETH, PART2]);
    assert!(!facts.break_glass);
    let read = authorize(
        &c,
        search("Patient", "_has:Observation:patient:code=1"),
        Some(&ctx),
    );
    assert!(read.required_scopes.is_empty());
    // With a relabel scope configured, a refused write names it.
    let scoped = labels_cfg(r#""relabel_scope":"system/security-labels.write""#);
    let d = authorize(
        &scoped,
        create("Observation", Some(labelled("Observation", R))),
        Some(&ctx),
    );
    assert_eq!(d.required_scopes, ["system/security-labels.write"]);
    assert_eq!(d.message, "a create whose resource carries meta.security could add or remove security labels; that needs the scope `system/security-labels.write` or the claim `may_relabel: true`");
}

/// Without `policy.labels`, labelled writes and oracles are decided as before.
#[test]
#[rustfmt::skip]
fn no_label_policy_no_change() {
    let d = decide_row(&cfg(), &row("user/*.rs", None, read("Observation", "o1"), ALLOW, &[]));
    assert!(d.obligations.is_empty() && d.labels.is_none());
}
