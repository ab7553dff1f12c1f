//! Envoy's `verify_signature` path: RSA PKCS#1 to the host, everything else (and host failures) pure Rust.

use super::*;

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
