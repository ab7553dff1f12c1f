//! The form-body and query parser: the input as a `POST _search` form body
//! (with a query string), and as the query of a GET and of a paging link.
#![no_main]

#[path = "common.rs"]
mod common;

use fhir_smart_authz_core::fhir::RequestParts;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let config = common::config();
    let form = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    for path in [
        "/fhir/Observation/_search?patient=123",
        "/fhir/_search",
        "/fhir/Patient/123/Observation/_search",
    ] {
        let req = RequestParts {
            method: "POST",
            path,
            headers: form.clone().into(),
            body: Some(data),
        };
        common::decide_all(&config, &req);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for prefix in ["/fhir/Observation?", "/fhir?", "/fhir?_getpages=x&"] {
        let path = format!("{prefix}{text}");
        let req = RequestParts {
            method: "GET",
            path: &path,
            headers: vec![].into(),
            body: None,
        };
        common::decide_all(&config, &req);
    }
});
