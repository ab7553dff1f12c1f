//! Strict JWS compact parsing: base64url without padding (canonical only),
//! JSON objects with duplicate keys refused, header and time-claim rules.
//! Error descriptions never contain token contents.

use super::error::TokenError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Split a compact JWS into its three parts; `None` unless exactly three.
pub fn split_compact(token: &str) -> Option<(&str, &str, &str)> {
    let mut parts = token.split('.');
    let header = parts.next()?;
    let payload = parts.next()?;
    let signature = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((header, payload, signature))
}

/// Strict base64url (RFC 7515 §2): no padding, no whitespace, canonical
/// trailing bits.
pub fn decode_b64url(segment: &str, what: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| {
        TokenError::invalid(format!(
            "the token {what} is not valid unpadded base64url (RFC 7515)"
        ))
    })
}

/// Decode one base64url segment holding a JSON object (duplicate keys refused).
pub fn decode_json_segment(segment: &str, what: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = decode_b64url(segment, what)?;
    // The name is formatted only for an error (this runs twice per token).
    strict_object(&bytes).map_err(|e| e.error(&format!("token {what}")))
}

/// Parse a JSON object, refusing duplicate member names at any depth.
pub fn parse_strict_object(bytes: &[u8], what: &str) -> Result<Map<String, Value>, TokenError> {
    strict_object(bytes).map_err(|e| e.error(what))
}

/// Why bytes are not a strict JSON object.
enum NotObject {
    Other,
    Duplicate,
    Invalid,
}

impl NotObject {
    fn error(self, what: &str) -> TokenError {
        TokenError::invalid(match self {
            NotObject::Other => format!("the {what} is not a JSON object"),
            NotObject::Duplicate => format!("the {what} contains duplicate JSON member names"),
            NotObject::Invalid => format!("the {what} is not valid JSON"),
        })
    }
}

fn strict_object(bytes: &[u8]) -> Result<Map<String, Value>, NotObject> {
    match crate::json::from_slice_strict(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(NotObject::Other),
        Err(e) if crate::json::is_duplicate_key(&e) => Err(NotObject::Duplicate),
        Err(_) => Err(NotObject::Invalid),
    }
}

/// The JOSE header fields the validator uses.
#[derive(Debug, Clone, PartialEq)]
pub struct JoseHeader {
    /// The `alg` value as sent (checked against the allow-list later).
    pub alg: String,
    pub kid: Option<String>,
    pub typ: Option<String>,
    pub raw: Map<String, Value>,
}

/// Header members that would let the token choose its own key or change
/// processing rules: always refused.
const FORBIDDEN_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "crit"];

pub fn parse_header(segment: &str) -> Result<JoseHeader, TokenError> {
    let raw = decode_json_segment(segment, "header")?;
    for name in FORBIDDEN_HEADERS {
        if raw.contains_key(name) {
            return Err(TokenError::invalid(format!(
                "the token header carries `{name}`, which is not accepted: keys come only from the issuer configuration"
            )));
        }
    }
    let alg = match raw.get("alg") {
        Some(Value::String(a)) => a.clone(),
        _ => return Err(TokenError::invalid("the token header has no `alg` string")),
    };
    let kid = optional_string(&raw, "kid", "header")?;
    let typ = optional_string(&raw, "typ", "header")?;
    Ok(JoseHeader { alg, kid, typ, raw })
}

pub fn optional_string(
    map: &Map<String, Value>,
    name: &str,
    what: &str,
) -> Result<Option<String>, TokenError> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::invalid(format!(
            "the token {what} member `{name}` must be a string"
        ))),
    }
}

/// `exp`, `nbf`, `iat` as unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeClaims {
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
}

impl TimeClaims {
    /// Read the time claims; each, if present, must be a non-negative NumericDate.
    pub fn from_claims(claims: &Map<String, Value>) -> Result<TimeClaims, TokenError> {
        Ok(TimeClaims {
            exp: numeric_date(claims, "exp")?,
            nbf: numeric_date(claims, "nbf")?,
            iat: numeric_date(claims, "iat")?,
        })
    }

