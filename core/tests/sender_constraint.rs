//! Sender-constrained tokens end to end through the engine: every check of
//! RFC 9449 §4.3/§7/§8/§11 and RFC 8705 §3 is a row with its exact status,
//! reason and message; the property that a bound token is never accepted
//! without its proof, over every combination of settings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod token_support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use fhir_smart_authz_core::config::Config;
use fhir_smart_authz_core::decision::{Decision, Reason};
use fhir_smart_authz_core::engine::{self, Credential};
use fhir_smart_authz_core::fhir::RequestParts;
use fhir_smart_authz_core::token::binding::{ConnectionFacts, MemoryReplayStore};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Mutex;
use token_support::*;

const PATH: &str = "/fhir/Patient/123";
const HTU: &str = "https://fhir.example.org/fhir/Patient/123";
const NONCE_KEY: &str = "0123456789abcdef0123456789abcdef-nonce";

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// An access token with this `cnf` (`null`: unbound), signed once per `cnf`
/// (RSA signing is slow in debug builds).
fn token_bound(cnf: Value) -> String {
    static SIGNED: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let mut signed = SIGNED.lock().unwrap();
    signed
        .entry(cnf.to_string())
        .or_insert_with(|| {
            let mut c = claims();
            if !cnf.is_null() {
                c["cnf"] = cnf.clone();
            }
            token_with("RS256", &c)
        })
        .clone()
}

/// A proof for `token` signed with `kid` (`alg`), with header and claims patched.
fn proof_with(
    alg: &str,
    kid: &str,
    token: &str,
    header: impl FnOnce(&mut Map<String, Value>),
    claims: impl FnOnce(&mut Map<String, Value>),
) -> String {
    let mut h = json!({"typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(kid)});
    header(h.as_object_mut().unwrap());
    let mut c = json!({"jti": "proof-1", "htm": "GET", "htu": HTU, "iat": NOW, "ath": ath(token)});
    claims(c.as_object_mut().unwrap());
    jws_raw(&h.to_string(), &c.to_string(), alg, kid)
}

fn proof(token: &str) -> String {
    proof_with("ES256", "p256", token, |_| {}, |_| {})
}

fn cfg(issuer: Value, sender: Value) -> Config {
    let mut j = config_json(issuer, json!({}));
    j["sender_constraint"] = sender;
    // The nonce key is written inline here; deployments give a reference.
    j["allow_insecure_inline_secrets"] = json!(true);
    Config::from_json(j.to_string().as_bytes()).unwrap()
}

fn dpop_cfg() -> Config {
    cfg(json!({"dpop": {"mode": "accepted"}}), json!({}))
}

/// One request: method, path, headers; decided at `NOW`.
fn decide_at(
    config: &Config,
    method: &str,
    headers: &[(&str, &str)],
    cert_hex: Option<&str>,
    replay: &mut MemoryReplayStore,
    now: u64,
) -> Decision {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let req = RequestParts {
        method,
        path: PATH,
        headers: headers.into(),
        body: None,
    };
    let conn = ConnectionFacts {
        peer_certificate_sha256_hex: cert_hex,
        peer_address: Some("10.0.0.9:4000"),
    };
    engine::decide_request(config, &req, Credential::InRequest, conn, now, replay)
}

fn decide(config: &Config, headers: &[(&str, &str)]) -> Decision {
    decide_at(
        config,
        "GET",
        headers,
        None,
        &mut MemoryReplayStore::default(),
        NOW,
    )
}

fn dpop_headers<'a>(auth: &'a str, proof: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("authorization", auth), ("dpop", proof)]
}

/// `(status, reason, message fragment)`; allows are `(200, Allowed, "")`.
fn expect(d: &Decision, row: &str, status: u16, reason: Reason, fragment: &str) {
    assert_eq!(
        (d.status, d.reason),
        (status, reason),
        "{row}: {}",
        d.message
    );
    assert!(
        d.message.contains(fragment),
        "{row}: {:?} lacks {fragment:?}",
        d.message
    );
}

