//! One RS256 and one ES256 signature check natively: the module's path
//! behind the `verify_signature` seam (`ring`; for an ES256 key checked
//! before, its per-key table) against the core's pure-Rust verifier (the
//! wasm build's fallback), on the fixture tokens and keys of the token
//! tests. Then ES256 by `ring` alone and by a key's table, side by side,
//! and what a table costs to build.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fhir_smart_authz_core::token::alg::JwsAlgorithm;
use fhir_smart_authz_core::token::{
    HostAssistedVerifier, KeySet, RustCryptoVerifier, SignatureVerifier,
};
use fhir_smart_authz_native::crypto::p256::KeyTable;
use fhir_smart_authz_native::crypto::verify_signature;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING,
};
use serde_json::Value;

const JWKS: &str = include_str!("../../tests/fixtures/keys/jwks.json");
const TOKENS: &str = include_str!("../../tests/fixtures/keys/reference_tokens.json");

fn bench(c: &mut Criterion) {
    let keys = KeySet::parse(JWKS.as_bytes()).unwrap();
    let tokens: Vec<Value> = serde_json::from_str(TOKENS).unwrap();
    let native = HostAssistedVerifier::new(|args: &[u8]| {
        verify_signature(args).ok_or_else(|| "not checked natively".to_string())
    });
    for name in ["RS256", "ES256"] {
        let t = tokens
            .iter()
            .find(|t| t["alg"] == name && t["case"] == "valid")
            .unwrap();
        let token = t["token"].as_str().unwrap();
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(input.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        let kid = header["kid"].as_str().unwrap();
        let key = keys
            .keys()
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .unwrap();
        let alg = JwsAlgorithm::from_name(name).unwrap();
        for (label, verifier) in [
            ("module", &native as &dyn SignatureVerifier),
            ("pure_rust", &RustCryptoVerifier),
        ] {
            assert_eq!(
                verifier.verify(alg, key, input.as_bytes(), &sig),
                Ok(true),
                "{name} {label}"
            );
            c.bench_function(&format!("{name}_{label}"), |b| {
                b.iter(|| verifier.verify(alg, key, black_box(input.as_bytes()), black_box(&sig)))
            });
        }
    }
}

/// ES256 with a per-key table (the module's path for a key used again)
/// next to `ring` alone, on one key and a token-sized message; and what a
/// table costs to build.
fn es256_table(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let point = pair.public_key().as_ref().to_vec();
    let message = vec![b'a'; 700];
    let sig = pair.sign(&rng, &message).unwrap();
    let ring_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point);
    let table = KeyTable::new(&point).unwrap();
    assert!(ring_key.verify(&message, sig.as_ref()).is_ok());
    assert_eq!(table.verify(&message, sig.as_ref()), Some(true));
    c.bench_function("ES256_ring_verify", |b| {
        b.iter(|| ring_key.verify(black_box(&message), black_box(sig.as_ref())))
    });
    c.bench_function("ES256_table_verify", |b| {
        b.iter(|| table.verify(black_box(&message), black_box(sig.as_ref())))
    });
    c.bench_function("ES256_table_build", |b| {
        b.iter(|| KeyTable::new(black_box(&point)))
    });
    eprintln!("ES256 table: {} bytes per key", KeyTable::BYTES);
}

criterion_group!(benches, bench, es256_table);
criterion_main!(benches);
