//! Envoy's `verify_signature` path: RSA PKCS#1 to the host, everything else (and host failures) pure Rust.

use super::*;

#[test]
fn host_assisted_verifier_routes_rsa_pkcs1_and_ecdsa_to_host() {
    let calls = Cell::new(0);
    let host = HostAssistedVerifier::new(|args: &[u8]| -> Result<Vec<u8>, String> {
        calls.set(calls.get() + 1);
        envoy_verify_signature(args)
    });
    let mut v = TokenVerifier::new(config().trust()).unwrap();
    assert!(v.verify_jwt(&token("RS256"), NOW, &host).is_ok());
    assert_eq!(calls.get(), 1);
    for alg in ["ES256", "ES384"] {
        assert!(v.verify_jwt(&token(alg), NOW, &host).is_ok(), "{alg}");
    }
    assert_eq!(calls.get(), 3, "ES256 and ES384 through the host");
    for alg in ["PS256", "EdDSA"] {
        assert!(v.verify_jwt(&token(alg), NOW, &host).is_ok(), "{alg}");
    }
    assert_eq!(calls.get(), 3, "PS* and EdDSA use the pure path");
    assert_eq!(host.host_failures.get(), 0);

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
    assert_eq!(
        host_crypto::host_hash_function(JwsAlgorithm::ES384),
        Some("sha384")
    );
}

/// The host's arguments for one check of `token` (what `verify_signature` got).
fn host_args(token: &str) -> Vec<u8> {
    let seen = std::cell::RefCell::new(Vec::new());
    let host = HostAssistedVerifier::new(|args: &[u8]| -> Result<Vec<u8>, String> {
        seen.borrow_mut().push(args.to_vec());
        envoy_verify_signature(args)
    });
    let mut v = TokenVerifier::new(config().trust()).unwrap();
    let _ = v.verify_jwt(token, NOW, &host);
    let mut all = seen.into_inner();
    assert_eq!(all.len(), 1, "one host call");
    all.remove(0)
}

#[test]
fn ecdsa_goes_to_the_host_as_der_with_the_curve_hash_and_spki() {
    for (alg, hash, width) in [("ES256", "sha256", 32usize), ("ES384", "sha384", 48)] {
        let t = token(alg);
        let raw = b64d(t.rsplit('.').next().unwrap());
        let args = host_args(&t);
        assert_eq!(&args[2..2 + hash.len()], hash.as_bytes(), "{alg}");
        let der = host_crypto::ecdsa_jws_to_der(&raw, width).unwrap();
        assert!(
            args.windows(der.len()).any(|w| w == der.as_slice()),
            "{alg}: DER signature"
        );
        assert!(
            !args.windows(raw.len()).any(|w| w == raw.as_slice()),
            "{alg}: not r||s"
        );
    }
}

#[test]
fn ecdsa_signatures_the_host_refuses_are_refused() {
    let calls = Cell::new(0);
    let host = HostAssistedVerifier::new(|args: &[u8]| -> Result<Vec<u8>, String> {
        calls.set(calls.get() + 1);
        envoy_verify_signature(args)
    });
    let mut v = TokenVerifier::new(config().trust()).unwrap();
    for alg in ["ES256", "ES384"] {
        let good = token(alg);
        let (input, sig) = good.rsplit_once('.').unwrap();
        let raw = b64d(sig);
        let half = raw.len() / 2;
        let with_sig = |s: &[u8]| format!("{input}.{}", b64(s));
        let mut flipped = raw.clone();
        flipped[half - 1] ^= 1;
        let mut zero_r = raw.clone();
        zero_r[..half].fill(0);
        let mut zero_s = raw.clone();
        zero_s[half..].fill(0);
        let mut over_n = raw.clone();
        over_n[..half].fill(0xff);
        // (signature, reaches the host)
        let cases: [(Vec<u8>, bool); 6] = [
            (flipped, true),
            (over_n, true),
            (zero_r, false),
            (zero_s, false),
            (raw[..raw.len() - 1].to_vec(), false),
            ([raw.as_slice(), &[0]].concat(), false),
        ];
        for (i, (sig, reaches)) in cases.into_iter().enumerate() {
            let before = calls.get();
            let e = v.verify_jwt(&with_sig(&sig), NOW, &host).unwrap_err();
            assert!(
                e.description.contains("signature is invalid"),
                "{alg} case {i}: {e}"
            );
            assert_eq!(calls.get() - before, u32::from(reaches), "{alg} case {i}");
            // The pure path gives the same answer.
            assert!(v
                .verify_jwt(&with_sig(&sig), NOW, &RustCryptoVerifier)
                .is_err());
        }
    }
    assert_eq!(host.host_failures.get(), 0);
}
