//! Security labels (`policy.labels`): which requests of a token that may
//! not see every restricted label are narrowed (`_security:not`), filtered
//! on the response (`Obligation::FilterLabels`) or refused, which writes
//! need the relabel permission, and what break-glass opens. Without
//! `policy.labels` nothing changes (every other corpus file).

use super::*;
use fhir_smart_authz_core::decision::LabelFilter;
use fhir_smart_authz_core::policy::LabelClaims;

const R: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|R";
const V: &str = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality|V";
const ETH: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode|ETH";
const PART2: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode|42CFRPart2";
const BTG: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason|BTG";
const TREAT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason|TREAT";

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
const NARROWED: Filter = Filter::Filtered { narrowed: true };

struct LRow {
    scopes: &'static str,
    cleared: &'static [&'static str],
    purposes: &'static [&'static str],
    relabel: bool,
    req: Interaction,
    expect: Expect,
    filter: Filter,
    /// `name=value&...` narrowing adds.
    narrowed: String,
    /// The audit facts: break-glass used.
    break_glass: bool,
}

fn lrow(scopes: &'static str, req: Interaction, expect: Expect, filter: Filter) -> LRow {
    LRow {
        scopes,
        cleared: &[],
        purposes: &[],
        relabel: false,
        req,
        expect,
        filter,
        narrowed: String::new(),
        break_glass: false,
    }
}

impl LRow {
    fn cleared(mut self, c: &'static [&'static str]) -> Self {
        self.cleared = c;
        self
    }
    fn purposes(mut self, p: &'static [&'static str]) -> Self {
        self.purposes = p;
        self
    }
    fn relabel(mut self) -> Self {
        self.relabel = true;
        self
    }
    fn narrowed(mut self, labels: &[&str]) -> Self {
        self.narrowed = labels
            .iter()
            .map(|l| format!("_security:not={l}"))
            .collect::<Vec<_>>()
            .join("&");
        self
    }
    fn break_glass(mut self) -> Self {
        self.break_glass = true;
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
            purposes: r.purposes.iter().map(|s| s.to_string()).collect(),
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
        let break_glass = d.labels.as_ref().is_some_and(|l| l.break_glass);
        let ok = d.is_allow() == e.allow
            && d.status == e.status
            && d.reason == e.reason
            && filter == r.filter
            && added(&d) == r.narrowed
            && break_glass == r.break_glass;
        if !ok {
            failures.push(format!(
                "row {i}: scopes={:?} cleared={:?} purposes={:?} {:?} {:?} {:?}\n   want allow={} {:?} filter {:?} narrowed {:?} break_glass {}\n   got  allow={} {:?} filter {:?} narrowed {:?} break_glass {} — {}",
                r.scopes, r.cleared, r.purposes, r.req.kind, r.req.resource_type,
                r.req.search.iter().map(|p| &p.name).collect::<Vec<_>>(),
                e.allow, e.reason, r.filter, r.narrowed, r.break_glass,
                d.is_allow(), d.reason, filter, added(&d), break_glass, d.message
            ));
        }
    }
    assert_rows(&failures, rows.len());
}

fn labelled(t: &str, label: &str) -> Value {
    let (system, code) = label.split_once('|').unwrap();
    json!({"resourceType": t, "meta": {"security": [{"system": system, "code": code}]}})
}

