//! The JWT/JOSE parser: the input as a compact token verified against the
//! example configuration's inline keys, inspected, and as a JWKS.
#![no_main]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::token::keys::KeySet;
use fhir_smart_authz_core::token::{jose, offline};
use libfuzzer_sys::fuzz_target;

const CONFIG: &[u8] = include_bytes!("../../examples/configs/cli_token.json");

fuzz_target!(|data: &[u8]| {
    let _ = KeySet::parse(data);
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_json(CONFIG) else {
        return;
    };
    let now = 1_700_000_000;
    let _ = offline::verify_claims(config.trust(), token, now);
    let _ = offline::inspect(config.trust(), token, now);
    let _ = jose::peek_issuer(token);
    if let Some((header, _, _)) = jose::split_compact(token) {
        let _ = jose::parse_header(header);
    }
});
