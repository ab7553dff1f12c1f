//! Envoy's `verify_signature` foreign function (BoringSSL), pure encoding.
//!
//! Envoy (`source/extensions/common/wasm/foreign.cc`) parses the argument as
//! the protobuf `envoy.source.extensions.common.wasm.VerifySignatureArguments`:
//!
//! ```text
//! string hash_function  = 1;  // "sha1" | "sha224" | "sha256" | "sha384" | "sha512"
//! bytes  public_key     = 2;  // DER SubjectPublicKeyInfo (EVP_parse_public_key)
//! bytes  signature      = 3;
//! bytes  text           = 4;  // the signed message (hashed by the host)
//! string public_key_pem = 5;  // alternative to public_key (never both)
//! ```
//!
//! and answers `VerifySignatureResult { bool result = 1; string error = 2; }`
//! (or `BadArgument` when the key does not import). The host runs
//! `EVP_DigestVerify` with default parameters, so it covers exactly:
//! RSA PKCS#1 v1.5 with SHA-256/384/512 (RS256/RS384/RS512). PS* would need
//! PSS padding, ES* a DER (not JWS r||s) signature and EdDSA no digest, none
//! of which the host API can express, so those always use the pure path.

use super::alg::{verify_pure, JwsAlgorithm};
use super::keys::Jwk;
use super::signature::{SignatureVerifier, VerifierError};

/// The foreign function's name for `call_foreign_function`.
pub const VERIFY_SIGNATURE_FUNCTION: &str = "verify_signature";

/// The host hash name for an algorithm the host can verify; `None` = use the
/// pure-Rust path.
pub fn host_hash_function(alg: JwsAlgorithm) -> Option<&'static str> {
    match alg {
        JwsAlgorithm::RS256 => Some("sha256"),
        JwsAlgorithm::RS384 => Some("sha384"),
        JwsAlgorithm::RS512 => Some("sha512"),
        _ => None,
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes_field(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Serialize `VerifySignatureArguments` with a DER public key.
pub fn encode_verify_signature_args(
    hash_function: &str,
    public_key_der: &[u8],
    signature: &[u8],
    text: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        hash_function.len() + public_key_der.len() + signature.len() + text.len() + 16,
    );
    put_bytes_field(&mut out, 1, hash_function.as_bytes());
    put_bytes_field(&mut out, 2, public_key_der);
    put_bytes_field(&mut out, 3, signature);
    put_bytes_field(&mut out, 4, text);
    out
}

/// The foreign-function argument for this check, or `None` when the host
/// cannot verify it (non-RSA-PKCS#1 algorithm or no DER key).
pub fn host_request(
    alg: JwsAlgorithm,
    key: &Jwk,
    signing_input: &[u8],
    signature: &[u8],
) -> Option<Vec<u8>> {
    let hash = host_hash_function(alg)?;
    let der = key.spki_der.as_deref()?;
    Some(encode_verify_signature_args(
        hash,
        der,
        signature,
        signing_input,
    ))
}

fn get_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, VerifierError> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes
            .get(*pos)
            .ok_or_else(|| VerifierError("truncated verify_signature result".into()))?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(VerifierError(
        "bad varint in verify_signature result".into(),
    ))
}

/// Parse `VerifySignatureResult` → `(result, error)`. Unknown fields skipped.
pub fn decode_verify_signature_result(bytes: &[u8]) -> Result<(bool, String), VerifierError> {
    let mut pos = 0usize;
    let mut result = false;
    let mut error = String::new();
    while pos < bytes.len() {
        let tag = get_varint(bytes, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => {
                let v = get_varint(bytes, &mut pos)?;
                if field == 1 {
                    result = v != 0;
                }
            }
            2 => {
                let len = usize::try_from(get_varint(bytes, &mut pos)?)
                    .map_err(|_| VerifierError("bad length".into()))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= bytes.len())
                    .ok_or_else(|| VerifierError("truncated verify_signature result".into()))?;
                if field == 2 {
                    error =
                        String::from_utf8_lossy(bytes.get(pos..end).unwrap_or(&[])).into_owned();
                }
                pos = end;
            }
            1 => pos = pos.saturating_add(8),
            5 => pos = pos.saturating_add(4),
            _ => {
                return Err(VerifierError(format!(
                    "unexpected wire type {wire} in verify_signature result"
                )))
            }
        }
    }
    if pos > bytes.len() {
        return Err(VerifierError("truncated verify_signature result".into()));
    }
    Ok((result, error))
}

/// A [`SignatureVerifier`] that sends RS256/384/512 checks to the host
/// through `call` (the shell passes a closure around
/// `hostcalls::call_foreign_function(VERIFY_SIGNATURE_FUNCTION, Some(args))`
/// returning the result bytes) and everything else to the pure path.
///
/// The host's "does not verify" answer is final. If the call itself fails
/// (function missing in this Envoy, `BadArgument`, undecodable answer) the
/// same check runs on the pure path instead, so a host problem costs speed,
/// never a wrong answer; `host_failures` counts those fallbacks.
pub struct HostAssistedVerifier<F>
where
    F: Fn(&[u8]) -> Result<Vec<u8>, String>,
{
    pub call: F,
    pub host_failures: std::cell::Cell<u32>,
}

impl<F> HostAssistedVerifier<F>
where
    F: Fn(&[u8]) -> Result<Vec<u8>, String>,
{
    pub fn new(call: F) -> Self {
        HostAssistedVerifier {
            call,
            host_failures: std::cell::Cell::new(0),
        }
    }
}

impl<F> SignatureVerifier for HostAssistedVerifier<F>
where
    F: Fn(&[u8]) -> Result<Vec<u8>, String>,
{
    fn verify(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, VerifierError> {
        let pure = || Ok(verify_pure(alg, &key.key, signing_input, signature));
        let Some(args) = host_request(alg, key, signing_input, signature) else {
            return pure();
        };
        match (self.call)(&args)
            .map_err(VerifierError)
            .and_then(|out| decode_verify_signature_result(&out))
        {
            Ok((ok, _)) => Ok(ok),
            Err(_) => {
                self.host_failures
                    .set(self.host_failures.get().saturating_add(1));
                pure()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_protobuf_fields() {
        let out = encode_verify_signature_args("sha256", &[1, 2], &[3], b"ab");
        assert_eq!(
            out,
            vec![
                0x0a, 6, b's', b'h', b'a', b'2', b'5', b'6', // 1: hash_function
                0x12, 2, 1, 2, // 2: public_key
                0x1a, 1, 3, // 3: signature
                0x22, 2, b'a', b'b', // 4: text
            ]
        );
        // Long fields use multi-byte varint lengths.
        let big = vec![7u8; 300];
        let out = encode_verify_signature_args("sha256", &big, &[], &[]);
        assert_eq!(&out[8..11], &[0x12, 0xac, 0x02]);
    }

    #[test]
    fn decodes_result() {
        assert_eq!(
            decode_verify_signature_result(&[0x08, 1]).unwrap(),
            (true, String::new())
        );
        assert_eq!(
            decode_verify_signature_result(&[0x12, 2, b'n', b'o']).unwrap(),
            (false, "no".to_string())
        );
        assert_eq!(
            decode_verify_signature_result(&[]).unwrap(),
            (false, String::new())
        );
        assert!(decode_verify_signature_result(&[0x12, 5, b'n']).is_err());
        assert!(decode_verify_signature_result(&[0x08]).is_err());
        assert!(decode_verify_signature_result(&[0x0b]).is_err());
    }
}