#[test]
fn dpop_proof_checks() {
    let config = dpop_cfg();
    let token = token_bound(json!({"jkt": jkt("p256")}));
    let auth = format!("DPoP {token}");
    let good = proof(&token);
    type Patch = Box<dyn Fn(&mut Map<String, Value>)>;
    let none = || -> Patch { Box::new(|_| {}) };
    let set = |k: &'static str, v: Value| -> Patch {
        Box::new(move |m| {
            m.insert(k.into(), v.clone());
        })
    };
    let drop = |k: &'static str| -> Patch {
        Box::new(move |m| {
            m.remove(k);
        })
    };
    let inv = Reason::InvalidDpopProof;
    // (row, alg, kid, header patch, claims patch, status, reason, message)
    /// (row, alg, kid, header patch, claims patch, status, reason, message)
    type Row = (
        &'static str,
        &'static str,
        &'static str,
        Patch,
        Patch,
        u16,
        Reason,
        &'static str,
    );
    let rows: Vec<Row> = vec![
        (
            "valid ES256",
            "ES256",
            "p256",
            none(),
            none(),
            200,
            Reason::Allowed,
            "",
        ),
        (
            "typ missing",
            "ES256",
            "p256",
            drop("typ"),
            none(),
            401,
            inv,
            "no header `typ`",
        ),
        (
            "typ JWT",
            "ES256",
            "p256",
            set("typ", json!("JWT")),
            none(),
            401,
            inv,
            "dpop+jwt",
        ),
        (
            "jwk missing",
            "ES256",
            "p256",
            drop("jwk"),
            none(),
            401,
            inv,
            "no `jwk`",
        ),
        (
            "jwk private d",
            "ES256",
            "p256",
            Box::new(|m| {
                m["jwk"]["d"] = json!("AAAA");
            }),
            none(),
            401,
            inv,
            "private key material (`d`)",
        ),
        (
            "jwk another key",
            "ES256",
            "p256",
            Box::new(|m| {
                m["jwk"] = Value::Object(public_jwk("p384"));
            }),
            none(),
            401,
            inv,
            "not a key for ES256",
        ),
        (
            "jwk with jku",
            "ES256",
            "p256",
            set("jku", json!("https://x")),
            none(),
            401,
            inv,
            "`jku`",
        ),
        (
            "alg none",
            "ES256",
            "p256",
            set("alg", json!("none")),
            none(),
            401,
            inv,
            "\"none\" is not accepted",
        ),
        (
            "alg HS256",
            "ES256",
            "p256",
            set("alg", json!("HS256")),
            none(),
            401,
            inv,
            "\"HS256\" is not accepted",
        ),
        (
            "jti missing",
            "ES256",
            "p256",
            none(),
            drop("jti"),
            401,
            inv,
            "no claim `jti`",
        ),
        (
            "htm missing",
            "ES256",
            "p256",
            none(),
            drop("htm"),
            401,
            inv,
            "no claim `htm`",
        ),
        (
            "htu missing",
            "ES256",
            "p256",
            none(),
            drop("htu"),
            401,
            inv,
            "no claim `htu`",
        ),
        (
            "iat missing",
            "ES256",
            "p256",
            none(),
            drop("iat"),
            401,
            inv,
            "no claim `iat`",
        ),
        (
            "iat not a number",
            "ES256",
            "p256",
            none(),
            set("iat", json!("now")),
            401,
            inv,
            "NumericDate",
        ),
        (
            "htm POST",
            "ES256",
            "p256",
            none(),
            set("htm", json!("POST")),
            401,
            inv,
            "`htm`",
        ),
        (
            "htm lower case",
            "ES256",
            "p256",
            none(),
            set("htm", json!("get")),
            401,
            inv,
            "`htm`",
        ),
        (
            "htu other path",
            "ES256",
            "p256",
            none(),
            set("htu", json!("https://fhir.example.org/fhir/Patient/124")),
            401,
            inv,
            "`htu`",
        ),
        (
            "htu other host",
            "ES256",
            "p256",
            none(),
            set("htu", json!("https://evil.example.org/fhir/Patient/123")),
            401,
            inv,
            "`htu`",
        ),
        (
            "htu normalised",
            "ES256",
            "p256",
            none(),
            set(
                "htu",
                json!("HTTPS://FHIR.example.org:443/fhir/./Patient/%31%323"),
            ),
            200,
            Reason::Allowed,
            "",
        ),
        (
            "htu with query",
            "ES256",
            "p256",
            none(),
            set("htu", json!(format!("{HTU}?x=1#f"))),
            200,
            Reason::Allowed,
            "",
        ),
        (
            "iat too old",
            "ES256",
            "p256",
            none(),
            set("iat", json!(NOW - 61)),
            401,
            inv,
            "too old",
        ),
        (
            "iat oldest",
            "ES256",
            "p256",
            none(),
            set("iat", json!(NOW - 60)),
            200,
            Reason::Allowed,
            "",
        ),
        (
            "iat future",
            "ES256",
            "p256",
            none(),
            set("iat", json!(NOW + 6)),
            401,
            inv,
            "future",
        ),
        (
            "iat skew",
            "ES256",
            "p256",
            none(),
            set("iat", json!(NOW + 5)),
            200,
            Reason::Allowed,
            "",
        ),
        (
            "ath missing",
            "ES256",
            "p256",
            none(),
            drop("ath"),
            401,
            inv,
            "no `ath`",
        ),
        (
            "ath other token",
            "ES256",
            "p256",
            none(),
            set("ath", json!(ath("another"))),
            401,
            inv,
            "`ath`",
        ),
        (
            "RS256 proof, other key",
            "RS256",
            "rsa1",
            none(),
            none(),
            401,
            Reason::TokenBindingMismatch,
            "another key",
        ),
    ];
    for (row, alg, kid, h, c, status, reason, fragment) in rows {
        let p = proof_with(alg, kid, &token, |m| h(m), |m| c(m));
        let d = decide(&config, &dpop_headers(&auth, &p));
        expect(&d, row, status, reason, fragment);
    }
    // The request itself.
    let bad_sig = format!("{}AAAA", &good[..good.len() - 4]);
    for (row, headers, method, status, reason, fragment) in [
        (
            "no proof",
            vec![("authorization", auth.as_str())],
            "GET",
            401,
            inv,
            "no `DPoP` proof",
        ),
        (
            "two proofs",
            vec![
                ("authorization", auth.as_str()),
                ("dpop", good.as_str()),
                ("dpop", good.as_str()),
            ],
            "GET",
            401,
            inv,
            "more than one",
        ),
        (
            "not a JWS",
            dpop_headers(&auth, "abc"),
            "GET",
            401,
            inv,
            "compact JWS",
        ),
        (
            "bad signature",
            dpop_headers(&auth, &bad_sig),
            "GET",
            401,
            inv,
            "signature",
        ),
        (
            "method differs",
            dpop_headers(&auth, &good),
            "DELETE",
            401,
            inv,
            "`htm`",
        ),
    ] {
        let d = decide_at(
            &config,
            method,
            &headers,
            None,
            &mut MemoryReplayStore::default(),
            NOW,
        );
        expect(&d, row, status, reason, fragment);
    }
}

