//! Hardening, request reading (issue 8): what this gateway parses must be
//! what the FHIR server parses. Form bodies of `POST _search`, POST
//! operations decided on their `Parameters` body, paging in every form, the
//! headers and parameters a server trusts, and the caps on parameters and
//! Bundle entries.

use super::*;
use fhir_smart_authz_core::fhir::{MAX_BUNDLE_ENTRIES, MAX_FORM_BYTES, MAX_PARAMETERS};

const FORM_UTF8: &[(&str, &str)] = &[(
    "content-type",
    "application/x-www-form-urlencoded; charset=UTF-8",
)];
const FORM_UTF8_TIGHT: &[(&str, &str)] = &[(
    "content-type",
    "application/x-www-form-urlencoded;charset=utf-8",
)];
const FORM_GZIP: &[(&str, &str)] = &[
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-encoding", "gzip"),
];
const FORM_IDENTITY: &[(&str, &str)] = &[
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-encoding", "identity"),
];
const FORM_CASE: &[(&str, &str)] = &[("content-type", "Application/X-WWW-Form-Urlencoded")];
const FORM_LATIN1: &[(&str, &str)] = &[(
    "content-type",
    "application/x-www-form-urlencoded; charset=ISO-8859-1",
)];
const FORM_UTF16: &[(&str, &str)] = &[(
    "content-type",
    "application/x-www-form-urlencoded; charset=utf-16",
)];
const FORM_X: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencodedx")];
const FORM_AND_JSON: &[(&str, &str)] = &[(
    "content-type",
    "application/x-www-form-urlencoded, application/json",
)];
const TWO_CT: &[(&str, &str)] = &[
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-type", "application/json"),
];
const PLAIN_JSON: &[(&str, &str)] = &[("content-type", "application/json")];
const MULTIPART: &[(&str, &str)] = &[("content-type", "multipart/form-data; boundary=x")];

fn params(n: usize, tail: &str) -> String {
    let mut s = "_count=10&".repeat(n);
    s.push_str(tail);
    s
}

#[test]
#[rustfmt::skip]
fn post_search_form_bodies() {
    let body_101 = params(MAX_PARAMETERS, "patient=123");
    let query_101 = format!("/fhir/Observation/_search?{}", params(MAX_PARAMETERS, "patient=123"));
    // A pin in a form the server ignores (past Tomcat's maxPostSize) would
    // let it run the search unpinned: forms are bounded far below that.
    let form_at_limit = format!("patient=123&code={}", "x".repeat(MAX_FORM_BYTES - "patient=123&code=".len()));
    let form_over = format!("{form_at_limit}x");
    let at_limit_summary = format!("search type Observation q={form_at_limit}");
    let over_message = format!("!the _search form body has {} bytes, more than {MAX_FORM_BYTES}: servers silently ignore a form past their own limit", MAX_FORM_BYTES + 1);
    check(&[
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some(&form_at_limit), &at_limit_summary),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some(&form_over), &over_message),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some("patient=123"), "search type Observation q=patient=123"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_UTF8, Some("patient=123"), "search type Observation q=patient=123"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_UTF8_TIGHT, Some("patient=123&code=x"), "search type Observation q=patient=123&code=x"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_GZIP, Some("patient=123"), "!Content-Encoding is refused (even `identity`)"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_IDENTITY, Some("patient=123"), "!Content-Encoding is refused (even `identity`)"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_CASE, Some("patient=123"), "!the Content-Type `Application/X-WWW-Form-Urlencoded` is not read as a form by every server"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_LATIN1, Some("patient=123"), "!the Content-Type parameter `charset=ISO-8859-1` is refused"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_UTF16, Some("patient=123"), "!`charset=utf-16` is refused"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_X, Some("patient=123"), "!POST _search needs a form, not `application/x-www-form-urlencodedx`"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM_AND_JSON, Some("patient=123"), "!lists several media types"),
        row("/fhir", "POST", "/fhir/Observation/_search", TWO_CT, Some("patient=123"), "!more than one Content-Type header"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some(&body_101), "!more than 100 parameters (query and body together)"),
        row("/fhir", "POST", &query_101, PLAIN_JSON, Some(""), "!more than 100 parameters"),
        row("/fhir", "POST", "/fhir/Observation/_search?patient=123", NO, Some(""), "!POST _search needs a form, even when empty (or use GET)"),
        row("/fhir", "POST", "/fhir/Observation/_search?patient=123", FORM, Some(""), "search type Observation q=patient=123"),
        row("/fhir", "POST", "/fhir/Observation/_search?patient=123", FORM, Some("subject=Patient/123"), "search type Observation q=patient=123&subject=Patient/123"),
        row("/fhir", "POST", "/fhir/Observation/_search", PLAIN_JSON, Some(r#"[["patient","456"]]"#), "!POST _search needs a form, not `application/json`"),
        row("/fhir", "POST", "/fhir/Observation/_search", MULTIPART, Some("--x"), "!POST _search needs a form, not `multipart/form-data; boundary=x`"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some("pat%69ent=123"), "search type Observation q=patient=123"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some("patient=12%zz"), "!malformed percent escape"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some("patient=%C0%AE"), "!the form body decodes to invalid UTF-8"),
        row("/fhir", "POST", "/fhir/Observation/_search?a=1;patient=456", FORM, Some("patient=123"), "!raw `;`"),
        row("/fhir", "POST", "/fhir/_search", NO, Some("_type=Observation"), "!POST _search needs a form, even when empty"),
        row("/fhir", "POST", "/fhir/Patient/123/Observation/_search", NO, Some(""), "!POST _search needs a form, even when empty"),
        row("/fhir", "POST", "/fhir/Patient/123/_search", FORM_CASE, Some(""), "!is not read as a form"),
        row("/fhir", "POST", "/fhir/Patient/123/Observation/_search", FORM, Some("code=x"), "search type Observation comp=Patient/123 types=Observation q=code=x"),
    ]);
}

