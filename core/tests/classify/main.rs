//! Table-driven corpus for the FHIR R4 request classifier.
//!
//! Each [`Row`]: base path, method, path, headers, body, expected, where
//! `expected` is the exact [`summary`] of the interaction, or `!substring` of
//! the error message.

mod bundles;
mod endpoints;
mod needs_body;
mod paths_and_methods;
mod request_reading;
mod resources;
mod searches;

#[path = "../classify_common/mod.rs"]
mod classify_common;

use classify_common::{fhir_base, fhir_base_without_url, request, summary};
use fhir_smart_authz_core::fhir::{body_needed, classify, is_valid_id, resource_types};

/// One request and what the classifier makes of it.
struct Row<'a> {
    base: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a str>,
    expected: &'a str,
}

fn row<'a>(
    base: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: Option<&'a str>,
    expected: &'a str,
) -> Row<'a> {
    Row {
        base,
        method,
        path,
        headers,
        body,
        expected,
    }
}

/// One request's headers and whether the classifier needs its body.
struct NeedRow<'a> {
    base: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    needed: bool,
}

fn need_row<'a>(
    base: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    needed: bool,
) -> NeedRow<'a> {
    NeedRow {
        base,
        method,
        path,
        headers,
        needed,
    }
}

const NO: &[(&str, &str)] = &[];

const JSON: &[(&str, &str)] = &[("content-type", "application/fhir+json")];

const XML: &[(&str, &str)] = &[("content-type", "application/fhir+xml")];

const FORM: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencoded")];

const PATIENT_123: &str = r#"{"resourceType":"Patient","id":"123"}"#;

const PATIENT: &str = r#"{"resourceType":"Patient"}"#;

fn check(rows: &[Row<'_>]) {
    let mut failures = Vec::new();
    for (n, r) in rows.iter().enumerate() {
        let Row {
            base,
            method,
            path,
            headers,
            body,
            expected,
        } = r;
        let cfg = fhir_base(base);
        let req = request(method, path, headers, body.map(str::as_bytes));
        let got = classify(&cfg, &req);
        let ok = match (&got, expected.strip_prefix('!')) {
            (Ok(i), None) => summary(i) == *expected,
            (Err(e), Some(sub)) => e.message.contains(sub),
            _ => false,
        };
        if !ok {
            let got = match got {
                Ok(i) => summary(&i),
                Err(e) => format!("!{}", e.message),
            };
            failures.push(format!(
                "row {n}: {method} {path:?} (base {base:?})\n    expected: {expected}\n    got:      {got}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

const TX: &str = r#"{
  "resourceType": "Bundle",
  "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}},
    {"resource": {"resourceType": "Patient", "id": "123"}, "request": {"method": "PUT", "url": "Patient/123"}},
    {"request": {"method": "GET", "url": "Observation?patient=123&code=a,b"}},
    {"request": {"method": "DELETE", "url": "Observation/9"}},
    {"resource": {"resourceType": "Observation"}, "request": {"method": "POST", "url": "Observation", "ifNoneExist": "identifier=http://x|1"}},
    {"resource": {"resourceType": "Parameters"}, "request": {"method": "PATCH", "url": "Patient/123"}},
    {"request": {"method": "GET", "url": "https://ehr.example.org/fhir/Patient/123"}},
    {"request": {"method": "GET", "url": "Patient/123/_history/2"}},
    {"request": {"method": "GET", "url": "Patient/123/$everything"}},
    {"request": {"method": "HEAD", "url": "Patient/123/Condition"}},
    {"resource": {"resourceType": "Patient"}, "request": {"method": "PUT", "url": "Patient?identifier=a"}},
    {"request": {"method": "DELETE", "url": "Observation?code=x"}},
    {"request": {"method": "GET", "url": "metadata"}}
  ]
}"#;

const TX_EXPECTED: &str = "transaction system entries: \
[0 POST Patient => create type Patient res] \
[1 PUT Patient/123 => update instance Patient id=123 res] \
[2 GET Observation?patient=123&code=a,b => search type Observation q=patient=123&code=a;b] \
[3 DELETE Observation/9 => delete instance Observation id=9] \
[4 POST Observation => create type Observation cond q=identifier=http://x|1 res] \
[5 PATCH Patient/123 => patch instance Patient id=123 res] \
[6 GET https://ehr.example.org/fhir/Patient/123 => read instance Patient id=123] \
[7 GET Patient/123/_history/2 => vread instance Patient id=123 v=2] \
[8 GET Patient/123/$everything => operation instance Patient id=123 comp=Patient/123 op=$everything] \
[9 HEAD Patient/123/Condition => search type Condition comp=Patient/123 types=Condition] \
[10 PUT Patient?identifier=a => update type Patient cond q=identifier=a res] \
[11 DELETE Observation?code=x => delete type Observation cond q=code=x] \
[12 GET metadata => capabilities system]";

fn bundle(kind: &str, entries: &str) -> String {
    format!(r#"{{"resourceType":"Bundle","type":"{kind}","entry":[{entries}]}}"#)
}