/// A worker keeps the proof headers it checked (`ProofKeys`): every proof
/// gets the answer it gets without them, whatever came before, including
/// proofs that reuse a kept header with another payload or signature, or
/// under an issuer that allows other algorithms; a header that does not
/// check out is never kept; past the bound the cache starts over.
#[test]
fn kept_proof_headers_change_no_answer() {
    use fhir_smart_authz_core::token::binding::proof::{
        verify_proof, verify_proof_with, MAX_PROOF_KEYS,
    };
    use fhir_smart_authz_core::token::binding::ProofKeys;
    use fhir_smart_authz_core::token::{JwsAlgorithm, RustCryptoVerifier};

    let token = token_bound(json!({"jkt": jkt("p256")}));
    let valid = proof(&token);
    let segments: Vec<&str> = valid.split('.').collect();
    let (h64, p64) = (segments[0], segments[1]);
    let resigned = |claims: Value| {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_jwk("p256")});
        jws_raw(&header.to_string(), &claims.to_string(), "ES256", "p256")
    };
    let header_patched = |patch: &dyn Fn(&mut Map<String, Value>)| {
        proof_with("ES256", "p256", &token, |h| patch(h), |_| {})
    };
    let flipped = format!("{h64}.{p64}.{}A", &segments[2][..segments[2].len() - 1]);
    let proofs = [
        ("valid ES256", valid.clone(), JwsAlgorithm::ALL.to_vec()),
        (
            "kept header, ES256 not allowed",
            valid.clone(),
            vec![JwsAlgorithm::RS256],
        ),
        (
            "kept header, other signature",
            flipped,
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "kept header, payload not base64url",
            format!("{h64}.{p64}*.{}", segments[2]),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "kept header, no jti",
            resigned(json!({"htm": "GET", "htu": HTU, "iat": NOW})),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "kept header, another jti",
            resigned(json!({"jti": "2", "htm": "GET", "htu": HTU, "iat": NOW})),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "typ jwt",
            header_patched(&|h| {
                h.insert("typ".into(), json!("jwt"));
            }),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "private member",
            header_patched(&|h| {
                h["jwk"]["d"] = json!("AAAA");
            }),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "jku",
            header_patched(&|h| {
                h.insert("jku".into(), json!("https://x"));
            }),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "RS256",
            proof_with("RS256", "rsa1", &token, |_| {}, |_| {}),
            JwsAlgorithm::ALL.to_vec(),
        ),
        (
            "RS256 not allowed",
            proof_with("RS256", "rsa1", &token, |_| {}, |_| {}),
            vec![JwsAlgorithm::ES256],
        ),
    ];
    let alone: Vec<String> = proofs
        .iter()
        .map(|(_, p, allowed)| format!("{:?}", verify_proof(p, allowed, &RustCryptoVerifier)))
        .collect();
    assert!(alone[0].starts_with("Ok("), "{}", alone[0]);
    assert!(
        alone[1].contains("\\\"ES256\\\" is not accepted"),
        "{}",
        alone[1]
    );
    assert!(alone[2].contains("does not verify"), "{}", alone[2]);
    assert!(alone[4].contains("`jti`"), "{}", alone[4]);
    assert!(alone[5].starts_with("Ok("), "{}", alone[5]);
    assert!(
        alone[10].contains("\\\"RS256\\\" is not accepted"),
        "{}",
        alone[10]
    );
    // In order, in reverse, and each twice in a row, through one cache.
    let mut keys = ProofKeys::default();
    let order: Vec<usize> = (0..proofs.len())
        .chain((0..proofs.len()).rev())
        .flat_map(|i| [i, i])
        .collect();
    for i in order {
        let (row, p, allowed) = &proofs[i];
        let kept = format!(
            "{:?}",
            verify_proof_with(p, allowed, &RustCryptoVerifier, &mut keys)
        );
        assert_eq!(kept, alone[i], "{row}");
    }
    // Past the bound: MAX_PROOF_KEYS + 1 distinct headers, then the first.
    let mut keys = ProofKeys::default();
    for n in 0..=MAX_PROOF_KEYS {
        let p = proof_with(
            "ES256",
            "p256",
            &token,
            |h| {
                h.insert("n".into(), json!(n));
            },
            |_| {},
        );
        assert!(
            verify_proof_with(&p, &JwsAlgorithm::ALL, &RustCryptoVerifier, &mut keys).is_ok(),
            "{n}"
        );
    }
    let first = format!(
        "{:?}",
        verify_proof_with(&valid, &JwsAlgorithm::ALL, &RustCryptoVerifier, &mut keys)
    );
    assert_eq!(first, alone[0]);
}

