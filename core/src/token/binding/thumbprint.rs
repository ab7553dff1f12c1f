//! RFC 7638 JWK thumbprints (SHA-256, base64url): what `cnf.jkt` names.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The required members of each key type, in lexicographic order (RFC 7638 §3.2).
fn required_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "RSA" => Some(&["e", "kty", "n"]),
        "EC" => Some(&["crv", "kty", "x", "y"]),
        "OKP" => Some(&["crv", "kty", "x"]),
        _ => None,
    }
}

/// The thumbprint of a public JWK: SHA-256 over the JSON object of its
/// required members only, sorted, without whitespace, base64url-encoded.
/// `None` when the key type is unknown or a required member is not a string.
pub fn jwk_thumbprint(jwk: &Map<String, Value>) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    // An EC key's canonical form is ~130 bytes: one buffer, no copy per member.
    let mut canonical: Vec<u8> = Vec::with_capacity(160);
    canonical.push(b'{');
    for (i, name) in required_members(kty)?.iter().enumerate() {
        let value = jwk.get(*name)?.as_str()?;
        if i > 0 {
            canonical.push(b',');
        }
        // serde_json writes a JSON string with the escapes RFC 7638 expects.
        serde_json::to_writer(&mut canonical, name).ok()?;
        canonical.push(b':');
        serde_json::to_writer(&mut canonical, value).ok()?;
    }
    canonical.push(b'}');
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(&canonical)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example() {
        // RFC 7638 §3.1.
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn unknown_or_incomplete_keys_have_none() {
        for jwk in [
            serde_json::json!({"kty": "oct", "k": "AAAA"}),
            serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AA"}),
            serde_json::json!({"kty": "RSA", "n": 5, "e": "AQAB"}),
            serde_json::json!({"n": "AA", "e": "AQAB"}),
        ] {
            assert_eq!(jwk_thumbprint(jwk.as_object().unwrap()), None, "{jwk}");
        }
    }
}
