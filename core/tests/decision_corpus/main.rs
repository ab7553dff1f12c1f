//! Policy checks on interactions built by hand (independently of the
//! classifier) and decided through `policy::authorize`: what a corpus row
//! cannot say (exact obligations, narrowing flags, label filters, messages)
//! and the rows HTTP cannot express (`policy_only.rs`). The request→decision
//! rows themselves are the decision corpus, `tests/corpus/` (replayed by
//! `cli/tests/corpus.rs` and in Envoy by `tests/e2e/test_corpus.py`). One
//! file per theme; the helpers and the row type are here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bundles_and_paging;
mod certified;
mod labels;
mod narrowing;
mod operations;
mod other_types;
mod patient_reads;
mod patient_search;
mod policy_only;
mod public;
mod safety;
mod scopes;
mod write_hardening;
mod writes;

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Obligation, Reason};
use fhir_smart_authz_core::fhir::{
    BundleEntry, Compartment, Interaction, InteractionKind as K, Level, SearchParam,
};
use fhir_smart_authz_core::policy::{self, AuthContext};
use serde_json::{json, Value};

const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";

/// `policy::authorize` with the settings of `config`.
fn authorize(config: &Config, it: Interaction, ctx: Option<&AuthContext>) -> Decision {
    policy::authorize(&config.policy, &config.base, it, ctx)
}

fn cfg() -> Config {
    Config::from_json(br#"{"fhir_base_url":"https://ehr.example.org/fhir"}"#).unwrap()
}

/// `name[:modifier][.chain]=v1,v2&...` (test-only parser; values split on `,`).
fn params(q: &str) -> Vec<SearchParam> {
    if q.is_empty() {
        return Vec::new();
    }
    q.split('&')
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap();
            let (k, chain) = match k.split_once('.') {
                Some((a, b)) => (a, Some(b.to_string())),
                None => (k, None),
            };
            // As the classifier splits names: `_has:` keeps the rest as its modifier.
            let (k, chain) = match part.split_once('=') {
                Some((name, _)) if name.starts_with("_has:") => (name, None),
                _ => (k, chain),
            };
            let (name, modifier) = match k.split_once(':') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (k.to_string(), None),
            };
            SearchParam {
                name,
                modifier,
                chain,
                values: v.split(',').map(String::from).collect(),
            }
        })
        .collect()
}

