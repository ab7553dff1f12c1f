//! Bearer extraction, JWKS key store, cache, introspection, host path, config
//! validation and the CLI helpers.

// Test helpers outside #[test] functions may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod token_support;

use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::Reason;
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::token::host_crypto::{self, HostAssistedVerifier};
use fhir_smart_authz_core::token::offline::{inspect, verify_claims};
use fhir_smart_authz_core::token::{
    extract_bearer, Authenticated, BearerToken, FetchReason, Jwk, JwsAlgorithm, RustCryptoVerifier,
    SignatureVerifier, TokenCache, TokenLocation, TokenSettings, TokenVerifier, VerifierError,
};
use serde_json::{json, Value};
use std::cell::Cell;
use token_support::*;

// ---------------------------------------------------------------- bearer

fn parts<'a>(path: &'a str, headers: &[(&str, &str)]) -> RequestParts<'a> {
    RequestParts {
        method: "GET",
        path,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: None,
    }
}

#[test]
fn bearer_extraction_table() {
    let default = TokenSettings::default();
    let query_ok = TokenSettings {
        allow_query_parameter: true,
        ..TokenSettings::default()
    };
    let big = "a".repeat(16385);
    let big_header = format!("Bearer {big}");
    // (path, headers, settings, Ok(Some((token, location))) | Ok(None) | Err((reason, status, substring)))
    type Expect = Result<Option<(&'static str, TokenLocation)>, (Reason, u16, &'static str)>;
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a TokenSettings, Expect);
    let cases: Vec<Case> = vec![
        ("/fhir/Patient", vec![], &default, Ok(None)),
        (
            "/fhir/Patient",
            vec![("authorization", "Bearer abc.def.ghi")],
            &default,
            Ok(Some(("abc.def.ghi", TokenLocation::Header))),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "bearer abc")],
            &default,
            Ok(Some(("abc", TokenLocation::Header))),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "BEARER   abc==")],
            &default,
            Ok(Some(("abc==", TokenLocation::Header))),
        ),
        (
            "/fhir/Patient",
            vec![("Authorization", "Bearer a-b_c~d+e/f")],
            &default,
            Ok(Some(("a-b_c~d+e/f", TokenLocation::Header))),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "Basic dXNlcjpwdw==")],
            &default,
            Ok(None),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "Bearer")],
            &default,
            Err((Reason::InvalidRequest, 400, "no token")),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "Bearer a b")],
            &default,
            Err((Reason::InvalidRequest, 400, "exactly one credential")),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
            &default,
            Err((
                Reason::MultipleCredentials,
                400,
                "more than one Authorization header",
            )),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "Bearer a=b")],
            &default,
            Err((Reason::InvalidToken, 401, "b64token")),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", "Bearer a\"b")],
            &default,
            Err((Reason::InvalidToken, 401, "b64token")),
        ),
        (
            "/fhir/Patient",
            vec![("authorization", big_header.as_str())],
            &default,
            Err((Reason::InvalidToken, 401, "token.max_bytes (16384 bytes)")),
        ),
        (
            "/fhir/Patient?access_token=abc",
            vec![],
            &default,
            Err((Reason::InvalidRequest, 400, "allow_query_parameter")),
        ),
        (
            "/fhir/Patient?access_token=abc",
            vec![],
            &query_ok,
            Ok(Some(("abc", TokenLocation::Query))),
        ),
        (
            "/fhir/Patient?_id=1&access_token=a%2Eb",
            vec![],
            &query_ok,
            Ok(Some(("a.b", TokenLocation::Query))),
        ),
        (
            "/fhir/Patient?access_token=abc",
            vec![("authorization", "Bearer abc")],
            &query_ok,
            Err((
                Reason::MultipleCredentials,
                400,
                "both in the Authorization header",
            )),
        ),
        (
            "/fhir/Patient?access_token=abc",
            vec![("authorization", "Bearer abc")],
            &default,
            Err((
                Reason::MultipleCredentials,
                400,
                "both in the Authorization header",
            )),
        ),
        (
            "/fhir/Patient?access_token=a&access_token=b",
            vec![],
            &query_ok,
            Err((Reason::MultipleCredentials, 400, "repeated")),
        ),
        (
            "/fhir/Patient?access_token=",
            vec![],
            &query_ok,
            Err((Reason::InvalidRequest, 400, "empty")),
        ),
        (
            "/fhir/Patient?my_access_token=abc",
            vec![],
            &default,
            Ok(None),
        ),
    ];
    for (i, (path, headers, settings, expected)) in cases.into_iter().enumerate() {
        let p = parts(path, &headers);
        let got = extract_bearer(&p, settings);
        match (got, expected) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some(b)), Ok(Some((token, loc)))) => {
                assert_eq!((b.token.as_str(), b.location), (token, loc), "case {i}");
                assert!(
                    !format!("{b:?}").contains(token),
                    "Debug must not print the token"
                );
            }
            (Err(d), Err((reason, status, text))) => {
                assert_eq!(
                    (d.reason, d.status),
                    (reason, status),
                    "case {i}: {}",
                    d.message
                );
                assert!(
                    d.message.contains(text),
                    "case {i}: {:?} lacks {text:?}",
                    d.message
                );
            }
            (got, expected) => panic!("case {i} ({path}): got {got:?}, expected {expected:?}"),
        }
    }
}

