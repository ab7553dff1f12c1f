//! The signature-verification seam: one JWS signature against one key. The
//! pure-Rust verifier lives here; Envoy's `verify_signature` in
//! [`super::host_crypto`].

use super::alg::{verify_pure, JwsAlgorithm};
use super::keys::Jwk;
use std::fmt;

/// A verifier could not run (distinct from "signature does not match").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierError(pub String);

impl fmt::Display for VerifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one JWS signature. `Ok(false)` = does not verify; `Err` = the
/// verifier itself failed (the token is refused either way: fail closed).
pub trait SignatureVerifier {
    fn verify(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, VerifierError>;
}

/// The pure-Rust verifier (jwt-compact algorithms + a P-384 one).
#[derive(Debug, Clone, Copy, Default)]
pub struct RustCryptoVerifier;

impl SignatureVerifier for RustCryptoVerifier {
    fn verify(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        signing_input: &[u8],
        signature: &[u8],
    ) -> Result<bool, VerifierError> {
        Ok(verify_pure(alg, &key.key, signing_input, signature))
    }
}
