//! The table path held to `ring`, to the core's pure-Rust ECDSA (the wasm
//! build's fallback) and to RustCrypto's `p256` over random keys, messages
//! and signatures, valid and not.

use ::p256::ecdsa::signature::{Signer, Verifier};
use ::p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fhir_smart_authz_core::token::{JwsAlgorithm, KeySet, RustCryptoVerifier, SignatureVerifier};
use proptest::prelude::*;
use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_ASN1};

use super::field::Fe;
use super::limbs::{self, Limbs};
use super::point::{Affine, Jacobian, G};
use super::scalar::{Scalar, N};
use super::KeyTable;

fn ring_answer(point: &[u8], message: &[u8], der: &[u8]) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, point)
        .verify(message, der)
        .is_ok()
}

fn rust_crypto_answer(point: &[u8], message: &[u8], der: &[u8]) -> bool {
    let (Ok(key), Ok(signature)) = (
        VerifyingKey::from_sec1_bytes(point),
        Signature::from_der(der),
    ) else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// The core's pure path: the key as a JWK, the signature as JWS (r ‖ s).
fn core_answer(point: &[u8], message: &[u8], r: &[u8; 32], s: &[u8; 32]) -> bool {
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..]),
    }]});
    let Ok(keys) = KeySet::parse(jwks.to_string().as_bytes()) else {
        return false;
    };
    let [key] = keys.keys() else {
        return false;
    };
    let es256 = JwsAlgorithm::from_name("ES256").unwrap();
    RustCryptoVerifier.verify(es256, key, message, &[&r[..], &s[..]].concat()) == Ok(true)
}

/// The table path's answer: `None` when the key has no table (off the
/// curve) or the DER is not minimal (both then go to `ring`).
fn table_answer(point: &[u8], message: &[u8], der: &[u8]) -> Option<bool> {
    KeyTable::new(point)?.verify(message, der)
}

/// Minimal DER of SEQUENCE { INTEGER r, INTEGER s }.
pub(crate) fn der(r: &[u8; 32], s: &[u8; 32]) -> Vec<u8> {
    fn integer(value: &[u8; 32]) -> Vec<u8> {
        let start = value.iter().position(|&b| b != 0).unwrap_or(31);
        let mut contents = value[start..].to_vec();
        if contents[0] & 0x80 != 0 {
            contents.insert(0, 0);
        }
        [vec![0x02, contents.len() as u8], contents].concat()
    }
    let body = [integer(r), integer(s)].concat();
    [vec![0x30, body.len() as u8], body].concat()
}

fn be(value: &Limbs) -> [u8; 32] {
    limbs::to_be_bytes(value)
}

/// A key from 32 seed bytes (skipping the rare seed that is no scalar).
pub(crate) fn signing_key(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_slice(&seed).unwrap_or_else(|_| SigningKey::from_slice(&[7; 32]).unwrap())
}

pub(crate) fn point_of(key: &SigningKey) -> Vec<u8> {
    VerifyingKey::from(key)
        .to_encoded_point(false)
        .as_bytes()
        .to_vec()
}

/// Every answer the same; the expected one where the case says.
fn assert_all_answer(
    point: &[u8],
    message: &[u8],
    (r, s): (&[u8; 32], &[u8; 32]),
    expected: bool,
    case: &str,
) {
    let der = der(r, s);
    assert_eq!(ring_answer(point, message, &der), expected, "ring, {case}");
    assert_eq!(core_answer(point, message, r, s), expected, "core, {case}");
    assert_eq!(
        rust_crypto_answer(point, message, &der),
        expected,
        "p256, {case}"
    );
    assert_eq!(
        table_answer(point, message, &der),
        Some(expected),
        "table, {case}"
    );
}

