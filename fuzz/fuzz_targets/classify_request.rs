//! The path/query classifier and the whole decision: a method, a request
//! target and headers (input: method byte, then `target\nname: value\n...`).
#![no_main]

#[path = "common.rs"]
mod common;

use fhir_smart_authz_core::fhir::{body_needed, RequestParts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&m, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("");
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    let method = common::METHODS[usize::from(m) % common::METHODS.len()];
    let config = common::config();
    let mut req = RequestParts {
        method,
        path,
        headers,
        body: None,
    };
    if body_needed(&config.base, &req) {
        req.body = Some(&[]);
    }
    common::decide_all(&config, &req);
});