fn it(kind: K, level: Level, t: Option<&str>, id: Option<&str>) -> Interaction {
    let mut i = Interaction::new(kind, level);
    i.resource_type = t.map(String::from);
    i.id = id.map(String::from);
    i
}
fn read(t: &str, id: &str) -> Interaction {
    it(K::Read, Level::Instance, Some(t), Some(id))
}
fn search(t: &str, q: &str) -> Interaction {
    let mut i = it(K::Search, Level::Type, Some(t), None);
    i.search = params(q);
    i
}
fn comp_search(pid: &str, t: &str) -> Interaction {
    let mut i = it(
        K::Search,
        Level::Type,
        if t == "*" { None } else { Some(t) },
        None,
    );
    i.compartment = Some(Compartment {
        resource_type: "Patient".into(),
        id: pid.into(),
    });
    i
}
fn create(t: &str, body: Option<Value>) -> Interaction {
    let mut i = it(K::Create, Level::Type, Some(t), None);
    i.resource = body;
    i
}
fn cond_create(t: &str, body: Value, q: &str) -> Interaction {
    let mut i = create(t, Some(body));
    i.conditional = true;
    i.search = params(q);
    i
}
fn update(t: &str, id: &str, body: Option<Value>) -> Interaction {
    let mut i = it(K::Update, Level::Instance, Some(t), Some(id));
    i.resource = body;
    i
}
fn cond_update(t: &str, q: &str, body: Value) -> Interaction {
    let mut i = it(K::Update, Level::Type, Some(t), None);
    i.conditional = true;
    i.search = params(q);
    i.resource = Some(body);
    i
}
fn patch(t: &str, id: &str) -> Interaction {
    it(K::Patch, Level::Instance, Some(t), Some(id))
}
/// The interaction with this body (a resource, or a patch document).
fn with_doc(mut i: Interaction, doc: Value) -> Interaction {
    i.resource = Some(doc);
    i
}
fn delete(t: &str, id: &str) -> Interaction {
    it(K::Delete, Level::Instance, Some(t), Some(id))
}
fn cond_delete(t: &str, q: &str) -> Interaction {
    let mut i = it(K::Delete, Level::Type, Some(t), None);
    i.conditional = true;
    i.search = params(q);
    i
}
fn op(level: Level, t: Option<&str>, id: Option<&str>, name: &str, q: &str) -> Interaction {
    let mut i = it(K::Operation, level, t, id);
    i.operation = Some(name.into());
    i.search = params(q);
    i
}
fn bundle(kind: K, entries: Vec<Interaction>) -> Interaction {
    let mut b = it(kind, Level::System, None, None);
    b.entries = entries
        .into_iter()
        .enumerate()
        .map(|(index, i)| BundleEntry {
            index,
            method: "GET".into(),
            url: "x".into(),
            full_url: None,
            interaction: Box::new(i),
        })
        .collect();
    b
}
fn obs(pref: &str) -> Value {
    json!({"resourceType":"Observation","subject":{"reference":pref},"status":"final","code":{"text":"x"}})
}
/// One row: the token's scopes (`<none>`: no token) and patient, the
/// interaction, the expected outcome and the `required_scopes` of a denial.
struct Row {
    scopes: &'static str,
    patient: Option<&'static str>,
    req: Interaction,
    expect: Expect,
    required: &'static [&'static str],
}

fn row(
    scopes: &'static str,
    patient: Option<&'static str>,
    req: Interaction,
    expect: Expect,
    required: &'static [&'static str],
) -> Row {
    Row {
        scopes,
        patient,
        req,
        expect,
        required,
    }
}

/// The expected outcome of a row.
#[derive(Debug, Clone, Copy)]
struct Expect {
    allow: bool,
    status: u16,
    reason: Reason,
}

const fn expect(allow: bool, status: u16, reason: Reason) -> Expect {
    Expect {
        allow,
        status,
        reason,
    }
}

const ALLOW: Expect = expect(true, 200, Reason::Allowed);
const INSUFF: Expect = expect(false, 403, Reason::InsufficientScope);
const COMPART: Expect = expect(false, 403, Reason::PatientCompartmentViolation);
const BUNDLE: Expect = expect(false, 403, Reason::BundleEntryDenied);

fn decide_row(config: &Config, r: &Row) -> Decision {
    if r.scopes == "<none>" {
        authorize(config, r.req.clone(), None)
    } else {
        let ctx = AuthContext::from_scopes(r.scopes, r.patient);
        authorize(config, r.req.clone(), Some(&ctx))
    }
}

/// The rows against the default configuration: outcome and the
/// `required_scopes` of a denial.
fn check(rows: Vec<Row>) {
    let config = cfg();
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let d = decide_row(&config, r);
        let e = r.expect;
        let ok = d.is_allow() == e.allow
            && d.status == e.status
            && d.reason == e.reason
            // what a refusal would have needed; a malformed request needs no scope
            && (e.allow || e.status == 400 || d.required_scopes == r.required);
        if !ok {
            failures.push(format!(
                "row {i}: scopes={:?} patient={:?} {:?} {:?}\n   want allow={} {} {:?} {:?}\n   got  allow={} {} {:?} {:?} — {}",
                r.scopes, r.patient, r.req.kind, r.req.resource_type,
                e.allow, e.status, e.reason, r.required,
                d.is_allow(), d.status, d.reason, d.required_scopes, d.message
            ));
        }
    }
    assert_rows(&failures, rows.len());
}

/// Every row passed, or the failed ones listed.
fn assert_rows(failures: &[String], rows: usize) {
    assert!(
        failures.is_empty(),
        "{} of {rows} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
