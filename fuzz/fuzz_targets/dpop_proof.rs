//! The DPoP proof parser and checks: the input as a proof, alone (syntax,
//! header, key, signature, claims) and against a request with a DPoP-bound
//! token (the whole sender-constraint check, replay cache included).
#![no_main]

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::token::alg::JwsAlgorithm;
use fhir_smart_authz_core::token::binding::htu::normalize;
use fhir_smart_authz_core::token::binding::proof::{parse_parts, verify_proof};
use fhir_smart_authz_core::token::binding::{
    check_binding, BindingRequest, ConnectionFacts, MemoryReplayStore,
};
use fhir_smart_authz_core::token::RustCryptoVerifier;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"{"fhir_base_url": "https://fhir.example.org/fhir",
  "issuers": [{"issuer": "https://issuer.example.org", "jwks_uri": "https://issuer.example.org/jwks",
               "jwks_cluster": "idp",
               "dpop": {"mode": "accepted", "nonce": true}}],
  "sender_constraint": {"nonce_secret": "fuzz-nonce-key-0123456789abcdef0123"},
  "allow_insecure_inline_secrets": true}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_parts(proof);
    let _ = verify_proof(proof, &JwsAlgorithm::ALL, &RustCryptoVerifier);
    let _ = normalize(proof);
    let Ok(config) = Config::from_json(CONFIG.as_bytes()) else {
        return;
    };
    let claims = serde_json::json!({"iss": "https://issuer.example.org", "cnf": {"jkt": "x"}});
    let headers = vec![
        ("authorization".to_string(), "DPoP token".to_string()),
        ("dpop".to_string(), proof.to_string()),
    ];
    let parts = RequestParts {
        method: "GET",
        path: "/fhir/Patient/1",
        headers: headers.into(),
        body: None,
    };
    let req = BindingRequest {
        parts: &parts,
        connection: ConnectionFacts::default(),
        now: 1_700_000_000,
    };
    let mut replay = MemoryReplayStore::default();
    let _ = check_binding(&config.binding(), &req, &claims, &RustCryptoVerifier, &mut replay);
});
