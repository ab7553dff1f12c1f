//! The CLI's offline token check: verify against the issuers' inline keys
//! (the CLI cannot fetch keys or introspect), and `token inspect`.

use super::error::TokenError;
use super::jose;
use super::settings::TrustConfig;
use super::signature::RustCryptoVerifier;
use super::verified::VerifiedToken;
use super::verify::TokenVerifier;
use crate::decision::{Decision, Reason};

/// Verify `token` against the issuers' inline JWKS (the CLI cannot fetch
/// keys). Returns the verified claims.
pub fn verify_claims(
    trust: TrustConfig<'_>,
    token: &str,
    now: u64,
) -> Result<serde_json::Value, Decision> {
    verify_offline(trust, token, now)
        .map(|v| v.claims)
        .map_err(TokenError::into_decision)
}

fn verify_offline(
    trust: TrustConfig<'_>,
    token: &str,
    now: u64,
) -> Result<VerifiedToken, TokenError> {
    let token = token.trim();
    if token.len() > trust.settings.max_bytes {
        return Err(TokenError::invalid(format!(
            "the token is larger than token.max_bytes ({} bytes)",
            trust.settings.max_bytes
        )));
    }
    let unverified = jose::peek_issuer(token);
    if let Some(iss) = unverified.as_deref() {
        if let Some((i, issuer)) = trust
            .issuers
            .iter()
            .enumerate()
            .find(|(_, c)| c.issuer == iss)
        {
            if issuer.introspection.is_some() {
                return Err(cannot_introspect(i, &issuer.issuer));
            }
            if issuer.jwks.is_none() {
                return Err(TokenError::new(
                    Reason::KeysUnavailable,
                    format!(
                        "the CLI only has inline keys: issuers[{i}] ({}) uses jwks_uri; add its keys as `jwks` to verify offline, or give the verified \"claims\"",
                        issuer.issuer
                    ),
                ));
            }
        }
    } else if jose::split_compact(token).is_none() {
        // The filter introspects a token that is not a JWT, when it can.
        if let Some((i, issuer)) = trust
            .issuers
            .iter()
            .enumerate()
            .find(|(_, c)| c.introspection.is_some())
        {
            return Err(cannot_introspect(i, &issuer.issuer));
        }
        return Err(TokenError::invalid(super::verify::NOT_A_JWT));
    }
    let mut verifier = TokenVerifier::new(trust)
        .map_err(|e| TokenError::new(Reason::KeysUnavailable, format!("configuration: {e}")))?;
    verifier.verify_jwt(token, now, &RustCryptoVerifier)
}

/// The CLI's answer for a token only the introspection endpoint can check:
/// what the filter answers when that endpoint cannot be reached.
fn cannot_introspect(index: usize, issuer: &str) -> TokenError {
    TokenError::new(
        Reason::IntrospectionUnavailable,
        format!(
            "the CLI cannot introspect tokens: issuers[{index}] ({issuer}) uses introspection; give the verified \"claims\" instead"
        ),
    )
}

/// Decode and verify a token for display. Never returns the signature.
/// `{"header", "claims", "valid", "reason", "description"}`; `header` and
/// `claims` are `null` when they cannot be decoded.
pub fn inspect(trust: TrustConfig<'_>, token: &str, now: u64) -> serde_json::Value {
    let token = token.trim();
    let (header, claims) = match jose::split_compact(token) {
        Some((h, p, _)) => (
            jose::decode_json_segment(h, "header")
                .map(serde_json::Value::Object)
                .unwrap_or(serde_json::Value::Null),
            jose::decode_json_segment(p, "payload")
                .map(serde_json::Value::Object)
                .unwrap_or(serde_json::Value::Null),
        ),
        None => (serde_json::Value::Null, serde_json::Value::Null),
    };
    let (valid, reason, description) = match verify_offline(trust, token, now) {
        Ok(v) => (
            true,
            "valid".to_string(),
            format!(
                "signature ({}) and claims verified with the inline keys of {}",
                v.algorithm.map(|a| a.name()).unwrap_or("-"),
                v.issuer
            ),
        ),
        Err(e) => (false, e.reason.as_str().to_string(), e.description),
    };
    // The binding is checked on every request, not here (there is no request).
    let binding =
        crate::audit::Identity::from_claims(&crate::claims::ClaimsConfig::default(), None, &claims)
            .binding;
    serde_json::json!({
        "header": header,
        "claims": claims,
        "cnf": claims.get("cnf").cloned().unwrap_or(serde_json::Value::Null),
        "binding": binding,
        "valid": valid,
        "reason": reason,
        "description": description,
    })
}
