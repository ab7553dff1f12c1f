//! RFC 6750 bearer token extraction.

use super::settings::TokenSettings;
use crate::decision::{Decision, Reason};
use crate::fhir::RequestParts;

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation {
    /// `Authorization: Bearer ...` (RFC 6750 §2.1).
    Header,
    /// `?access_token=...` (RFC 6750 §2.3; only with `token.allow_query_parameter`).
    Query,
}

/// The one bearer credential of a request.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken {
    pub token: String,
    pub location: TokenLocation,
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the credential.
        f.debug_struct("BearerToken")
            .field("len", &self.token.len())
            .field("location", &self.location)
            .finish()
    }
}

/// The query parameter name of RFC 6750 §2.3.
pub const QUERY_PARAMETER: &str = "access_token";

/// Extract the bearer token. `Ok(None)`: no token (the engine answers 401
/// with no error code); `Err`: a malformed or ambiguous credential.
// The engine contract returns the denial itself; errors are rare, size is fine.
pub fn extract_bearer(
    parts: &RequestParts<'_>,
    settings: &TokenSettings,
) -> Result<Option<BearerToken>, Decision> {
    let mut headers = parts.header_values("authorization");
    let first = headers.next();
    if headers.next().is_some() {
        return Err(Decision::deny(
            Reason::MultipleCredentials,
            "the request has more than one Authorization header; send exactly one `Authorization: Bearer <token>`",
        ));
    }
    let from_header = match first {
        None => None,
        Some(value) => header_token(value, settings)?,
    };

    let query_tokens = query_tokens(parts.path);
    if query_tokens > 0 {
        if from_header.is_some() {
            return Err(Decision::deny(
                Reason::MultipleCredentials,
                "the request carries a token both in the Authorization header and in the `access_token` query parameter; send it only in the header",
            ));
        }
        if query_tokens > 1 {
            return Err(Decision::deny(
                Reason::MultipleCredentials,
                "the `access_token` query parameter is repeated; send exactly one token",
            ));
        }
        if !settings.allow_query_parameter {
            return Err(Decision::deny(
                Reason::InvalidRequest,
                "access tokens in the URL query are not accepted (token.allow_query_parameter is false); send `Authorization: Bearer <token>`",
            ));
        }
        let token = query_token_value(parts.path).unwrap_or_default();
        check_token(&token, settings)?;
        return Ok(Some(BearerToken {
            token,
            location: TokenLocation::Query,
        }));
    }
    Ok(from_header)
}

fn header_token(value: &str, settings: &TokenSettings) -> Result<Option<BearerToken>, Decision> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = match value.find([' ', '\t']) {
        Some(pos) => (
            value.get(..pos).unwrap_or(""),
            value.get(pos..).unwrap_or(""),
        ),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme (e.g. Basic meant for someone else): no bearer token.
        return Ok(None);
    }
    let credential = rest.trim_start_matches([' ', '\t']);
    if credential.is_empty() {
        return Err(Decision::deny(
            Reason::InvalidRequest,
            "the Authorization header has the Bearer scheme but no token; send `Authorization: Bearer <token>`",
        ));
    }
    // Byte scans (ASCII needles): no UTF-8 decoding over a ~1 KB token.
    if credential.bytes().any(|b| matches!(b, b' ' | b'\t' | b',')) {
        return Err(Decision::deny(
            Reason::InvalidRequest,
            "the Authorization header must carry exactly one credential: `Bearer <token>`",
        ));
    }
    check_token(credential, settings)?;
    Ok(Some(BearerToken {
        token: credential.to_string(),
        location: TokenLocation::Header,
    }))
}

fn check_token(token: &str, settings: &TokenSettings) -> Result<(), Decision> {
    if token.len() > settings.max_bytes {
        return Err(Decision::deny(
            Reason::InvalidToken,
            format!(
                "the bearer token is larger than token.max_bytes ({} bytes)",
                settings.max_bytes
            ),
        ));
    }
    if token.is_empty() {
        return Err(Decision::deny(
            Reason::InvalidRequest,
            "the access token is empty",
        ));
    }
    // RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=').as_bytes();
    let ok = !body.is_empty()
        && body
            .iter()
            .all(|&b| B64TOKEN.get(usize::from(b)).copied().unwrap_or(false));
    if !ok {
        return Err(Decision::deny(
            Reason::InvalidToken,
            "the bearer token contains characters not allowed by RFC 6750 (b64token)",
        ));
    }
    Ok(())
}

/// The bytes of RFC 6750's b64token before its trailing `=`s: one table
/// lookup per byte of the token (it is checked on every request).
#[allow(clippy::indexing_slicing)] // `b < 256`: the loop's bound
static B64TOKEN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

fn query(path: &str) -> Option<&str> {
    let q = path.split_once('?')?.1;
    Some(q.split_once('#').map_or(q, |(q, _)| q))
}

fn query_tokens(path: &str) -> usize {
    query(path).map_or(0, |q| {
        form_urlencoded::parse(q.as_bytes())
            .filter(|(k, _)| k == QUERY_PARAMETER)
            .count()
    })
}

fn query_token_value(path: &str) -> Option<String> {
    let q = query(path)?;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == QUERY_PARAMETER)
        .map(|(_, v)| v.into_owned())
}
