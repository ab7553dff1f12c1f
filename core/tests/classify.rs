//! Table-driven corpus for the FHIR R4 request classifier.
//!
//! Each row: (base, method, path, headers, body, expected). `expected` is the
//! exact [`summary`] of the interaction, or `!substring` of the error message.

mod classify_common;

use classify_common::{fhir_base, fhir_base_without_url, request, summary};
use fhir_smart_authz_core::fhir::{body_needed, classify, is_valid_id, resource_types};

type Row<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a str,
);

/// (base, method, path, headers, body_needed)
type NeedRow<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], bool);

const NO: &[(&str, &str)] = &[];
const JSON: &[(&str, &str)] = &[("content-type", "application/fhir+json")];
const XML: &[(&str, &str)] = &[("content-type", "application/fhir+xml")];
const FORM: &[(&str, &str)] = &[("content-type", "application/x-www-form-urlencoded")];

const PATIENT_123: &str = r#"{"resourceType":"Patient","id":"123"}"#;
const PATIENT: &str = r#"{"resourceType":"Patient"}"#;

fn check(rows: &[Row<'_>]) {
    let mut failures = Vec::new();
    for (n, (base, method, path, headers, body, expected)) in rows.iter().enumerate() {
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

#[test]
#[rustfmt::skip]
fn capabilities_and_discovery() {
    check(&[
        ("/fhir", "GET", "/fhir/metadata", NO, None, "capabilities system"),
        ("/fhir", "HEAD", "/fhir/metadata", NO, None, "capabilities system"),
        ("/fhir", "GET", "/fhir/metadata?_format=json", NO, None, "capabilities system q=_format=json"),
        ("/fhir", "DELETE", "/fhir/metadata", NO, None, "!DELETE [base]/metadata is not a FHIR interaction; allowed here: GET"),
        ("/fhir", "POST", "/fhir/metadata", NO, None, "!POST [base]/metadata is not a FHIR interaction"),
        ("/fhir", "PUT", "/fhir/metadata", JSON, Some("{}"), "!PUT [base]/metadata is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/metadata/", NO, None, "!ends with `/`"),
        ("/fhir", "GET", "/fhir/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        ("/fhir", "HEAD", "/fhir/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        ("/fhir", "POST", "/fhir/.well-known/smart-configuration", NO, None, "!POST [base]/.well-known/smart-configuration is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/.well-known/openid-configuration", NO, None, "!only `[base]/.well-known/smart-configuration`"),
        ("/fhir", "GET", "/fhir/.well-known", NO, None, "!only `[base]/.well-known/smart-configuration`"),
        ("", "GET", "/metadata", NO, None, "capabilities system"),
        ("", "GET", "/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        ("/fhir/R4", "GET", "/fhir/R4/metadata", NO, None, "capabilities system"),
        ("/fhir/R4", "GET", "/fhir/R4/.well-known/smart-configuration", NO, None, "smart-configuration system"),
        ("/fhir", "GET", "/fhir/R4/metadata", NO, None, "!`R4` is not a FHIR R4 resource type or endpoint"),
        ("/fhir/R4", "GET", "/fhir/metadata", NO, None, "!outside the FHIR base path `/fhir/R4`"),
    ]);
}

#[test]
#[rustfmt::skip]
fn read_and_vread() {
    let id64 = "a".repeat(64);
    let id65 = "a".repeat(65);
    let p64 = format!("/fhir/Patient/{id64}");
    let p65 = format!("/fhir/Patient/{id65}");
    let e64 = format!("read instance Patient id={id64}");
    check(&[
        ("/fhir", "GET", "/fhir/Patient/123", NO, None, "read instance Patient id=123"),
        ("/fhir", "HEAD", "/fhir/Patient/123", NO, None, "read instance Patient id=123"),
        ("/fhir", "GET", "/fhir/Patient/a.b-C9", NO, None, "read instance Patient id=a.b-C9"),
        ("/fhir", "GET", &p64, NO, None, &e64),
        ("/fhir", "GET", &p65, NO, None, "!invalid resource id"),
        ("/fhir", "GET", "/fhir/Patient/abc_def", NO, None, "!invalid resource id `abc_def`"),
        ("/fhir", "GET", "/fhir/Patient/12%33", NO, None, "read instance Patient id=123"),
        ("/fhir", "GET", "/fhir/%50atient/1", NO, None, "read instance Patient id=1"),
        ("/fhir", "GET", "/fhir/Patient/123?_elements=name,birthDate", NO, None, "read instance Patient id=123 q=_elements=name;birthDate"),
        ("/fhir", "GET", "/fhir/Patient/123?", NO, None, "read instance Patient id=123"),
        ("/fhir", "GET", "/fhir/patient/123", NO, None, "!resource types are case-sensitive, use `Patient`"),
        ("/fhir", "GET", "/fhir/PATIENT/123", NO, None, "!resource types are case-sensitive, use `Patient`"),
        ("/fhir", "GET", "/fhir/Foo/1", NO, None, "!`Foo` is not a FHIR R4 resource type"),
        ("/fhir", "GET", "/fhir/Resource/1", NO, None, "!`Resource` is not a FHIR R4 resource type"),
        ("/fhir", "GET", "/fhir/DomainResource/1", NO, None, "!`DomainResource` is not a FHIR R4 resource type"),
        ("/fhir", "GET", "/fhir/Patient/1%20", NO, None, "!invalid resource id `1 `"),
        ("/fhir", "GET", "/fhir/Patient/%C3%A9", NO, None, "!invalid resource id `é`"),
        ("/fhir", "GET", "/fhir/Patient/*", NO, None, "!invalid resource id `*`"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/4", NO, None, "vread instance Patient id=123 v=4"),
        ("/fhir", "HEAD", "/fhir/Patient/123/_history/4", NO, None, "vread instance Patient id=123 v=4"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/4/", NO, None, "!ends with `/`"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/x_y", NO, None, "!invalid version id `x_y`"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/..", NO, None, "!dot segment"),
        ("/fhir", "DELETE", "/fhir/Patient/123/_history/4", NO, None, "!DELETE [base]/Patient/123/_history/4 is not a FHIR interaction"),
        ("/fhir", "PUT", "/fhir/Patient/123/_history/4", JSON, Some(PATIENT_123), "!PUT [base]/Patient/123/_history/4 is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/4/5", NO, None, "!not a FHIR R4 RESTful path"),
        ("/fhir", "GET", "/fhir/Patient/metadata", NO, None, "read instance Patient id=metadata"),
        ("/fhir/R4", "GET", "/fhir/R4/Observation/o-1", NO, None, "read instance Observation id=o-1"),
        ("", "GET", "/Observation/o-1", NO, None, "read instance Observation id=o-1"),
        ("", "GET", "/Observation/o-1/_history/1", NO, None, "vread instance Observation id=o-1 v=1"),
    ]);
}

#[test]
#[rustfmt::skip]
fn update_patch_delete() {
    const JSON_UTF8: &[(&str, &str)] = &[("content-type", "application/json; charset=utf-8")];
    const PNG: &[(&str, &str)] = &[("content-type", "image/png")];
    const TEXT: &[(&str, &str)] = &[("content-type", "text/plain")];
    const JSON_PATCH: &[(&str, &str)] = &[("content-type", "application/json-patch+json")];
    check(&[
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(PATIENT_123), "update instance Patient id=123 res"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON_UTF8, Some(PATIENT_123), "update instance Patient id=123 res"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"124"}"#), "!the resource id `124` does not match the id `123` in the URL"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(PATIENT), "!an update needs the resource's id"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Observation","id":"123"}"#), "!resourceType `Observation` does not match the URL type `Patient`"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"id":"123"}"#), "!the resource has no resourceType"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some("[1]"), "!the resource must be a JSON object"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some("{"), "!not valid JSON"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"123","id":"999"}"#), "!duplicate key `id` in a JSON object"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"123","link":[{"other":{"reference":"Patient/1"},"other":{"reference":"Patient/2"}}]}"#), "!duplicate key `other`"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, Some(r#"{"resourceType":"Patient","id":"123"} x"#), "!not valid JSON"),
        ("/fhir", "PUT", "/fhir/Patient/123", JSON, None, "!was not provided"),
        ("/fhir", "PUT", "/fhir/Patient/123", XML, Some("<Patient/>"), "update instance Patient id=123"),
        ("/fhir", "PUT", "/fhir/Patient/123", XML, None, "update instance Patient id=123"),
        ("/fhir", "PUT", "/fhir/Patient/123", NO, Some(PATIENT_123), "!needs a Content-Type header"),
        ("/fhir", "PUT", "/fhir/Patient/123", TEXT, Some("x"), "!unsupported Content-Type `text/plain`"),
        ("/fhir", "PUT", "/fhir/Binary/b1", PNG, Some("\u{1}PNG"), "update instance Binary id=b1"),
        ("/fhir", "PUT", "/fhir/Patient", JSON, Some(PATIENT), "!PUT [base]/Patient needs an id (`Patient/[id]`) or search criteria"),
        ("/fhir", "PUT", "/fhir/Patient?", JSON, Some(PATIENT), "!needs an id"),
        ("/fhir", "PUT", "/fhir/Patient?_format=json", JSON, Some(PATIENT), "!needs an id"),
        ("/fhir", "PUT", "/fhir/Patient?identifier=http://x%7C1", JSON, Some(PATIENT), "update type Patient cond q=identifier=http://x|1 res"),
        ("/fhir", "PUT", "/fhir/Patient?identifier=x", JSON, Some(r#"{"resourceType":"Group"}"#), "!does not match the URL type `Patient`"),
        ("/fhir", "PUT", "/fhir/Patient/123?_format=json", JSON, Some(PATIENT_123), "update instance Patient id=123 q=_format=json res"),
        ("/fhir", "PATCH", "/fhir/Patient/123", JSON_PATCH, Some("[]"), "patch instance Patient id=123"),
        ("/fhir", "PATCH", "/fhir/Patient/123", JSON_PATCH, None, "patch instance Patient id=123"),
        ("/fhir", "PATCH", "/fhir/Observation?code=x", JSON_PATCH, None, "patch type Observation cond q=code=x"),
        ("/fhir", "PATCH", "/fhir/Observation", JSON_PATCH, None, "!PATCH [base]/Observation needs an id"),
        ("/fhir", "DELETE", "/fhir/Patient/123", NO, None, "delete instance Patient id=123"),
        ("/fhir", "DELETE", "/fhir/Observation?subject=Patient/1", NO, None, "delete type Observation cond q=subject=Patient/1"),
        ("/fhir", "DELETE", "/fhir/Observation", NO, None, "!DELETE [base]/Observation needs an id (`Observation/[id]`) or search criteria"),
        ("/fhir", "DELETE", "/fhir/Observation?_pretty=true&_summary=count", NO, None, "!needs an id"),
        ("/fhir", "DELETE", "/fhir/Patient/123/", NO, None, "!ends with `/`"),
        ("/fhir/R4", "DELETE", "/fhir/R4/Patient/123", NO, None, "delete instance Patient id=123"),
        ("", "PUT", "/Patient/123", JSON, Some(PATIENT_123), "update instance Patient id=123 res"),
    ]);
}

#[test]
#[rustfmt::skip]
fn create_and_conditional_create() {
    const INE: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=http://x%7C1"),
    ];
    const INE_Q: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("If-None-Exist", "?identifier=a"),
    ];
    const INE_URL: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "Patient?identifier=a"),
    ];
    const INE_OTHER: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", "Observation?identifier=a")];
    const INE_ABS: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", "https://ehr.example.org/fhir/Patient?identifier=a")];
    const INE_SEMI: &[(&str, &str)] = &[("content-type", "application/fhir+json"), ("if-none-exist", "identifier=a;_id=b")];
    const INE_EMPTY: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", ""),
    ];
    const INE_FORMAT: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "_format=json"),
    ];
    const INE_TWO: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("if-none-exist", "identifier=a"),
        ("if-none-exist", "identifier=b"),
    ];
    const INE_ONLY: &[(&str, &str)] = &[("if-none-exist", "identifier=a")];
    const PDF: &[(&str, &str)] = &[("content-type", "application/pdf")];
    const TWO_CT: &[(&str, &str)] = &[
        ("content-type", "application/fhir+json"),
        ("content-type", "application/fhir+xml"),
    ];
    check(&[
        ("/fhir", "POST", "/fhir/Patient", JSON, Some(PATIENT), "create type Patient res"),
        ("/fhir", "POST", "/fhir/Patient", JSON, Some(PATIENT_123), "create type Patient res"),
        ("/fhir", "POST", "/fhir/Patient", JSON, Some(r#"{"resourceType":"Observation"}"#), "!resourceType `Observation` does not match the URL type `Patient`"),
        ("/fhir", "POST", "/fhir/Patient", JSON, None, "!was not provided"),
        ("/fhir", "POST", "/fhir/Patient", JSON, Some(""), "!not valid JSON"),
        ("/fhir", "POST", "/fhir/Patient", INE, Some(PATIENT), "create type Patient cond q=identifier=http://x|1 res"),
        ("/fhir", "POST", "/fhir/Patient", INE_Q, Some(PATIENT), "create type Patient cond q=identifier=a res"),
        ("/fhir", "POST", "/fhir/Patient", INE_URL, Some(PATIENT), "create type Patient cond q=identifier=a res"),
        ("/fhir", "POST", "/fhir/Patient", INE_OTHER, Some(PATIENT), "!If-None-Exist must hold only search parameters for Patient"),
        ("/fhir", "POST", "/fhir/Patient", INE_ABS, Some(PATIENT), "!If-None-Exist must hold only search parameters for Patient"),
        ("/fhir", "POST", "/fhir/Patient", INE_SEMI, Some(PATIENT), "!the If-None-Exist criteria contains a raw `;`"),
        ("/fhir", "POST", "/fhir/Patient", INE_EMPTY, Some(PATIENT), "!If-None-Exist has no search criteria"),
        ("/fhir", "POST", "/fhir/Patient", INE_FORMAT, Some(PATIENT), "!If-None-Exist has no search criteria"),
        ("/fhir", "POST", "/fhir/Patient", INE_TWO, Some(PATIENT), "!more than one If-None-Exist header"),
        ("/fhir", "GET", "/fhir/Patient", INE_ONLY, None, "!If-None-Exist is only allowed on a create (POST [base]/[type]), not on GET [base]/Patient"),
        ("/fhir", "PUT", "/fhir/Patient/1", INE, Some(r#"{"resourceType":"Patient","id":"1"}"#), "!If-None-Exist is only allowed on a create"),
        ("/fhir", "POST", "/fhir/Patient/_search", INE_ONLY, Some(""), "!If-None-Exist is only allowed on a create"),
        ("/fhir", "POST", "/fhir/Patient", XML, Some("<Patient/>"), "create type Patient"),
        ("/fhir", "POST", "/fhir/Binary", PDF, Some("%PDF"), "create type Binary"),
        ("/fhir", "POST", "/fhir/Binary", NO, Some("x"), "create type Binary"),
        ("/fhir", "POST", "/fhir/Patient", NO, Some(PATIENT), "!a create/update of Patient needs a Content-Type header"),
        ("/fhir", "POST", "/fhir/Patient", PDF, Some("x"), "!unsupported Content-Type `application/pdf` for a create/update of Patient"),
        ("/fhir", "POST", "/fhir/Patient", TWO_CT, Some(PATIENT), "!more than one Content-Type header"),
        ("/fhir", "POST", "/fhir/Patient/123", JSON, Some(PATIENT_123), "!POST [base]/Patient/123 is not a FHIR interaction; allowed here: GET (read), PUT (update), PATCH (patch) or DELETE (delete)"),
        ("/fhir", "POST", "/fhir/Patient?_format=json", JSON, Some(PATIENT), "create type Patient q=_format=json res"),
        ("/fhir", "POST", "/fhir/patient", JSON, Some(PATIENT), "!use `Patient`"),
        ("/fhir", "POST", "/fhir/Patient/", JSON, Some(PATIENT), "!POST [base]/Patient/ is not a FHIR interaction; allowed here: GET (search)"),
        ("/fhir/R4", "POST", "/fhir/R4/Observation", JSON, Some(r#"{"resourceType":"Observation","status":"final"}"#), "create type Observation res"),
        ("", "POST", "/Observation", JSON, Some(r#"{"resourceType":"Observation"}"#), "create type Observation res"),
    ]);
}

#[test]
#[rustfmt::skip]
fn type_search_and_parameters() {
    const FORM_UTF8: &[(&str, &str)] = &[(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8",
    )];
    check(&[
        ("/fhir", "GET", "/fhir/Patient", NO, None, "search type Patient"),
        ("/fhir", "HEAD", "/fhir/Patient", NO, None, "search type Patient"),
        ("/fhir", "GET", "/fhir/Patient?name=smith", NO, None, "search type Patient q=name=smith"),
        ("/fhir", "GET", "/fhir/Patient?name=smith&name=jones", NO, None, "search type Patient q=name=smith&name=jones"),
        ("/fhir", "GET", "/fhir/Observation?code=a,b", NO, None, "search type Observation q=code=a;b"),
        ("/fhir", "GET", "/fhir/Observation?code=a%2Cb", NO, None, "search type Observation q=code=a;b"),
        ("/fhir", "GET", "/fhir/Observation?code=a\\,b,c", NO, None, "search type Observation q=code=a,b;c"),
        ("/fhir", "GET", "/fhir/Observation?code=a%5C,b", NO, None, "search type Observation q=code=a,b"),
        ("/fhir", "GET", "/fhir/Observation?code=http://loinc.org%7C1234-5", NO, None, "search type Observation q=code=http://loinc.org|1234-5"),
        ("/fhir", "GET", "/fhir/Observation?subject:Patient.name=peter", NO, None, "search type Observation q=subject[m=Patient][c=name]=peter"),
        ("/fhir", "GET", "/fhir/Observation?subject.name=peter", NO, None, "search type Observation q=subject[c=name]=peter"),
        ("/fhir", "GET", "/fhir/Observation?subject:Patient.organization.name=x", NO, None, "search type Observation q=subject[m=Patient][c=organization.name]=x"),
        ("/fhir", "GET", "/fhir/Patient?_has:Observation:patient:code=1234-5", NO, None, "search type Patient q=_has[m=Observation:patient:code]=1234-5"),
        ("/fhir", "GET", "/fhir/Patient?name:exact=Smith", NO, None, "search type Patient q=name[m=exact]=Smith"),
        ("/fhir", "GET", "/fhir/Patient?name%3Aexact=Smith", NO, None, "search type Patient q=name[m=exact]=Smith"),
        ("/fhir", "GET", "/fhir/Observation?date=ge2020&date=le2021", NO, None, "search type Observation q=date=ge2020&date=le2021"),
        ("/fhir", "GET", "/fhir/Patient?_include=Patient:organization&_revinclude=Provenance:target", NO, None, "search type Patient q=_include=Patient:organization&_revinclude=Provenance:target"),
        ("/fhir", "GET", "/fhir/Patient?_include:iterate=Patient:link", NO, None, "search type Patient q=_include[m=iterate]=Patient:link"),
        ("/fhir", "GET", "/fhir/Patient?_count=10&_sort=-birthdate", NO, None, "search type Patient q=_count=10&_sort=-birthdate"),
        ("/fhir", "GET", "/fhir/Patient?name=John+Smith", NO, None, "search type Patient q=name=John Smith"),
        ("/fhir", "GET", "/fhir/Patient?name=%C3%A9", NO, None, "search type Patient q=name=é"),
        ("/fhir", "GET", "/fhir/Patient?name", NO, None, "search type Patient q=name="),
        ("/fhir", "GET", "/fhir/Patient?&&name=a&&", NO, None, "search type Patient q=name=a"),
        ("/fhir", "GET", "/fhir/Patient?_type=Observation", NO, None, "search type Patient q=_type=Observation"),
        ("/fhir", "GET", "/fhir/Patient?=x", NO, None, "!empty name"),
        ("/fhir", "GET", "/fhir/Patient?:exact=x", NO, None, "!empty name before `:` or `.`"),
        ("/fhir", "GET", "/fhir/Patient?name=a%00", NO, None, "!the query string contains an encoded control character (%00)"),
        ("/fhir", "GET", "/fhir/Patient?name=a\u{0}", NO, None, "!raw control character (0x00)"),
        ("/fhir", "GET", "/fhir/Patient?name=a%0D%0A", NO, None, "!encoded control character (%0D)"),
        ("/fhir", "GET", "/fhir/Patient?name=a%zz", NO, None, "!malformed percent escape"),
        ("/fhir", "GET", "/fhir/Patient?name=a%", NO, None, "!malformed percent escape"),
        ("/fhir", "GET", "/fhir/Patient?name=%FF", NO, None, "!invalid UTF-8"),
        ("/fhir", "GET", "/fhir/Patient?name=%C2%85", NO, None, "!the query string contains a control character (U+0085)"),
        ("/fhir", "GET", "/fhir/Patient?name=\u{85}", NO, None, "!the query string contains a control character (U+0085)"),
        ("/fhir", "GET", "/fhir/Patient?name=%E2%80%8B", NO, None, "search type Patient q=name=\u{200b}"),
        ("/fhir", "GET", "/fhir/Patient?name=a;_include=*", NO, None, "!the query string contains a raw `;`"),
        ("/fhir", "GET", "/fhir/Patient?name=a%3B_include=*", NO, None, "search type Patient q=name=a;_include=*"),
        ("/fhir", "GET", "/fhir/Patient?name=a#frag", NO, None, "!`#` fragment"),
        ("/fhir", "GET", "/fhir/Patient?_method=DELETE", NO, None, "!the `_method` parameter is refused"),
        ("/fhir", "GET", "/fhir/Patient/_search?name=a", NO, None, "search type Patient q=name=a"),
        ("/fhir", "POST", "/fhir/Patient/_search?_count=5", FORM, Some("name=a&birthdate=ge2000"), "search type Patient q=_count=5&name=a&birthdate=ge2000"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM_UTF8, Some("name=a%2Cb,c"), "search type Patient q=name=a;b;c"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, Some(""), "search type Patient"),
        ("/fhir", "POST", "/fhir/Patient/_search?name=a", NO, Some(""), "search type Patient q=name=a"),
        ("/fhir", "POST", "/fhir/Patient/_search", NO, Some("name=a"), "!a POST _search body needs Content-Type: application/x-www-form-urlencoded"),
        ("/fhir", "POST", "/fhir/Patient/_search", JSON, Some("{}"), "!POST _search bodies must be application/x-www-form-urlencoded (got `application/fhir+json`)"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, None, "!was not provided"),
        ("/fhir", "POST", "/fhir/Patient/_search", NO, None, "!was not provided"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("name=a%00"), "!the form body contains an encoded control character"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("name=x;_id=1"), "!the form body contains a raw `;`"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("=a"), "!the form body has a parameter with an empty name"),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, Some("_method=DELETE"), "!the `_method` parameter is refused"),
        ("/fhir", "PUT", "/fhir/Patient/_search", FORM, Some(""), "!PUT [base]/Patient/_search is not a FHIR interaction; allowed here: GET or POST"),
        ("/fhir", "DELETE", "/fhir/Patient/_search", NO, None, "!DELETE [base]/Patient/_search is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/Patient/", NO, None, "search type Patient"),
        ("/fhir", "GET", "/fhir/Patient/?name=x", NO, None, "search type Patient q=name=x"),
        ("/fhir", "HEAD", "/fhir/Patient/?name=x", NO, None, "search type Patient q=name=x"),
        ("/fhir", "GET", "/fhir/patient/?name=x", NO, None, "!the path `patient/` ends with `/`"),
        ("/fhir", "GET", "/fhir/Patient//", NO, None, "!ends with `/`"),
        ("/fhir", "GET", "/fhir/_history/", NO, None, "!ends with `/`"),
        ("/fhir", "GET", "/fhir/$export/", NO, None, "!ends with `/`"),
        ("/fhir", "DELETE", "/fhir/Patient/?identifier=x", NO, None, "!DELETE [base]/Patient/ is not a FHIR interaction; allowed here: GET (search); for anything else remove the trailing `/`"),
        ("/fhir", "PUT", "/fhir/Patient/?identifier=x", JSON, Some(PATIENT), "!PUT [base]/Patient/ is not a FHIR interaction"),
        ("/fhir/R4", "GET", "/fhir/R4/Condition?patient=123&clinical-status=active", NO, None, "search type Condition q=patient=123&clinical-status=active"),
        ("", "GET", "/Condition?patient=123", NO, None, "search type Condition q=patient=123"),
    ]);
}

#[test]
#[rustfmt::skip]
fn system_search_and_paging() {
    check(&[
        ("/fhir", "GET", "/fhir", NO, None, "search system"),
        ("/fhir", "GET", "/fhir/", NO, None, "search system"),
        ("/fhir", "GET", "/fhir?_type=Patient,Observation&_lastUpdated=gt2020", NO, None, "search system types=Patient,Observation q=_type=Patient;Observation&_lastUpdated=gt2020"),
        ("/fhir", "GET", "/fhir?_type=Patient&_type=Observation,Patient", NO, None, "search system types=Patient,Observation q=_type=Patient&_type=Observation;Patient"),
        ("/fhir", "GET", "/fhir/?_type=Patient", NO, None, "search system types=Patient q=_type=Patient"),
        ("/fhir", "GET", "/fhir?_type=patient", NO, None, "!_type: unknown resource type `patient`"),
        ("/fhir", "GET", "/fhir?_type=Foo", NO, None, "!_type: `Foo` is not a FHIR R4 resource type"),
        ("/fhir", "GET", "/fhir?_type=", NO, None, "!_type: `` is not a FHIR R4 resource type"),
        ("/fhir", "POST", "/fhir/_search", FORM, Some("_type=Patient&name=x"), "search system types=Patient q=_type=Patient&name=x"),
        ("/fhir", "GET", "/fhir/_search?_type=Patient", NO, None, "search system types=Patient q=_type=Patient"),
        ("/fhir", "DELETE", "/fhir/_search", NO, None, "!DELETE [base]/_search is not a FHIR interaction"),
        ("/fhir", "DELETE", "/fhir", NO, None, "!DELETE [base] is not a FHIR interaction; allowed here: GET (system search) or POST (batch/transaction Bundle)"),
        ("/fhir", "PUT", "/fhir", JSON, Some("{}"), "!PUT [base] is not a FHIR interaction"),
        ("/fhir", "PATCH", "/fhir/", NO, None, "!PATCH [base] is not a FHIR interaction"),
        ("", "GET", "/", NO, None, "search system"),
        ("", "GET", "/?_type=Patient", NO, None, "search system types=Patient q=_type=Patient"),
        ("/fhir/R4", "GET", "/fhir/R4?_type=Encounter", NO, None, "search system types=Encounter q=_type=Encounter"),
        ("/fhir", "GET", "/fhir?_getpages=abc&_getpagesoffset=20&_count=10&_bundletype=searchset", NO, None, "paging system q=_getpages=abc&_getpagesoffset=20&_count=10&_bundletype=searchset"),
        ("/fhir", "GET", "/fhir/?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        ("/fhir", "HEAD", "/fhir?_getpages=abc", NO, None, "paging system q=_getpages=abc"),
        ("", "GET", "/?_getpages=abc&_getpagesoffset=10", NO, None, "paging system q=_getpages=abc&_getpagesoffset=10"),
        ("/fhir/R4", "GET", "/fhir/R4?_getpages=x1", NO, None, "paging system q=_getpages=x1"),
        ("/fhir", "GET", "/fhir/_getpages", NO, None, "!`_getpages` is not a FHIR R4 resource type or endpoint"),
        ("/fhir", "GET", "/fhir/Patient?_getpages=abc", NO, None, "search type Patient q=_getpages=abc"),
    ]);
}

#[test]
#[rustfmt::skip]
fn compartment_search() {
    check(&[
        ("/fhir", "GET", "/fhir/Patient/123/Observation", NO, None, "search type Observation comp=Patient/123 types=Observation"),
        ("/fhir", "HEAD", "/fhir/Patient/123/Observation", NO, None, "search type Observation comp=Patient/123 types=Observation"),
        ("/fhir", "GET", "/fhir/Patient/123/Observation?code=x,y", NO, None, "search type Observation comp=Patient/123 types=Observation q=code=x;y"),
        ("/fhir", "GET", "/fhir/Patient/123/*", NO, None, "search system comp=Patient/123"),
        ("/fhir", "GET", "/fhir/Patient/123/*?_type=Observation,Condition", NO, None, "search system comp=Patient/123 types=Observation,Condition q=_type=Observation;Condition"),
        ("/fhir", "GET", "/fhir/Patient/123/*?_type=Nope", NO, None, "!_type: `Nope` is not a FHIR R4 resource type"),
        ("/fhir", "GET", "/fhir/Encounter/e1/Observation", NO, None, "search type Observation comp=Encounter/e1 types=Observation"),
        ("/fhir", "GET", "/fhir/RelatedPerson/r1/Observation", NO, None, "search type Observation comp=RelatedPerson/r1 types=Observation"),
        ("/fhir", "GET", "/fhir/Practitioner/p1/Encounter", NO, None, "search type Encounter comp=Practitioner/p1 types=Encounter"),
        ("/fhir", "GET", "/fhir/Device/d1/Observation", NO, None, "search type Observation comp=Device/d1 types=Observation"),
        ("/fhir", "GET", "/fhir/Observation/1/Patient", NO, None, "!`Observation` is not a compartment: compartment searches use one of Device, Encounter, Patient, Practitioner, RelatedPerson"),
        ("/fhir", "GET", "/fhir/Organization/1/*", NO, None, "!`Organization` is not a compartment"),
        ("/fhir", "GET", "/fhir/Patient/123/observation", NO, None, "!use `Observation`"),
        ("/fhir", "GET", "/fhir/Patient/123/Observation/456", NO, None, "!`Patient/123/Observation/456` is not a FHIR R4 RESTful path under the base"),
        ("/fhir", "GET", "/fhir/Patient/bad_id/Observation", NO, None, "!invalid resource id `bad_id`"),
        ("/fhir", "POST", "/fhir/Patient/123/_search", FORM, Some("_type=Observation"), "search system comp=Patient/123 types=Observation q=_type=Observation"),
        ("/fhir", "GET", "/fhir/Patient/123/_search?code=x", NO, None, "search system comp=Patient/123 q=code=x"),
        ("/fhir", "POST", "/fhir/Patient/123/Observation/_search", FORM, Some("code=x"), "search type Observation comp=Patient/123 types=Observation q=code=x"),
        ("/fhir", "POST", "/fhir/Patient/123/Observation/_search", JSON, Some("{}"), "!must be application/x-www-form-urlencoded"),
        ("/fhir", "POST", "/fhir/Patient/123/Observation", JSON, Some("{}"), "!POST [base]/Patient/123/Observation is not a FHIR interaction; allowed here: GET"),
        ("/fhir", "DELETE", "/fhir/Patient/123/Observation", NO, None, "!DELETE [base]/Patient/123/Observation is not a FHIR interaction"),
        ("/fhir", "POST", "/fhir/Patient/123/*", NO, None, "!POST [base]/Patient/123/* is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/Patient/123/*/_search", NO, None, "!not a FHIR R4 RESTful path"),
        ("/fhir", "GET", "/fhir/Patient/123/Observation/", NO, None, "!ends with `/`"),
        ("/fhir/R4", "GET", "/fhir/R4/Patient/123/MedicationRequest?status=active", NO, None, "search type MedicationRequest comp=Patient/123 types=MedicationRequest q=status=active"),
        ("", "GET", "/Patient/123/Condition", NO, None, "search type Condition comp=Patient/123 types=Condition"),
    ]);
}

#[test]
#[rustfmt::skip]
fn history() {
    check(&[
        ("/fhir", "GET", "/fhir/_history", NO, None, "history system"),
        ("/fhir", "GET", "/fhir/_history?_since=2020-01-01", NO, None, "history system q=_since=2020-01-01"),
        ("/fhir", "GET", "/fhir/Patient/_history", NO, None, "history type Patient"),
        ("/fhir", "GET", "/fhir/Patient/123/_history", NO, None, "history instance Patient id=123"),
        ("/fhir", "GET", "/fhir/Patient/123/_history?_count=5&_at=2020", NO, None, "history instance Patient id=123 q=_count=5&_at=2020"),
        ("/fhir", "POST", "/fhir/_history", NO, None, "!POST [base]/_history is not a FHIR interaction; allowed here: GET"),
        ("/fhir", "DELETE", "/fhir/Patient/123/_history", NO, None, "!DELETE [base]/Patient/123/_history is not a FHIR interaction"),
        ("/fhir", "DELETE", "/fhir/Patient/_history", NO, None, "!DELETE [base]/Patient/_history is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/_history/1", NO, None, "!`_history` is not a FHIR R4 resource type"),
        ("", "GET", "/_history", NO, None, "history system"),
        ("/fhir/R4", "GET", "/fhir/R4/Observation/_history", NO, None, "history type Observation"),
    ]);
}

#[test]
#[rustfmt::skip]
fn operations() {
    check(&[
        ("/fhir", "GET", "/fhir/$export", NO, None, "operation system op=$export"),
        ("/fhir", "GET", "/fhir/$export?_type=Patient,Observation&_since=2020", NO, None, "operation system op=$export types=Patient,Observation q=_type=Patient;Observation&_since=2020"),
        ("/fhir", "GET", "/fhir/$export?_type=Bogus", NO, None, "!_type: `Bogus` is not a FHIR R4 resource type"),
        ("/fhir", "POST", "/fhir/$process-message", JSON, Some("{}"), "operation system op=$process-message"),
        ("/fhir", "GET", "/fhir/Patient/$export", NO, None, "operation type Patient op=$export"),
        ("/fhir", "POST", "/fhir/Patient/$validate", JSON, Some(PATIENT), "operation type Patient op=$validate"),
        ("/fhir", "POST", "/fhir/Patient/$validate", JSON, None, "operation type Patient op=$validate"),
        ("/fhir", "GET", "/fhir/Observation/$lastn?patient=1&code=x", NO, None, "operation type Observation op=$lastn q=patient=1&code=x"),
        ("/fhir", "GET", "/fhir/Group/g1/$export", NO, None, "operation instance Group id=g1 comp=Group/g1 op=$export"),
        ("/fhir", "GET", "/fhir/Patient/123/$everything", NO, None, "operation instance Patient id=123 comp=Patient/123 op=$everything"),
        ("/fhir", "POST", "/fhir/Patient/123/$everything", NO, None, "operation instance Patient id=123 comp=Patient/123 op=$everything"),
        ("/fhir", "GET", "/fhir/Patient/123/$everything?_since=2020&_count=50", NO, None, "operation instance Patient id=123 comp=Patient/123 op=$everything q=_since=2020&_count=50"),
        ("/fhir", "GET", "/fhir/Patient/%24everything", NO, None, "operation type Patient op=$everything"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/2/$meta", NO, None, "operation instance Patient id=123 v=2 comp=Patient/123 op=$meta"),
        ("/fhir", "POST", "/fhir/Patient/123/$meta-add", JSON, Some("{}"), "operation instance Patient id=123 comp=Patient/123 op=$meta-add"),
        ("/fhir", "GET", "/fhir/ValueSet/$expand?url=http://x", NO, None, "operation type ValueSet op=$expand q=url=http://x"),
        ("/fhir", "DELETE", "/fhir/Patient/123/$everything", NO, None, "!DELETE [base]/Patient/123/$everything is not a FHIR interaction; allowed here: GET or POST"),
        ("/fhir", "PUT", "/fhir/$export", NO, None, "!PUT [base]/$export is not a FHIR interaction"),
        ("/fhir", "PATCH", "/fhir/Patient/$validate", NO, None, "!PATCH [base]/Patient/$validate is not a FHIR interaction"),
        ("/fhir", "GET", "/fhir/$", NO, None, "!invalid operation name `$`"),
        ("/fhir", "GET", "/fhir/$ev%20il", NO, None, "!invalid operation name `$ev il`"),
        ("/fhir", "GET", "/fhir/$-x", NO, None, "!invalid operation name `$-x`"),
        ("/fhir", "GET", "/fhir/Patient/123/$everything/", NO, None, "!ends with `/`"),
        ("/fhir", "GET", "/fhir/Patient/123/$everything/x", NO, None, "!not a FHIR R4 RESTful path"),
        ("/fhir", "GET", "/fhir/Patient/123/_history/2/meta", NO, None, "!not a FHIR R4 RESTful path"),
        ("", "GET", "/$export", NO, None, "operation system op=$export"),
        ("/fhir/R4", "GET", "/fhir/R4/Patient/p1/$everything", NO, None, "operation instance Patient id=p1 comp=Patient/p1 op=$everything"),
    ]);
}

#[test]
#[rustfmt::skip]
fn path_edge_cases() {
    check(&[
        ("/fhir", "GET", "/fhir/Patient//123", NO, None, "!contains an empty segment (`//`)"),
        ("/fhir", "GET", "/fhir//Patient", NO, None, "!contains an empty segment (`//`)"),
        ("/fhir", "GET", "/fhir//", NO, None, "!ends with `/`"),
        ("/fhir", "GET", "/fhir/Patient/../Observation/1", NO, None, "!dot segment `..`"),
        ("/fhir", "GET", "/fhir/../admin", NO, None, "!dot segment `..`"),
        ("/fhir", "GET", "/fhir/Patient/./1", NO, None, "!dot segment `.`"),
        ("/fhir", "GET", "/fhir/Patient/%2e%2e/x", NO, None, "!dot segment `%2e%2e`"),
        ("/fhir", "GET", "/fhir/Patient/%2E", NO, None, "!dot segment `%2E`"),
        ("/fhir", "GET", "/fhir/%2e%2e/fhir/Patient", NO, None, "!dot segment"),
        ("/fhir", "GET", "/fhir/Patient/.%2e", NO, None, "!dot segment"),
        ("/fhir", "GET", "/fhir/Patient/...", NO, None, "read instance Patient id=..."),
        ("/fhir", "GET", "/fhir/Patient/1%2F2", NO, None, "!encoded `/` (%2F)"),
        ("/fhir", "GET", "/fhir/Patient/1%2f2", NO, None, "!encoded `/` (%2F)"),
        ("/fhir", "GET", "/fhir/Patient%2F1", NO, None, "!encoded `/` (%2F)"),
        ("/fhir", "GET", "/fhir/Patient/1%252F2", NO, None, "!encoded `%` (%25)"),
        ("/fhir", "GET", "/fhir/Patient/%2525", NO, None, "!encoded `%` (%25)"),
        ("/fhir", "GET", "/fhir/Patient/1;v=2", NO, None, "!`;`: path parameters"),
        ("/fhir", "GET", "/fhir/Patient;x/1", NO, None, "!`;`: path parameters"),
        ("/fhir", "GET", "/fhir/Patient/1%3B", NO, None, "!encoded `;` (%3B)"),
        ("/fhir", "GET", "/fhir/Patient\\1", NO, None, "!backslash"),
        ("/fhir", "GET", "/fhir/Patient/1%5C", NO, None, "!encoded backslash (%5C)"),
        ("/fhir", "GET", "/fhir/Patient/1%5c..", NO, None, "!encoded backslash (%5C)"),
        ("/fhir", "GET", "/fhir/Patient/1%00", NO, None, "!encoded control character (%00)"),
        ("/fhir", "GET", "/fhir/Patient/1\u{0}", NO, None, "!raw control character (0x00)"),
        ("/fhir", "GET", "/fhir/Patient/1\t", NO, None, "!raw control character (0x09)"),
        ("/fhir", "GET", "/fhir/Patient/1%7F", NO, None, "!encoded control character (%7F)"),
        ("/fhir", "GET", "/fhir/Patient/1%0a", NO, None, "!encoded control character (%0A)"),
        ("/fhir", "GET", "/fhir/Patient/1#x", NO, None, "!`#` fragment"),
        ("/fhir", "GET", "/fhir/Patient/1%23x", NO, None, "!invalid resource id `1#x`"),
        ("/fhir", "GET", "/fhir/Patient/1%zz", NO, None, "!malformed percent escape"),
        ("/fhir", "GET", "/fhir/Patient/1%", NO, None, "!malformed percent escape"),
        ("/fhir", "GET", "/fhir/Patient/1%4", NO, None, "!malformed percent escape"),
        ("/fhir", "GET", "/fhir/Patient/%FF", NO, None, "!decodes to invalid UTF-8"),
        ("/fhir", "GET", "/fhir/Patient/%C3", NO, None, "!decodes to invalid UTF-8"),
        ("/fhir", "GET", "/fhir/Patient%3F_id=1", NO, None, "!`Patient?_id=1` is not a FHIR R4 resource type"),
        ("/fhir", "GET", "/fhir/Pat%69ent/1", NO, None, "read instance Patient id=1"),
        ("/fhir", "GET", "/other/Patient/1", NO, None, "!the path `/other/Patient/1` is outside the FHIR base path `/fhir`"),
        ("/fhir", "GET", "/fhirx/Patient", NO, None, "!outside the FHIR base path `/fhir`"),
        ("/fhir", "GET", "/FHIR/Patient", NO, None, "!outside the FHIR base path"),
        ("/fhir", "GET", "/%66hir/Patient", NO, None, "!outside the FHIR base path"),
        ("/fhir", "GET", "/", NO, None, "!outside the FHIR base path"),
        ("/fhir", "GET", "/fh", NO, None, "!outside the FHIR base path"),
        ("/fhir", "GET", "fhir/Patient", NO, None, "!must start with `/`"),
        ("/fhir", "GET", "", NO, None, "!must start with `/`"),
        ("/fhir", "GET", "https://ehr.example.org/fhir/Patient/1", NO, None, "!must start with `/`"),
        ("/fhir", "GET", "*", NO, None, "!must start with `/`"),
        ("/fhir", "GET", "/fhir/Patient/1/_history/2/$meta/x", NO, None, "!too many segments"),
        ("/fhir", "GET", "/fhir/a/b/c/d/e/f/g", NO, None, "!too many segments"),
        ("/fhir", "GET", "/fhir/Patient/1/_history/2/3", NO, None, "!not a FHIR R4 RESTful path"),
        ("/fhir/R4", "GET", "/fhir/R4/Patient/1", NO, None, "read instance Patient id=1"),
        ("/fhir/R4", "GET", "/fhir/Patient/1", NO, None, "!outside the FHIR base path `/fhir/R4`"),
        ("/fhir/R4", "GET", "/fhir/R4x/Patient", NO, None, "!outside the FHIR base path `/fhir/R4`"),
        ("/fhir/R4", "GET", "/fhir/R4/", NO, None, "search system"),
        ("/fhir/R4", "GET", "/fhir/R4/%2e%2e/R5/Patient", NO, None, "!dot segment"),
        ("", "GET", "/Patient/1", NO, None, "read instance Patient id=1"),
        ("", "GET", "//Patient/1", NO, None, "!empty segment"),
        ("", "GET", "/Patient/1/", NO, None, "!ends with `/`"),
        ("", "GET", "Patient/1", NO, None, "!must start with `/`"),
        ("", "GET", "/../Patient/1", NO, None, "!dot segment"),
    ]);
}

#[test]
#[rustfmt::skip]
fn methods_and_override_headers() {
    const XHMO: &[(&str, &str)] = &[("x-http-method-override", "GET")];
    const XHMO_UPPER: &[(&str, &str)] = &[("X-HTTP-Method-Override", "DELETE")];
    const XHM: &[(&str, &str)] = &[("x-http-method", "PUT")];
    const XMO: &[(&str, &str)] = &[("x-method-override", "PATCH")];
    const XHMO_FORM: &[(&str, &str)] = &[
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-http-method-override", "GET"),
    ];
    check(&[
        ("/fhir", "OPTIONS", "/fhir/Patient", NO, None, "!OPTIONS is refused"),
        ("/fhir", "OPTIONS", "*", NO, None, "!OPTIONS is refused"),
        ("/fhir", "TRACE", "/fhir/Patient", NO, None, "!unsupported HTTP method `TRACE`"),
        ("/fhir", "CONNECT", "/fhir/Patient", NO, None, "!unsupported HTTP method `CONNECT`"),
        ("/fhir", "get", "/fhir/Patient", NO, None, "!unsupported HTTP method `get`"),
        ("/fhir", "Get", "/fhir/Patient", NO, None, "!unsupported HTTP method `Get`"),
        ("/fhir", "", "/fhir/Patient", NO, None, "!unsupported HTTP method ``"),
        ("/fhir", "PROPFIND", "/fhir/Patient", NO, None, "!unsupported HTTP method `PROPFIND`"),
        ("/fhir", "POST", "/fhir/Patient/_search", XHMO_FORM, Some(""), "!the `x-http-method-override` header is refused: this gateway does not tunnel HTTP methods"),
        ("/fhir", "GET", "/fhir/Patient/1", XHMO_UPPER, None, "!does not tunnel HTTP methods"),
        ("/fhir", "POST", "/fhir/Patient/1", XHM, None, "!the `x-http-method` header is refused"),
        ("/fhir", "POST", "/fhir/Patient/1", XMO, None, "!the `x-method-override` header is refused"),
        ("/fhir", "GET", "/fhir/metadata", XHMO, None, "!does not tunnel HTTP methods"),
    ]);
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
[5 PATCH Patient/123 => patch instance Patient id=123] \
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

fn get_entry(url: &str) -> String {
    format!(r#"{{"request":{{"method":"GET","url":"{url}"}}}}"#)
}

#[test]
#[rustfmt::skip]
fn batch_and_transaction() {
    let batch_abs = bundle(
        "batch",
        &[
            get_entry("https://ehr.example.org/fhir/Patient/1"),
            get_entry("https://ehr.example.org/fhir/Observation?patient=1"),
            get_entry("https://ehr.example.org/fhir?_type=Patient"),
            get_entry("https://ehr.example.org/fhir/"),
        ]
        .join(","),
    );
    let batch_abs_expected = "batch system entries: \
[0 GET https://ehr.example.org/fhir/Patient/1 => read instance Patient id=1] \
[1 GET https://ehr.example.org/fhir/Observation?patient=1 => search type Observation q=patient=1] \
[2 GET https://ehr.example.org/fhir?_type=Patient => search system types=Patient q=_type=Patient] \
[3 GET https://ehr.example.org/fhir/ => search system]";
    let r4 = bundle(
        "batch",
        &[
            get_entry("https://ehr.example.org/fhir/R4/Patient/1"),
            get_entry("Patient/2"),
        ]
        .join(","),
    );
    let root = bundle(
        "batch",
        &[
            get_entry("https://ehr.example.org/Patient/1"),
            get_entry("Patient/2"),
        ]
        .join(","),
    );
    let other_host = bundle(
        "batch",
        &get_entry("https://evil.example.org/fhir/Patient/1"),
    );
    let http_scheme = bundle("batch", &get_entry("http://ehr.example.org/fhir/Patient/1"));
    let sibling = bundle(
        "batch",
        &get_entry("https://ehr.example.org/fhirx/Patient/1"),
    );
    let r4_outside = bundle(
        "batch",
        &get_entry("https://ehr.example.org/fhir/Patient/1"),
    );
    let leading_slash = bundle("batch", &get_entry("/fhir/Patient/1"));
    let net_path = bundle("batch", &get_entry("//ehr.example.org/fhir/Patient/1"));
    let urn = bundle("batch", &get_entry("urn:uuid:1234"));
    let dot = bundle("batch", &get_entry("Patient/../Observation/1"));
    let enc_slash = bundle("batch", &get_entry("Patient/1%2F2"));
    let frag = bundle("batch", &get_entry("Patient/1#x"));
    let lower = bundle("batch", &get_entry("patient/1"));
    let trailing = bundle("batch", &get_entry("Patient/"));
    let trailing2 = bundle("batch", &get_entry("Patient/1/"));
    let second_bad = bundle(
        "batch",
        &[get_entry("Patient/1"), get_entry("Nope/1")].join(","),
    );
    let nested = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Bundle","type":"batch"},"request":{"method":"POST","url":"Bundle"}}"#,
    );
    let post_base = bundle("transaction", r#"{"request":{"method":"POST","url":""}}"#);
    let post_base_abs = bundle(
        "transaction",
        r#"{"request":{"method":"POST","url":"https://ehr.example.org/fhir"}}"#,
    );
    let post_search = bundle(
        "batch",
        r#"{"resource":{"resourceType":"Parameters"},"request":{"method":"POST","url":"Patient/_search"}}"#,
    );
    let get_search = bundle("batch", &get_entry("Patient/_search?name=x"));
    let no_request = bundle("batch", r#"{"resource":{"resourceType":"Patient"}}"#);
    let no_url = bundle("batch", r#"{"request":{"method":"GET"}}"#);
    let no_method = bundle("batch", r#"{"request":{"url":"Patient/1"}}"#);
    let url_number = bundle("batch", r#"{"request":{"method":"GET","url":5}}"#);
    let lower_method = bundle("batch", r#"{"request":{"method":"get","url":"Patient/1"}}"#);
    let options = bundle(
        "batch",
        r#"{"request":{"method":"OPTIONS","url":"Patient/1"}}"#,
    );
    let put_mismatch = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Patient","id":"9"},"request":{"method":"PUT","url":"Patient/1"}}"#,
    );
    let post_no_resource = bundle(
        "transaction",
        r#"{"request":{"method":"POST","url":"Patient"}}"#,
    );
    let post_wrong_type = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Patient"}}"#,
    );
    let resource_not_object = bundle(
        "transaction",
        r#"{"resource":"Patient","request":{"method":"POST","url":"Patient"}}"#,
    );
    let ine_on_put = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Patient","id":"1"},"request":{"method":"PUT","url":"Patient/1","ifNoneExist":"identifier=a"}}"#,
    );
    let ine_empty = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient","ifNoneExist":""}}"#,
    );
    let ine_typed = bundle(
        "transaction",
        r#"{"resource":{"resourceType":"Observation"},"request":{"method":"POST","url":"Observation","ifNoneExist":"Observation?identifier=x"}}"#,
    );
    let override_param = bundle("batch", &get_entry("Patient/1?_method=DELETE"));
    let entry_not_object = bundle("batch", "5");
    let empty_batch = r#"{"resourceType":"Bundle","type":"batch"}"#;
    let empty_tx = r#"{"resourceType":"Bundle","type":"transaction","entry":[]}"#;
    let document = r#"{"resourceType":"Bundle","type":"document","entry":[]}"#;
    let searchset = r#"{"resourceType":"Bundle","type":"searchset"}"#;
    let no_type = r#"{"resourceType":"Bundle"}"#;
    let not_bundle = r#"{"resourceType":"Patient"}"#;
    let entry_obj = r#"{"resourceType":"Bundle","type":"batch","entry":{}}"#;

    check(&[
        ("/fhir", "POST", "/fhir", JSON, Some(TX), TX_EXPECTED),
        ("/fhir", "POST", "/fhir/", JSON, Some(TX), TX_EXPECTED),
        ("/fhir", "POST", "/fhir", JSON, Some(&batch_abs), batch_abs_expected),
        ("/fhir", "POST", "/fhir", JSON, Some(empty_batch), "batch system"),
        ("/fhir", "POST", "/fhir", JSON, Some(empty_tx), "transaction system"),
        ("/fhir/R4", "POST", "/fhir/R4", JSON, Some(&r4), "batch system entries: [0 GET https://ehr.example.org/fhir/R4/Patient/1 => read instance Patient id=1] [1 GET Patient/2 => read instance Patient id=2]"),
        ("", "POST", "/", JSON, Some(&root), "batch system entries: [0 GET https://ehr.example.org/Patient/1 => read instance Patient id=1] [1 GET Patient/2 => read instance Patient id=2]"),
        ("/fhir", "POST", "/fhir", JSON, Some(&other_host), "!Bundle.entry[0]: request.url `https://evil.example.org/fhir/Patient/1` is not under the FHIR base https://ehr.example.org/fhir"),
        ("/fhir", "POST", "/fhir", JSON, Some(&http_scheme), "!Bundle.entry[0]: request.url `http://ehr.example.org/fhir/Patient/1` is not under the FHIR base"),
        ("/fhir", "POST", "/fhir", JSON, Some(&sibling), "!is not under the FHIR base"),
        ("/fhir/R4", "POST", "/fhir/R4", JSON, Some(&r4_outside), "!is not under the FHIR base https://ehr.example.org/fhir/R4"),
        ("/fhir", "POST", "/fhir", JSON, Some(&leading_slash), "!Bundle.entry[0]: request.url `/fhir/Patient/1` must be relative to the base"),
        ("/fhir", "POST", "/fhir", JSON, Some(&net_path), "!Bundle.entry[0]: request.url `//ehr.example.org/fhir/Patient/1` is not under the FHIR base"),
        ("/fhir", "POST", "/fhir", JSON, Some(&urn), "!Bundle.entry[0]: request.url `urn:uuid:1234` is not under the FHIR base"),
        ("/fhir", "POST", "/fhir", JSON, Some(&dot), "!Bundle.entry[0]: the path contains a dot segment"),
        ("/fhir", "POST", "/fhir", JSON, Some(&enc_slash), "!Bundle.entry[0]: the path contains an encoded `/` (%2F)"),
        ("/fhir", "POST", "/fhir", JSON, Some(&frag), "!Bundle.entry[0]: request.url contains a `#` fragment"),
        ("/fhir", "POST", "/fhir", JSON, Some(&lower), "!Bundle.entry[0]: unknown resource type `patient`"),
        ("/fhir", "POST", "/fhir", JSON, Some(&trailing), "batch system entries: [0 GET Patient/ => search type Patient]"),
        ("/fhir", "POST", "/fhir", JSON, Some(&trailing2), "!Bundle.entry[0]: the path `Patient/1/` ends with `/`"),
        ("/fhir", "POST", "/fhir", JSON, Some(&second_bad), "!Bundle.entry[1]: `Nope` is not a FHIR R4 resource type"),
        ("/fhir", "POST", "/fhir", JSON, Some(&nested), "!Bundle.entry[0]: a Bundle nested in an entry's resource is refused"),
        ("/fhir", "POST", "/fhir", JSON, Some(&post_base), "!Bundle.entry[0]: an entry cannot POST to [base]: nested batch/transaction Bundles are refused"),
        ("/fhir", "POST", "/fhir", JSON, Some(&post_base_abs), "!Bundle.entry[0]: an entry cannot POST to [base]"),
        ("/fhir", "POST", "/fhir", JSON, Some(&post_search), "!Bundle.entry[0]: POST _search inside a Bundle is not supported"),
        ("/fhir", "POST", "/fhir", JSON, Some(&get_search), "batch system entries: [0 GET Patient/_search?name=x => search type Patient q=name=x]"),
        ("/fhir", "POST", "/fhir", JSON, Some(&no_request), "!Bundle.entry[0]: entry.request is missing"),
        ("/fhir", "POST", "/fhir", JSON, Some(&no_url), "!Bundle.entry[0]: request.url is missing"),
        ("/fhir", "POST", "/fhir", JSON, Some(&no_method), "!Bundle.entry[0]: request.method is missing"),
        ("/fhir", "POST", "/fhir", JSON, Some(&url_number), "!Bundle.entry[0]: request.url must be a string"),
        ("/fhir", "POST", "/fhir", JSON, Some(&lower_method), "!Bundle.entry[0]: unsupported HTTP method `get`"),
        ("/fhir", "POST", "/fhir", JSON, Some(&options), "!Bundle.entry[0]: OPTIONS is refused"),
        ("/fhir", "POST", "/fhir", JSON, Some(&put_mismatch), "!Bundle.entry[0]: the resource id `9` does not match the id `1` in the URL"),
        ("/fhir", "POST", "/fhir", JSON, Some(&post_no_resource), "!Bundle.entry[0]: the entry has no resource: a create of Patient needs entry.resource"),
        ("/fhir", "POST", "/fhir", JSON, Some(&post_wrong_type), "!Bundle.entry[0]: the resource's resourceType `Observation` does not match the URL type `Patient`"),
        ("/fhir", "POST", "/fhir", JSON, Some(&resource_not_object), "!Bundle.entry[0]: entry.resource must be a JSON object"),
        ("/fhir", "POST", "/fhir", JSON, Some(&ine_on_put), "!Bundle.entry[0]: If-None-Exist is only allowed on a create"),
        ("/fhir", "POST", "/fhir", JSON, Some(&ine_empty), "!Bundle.entry[0]: If-None-Exist has no search criteria"),
        ("/fhir", "POST", "/fhir", JSON, Some(&ine_typed), "transaction system entries: [0 POST Observation => create type Observation cond q=identifier=x res]"),
        ("/fhir", "POST", "/fhir", JSON, Some(&override_param), "!Bundle.entry[0]: the `_method` parameter is refused"),
        ("/fhir", "POST", "/fhir", JSON, Some(&entry_not_object), "!Bundle.entry[0]: the entry must be a JSON object"),
        ("/fhir", "POST", "/fhir", JSON, Some(document), "!Bundle.type `document` cannot be processed at POST [base]: only `batch` or `transaction`"),
        ("/fhir", "POST", "/fhir", JSON, Some(searchset), "!Bundle.type `searchset` cannot be processed"),
        ("/fhir", "POST", "/fhir", JSON, Some(no_type), "!Bundle.type is missing"),
        ("/fhir", "POST", "/fhir", JSON, Some(not_bundle), "!POST [base] takes a Bundle, not a `Patient`"),
        ("/fhir", "POST", "/fhir", JSON, Some(entry_obj), "!Bundle.entry must be an array"),
        ("/fhir", "POST", "/fhir", JSON, Some("[]"), "!must be a JSON Bundle object"),
        ("/fhir", "POST", "/fhir", JSON, Some(r#"{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient/1","url":"Patient/2"}}]}"#), "!the Bundle is not valid JSON: duplicate key `url`"),
        ("/fhir", "POST", "/fhir", JSON, Some(r#"{"resourceType":"Bundle","type":"batch","type":"document"}"#), "!duplicate key `type`"),
        ("/fhir", "POST", "/fhir", JSON, Some("{\"resourceType\":"), "!the Bundle is not valid JSON"),
        ("/fhir", "POST", "/fhir", JSON, None, "!was not provided"),
        ("/fhir", "POST", "/fhir", XML, Some("<Bundle/>"), "!XML batch/transaction Bundles are not supported"),
        ("/fhir", "POST", "/fhir", NO, Some(TX), "!POST [base] needs Content-Type: application/fhir+json"),
        ("/fhir", "POST", "/fhir", FORM, Some("a=b"), "!unsupported Content-Type `application/x-www-form-urlencoded` for POST [base]"),
        ("/fhir", "POST", "/fhir?_getpages=abc", JSON, Some(empty_batch), "batch system q=_getpages=abc"),
    ]);
}

#[test]
#[rustfmt::skip]
fn absolute_entry_urls_need_a_configured_base_url() {
    let cfg = fhir_base_without_url("/fhir");
    let body = bundle(
        "batch",
        &get_entry("https://ehr.example.org/fhir/Patient/1"),
    );
    let req = request("POST", "/fhir", JSON, Some(body.as_bytes()));
    let e = classify(&cfg, &req).unwrap_err();
    assert!(
        e.message.contains("fhir_base_url is not configured"),
        "{}",
        e.message
    );
    let body = bundle("batch", &get_entry("Patient/1"));
    let req = request("POST", "/fhir", JSON, Some(body.as_bytes()));
    assert_eq!(
        summary(&classify(&cfg, &req).unwrap()),
        "batch system entries: [0 GET Patient/1 => read instance Patient id=1]"
    );
}

#[test]
#[rustfmt::skip]
fn resources_are_parsed_into_the_interaction() {
    let cfg = fhir_base("/fhir");
    let body = br#"{"resourceType":"Patient","id":"123","name":[{"family":"Chalmers"}]}"#;
    let req = request("PUT", "/fhir/Patient/123", JSON, Some(body));
    let i = classify(&cfg, &req).unwrap();
    assert_eq!(i.resource.unwrap()["name"][0]["family"], "Chalmers");

    let req = request("POST", "/fhir", JSON, Some(TX.as_bytes()));
    let i = classify(&cfg, &req).unwrap();
    assert_eq!(i.entries.len(), 13);
    assert_eq!(
        i.entries[1].interaction.resource.as_ref().unwrap()["id"],
        "123"
    );
    assert!(i.entries[2].interaction.resource.is_none());
    // patch bodies are not the patched resource
    assert!(i.entries[5].interaction.resource.is_none());
    assert_eq!(i.entries[4].index, 4);
    // bodies never reach the serialized interaction
    let json = serde_json::to_string(&i).unwrap();
    assert!(!json.contains("resource\""), "{json}");
}

#[test]
#[rustfmt::skip]
fn every_r4_type_reads_and_wrong_case_is_refused() {
    let cfg = fhir_base("/fhir");
    assert_eq!(resource_types::RESOURCE_TYPES.len(), 146);
    for t in resource_types::RESOURCE_TYPES {
        let path = format!("/fhir/{t}/x-1");
        let i = classify(&cfg, &request("GET", &path, NO, None)).unwrap();
        assert_eq!(summary(&i), format!("read instance {t} id=x-1"));
        let lower = format!("/fhir/{}/x-1", t.to_ascii_lowercase());
        let e = classify(&cfg, &request("GET", &lower, NO, None)).unwrap_err();
        assert!(e.message.contains(&format!("use `{t}`")), "{}", e.message);
    }
}

#[test]
#[rustfmt::skip]
fn body_needed_on_headers_alone() {
    const JSON_PATCH: &[(&str, &str)] = &[("content-type", "application/json-patch+json")];
    let rows: &[NeedRow<'_>] = &[
        ("/fhir", "POST", "/fhir", JSON, true),
        ("/fhir", "POST", "/fhir/", JSON, true),
        ("/fhir", "POST", "/fhir/", NO, false),
        ("/fhir", "POST", "/fhir", XML, false),
        ("/fhir", "POST", "/fhir/Patient/_search", JSON, false),
        ("/fhir", "POST", "/fhir/_search", NO, true),
        ("/fhir", "POST", "/fhir/Patient/1/_search", XML, false),
        ("/fhir", "POST", "/fhir/_search", FORM, true),
        ("/fhir", "POST", "/fhir/Patient/_search", FORM, true),
        ("/fhir", "POST", "/fhir/Patient/_search", NO, true),
        ("/fhir", "POST", "/fhir/Patient/1/_search", FORM, true),
        ("/fhir", "POST", "/fhir/Patient/1/Observation/_search", FORM, true),
        ("/fhir", "POST", "/fhir/Patient", JSON, true),
        ("/fhir", "POST", "/fhir/Patient", XML, false),
        ("/fhir", "POST", "/fhir/Patient", NO, false),
        ("/fhir", "POST", "/fhir/Binary", &[("content-type", "image/png")], false),
        ("/fhir", "PUT", "/fhir/Patient/1", JSON, true),
        ("/fhir", "PUT", "/fhir/Patient/1", &[("content-type", "application/json; charset=utf-8")], true),
        ("/fhir", "PUT", "/fhir/Patient?identifier=a", JSON, true),
        ("/fhir", "PUT", "/fhir/Patient/1", XML, false),
        ("/fhir", "PATCH", "/fhir/Patient/1", JSON_PATCH, false),
        ("/fhir", "PATCH", "/fhir/Patient/1", JSON, false),
        ("/fhir", "GET", "/fhir/Patient", NO, false),
        ("/fhir", "HEAD", "/fhir/Patient/_search", NO, false),
        ("/fhir", "DELETE", "/fhir/Patient/1", NO, false),
        ("/fhir", "POST", "/fhir/Patient/$validate", JSON, false),
        ("/fhir", "POST", "/fhir/$export", JSON, false),
        ("/fhir", "POST", "/fhir/Patient/1", JSON, false),
        ("/fhir", "POST", "/other", JSON, false),
        ("/fhir", "POST", "/fhir/../x", JSON, false),
        ("/fhir", "OPTIONS", "/fhir", JSON, false),
        ("/fhir/R4", "POST", "/fhir/R4", JSON, true),
        ("", "POST", "/", JSON, true),
        ("", "POST", "/Patient", JSON, true),
    ];
    for (base, method, path, headers, expected) in rows {
        let cfg = fhir_base(base);
        let req = request(method, path, headers, None);
        assert_eq!(
            body_needed(&cfg, &req),
            *expected,
            "{method} {path} {headers:?}"
        );
        if *expected {
            // Without the body the classifier refuses rather than guesses.
            let e = classify(&cfg, &req).unwrap_err();
            assert!(!e.message.is_empty());
        }
    }
}

#[test]
#[rustfmt::skip]
fn id_grammar() {
    for (id, ok) in [
        ("1", true),
        ("a-B.9", true),
        (&"x".repeat(64) as &str, true),
        (&"x".repeat(65), false),
        ("", false),
        ("a_b", false),
        ("a b", false),
        ("a/b", false),
        ("é", false),
    ] {
        assert_eq!(is_valid_id(id), ok, "{id:?}");
    }
}
