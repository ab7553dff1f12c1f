//! Hardening, request reading (issue 8), end to end through
//! `engine::decide` from raw HTTP requests: each row is a request, the
//! token's claims, and the exact status, reason and a substring of the
//! message. The classes: `POST _search` form bodies, POST operations decided
//! on their `Parameters` body, paging in every form (and the page's response
//! checks), headers and parameters a server trusts, the Bulk Data status
//! endpoint, and the caps that bound what one request can cost.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Obligation;
use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::{
    RequestParts, MAX_BUNDLE_ENTRIES, MAX_FORM_BYTES, MAX_PARAMETERS,
};
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
const JSON: &[(&str, &str)] = &[("content-type", "application/fhir+json")];
const NO: &[(&str, &str)] = &[];

#[test]
#[rustfmt::skip]
fn post_search_forms() {
    let many = format!("{}patient=123", "_count=10&".repeat(MAX_PARAMETERS));
    // The pin in a form past Tomcat's maxPostSize is dropped by the server,
    // which then searches every patient: forms are bounded far below it.
    let pinned_at_limit = format!("patient=123&code={}", "x".repeat(MAX_FORM_BYTES - "patient=123&code=".len()));
    let pinned_over = format!("{pinned_at_limit}x");
    let big_config = config(r#","max_body_bytes":4194304"#);
    run(&big_config, &[
        row("POST", "/fhir/Observation/_search", FORM, Some(&pinned_at_limit), tp(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/_search", FORM, Some(&pinned_over), tp(), 400, "invalid_request", "servers silently ignore a form past their own limit (Tomcat's maxPostSize)"),
    ]);
    run(&config(""), &[
        row("POST", "/fhir/Observation/_search", FORM, Some("patient=123"), tp(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "application/x-www-form-urlencoded; charset=UTF-8")], Some("patient=123"), tp(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "application/x-www-form-urlencoded"), ("content-encoding", "gzip")], Some("patient=123"), tp(), 400, "invalid_request", "send the body uncompressed"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "application/x-www-form-urlencoded"), ("content-encoding", "identity")], Some("patient=123"), tp(), 400, "invalid_request", "(even `identity`)"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "Application/X-WWW-Form-Urlencoded")], Some("patient=123"), tp(), 400, "invalid_request", "(lower case"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "application/x-www-form-urlencoded; charset=ISO-8859-1")], Some("patient=123"), tp(), 400, "invalid_request", "(allowed: `charset=utf-8`"),
        row("POST", "/fhir/Observation/_search", FORM, Some(&many), tp(), 400, "invalid_request", "more than 100 parameters"),
        row("POST", "/fhir/Observation/_search?patient=123", NO, Some(""), tp(), 400, "invalid_request", "even when empty (or use GET)"),
        row("POST", "/fhir/Observation/_search?patient=123", FORM, Some(""), tp(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/_search?patient=123", FORM, Some("patient=456"), tp(), 400, "invalid_request", "the search pins several patients"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "application/json")], Some(r#"[["patient","456"]]"#), claims("user/Observation.rs", None), 400, "invalid_request", "POST _search needs a form"),
        row("POST", "/fhir/Observation/_search", FORM, Some("pat%69ent=123"), tp(), 200, "allowed", "allowed"),
        // `PATIENT` is not the pin (names are case-sensitive): narrowed, the pin goes into the URL.
        row("POST", "/fhir/Observation/_search", FORM, Some("PATIENT=123"), tp(), 200, "allowed", "allowed"),
        row("GET", format!("/fhir/Observation?{many}"), NO, None, claims("user/Observation.rs", None), 400, "invalid_request", "more than 100 parameters"),
    ]);
}