/// Reads and searches of a clinician without clearance, with some, with
/// all (the claim, or a granular `_security` scope), and with break-glass.
#[test]
#[rustfmt::skip]
fn reads_and_searches_are_filtered() {
    let eth_scope: &'static str = Box::leak(format!("user/Observation.rs user/Observation.rs?_security={ETH}").into_boxed_str());
    let eth_everywhere: &'static str = Box::leak(format!("user/*.rs user/*.rs?_security={ETH}").into_boxed_str());
    check_labels(&labels_cfg(""), vec![
        lrow("user/Observation.rs", read("Observation", "o1"), ALLOW, FILTERED),
        lrow("user/Observation.rs", vread("Observation", "o1"), ALLOW, FILTERED),
        lrow("user/Observation.rs", history(Level::Instance, Some("Observation"), Some("o1")), ALLOW, FILTERED),
        lrow("user/Observation.rs", history(Level::Type, Some("Observation"), None), ALLOW, FILTERED),
        lrow("user/Observation.rs", search("Observation", "code=x"), ALLOW, FILTERED),
        lrow("user/Observation.rs", search("Observation", "_total=accurate"), ALLOW, FILTERED),
        lrow("user/*.rs", comp_search("p1", "*"), ALLOW, FILTERED),
        lrow("user/*.rs", op(Level::Instance, Some("Patient"), Some("p1"), "$everything", ""), ALLOW, FILTERED),
        lrow("user/*.rs", it(K::Paging, Level::System, None, None), ALLOW, FILTERED),
        lrow("user/*.rs", it(K::Capabilities, Level::System, None, None), PUBLIC, NO_FILTER),
        // cleared for everything restricted: unchanged
        lrow("user/Observation.rs", search("Observation", "code=x"), ALLOW, NO_FILTER).cleared(&[V, ETH, PART2]),
        // V clears R (a higher confidentiality level), but not ETH
        lrow("user/Observation.rs", read("Observation", "o1"), ALLOW, FILTERED).cleared(&[V]),
        // a granular `_security` scope clears ETH on its type only; on `*` everywhere
        lrow(eth_scope, read("Observation", "o1"), ALLOW, FILTERED).cleared(&[V, PART2]),
        lrow(eth_everywhere, read("Observation", "o1"), ALLOW, NO_FILTER).cleared(&[V, PART2]),
        // break-glass: everything, and recorded
        lrow("user/Observation.rs", search("Observation", "code=x"), ALLOW, NO_FILTER).purposes(&[BTG]).break_glass(),
        lrow("user/Observation.rs", read("Observation", "o1"), ALLOW, NO_FILTER).purposes(&[BTG]).break_glass(),
        // another purpose opens nothing
        lrow("user/Observation.rs", read("Observation", "o1"), ALLOW, FILTERED).purposes(&[TREAT]),
        // break-glass does not widen scopes
        lrow("user/Observation.rs", read("Condition", "c1"), INSUFF, NO_FILTER).purposes(&[BTG]),
        // denials stay denials
        lrow("user/Observation.rs", read("Condition", "c1"), INSUFF, NO_FILTER),
    ]);
}

