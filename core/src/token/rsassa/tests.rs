//! RSA checked against the `rsa` crate (RustCrypto, through jwt-compact as
//! the filter used it before): its signatures verify here, what it refuses
//! is refused here too, keys it refuses are refused with its words, and the
//! SubjectPublicKeyInfo is its bytes.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use ::rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use ::rsa::traits::PublicKeyParts;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use jwt_compact::alg::{Rsa, RsaPrivateKey, RsaSignature};
use jwt_compact::{Algorithm, AlgorithmSignature};

/// Keys of the fixture set (2048 bits) and of odd sizes made once with
/// Python's `cryptography` (`tests/fixtures/keys/rsa_sizes.json`: 2049 and
/// 2055 bits, where PSS drops the first byte of the encoding, 3072, 4096).
fn keys() -> Vec<RsaPrivateKey> {
    let fixtures: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/keys/private_keys.json"
    ))
    .unwrap();
    let sizes: serde_json::Value = serde_json::from_str(include_str!(
        "../../../../tests/fixtures/keys/rsa_sizes.json"
    ))
    .unwrap();
    let mut der = vec![fixtures["rsa1"]["pkcs8_der_b64"].as_str().unwrap()];
    der.extend(
        sizes
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap()),
    );
    der.into_iter()
        .map(|b64| RsaPrivateKey::from_pkcs8_der(&STANDARD.decode(b64).unwrap()).unwrap())
        .collect()
}

fn ours(key: &::rsa::RsaPublicKey) -> RsaPublicKey {
    RsaPublicKey::new(&key.n().to_bytes_be(), &key.e().to_bytes_be()).unwrap()
}

const ALGORITHMS: [(&str, Hash, Padding); 6] = [
    ("RS256", Hash::Sha256, Padding::Pkcs1v15),
    ("RS384", Hash::Sha384, Padding::Pkcs1v15),
    ("RS512", Hash::Sha512, Padding::Pkcs1v15),
    ("PS256", Hash::Sha256, Padding::Pss),
    ("PS384", Hash::Sha384, Padding::Pss),
    ("PS512", Hash::Sha512, Padding::Pss),
];

fn theirs(alg: &Rsa, key: &::rsa::RsaPublicKey, message: &[u8], signature: &[u8]) -> bool {
    RsaSignature::try_from_slice(signature).is_ok_and(|s| alg.verify_signature(&s, key, message))
}

#[test]
fn signatures_verify_as_the_rsa_crate_verifies_them() {
    let message = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0";
    for private in keys() {
        let public = private.to_public_key();
        let key = ours(&public);
        assert_eq!(key.bits(), public.n().bits());
        assert_eq!(key.size(), public.size());
        assert_eq!(
            key.spki_der(),
            public.to_public_key_der().unwrap().as_bytes(),
            "{} bits",
            key.bits()
        );
        let n = public.n().to_bytes_be();
        for (name, hash, padding) in ALGORITHMS {
            let alg: Rsa = name.parse().unwrap();
            let good = alg.sign(&private, message).as_bytes().into_owned();
            let at = format!("{name}, {} bits", key.bits());
            assert!(key.verify(hash, padding, message, &good), "{at}");
            assert!(!key.verify(hash, padding, b"other", &good), "{at}");
            let mut cases = vec![good[1..].to_vec(), [&good[..], &[0][..]].concat()];
            for i in [0, 1, good.len() / 2, good.len() - 1] {
                let mut bad = good.clone();
                bad[i] ^= 0x40;
                cases.push(bad);
            }
            // The representative plus the modulus, where it still fits.
            let plus_n = ::rsa::BigUint::from_bytes_be(&good) + public.n();
            let plus_n = plus_n.to_bytes_be();
            if plus_n.len() == good.len() {
                cases.push(plus_n);
            }
            cases.push(n.clone());
            cases.push(vec![0xff; good.len()]);
            for signature in cases {
                let ours = key.verify(hash, padding, message, &signature);
                if signature.len() == n.len() && signature >= n {
                    // At or above the modulus: refused for both paddings
                    // (the `rsa` crate reduces a PSS one; RFC 8017 §5.2.2).
                    assert!(!ours, "{at}: {signature:02x?}");
                } else {
                    assert_eq!(
                        ours,
                        theirs(&alg, &public, message, &signature),
                        "{at}: {signature:02x?}"
                    );
                }
            }
        }
    }
}

#[test]
fn keys_are_refused_as_the_rsa_crate_refuses_them() {
    let n2048 = {
        let mut n = vec![0xc5u8; 256];
        n[255] = 0x01;
        n
    };
    let even = {
        let mut n = n2048.clone();
        n[255] = 0x02;
        n
    };
    let n4097 = [&[1u8][..], &[0x55; 512][..]].concat();
    let small = vec![0x01, 0x01];
    let cases: [(&[u8], &[u8]); 11] = [
        (&n2048, &[1, 0, 1]),
        (&n2048, &[3]),
        (&n2048, &[0, 0, 1, 0, 1]),
        (&even, &[1, 0, 1]),
        (&n2048, &[1, 0, 0]),
        (&n2048, &[1]),
        (&n2048, &[0]),
        (&n2048, &[2, 0, 0, 0, 1]),
        (&n2048, &[1, 0, 0, 0, 0, 0, 0, 0, 1]),
        (&n4097, &[1, 0, 1]),
        (&small, &[1, 0, 1]),
    ];
    for (n, e) in cases {
        let theirs = ::rsa::RsaPublicKey::new(
            ::rsa::BigUint::from_bytes_be(n),
            ::rsa::BigUint::from_bytes_be(e),
        )
        .map(|_| ())
        .map_err(|e| e.to_string());
        let ours = RsaPublicKey::new(n, e).map(|_| ()).map_err(str::to_string);
        assert_eq!(ours, theirs, "n {} bytes, e {e:02x?}", n.len());
    }
}