/// The `ath` a worker keeps per proof key is the hash of exactly the token
/// at hand: tokens alternating under one key, and under two keys.
#[test]
fn kept_access_token_hashes_follow_the_token() {
    use fhir_smart_authz_core::token::binding::ProofKeys;
    let mut keys = ProofKeys::default();
    let (a, b) = ("token-a", "token-b");
    let long = "x".repeat(5000); // longer than what is kept: hashed every time
    for (jkt, token) in [
        ("k1", a),
        ("k1", a),
        ("k1", b),
        ("k1", a),
        ("k2", b),
        ("k1", a),
        ("k2", a),
        ("k1", long.as_str()),
        ("k1", long.as_str()),
        ("k1", a),
    ] {
        assert_eq!(
            keys.access_token_hash(jkt, token),
            ath(token),
            "{jkt} {token:.10}"
        );
    }
}

#[test]
fn rs256_proofs_and_key_binding() {
    let config = dpop_cfg();
    let token = token_bound(json!({"jkt": jkt("rsa1")}));
    let auth = format!("DPoP {token}");
    let p = proof_with("RS256", "rsa1", &token, |_| {}, |_| {});
    expect(
        &decide(&config, &dpop_headers(&auth, &p)),
        "RS256",
        200,
        Reason::Allowed,
        "",
    );
    // Proof algorithms are the issuer's choice.
    let es_only = cfg(
        json!({"dpop": {"mode": "accepted", "algorithms": ["ES256"]}}),
        json!({}),
    );
    let d = decide(&es_only, &dpop_headers(&auth, &p));
    expect(
        &d,
        "RS256 not allowed",
        401,
        Reason::InvalidDpopProof,
        "\"RS256\" is not accepted",
    );
}

