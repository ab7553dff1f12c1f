//! Signature checks on the native path: what Envoy's `verify_signature`
//! foreign function is to the wasm build (BoringSSL), with `ring` (BoringSSL's
//! primitives), behind the same seam: the core's `HostAssistedVerifier`
//! encodes the request, this answers it. RS256/384/512 and ES256/384; the
//! core checks anything else in pure Rust. ES256 keys used again are checked
//! with a per-key table (`es256`), with the same answers as `ring`.

mod es256;
pub mod p256;

use fhir_smart_authz_core::token::host_crypto::{
    decode_verify_signature_args, encode_verify_signature_result,
};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};

/// rsaEncryption and id-ecPublicKey (RFC 8017, RFC 5480), DER-encoded OIDs.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];

/// One DER element at the start of `der`: (tag, contents, rest).
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        (
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
            rest,
        )
    };
    (rest.len() >= len).then(|| {
        let (contents, rest) = rest.split_at(len);
        (tag, contents, rest)
    })
}

/// A SubjectPublicKeyInfo → (algorithm OID, the key bits).
fn spki(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, info, _) = element(der)? else {
        return None;
    };
    let (0x30, algorithm, rest) = element(info)? else {
        return None;
    };
    let (0x06, oid, _) = element(algorithm)? else {
        return None;
    };
    let (0x03, bits, _) = element(rest)? else {
        return None;
    };
    // A BIT STRING starts with the count of unused bits: 0 for keys.
    let (0, key) = bits.split_first()? else {
        return None;
    };
    Some((oid, key))
}

/// Who checks a signature: `ring`, or for ES256 `es256` (per-key tables
/// in front of `ring`).
enum Checker {
    Ring(&'static dyn VerificationAlgorithm),
    Es256,
}

fn algorithm(oid: &[u8], hash: &str, key: &[u8]) -> Option<Checker> {
    Some(Checker::Ring(match (oid, hash, key.len()) {
        (OID_RSA, "sha256", _) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (OID_RSA, "sha384", _) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (OID_RSA, "sha512", _) => &signature::RSA_PKCS1_2048_8192_SHA512,
        // An uncompressed P-256 point is 65 bytes, a P-384 one 97.
        (OID_EC, "sha256", 65) => return Some(Checker::Es256),
        (OID_EC, "sha384", 97) => &signature::ECDSA_P384_SHA384_ASN1,
        _ => return None,
    }))
}

/// Answer a `verify_signature` request (encoded arguments → encoded
/// result); `None` when it cannot be checked here (then the core checks it
/// in pure Rust).
pub fn verify_signature(args: &[u8]) -> Option<Vec<u8>> {
    let args = decode_verify_signature_args(args).ok()?;
    let (oid, key) = spki(args.public_key_der)?;
    let alg = algorithm(oid, args.hash_function, key)?;
    let ok = match alg {
        Checker::Es256 => es256::verify(key, args.text, args.signature),
        Checker::Ring(alg) => UnparsedPublicKey::new(alg, key)
            .verify(args.text, args.signature)
            .is_ok(),
    };
    Some(encode_verify_signature_result(ok, ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fhir_smart_authz_core::token::host_crypto::{
        decode_verify_signature_result, encode_verify_signature_args,
    };
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};

    /// SubjectPublicKeyInfo of a P-256 point (RFC 5480): the fixed prefix.
    const P256_SPKI_PREFIX: &[u8] = &[
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];

    #[test]
    fn es256_verifies_and_refuses_like_the_host() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = [P256_SPKI_PREFIX, pair.public_key().as_ref()].concat();
        let sig = pair.sign(&rng, b"header.payload").unwrap();
        let answer = |text: &[u8], hash: &str| {
            verify_signature(&encode_verify_signature_args(
                hash,
                &spki,
                sig.as_ref(),
                text,
            ))
            .map(|r| decode_verify_signature_result(&r).unwrap())
        };
        assert_eq!(
            answer(b"header.payload", "sha256"),
            Some((true, String::new()))
        );
        assert_eq!(
            answer(b"header.payloaX", "sha256"),
            Some((false, String::new()))
        );
        // A P-256 key with SHA-384 is no JWS algorithm: not checked here.
        assert_eq!(answer(b"header.payload", "sha384"), None);
        assert_eq!(verify_signature(b"\xff"), None);
    }
}
