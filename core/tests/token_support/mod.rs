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
use jwt_compact::alg::{Ed25519, Es256, Rsa, RsaPrivateKey, RsaSignature};
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

pub fn b64d(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

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
            use p384::ecdsa::signature::Signer;
            let k = p384::ecdsa::SigningKey::from_slice(&private(kid, "d_b64u")).unwrap();
            let signature: p384::ecdsa::Signature = k.sign(input);
            signature.to_bytes().to_vec()
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

/// Envoy's `verify_signature` foreign function as BoringSSL answers it, for
/// the tests of the host path: `VerifySignatureArguments` in (hash name, key
/// as DER SubjectPublicKeyInfo, signature, text), `VerifySignatureResult`
/// out. RSA keys take PKCS#1 v1.5 signatures; P-256/P-384 keys take a
/// strict DER `ECDSA-Sig-Value` (the JWS `r‖s` form does not verify, as in
/// Envoy). A signature that does not verify is a successful call with
/// `result: false`; `Err` stands for `BadArgument` (unknown hash name, a key
/// that does not import).
pub fn envoy_verify_signature(args: &[u8]) -> Result<Vec<u8>, String> {
    let fields = protobuf_fields(args).ok_or("arguments do not parse")?;
    let field = |n: u64| {
        fields
            .iter()
            .find(|(f, _)| *f == n)
            .map(|(_, v)| v.as_slice())
    };
    let hash = std::str::from_utf8(field(1).unwrap_or(b"")).map_err(|e| e.to_string())?;
    let hash = hash.to_ascii_lowercase();
    if !["sha1", "sha224", "sha256", "sha384", "sha512"].contains(&hash.as_str()) {
        return Err(format!("{hash} is not supported."));
    }
    let (key, sig, text) = (
        field(2).unwrap_or(b""),
        field(3).unwrap_or(b""),
        field(4).unwrap_or(b""),
    );
    let ok = if let Some(point) = key.strip_prefix(P256_SPKI.as_slice()) {
        let k = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
        let raw = der_ecdsa_to_raw(sig, 32);
        hash == "sha256"
            && raw.is_some_and(|raw| {
                p256::ecdsa::Signature::try_from(raw.as_slice())
                    .is_ok_and(|s| Es256.verify_signature(&s, &k, text))
            })
    } else if let Some(point) = key.strip_prefix(P384_SPKI.as_slice()) {
        let k = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|e| e.to_string())?;
        let raw = der_ecdsa_to_raw(sig, 48);
        hash == "sha384"
            && raw.is_some_and(|raw| {
                use p384::ecdsa::signature::Verifier;
                p384::ecdsa::Signature::try_from(raw.as_slice())
                    .is_ok_and(|s| k.verify(text, &s).is_ok())
            })
    } else {
        use rsa::pkcs8::DecodePublicKey;
        let k = rsa::RsaPublicKey::from_public_key_der(key).map_err(|e| e.to_string())?;
        let alg = match hash.as_str() {
            "sha256" => Rsa::rs256(),
            "sha384" => Rsa::rs384(),
            "sha512" => Rsa::rs512(),
            _ => return Ok(verify_signature_result(false)),
        };
        RsaSignature::try_from_slice(sig).is_ok_and(|s| alg.verify_signature(&s, &k, text))
    };
    Ok(verify_signature_result(ok))
}

const P256_SPKI: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_SPKI: [u8; 23] = [
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

fn verify_signature_result(ok: bool) -> Vec<u8> {
    if ok {
        vec![0x08, 0x01]
    } else {
        let error = b"Failed to verify digest. Error code: 0";
        let mut out = vec![0x12, error.len() as u8];
        out.extend_from_slice(error);
        out
    }
}

/// The length-delimited fields of a protobuf message (all this one has).
fn protobuf_fields(mut bytes: &[u8]) -> Option<Vec<(u64, Vec<u8>)>> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (b, rest) = bytes.split_first()?;
            *bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let tag = varint(&mut bytes)?;
        if tag & 7 != 2 {
            return None;
        }
        let len = usize::try_from(varint(&mut bytes)?).ok()?;
        let value = bytes.get(..len)?.to_vec();
        bytes = &bytes[len..];
        out.push((tag >> 3, value));
    }
    Some(out)
}

/// A strict DER `ECDSA-Sig-Value` back to `r‖s` of `width`-byte scalars
/// (`None`: not canonical DER, or a scalar too wide).
fn der_ecdsa_to_raw(der: &[u8], width: usize) -> Option<Vec<u8>> {
    let (&tag, rest) = der.split_first()?;
    let (&len, mut body) = rest.split_first()?;
    if tag != 0x30 || len >= 0x80 || body.len() != usize::from(len) {
        return None;
    }
    let mut raw = Vec::with_capacity(2 * width);
    for _ in 0..2 {
        let (&t, rest) = body.split_first()?;
        let (&l, rest) = rest.split_first()?;
        let l = usize::from(l);
        let int = rest.get(..l)?;
        body = &rest[l..];
        let minimal = match int {
            [] => false,
            [0, next, ..] => next & 0x80 != 0,
            [first, ..] => first & 0x80 == 0,
        };
        let digits = if int.first() == Some(&0) {
            &int[1..]
        } else {
            int
        };
        if t != 0x02 || !minimal || digits.len() > width {
            return None;
        }
        raw.extend(std::iter::repeat(0).take(width - digits.len()));
        raw.extend_from_slice(digits);
    }
    body.is_empty().then_some(raw)
}

/// The public JWK of a fixture key as a DPoP client puts it in a proof's
/// `jwk` (no `kid`, `alg`, `use`).
pub fn public_jwk(kid: &str) -> serde_json::Map<String, Value> {
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let mut k = set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap()
        .as_object()
        .unwrap()
        .clone();
    for m in ["kid", "alg", "use"] {
        k.remove(m);
    }
    k
}

/// The RFC 7638 thumbprint of a fixture key (what `cnf.jkt` names).
pub fn jkt(kid: &str) -> String {
    fhir_smart_authz_core::token::binding::thumbprint::jwk_thumbprint(&public_jwk(kid)).unwrap()
}
