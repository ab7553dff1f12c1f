//! Attack and validation table for JWT verification. Every case names the
//! expected reason and a substring of the description.

// Test helpers outside #[test] functions may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod token_support;

use fhir_smart_authz_core::decision::Reason;
use fhir_smart_authz_core::token::{RustCryptoVerifier, TokenVerifier};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{Algorithm, AlgorithmSignature};
use serde_json::{json, Value};
use token_support::*;

fn verify(
    config: &fhir_smart_authz_core::config::Config,
    token: &str,
) -> Result<Value, (Reason, String)> {
    let mut v = TokenVerifier::new(config.trust()).unwrap();
    v.verify_jwt(token, NOW, &RustCryptoVerifier)
        .map(|t| t.claims)
        .map_err(|e| (e.reason, e.description))
}

fn with_claims(f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut c = claims();
    f(c.as_object_mut().unwrap());
    c
}

fn parts(token: &str) -> (String, String, String) {
    let mut it = token.split('.');
    (
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
        it.next().unwrap().to_string(),
    )
}

fn resign_sig(token: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    use base64::Engine;
    let (h, p, s) = parts(token);
    let mut sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap();
    f(&mut sig);
    format!("{h}.{p}.{}", b64(&sig))
}

fn hs256_with_rsa_public_key() -> String {
    let header = b64(br#"{"alg":"HS256","kid":"rsa1","typ":"JWT"}"#);
    let payload = b64(claims().to_string().as_bytes());
    let input = format!("{header}.{payload}");
    // The classic confusion attack: HMAC keyed with the RSA public key bytes
    // (both DER and the JWKS `n` text).
    let key = Hs256Key::new(rsa_public_spki("rsa1"));
    let sig = Hs256.sign(&key, input.as_bytes());
    format!("{input}.{}", b64(&sig.as_bytes()))
}

fn es256_with(r_zero: bool, s_zero: bool) -> String {
    let t = token("ES256");
    resign_sig(&t, |sig| {
        if r_zero {
            sig[..32].fill(0);
        }
        if s_zero {
            sig[32..].fill(0);
        }
    })
}

struct Case {
    name: &'static str,
    token: String,
    reason: Reason,
    description: &'static str,
}

fn case(name: &'static str, token: String, reason: Reason, description: &'static str) -> Case {
    Case {
        name,
        token,
        reason,
        description,
    }
}

fn header_token(header: Value, alg: &str) -> String {
    jws_raw(
        &header.to_string(),
        &claims().to_string(),
        alg,
        kid_for(alg),
    )
}

#[test]
fn attack_table() {
    let cfg = config();
    let valid = token("RS256");
    let (vh, vp, vs) = parts(&valid);
    let none_payload = b64(claims().to_string().as_bytes());
    let mut cases = vec![];
    for alg in ["none", "None", "nOnE", "NONE"] {
        let h = b64(json!({"alg": alg, "kid": "rsa1"}).to_string().as_bytes());
        cases.push(case(
            "alg none, empty signature",
            format!("{h}.{none_payload}."),
            Reason::InvalidToken,
            "alg none",
        ));
        cases.push(case(
            "alg none, RS256 signature",
            format!("{h}.{none_payload}.{vs}"),
            Reason::InvalidToken,
            "alg none",
        ));
    }
    cases.extend([
        case(
            "HS256 keyed with RSA public key",
            hs256_with_rsa_public_key(),
            Reason::InvalidToken,
            "symmetric algorithm HS256",
        ),
        case(
            "unknown alg",
            header_token(json!({"alg": "RS1024", "kid": "rsa1"}), "RS256"),
            Reason::InvalidToken,
            "not supported",
        ),
        case(
            "unknown kid",
            header_token(json!({"alg": "RS256", "kid": "nope"}), "RS256"),
            Reason::InvalidToken,
            "no key with the token's kid",
        ),
        case(
            "kid with path",
            header_token(json!({"alg": "RS256", "kid": "../../etc/passwd"}), "RS256"),
            Reason::InvalidToken,
            "no key with the token's kid",
        ),
        case(
            "kid not a string",
            header_token(json!({"alg": "RS256", "kid": 7}), "RS256"),
            Reason::InvalidToken,
            "`kid` must be a string",
        ),
        case(
            "jku header",
            header_token(
                json!({"alg": "RS256", "kid": "rsa1", "jku": "https://evil.example/jwks"}),
                "RS256",
            ),
            Reason::InvalidToken,
            "`jku`",
        ),
        case(
            "x5u header",
            header_token(
                json!({"alg": "RS256", "kid": "rsa1", "x5u": "https://evil.example/cert"}),
                "RS256",
            ),
            Reason::InvalidToken,
            "`x5u`",
        ),
        case(
            "jwk header",
            header_token(
                json!({"alg": "RS256", "kid": "rsa1", "jwk": {"kty": "RSA"}}),
                "RS256",
            ),
            Reason::InvalidToken,
            "`jwk`",
        ),
        case(
            "crit header",
            header_token(
                json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"]}),
                "RS256",
            ),
            Reason::InvalidToken,
            "`crit`",
        ),
        case(
            "no alg",
            header_token(json!({"kid": "rsa1"}), "RS256"),
            Reason::InvalidToken,
            "no `alg`",
        ),
        case(
            "ES256 alg with RSA kid",
            header_token(json!({"alg": "ES256", "kid": "rsa1"}), "RS256"),
            Reason::InvalidToken,
            "cannot verify ES256",
        ),
        case(
            "tampered payload",
            format!(
                "{vh}.{}.{vs}",
                b64(with_claims(|c| {
                    c.insert("sub".into(), json!("evil"));
                })
                .to_string()
                .as_bytes())
            ),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "tampered signature",
            resign_sig(&valid, |s| s[10] ^= 1),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "truncated signature",
            resign_sig(&valid, |s| {
                s.pop();
            }),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "empty signature",
            format!("{vh}.{vp}."),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "padded header",
            format!("{vh}=.{vp}.{vs}"),
            Reason::InvalidToken,
            "header is not valid unpadded base64url",
        ),
        case(
            "padded signature",
            format!("{vh}.{vp}.{vs}=="),
            Reason::InvalidToken,
            "signature is not valid unpadded base64url",
        ),
        case(
            "standard alphabet in payload",
            format!("{vh}.{}+.{vs}", &vp[..vp.len() - 1]),
            Reason::InvalidToken,
            "payload is not valid unpadded base64url",
        ),
        case(
            "bad base64 char",
            format!("{vh}.{vp}.{}*", &vs[..vs.len() - 1]),
            Reason::InvalidToken,
            "signature is not valid unpadded base64url",
        ),
        case(
            "four parts",
            format!("{valid}.x"),
            Reason::InvalidToken,
            "not a JWT",
        ),
        case(
            "two parts",
            format!("{vh}.{vp}"),
            Reason::InvalidToken,
            "not a JWT",
        ),
        case(
            "header not JSON",
            format!("{}.{vp}.{vs}", b64(b"not json")),
            Reason::InvalidToken,
            "header is not valid JSON",
        ),
        case(
            "duplicate alg in header",
            jws_raw(
                r#"{"alg":"RS256","kid":"rsa1","alg":"none"}"#,
                &claims().to_string(),
                "RS256",
                "rsa1",
            ),
            Reason::InvalidToken,
            "header contains duplicate JSON member names",
        ),
        case(
            "duplicate sub in payload",
            jws_raw(
                r#"{"alg":"RS256","kid":"rsa1"}"#,
                &format!(
                    r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"sub":"a","sub":"b"}}"#,
                    NOW + 60
                ),
                "RS256",
                "rsa1",
            ),
            Reason::InvalidToken,
            "payload contains duplicate JSON member names",
        ),
        case(
            "payload array",
            jws_raw(r#"{"alg":"RS256","kid":"rsa1"}"#, "[1,2]", "RS256", "rsa1"),
            Reason::InvalidToken,
            "payload is not a JSON object",
        ),
        case(
            "missing exp",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.remove("exp");
                }),
            ),
            Reason::InvalidToken,
            "no `exp`",
        ),
        case(
            "expired beyond leeway",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("exp".into(), json!(NOW - 61));
                }),
            ),
            Reason::InvalidToken,
            "expired",
        ),
        case(
            "exp as string",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("exp".into(), json!("tomorrow"));
                }),
            ),
            Reason::InvalidToken,
            "`exp` must be a NumericDate",
        ),
        case(
            "negative exp",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("exp".into(), json!(-5));
                }),
            ),
            Reason::InvalidToken,
            "`exp` must be a NumericDate",
        ),
        case(
            "future nbf",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("nbf".into(), json!(NOW + 120));
                }),
            ),
            Reason::InvalidToken,
            "not valid yet",
        ),
        case(
            "future iat",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("iat".into(), json!(NOW + 120));
                }),
            ),
            Reason::InvalidToken,
            "issued in the future",
        ),
        case(
            "wrong iss",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("iss".into(), json!("https://evil.example"));
                }),
            ),
            Reason::InvalidToken,
            "not a trusted issuer",
        ),
        case(
            "iss with trailing slash",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("iss".into(), json!(format!("{ISS}/")));
                }),
            ),
            Reason::InvalidToken,
            "not a trusted issuer",
        ),
        case(
            "missing iss",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.remove("iss");
                }),
            ),
            Reason::InvalidToken,
            "no `iss`",
        ),
        case(
            "missing aud",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.remove("aud");
                }),
            ),
            Reason::InvalidToken,
            "no `aud`",
        ),
        case(
            "wrong aud",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("aud".into(), json!("https://other.example/fhir"));
                }),
            ),
            Reason::InvalidToken,
            "the token audience (https://other.example/fhir) does not include this server",
        ),
        case(
            "aud array without ours",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("aud".into(), json!(["a", "b\"c"]));
                }),
            ),
            Reason::InvalidToken,
            "the token audience (a, b\"c) does not include this server",
        ),
        case(
            "aud number",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("aud".into(), json!(5));
                }),
            ),
            Reason::InvalidToken,
            "`aud` must be a string or an array",
        ),
        case(
            "ES256 r = 0",
            es256_with(true, false),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "ES256 s = 0",
            es256_with(false, true),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "ES256 r = s = 0",
            es256_with(true, true),
            Reason::InvalidToken,
            "signature is invalid",
        ),
        case(
            "oversized",
            format!("{vh}.{}.{vs}", "A".repeat(20000)),
            Reason::InvalidToken,
            "token.max_bytes",
        ),
    ]);
    for c in &cases {
        match verify(&cfg, &c.token) {
            Ok(_) => panic!("{}: accepted", c.name),
            Err((reason, description)) => {
                assert_eq!(reason, c.reason, "{}: {description}", c.name);
                assert!(
                    description.contains(c.description),
                    "{}: {description:?} lacks {:?}",
                    c.name,
                    c.description
                );
                for secret in ["evil", "passwd", "user-1", "RS1024"] {
                    assert!(
                        !description.contains(secret),
                        "{}: description echoes token content: {description}",
                        c.name
                    );
                }
            }
        }
    }
}

