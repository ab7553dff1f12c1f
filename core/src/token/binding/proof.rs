//! A DPoP proof (RFC 9449 §4.2) taken apart and checked on its own (§4.3
//! steps 2-7): a compact JWS, `typ` `dpop+jwt`, an allowed asymmetric
//! `alg`, a public `jwk` that verifies the signature, and the `jti`,
//! `htm`, `htu`, `iat` claims. What it is checked against (the request,
//! the token, the clock) is in [`super::check`].

use super::thumbprint::jwk_thumbprint;
use crate::decision::Reason;
use crate::token::alg::JwsAlgorithm;
use crate::token::error::TokenError;
use crate::token::jose::{self, TimeClaims};
use crate::token::keys::Jwk;
use crate::token::signature::SignatureVerifier;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// Largest proof accepted (bytes): a proof with an RSA-4096 key is ~2 KB.
pub const MAX_PROOF_BYTES: usize = 8192;

/// JWK members that carry private or symmetric key material (RFC 7517/7518).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof whose structure, key and signature checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// RFC 7638 thumbprint of the proof key (base64url).
    pub jkt: String,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub iat: u64,
    pub ath: Option<String>,
    pub nonce: Option<String>,
}

pub(super) fn invalid(why: impl Into<String>) -> TokenError {
    TokenError::new(Reason::InvalidDpopProof, why)
}

/// The proof as a compact JWS: header, claims, signing input, signature.
pub struct ProofParts<'p> {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub signing_input: &'p [u8],
    pub signature: Vec<u8>,
}

/// Split and decode a proof (no check but its syntax): strict base64url,
/// JSON objects without duplicate members. The fuzz target's entry point.
pub fn parse_parts(proof: &str) -> Result<ProofParts<'_>, TokenError> {
    let (h64, p64, s64) = split(proof)?;
    let header = jose::decode_json_segment(h64, "header").map_err(as_proof)?;
    let rest = decode_rest(proof, h64, p64, s64)?;
    Ok(ProofParts {
        header,
        claims: rest.claims,
        signing_input: rest.signing_input,
        signature: rest.signature,
    })
}

fn as_proof(e: TokenError) -> TokenError {
    invalid(format!("DPoP proof: {}", e.description))
}

/// The proof's three base64url segments (header, payload, signature).
fn split(proof: &str) -> Result<(&str, &str, &str), TokenError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(invalid(format!(
            "the DPoP proof is larger than {MAX_PROOF_BYTES} bytes"
        )));
    }
    jose::split_compact(proof)
        .ok_or_else(|| invalid("the DPoP proof is not a compact JWS (three base64url parts)"))
}

/// What follows a proof's header.
struct Rest<'p> {
    claims: Map<String, Value>,
    signing_input: &'p [u8],
    signature: Vec<u8>,
}

/// The claims, the signing input and the signature of a split proof.
fn decode_rest<'p>(
    proof: &'p str,
    h64: &str,
    p64: &str,
    s64: &str,
) -> Result<Rest<'p>, TokenError> {
    let claims = jose::decode_json_segment(p64, "payload").map_err(as_proof)?;
    let signature = jose::decode_b64url(s64, "signature").map_err(as_proof)?;
    let signing_input = proof
        .get(..h64.len() + 1 + p64.len())
        .ok_or_else(|| invalid("the DPoP proof is malformed"))?
        .as_bytes();
    Ok(Rest {
        claims,
        signing_input,
        signature,
    })
}

fn string<'m>(map: &'m Map<String, Value>, name: &str, what: &str) -> Result<&'m str, TokenError> {
    match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(_) => Err(invalid(format!(
            "the DPoP proof {what} `{name}` must be a non-empty string"
        ))),
        None => Err(invalid(format!("the DPoP proof has no {what} `{name}`"))),
    }
}

fn optional(map: &Map<String, Value>, name: &str) -> Result<Option<String>, TokenError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!(
            "the DPoP proof claim `{name}` must be a string"
        ))),
    }
}

/// A proof header that checked out (`typ`, `alg`, a public `jwk` for it):
/// its algorithm, its key and the key's RFC 7638 thumbprint.
#[derive(Debug, Clone)]
struct CheckedHeader {
    alg: JwsAlgorithm,
    key: Jwk,
    jkt: String,
}

/// Headers kept by [`ProofKeys`] before it starts over.
pub const MAX_PROOF_KEYS: usize = 256;
/// Longest header kept (base64url bytes): an EC key's is ~200, an
/// RSA-4096 key's ~850. Bounds the headers at ~300 KiB.
const MAX_KEPT_HEADER_BYTES: usize = 1024;
/// Longest access token whose hash is kept (with [`MAX_PROOF_KEYS`]
/// proof keys: at most ~1 MiB).
const MAX_KEPT_TOKEN_BYTES: usize = 4096;

/// Proof headers that checked out, by their exact base64url text. A
/// client signs every proof with one key and writes the same header each
/// time, so decoding the header, importing its `jwk` and hashing its
/// thumbprint is done once per key, not once per request. The entry is a
/// function of the text alone (the issuer's allowed algorithms are checked
/// on every use); a header that does not check out is never kept. Also the
/// `ath` of the last access token each proof key came with (a client sends
/// one token with many proofs). Bounded: when full, each map is emptied.
#[derive(Debug, Default)]
pub struct ProofKeys {
    headers: HashMap<String, CheckedHeader>,
    /// Proof key thumbprint → (the access token, its `ath`).
    token_hashes: HashMap<String, (String, String)>,
}

