//! One reading of a path and a method: encodings, segments, method overrides, resource types and ids.

use super::*;

#[test]
#[rustfmt::skip]
fn path_edge_cases() {
    check(&[
        row("/fhir", "GET", "/fhir/Patient//123", NO, None, "!contains an empty segment (`//`)"),
        row("/fhir", "GET", "/fhir//Patient", NO, None, "!contains an empty segment (`//`)"),
        row("/fhir", "GET", "/fhir//", NO, None, "!ends with `/`"),
        row("/fhir", "GET", "/fhir/Patient/../Observation/1", NO, None, "!dot segment `..`"),
        row("/fhir", "GET", "/fhir/../admin", NO, None, "!dot segment `..`"),
        row("/fhir", "GET", "/fhir/Patient/./1", NO, None, "!dot segment `.`"),
        row("/fhir", "GET", "/fhir/Patient/%2e%2e/x", NO, None, "!dot segment `%2e%2e`"),
        row("/fhir", "GET", "/fhir/Patient/%2E", NO, None, "!dot segment `%2E`"),
        row("/fhir", "GET", "/fhir/%2e%2e/fhir/Patient", NO, None, "!dot segment"),
        row("/fhir", "GET", "/fhir/Patient/.%2e", NO, None, "!dot segment"),
        row("/fhir", "GET", "/fhir/Patient/...", NO, None, "read instance Patient id=..."),
        row("/fhir", "GET", "/fhir/Patient/1%2F2", NO, None, "!encoded `/` (%2F)"),
        row("/fhir", "GET", "/fhir/Patient/1%2f2", NO, None, "!encoded `/` (%2F)"),
        row("/fhir", "GET", "/fhir/Patient%2F1", NO, None, "!encoded `/` (%2F)"),
        row("/fhir", "GET", "/fhir/Patient/1%252F2", NO, None, "!encoded `%` (%25)"),
        row("/fhir", "GET", "/fhir/Patient/%2525", NO, None, "!encoded `%` (%25)"),
        row("/fhir", "GET", "/fhir/Patient/1;v=2", NO, None, "!`;`: path parameters"),
        row("/fhir", "GET", "/fhir/Patient;x/1", NO, None, "!`;`: path parameters"),
        row("/fhir", "GET", "/fhir/Patient/1%3B", NO, None, "!encoded `;` (%3B)"),
        row("/fhir", "GET", "/fhir/Patient\\1", NO, None, "!backslash"),
        row("/fhir", "GET", "/fhir/Patient/1%5C", NO, None, "!encoded backslash (%5C)"),
        row("/fhir", "GET", "/fhir/Patient/1%5c..", NO, None, "!encoded backslash (%5C)"),
        row("/fhir", "GET", "/fhir/Patient/1%00", NO, None, "!encoded control character (%00)"),
        row("/fhir", "GET", "/fhir/Patient/1\u{0}", NO, None, "!raw control character (0x00)"),
        row("/fhir", "GET", "/fhir/Patient/1\t", NO, None, "!raw control character (0x09)"),
        row("/fhir", "GET", "/fhir/Patient/1%7F", NO, None, "!encoded control character (%7F)"),
        row("/fhir", "GET", "/fhir/Patient/1%0a", NO, None, "!encoded control character (%0A)"),
        row("/fhir", "GET", "/fhir/Patient/1#x", NO, None, "!`#` fragment"),
        row("/fhir", "GET", "/fhir/Patient/1%23x", NO, None, "!invalid resource id `1#x`"),
        row("/fhir", "GET", "/fhir/Patient/1%zz", NO, None, "!malformed percent escape"),
        row("/fhir", "GET", "/fhir/Patient/1%", NO, None, "!malformed percent escape"),
        row("/fhir", "GET", "/fhir/Patient/1%4", NO, None, "!malformed percent escape"),
        row("/fhir", "GET", "/fhir/Patient/%FF", NO, None, "!decodes to invalid UTF-8"),
        row("/fhir", "GET", "/fhir/Patient/%C3", NO, None, "!decodes to invalid UTF-8"),
        row("/fhir", "GET", "/fhir/Patient%3F_id=1", NO, None, "!`Patient?_id=1` is not a FHIR R4 resource type"),
        row("/fhir", "GET", "/fhir/Pat%69ent/1", NO, None, "read instance Patient id=1"),
        row("/fhir", "GET", "/other/Patient/1", NO, None, "!the path `/other/Patient/1` is outside the FHIR base path `/fhir`"),
        row("/fhir", "GET", "/fhirx/Patient", NO, None, "!outside the FHIR base path `/fhir`"),
        row("/fhir", "GET", "/FHIR/Patient", NO, None, "!outside the FHIR base path"),
        row("/fhir", "GET", "/%66hir/Patient", NO, None, "!outside the FHIR base path"),
        row("/fhir", "GET", "/", NO, None, "!outside the FHIR base path"),
        row("/fhir", "GET", "/fh", NO, None, "!outside the FHIR base path"),
        row("/fhir", "GET", "fhir/Patient", NO, None, "!must start with `/`"),
        row("/fhir", "GET", "", NO, None, "!must start with `/`"),
        row("/fhir", "GET", "https://ehr.example.org/fhir/Patient/1", NO, None, "!must start with `/`"),
        row("/fhir", "GET", "*", NO, None, "!must start with `/`"),
        row("/fhir", "GET", "/fhir/Patient/1/_history/2/$meta/x", NO, None, "!too many segments"),
        row("/fhir", "GET", "/fhir/a/b/c/d/e/f/g", NO, None, "!too many segments"),
        row("/fhir", "GET", "/fhir/Patient/1/_history/2/3", NO, None, "!not a FHIR R4 RESTful path"),
        row("/fhir/R4", "GET", "/fhir/R4/Patient/1", NO, None, "read instance Patient id=1"),
        row("/fhir/R4", "GET", "/fhir/Patient/1", NO, None, "!outside the FHIR base path `/fhir/R4`"),
        row("/fhir/R4", "GET", "/fhir/R4x/Patient", NO, None, "!outside the FHIR base path `/fhir/R4`"),
        row("/fhir/R4", "GET", "/fhir/R4/", NO, None, "search system"),
        row("/fhir/R4", "GET", "/fhir/R4/%2e%2e/R5/Patient", NO, None, "!dot segment"),
        row("", "GET", "/Patient/1", NO, None, "read instance Patient id=1"),
        row("", "GET", "//Patient/1", NO, None, "!empty segment"),
        row("", "GET", "/Patient/1/", NO, None, "!ends with `/`"),
        row("", "GET", "Patient/1", NO, None, "!must start with `/`"),
        row("", "GET", "/../Patient/1", NO, None, "!dot segment"),
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
        row("/fhir", "OPTIONS", "/fhir/Patient", NO, None, "!OPTIONS is refused"),
        row("/fhir", "OPTIONS", "*", NO, None, "!OPTIONS is refused"),
        row("/fhir", "TRACE", "/fhir/Patient", NO, None, "!unsupported HTTP method `TRACE`"),
        row("/fhir", "CONNECT", "/fhir/Patient", NO, None, "!unsupported HTTP method `CONNECT`"),
        row("/fhir", "get", "/fhir/Patient", NO, None, "!unsupported HTTP method `get`"),
        row("/fhir", "Get", "/fhir/Patient", NO, None, "!unsupported HTTP method `Get`"),
        row("/fhir", "", "/fhir/Patient", NO, None, "!unsupported HTTP method ``"),
        row("/fhir", "PROPFIND", "/fhir/Patient", NO, None, "!unsupported HTTP method `PROPFIND`"),
        row("/fhir", "POST", "/fhir/Patient/_search", XHMO_FORM, Some(""), "!the `x-http-method-override` header is refused: this gateway does not tunnel HTTP methods"),
        row("/fhir", "GET", "/fhir/Patient/1", XHMO_UPPER, None, "!does not tunnel HTTP methods"),
        row("/fhir", "POST", "/fhir/Patient/1", XHM, None, "!the `x-http-method` header is refused"),
        row("/fhir", "POST", "/fhir/Patient/1", XMO, None, "!the `x-method-override` header is refused"),
        row("/fhir", "GET", "/fhir/metadata", XHMO, None, "!does not tunnel HTTP methods"),
    ]);
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