#[test]
fn scheme_binding() {
    let config = dpop_cfg();
    let bound = token_bound(json!({"jkt": jkt("p256")}));
    let unbound = token_bound(Value::Null);
    let p = proof(&bound);
    let bearer_bound = format!("Bearer {bound}");
    let d = decide(&config, &dpop_headers(&bearer_bound, &p));
    expect(
        &d,
        "bound as Bearer",
        401,
        Reason::TokenBindingMismatch,
        "not as a bearer token",
    );
    let dpop_unbound = format!("DPoP {unbound}");
    let p2 = proof(&unbound);
    let d = decide(&config, &dpop_headers(&dpop_unbound, &p2));
    expect(
        &d,
        "unbound as DPoP",
        401,
        Reason::TokenBindingMismatch,
        "needs a DPoP-bound token",
    );
    let d = decide(&config, &[("authorization", &format!("Bearer {unbound}"))]);
    expect(&d, "unbound as Bearer", 200, Reason::Allowed, "");
    // required: unbound tokens refused.
    let required = cfg(json!({"dpop": {"mode": "required"}}), json!({}));
    let d = decide(
        &required,
        &[("authorization", &format!("Bearer {unbound}"))],
    );
    expect(
        &d,
        "required, unbound",
        401,
        Reason::TokenBindingRequired,
        "only DPoP-bound",
    );
    // off (the default): a bound token is refused, never a bearer token.
    let off = config_with(json!({}));
    for headers in [
        dpop_headers(&bearer_bound, &p),
        dpop_headers(&format!("DPoP {bound}"), &p),
    ] {
        let d = decide(&off, &headers);
        expect(
            &d,
            "off",
            401,
            Reason::TokenBindingMismatch,
            "dpop.mode \"off\"",
        );
    }
    // A confirmation method the filter cannot check.
    let other = token_bound(json!({"jwk": {"kty": "EC"}}));
    let d = decide(&config, &[("authorization", &format!("Bearer {other}"))]);
    expect(
        &d,
        "cnf.jwk",
        401,
        Reason::TokenBindingMismatch,
        "`cnf.jwk`",
    );
}

/// An ES256 proof (fixture key `p256`) for `token` with these claims set.
fn proof_setting(token: &str, set: Value) -> String {
    proof_with(
        "ES256",
        "p256",
        token,
        |_| {},
        |c| {
            c.extend(set.as_object().unwrap().clone());
        },
    )
}

#[test]
fn replayed_proofs_are_refused_within_their_window() {
    let config = dpop_cfg();
    let token = token_bound(json!({"jkt": jkt("p256")}));
    let auth = format!("DPoP {token}");
    let first = proof(&token);
    let mut cache = MemoryReplayStore::default();
    // (row, proof, now, status, reason, message), in order, one cache.
    let rows = [
        ("first", first.clone(), NOW, 200, Reason::Allowed, ""),
        (
            "replay",
            first.clone(),
            NOW + 30,
            401,
            Reason::DpopProofReplayed,
            "already used",
        ),
        // Past the window the proof is too old, not a replay.
        (
            "late replay",
            first,
            NOW + 61,
            401,
            Reason::InvalidDpopProof,
            "too old",
        ),
        // Another jti is another proof.
        (
            "new jti",
            proof_setting(&token, json!({"jti": "proof-2"})),
            NOW + 1,
            200,
            Reason::Allowed,
            "",
        ),
        // An invalid proof is not recorded: the valid one after it goes through.
        (
            "invalid",
            proof_setting(&token, json!({"jti": "proof-3", "htm": "PUT"})),
            NOW + 1,
            401,
            Reason::InvalidDpopProof,
            "`htm`",
        ),
        (
            "valid after invalid",
            proof_setting(&token, json!({"jti": "proof-3"})),
            NOW + 1,
            200,
            Reason::Allowed,
            "",
        ),
    ];
    for (row, p, now, status, reason, fragment) in rows {
        let d = decide_at(
            &config,
            "GET",
            &dpop_headers(&auth, &p),
            None,
            &mut cache,
            now,
        );
        expect(&d, row, status, reason, fragment);
    }
}

