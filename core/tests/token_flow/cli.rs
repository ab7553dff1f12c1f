//! The CLI's offline verification and `token inspect`, and the shared-JWKS encoding.

use super::*;

#[test]
fn cli_verify_and_inspect() {
    let cfg = config();
    let claims = verify_claims(cfg.trust(), &token("ES384"), NOW).unwrap();
    assert_eq!(claims["patient"], "123");
    let d = verify_claims(cfg.trust(), &token("ES384"), NOW + 7200).unwrap_err();
    assert_eq!((d.reason, d.status), (Reason::InvalidToken, 401));
    assert!(d.message.contains("expired"));

    let remote = remote_config(json!({}));
    let d = verify_claims(remote.trust(), &token("RS256"), NOW).unwrap_err();
    assert_eq!(d.reason, Reason::KeysUnavailable);
    assert!(
        d.message.contains("the CLI only has inline keys") && d.message.contains("jwks_uri"),
        "{}",
        d.message
    );

    let t = token("RS256");
    let out = inspect(cfg.trust(), &t, NOW);
    assert_eq!(out["valid"], true);
    assert_eq!(out["reason"], "valid");
    assert_eq!(
        out["header"],
        json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"})
    );
    assert_eq!(out["claims"]["sub"], "user-1");
    let sig = t.rsplit('.').next().unwrap();
    assert!(
        !out.to_string().contains(sig),
        "inspect must not return the signature"
    );
    let out = inspect(cfg.trust(), &token("RS256"), NOW + 7200);
    assert_eq!(
        (out["valid"].clone(), out["reason"].clone()),
        (json!(false), json!("invalid_token"))
    );
    let out = inspect(cfg.trust(), "garbage", NOW);
    assert_eq!(
        (out["header"].clone(), out["valid"].clone()),
        (Value::Null, json!(false))
    );
}

#[test]
fn shared_jwks_encoding_round_trips() {
    use fhir_smart_authz_core::token::{decode_shared_jwks, encode_shared_jwks};
    let enc = encode_shared_jwks(NOW, JWKS.as_bytes());
    assert_eq!(decode_shared_jwks(&enc), Some((NOW, JWKS.as_bytes())));
    assert_eq!(decode_shared_jwks(&enc[..7]), None);
}
