//! A token that passed every check (JWT or introspection): a leaf shared by
//! the verifier, the introspection parser and the cache.

use super::alg::JwsAlgorithm;
use super::jose::TimeClaims;
use serde_json::Value;

/// How a token was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// Signed JWT checked against the issuer's keys.
    Jwt,
    /// Opaque (or introspection-issuer) token checked by RFC 7662.
    Introspection,
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedToken {
    /// Index into `Config.issuers`.
    pub issuer_index: usize,
    pub issuer: String,
    /// The full claims object (JWT payload or introspection response).
    pub claims: Value,
    pub times: TimeClaims,
    pub jti: Option<String>,
    pub subject: Option<String>,
    /// `None` for introspected tokens.
    pub algorithm: Option<JwsAlgorithm>,
    pub key_id: Option<String>,
    pub source: TokenSource,
}
