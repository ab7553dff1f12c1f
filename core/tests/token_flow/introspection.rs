//! RFC 7662 introspection: active, inactive, unreachable, cached answers.

use super::*;

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

/// A configuration whose secret was never loaded (built without
/// `Config::from_json_with_secrets`) makes no call without credentials.
#[test]
fn introspection_without_a_loaded_secret_fails_closed() {
    use fhir_smart_authz_core::secret::{SecretRef, SecretSetting};
    use fhir_smart_authz_core::token::introspection::build_request;
    use fhir_smart_authz_core::token::IntrospectionConfig;
    let cfg = IntrospectionConfig {
        cluster: "as".into(),
        path: "/introspect".into(),
        client_id: "gw".into(),
        client_secret: SecretSetting::new(SecretRef::Env("SECRET".into())),
        ..IntrospectionConfig::default()
    };
    let e = build_request(0, &cfg, "opaque").unwrap_err();
    assert_eq!(
        (e.reason, e.description.as_str()),
        (
            Reason::IntrospectionUnavailable,
            "the introspection client secret is not loaded"
        )
    );
}