#[test]
fn accepted_variants() {
    let cfg = config();
    for (name, token) in [
        (
            "exp within leeway",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("exp".into(), json!(NOW - 30));
                }),
            ),
        ),
        (
            "nbf within leeway",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("nbf".into(), json!(NOW + 30));
                }),
            ),
        ),
        (
            "fractional exp",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("exp".into(), json!((NOW + 10) as f64 + 0.5));
                }),
            ),
        ),
        (
            "aud array with ours",
            token_with(
                "RS256",
                &with_claims(|c| {
                    c.insert("aud".into(), json!(["x", AUD]));
                }),
            ),
        ),
        (
            "no kid: tries keys for the alg",
            jws_raw(r#"{"alg":"ES256"}"#, &claims().to_string(), "ES256", "p256"),
        ),
        (
            "x5t header ignored",
            jws_raw(
                r#"{"alg":"RS256","kid":"rsa1","x5t":"abc"}"#,
                &claims().to_string(),
                "RS256",
                "rsa1",
            ),
        ),
    ] {
        let claims = verify(&cfg, &token).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(claims["sub"], "user-1", "{name}");
    }
}

#[test]
fn every_supported_algorithm_verifies() {
    let cfg = config();
    for alg in [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ] {
        let mut v = TokenVerifier::new(cfg.trust()).unwrap();
        let t = v
            .verify_jwt(&token(alg), NOW, &RustCryptoVerifier)
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(t.algorithm.map(|a| a.name()), Some(alg));
        assert_eq!(t.key_id.as_deref(), Some(kid_for(alg)));
        assert_eq!(t.jti.as_deref(), Some("jti-1"));
        assert_eq!(t.times.exp, Some(NOW + 3600));
        assert_eq!(t.issuer_index, 0);
        // Same token with one signature bit flipped fails.
        let bad = resign_sig(&token(alg), |s| s[5] ^= 0x10);
        let e = v.verify_jwt(&bad, NOW, &RustCryptoVerifier).unwrap_err();
        assert!(e.description.contains("signature is invalid"), "{alg}: {e}");
    }
}