#[test]
fn full_replay_cache_fails_closed() {
    let config = cfg(
        json!({"dpop": {"mode": "accepted"}}),
        json!({"replay_cache_entries": 64}),
    );
    let token = token_bound(json!({"jkt": jkt("p256")}));
    let auth = format!("DPoP {token}");
    let mut cache = MemoryReplayStore::default();
    // 64 entries over 64 shards: one per shard; fill until a shard is full.
    let mut refused = None;
    for i in 0..200 {
        let p = proof_setting(&token, json!({"jti": format!("j{i}")}));
        let d = decide_at(
            &config,
            "GET",
            &dpop_headers(&auth, &p),
            None,
            &mut cache,
            NOW,
        );
        if d.reason != Reason::Allowed {
            refused = Some((i, d));
            break;
        }
    }
    let (i, d) = refused.expect("a shard fills up");
    expect(&d, "full", 503, Reason::ReplayCacheUnavailable, "full");
    // Once the entries expire, the same proof is accepted (it is still fresh at NOW + 60).
    let p = proof_setting(&token, json!({"jti": format!("j{i}"), "iat": NOW + 60}));
    let d = decide_at(
        &config,
        "GET",
        &dpop_headers(&auth, &p),
        None,
        &mut cache,
        NOW + 62,
    );
    expect(&d, "after expiry", 200, Reason::Allowed, "");
}

#[test]
fn server_nonces() {
    let config = cfg(
        json!({"dpop": {"mode": "accepted", "nonce": true}}),
        json!({"nonce_secret": NONCE_KEY, "nonce_lifetime_seconds": 300}),
    );
    let token = token_bound(json!({"jkt": jkt("p256")}));
    let auth = format!("DPoP {token}");
    let d = decide(&config, &dpop_headers(&auth, &proof(&token)));
    expect(
        &d,
        "no nonce",
        401,
        Reason::UseDpopNonce,
        "requires a nonce",
    );
    let (name, nonce) = d.reply_headers[0].clone();
    assert_eq!(name, "dpop-nonce");
    let with_nonce = |n: &str, jti: &str| proof_setting(&token, json!({"nonce": n, "jti": jti}));
    let mut cache = MemoryReplayStore::default();
    let d = decide_at(
        &config,
        "GET",
        &dpop_headers(&auth, &with_nonce(&nonce, "a")),
        None,
        &mut cache,
        NOW,
    );
    expect(&d, "nonce", 200, Reason::Allowed, "");
    assert!(d.reply_headers.is_empty());
    // The bucket turned: still accepted, with the next nonce on the response.
    let next = NOW - NOW % 300 + 300;
    let p = proof_setting(
        &token,
        json!({"nonce": nonce.clone(), "jti": "b", "iat": next}),
    );
    let d = decide_at(
        &config,
        "GET",
        &dpop_headers(&auth, &p),
        None,
        &mut cache,
        next,
    );
    expect(&d, "renewed", 200, Reason::Allowed, "");
    assert_eq!(d.reply_headers[0].0, "dpop-nonce");
    assert_ne!(d.reply_headers[0].1, nonce);
    let d = decide(&config, &dpop_headers(&auth, &with_nonce("forged", "c")));
    expect(&d, "forged", 401, Reason::UseDpopNonce, "not current");
}