/// Search forms that could reveal labelled data the response cannot
/// withhold: refused for a restricted token, allowed for a cleared one.
#[test]
#[rustfmt::skip]
fn oracles_are_refused() {
    let c = labels_cfg("");
    let mut rows = Vec::new();
    for q in [
        "_has:Observation:patient:code=1234",
        "subject:Patient.name=smith",
        "subject.name=smith",
        "_sort=subject.name",
        "_filter=code eq x",
        "_query=special",
        "_list=l1",
        "_summary=count",
        "_contained=true",
        "_elements=code,subject",
    ] {
        let t = if q.starts_with("_has") { "Patient" } else { "Observation" };
        rows.push(lrow("user/*.rs", search(t, q), LABELS, NO_FILTER));
        rows.push(lrow("user/*.rs", search(t, q), ALLOW, NO_FILTER).cleared(&[V, ETH, PART2]));
        rows.push(lrow("user/*.rs", search(t, q), ALLOW, NO_FILTER).purposes(&[BTG]).break_glass());
    }
    rows.push(lrow("user/*.rs", search("Observation", "_elements=code,meta"), ALLOW, FILTERED));
    rows.push(lrow("user/*.rs", search("Observation", "_contained=false"), ALLOW, FILTERED));
    rows.push(lrow("user/*.rs", search("Observation", "_include=Observation:patient&_revinclude=Provenance:target"), ALLOW, FILTERED));
    rows.push(lrow("user/*.rs", search("Observation", "_summary=true"), ALLOW, FILTERED));
    rows.push(lrow("user/*.rs", search("Observation", "_format=xml"), LABELS, NO_FILTER));
    rows.push(lrow("user/*.rs", search("Observation", "_format=application/fhir+json"), ALLOW, FILTERED));
    rows.push(lrow("user/*.rs", search("Observation", "_format=xml"), ALLOW, NO_FILTER).cleared(&[V, ETH, PART2]));
    // operations: the same limits; bulk export is not read through the filter
    rows.push(lrow("user/*.rs", op(Level::Type, Some("Observation"), None, "$lastn", "subject:Patient.name=x"), LABELS, NO_FILTER));
    rows.push(lrow("system/*.rs", op(Level::System, None, None, "$export", ""), LABELS, NO_FILTER));
    rows.push(lrow("system/*.rs", op(Level::System, None, None, "$export", ""), ALLOW, NO_FILTER).cleared(&[V, ETH, PART2]));
    // conditional writes: their criteria are matched against records the token may not see
    rows.push(lrow("user/*.cruds", cond_delete("Observation", "code=x"), LABELS, NO_FILTER));
    rows.push(lrow("user/*.cruds", cond_create("Observation", obs("Patient/p1"), "identifier=a|b"), LABELS, NO_FILTER));
    rows.push(lrow("user/*.cruds", cond_delete("Observation", "code=x"), ALLOW, NO_FILTER).cleared(&[V, ETH, PART2]));
    rows.push(lrow("user/*.cruds", bundle(K::Transaction, vec![cond_delete("Observation", "code=x")]), LABELS, NO_FILTER));
    rows.push(lrow("user/*.cruds", delete("Observation", "o1"), ALLOW, NO_FILTER));
    // a batch that reads: refused (its entries cannot be filtered one by one)
    rows.push(lrow("user/*.rs", bundle(K::Batch, vec![read("Observation", "o1")]), LABELS, NO_FILTER));
    rows.push(lrow("user/*.rs", bundle(K::Batch, vec![read("Observation", "o1")]), ALLOW, NO_FILTER).purposes(&[BTG]).break_glass());
    check_labels(&c, rows);
}

