//! Shared helpers for the token tests: fixture keys (generated once by
//! `tests/fixtures/keys/generate.py`, embedded with `include_str!` so the
//! tests also run under wasm32 without file access) and a raw JWS signer.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::token::alg::Es384;
use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPrivateKey};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{json, Value};

pub const ISS: &str = "https://issuer.example.org";
pub const AUD: &str = "https://fhir.example.org/fhir";
pub const NOW: u64 = 1_800_000_000;

pub const PRIVATE_KEYS: &str = include_str!("../../../tests/fixtures/keys/private_keys.json");
pub const JWKS: &str = include_str!("../../../tests/fixtures/keys/jwks.json");
pub const JWKS_ROTATED: &str = include_str!("../../../tests/fixtures/keys/jwks_rotated.json");
pub const JWKS_MIXED: &str = include_str!("../../../tests/fixtures/keys/jwks_mixed.json");
pub const REFERENCE_TOKENS: &str =
    include_str!("../../../tests/fixtures/keys/reference_tokens.json");

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn private(kid: &str, field: &str) -> Vec<u8> {
    let v: Value = serde_json::from_str(PRIVATE_KEYS).unwrap();
    let s = v[kid][field].as_str().unwrap();
    if field.ends_with("_b64u") {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    } else {
        STANDARD.decode(s).unwrap()
    }
}

pub fn rsa_key(kid: &str) -> RsaPrivateKey {
    use rsa::pkcs8::DecodePrivateKey;
    RsaPrivateKey::from_pkcs8_der(&private(kid, "pkcs8_der_b64")).unwrap()
}

pub fn rsa_public_spki(kid: &str) -> Vec<u8> {
    private(kid, "spki_der_b64")
}

/// Sign `input` with algorithm `alg` using fixture key `kid`.
pub fn sign_raw(alg: &str, kid: &str, input: &[u8]) -> Vec<u8> {
    match alg {
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            let a: Rsa = alg.parse().unwrap();
            a.sign(&rsa_key(kid), input).as_bytes().into_owned()
        }
        "ES256" => {
            let k = p256::ecdsa::SigningKey::from_slice(&private(kid, "d_b64u")).unwrap();
            Es256.sign(&k, input).as_bytes().into_owned()
        }
        "ES384" => {
            let k = p384::ecdsa::SigningKey::from_slice(&private(kid, "d_b64u")).unwrap();
            Es384.sign(&k, input).as_bytes().into_owned()
        }
        "EdDSA" => {
            let seed = ed25519_compact::Seed::from_slice(&private(kid, "seed_b64u")).unwrap();
            let kp = ed25519_compact::KeyPair::from_seed(seed);
            Ed25519.sign(&kp.sk, input).as_bytes().into_owned()
        }
        other => panic!("no signer for {other}"),
    }
}

/// The fixture key that goes with an algorithm.
pub fn kid_for(alg: &str) -> &'static str {
    match alg {
        "ES256" => "p256",
        "ES384" => "p384",
        "EdDSA" => "ed25519",
        _ => "rsa1",
    }
}

/// Compact JWS from raw header and payload JSON text, signed with `kid`'s key.
pub fn jws_raw(header: &str, payload: &str, alg: &str, kid: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = sign_raw(alg, kid, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}

pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "exp": NOW + 3600,
        "iat": NOW - 10,
        "sub": "user-1",
        "jti": "jti-1",
        "scope": "patient/*.rs launch/patient",
        "patient": "123",
    })
}

/// A valid token for `alg` with these claims and the matching key's kid.
pub fn token_with(alg: &str, claims: &Value) -> String {
    let kid = kid_for(alg);
    let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
    jws_raw(&header.to_string(), &claims.to_string(), alg, kid)
}

pub fn token(alg: &str) -> String {
    token_with(alg, &claims())
}

/// Config with one issuer: inline JWKS (all fixture algorithms), audience AUD.
pub fn config_json(issuer_extra: Value, token_settings: Value) -> Value {
    let mut issuer = json!({"issuer": ISS, "jwks": serde_json::from_str::<Value>(JWKS).unwrap()});
    if let (Some(obj), Some(extra)) = (issuer.as_object_mut(), issuer_extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    json!({
        "fhir_base_url": AUD,
        "issuers": [issuer],
        "token": token_settings,
    })
}

pub fn config_with(issuer_extra: Value) -> Config {
    Config::from_json(config_json(issuer_extra, json!({})).to_string().as_bytes()).unwrap()
}

pub fn config() -> Config {
    config_with(json!({}))
}

/// Config with one remote-JWKS issuer.
pub fn remote_config(extra: Value) -> Config {
    let mut issuer = json!({
        "issuer": ISS,
        "jwks_uri": "https://issuer.example.org/jwks",
        "jwks_cluster": "idp",
        "jwks_refresh_seconds": 300,
        "jwks_min_refetch_seconds": 30,
    });
    if let (Some(obj), Some(extra)) = (issuer.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            obj.insert(k.clone(), v.clone());
        }
    }
    let cfg = json!({"fhir_base_url": AUD, "issuers": [issuer]});
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}