impl ProofKeys {
    /// `ath` of `token` (base64url of its SHA-256, RFC 9449 §4.2) sent
    /// with a proof of the key `jkt`: hashed once per token and key.
    pub fn access_token_hash(&mut self, jkt: &str, token: &str) -> String {
        if let Some((kept, ath)) = self.token_hashes.get(jkt) {
            if kept == token {
                return ath.clone();
            }
        }
        let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()));
        if token.len() <= MAX_KEPT_TOKEN_BYTES {
            if self.token_hashes.len() >= MAX_PROOF_KEYS {
                self.token_hashes.clear();
            }
            self.token_hashes
                .insert(jkt.to_string(), (token.to_string(), ath.clone()));
        }
        ath
    }
}

fn algorithm_refused(name: &str) -> TokenError {
    invalid(format!(
        "the DPoP proof algorithm {name:?} is not accepted (never `none` or HMAC; see the `algs` of the DPoP challenge)"
    ))
}

/// Check a decoded proof header: `typ`, an allowed `alg`, a public `jwk`
/// of a key for it (never `jku`, `x5u`, `x5c`, `crit`).
fn check_header(
    header: &Map<String, Value>,
    allowed: &[JwsAlgorithm],
) -> Result<CheckedHeader, TokenError> {
    let typ = string(header, "typ", "header")?;
    if typ != "dpop+jwt" {
        return Err(invalid("the DPoP proof header `typ` must be \"dpop+jwt\""));
    }
    let alg_name = string(header, "alg", "header")?;
    let alg = JwsAlgorithm::from_name(alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| algorithm_refused(alg_name))?;
    for forbidden in ["jku", "x5u", "x5c", "crit"] {
        if header.contains_key(forbidden) {
            return Err(invalid(format!(
                "the DPoP proof header carries `{forbidden}`: the key must be given as `jwk` only"
            )));
        }
    }
    let jwk = match header.get("jwk") {
        Some(Value::Object(jwk)) => jwk,
        _ => return Err(invalid("the DPoP proof header has no `jwk` object")),
    };
    if let Some(member) = PRIVATE_MEMBERS.iter().find(|m| jwk.contains_key(**m)) {
        return Err(invalid(format!(
            "the DPoP proof `jwk` carries private key material (`{member}`): send the public key only"
        )));
    }
    let key = Jwk::from_map(jwk)
        .map_err(|why| invalid(format!("the DPoP proof `jwk` cannot be used: {why}")))?;
    if !key.accepts(alg) {
        return Err(invalid(format!(
            "the DPoP proof `jwk` is not a key for {}",
            alg.name()
        )));
    }
    let jkt = jwk_thumbprint(jwk)
        .ok_or_else(|| invalid("the DPoP proof `jwk` has no RFC 7638 thumbprint"))?;
    Ok(CheckedHeader { alg, key, jkt })
}

/// Check a proof on its own: header, key, signature, required claims.
pub fn verify_proof(
    proof: &str,
    allowed: &[JwsAlgorithm],
    verifier: &dyn SignatureVerifier,
) -> Result<Proof, TokenError> {
    verify_proof_with(proof, allowed, verifier, &mut ProofKeys::default())
}

/// [`verify_proof`] with the headers already checked in `keys` (the same
/// answers and the same refusals, in the same order).
pub fn verify_proof_with(
    proof: &str,
    allowed: &[JwsAlgorithm],
    verifier: &dyn SignatureVerifier,
    keys: &mut ProofKeys,
) -> Result<Proof, TokenError> {
    let (h64, p64, s64) = split(proof)?;
    let rest = if keys.headers.contains_key(h64) {
        decode_rest(proof, h64, p64, s64)?
    } else {
        let parts = parse_parts(proof)?;
        let header = check_header(&parts.header, allowed)?;
        if h64.len() > MAX_KEPT_HEADER_BYTES {
            return finish(
                &header,
                &parts.claims,
                parts.signing_input,
                &parts.signature,
                verifier,
            );
        }
        if keys.headers.len() >= MAX_PROOF_KEYS {
            keys.headers.clear();
        }
        keys.headers.insert(h64.to_string(), header);
        Rest {
            claims: parts.claims,
            signing_input: parts.signing_input,
            signature: parts.signature,
        }
    };
    let header = keys
        .headers
        .get(h64)
        .ok_or_else(|| invalid("the DPoP proof header could not be checked"))?;
    // Kept headers are checked against the algorithms of the issuer at hand.
    if !allowed.contains(&header.alg) {
        return Err(algorithm_refused(header.alg.name()));
    }
    finish(
        header,
        &rest.claims,
        rest.signing_input,
        &rest.signature,
        verifier,
    )
}

/// The signature with the header's key, then the required claims.
fn finish(
    header: &CheckedHeader,
    claims: &Map<String, Value>,
    signing_input: &[u8],
    signature: &[u8],
    verifier: &dyn SignatureVerifier,
) -> Result<Proof, TokenError> {
    match verifier.verify(header.alg, &header.key, signing_input, signature) {
        Ok(true) => {}
        Ok(false) => {
            return Err(invalid(
                "the DPoP proof signature does not verify with its `jwk`",
            ))
        }
        Err(e) => {
            return Err(invalid(format!(
                "the DPoP proof signature could not be checked: {e}"
            )))
        }
    }
    let jti = string(claims, "jti", "claim")?.to_string();
    let htm = string(claims, "htm", "claim")?.to_string();
    let htu = string(claims, "htu", "claim")?.to_string();
    let iat = TimeClaims::from_claims(claims)
        .map_err(|e| invalid(format!("DPoP proof: {}", e.description)))?
        .iat
        .ok_or_else(|| invalid("the DPoP proof has no claim `iat`"))?;
    Ok(Proof {
        jkt: header.jkt.clone(),
        jti,
        htm,
        htu,
        iat,
        ath: optional(claims, "ath")?,
        nonce: optional(claims, "nonce")?,
    })
}
