//! The scope parser: the input as a scope claim (a string and an array),
//! then a few decisions under the scopes it grants.
#![no_main]

#[path = "common.rs"]
mod common;

use fhir_smart_authz_core::engine::decide_claims;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::scope::{parse_scope, ScopeSet};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ScopeSet::parse_str(text);
    for s in text.split(' ') {
        let _ = parse_scope(s);
    }
    let config = common::config();
    let as_array: Vec<&str> = text.split('\n').collect();
    for claims in [
        json!({"scope": text, "patient": "123"}),
        json!({"scope": as_array}),
    ] {
        for (method, path) in [
            ("GET", "/fhir/Observation?patient=123&category=laboratory"),
            ("GET", "/fhir/Patient/123"),
            ("GET", "/fhir?_getpages=x"),
            ("GET", "/fhir/$export-poll-status?_jobId=1"),
            ("DELETE", "/fhir/Observation/1"),
        ] {
            let req = RequestParts {
                method,
                path,
                headers: vec![].into(),
                body: None,
            };
            let d = decide_claims(&config, &req, Some(&claims));
            assert!(d.status >= 200);
        }
    }
});