#[test]
fn certificate_bound_tokens() {
    let der = b"the client certificate's DER";
    let hex: String = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let x5t = URL_SAFE_NO_PAD.encode(Sha256::digest(der));
    let config = config_with(json!({}));
    let token = token_bound(json!({"x5t#S256": x5t}));
    let auth = format!("Bearer {token}");
    let h = [("authorization", auth.as_str())];
    let mut cache = MemoryReplayStore::default();
    let d = decide_at(&config, "GET", &h, Some(&hex), &mut cache, NOW);
    expect(&d, "same cert", 200, Reason::Allowed, "");
    let d = decide_at(
        &config,
        "GET",
        &h,
        Some(&hex.to_ascii_uppercase()),
        &mut cache,
        NOW,
    );
    expect(&d, "hex case", 200, Reason::Allowed, "");
    let other: String = Sha256::digest(b"other")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let d = decide_at(&config, "GET", &h, Some(&other), &mut cache, NOW);
    expect(
        &d,
        "other cert",
        401,
        Reason::TokenBindingMismatch,
        "another client certificate",
    );
    let d = decide_at(&config, "GET", &h, None, &mut cache, NOW);
    expect(
        &d,
        "no cert",
        401,
        Reason::TokenBindingMismatch,
        "without a client certificate",
    );
    // The hex text never stands for the thumbprint.
    let as_text = token_bound(json!({"x5t#S256": hex}));
    let a = format!("Bearer {as_text}");
    let d = decide_at(
        &config,
        "GET",
        &[("authorization", a.as_str())],
        Some(&hex),
        &mut cache,
        NOW,
    );
    expect(
        &d,
        "hex as cnf",
        401,
        Reason::TokenBindingMismatch,
        "another client certificate",
    );
    // off refuses bound tokens; required refuses unbound ones.
    let off = config_with(json!({"certificate_binding": "off"}));
    let d = decide_at(&off, "GET", &h, Some(&hex), &mut cache, NOW);
    expect(
        &d,
        "off",
        401,
        Reason::TokenBindingMismatch,
        "certificate_binding \"off\"",
    );
    let required = config_with(json!({"certificate_binding": "required"}));
    let u = format!("Bearer {}", token_bound(Value::Null));
    let d = decide_at(
        &required,
        "GET",
        &[("authorization", u.as_str())],
        Some(&hex),
        &mut cache,
        NOW,
    );
    expect(
        &d,
        "required",
        401,
        Reason::TokenBindingRequired,
        "only certificate-bound",
    );
    // A certificate header counts only from a declared trusted hop.
    let xfcc = cfg(
        json!({}),
        json!({"certificate_source": "x_forwarded_client_cert", "trusted_hops": ["10.0.0.0/8"]}),
    );
    let header = format!("By=spiffe://fhir;Hash={hex};Subject=\"CN=app\"");
    let hx = [
        ("authorization", auth.as_str()),
        ("x-forwarded-client-cert", header.as_str()),
    ];
    let d = decide_at(&xfcc, "GET", &hx, None, &mut cache, NOW);
    expect(&d, "xfcc trusted", 200, Reason::Allowed, "");
    let untrusted = cfg(
        json!({}),
        json!({"certificate_source": "x_forwarded_client_cert", "trusted_hops": ["192.168.0.1"]}),
    );
    let d = decide_at(&untrusted, "GET", &hx, Some(&hex), &mut cache, NOW);
    expect(
        &d,
        "xfcc untrusted",
        401,
        Reason::TokenBindingMismatch,
        "without a client certificate",
    );
    let client_cert = cfg(
        json!({}),
        json!({"certificate_source": "client_cert", "trusted_hops": ["10.0.0.9"]}),
    );
    let cc = format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(der)
    );
    let hc = [
        ("authorization", auth.as_str()),
        ("client-cert", cc.as_str()),
    ];
    let d = decide_at(&client_cert, "GET", &hc, None, &mut cache, NOW);
    expect(&d, "client-cert", 200, Reason::Allowed, "");
}

