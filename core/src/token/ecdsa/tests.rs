//! ES384 checked against the `p384` crate (RustCrypto), which signs: its
//! signatures verify here, and what it refuses is refused here too.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use crypto_bigint::Encoding;
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey};

fn signing_key(seed: u8) -> SigningKey {
    let mut secret = [0x11u8; 48];
    secret[47] = seed;
    secret[0] = seed.wrapping_mul(7);
    SigningKey::from_slice(&secret).unwrap()
}

fn our_key(key: &SigningKey) -> VerifyingKey {
    let point = key.verifying_key().to_encoded_point(false);
    VerifyingKey::from_coordinates(&P384, point.x().unwrap(), point.y().unwrap()).unwrap()
}

fn theirs(key: &SigningKey, message: &[u8], signature: &[u8]) -> bool {
    Signature::try_from(signature).is_ok_and(|s| key.verifying_key().verify(message, &s).is_ok())
}

#[test]
fn signatures_of_the_reference_implementation_verify() {
    for seed in 1..=6u8 {
        let key = signing_key(seed);
        let ours = our_key(&key);
        assert_eq!(
            ours.sec1_uncompressed(),
            key.verifying_key().to_encoded_point(false).as_bytes()
        );
        for message in [&b""[..], b"a", b"header.payload", &[seed; 300]] {
            let signature: Signature = key.sign(message);
            let bytes = signature.to_bytes();
            assert!(verify_es384(&ours, message, &bytes), "seed {seed}");
            // The other key, another message: refused.
            assert!(!verify_es384(
                &our_key(&signing_key(seed + 1)),
                message,
                &bytes
            ));
            assert!(!verify_es384(&ours, b"other", &bytes));
        }
    }
}

/// Each byte of a signature changed, high-S, zero and out-of-range scalars,
/// wrong lengths: the same answer as the reference implementation.
#[test]
fn altered_signatures_are_judged_as_the_reference_judges_them() {
    let key = signing_key(9);
    let ours = our_key(&key);
    let message = b"eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiIxIn0";
    let good: Signature = key.sign(message);
    let good = good.to_bytes().to_vec();
    let n = P384.order.modulus().to_be_bytes();
    let s = U384::from_be_slice(&good[48..]);
    let high_s = P384.order.modulus().wrapping_sub(&s).to_be_bytes();
    let mut cases: Vec<Vec<u8>> = Vec::new();
    for i in 0..96 {
        let mut bad = good.clone();
        bad[i] ^= 0x01 << (i % 8);
        cases.push(bad);
    }
    cases.push([&good[..48], &high_s[..]].concat());
    cases.push([&[0u8; 48][..], &good[48..]].concat());
    cases.push([&good[..48], &[0u8; 48][..]].concat());
    cases.push([&n[..], &good[48..]].concat());
    cases.push([&good[..48], &n[..]].concat());
    cases.push([&[0xffu8; 48][..], &good[48..]].concat());
    cases.push(good[..95].to_vec());
    cases.push([&good[..], &[0u8][..]].concat());
    cases.push(Vec::new());
    for signature in cases {
        assert_eq!(
            verify_es384(&ours, message, &signature),
            theirs(&key, message, &signature),
            "{signature:02x?}"
        );
    }
}

#[test]
fn only_points_of_the_curve_are_keys() {
    let g = (P384.gx.to_be_bytes(), P384.gy.to_be_bytes());
    assert!(VerifyingKey::from_coordinates(&P384, &g.0, &g.1).is_some());
    let mut off = g.1;
    off[47] ^= 1;
    assert!(VerifyingKey::from_coordinates(&P384, &g.0, &off).is_none());
    let p = P384.field.modulus().to_be_bytes();
    assert!(VerifyingKey::from_coordinates(&P384, &p, &g.1).is_none());
    // A coordinate of the wrong length.
    assert!(VerifyingKey::from_coordinates(&P384, &g.0[1..], &g.1).is_none());
    assert!(VerifyingKey::from_coordinates(&P384, &[0u8; 48], &[0u8; 48]).is_none());
}