/// With `server_supports_security_not`: one `_security:not` per hidden
/// label (AND), `Bundle.total` kept, `_summary=count` allowed; chains and
/// `_has` stay refused (the server narrows the matches, not what they join).
#[test]
#[rustfmt::skip]
fn searches_are_narrowed_where_the_server_supports_it() {
    let c = labels_cfg(r#""server_supports_security_not":true"#);
    let eth_scope: &'static str = Box::leak(format!("user/Observation.rs user/Observation.rs?_security={ETH}").into_boxed_str());
    let all: &[&str] = &[R, V, ETH, PART2];
    check_labels(&c, vec![
        lrow("user/Observation.rs", search("Observation", "code=x"), ALLOW, NARROWED).narrowed(all),
        lrow("user/Observation.rs", search("Observation", "_summary=count"), ALLOW, NARROWED).narrowed(all),
        lrow("user/*.rs", comp_search("p1", "Observation"), ALLOW, NARROWED).narrowed(all),
        lrow("user/*.rs", sys_search(&["Observation", "Condition"], "code=x"), ALLOW, NARROWED).narrowed(all),
        // cleared labels are not added; V clears R
        lrow("user/Observation.rs", search("Observation", "code=x"), ALLOW, NARROWED).cleared(&[V]).narrowed(&[ETH, PART2]),
        // a granular `_security` scope on the searched type clears ETH there
        lrow(eth_scope, search("Observation", "code=x"), ALLOW, NARROWED).narrowed(&[R, V, PART2]),
        // a `_security:not` the client sent is not repeated
        lrow("user/Observation.rs", search("Observation", &format!("_security:not={R}")), ALLOW, NARROWED).narrowed(&[V, ETH, PART2]),
        // reads, paging and operations are still filtered on the response
        lrow("user/Observation.rs", read("Observation", "o1"), ALLOW, FILTERED),
        lrow("user/*.rs", it(K::Paging, Level::System, None, None), ALLOW, FILTERED),
        lrow("user/*.rs", search("Patient", "_has:Observation:patient:code=1"), LABELS, NO_FILTER),
        lrow("user/*.rs", search("Observation", "subject:Patient.name=x"), LABELS, NO_FILTER),
        // break-glass: nothing added
        lrow("user/Observation.rs", search("Observation", "code=x"), ALLOW, NO_FILTER).purposes(&[BTG]).break_glass(),
    ]);
}

/// Writes that could add or remove labels need the relabel claim (or scope).
#[test]
#[rustfmt::skip]
fn writes_that_change_labels_need_permission() {
    let c = labels_cfg("");
    let keeps = labels_cfg(r#""update_keeps_labels":true"#);
    let plain = obs("Patient/p1");
    let json_patch = |path: &str| json!([{"op": "replace", "path": path, "value": "x"}]);
    let fhirpath_patch = |path: &str, name: &str| json!({"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "add"}, {"name": "path", "valueString": path}, {"name": "name", "valueString": name}, {"name": "value", "valueString": "x"}]}]});
    let rows = vec![
        lrow("user/*.cruds", create("Observation", Some(plain.clone())), ALLOW, NO_FILTER),
        lrow("user/*.cruds", create("Observation", Some(labelled("Observation", R))), LABELS, NO_FILTER),
        lrow("user/*.cruds", create("Observation", Some(labelled("Observation", R))), ALLOW, NO_FILTER).relabel(),
        // cleared to see R is not allowed to label with it
        lrow("user/*.cruds", create("Observation", Some(labelled("Observation", R))), LABELS, NO_FILTER).cleared(&[V, ETH, PART2]),
        lrow("user/*.cruds", create("Observation", None), LABELS, NO_FILTER),
        // updates: the server may drop stored labels unless the operator says it keeps them
        lrow("user/*.cruds", update("Observation", "o1", Some(plain.clone())), LABELS, NO_FILTER),
        lrow("user/*.cruds", update("Observation", "o1", Some(labelled("Observation", ETH))), LABELS, NO_FILTER),
        lrow("user/*.cruds", update("Observation", "o1", Some(labelled("Observation", ETH))), ALLOW, FILTERED).relabel(),
        // the answer to a patch is the stored resource: filtered
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), json_patch("/status")), ALLOW, FILTERED),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), json_patch("/meta/security/0")), LABELS, NO_FILTER),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), json_patch("/meta")), LABELS, NO_FILTER),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), json_patch("")), LABELS, NO_FILTER),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), json!([{"op": "move", "from": "/meta/security", "path": "/note"}])), LABELS, NO_FILTER),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), fhirpath_patch("Observation", "status")), ALLOW, FILTERED),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), fhirpath_patch("Observation.meta", "security")), LABELS, NO_FILTER),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), fhirpath_patch("Observation", "meta")), LABELS, NO_FILTER),
        lrow("user/*.cruds", with_doc(patch("Observation", "o1"), fhirpath_patch("Observation.meta", "security")), ALLOW, FILTERED).relabel(),
        lrow("user/*.cruds", patch("Observation", "o1"), LABELS, NO_FILTER),
        lrow("user/*.cruds", delete("Observation", "o1"), ALLOW, NO_FILTER),
        // in a transaction: entry by entry
        lrow("user/*.cruds", bundle(K::Transaction, vec![create("Observation", Some(plain.clone())), create("Observation", Some(labelled("Observation", ETH)))]), LABELS, NO_FILTER),
        lrow("user/*.cruds", bundle(K::Transaction, vec![create("Observation", Some(plain.clone()))]), ALLOW, NO_FILTER),
    ];
    check_labels(&c, rows);
    check_labels(&keeps, vec![
        lrow("user/*.cruds", update("Observation", "o1", Some(plain)), ALLOW, FILTERED),
        lrow("user/*.cruds", update("Observation", "o1", Some(labelled("Observation", ETH))), LABELS, NO_FILTER),
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
