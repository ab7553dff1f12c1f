//! RFC 6750 bearer token extraction.

use super::settings::TokenSettings;
use crate::decision::{Decision, Reason};
use crate::fhir::RequestParts;
use std::borrow::Cow;

/// Where the token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation {
    /// `Authorization: Bearer ...` (RFC 6750 §2.1).
    Header,
    /// `?access_token=...` (RFC 6750 §2.3; only with `token.allow_query_parameter`).
    Query,
}

/// The authentication scheme an access token came with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Authorization: Bearer` (RFC 6750), or the `access_token` parameter.
    Bearer,
    /// `Authorization: DPoP` (RFC 9449 §7.1): a DPoP-bound token with its proof.
    Dpop,
}

/// The one access token of a request: borrowed from the
/// `Authorization` header (the ~1 KB token is not copied per request), owned
/// when decoded from the query.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken<'r> {
    pub token: Cow<'r, str>,
    pub location: TokenLocation,
    pub scheme: Scheme,
}

impl std::fmt::Debug for BearerToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the credential.
        f.debug_struct("BearerToken")
            .field("len", &self.token.len())
            .field("location", &self.location)
            .field("scheme", &self.scheme)
            .finish()
    }
}

/// The query parameter name of RFC 6750 §2.3.
pub const QUERY_PARAMETER: &str = "access_token";

/// Extract the access token (`Bearer` or `DPoP` scheme). `Ok(None)`: no token (the engine answers 401
/// with no error code); `Err`: a malformed or ambiguous credential.
// The engine contract returns the denial itself; errors are rare, size is fine.
pub fn extract_bearer<'r>(
    parts: &'r RequestParts<'_>,
    settings: &TokenSettings,
) -> Result<Option<BearerToken<'r>>, Decision> {
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
        check_token(&token, scan(&token).b64token, settings)?;
        return Ok(Some(BearerToken {
            token: Cow::Owned(token),
            location: TokenLocation::Query,
            scheme: Scheme::Bearer,
        }));
    }
    Ok(from_header)
}

/// The scheme of an `Authorization` value and the rest after it.
fn split_scheme(value: &str) -> (&str, &str) {
    let value = value.trim_matches([' ', '\t']);
    match value.find([' ', '\t']) {
        Some(pos) => (
            value.get(..pos).unwrap_or(""),
            value.get(pos..).unwrap_or(""),
        ),
        None => (value, ""),
    }
}

/// The token scheme of an `Authorization` value (`None`: another scheme).
fn token_scheme(scheme: &str) -> Option<Scheme> {
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(Scheme::Bearer)
    } else if scheme.eq_ignore_ascii_case("dpop") {
        Some(Scheme::Dpop)
    } else {
        None
    }
}

/// The scheme of the request's one `Authorization` header, when it is a
/// token scheme (the cheap look the sender-constraint check starts with).
pub fn authorization_scheme(parts: &RequestParts<'_>) -> Option<Scheme> {
    let mut values = parts.header_values("authorization");
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    token_scheme(split_scheme(first).0)
}

fn header_token<'r>(
    value: &'r str,
    settings: &TokenSettings,
) -> Result<Option<BearerToken<'r>>, Decision> {
    let (scheme, rest) = split_scheme(value);
    let Some(scheme) = token_scheme(scheme) else {
        // Another scheme (e.g. Basic meant for someone else): no token.
        return Ok(None);
    };
    let credential = rest.trim_start_matches([' ', '\t']);
    if credential.is_empty() {
        return Err(Decision::deny(
            Reason::InvalidRequest,
            "the Authorization header has the Bearer scheme but no token; send `Authorization: Bearer <token>`",
        ));
    }
    let scan = scan(credential);
    if scan.separator {
        // Repeated Authorization headers can reach the filter joined with a
        // comma (Envoy joins some repeated headers): the same refusal as two.
        return Err(Decision::deny(
            Reason::MultipleCredentials,
            "the Authorization header carries more than one credential (repeated Authorization headers arrive joined with a comma); send exactly one `Authorization: Bearer <token>`",
        ));
    }
    check_token(credential, scan.b64token, settings)?;
    Ok(Some(BearerToken {
        token: Cow::Borrowed(credential),
        location: TokenLocation::Header,
        scheme,
    }))
}

/// `b64token`: [`scan`]'s verdict on `token`.
fn check_token(token: &str, b64token: bool, settings: &TokenSettings) -> Result<(), Decision> {
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
    if !b64token {
        return Err(Decision::deny(
            Reason::InvalidToken,
            "the bearer token contains characters not allowed by RFC 6750 (b64token)",
        ));
    }
    Ok(())
}

/// What one pass over a credential finds.
struct Scan {
    /// A space, tab or comma: more than one credential in a header.
    separator: bool,
    /// RFC 6750 §2.1 b64token:
    /// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    b64token: bool,
}

/// Both checks in one branch-free pass over the bytes before the trailing
/// `=`s (a `=` is neither class): it runs over the ~1 KB token of every
/// request.
fn scan(token: &str) -> Scan {
    let body = token.trim_end_matches('=').as_bytes();
    let mut all = B64;
    let mut any = 0;
    for &b in body {
        let class = CLASS.get(usize::from(b)).copied().unwrap_or(0);
        all &= class;
        any |= class;
    }
    Scan {
        separator: any & SEPARATOR != 0,
        b64token: !body.is_empty() && all & B64 != 0,
    }
}

/// [`CLASS`] bit: a b64token byte before the trailing `=`s.
const B64: u8 = 1;
/// [`CLASS`] bit: a byte that separates credentials.
const SEPARATOR: u8 = 2;

/// The class bits of each byte: one table lookup per byte of the token.
#[allow(clippy::indexing_slicing)] // `b < 256`: the loop's bound
static CLASS: [u8; 256] = {
    let mut t = [0; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/') {
            t[b] = B64;
        } else if matches!(c, b' ' | b'\t' | b',') {
            t[b] = SEPARATOR;
        }
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

#[cfg(test)]
mod scan_tests {
    use super::*;

    /// The two checks as separate scans (what `scan` folds into one pass).
    fn reference(token: &str) -> (bool, bool) {
        let separator = token.bytes().any(|b| matches!(b, b' ' | b'\t' | b','));
        let body = token.trim_end_matches('=').as_bytes();
        let b64token = !body.is_empty()
            && body.iter().all(|&b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
            });
        (separator, b64token)
    }

    #[test]
    fn scan_is_both_checks() {
        let mut cases: Vec<String> = [
            "",
            "=",
            "==",
            "a",
            "a=",
            "a==",
            "=a",
            "a=b",
            "a b",
            "a,b=",
            "é",
            "a\u{fffd}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for c in (0u8..128).map(char::from).chain(['é', '€', '😀']) {
            for f in ["{c}", "a{c}", "{c}a", "a{c}=", "a={c}", "a=={c}="] {
                cases.push(f.replace("{c}", &c.to_string()));
            }
        }
        for t in &cases {
            let s = scan(t);
            assert_eq!((s.separator, s.b64token), reference(t), "{t:?}");
        }
    }
}