    /// Check `exp` (if any), `nbf`, `iat` against `now` with `leeway`.
    pub fn check(&self, now: u64, leeway: u64) -> Result<(), TokenError> {
        if let Some(exp) = self.exp {
            if now >= exp.saturating_add(leeway) {
                return Err(TokenError::invalid(
                    "the token has expired (`exp`); obtain a new access token",
                ));
            }
        }
        if let Some(nbf) = self.nbf {
            if now.saturating_add(leeway) < nbf {
                return Err(TokenError::invalid(
                    "the token is not valid yet (`nbf` is in the future); check the clocks of the issuer and this proxy",
                ));
            }
        }
        if let Some(iat) = self.iat {
            if now.saturating_add(leeway) < iat {
                return Err(TokenError::invalid(
                    "the token was issued in the future (`iat`); check the clocks of the issuer and this proxy",
                ));
            }
        }
        Ok(())
    }
}

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, TokenError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let bad = || {
        TokenError::invalid(format!(
            "the token claim `{name}` must be a NumericDate (non-negative seconds since the epoch)"
        ))
    };
    if let Some(n) = v.as_u64() {
        return Ok(Some(n));
    }
    match v.as_f64() {
        Some(f) if (0.0..1.0e15).contains(&f) => Ok(Some(f.floor() as u64)),
        _ => Err(bad()),
    }
}

/// The denial for a token whose `aud` names none of `ours`: it names the
/// token's own audiences (the one token content a client needs to see what
/// its identity provider put there, e.g. Keycloak's default `account`), at
/// most 5, each cut to 100 characters (the reply escapes what it must).
pub fn audience_mismatch(token_aud: &[&str], ours: &[String]) -> TokenError {
    let shown: Vec<String> = token_aud
        .iter()
        .take(5)
        .map(|a| a.chars().take(100).collect())
        .collect();
    TokenError::invalid(format!(
        "the token audience ({}) does not include this server (expected one of: {})",
        shown.join(", "),
        ours.join(", ")
    ))
}

/// `aud` as a list of strings (string or array of strings; absent = empty).
pub fn audiences(claims: &Map<String, Value>) -> Result<Vec<&str>, TokenError> {
    match claims.get("aud") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    TokenError::invalid(
                        "the token claim `aud` must be a string or an array of strings",
                    )
                })
            })
            .collect(),
        Some(_) => Err(TokenError::invalid(
            "the token claim `aud` must be a string or an array of strings",
        )),
    }
}

/// The unverified `iss` of a compact JWT (for routing and the CLI only).
pub fn peek_issuer(token: &str) -> Option<String> {
    let (_, payload, _) = split_compact(token)?;
    let claims = decode_json_segment(payload, "payload").ok()?;
    match claims.get("iss") {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json() {
        for (input, ok) in [
            (r#"{"a":1}"#, true),
            (r#"{"a":1,"a":2}"#, false),
            (r#"{"a":{"b":1,"b":1}}"#, false),
            (r#"{"a":[{"b":1,"b":2}]}"#, false),
            (r#"[1]"#, false),
            (r#"{"a":1} x"#, false),
            (r#"{"a":1.5e3,"b":null,"c":[true,"x"]}"#, true),
        ] {
            assert_eq!(
                parse_strict_object(input.as_bytes(), "t").is_ok(),
                ok,
                "{input}"
            );
        }
        let e = parse_strict_object(br#"{"a":1,"a":2}"#, "token payload").unwrap_err();
        assert!(e.description.contains("duplicate"), "{}", e.description);
    }

    #[test]
    fn base64_strict() {
        assert_eq!(decode_b64url("YWI", "x").unwrap(), b"ab");
        assert!(decode_b64url("YWI=", "x").is_err()); // padding
        assert!(decode_b64url("YWJ", "x").is_err()); // non-canonical trailing bits
        assert!(decode_b64url("YW+", "x").is_err()); // standard alphabet
        assert!(decode_b64url("Y WI", "x").is_err());
    }

    #[test]
    fn times() {
        let t = TimeClaims {
            exp: Some(1000),
            nbf: Some(500),
            iat: Some(400),
        };
        for (now, ok) in [
            (499, true),
            (440, true),
            (439, false),
            (1059, true),
            (1060, false),
            (300, false),
        ] {
            assert_eq!(t.check(now, 60).is_ok(), ok, "now={now}");
        }
        let t = TimeClaims {
            exp: None,
            nbf: None,
            iat: Some(1000),
        };
        assert!(t.check(940, 60).is_ok());
        assert!(t.check(939, 60).is_err());
    }
}