#[test]
#[rustfmt::skip]
fn parameter_count_is_bounded_on_every_request() {
    let at_limit = format!("/fhir/Observation?{}", params(MAX_PARAMETERS - 1, "patient=123"));
    let over = format!("/fhir/Observation?{}", params(MAX_PARAMETERS, "patient=123"));
    let blanks = format!("/fhir/Observation?{}patient=123", "&".repeat(500));
    let entry_over = bundle("batch", &format!(r#"{{"request":{{"method":"GET","url":"Observation?{}"}}}}"#, params(MAX_PARAMETERS, "patient=123")));
    let criteria_over = params(MAX_PARAMETERS, "identifier=x");
    let if_none_exist: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", &criteria_over)];
    check(&[
        row("/fhir", "GET", &over, NO, None, "!more than 100 parameters"),
        row("/fhir", "GET", &blanks, NO, None, "search type Observation q=patient=123"),
        row("/fhir", "POST", "/fhir", JSON, Some(&entry_over), "!Bundle.entry[0]: more than 100 parameters"),
        row("/fhir", "POST", "/fhir/Observation", if_none_exist, Some(r#"{"resourceType":"Observation"}"#), "!more than 100 parameters"),
    ]);
    let req = request("GET", &at_limit, NO, None);
    assert_eq!(classify(&fhir_base("/fhir"), &req).unwrap().search.len(), MAX_PARAMETERS);
}

#[test]
#[rustfmt::skip]
fn post_operations_read_the_parameters_body() {
    let types = r#"{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation,Patient"},{"name":"_since","valueInstant":"2020-01-01T00:00:00Z"}]}"#;
    let two_types = r#"{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},{"name":"_type","valueCode":"Patient"}]}"#;
    let lastn_other = r#"{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/456"}},{"name":"max","valueInteger":3}]}"#;
    let mdm = r#"{"resourceType":"Parameters","parameter":[{"name":"_mdm","valueBoolean":true}]}"#;
    let nested = r#"{"resourceType":"Parameters","parameter":[{"name":"x","part":[{"name":"y","valueString":"z"}]}]}"#;
    let coding = r#"{"resourceType":"Parameters","parameter":[{"name":"code","valueCoding":{"code":"x"}}]}"#;
    let two_values = r#"{"resourceType":"Parameters","parameter":[{"name":"a","valueString":"1","valueCode":"2"}]}"#;
    let no_value = r#"{"resourceType":"Parameters","parameter":[{"name":"a"}]}"#;
    let no_name = r#"{"resourceType":"Parameters","parameter":[{"valueString":"a"}]}"#;
    let logical = r#"{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"identifier":{"value":"456"}}}]}"#;
    let resource_param = r#"{"resourceType":"Parameters","parameter":[{"name":"resource","resource":{"resourceType":"Observation"}},{"name":"mode","valueCode":"create"}]}"#;
    let other_resource = r#"{"resourceType":"Parameters","parameter":[{"name":"patient","resource":{"resourceType":"Patient"}}]}"#;
    let dup_keys = r#"{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient","valueString":"Observation"}]}"#;
    let many = format!(r#"{{"resourceType":"Parameters","parameter":[{}]}}"#, vec![r#"{"name":"_count","valueInteger":1}"#; MAX_PARAMETERS + 1].join(","));
    check(&[
        row("/fhir", "POST", "/fhir/$export?_type=Observation", NO, Some(""), "!POST $export reads its parameters from the body; the URL parameter `_type` is refused"),
        row("/fhir", "POST", "/fhir/$export?_type=Observation", JSON, Some(types), "!the URL parameter `_type` is refused"),
        row("/fhir", "POST", "/fhir/$export", NO, Some(""), "operation system op=$export"),
        row("/fhir", "POST", "/fhir/$export", JSON, Some(""), "operation system op=$export"),
        row("/fhir", "POST", "/fhir/$export?_format=json&_pretty=true", NO, Some(""), "operation system op=$export q=_format=json&_pretty=true"),
        row("/fhir", "POST", "/fhir/$export", JSON, Some(types), "operation system op=$export types=Observation,Patient q=_type=Observation;Patient&_since=2020-01-01T00:00:00Z"),
        row("/fhir", "POST", "/fhir/$export", PLAIN_JSON, Some(two_types), "operation system op=$export types=Observation,Patient q=_type=Observation&_type=Patient"),
        row("/fhir", "POST", "/fhir/$export", FORM, Some("_type=Observation"), "!the body of POST $export must be JSON (got `application/x-www-form-urlencoded`)"),
        row("/fhir", "POST", "/fhir/$export", XML, Some("<Parameters/>"), "!the body of POST $export must be JSON (got `application/fhir+xml`)"),
        row("/fhir", "POST", "/fhir/$export", NO, Some("{}"), "!the body of POST $export must be JSON (got no Content-Type)"),
        row("/fhir", "POST", "/fhir/$export", JSON, Some("{}"), "!the body of POST $export has no resourceType"),
        row("/fhir", "POST", "/fhir/$export", JSON, Some("[]"), "!must be a JSON resource"),
        row("/fhir", "POST", "/fhir/$export", JSON, Some(dup_keys), "!not valid JSON"),
        row("/fhir", "POST", "/fhir/$export", JSON, Some(&many), "!more than 100 parameters"),
        row("/fhir", "POST", "/fhir/Patient/$export", JSON, Some(r#"{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Bogus"}]}"#), "!_type: `Bogus` is not a FHIR R4 resource type"),
        row("/fhir", "POST", "/fhir/Observation/$lastn?patient=123", NO, Some(""), "!the URL parameter `patient` is refused"),
        row("/fhir", "POST", "/fhir/Observation/$lastn", JSON, Some(lastn_other), "operation type Observation op=$lastn q=patient=Patient/456&max=3"),
        row("/fhir", "POST", "/fhir/Patient/123/$everything?_mdm=true", NO, Some(""), "!the URL parameter `_mdm` is refused"),
        row("/fhir", "POST", "/fhir/Patient/123/$everything", JSON, Some(mdm), "operation instance Patient id=123 comp=Patient/123 op=$everything q=_mdm=true"),
        row("/fhir", "POST", "/fhir/Patient/$everything", JSON, Some(nested), "!Parameters.parameter[0] (`x`) of $everything is refused"),
        row("/fhir", "POST", "/fhir/Patient/$everything", JSON, Some(coding), "!Parameters.parameter[0] (`code`) of $everything is refused"),
        row("/fhir", "POST", "/fhir/Patient/$everything", JSON, Some(two_values), "!(`a`) of $everything is refused"),
        row("/fhir", "POST", "/fhir/Patient/$everything", JSON, Some(no_value), "!one primitive value[x]"),
        row("/fhir", "POST", "/fhir/Patient/$everything", JSON, Some(no_name), "!Parameters.parameter[0] (``) of $everything is refused"),
        row("/fhir", "POST", "/fhir/Observation/$lastn", JSON, Some(logical), "!valueReference.reference"),
        row("/fhir", "POST", "/fhir/Observation/$validate", JSON, Some(resource_param), "operation type Observation op=$validate q=mode=create res"),
        row("/fhir", "POST", "/fhir/Observation/$validate", JSON, Some(other_resource), "!Parameters.parameter[0] (`patient`) of $validate is refused"),
        row("/fhir", "POST", "/fhir/Observation/$validate?profile=x", JSON, Some(r#"{"resourceType":"Observation"}"#), "!the URL parameter `profile` is refused"),
        row("/fhir", "POST", "/fhir/Observation/$validate", JSON, Some(r#"{"resourceType":"Observation"}"#), "operation type Observation op=$validate res"),
        row("/fhir", "GET", "/fhir/Observation/$lastn?patient=123", NO, None, "operation type Observation op=$lastn q=patient=123"),
        row("/fhir", "POST", "/fhir", JSON, Some(&bundle("batch", r#"{"resource":{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Patient"}]},"request":{"method":"POST","url":"$export"}}"#)), "batch system entries: [0 POST $export => operation system op=$export types=Patient q=_type=Patient]"),
        row("/fhir", "POST", "/fhir", JSON, Some(&bundle("batch", r#"{"request":{"method":"POST","url":"$export?_type=Patient"}}"#)), "!Bundle.entry[0]: POST $export reads its parameters from the body"),
    ]);
}

#[test]
#[rustfmt::skip]
fn bulk_data_status_and_async() {
    const ASYNC: &[(&str, &str)] = &[("prefer", "respond-async")];
    const ASYNC_LIST: &[(&str, &str)] = &[("prefer", "return=minimal, Respond-Async")];
    check(&[
        row("/fhir", "GET", "/fhir/$export-poll-status?_jobId=j1", NO, None, "operation system op=$export-poll-status q=_jobId=j1"),
        row("/fhir", "DELETE", "/fhir/$export-poll-status?_jobId=j1", NO, None, "operation system op=$export-poll-status q=_jobId=j1"),
        row("/fhir", "DELETE", "/fhir/$export", NO, None, "!DELETE [base]/$export is not a FHIR interaction"),
        row("/fhir", "GET", "/fhir/$export?_type=Patient", ASYNC, None, "operation system op=$export types=Patient q=_type=Patient"),
        row("/fhir", "GET", "/fhir/Group/g1/$export", ASYNC_LIST, None, "operation instance Group id=g1 comp=Group/g1 op=$export"),
        row("/fhir", "GET", "/fhir/$export-poll-status?_jobId=j1", ASYNC, None, "operation system op=$export-poll-status q=_jobId=j1"),
        // A search is answered synchronously (the engine drops the preference).
        row("/fhir", "GET", "/fhir/Observation?patient=123", ASYNC, None, "search type Observation q=patient=123"),
        row("/fhir", "GET", "/fhir/Observation/o1", ASYNC, None, "!`Prefer: respond-async` is refused here (only $export, its status and searches take it"),
        row("/fhir", "GET", "/fhir/Patient/123/$everything", ASYNC_LIST, None, "!`Prefer: respond-async`"),
        // HAPI FHIR reads a preference up to its `=`: `respond-async=true` is async.
        row("/fhir", "GET", "/fhir/Patient/123/$everything", &[("prefer", "respond-async=true")], None, "!`Prefer: respond-async` is refused here"),
        row("/fhir", "GET", "/fhir/Patient/123/$everything", &[("prefer", "return=minimal; respond-async = yes")], None, "!`Prefer: respond-async` is refused here"),
        row("/fhir", "GET", "/fhir/Observation?patient=123", &[("prefer", "return=representation, handling=strict")], None, "search type Observation q=patient=123"),
    ]);
}

#[test]
#[rustfmt::skip]
fn paging_in_every_form() {
    let paging_entry = bundle("batch", r#"{"request":{"method":"GET","url":"?_getpages=abc"}}"#);
    check(&[
        row("/fhir", "GET", "/fhir?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        row("/fhir", "GET", "/fhir/?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        row("/fhir", "GET", "/fhir/_search?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        row("/fhir", "POST", "/fhir/_search", FORM, Some("_getpages=abc&_getpagesoffset=20"), "paging system q=_getpages=abc&_getpagesoffset=20"),
        row("/fhir", "POST", "/fhir/_search?_getpages=abc", FORM, Some(""), "paging system q=_getpages=abc"),
        row("/fhir", "POST", "/fhir/_search?_getpages=abc", NO, Some(""), "!POST _search needs a form, even when empty"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_getpagesoffset=20&_count=20&_bundletype=searchset&_pretty=true&_format=json", NO, None, "paging system q=_getpages=abc&_getpagesoffset=20&_count=20&_bundletype=searchset&_pretty=true&_format=json"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_elements=id&_summary=true&_pageId=p2", NO, None, "paging system q=_getpages=abc&_elements=id&_summary=true&_pageId=p2"),
        row("/fhir", "GET", "/fhir?_getpages=&_type=Observation", NO, None, "!`_getpages` is blank"),
        row("/fhir", "GET", "/fhir?_getpages", NO, None, "!is blank"),
        row("/fhir", "GET", "/fhir?_getpages=+", NO, None, "!is blank"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_getpages=def", NO, None, "!`_getpages` must appear once"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_getpages=abc", NO, None, "!must appear once"),
        row("/fhir", "GET", "/fhir?_getpages:exact=abc", NO, None, "!without modifiers"),
        row("/fhir", "GET", "/fhir?_getpages=abc,def", NO, None, "!`_getpages` names several pages"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_type=Observation", NO, None, "!a paging request takes only _getpagesoffset"),
        row("/fhir", "GET", "/fhir?_getpages=abc&_include=Observation:subject", NO, None, "!`_include` is refused"),
        row("/fhir", "GET", "/fhir?_getpages=abc&patient=456", NO, None, "!`patient` is refused"),
        row("/fhir", "POST", "/fhir/_search?_getpages=abc", FORM, Some("_getpages=def"), "!must appear once"),
        row("/fhir", "POST", "/fhir?_getpages=abc", JSON, Some(r#"{"resourceType":"Bundle","type":"batch"}"#), "!POST [base]?_getpages= is refused (a page on some servers, a batch on others)"),
        row("/fhir", "POST", "/fhir/?_getpages=abc", JSON, Some(r#"{"resourceType":"Bundle","type":"batch"}"#), "!POST [base]?_getpages= is refused"),
        row("/fhir", "POST", "/fhir?_count=5", JSON, Some(r#"{"resourceType":"Bundle","type":"batch"}"#), "!POST [base] takes a Bundle and no URL parameters but _format, _pretty; `_count` is refused"),
        row("/fhir", "POST", "/fhir?_format=json", JSON, Some(r#"{"resourceType":"Bundle","type":"batch"}"#), "batch system q=_format=json"),
        row("/fhir", "POST", "/fhir", FORM, Some("_getpages=abc"), "!unsupported Content-Type `application/x-www-form-urlencoded` for POST [base]"),
        row("/fhir", "GET", "/fhir/Observation?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/Observation: follow the paging link"),
        row("/fhir", "GET", "/fhir/Observation/?_getpages=abc&patient=123", NO, None, "!`_getpages` is refused on [base]/Observation/"),
        row("/fhir", "GET", "/fhir/Observation/_search?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/Observation/_search"),
        row("/fhir", "POST", "/fhir/Observation/_search", FORM, Some("patient=123&_getpages=abc"), "!`_getpages` is refused on [base]/Observation/_search"),
        row("/fhir", "GET", "/fhir/Patient/123/Observation?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/Patient/123/Observation"),
        row("/fhir", "GET", "/fhir/Patient/123?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/Patient/123"),
        row("/fhir", "GET", "/fhir/_history?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/_history"),
        row("/fhir", "GET", "/fhir/$export?_getpages=abc", NO, None, "!`_getpages` is refused on [base]/$export"),
        row("/fhir", "POST", "/fhir", JSON, Some(&paging_entry), "!Bundle.entry[0]: paging links cannot be followed inside a batch"),
    ]);
}

#[test]
#[rustfmt::skip]
fn headers_and_parameters_a_server_trusts() {
    const PUT_CL: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("content-location", "Patient/456")];
    const CASCADE: &[(&str, &str)] = &[("x-cascade", "delete")];
    const REWRITE: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("x-rewrite-history", "true")];
    const UPSERT: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("X-Upsert-Existence-Check", "disabled")];
    const RETRY: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("x-retry-on-version-conflict", "retry; max-retries=10")];
    const GET_GZIP: &[(&str, &str)] = &[("content-encoding", "gzip")];
    const JSON_R4: &[(&str, &str)] = &[("content-type", "application/fhir+json; fhirVersion=4.0")];
    const JSON_STU3: &[(&str, &str)] = &[("content-type", "application/fhir+json; fhirVersion=3.0")];
    const JSON_UTF16: &[(&str, &str)] = &[("content-type", "application/json; charset=utf-16")];
    check(&[
        row("/fhir", "PUT", "/fhir/Patient/123", PUT_CL, Some(PATIENT_123), "!Content-Location is refused: HAPI FHIR takes an update's target from it"),
        row("/fhir", "GET", "/fhir/Patient/123", &[("Content-Location", "Patient/456")], None, "!Content-Location is refused"),
        row("/fhir", "DELETE", "/fhir/Patient/123", CASCADE, None, "!X-Cascade is refused"),
        row("/fhir", "DELETE", "/fhir/Patient/123?_cascade=delete", NO, None, "!`_cascade` is refused: it deletes or purges resources the request does not name"),
        row("/fhir", "DELETE", "/fhir/Observation?code=x&_expunge=true", NO, None, "!`_expunge` is refused"),
        row("/fhir", "DELETE", "/fhir/Patient/123?_cascade:max-rounds=3", NO, None, "!`_cascade` is refused"),
        row("/fhir", "PUT", "/fhir/Patient/123", REWRITE, Some(PATIENT_123), "!X-Rewrite-History is refused"),
        row("/fhir", "PUT", "/fhir/Patient/123", UPSERT, Some(PATIENT_123), "!X-Upsert-Existence-Check is refused"),
        row("/fhir", "PUT", "/fhir/Patient/123", RETRY, Some(PATIENT_123), "!X-Retry-On-Version-Conflict is refused"),
        row("/fhir", "GET", "/fhir/Patient?name=x", GET_GZIP, None, "!Content-Encoding is refused (even `identity`)"),
        row("/fhir", "POST", "/fhir/Patient", JSON_R4, Some(PATIENT), "create type Patient res"),
        row("/fhir", "POST", "/fhir/Patient", JSON_STU3, Some(PATIENT), "!the Content-Type parameter `fhirVersion=3.0` is refused"),
        row("/fhir", "PUT", "/fhir/Patient/123", JSON_UTF16, Some(PATIENT_123), "!`charset=utf-16` is refused"),
        row("/fhir", "POST", "/fhir", &[("content-type", "application/fhir+json; charset=iso-8859-1")], Some(r#"{"resourceType":"Bundle","type":"batch"}"#), "!`charset=iso-8859-1` is refused"),
    ]);
}

#[test]
fn bundle_entries_are_bounded() {
    let entry = r#"{"request":{"method":"GET","url":"metadata"}}"#;
    let at_limit = bundle("batch", &vec![entry; MAX_BUNDLE_ENTRIES].join(","));
    let over = bundle("batch", &vec![entry; MAX_BUNDLE_ENTRIES + 1].join(","));
    let base = fhir_base("/fhir");
    let ok = classify(
        &base,
        &request("POST", "/fhir", JSON, Some(at_limit.as_bytes())),
    )
    .unwrap();
    assert_eq!(ok.entries.len(), MAX_BUNDLE_ENTRIES);
    let e = classify(
        &base,
        &request("POST", "/fhir", JSON, Some(over.as_bytes())),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("the Bundle has 1001 entries, more than 1000: split it"),
        "{}",
        e.message
    );
}
