//! JWKS parsing and the key store: start-up, rotation, outages, sets shared by another worker VM.

use super::*;

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
