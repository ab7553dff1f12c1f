//! RFC 7662 token introspection: request builder and response parser (pure;
//! the shell does the `dispatch_http_call`).

use super::error::TokenError;
use super::jose::{self, TimeClaims};
use super::settings::IntrospectionConfig;
use super::verified::{TokenSource, VerifiedToken};
use crate::decision::Reason;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// An introspection call for the shell to dispatch.
#[derive(Clone, PartialEq, Eq)]
pub struct IntrospectionRequest {
    pub issuer_index: usize,
    /// Envoy cluster to call.
    pub cluster: String,
    /// Request headers incl. pseudo-headers (`:method`, `:path`, `:authority`).
    pub headers: Vec<(String, String)>,
    /// `application/x-www-form-urlencoded` body (`token=...`).
    pub body: Vec<u8>,
    pub timeout_ms: u64,
}

impl std::fmt::Debug for IntrospectionRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The body holds the token and a header the client secret: never print them.
        f.debug_struct("IntrospectionRequest")
            .field("issuer_index", &self.issuer_index)
            .field("cluster", &self.cluster)
            .field("timeout_ms", &self.timeout_ms)
            .finish_non_exhaustive()
    }
}

/// Build the RFC 7662 §2.1 request: POST, form body `token=<token>&token_type_hint=access_token`,
/// HTTP Basic client authentication (RFC 6749 §2.3.1: id and secret
/// form-urlencoded before base64).
pub fn build_request(
    issuer_index: usize,
    cfg: &IntrospectionConfig,
    token: &str,
) -> Result<IntrospectionRequest, TokenError> {
    // Unreachable with a loaded configuration (`Config::from_json_with_secrets`):
    // fail closed rather than call without credentials.
    let client_secret = cfg.client_secret.value().ok_or_else(|| {
        TokenError::new(
            Reason::IntrospectionUnavailable,
            "the introspection client secret is not loaded",
        )
    })?;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("token_type_hint", "access_token")
        .finish()
        .into_bytes();
    let id: String = form_urlencoded::byte_serialize(cfg.client_id.as_bytes()).collect();
    let secret: String =
        form_urlencoded::byte_serialize(client_secret.expose().as_bytes()).collect();
    let basic = STANDARD.encode(format!("{id}:{secret}"));
    let authority = cfg.authority.clone().unwrap_or_else(|| cfg.cluster.clone());
    Ok(IntrospectionRequest {
        issuer_index,
        cluster: cfg.cluster.clone(),
        headers: vec![
            (":method".into(), "POST".into()),
            (":path".into(), cfg.path.clone()),
            (":authority".into(), authority),
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("accept".into(), "application/json".into()),
            ("accept-encoding".into(), "identity".into()),
            ("authorization".into(), format!("Basic {basic}")),
        ],
        body,
        timeout_ms: cfg.timeout_ms,
    })
}

/// The error for a failed call (timeout, reset, no cluster): fail closed.
pub fn unavailable(issuer: &str, what: &str) -> TokenError {
    TokenError::new(
        Reason::IntrospectionUnavailable,
        format!("the token could not be introspected at {issuer} ({what}); try again later"),
    )
}

/// The introspection issuer an answer comes from.
#[derive(Debug, Clone, Copy)]
pub struct IntrospectionIssuer<'a> {
    /// Index into `Config.issuers`.
    pub index: usize,
    /// Its `iss`.
    pub issuer: &'a str,
    pub config: &'a IntrospectionConfig,
    /// The audiences its tokens must carry (when they carry `aud`).
    pub audiences: &'a [String],
}

/// Parse the introspection response. `active: true` → the verified token
/// plus the cache deadline (`min(exp, now + max_cache_seconds)`).
pub fn parse_response(
    from: IntrospectionIssuer<'_>,
    status: u16,
    body: &[u8],
    now: u64,
    leeway: u64,
) -> Result<(VerifiedToken, u64), TokenError> {
    let IntrospectionIssuer {
        index: issuer_index,
        issuer,
        config: cfg,
        audiences,
    } = from;
    if status != 200 {
        return Err(unavailable(issuer, &format!("HTTP status {status}")));
    }
    let claims = jose::parse_strict_object(body, "introspection response")
        .map_err(|_| unavailable(issuer, "the response is not a JSON object"))?;
    match claims.get("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => {
            return Err(TokenError::new(
                Reason::TokenInactive,
                "the token is not active (expired, revoked or unknown to the authorization server); obtain a new access token",
            ))
        }
        _ => {
            return Err(unavailable(
                issuer,
                "the response has no boolean `active` member",
            ))
        }
    }
    if let Some(iss) = claims.get("iss") {
        if iss.as_str() != Some(issuer) {
            return Err(TokenError::invalid(
                "the introspected token was issued by another issuer",
            ));
        }
    }
    if claims.contains_key("aud") {
        let aud = jose::audiences(&claims)?;
        if !aud.iter().any(|a| audiences.iter().any(|ours| ours == a)) {
            return Err(TokenError::invalid(format!(
                "the token audience does not include this server (expected one of: {})",
                audiences.join(", ")
            )));
        }
    }
    let times = TimeClaims::from_claims(&claims)?;
    times.check(now, leeway)?;
    let ttl_end = now.saturating_add(cfg.max_cache_seconds);
    let cache_until = times.exp.map_or(ttl_end, |exp| exp.min(ttl_end));
    let jti = jose::optional_string(&claims, "jti", "introspection")
        .ok()
        .flatten();
    let subject = jose::optional_string(&claims, "sub", "introspection")
        .ok()
        .flatten();
    Ok((
        VerifiedToken {
            issuer_index,
            issuer: issuer.to_string(),
            claims: Value::Object(claims),
            times,
            jti,
            subject,
            algorithm: None,
            key_id: None,
            source: TokenSource::Introspection,
        },
        cache_until,
    ))
}