#[test]
fn configuration_is_checked() {
    for (issuer, sender, base, field) in [
        (
            json!({"dpop": {"mode": "accepted", "algorithms": ["HS256"]}}),
            json!({}),
            true,
            "issuers[0].dpop.algorithms[0]",
        ),
        (
            json!({"dpop": {"mode": "accepted", "max_age_seconds": 0}}),
            json!({}),
            true,
            "issuers[0].dpop.max_age_seconds",
        ),
        (
            json!({"dpop": {"mode": "accepted"}}),
            json!({}),
            false,
            "issuers[0].dpop.mode",
        ),
        (
            json!({"dpop": {"mode": "sometimes"}}),
            json!({}),
            true,
            "issuers[0].dpop.mode",
        ),
        (
            json!({"dpop": {"mode": "accepted", "nonce": true}}),
            json!({}),
            true,
            "issuers[0].dpop.nonce",
        ),
        (
            json!({}),
            json!({"nonce_secret": "short"}),
            true,
            "sender_constraint.nonce_secret",
        ),
        (
            json!({}),
            json!({"replay_cache_entries": 1}),
            true,
            "sender_constraint.replay_cache_entries",
        ),
        (
            json!({}),
            json!({"certificate_source": "client_cert"}),
            true,
            "sender_constraint.trusted_hops",
        ),
        (
            json!({}),
            json!({"trusted_hops": ["nowhere"]}),
            true,
            "sender_constraint.trusted_hops[0]",
        ),
        (
            json!({"certificate_binding": "sometimes"}),
            json!({}),
            true,
            "issuers[0].certificate_binding",
        ),
    ] {
        let mut j = config_json(issuer, json!({}));
        j["sender_constraint"] = sender;
        j["allow_insecure_inline_secrets"] = json!(true);
        if !base {
            j.as_object_mut().unwrap().remove("fhir_base_url");
            j["issuers"][0]["audiences"] = json!([AUD]);
        }
        let e = Config::from_json(j.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }
}

/// The settings a property case runs under.
fn settings() -> impl Strategy<Value = (Value, Value)> {
    (
        prop::sample::select(vec!["off", "accepted", "required"]),
        prop::sample::select(vec!["off", "when_bound", "required"]),
        any::<bool>(),
        prop::sample::select(vec!["connection", "x_forwarded_client_cert", "client_cert"]),
    )
        .prop_map(|(dpop, cert, nonce, source)| {
            (
                json!({"dpop": {"mode": dpop, "nonce": nonce}, "certificate_binding": cert}),
                json!({"nonce_secret": NONCE_KEY, "certificate_source": source, "trusted_hops": ["10.0.0.0/8"]}),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever is configured, a bound token is never accepted without its
    /// proof: without a DPoP proof by its key, or without its certificate
    /// (from the connection and from every header a client could send).
    #[test]
    fn bound_tokens_never_go_without_their_proof(
        (issuer, sender) in settings(),
        bind_dpop in any::<bool>(),
        scheme_dpop in any::<bool>(),
        proof_kind in 0..4usize,
    ) {
        let config = cfg(issuer, sender);
        let x5t = URL_SAFE_NO_PAD.encode(Sha256::digest(b"the bound certificate"));
        let cnf = if bind_dpop { json!({"jkt": jkt("p256")}) } else { json!({"x5t#S256": x5t}) };
        let token = token_bound(cnf);
        let auth = format!("{} {token}", if scheme_dpop { "DPoP" } else { "Bearer" });
        // No proof, a proof by another key, a proof for another token, none at all.
        let p = match proof_kind {
            0 => String::new(),
            1 => proof_with("ES384", "p384", &token, |_| {}, |_| {}),
            2 => proof(&token_bound(Value::Null)),
            _ => "garbage".into(),
        };
        let other_cert: String = Sha256::digest(b"another").iter().map(|b| format!("{b:02x}")).collect();
        let xfcc = format!("Hash={other_cert}");
        let mut headers = vec![("authorization", auth.as_str()), ("x-forwarded-client-cert", xfcc.as_str())];
        if !p.is_empty() {
            headers.push(("dpop", p.as_str()));
        }
        let d = decide_at(&config, "GET", &headers, Some(&other_cert), &mut MemoryReplayStore::default(), NOW);
        prop_assert!(!d.is_allow(), "{:?}: {}", d.reason, d.message);
        prop_assert_eq!(d.status, 401);
    }
}

/// An introspection answer's `cnf` binds the token as a JWT's does (the
/// answer need not carry `iss`: the introspection issuer's settings apply).
#[test]
fn introspected_bindings_are_checked_too() {
    let mut j = config_json(json!({}), json!({}));
    j["issuers"].as_array_mut().unwrap().push(json!({
        "issuer": "https://as.example.org", "audiences": [AUD],
        "introspection": {"cluster": "idp", "path": "/introspect", "client_id": "gw", "client_secret": "s"},
        "dpop": {"mode": "accepted"},
    }));
    j["allow_insecure_inline_secrets"] = json!(true);
    let config = Config::from_json(j.to_string().as_bytes()).unwrap();
    let claims = json!({"active": true, "sub": "u", "scope": "patient/*.rs", "patient": "123",
                        "exp": NOW + 60, "cnf": {"jkt": jkt("p256")}});
    let opaque = "opaque-access-token-1";
    let decide = |auth: String, proof: Option<String>| {
        let mut headers = vec![("authorization".to_string(), auth)];
        if let Some(p) = proof {
            headers.push(("dpop".to_string(), p));
        }
        let req = RequestParts {
            method: "GET",
            path: PATH,
            headers: headers.into(),
            body: None,
        };
        let mut replay = MemoryReplayStore::default();
        engine::decide_request(
            &config,
            &req,
            Credential::Claims(&claims),
            ConnectionFacts::default(),
            NOW,
            &mut replay,
        )
    };
    let d = decide(format!("Bearer {opaque}"), None);
    expect(
        &d,
        "as bearer",
        401,
        Reason::TokenBindingMismatch,
        "not as a bearer token",
    );
    let d = decide(format!("DPoP {opaque}"), Some(proof(opaque)));
    expect(&d, "with its proof", 200, Reason::Allowed, "");
    let d = decide(
        format!("DPoP {opaque}"),
        Some(proof_with("ES384", "p384", opaque, |_| {}, |_| {})),
    );
    expect(
        &d,
        "another key",
        401,
        Reason::TokenBindingMismatch,
        "another key",
    );
}
