//! The token service as the filter drives it: fetches, cache, hot tier, introspection.

use super::*;

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

/// The claims `policy.labels` reads (clearance, purpose of use, relabel)
/// are handed on and cached with the others.
#[test]
fn label_claims_are_kept() {
    use fhir_smart_authz_core::token::{RustCryptoVerifier, TokenService, TokenStep};
    let mut doc = config_json(json!({}), json!({}));
    doc["policy"] = json!({"labels": {"clearance_claim": "clearance", "purpose_of_use_claim": "pou", "relabel_claim": "relabel"}});
    let cfg = Config::from_json(doc.to_string().as_bytes()).unwrap();
    let mut svc = TokenService::new(cfg.trust(), &cfg.claims).unwrap();
    let mut c = claims();
    for (k, v) in [
        ("clearance", json!(["urn:x|R"])),
        ("pou", json!("BTG")),
        ("relabel", json!(true)),
        ("name", json!("Ada")),
    ] {
        c[k] = v;
    }
    let t = token_with("RS256", &c);
    for hit in [false, true] {
        match svc.verify(&t, NOW, &RustCryptoVerifier) {
            TokenStep::Verified { claims, cache_hit } => {
                assert_eq!(cache_hit, hit);
                assert_eq!(
                    (&claims["clearance"], &claims["pou"], &claims["relabel"]),
                    (&json!(["urn:x|R"]), &json!("BTG"), &json!(true))
                );
                assert!(claims.get("name").is_none());
            }
            other => panic!("{other:?}"),
        }
    }
}
