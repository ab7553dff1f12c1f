//! Hardening, request reading (issue 8), end to end through
//! `engine::decide_claims` from raw HTTP requests: what a decision corpus row
//! cannot hold (a 4 MiB form, the Bulk Data job URLs the filter's registry
//! decides, a page's response check, the caps that bound what one request
//! can cost). The request reading rows themselves (`POST _search` forms, POST
//! operations, paging forms, headers and parameters a server trusts, header
//! values that are not text) are in `tests/corpus/default/request_reading.jsonl`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Obligation;
use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::{RequestParts, MAX_BUNDLE_ENTRIES, MAX_FORM_BYTES};
use fhir_smart_authz_core::scope::MAX_SCOPES;
use serde_json::{json, Value};

/// One request and the expected decision.
struct Row {
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Option<String>,
    claims: Option<Value>,
    status: u16,
    reason: &'static str,
    message: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn row(
    method: &'static str,
    path: impl Into<String>,
    headers: &[(&'static str, &'static str)],
    body: Option<&str>,
    claims: Option<Value>,
    status: u16,
    reason: &'static str,
    message: &'static str,
) -> Row {
    Row {
        method,
        path: path.into(),
        headers: headers.to_vec(),
        body: body.map(str::to_string),
        claims,
        status,
        reason,
        message,
    }
}

fn config(extra: &str) -> Config {
    let json = format!(r#"{{"fhir_base_url":"https://ehr.example.org/fhir"{extra}}}"#);
    Config::from_json(json.as_bytes()).unwrap()
}

fn claims(scope: &str, patient: Option<&str>) -> Option<Value> {
    let mut c = json!({"scope": scope, "sub": "u1", "client_id": "app"});
    if let Some(p) = patient {
        c["patient"] = json!(p);
    }
    Some(c)
}

/// `patient/Observation.rs` for patient 123.
fn tp() -> Option<Value> {
    claims("launch/patient patient/Observation.rs", Some("123"))
}

fn run(config: &Config, rows: &[Row]) {
    let mut failures = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let req = RequestParts {
            method: r.method,
            path: &r.path,
            headers: r
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: r.body.as_deref().map(str::as_bytes),
        };
        let d = decide_claims(config, &req, r.claims.as_ref());
        if d.status != r.status || d.reason.as_str() != r.reason || !d.message.contains(r.message) {
            failures.push(format!(
                "row {i} {} {}: want {} {} {:?}\n    got {} {} {:?}",
                r.method,
                r.path.chars().take(100).collect::<String>(),
                r.status,
                r.reason,
                r.message,
                d.status,
                d.reason.as_str(),
                d.message
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

const FORM: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencoded")];
const NO: &[(&str, &str)] = &[];

/// A form at the size limit keeps its pin; past it, refused: the pin in a
/// form past Tomcat's maxPostSize is dropped by the server, which then
/// searches every patient, so forms are bounded far below it. (A 4 MiB
/// body limit: the other form rows are in the corpus, tests/corpus/.)
#[test]
#[rustfmt::skip]
fn post_search_forms_at_the_size_limit() {
    let pinned_at_limit = format!("patient=123&code={}", "x".repeat(MAX_FORM_BYTES - "patient=123&code=".len()));
    let pinned_over = format!("{pinned_at_limit}x");
    let big_config = config(r#","max_body_bytes":4194304"#);
    run(&big_config, &[
        row("POST", "/fhir/Observation/_search", FORM, Some(&pinned_at_limit), tp(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/_search", FORM, Some(&pinned_over), tp(), 400, "invalid_request", "servers silently ignore a form past their own limit (Tomcat's maxPostSize)"),
    ]);
}

#[test]
#[rustfmt::skip]
fn bulk_data_status() {
    // `$export-poll-status` is a job URL (`bulk.status_paths`): the engine
    // lets any token on to the job registry, which the shell asks next
    // (`bulk::settle`: core/src/bulk/tests.rs); no token is refused here.
    run(&config(""), &[
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("system/Observation.rs", None), 200, "allowed", "allowed"),
        row("DELETE", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("patient/*.rs", Some("123")), 200, "allowed", "allowed"),
        row("GET", "/fhir/bulk-status/j1", NO, None, claims("user/*.rs", None), 200, "allowed", "allowed"),
        row("GET", "/fhir/bulk-files/j1/Patient.ndjson", NO, None, claims("system/*.rs", None), 200, "allowed", "allowed"),
        row("PUT", "/fhir/bulk-status/j1", NO, None, claims("system/*.rs", None), 400, "invalid_request", "poll with GET, cancel with DELETE"),
        row("GET", "/fhir/bulk-status/j1?x=%41", NO, None, claims("system/*.rs", None), 400, "invalid_request", "exactly as the server wrote it"),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, None, 401, "missing_token", ""),
    ]);
    // Taken out of `bulk.status_paths`, HAPI's status operation is decided by
    // the operations table (a plain system/ scope with `rs` on some type).
    let hapi_off = r#","bulk":{"status_paths":["bulk-status"]}"#;
    run(&config(hapi_off), &[
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("system/Observation.rs", None), 200, "allowed", "allowed"),
        row("DELETE", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("system/Observation.rs", None), 200, "allowed", "allowed"),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("system/*.read", None), 200, "allowed", "allowed"),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("system/Observation.r", None), 403, "insufficient_scope", "(authorized by system/ scopes only) needs a scope with `rs` on some type"),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("user/*.rs", None), 403, "insufficient_scope", "needs a scope with `rs` on some type"),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("patient/*.rs", Some("123")), 403, "insufficient_scope", "needs a scope with `rs` on some type"),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, claims("system/Observation.rs?category=x", None), 403, "insufficient_scope", ""),
        row("GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, None, 401, "missing_token", ""),
    ]);
}

#[test]
#[rustfmt::skip]
fn paging_forms() {
    // Under user/ scopes the page itself is checked: every entry's type.
    let req = RequestParts { method: "GET", path: "/fhir?_getpages=ID", headers: vec![].into(), body: None };
    let d = decide_claims(&config(""), &req, claims("user/Patient.rs", None).as_ref());
    assert_eq!(d.obligations, vec![Obligation::CheckResponseTypes { search: vec!["Patient".into()], read: vec!["Patient".into()] }]);
    let page = json!({"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"o1"},"search":{"mode":"match"}}]});
    let cfg = config("");
    let why = fhir_smart_authz_core::policy::check_response(&cfg.policy, None, &d.obligations[0], &page).unwrap_err();
    assert_eq!(why, "the page carries Observation/o1 but the token has no scope with `s` on Observation");
}

#[test]
fn cost_is_bounded() {
    let cfg = config("");
    let granular: Vec<String> = (0..MAX_SCOPES)
        .map(|i| format!("user/Observation.rs?code=http://loinc.org|{i:05}"))
        .collect();
    let over = format!("{} user/Patient.r", granular.join(" "));
    let entries = vec![
        r#"{"request":{"method":"GET","url":"Observation?code=http://loinc.org|00001"}}"#;
        MAX_BUNDLE_ENTRIES
    ];
    let body = format!(
        r#"{{"resourceType":"Bundle","type":"batch","entry":[{}]}}"#,
        entries.join(",")
    );
    fn req(body: &str) -> RequestParts<'_> {
        RequestParts {
            method: "POST",
            path: "/fhir",
            headers: vec![("content-type".into(), "application/fhir+json".into())].into(),
            body: Some(body.as_bytes()),
        }
    }
    // At both caps the request is decided (every entry meets a granular scope).
    let body_owned = body;
    let d = decide_claims(
        &cfg,
        &req(&body_owned),
        Some(&json!({"scope": granular.join(" ")})),
    );
    assert_eq!(
        (d.status, d.reason.as_str()),
        (200, "allowed"),
        "{}",
        d.message
    );
    // One scope more: refused before any entry is looked at.
    let d = decide_claims(&cfg, &req(&body_owned), Some(&json!({"scope": over})));
    assert_eq!((d.status, d.reason.as_str()), (403, "unsupported_claims"));
    assert!(
        d.message.contains("carries 257 scopes, more than 256"),
        "{}",
        d.message
    );
    let as_array: Vec<&str> = over.split(' ').collect();
    let d = decide_claims(&cfg, &req(&body_owned), Some(&json!({"scope": as_array})));
    assert_eq!(d.reason.as_str(), "unsupported_claims");
    // Duplicates count: a token repeating one scope is refused the same way.
    let d = decide_claims(
        &cfg,
        &req(&body_owned),
        Some(&json!({"scope": vec!["user/*.rs"; MAX_SCOPES + 1].join(" ")})),
    );
    assert_eq!(d.reason.as_str(), "unsupported_claims");
    // One entry more: refused.
    let more = format!(
        r#"{{"resourceType":"Bundle","type":"batch","entry":[{},{}]}}"#,
        entries.join(","),
        entries[0]
    );
    let d = decide_claims(&cfg, &req(&more), Some(&json!({"scope": "user/*.rs"})));
    assert_eq!((d.status, d.reason.as_str()), (400, "invalid_request"));
    assert!(
        d.message.contains("more than 1000: split it"),
        "{}",
        d.message
    );
}