#[test]
#[rustfmt::skip]
fn post_operations() {
    let tb = || claims("system/Observation.rs", None);
    let tba = || claims("system/*.rs", None);
    let types = |t: &str| format!(r#"{{"resourceType":"Parameters","parameter":[{{"name":"_type","valueString":"{t}"}}]}}"#);
    let lastn = |p: &str| format!(r#"{{"resourceType":"Parameters","parameter":[{{"name":"patient","valueReference":{{"reference":"{p}"}}}}]}}"#);
    let mdm = r#"{"resourceType":"Parameters","parameter":[{"name":"_mdm","valueBoolean":true}]}"#;
    let async_ = &[("content-type", "application/fhir+json"), ("prefer", "respond-async")];
    run(&config(""), &[
        row("POST", "/fhir/$export", async_, Some(&types("Observation")), tb(), 200, "allowed", "allowed"),
        row("POST", "/fhir/$export?_type=Observation", NO, Some(""), tb(), 400, "invalid_request", "the URL parameter `_type` is refused: send them in a FHIR Parameters resource"),
        row("POST", "/fhir/$export", NO, Some(""), tb(), 403, "insufficient_scope", "send `_type=Observation` in the Parameters body"),
        row("POST", "/fhir/$export", JSON, Some(""), tba(), 200, "allowed", "allowed"),
        row("POST", "/fhir/$export", JSON, Some(&types("Patient")), tb(), 403, "insufficient_scope", "on Patient"),
        row("POST", "/fhir/$export", JSON, Some(&types("Observation,Patient")), tb(), 403, "insufficient_scope", "on Patient"),
        row("POST", "/fhir/$export", FORM, Some("_type=Observation"), tb(), 400, "invalid_request", "must be JSON"),
        row("POST", "/fhir/$export", JSON, Some(r#"{"resourceType":"Parameters","parameter":[{"name":"_Type","valueString":"Observation"}]}"#), tb(), 403, "operation_not_permitted", "$export parameter `_Type` is refused"),
        row("GET", "/fhir/$export?_type=Observation", NO, None, tb(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/$lastn?patient=123", NO, Some(""), tp(), 400, "invalid_request", "the URL parameter `patient` is refused"),
        row("POST", "/fhir/Observation/$lastn", JSON, Some(&lastn("Patient/456")), tp(), 403, "patient_compartment_violation", "operation $lastn"),
        row("POST", "/fhir/Observation/$lastn", JSON, Some(&lastn("Patient/123")), tp(), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/$lastn", NO, Some(""), tp(), 403, "patient_compartment_violation", "operation $lastn"),
        row("POST", "/fhir/Patient/123/$everything?_mdm=true", NO, Some(""), claims("patient/*.rs", Some("123")), 400, "invalid_request", "`_mdm` is refused"),
        row("GET", "/fhir/Patient/123/$everything?_mdm=true", NO, None, claims("patient/*.rs", Some("123")), 403, "operation_not_permitted", "`_mdm` reaches other patients' linked records"),
        row("POST", "/fhir/Patient/123/$everything", JSON, Some(mdm), claims("patient/*.rs", Some("123")), 403, "operation_not_permitted", "is refused under patient/ scopes"),
        row("POST", "/fhir/Patient/123/$everything", JSON, Some(mdm), claims("user/*.rs", None), 200, "allowed", "allowed"),
        row("POST", "/fhir/Patient/123/$everything", NO, Some(""), claims("patient/*.rs", Some("123")), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/$validate?profile=x", JSON, Some(r#"{"resourceType":"Observation"}"#), claims("user/Observation.c", None), 400, "invalid_request", "the URL parameter `profile` is refused"),
        row("POST", "/fhir/Observation/$validate", JSON, Some(r#"{"resourceType":"Observation","status":"final","code":{"text":"x"}}"#), claims("user/Observation.c", None), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/$validate", JSON, Some(r#"{"resourceType":"Observation","subject":{"reference":"Patient/123"}}"#), claims("patient/Observation.c", Some("123")), 200, "allowed", "allowed"),
        row("POST", "/fhir/Observation/$validate", JSON, Some(r#"{"resourceType":"Observation","subject":{"reference":"Patient/456"}}"#), claims("patient/Observation.c", Some("123")), 403, "patient_compartment_violation", ""),
        // A search is answered synchronously (rewrite_engine.rs: the preference dropped).
        row("GET", "/fhir/Observation?patient=123", &[("prefer", "respond-async")], None, tp(), 200, "allowed", "allowed"),
        row("GET", "/fhir/Observation/o1", &[("prefer", "respond-async=true")], None, tp(), 400, "invalid_request", "only $export, its status and searches take it"),
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
    let tu = || claims("user/Observation.rs", None);
    let batch = r#"{"resourceType":"Bundle","type":"batch"}"#;
    run(&config(""), &[
        row("GET", "/fhir?_getpages=ID", NO, None, tu(), 200, "allowed", "allowed"),
        row("GET", "/fhir/?_getpages=ID", NO, None, tu(), 200, "allowed", "allowed"),
        row("GET", "/fhir/_search?_getpages=ID", NO, None, tu(), 200, "allowed", "allowed"),
        row("POST", "/fhir/_search", FORM, Some("_getpages=ID"), tu(), 200, "allowed", "allowed"),
        row("POST", "/fhir/_search?_getpages=ID", NO, Some(""), tu(), 400, "invalid_request", "application/x-www-form-urlencoded"),
        row("POST", "/fhir?_getpages=ID", JSON, Some(batch), claims("openid", None), 400, "invalid_request", "POST [base]?_getpages= is refused"),
        row("POST", "/fhir", FORM, Some("_getpages=ID"), tu(), 400, "invalid_request", "unsupported Content-Type"),
        row("GET", "/fhir?_getpages=&_type=Observation", NO, None, tu(), 400, "invalid_request", "is blank"),
        row("GET", "/fhir/Observation?_getpages=ID", NO, None, tp(), 400, "invalid_request", "`_getpages` is refused on [base]/Observation"),
        row("GET", "/fhir?_getpages=ID&_getpages=ID2", NO, None, tu(), 400, "invalid_request", "must appear once"),
        row("GET", "/fhir?_getpages=ID&_include=Observation:subject", NO, None, tu(), 400, "invalid_request", "`_include` is refused"),
        row("GET", "/fhir?_getpages=ID&_getpagesoffset=20&_count=20&_bundletype=searchset&_pretty=true", NO, None, tu(), 200, "allowed", "allowed"),
        row("GET", "/fhir?_getpages=ID", NO, None, tp(), 200, "allowed", "allowed"),
        row("GET", "/fhir?_getpages=ID", NO, None, claims("openid fhirUser", None), 403, "insufficient_scope", "paging needs"),
    ]);
    run(&config(r#","policy":{"patient_paging":"deny"}"#), &[
        row("GET", "/fhir?_getpages=ID", NO, None, tp(), 403, "patient_compartment_violation", "policy.patient_paging = deny"),
        row("GET", "/fhir/_search?_getpages=ID", NO, None, tp(), 403, "patient_compartment_violation", "policy.patient_paging = deny"),
        row("POST", "/fhir/_search", FORM, Some("_getpages=ID"), tp(), 403, "patient_compartment_violation", "policy.patient_paging = deny"),
        row("GET", "/fhir?_getpages=ID", NO, None, tu(), 200, "allowed", "allowed"),
    ]);
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
#[rustfmt::skip]
fn headers_and_parameters_a_server_trusts() {
    let p = r#"{"resourceType":"Patient","id":"123"}"#;
    let pd = || claims("patient/Patient.rud", Some("123"));
    run(&config(""), &[
        row("PUT", "/fhir/Patient/123", &[("content-type", "application/fhir+json"), ("content-location", "Patient/456")], Some(p), pd(), 400, "invalid_request", "HAPI FHIR takes an update's target from it"),
        row("DELETE", "/fhir/Patient/123?_cascade=delete", NO, None, pd(), 400, "invalid_request", "`_cascade` is refused"),
        row("DELETE", "/fhir/Patient/123", &[("x-cascade", "delete")], None, pd(), 400, "invalid_request", "X-Cascade is refused"),
        row("DELETE", "/fhir/Patient/123", &[("x-cascade", "delete")], None, claims("user/*.cruds", None), 400, "invalid_request", "X-Cascade is refused"),
        row("DELETE", "/fhir/Observation?code=x&_expunge=true", NO, None, claims("user/Observation.ds", None), 400, "invalid_request", "`_expunge` is refused"),
        row("DELETE", "/fhir/Patient/123", NO, None, pd(), 200, "allowed", "allowed"),
        row("PUT", "/fhir/Patient/123", &[("content-type", "application/fhir+json"), ("x-rewrite-history", "true")], Some(p), pd(), 400, "invalid_request", "X-Rewrite-History is refused"),
        row("POST", "/fhir/Observation", &[("content-type", "application/fhir+json; fhirVersion=4.0")], Some(r#"{"resourceType":"Observation","subject":{"reference":"Patient/123"}}"#), claims("patient/Observation.c", Some("123")), 200, "allowed", "allowed"),
    ]);
}

/// Header values the host could not hand over as UTF-8 arrive with U+FFFD
/// (`utf8_or_lossy` in the shell): the server may read the original bytes
/// otherwise, so any such header is refused, whichever it is.
#[test]
#[rustfmt::skip]
fn header_values_that_are_not_text_are_refused() {
    let pd = || claims("patient/Patient.rs", Some("123"));
    run(&config(""), &[
        row("GET", "/fhir/Patient/123", &[("x-note", "caf\u{FFFD}")], None, pd(), 400, "invalid_request", "the `x-note` header's value is not plain text (bytes that are not UTF-8, or U+FFFD): send header values as ASCII"),
        row("GET", "/fhir/Patient/123", &[("accept", "\u{FFFD}")], None, pd(), 400, "invalid_request", "the `accept` header's value is not plain text (bytes that are not UTF-8, or U+FFFD): send header values as ASCII"),
        row("GET", "/fhir/Patient/123", &[("user-agent", "\u{FFFD}\u{FFFD}")], None, claims("user/*.rs", None), 400, "invalid_request", "the `user-agent` header's value is not plain text (bytes that are not UTF-8, or U+FFFD): send header values as ASCII"),
        row("POST", "/fhir/Observation/_search", &[("content-type", "application/x-www-form-urlencoded\u{FFFD}")], Some("patient=123"), claims("patient/Observation.rs", Some("123")), 400, "invalid_request", "the `content-type` header's value is not plain text (bytes that are not UTF-8, or U+FFFD): send header values as ASCII"),
        row("GET", "/fhir/Patient/123", &[("x-note", "café")], None, pd(), 200, "allowed", "allowed"),
    ]);
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
