//! JWS algorithms, public keys and the signature-verification seam.
//!
//! The algorithm is always pinned by the configuration and the key (never by
//! the token alone): [`JwsAlgorithm::from_name`] knows only the asymmetric
//! algorithms below, so `none` and `HS*` cannot even be named.

use super::ecdsa;
use super::rsassa::{Hash, Padding, RsaPublicKey};
use std::fmt;

/// The supported JWS algorithms (RFC 7518 / RFC 8037 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl JwsAlgorithm {
    pub const ALL: [JwsAlgorithm; 9] = [
        JwsAlgorithm::RS256,
        JwsAlgorithm::RS384,
        JwsAlgorithm::RS512,
        JwsAlgorithm::PS256,
        JwsAlgorithm::PS384,
        JwsAlgorithm::PS512,
        JwsAlgorithm::ES256,
        JwsAlgorithm::ES384,
        JwsAlgorithm::EdDSA,
    ];

    /// Exact (case-sensitive, RFC 7515 §4.1.1) name lookup.
    pub fn from_name(name: &str) -> Option<JwsAlgorithm> {
        JwsAlgorithm::ALL.into_iter().find(|a| a.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::RS256 => "RS256",
            JwsAlgorithm::RS384 => "RS384",
            JwsAlgorithm::RS512 => "RS512",
            JwsAlgorithm::PS256 => "PS256",
            JwsAlgorithm::PS384 => "PS384",
            JwsAlgorithm::PS512 => "PS512",
            JwsAlgorithm::ES256 => "ES256",
            JwsAlgorithm::ES384 => "ES384",
            JwsAlgorithm::EdDSA => "EdDSA",
        }
    }

    pub fn key_kind(self) -> KeyKind {
        match self {
            JwsAlgorithm::RS256
            | JwsAlgorithm::RS384
            | JwsAlgorithm::RS512
            | JwsAlgorithm::PS256
            | JwsAlgorithm::PS384
            | JwsAlgorithm::PS512 => KeyKind::Rsa,
            JwsAlgorithm::ES256 => KeyKind::P256,
            JwsAlgorithm::ES384 => KeyKind::P384,
            JwsAlgorithm::EdDSA => KeyKind::Ed25519,
        }
    }

    /// The hash and padding of an RSA algorithm.
    fn rsa(self) -> Option<(Hash, Padding)> {
        Some(match self {
            JwsAlgorithm::RS256 => (Hash::Sha256, Padding::Pkcs1v15),
            JwsAlgorithm::RS384 => (Hash::Sha384, Padding::Pkcs1v15),
            JwsAlgorithm::RS512 => (Hash::Sha512, Padding::Pkcs1v15),
            JwsAlgorithm::PS256 => (Hash::Sha256, Padding::Pss),
            JwsAlgorithm::PS384 => (Hash::Sha384, Padding::Pss),
            JwsAlgorithm::PS512 => (Hash::Sha512, Padding::Pss),
            _ => return None,
        })
    }
}

/// The algorithms a configuration list names (validated names; an empty
/// list is every supported one).
pub fn configured_algorithms(names: &[String]) -> Vec<JwsAlgorithm> {
    if names.is_empty() {
        return JwsAlgorithm::ALL.to_vec();
    }
    names
        .iter()
        .filter_map(|a| JwsAlgorithm::from_name(a))
        .collect()
}

impl fmt::Display for JwsAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A usable public verification key.
#[derive(Debug, Clone, PartialEq)]
pub enum PublicKey {
    Rsa(Box<RsaPublicKey>),
    P256(ecdsa::VerifyingKey),
    P384(ecdsa::VerifyingKey),
    Ed25519(ed25519_compact::PublicKey),
}

impl PublicKey {
    pub fn kind(&self) -> KeyKind {
        match self {
            PublicKey::Rsa(_) => KeyKind::Rsa,
            PublicKey::P256(_) => KeyKind::P256,
            PublicKey::P384(_) => KeyKind::P384,
            PublicKey::Ed25519(_) => KeyKind::Ed25519,
        }
    }

    /// The key as DER SubjectPublicKeyInfo (for Envoy's `verify_signature`):
    /// RSA, P-256 and P-384 keys (those the host path is used for).
    pub fn spki_der(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::Rsa(k) => Some(k.spki_der()),
            PublicKey::P256(k) => Some(ec_spki(P256_SPKI_PREFIX, k.sec1_uncompressed())),
            PublicKey::P384(k) => Some(ec_spki(P384_SPKI_PREFIX, k.sec1_uncompressed())),
            PublicKey::Ed25519(_) => None,
        }
    }
}

/// DER SubjectPublicKeyInfo up to the uncompressed point (RFC 5480):
/// SEQUENCE { SEQUENCE { id-ecPublicKey, secp256r1 }, BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The same for secp384r1.
const P384_SPKI_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
    0x81, 0x04, 0x00, 0x22, 0x03, 0x62, 0x00,
];

fn ec_spki(prefix: &[u8], point: &[u8]) -> Vec<u8> {
    let mut der = Vec::with_capacity(prefix.len() + point.len());
    der.extend_from_slice(prefix);
    der.extend_from_slice(point);
    der
}

/// Pure-Rust signature check. Any malformed signature (wrong length, zero
/// ECDSA scalars, ...) is simply `false`.
pub fn verify_pure(alg: JwsAlgorithm, key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match (alg.key_kind(), key) {
        (KeyKind::Rsa, PublicKey::Rsa(k)) => match alg.rsa() {
            // RFC 7518 §3.3: the signature is exactly the modulus length
            // (`verify` checks it).
            Some((hash, padding)) => k.verify(hash, padding, message, signature),
            None => false,
        },
        (KeyKind::P256, PublicKey::P256(k)) => ecdsa::verify_es256(k, message, signature),
        (KeyKind::P384, PublicKey::P384(k)) => ecdsa::verify_es384(k, message, signature),
        (KeyKind::Ed25519, PublicKey::Ed25519(k)) => {
            match ed25519_compact::Signature::from_slice(signature) {
                Ok(sig) => k.verify(message, &sig).is_ok(),
                Err(_) => false,
            }
        }
        _ => false,
    }
}
