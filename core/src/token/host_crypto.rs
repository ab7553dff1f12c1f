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
//! (or `BadArgument` when the key does not import); a signature that does not
//! verify is a successful call with `result: false`. The host runs
//! `EVP_DigestVerify` with default parameters, so it covers RSA PKCS#1 v1.5
//! (RS256/RS384/RS512) and ECDSA (ES256/ES384) once the JWS signature (`r‖s`,
//! fixed width) is re-encoded as the ASN.1 DER `ECDSA-Sig-Value` BoringSSL
//! expects. PS* would need PSS padding and EdDSA no digest, which the host
//! API cannot express: those always use the pure path.

use super::alg::{verify_pure, JwsAlgorithm};
use super::keys::Jwk;
use super::signature::{SignatureVerifier, VerifierError};

/// The foreign function's name for `call_foreign_function`.
pub const VERIFY_SIGNATURE_FUNCTION: &str = "verify_signature";

/// The host hash name for an algorithm the host can verify; `None` = use the
/// pure-Rust path.
pub fn host_hash_function(alg: JwsAlgorithm) -> Option<&'static str> {
    match alg {
        JwsAlgorithm::RS256 | JwsAlgorithm::ES256 => Some("sha256"),
        JwsAlgorithm::RS384 | JwsAlgorithm::ES384 => Some("sha384"),
        JwsAlgorithm::RS512 => Some("sha512"),
        _ => None,
    }
}

/// The width of one ECDSA scalar in a JWS signature (RFC 7518 §3.4).
fn ecdsa_scalar_len(alg: JwsAlgorithm) -> Option<usize> {
    match alg {
        JwsAlgorithm::ES256 => Some(32),
        JwsAlgorithm::ES384 => Some(48),
        _ => None,
    }
}

/// One DER INTEGER of a non-negative big-endian scalar: minimal, with a
/// leading zero byte when the high bit is set. `None` for zero (never a
/// valid ECDSA `r` or `s`).
fn der_integer(out: &mut Vec<u8>, scalar: &[u8]) -> Option<()> {
    let start = scalar.iter().position(|b| *b != 0)?;
    let digits = scalar.get(start..)?;
    let pad = digits.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    out.push(u8::try_from(digits.len() + usize::from(pad)).ok()?);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
    Some(())
}