#[test]
fn issuer_options() {
    // algorithms allow-list
    let cfg = config_with(json!({"algorithms": ["RS256"]}));
    assert!(verify(&cfg, &token("RS256")).is_ok());
    let (r, d) = verify(&cfg, &token("ES256")).unwrap_err();
    assert_eq!(r, Reason::InvalidToken);
    assert!(
        d.contains("algorithm ES256 is not allowed") && d.contains("issuers[0].algorithms"),
        "{d}"
    );

    // typ at+jwt
    let cfg = config_with(json!({"require_typ_at_jwt": true}));
    for (typ, ok) in [
        (Some("at+jwt"), true),
        (Some("AT+JWT"), true),
        (Some("application/at+jwt"), true),
        (Some("JWT"), false),
        (None, false),
    ] {
        let header = match typ {
            Some(t) => json!({"alg": "RS256", "kid": "rsa1", "typ": t}),
            None => json!({"alg": "RS256", "kid": "rsa1"}),
        };
        let r = verify(&cfg, &header_token(header, "RS256"));
        assert_eq!(r.is_ok(), ok, "typ {typ:?}: {r:?}");
        if let Err((_, d)) = r {
            assert!(d.contains("at+jwt"), "{d}");
        }
    }

    // max lifetime
    let cfg = config_with(json!({"max_lifetime_seconds": 3600}));
    assert!(verify(
        &cfg,
        &token_with(
            "RS256",
            &with_claims(|c| {
                c.insert("iat".into(), json!(NOW));
            })
        )
    )
    .is_ok());
    let (_, d) = verify(
        &cfg,
        &token_with(
            "RS256",
            &with_claims(|c| {
                c.insert("iat".into(), json!(NOW - 100));
            }),
        ),
    )
    .unwrap_err();
    assert!(d.contains("exceeds 3600 seconds"), "{d}");
    let (_, d) = verify(
        &cfg,
        &token_with(
            "RS256",
            &with_claims(|c| {
                c.remove("iat");
            }),
        ),
    )
    .unwrap_err();
    assert!(d.contains("no `iat`"), "{d}");

    // explicit audiences replace the base URL default
    let cfg = config_with(json!({"audiences": ["api://fhir"]}));
    assert!(verify(&cfg, &token("RS256")).is_err());
    assert!(verify(
        &cfg,
        &token_with(
            "RS256",
            &with_claims(|c| {
                c.insert("aud".into(), json!("api://fhir"));
            })
        )
    )
    .is_ok());
}

