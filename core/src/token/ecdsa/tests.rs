//! ES256 and ES384 checked against RustCrypto's `p256` and `p384`, which
//! sign: their signatures verify here, and what they refuse is refused here
//! too.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use ::rsa::BigUint;

/// One curve's reference implementation: a key from a seed (its public
/// point `x`, `y`), a signature of a message, and its verdict.
struct Reference {
    curve: &'static Curve,
    verify: fn(&VerifyingKey, &[u8], &[u8]) -> bool,
    public: fn(u8) -> (Vec<u8>, Vec<u8>),
    sign: fn(u8, &[u8]) -> Vec<u8>,
    theirs: fn(u8, &[u8], &[u8]) -> bool,
}

fn secret(seed: u8, size: usize) -> Vec<u8> {
    let mut secret = vec![0x11u8; size];
    secret[size - 1] = seed;
    secret[0] = seed.wrapping_mul(7);
    secret
}

/// The reference of a RustCrypto curve crate (`p256`, `p384`).
macro_rules! reference {
    ($krate:ident, $curve:expr, $verify:expr) => {
        Reference {
            curve: &$curve,
            verify: $verify,
            public: |seed| {
                let key =
                    $krate::ecdsa::SigningKey::from_slice(&secret(seed, $curve.size)).unwrap();
                let point = key.verifying_key().to_encoded_point(false);
                (point.x().unwrap().to_vec(), point.y().unwrap().to_vec())
            },
            sign: |seed, message| {
                use $krate::ecdsa::signature::Signer;
                let key =
                    $krate::ecdsa::SigningKey::from_slice(&secret(seed, $curve.size)).unwrap();
                let signature: $krate::ecdsa::Signature = key.sign(message);
                signature.to_bytes().to_vec()
            },
            theirs: |seed, message, signature| {
                use $krate::ecdsa::signature::Verifier;
                let key =
                    $krate::ecdsa::SigningKey::from_slice(&secret(seed, $curve.size)).unwrap();
                $krate::ecdsa::Signature::try_from(signature)
                    .is_ok_and(|s| key.verifying_key().verify(message, &s).is_ok())
            },
        }
    };
}

const P256_REFERENCE: Reference = reference!(p256, P256, verify_es256);
const P384_REFERENCE: Reference = reference!(p384, P384, verify_es384);

fn our_key(r: &Reference, seed: u8) -> VerifyingKey {
    let (x, y) = (r.public)(seed);
    VerifyingKey::from_coordinates(r.curve, &x, &y).unwrap()
}

#[test]
fn signatures_of_the_reference_implementations_verify() {
    for r in [P256_REFERENCE, P384_REFERENCE] {
        for seed in 1..=4u8 {
            let key = our_key(&r, seed);
            let (x, y) = (r.public)(seed);
            assert_eq!(key.sec1_uncompressed(), [&[4u8][..], &x, &y].concat());
            for message in [&b""[..], b"a", b"header.payload", &[seed; 300]] {
                let signature = (r.sign)(seed, message);
                assert!((r.verify)(&key, message, &signature), "seed {seed}");
                // Another key, another message: refused.
                assert!(!(r.verify)(&our_key(&r, seed + 1), message, &signature));
                assert!(!(r.verify)(&key, b"other", &signature));
            }
        }
    }
}

/// Each byte of a signature changed, high-S, zero and out-of-range scalars,
/// wrong lengths: the same answer as the reference implementation.
#[test]
fn altered_signatures_are_judged_as_the_reference_judges_them() {
    for r in [P256_REFERENCE, P384_REFERENCE] {
        let size = r.curve.size();
        let key = our_key(&r, 9);
        let message = b"eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiIxIn0";
        let good = (r.sign)(9, message);
        let n = hex(r.curve.n);
        let s = BigUint::from_bytes_be(&good[size..]);
        let high_s = (BigUint::from_bytes_be(&n) - s).to_bytes_be();
        let high_s = [&vec![0u8; size - high_s.len()][..], &high_s].concat();
        let (head, tail) = (&good[..size], &good[size..]);
        let zero = vec![0u8; size];
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for i in 0..2 * size {
            let mut bad = good.clone();
            bad[i] ^= 0x01 << (i % 8);
            cases.push(bad);
        }
        cases.push([head, &high_s].concat());
        cases.push([&zero, tail].concat());
        cases.push([head, &zero].concat());
        cases.push([&n, tail].concat());
        cases.push([head, &n].concat());
        cases.push([&vec![0xffu8; size][..], tail].concat());
        cases.push(good[..2 * size - 1].to_vec());
        cases.push([&good[..], &[0u8][..]].concat());
        cases.push(Vec::new());
        for signature in cases {
            assert_eq!(
                (r.verify)(&key, message, &signature),
                (r.theirs)(9, message, &signature),
                "{signature:02x?}"
            );
        }
    }
}

#[test]
fn only_points_of_the_curve_are_keys() {
    for curve in [&P256, &P384] {
        let size = curve.size();
        let (gx, gy) = (hex(curve.gx), hex(curve.gy));
        assert!(VerifyingKey::from_coordinates(curve, &gx, &gy).is_some());
        let mut off = gy.clone();
        off[size - 1] ^= 1;
        assert!(VerifyingKey::from_coordinates(curve, &gx, &off).is_none());
        let p = hex(curve.p);
        assert!(VerifyingKey::from_coordinates(curve, &p, &gy).is_none());
        // A coordinate of the wrong length.
        assert!(VerifyingKey::from_coordinates(curve, &gx[1..], &gy).is_none());
        let zero = vec![0u8; size];
        assert!(VerifyingKey::from_coordinates(curve, &zero, &zero).is_none());
    }
}
