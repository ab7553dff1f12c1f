//! Whether the body is needed, decided on the headers alone.

use super::*;

#[test]
#[rustfmt::skip]
fn body_needed_on_headers_alone() {
    const JSON_PATCH: &[(&str, &str)] = &[("content-type", "application/json-patch+json")];
    let rows = [
        need_row("/fhir", "POST", "/fhir", JSON, true),
        need_row("/fhir", "POST", "/fhir/", JSON, true),
        need_row("/fhir", "POST", "/fhir/", NO, false),
        need_row("/fhir", "POST", "/fhir", XML, false),
        need_row("/fhir", "POST", "/fhir/Patient/_search", JSON, false),
        need_row("/fhir", "POST", "/fhir/_search", NO, false),
        need_row("/fhir", "POST", "/fhir/Patient/1/_search", XML, false),
        need_row("/fhir", "POST", "/fhir/_search", FORM, true),
        need_row("/fhir", "POST", "/fhir/Patient/_search", FORM, true),
        need_row("/fhir", "POST", "/fhir/Patient/_search", NO, false),
        need_row("/fhir", "POST", "/fhir/Patient/_search", &[("content-type", "Application/X-WWW-Form-Urlencoded")], false),
        need_row("/fhir", "POST", "/fhir/Patient/1/_search", FORM, true),
        need_row("/fhir", "POST", "/fhir/Patient/1/Observation/_search", FORM, true),
        need_row("/fhir", "POST", "/fhir/Patient", JSON, true),
        need_row("/fhir", "POST", "/fhir/Patient", XML, false),
        need_row("/fhir", "POST", "/fhir/Patient", NO, false),
        need_row("/fhir", "POST", "/fhir/Binary", &[("content-type", "image/png")], false),
        need_row("/fhir", "PUT", "/fhir/Patient/1", JSON, true),
        need_row("/fhir", "PUT", "/fhir/Patient/1", &[("content-type", "application/json; charset=utf-8")], true),
        need_row("/fhir", "PUT", "/fhir/Patient?identifier=a", JSON, true),
        need_row("/fhir", "PUT", "/fhir/Patient/1", XML, false),
        need_row("/fhir", "PATCH", "/fhir/Patient/1", JSON_PATCH, true),
        need_row("/fhir", "PATCH", "/fhir/Patient/1", JSON, true),
        need_row("/fhir", "PATCH", "/fhir/Observation?code=x", JSON_PATCH, true),
        need_row("/fhir", "PATCH", "/fhir/Observation/1", XML, true),
        need_row("/fhir", "GET", "/fhir/Patient", NO, false),
        need_row("/fhir", "HEAD", "/fhir/Patient/_search", NO, false),
        need_row("/fhir", "DELETE", "/fhir/Patient/1", NO, false),
        need_row("/fhir", "POST", "/fhir/Patient/$validate", JSON, true),
        need_row("/fhir", "POST", "/fhir/$export", JSON, true),
        need_row("/fhir", "POST", "/fhir/$export", NO, true),
        need_row("/fhir", "POST", "/fhir/Patient/1/$everything", FORM, true),
        need_row("/fhir", "GET", "/fhir/$export", NO, false),
        need_row("/fhir", "POST", "/fhir/Patient/1", JSON, false),
        need_row("/fhir", "POST", "/other", JSON, false),
        need_row("/fhir", "POST", "/fhir/../x", JSON, false),
        need_row("/fhir", "OPTIONS", "/fhir", JSON, false),
        need_row("/fhir/R4", "POST", "/fhir/R4", JSON, true),
        need_row("", "POST", "/", JSON, true),
        need_row("", "POST", "/Patient", JSON, true),
    ];
    for r in &rows {
        let NeedRow {
            base,
            method,
            path,
            headers,
            needed: expected,
        } = r;
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
