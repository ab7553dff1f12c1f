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
use serde_json::{Map, Value};

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
    if proof.len() > MAX_PROOF_BYTES {
        return Err(invalid(format!(
            "the DPoP proof is larger than {MAX_PROOF_BYTES} bytes"
        )));
    }
    let (h64, p64, s64) = jose::split_compact(proof)
        .ok_or_else(|| invalid("the DPoP proof is not a compact JWS (three base64url parts)"))?;
    let as_proof = |e: TokenError| invalid(format!("DPoP proof: {}", e.description));
    let header = jose::decode_json_segment(h64, "header").map_err(as_proof)?;
    let claims = jose::decode_json_segment(p64, "payload").map_err(as_proof)?;
    let signature = jose::decode_b64url(s64, "signature").map_err(as_proof)?;
    let signing_input = proof
        .get(..h64.len() + 1 + p64.len())
        .ok_or_else(|| invalid("the DPoP proof is malformed"))?
        .as_bytes();
    Ok(ProofParts {
        header,
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

/// Check a proof on its own: header, key, signature, required claims.
pub fn verify_proof(
    proof: &str,
    allowed: &[JwsAlgorithm],
    verifier: &dyn SignatureVerifier,
) -> Result<Proof, TokenError> {
    let parts = parse_parts(proof)?;
    let header = &parts.header;
    let typ = string(header, "typ", "header")?;
    if typ != "dpop+jwt" {
        return Err(invalid("the DPoP proof header `typ` must be \"dpop+jwt\""));
    }
    let alg_name = string(header, "alg", "header")?;
    let alg = JwsAlgorithm::from_name(alg_name)
        .filter(|a| allowed.contains(a))
        .ok_or_else(|| {
            invalid(format!(
                "the DPoP proof algorithm {alg_name:?} is not accepted (never `none` or HMAC; see the `algs` of the DPoP challenge)"
            ))
        })?;
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
    match verifier.verify(alg, &key, parts.signing_input, &parts.signature) {
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
    let claims = &parts.claims;
    let jti = string(claims, "jti", "claim")?.to_string();
    let htm = string(claims, "htm", "claim")?.to_string();
    let htu = string(claims, "htu", "claim")?.to_string();
    let iat = TimeClaims::from_claims(claims)
        .map_err(|e| invalid(format!("DPoP proof: {}", e.description)))?
        .iat
        .ok_or_else(|| invalid("the DPoP proof has no claim `iat`"))?;
    Ok(Proof {
        jkt,
        jti,
        htm,
        htu,
        iat,
        ath: optional(claims, "ath")?,
        nonce: optional(claims, "nonce")?,
    })
}
