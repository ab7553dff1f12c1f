//! The verified-token cache: hits skip the signature, time and key-set checks still run, bounded eviction.

use super::*;

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
        let entry = fhir_smart_authz_core::token::CacheEntry {
            issuer_index: 0,
            key_set: 1,
            expires_at: NOW + 100,
            times,
            value: i,
        };
        cache.insert(
            fhir_smart_authz_core::token::CacheKey::of(&format!("t{i}")),
            entry,
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

/// One cache for the worker threads of a process (the native module): an
/// entry holds in every worker whose key set of the issuer is the same set
/// (by content, not by how many sets each worker has seen), and in no other.
#[test]
fn a_shared_cache_holds_across_workers_only_under_the_same_key_set() {
    let cfg = remote_config(json!({}));
    let loaded = |jwks: &str| {
        let mut v = TokenVerifier::new(cfg.trust()).unwrap();
        v.begin_fetch(0, NOW - 100);
        v.on_jwks_response(0, Ok((200, jwks.as_bytes())), NOW - 100)
            .unwrap();
        v
    };
    // Each worker's first key set (generation 1 in both): A has the old
    // set, B the rotated one with the new key rsa2.
    let (mut a, mut b) = (loaded(JWKS), loaded(JWKS_ROTATED));
    assert_eq!((a.generation(0), b.generation(0)), (Some(1), Some(1)));
    let shared = SharedTokenCache::new(100);
    let (mut in_a, mut in_b) = (shared.clone(), shared.clone());
    let sig = Counting(Cell::new(0));
    let new_key = jws_raw(
        r#"{"alg":"RS256","kid":"rsa2"}"#,
        &claims().to_string(),
        "RS256",
        "rsa2",
    );
    assert_eq!(
        auth(&mut b, &mut in_b, &new_key, NOW, &sig),
        Ok(("user-1".into(), false))
    );
    // A does not know rsa2: B's entry is no answer for it.
    assert_eq!(
        auth(&mut a, &mut in_a, &new_key, NOW, &sig),
        Err(Reason::InvalidToken)
    );
    // A token both sets verify: verified once, then a hit in the other
    // worker once it has the same set.
    let old_key = token("RS256");
    assert_eq!(
        auth(&mut b, &mut in_b, &old_key, NOW, &sig),
        Ok(("user-1".into(), false))
    );
    let checks = sig.0.get();
    a.begin_fetch(0, NOW);
    a.on_jwks_response(0, Ok((200, JWKS_ROTATED.as_bytes())), NOW)
        .unwrap();
    assert_eq!(a.generation(0), Some(2));
    assert_eq!(a.key_set_id(0), b.key_set_id(0));
    assert_eq!(
        auth(&mut a, &mut in_a, &old_key, NOW + 1, &sig),
        Ok(("user-1".into(), true))
    );
    assert_eq!(sig.0.get(), checks, "a hit checks no signature");
}