// ---------------------------------------------------------------- JWKS

#[test]
fn jwks_parsing_skips_and_reports() {
    let set = fhir_smart_authz_core::token::KeySet::parse(JWKS_MIXED.as_bytes()).unwrap();
    let kids: Vec<_> = set.keys().iter().map(|k| k.kid.clone().unwrap()).collect();
    assert_eq!(kids, vec!["rsa1"]);
    let reasons: Vec<(usize, &str)> = set
        .skipped()
        .iter()
        .map(|s| (s.index, s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[0].1.contains("1024 bits"), "{reasons:?}");
    assert!(reasons[1].1.contains("private or symmetric"), "{reasons:?}");
    assert!(reasons[2].1.contains("`use` is \"enc\""), "{reasons:?}");
    assert!(reasons[3].1.contains("secp256k1"), "{reasons:?}");
    assert!(set.skipped_summary().contains("kid \"rsa_weak\""));

    for (doc, expect) in [
        (r#"{"keys": 5}"#, "`keys` array"),
        (r#"[]"#, "not a JSON object"),
        (r#"{"keys": [], "keys": []}"#, "duplicate"),
        (r#"not json"#, "not valid JSON"),
    ] {
        let e = fhir_smart_authz_core::token::KeySet::parse(doc.as_bytes()).unwrap_err();
        assert!(e.contains(expect), "{doc}: {e}");
    }
    // A JWK that pins its alg only verifies that alg.
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    let mut rsa = jwks["keys"][0].clone();
    rsa["alg"] = json!("PS256");
    let k = Jwk::from_value(&rsa).unwrap();
    assert!(k.accepts(JwsAlgorithm::PS256));
    assert!(!k.accepts(JwsAlgorithm::RS256));
    rsa["alg"] = json!("ES256");
    assert!(Jwk::from_value(&rsa)
        .unwrap_err()
        .contains("does not match"));
}

#[test]
fn jwks_startup_rotation_and_outage() {
    let cfg = remote_config(json!({}));
    let mut v = TokenVerifier::new(cfg.trust()).unwrap();
    let t0 = NOW;

    // Start-up: fetch immediately; until it lands, fail closed with KeysUnavailable.
    let due = v.fetches_due(t0);
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].reason,
            due[0].cluster.as_str(),
            due[0].authority.as_str(),
            due[0].path.as_str(),
            due[0].timeout_ms
        ),
        (
            FetchReason::Startup,
            "idp",
            "issuer.example.org",
            "/jwks",
            5000
        )
    );
    let e = v
        .verify_jwt(&token("RS256"), t0, &RustCryptoVerifier)
        .unwrap_err();
    assert_eq!(e.reason, Reason::KeysUnavailable);
    assert!(
        e.description
            .contains("no signing keys are available yet for issuer https://issuer.example.org"),
        "{e}"
    );
    assert_eq!(e.refetch_keys, Some(0));
    assert_eq!(e.clone().into_decision().status, 401);

    // Endpoint down at start: still KeysUnavailable, retried after min_refetch.
    v.begin_fetch(0, t0);
    assert!(v.fetches_due(t0 + 1).is_empty(), "in flight");
    assert!(v
        .on_jwks_response(0, Err("connection refused"), t0 + 1)
        .is_err());
    let e = v
        .verify_jwt(&token("RS256"), t0 + 2, &RustCryptoVerifier)
        .unwrap_err();
    assert_eq!(e.reason, Reason::KeysUnavailable);
    assert!(e.description.contains("connection refused"), "{e}");
    assert!(v.fetches_due(t0 + 20).is_empty(), "rate limited");
    assert_eq!(v.fetches_due(t0 + 30)[0].reason, FetchReason::Retry);
    v.begin_fetch(0, t0 + 30);
    assert!(v
        .on_jwks_response(0, Ok((503, b"")), t0 + 31)
        .unwrap_err()
        .contains("HTTP 503"));

    // Comes up: keys loaded, generation 1.
    v.begin_fetch(0, t0 + 60);
    let up = v
        .on_jwks_response(0, Ok((200, JWKS.as_bytes())), t0 + 61)
        .unwrap();
    assert!(up.changed);
    assert_eq!((up.generation, up.usable_keys), (1, 4));
    assert!(v
        .verify_jwt(&token("RS256"), t0 + 62, &RustCryptoVerifier)
        .is_ok());
    assert!(v.fetches_due(t0 + 100).is_empty());

    // A token signed by a new key (rsa2) before the refresh period: unknown kid
    // → one refetch allowed (rate limited), then accepted.
    let rotated = jws_raw(
        r#"{"alg":"RS256","kid":"rsa2"}"#,
        &claims().to_string(),
        "RS256",
        "rsa2",
    );
    let e = v
        .verify_jwt(&rotated, t0 + 100, &RustCryptoVerifier)
        .unwrap_err();
    assert_eq!((e.reason, e.refetch_keys), (Reason::InvalidToken, Some(0)));
    assert_eq!(v.fetches_due(t0 + 100)[0].reason, FetchReason::UnknownKid);
    v.begin_fetch(0, t0 + 100);
    let up = v
        .on_jwks_response(0, Ok((200, JWKS_ROTATED.as_bytes())), t0 + 101)
        .unwrap();
    assert_eq!((up.changed, up.generation, up.usable_keys), (true, 2, 5));
    assert!(v
        .verify_jwt(&rotated, t0 + 101, &RustCryptoVerifier)
        .is_ok());

    // Unknown kids right after a fetch: no stampede (no refetch until min_refetch).
    let stranger = jws_raw(
        r#"{"alg":"RS256","kid":"nobody"}"#,
        &claims().to_string(),
        "RS256",
        "rsa1",
    );
    for s in 0..10 {
        let e = v
            .verify_jwt(&stranger, t0 + 102 + s, &RustCryptoVerifier)
            .unwrap_err();
        assert_eq!(e.refetch_keys, None);
        assert!(v.fetches_due(t0 + 102 + s).is_empty());
    }
    let e = v
        .verify_jwt(&stranger, t0 + 130, &RustCryptoVerifier)
        .unwrap_err();
    assert_eq!(e.refetch_keys, Some(0));
    assert_eq!(v.fetches_due(t0 + 130)[0].reason, FetchReason::UnknownKid);
    v.begin_fetch(0, t0 + 130);
    // Same set again: generation unchanged (cache stays valid).
    let up = v
        .on_jwks_response(0, Ok((200, JWKS_ROTATED.as_bytes())), t0 + 131)
        .unwrap();
    assert_eq!((up.changed, up.generation), (false, 2));

    // Periodic refresh; endpoint down after start keeps the last good set.
    assert!(v.fetches_due(t0 + 400).is_empty());
    assert_eq!(v.fetches_due(t0 + 431)[0].reason, FetchReason::Periodic);
    v.begin_fetch(0, t0 + 431);
    assert!(v.on_jwks_response(0, Err("timeout"), t0 + 436).is_err());
    assert!(v
        .on_jwks_response(0, Ok((200, b"{\"keys\":[]}")), t0 + 437)
        .is_err());
    assert!(v
        .on_jwks_response(0, Ok((200, b"<html>")), t0 + 438)
        .is_err());
    assert_eq!(v.generation(0), Some(2));
    assert!(v
        .verify_jwt(&token("ES256"), t0 + 440, &RustCryptoVerifier)
        .is_ok());
    assert_eq!(
        v.key_store(0).unwrap().last_error(),
        Some("the JWKS document is not valid JSON")
    );
    assert!(
        v.fetches_due(t0 + 450).is_empty(),
        "rate limited after failure"
    );
    assert_eq!(v.fetches_due(t0 + 461)[0].reason, FetchReason::Retry);

    // A lost fetch (no callback) does not block forever.
    v.begin_fetch(0, t0 + 461);
    assert!(v.fetches_due(t0 + 500).is_empty());
    assert!(!v.fetches_due(t0 + 521).is_empty());
}

#[test]
fn shared_jwks_from_another_worker() {
    let cfg = remote_config(json!({}));
    let mut v = TokenVerifier::new(cfg.trust()).unwrap();
    let store = v.key_store_mut(0).unwrap();
    let up = store
        .on_shared_jwks(JWKS.as_bytes(), NOW - 10, NOW)
        .unwrap();
    assert_eq!(up.generation, 1);
    assert!(v.fetches_due(NOW).is_empty());
    assert!(v
        .verify_jwt(&token("EdDSA"), NOW, &RustCryptoVerifier)
        .is_ok());
    assert_eq!(v.fetches_due(NOW + 290)[0].reason, FetchReason::Periodic);
}

// ---------------------------------------------------------------- cache

struct Counting(Cell<usize>);

impl SignatureVerifier for Counting {
    fn verify(
        &self,
        alg: JwsAlgorithm,
        key: &Jwk,
        input: &[u8],
        sig: &[u8],
    ) -> Result<bool, VerifierError> {
        self.0.set(self.0.get() + 1);
        RustCryptoVerifier.verify(alg, key, input, sig)
    }
}

fn bearer(token: &str) -> BearerToken {
    BearerToken {
        token: token.to_string(),
        location: TokenLocation::Header,
    }
}

fn auth(
    v: &mut TokenVerifier,
    cache: &mut TokenCache<String>,
    token: &str,
    now: u64,
    sig: &Counting,
) -> Result<(String, bool), Reason> {
    match v.authenticate(cache, &bearer(token), now, sig, |t| {
        t.subject.clone().unwrap_or_default()
    }) {
        Ok(Authenticated::Verified { value, cached }) => Ok((value, cached)),
        Ok(Authenticated::Introspect(_)) => panic!("unexpected introspection"),
        Err(e) => Err(e.reason),
    }
}

#[test]
fn cache_skips_signature_and_respects_time_and_keys() {
    let cfg = remote_config(json!({}));
    let mut v = TokenVerifier::new(cfg.trust()).unwrap();
    v.begin_fetch(0, NOW - 100);
    v.on_jwks_response(0, Ok((200, JWKS.as_bytes())), NOW - 100)
        .unwrap();
    let mut cache = TokenCache::new(100);
    let sig = Counting(Cell::new(0));
    let short = token_with("RS256", &{
        let mut c = claims();
        c["exp"] = json!(NOW + 100);
        c
    });

    assert_eq!(
        auth(&mut v, &mut cache, &short, NOW, &sig),
        Ok(("user-1".into(), false))
    );
    assert_eq!(sig.0.get(), 1);
    for s in 1..50 {
        assert_eq!(
            auth(&mut v, &mut cache, &short, NOW + s, &sig),
            Ok(("user-1".into(), true))
        );
    }
    assert_eq!(sig.0.get(), 1, "cache hits skip the signature check");

    // Expires with exp (+ leeway): never a cached allow after that.
    assert_eq!(
        auth(&mut v, &mut cache, &short, NOW + 159, &sig),
        Ok(("user-1".into(), true))
    );
    assert_eq!(
        auth(&mut v, &mut cache, &short, NOW + 160, &sig),
        Err(Reason::InvalidToken)
    );

    // Different tokens (even same claims, different signature alg) never collide.
    let a = token("ES256");
    let b = token_with("ES256", &{
        let mut c = claims();
        c["sub"] = json!("user-2");
        c
    });
    assert_eq!(auth(&mut v, &mut cache, &a, NOW, &sig).unwrap().0, "user-1");
    assert_eq!(auth(&mut v, &mut cache, &b, NOW, &sig).unwrap().0, "user-2");
    assert_eq!(
        auth(&mut v, &mut cache, &a, NOW, &sig),
        Ok(("user-1".into(), true))
    );
    assert_eq!(
        auth(&mut v, &mut cache, &b, NOW, &sig),
        Ok(("user-2".into(), true))
    );
    // A tampered copy of a cached token is not a hit and fails verification.
    let tampered = format!("{}x", &a[..a.len() - 1]);
    assert!(auth(&mut v, &mut cache, &tampered, NOW, &sig).is_err());

    // Key-set change invalidates entries.
    let before = sig.0.get();
    v.begin_fetch(0, NOW + 1);
    v.on_jwks_response(0, Ok((200, JWKS_ROTATED.as_bytes())), NOW + 1)
        .unwrap();
    assert_eq!(
        auth(&mut v, &mut cache, &a, NOW + 2, &sig),
        Ok(("user-1".into(), false))
    );
    assert_eq!(sig.0.get(), before + 1);

    // Disabled cache: always verifies.
    let mut off = TokenCache::new(0);
    let n = sig.0.get();
    for _ in 0..3 {
        assert_eq!(
            auth(&mut v, &mut off, &a, NOW + 2, &sig),
            Ok(("user-1".into(), false))
        );
    }
    assert_eq!(sig.0.get(), n + 3);
}

#[test]
fn cache_bounded_eviction_oldest_first() {
    let mut cache: TokenCache<u32> = TokenCache::new(3);
    let times = fhir_smart_authz_core::token::TimeClaims::default();
    for i in 0..10u32 {
        cache.insert(
            fhir_smart_authz_core::token::CacheKey::of(&format!("t{i}")),
            0,
            1,
            NOW + 100,
            times,
            i,
        );
        assert!(cache.len() <= 3);
    }
    let gen = |_| Some(1);
    for i in 0..7 {
        assert!(cache
            .get(
                &fhir_smart_authz_core::token::CacheKey::of(&format!("t{i}")),
                NOW,
                gen
            )
            .is_none());
    }
    for i in 7..10 {
        assert_eq!(
            cache
                .get(
                    &fhir_smart_authz_core::token::CacheKey::of(&format!("t{i}")),
                    NOW,
                    gen
                )
                .unwrap()
                .value,
            i
        );
    }
}

// ---------------------------------------------------------------- introspection

fn introspection_config() -> Config {
    let cfg = json!({
        "fhir_base_url": AUD,
        "issuers": [
            {"issuer": ISS, "jwks": serde_json::from_str::<Value>(JWKS).unwrap()},
            {"issuer": "https://as.example.org", "introspection": {
                "cluster": "as", "path": "/oauth2/introspect", "client_id": "filter id",
                "client_secret": "s3cr:t", "max_cache_seconds": 120}}
        ]
    });
    Config::from_json(cfg.to_string().as_bytes()).unwrap()
}

#[test]
fn introspection_active_inactive_down() {
    let cfg = introspection_config();
    let mut v = TokenVerifier::new(cfg.trust()).unwrap();
    let mut cache: TokenCache<String> = TokenCache::new(10);
    let sig = Counting(Cell::new(0));
    let opaque = "opaque-token_123";

    let req = match v
        .authenticate(&mut cache, &bearer(opaque), NOW, &sig, |_| String::new())
        .unwrap()
    {
        Authenticated::Introspect(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (req.issuer_index, req.cluster.as_str(), req.timeout_ms),
        (1, "as", 5000)
    );
    assert_eq!(
        String::from_utf8(req.body.clone()).unwrap(),
        "token=opaque-token_123&token_type_hint=access_token"
    );
    let h: std::collections::HashMap<_, _> = req.headers.iter().cloned().collect();
    assert_eq!(h[":method"], "POST");
    assert_eq!(h[":path"], "/oauth2/introspect");
    assert_eq!(h[":authority"], "as");
    assert_eq!(h["content-type"], "application/x-www-form-urlencoded");
    // RFC 6749 §2.3.1: form-urlencode id and secret, then base64("id:secret").
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode("filter+id:s3cr%3At");
    assert_eq!(h["authorization"], format!("Basic {basic}"));
    assert!(!format!("{req:?}").contains(opaque));

    let to_sub = |t: &fhir_smart_authz_core::token::VerifiedToken| {
        t.claims["scope"].as_str().unwrap_or("").to_string()
    };
    // Active, exp beyond max_cache_seconds: cached 120 s.
    let body = json!({"active": true, "scope": "patient/*.rs", "exp": NOW + 3600, "aud": AUD, "iss": "https://as.example.org"}).to_string();
    let got = v
        .complete_introspection(
            &mut cache,
            &req,
            opaque,
            Ok((200, body.as_bytes())),
            NOW,
            to_sub,
        )
        .unwrap();
    assert_eq!(got, "patient/*.rs");
    assert!(matches!(
        v.authenticate(&mut cache, &bearer(opaque), NOW + 119, &sig, |_| {
            String::new()
        }),
        Ok(Authenticated::Verified { cached: true, .. })
    ));
    assert!(matches!(
        v.authenticate(&mut cache, &bearer(opaque), NOW + 120, &sig, |_| {
            String::new()
        }),
        Ok(Authenticated::Introspect(_))
    ));
    assert_eq!(sig.0.get(), 0);

    // exp shorter than max_cache_seconds bounds the TTL.
    let other = "other-opaque";
    let body = json!({"active": true, "exp": NOW + 10}).to_string();
    v.complete_introspection(
        &mut cache,
        &req,
        other,
        Ok((200, body.as_bytes())),
        NOW,
        to_sub,
    )
    .unwrap();
    assert!(matches!(
        v.authenticate(&mut cache, &bearer(other), NOW + 9, &sig, |_| String::new()),
        Ok(Authenticated::Verified { cached: true, .. })
    ));
    assert!(matches!(
        v.authenticate(&mut cache, &bearer(other), NOW + 10, &sig, |_| String::new(
        )),
        Ok(Authenticated::Introspect(_))
    ));

    for (response, reason, text) in [
        (
            Ok((200, json!({"active": false}).to_string())),
            Reason::TokenInactive,
            "not active",
        ),
        (
            Ok((200, json!({"active": "yes"}).to_string())),
            Reason::IntrospectionUnavailable,
            "no boolean `active`",
        ),
        (
            Ok((200, "<html>".to_string())),
            Reason::IntrospectionUnavailable,
            "not a JSON object",
        ),
        (
            Ok((500, String::new())),
            Reason::IntrospectionUnavailable,
            "HTTP status 500",
        ),
        (Err("timeout"), Reason::IntrospectionUnavailable, "timeout"),
        (
            Ok((200, json!({"active": true, "aud": "other"}).to_string())),
            Reason::InvalidToken,
            "audience",
        ),
        (
            Ok((
                200,
                json!({"active": true, "iss": "https://evil"}).to_string(),
            )),
            Reason::InvalidToken,
            "another issuer",
        ),
        (
            Ok((200, json!({"active": true, "exp": NOW - 100}).to_string())),
            Reason::InvalidToken,
            "expired",
        ),
    ] {
        let r = match &response {
            Ok((s, b)) => Ok((*s, b.as_bytes())),
            Err(e) => Err(*e),
        };
        let e = v
            .complete_introspection(&mut cache, &req, "t-x", r, NOW, to_sub)
            .unwrap_err();
        assert_eq!(e.reason, reason, "{response:?}: {e}");
        assert!(e.description.contains(text), "{response:?}: {e}");
        assert_eq!(e.into_decision().status, 401);
    }

    // JWTs of the JWKS issuer are still verified locally.
    assert!(matches!(
        v.authenticate(&mut cache, &bearer(&token("RS256")), NOW, &sig, |_| {
            String::new()
        }),
        Ok(Authenticated::Verified { cached: false, .. })
    ));

    // Without an introspection issuer an opaque token is a 401.
    let mut plain = TokenVerifier::new(config().trust()).unwrap();
    let e = plain
        .authenticate(&mut cache, &bearer(opaque), NOW, &sig, |_| String::new())
        .unwrap_err();
    assert_eq!(e.reason, Reason::InvalidToken);
    assert!(e.description.contains("not a JWT"), "{e}");
}

// ---------------------------------------------------------------- host path

#[test]
fn host_assisted_verifier_routes_rsa_pkcs1_to_host() {
    let calls = Cell::new(0);
    let host = HostAssistedVerifier::new(|args: &[u8]| -> Result<Vec<u8>, String> {
        calls.set(calls.get() + 1);
        // The fixture's DER SPKI is inside the encoded arguments.
        let spki = rsa_public_spki("rsa1");
        assert!(args.windows(spki.len()).any(|w| w == spki.as_slice()));
        assert_eq!(&args[..8], b"\x0a\x06sha256");
        Ok(vec![0x08, 0x01])
    });
    let mut v = TokenVerifier::new(config().trust()).unwrap();
    assert!(v.verify_jwt(&token("RS256"), NOW, &host).is_ok());
    assert_eq!(calls.get(), 1);
    for alg in ["PS256", "ES256", "ES384", "EdDSA"] {
        assert!(v.verify_jwt(&token(alg), NOW, &host).is_ok(), "{alg}");
    }
    assert_eq!(calls.get(), 1, "non-PKCS#1 algorithms use the pure path");

    let refusing = HostAssistedVerifier::new(|_: &[u8]| Ok(vec![0x12, 0x02, b'n', b'o']));
    let e = v.verify_jwt(&token("RS384"), NOW, &refusing).unwrap_err();
    assert!(e.description.contains("signature is invalid"), "{e}");
    // A failing host call falls back to the pure path: same answers.
    let broken = HostAssistedVerifier::new(|_: &[u8]| Err("BadArgument".to_string()));
    assert!(v.verify_jwt(&token("RS512"), NOW, &broken).is_ok());
    let good = token("RS512");
    let cut = good.len() - 10;
    let flipped = if &good[cut..cut + 1] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &good[..cut], &good[cut + 1..]);
    assert!(v.verify_jwt(&tampered, NOW, &broken).is_err());
    let garbled = HostAssistedVerifier::new(|_: &[u8]| Ok(vec![0x0f]));
    assert!(v.verify_jwt(&token("RS256"), NOW, &garbled).is_ok());
    assert_eq!(
        (broken.host_failures.get(), garbled.host_failures.get()),
        (2, 1)
    );

    assert_eq!(
        host_crypto::host_hash_function(JwsAlgorithm::RS384),
        Some("sha384")
    );
    assert_eq!(host_crypto::host_hash_function(JwsAlgorithm::PS256), None);
}

// ---------------------------------------------------------------- config

#[test]
fn config_validation_names_fields() {
    let jwks: Value = serde_json::from_str(JWKS).unwrap();
    for (cfg, field, text) in [
        (
            json!({"issuers": [{"issuer": ISS, "jwks": jwks}]}),
            "issuers[0].audiences",
            "fhir_base_url",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS}]}),
            "issuers[0]",
            "set exactly one of jwks, jwks_uri or introspection",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "jwks_uri": "https://x/j", "jwks_cluster": "c"}]}),
            "issuers[0]",
            "exactly one",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": "", "jwks": jwks}]}),
            "issuers[0].issuer",
            "exact `iss`",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks_uri": "https://x/j"}]}),
            "issuers[0].jwks_cluster",
            "required",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks_uri": "x/j", "jwks_cluster": "c"}]}),
            "issuers[0].jwks_uri",
            "absolute",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": {"keys": []}}]}),
            "issuers[0].jwks",
            "no usable signing key",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "algorithms": ["none"]}]}),
            "issuers[0].algorithms[0]",
            "never accepted",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "algorithms": ["RS256", "HS256"]}]}),
            "issuers[0].algorithms[1]",
            "symmetric",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks}, {"issuer": ISS, "jwks": jwks}]}),
            "issuers[1].issuer",
            "duplicates issuers[0]",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "introspection": {"cluster": "as", "path": "introspect", "client_id": "a", "client_secret": "b"}}]}),
            "issuers[0].introspection.path",
            "starting with `/`",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "introspection": {"cluster": "as", "path": "/i", "client_secret": "b"}}]}),
            "issuers[0].introspection.client_id",
            "required",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [
            {"issuer": "a", "introspection": {"cluster": "as", "path": "/i", "client_id": "a", "client_secret": "b"}},
            {"issuer": "b", "introspection": {"cluster": "as", "path": "/i", "client_id": "a", "client_secret": "b"}}]}),
            "issuers[1].introspection",
            "at most one",
        ),
        (
            json!({"token": {"max_bytes": 10}}),
            "token.max_bytes",
            "at least 64",
        ),
        (
            json!({"token": {"leeway_seconds": 3600}}),
            "token.leeway_seconds",
            "at most 600",
        ),
        (
            json!({"token": {"leway_seconds": 5}}),
            "leway_seconds",
            "unknown field",
        ),
        (
            json!({"fhir_base_url": AUD, "issuers": [{"issuer": ISS, "jwks": jwks, "audience": "x"}]}),
            "audience",
            "unknown field",
        ),
    ] {
        let e = Config::from_json(cfg.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{cfg}: {e}");
        assert!(e.message.contains(text), "{cfg}: {e}");
    }
    // Defaults.
    let c = Config::default_config().unwrap();
    assert_eq!(
        c.token,
        TokenSettings {
            leeway_seconds: 60,
            max_bytes: 16384,
            allow_query_parameter: false,
            cache_max_entries: 10000,
            host_crypto: true,
        }
    );
    let c = Config::from_json(br#"{"token": {"host_crypto": false}}"#).unwrap();
    assert!(!c.token.host_crypto);
    let c = remote_config(json!({}));
    assert_eq!(
        (
            c.issuers[0].jwks_refresh_seconds,
            c.issuers[0].jwks_min_refetch_seconds
        ),
        (300, 30)
    );
    assert_eq!(
        c.issuers[0].effective_audiences(c.base.url.as_deref()),
        vec![AUD.to_string()]
    );
    assert_eq!(c.issuers[0].effective_algorithms().len(), 9);
}

// ---------------------------------------------------------------- CLI

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

// ---------------------------------------------------------------- service

#[test]
fn token_service_drives_fetches_cache_and_introspection() {
    use fhir_smart_authz_core::token::{CallPurpose, TokenService, TokenStep};
    let cfg = remote_config(json!({}));
    let mut svc = TokenService::new(cfg.trust(), &cfg.claims).unwrap();
    assert_eq!(svc.fetched_issuers(), vec![0]);
    let sig = Counting(Cell::new(0));

    // Before any keys: the request itself triggers the start-up fetch once.
    let t = token("RS256");
    let (call, purpose) = match svc.verify(&t, NOW, &sig) {
        TokenStep::Call { call, purpose } => (call, purpose),
        other => panic!("{other:?}"),
    };
    assert_eq!(purpose, CallPurpose::Jwks { issuer: 0 });
    assert_eq!(call.cluster, "idp");
    assert_eq!(
        call.headers[..3],
        [
            (":method".to_string(), "GET".to_string()),
            (":path".to_string(), "/jwks".to_string()),
            (":authority".to_string(), "issuer.example.org".to_string()),
        ]
    );
    // The fetch failed: deny KeysUnavailable, no second fetch for this request.
    match svc.call_done(purpose, &t, None, b"", NOW, &sig) {
        TokenStep::Denied(d) => assert_eq!((d.reason, d.status), (Reason::KeysUnavailable, 401)),
        other => panic!("{other:?}"),
    }
    assert!(svc.due_jwks_fetches(NOW + 1).is_empty(), "rate limited");
    let due = svc.due_jwks_fetches(NOW + 30);
    assert_eq!(due.len(), 1);
    assert!(
        svc.due_jwks_fetches(NOW + 30).is_empty(),
        "marked in flight"
    );
    svc.jwks_loaded(0, JWKS.as_bytes(), NOW + 31).unwrap();

    // Verified, projected claims, then a cache hit without a signature check.
    let with_extra = token_with("RS256", &{
        let mut c = claims();
        c["name"] = json!("Ada");
        c
    });
    match svc.verify(&with_extra, NOW + 32, &sig) {
        TokenStep::Verified { claims, cache_hit } => {
            assert!(!cache_hit);
            assert_eq!(claims["patient"], "123");
            assert_eq!(claims["scope"], "patient/*.rs launch/patient");
            assert!(
                claims.get("name").is_none(),
                "only kept claims are handed on"
            );
        }
        other => panic!("{other:?}"),
    }
    let n = sig.0.get();
    match svc.verify(&with_extra, NOW + 33, &sig) {
        TokenStep::Verified { claims, cache_hit } => {
            assert!(cache_hit);
            assert_eq!(claims["sub"], "user-1");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sig.0.get(), n);

    // Unknown kid → one JWKS refetch for the request, then verified.
    let rotated = jws_raw(
        r#"{"alg":"RS256","kid":"rsa2"}"#,
        &claims().to_string(),
        "RS256",
        "rsa2",
    );
    let purpose = match svc.verify(&rotated, NOW + 100, &sig) {
        TokenStep::Call { purpose, .. } => purpose,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        svc.call_done(
            purpose,
            &rotated,
            Some(200),
            JWKS_ROTATED.as_bytes(),
            NOW + 100,
            &sig
        ),
        TokenStep::Verified {
            cache_hit: false,
            ..
        }
    ));
    // Another unknown kid right away: denied without a fetch (no stampede).
    let stranger = jws_raw(
        r#"{"alg":"RS256","kid":"x"}"#,
        &claims().to_string(),
        "RS256",
        "rsa1",
    );
    match svc.verify(&stranger, NOW + 101, &sig) {
        TokenStep::Denied(d) => assert_eq!(d.reason, Reason::InvalidToken),
        other => panic!("{other:?}"),
    }

    // Claims too large to cache are verified every time (still correct).
    let scopes: Vec<String> = (0..500).map(|i| format!("patient/T{i}.rs")).collect();
    let big = token_with("ES256", &{
        let mut c = claims();
        c["scope"] = json!(scopes.join(" "));
        c
    });
    for _ in 0..3 {
        assert!(matches!(
            svc.verify(&big, NOW + 102, &sig),
            TokenStep::Verified {
                cache_hit: false,
                ..
            }
        ));
    }

    // Introspection through the service.
    let mut svc = {
        let cfg = introspection_config();
        TokenService::new(cfg.trust(), &cfg.claims)
    }
    .unwrap();
    let (call, purpose) = match svc.verify("opaque", NOW, &sig) {
        TokenStep::Call { call, purpose } => (call, purpose),
        other => panic!("{other:?}"),
    };
    assert_eq!(purpose, CallPurpose::Introspection { issuer: 1 });
    assert_eq!(
        call.body.as_deref(),
        Some(&b"token=opaque&token_type_hint=access_token"[..])
    );
    let body = json!({"active": true, "scope": "user/*.rs", "exp": NOW + 600}).to_string();
    assert!(matches!(
        svc.call_done(purpose, "opaque", Some(200), body.as_bytes(), NOW, &sig),
        TokenStep::Verified {
            cache_hit: false,
            ..
        }
    ));
    assert!(matches!(
        svc.verify("opaque", NOW + 1, &sig),
        TokenStep::Verified {
            cache_hit: true,
            ..
        }
    ));
    match svc.call_done(purpose, "other", None, b"", NOW, &sig) {
        TokenStep::Denied(d) => assert_eq!(d.reason, Reason::IntrospectionUnavailable),
        other => panic!("{other:?}"),
    }

    // Extraction uses the configured settings.
    let p = parts("/fhir/Patient?access_token=x", &[]);
    assert_eq!(svc.extract(&p).unwrap_err().reason, Reason::InvalidRequest);
}

/// Repeats of a cached token (the service's hot tier) still run the time
/// checks and die with the key set, exactly like the first hit.
#[test]
fn token_service_repeated_hits_keep_expiry_and_key_set_checks() {
    use fhir_smart_authz_core::token::{TokenService, TokenStep};
    let cfg = remote_config(json!({}));
    let mut svc = TokenService::new(cfg.trust(), &cfg.claims).unwrap();
    let sig = Counting(Cell::new(0));
    svc.jwks_loaded(0, JWKS.as_bytes(), NOW).unwrap();
    let t = token("RS256"); // exp NOW + 3600, default leeway 60
    let hits: Vec<bool> = (0..4)
        .map(|i| match svc.verify(&t, NOW + i, &sig) {
            TokenStep::Verified { claims, cache_hit } => {
                assert_eq!(claims["patient"], "123");
                cache_hit
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(hits, vec![false, true, true, true]);
    assert_eq!(sig.0.get(), 1);
    // Expired (past exp + leeway): refused on the repeat path too.
    match svc.verify(&t, NOW + 3600 + 60, &sig) {
        TokenStep::Denied(d) => assert_eq!(d.reason, Reason::InvalidToken),
        other => panic!("{other:?}"),
    }
    // A new key set without rsa1 drops the cached entry: not a hit any more.
    let mut svc = TokenService::new(cfg.trust(), &cfg.claims).unwrap();
    svc.jwks_loaded(0, JWKS.as_bytes(), NOW).unwrap();
    for _ in 0..2 {
        assert!(matches!(
            svc.verify(&t, NOW, &sig),
            TokenStep::Verified { .. }
        ));
    }
    svc.jwks_loaded(0, JWKS_ROTATED.as_bytes(), NOW + 40)
        .unwrap();
    assert!(!matches!(
        svc.verify(&t, NOW + 41, &sig),
        TokenStep::Verified {
            cache_hit: true,
            ..
        }
    ));
}