#[test]
fn two_thousand_scopes_are_accepted_quickly() {
    let scopes: Vec<String> = (0..2000).map(|i| format!("patient/Type{i}.rs")).collect();
    let t = token_with(
        "ES256",
        &with_claims(|c| {
            c.insert("scope".into(), json!(scopes.join(" ")));
        }),
    );
    assert!(t.len() < 60_000);
    let cfg = fhir_smart_authz_core::config::Config::from_json(
        config_json(json!({}), json!({"max_bytes": 65536}))
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let start = std::time::Instant::now();
    let claims = verify(&cfg, &t).unwrap();
    assert_eq!(claims["scope"].as_str().unwrap().split(' ').count(), 2000);
    assert!(start.elapsed().as_secs() < 5, "took {:?}", start.elapsed());
}

/// The pure path agrees with PyJWT on valid, tampered and wrong-key tokens.
#[test]
fn agrees_with_pyjwt_reference() {
    let refs: Vec<Value> = serde_json::from_str(REFERENCE_TOKENS).unwrap();
    assert!(refs.len() >= 30);
    let cfg = config();
    for r in refs {
        let ours = verify(&cfg, r["token"].as_str().unwrap());
        assert_eq!(
            ours.is_ok(),
            r["pyjwt_valid"].as_bool().unwrap(),
            "{} {}: {ours:?}",
            r["alg"],
            r["case"]
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any single-character change of a valid token is refused (strict
        /// base64url means no two strings decode to the same bytes).
        #[test]
        fn any_mutation_is_refused(pos in 0usize..400, c in prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ".chars().collect::<Vec<_>>())) {
            let t = token("EdDSA");
            let pos = pos % t.len();
            prop_assume!(t.as_bytes()[pos] as char != c);
            let mut m = t.clone().into_bytes();
            m[pos] = c as u8;
            let m = String::from_utf8(m).unwrap();
            prop_assert!(verify(&config(), &m).is_err());
        }

        /// Arbitrary input never panics and is refused.
        #[test]
        fn garbage_is_refused(s in ".{0,300}", dots in 0usize..4) {
            let mut t = s.clone();
            for _ in 0..dots {
                t.push('.');
                t.push_str(&s);
            }
            prop_assert!(verify(&config(), &t).is_err());
        }
    }
}