fn check_key(seed: [u8; 32], message: &[u8], flip: usize) {
    let key = signing_key(seed);
    let point = point_of(&key);
    let signature: Signature = key.sign(message);
    let r: [u8; 32] = signature.r().to_bytes().into();
    let s: [u8; 32] = signature.s().to_bytes().into();
    let r_limbs = limbs::from_be_bytes(&r);
    let s_limbs = limbs::from_be_bytes(&s);
    let table = KeyTable::new(&point).unwrap();
    let valid = der(&r, &s);
    assert_all_answer(&point, message, (&r, &s), true, "valid");
    assert_eq!(table.verify(message, &valid), Some(true));

    let mut tampered = message.to_vec();
    if tampered.is_empty() {
        tampered.push(0);
    } else {
        let at = flip % tampered.len();
        tampered[at] ^= 1 << (flip % 8);
    }
    assert_all_answer(&point, &tampered, (&r, &s), false, "tampered message");

    let mut r_tampered = r;
    r_tampered[flip % 32] ^= 1 << (flip % 8);
    let mut s_tampered = s;
    s_tampered[flip % 32] ^= 1 << (flip % 8);
    for (case, r, s) in [
        ("tampered r", r_tampered, s),
        ("tampered s", r, s_tampered),
        ("r = 0", [0; 32], s),
        ("s = 0", r, [0; 32]),
        ("r = n", be(&N), s),
        ("s = n", r, be(&N)),
        ("r = n + 1", be(&limbs::add(&N, &[1, 0, 0, 0]).0), s),
    ] {
        assert_all_answer(&point, message, (&r, &s), false, case);
    }

    // ECDSA accepts (r, n − s) as well; RustCrypto's verifier does too.
    let high_s = be(&limbs::sub(&N, &s_limbs).0);
    assert_all_answer(&point, message, (&r, &high_s), true, "s high");

    // r + n ≡ r (mod n) but is no scalar: refused.
    let (r_plus_n, carry) = limbs::add(&r_limbs, &N);
    if carry == 0 {
        assert_all_answer(&point, message, (&be(&r_plus_n), &s), false, "r + n");
    }

    // The key off the curve: y + 1 (or a coordinate ≥ p): no table; ring refuses.
    let mut off_curve = point.clone();
    off_curve[64] ^= 1;
    assert!(KeyTable::new(&off_curve).is_none());
    assert!(!ring_answer(&off_curve, message, &valid));
    assert!(!core_answer(&off_curve, message, &r, &s));
    let mut x_at_p = point.clone();
    x_at_p[1..33].copy_from_slice(&[
        0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    assert!(KeyTable::new(&x_at_p).is_none());
    assert!(KeyTable::new(&point[..64]).is_none());
    let mut compressed = point[..33].to_vec();
    compressed[0] = 0x02 | (point[64] & 1);
    assert!(KeyTable::new(&compressed).is_none());
    assert!(!ring_answer(&compressed, message, &valid));

    // A signature in DER the table path does not read (a needless leading
    // zero, a trailing byte, long-form length): left to ring, which refuses.
    let mut padded = valid.clone();
    padded[1] += 1;
    padded[3] += 1;
    padded.insert(4, 0);
    let mut trailing = valid.clone();
    trailing[1] += 1;
    trailing.push(0);
    let mut long_form = vec![0x30, 0x81];
    long_form.extend_from_slice(&valid[1..]);
    for (case, der) in [
        ("padded r", padded),
        ("trailing byte", trailing),
        ("long form", long_form),
    ] {
        assert!(!ring_answer(&point, message, &der), "ring, {case}");
        assert_eq!(table_answer(&point, message, &der), None, "{case}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn tables_answer_as_ring_and_rust_crypto(
        seed in any::<[u8; 32]>(),
        message in proptest::collection::vec(any::<u8>(), 0..300),
        flip in any::<usize>(),
    ) {
        check_key(seed, &message, flip);
    }
}

/// k·point, double and add (a reference independent of the tables).
fn multiply(point: &Affine, k: &Scalar) -> Jacobian {
    let mut sum = Jacobian::INFINITY;
    for limb in k.limbs().iter().rev() {
        for bit in (0..64).rev() {
            sum = sum.double();
            if (limb >> bit) & 1 == 1 {
                sum = sum.add_affine(point);
            }
        }
    }
    sum
}

fn encode(point: &Affine) -> Vec<u8> {
    [
        &[0x04][..],
        &be(&point.x.to_integer()),
        &be(&point.y.to_integer()),
    ]
    .concat()
}

/// The rare valid signature with x(R) ≥ n (r = x(R) − n), which a check of
/// x(R) = r alone refuses: built by choosing R and solving for the key.
#[test]
fn x_of_r_above_n_is_accepted_as_ring_does() {
    let b = Fe::from_be_bytes(&be(&[
        0x3bce_3c3e_27d2_604b,
        0x651d_06b0_cc53_b0f6,
        0xb3eb_bd55_7698_86bc,
        0x5ac6_35d8_aa3a_93e7,
    ]))
    .unwrap();
    // (p + 1) / 4: the square root exponent (p ≡ 3 mod 4).
    let sqrt_exponent: Limbs = [0, 0x4000_0000, 0x4000_0000_0000_0000, 0x3fff_ffff_c000_0000];
    let g = Affine::from_uncompressed(&G).unwrap();
    let mut found = 0;
    for t in 1u64..40 {
        let x_limbs = limbs::add(&N, &[t, 0, 0, 0]).0;
        let x = Fe::from_integer(&x_limbs).unwrap();
        let right = x.square().mul(&x).sub(&x.double().add(&x)).add(&b);
        let y = right.pow(&sqrt_exponent);
        if y.square() != right {
            continue;
        }
        let r_point = Affine { x, y };
        let r = Scalar([t, 0, 0, 0]);
        let message = format!("message {t}");
        let digest = ring::digest::digest(&ring::digest::SHA256, message.as_bytes());
        let e = Scalar::from_hash(digest.as_ref().try_into().unwrap());
        let s = Scalar([0x1357_9bdf_2468_ace0, t, 0x55, 0x0123]);
        let s_inverse = s.invert();
        let (u1, u2) = (e.mul(&s_inverse), r.mul(&s_inverse));
        // Q = u₂⁻¹·(R − u₁·G)
        let minus_u1_g = multiply(&g, &u1).to_affine().unwrap().neg();
        let difference = Jacobian::from_affine(&r_point)
            .add_affine(&minus_u1_g)
            .to_affine()
            .unwrap();
        let q = multiply(&difference, &u2.invert()).to_affine().unwrap();
        let point = encode(&q);
        let (r, s) = (be(r.limbs()), be(s.limbs()));
        assert_all_answer(&point, message.as_bytes(), (&r, &s), true, "x(R) = r + n");
        // r + n itself is refused.
        let r_plus_n = be(&x_limbs);
        assert_all_answer(&point, message.as_bytes(), (&r_plus_n, &s), false, "r + n");
        found += 1;
    }
    assert!(found >= 5, "{found}");
}