/// A JWS ECDSA signature (`r‖s`, each `scalar_len` bytes) as the DER
/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` BoringSSL parses.
/// `None` when the length is not exactly `2 × scalar_len` or `r`/`s` is
/// zero: such a signature never verifies (the pure path says so too). The
/// encoding is canonical, so it adds no malleability; scalars out of range
/// are refused by the host as by the pure path.
pub fn ecdsa_jws_to_der(signature: &[u8], scalar_len: usize) -> Option<Vec<u8>> {
    if scalar_len == 0 || scalar_len > 64 || signature.len() != 2 * scalar_len {
        return None;
    }
    let (r, s) = signature.split_at(scalar_len);
    // Two INTEGERs of at most 2 + 1 + 64 bytes: the SEQUENCE length fits the
    // short form only up to 127; P-256/P-384 need at most 102.
    let mut body = Vec::with_capacity(2 * (scalar_len + 3));
    der_integer(&mut body, r)?;
    der_integer(&mut body, s)?;
    let mut der = Vec::with_capacity(body.len() + 3);
    der.push(0x30);
    match u8::try_from(body.len()) {
        Ok(len) if len < 0x80 => der.push(len),
        Ok(len) => der.extend_from_slice(&[0x81, len]),
        Err(_) => return None,
    }
    der.extend_from_slice(&body);
    Some(der)
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
/// cannot verify it (PS*/EdDSA, no DER key, or an ECDSA signature that is
/// malformed: the pure path then refuses it).
pub fn host_request(
    alg: JwsAlgorithm,
    key: &Jwk,
    signing_input: &[u8],
    signature: &[u8],
) -> Option<Vec<u8>> {
    let hash = host_hash_function(alg)?;
    let der = key.spki_der.as_deref()?;
    let ecdsa_der;
    let signature = match ecdsa_scalar_len(alg) {
        Some(width) => {
            ecdsa_der = ecdsa_jws_to_der(signature, width)?;
            ecdsa_der.as_slice()
        }
        None => signature,
    };
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

/// One field of a protobuf message: a varint, or the bytes of a
/// length-delimited field (fixed-width fields are skipped).
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// Call `f` with each field of a protobuf message in order (number,
/// value); `what` names the message in errors. No allocation: the wasm
/// build decodes every host answer with it.
fn for_each_field<'a>(
    bytes: &'a [u8],
    what: &str,
    mut f: impl FnMut(u64, Field<'a>) -> Result<(), VerifierError>,
) -> Result<(), VerifierError> {
    let truncated = || VerifierError(format!("truncated {what}"));
    let mut pos = 0usize;
    while pos < bytes.len() {
        let tag = get_varint(bytes, &mut pos)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => f(field, Field::Varint(get_varint(bytes, &mut pos)?))?,
            2 => {
                let len = usize::try_from(get_varint(bytes, &mut pos)?)
                    .map_err(|_| VerifierError("bad length".into()))?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= bytes.len())
                    .ok_or_else(truncated)?;
                f(field, Field::Bytes(bytes.get(pos..end).unwrap_or(&[])))?;
                pos = end;
            }
            1 => pos = pos.saturating_add(8),
            5 => pos = pos.saturating_add(4),
            _ => {
                return Err(VerifierError(format!(
                    "unexpected wire type {wire} in {what}"
                )))
            }
        }
    }
    if pos > bytes.len() {
        return Err(truncated());
    }
    Ok(())
}

/// Parse `VerifySignatureResult` → `(result, error)`. Unknown fields skipped.
pub fn decode_verify_signature_result(bytes: &[u8]) -> Result<(bool, String), VerifierError> {
    let mut result = false;
    let mut error = String::new();
    for_each_field(bytes, "verify_signature result", |field, value| {
        match (field, value) {
            (1, Field::Varint(v)) => result = v != 0,
            (2, Field::Bytes(b)) => error = String::from_utf8_lossy(b).into_owned(),
            _ => {}
        }
        Ok(())
    })?;
    Ok((result, error))
}

/// `VerifySignatureArguments` as a host reads them (the host's side of
/// [`encode_verify_signature_args`], for a shell that checks signatures
/// itself behind the same seam).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifySignatureArgs<'a> {
    pub hash_function: &'a str,
    pub public_key_der: &'a [u8],
    pub signature: &'a [u8],
    pub text: &'a [u8],
}

/// Parse `VerifySignatureArguments`. Unknown fields skipped.
pub fn decode_verify_signature_args(
    bytes: &[u8],
) -> Result<VerifySignatureArgs<'_>, VerifierError> {
    let mut args = VerifySignatureArgs::default();
    for_each_field(bytes, "verify_signature arguments", |field, value| {
        let Field::Bytes(b) = value else {
            return Ok(());
        };
        match field {
            1 => {
                args.hash_function = std::str::from_utf8(b)
                    .map_err(|_| VerifierError("hash function is not UTF-8".into()))?
            }
            2 => args.public_key_der = b,
            3 => args.signature = b,
            4 => args.text = b,
            _ => {}
        }
        Ok(())
    })?;
    Ok(args)
}

/// Serialize `VerifySignatureResult` (the host's answer).
pub fn encode_verify_signature_result(result: bool, error: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(error.len() + 8);
    put_varint(&mut out, 1 << 3);
    put_varint(&mut out, u64::from(result));
    if !error.is_empty() {
        put_bytes_field(&mut out, 2, error.as_bytes());
    }
    out
}

/// A [`SignatureVerifier`] that sends RS256/384/512 and ES256/384 checks to the host
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
    fn ecdsa_signatures_become_canonical_der() {
        // r with its high bit set gets a zero byte; s with leading zeros loses them.
        let mut sig = vec![0u8; 64];
        sig[0] = 0x80;
        sig[31] = 1;
        sig[62] = 0x7f;
        sig[63] = 2;
        let mut want = vec![0x30, 0x27, 0x02, 0x21, 0x00];
        want.extend_from_slice(&sig[..32]);
        want.extend_from_slice(&[0x02, 0x02, 0x7f, 0x02]);
        assert_eq!(ecdsa_jws_to_der(&sig, 32).unwrap(), want);
        // A one-byte scalar; ES384 width.
        let mut sig = vec![0u8; 96];
        sig[47] = 5;
        sig[95] = 0x81;
        assert_eq!(
            ecdsa_jws_to_der(&sig, 48).unwrap(),
            vec![0x30, 0x07, 0x02, 0x01, 0x05, 0x02, 0x02, 0x00, 0x81]
        );
        // Malformed: wrong length for the algorithm, zero r or s.
        assert_eq!(ecdsa_jws_to_der(&[1u8; 63], 32), None);
        assert_eq!(ecdsa_jws_to_der(&[1u8; 96], 32), None);
        assert_eq!(ecdsa_jws_to_der(&[1u8; 64], 48), None);
        let mut zero_r = vec![1u8; 64];
        zero_r[..32].fill(0);
        assert_eq!(ecdsa_jws_to_der(&zero_r, 32), None);
        let mut zero_s = vec![1u8; 64];
        zero_s[32..].fill(0);
        assert_eq!(ecdsa_jws_to_der(&zero_s, 32), None);
        assert_eq!(ecdsa_jws_to_der(&[], 0), None);
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

#[cfg(test)]
mod host_side_tests {
    use super::*;

    #[test]
    fn arguments_and_result_round_trip_between_the_two_sides() {
        let bytes = encode_verify_signature_args("sha384", b"der", b"sig", b"a.b");
        assert_eq!(
            decode_verify_signature_args(&bytes),
            Ok(VerifySignatureArgs {
                hash_function: "sha384",
                public_key_der: b"der",
                signature: b"sig",
                text: b"a.b",
            })
        );
        for (result, error) in [(true, ""), (false, ""), (false, "bad key")] {
            let r = encode_verify_signature_result(result, error);
            assert_eq!(
                decode_verify_signature_result(&r),
                Ok((result, error.to_string()))
            );
        }
        assert!(decode_verify_signature_args(&[0x0a, 0x05, b'x']).is_err());
    }
}
