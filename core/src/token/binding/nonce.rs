//! Stateless server nonces (RFC 9449 §8): a nonce is its time bucket and a
//! MAC of it under the nonce key, so every worker checks any worker's
//! nonce without shared state. The nonce of the current bucket and of the
//! one before are accepted; earlier keys are still accepted (rotation), the
//! current key mints.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Bytes of the MAC kept in a nonce.
const MAC_BYTES: usize = 16;
/// Separates nonce MACs from any other use of the key.
const LABEL: &[u8] = b"fhir-smart-authz dpop-nonce v1";

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[&[u8]]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block
            .get_mut(..32)
            .unwrap_or(&mut [])
            .copy_from_slice(&Sha256::digest(key));
    } else {
        block
            .get_mut(..key.len())
            .unwrap_or(&mut [])
            .copy_from_slice(key);
    }
    let pad = |x: u8| block.map(|b| b ^ x);
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for part in message {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The nonce keys and bucket length.
#[derive(Debug, Clone)]
pub struct NonceKeys<'a> {
    /// Mints, and checks.
    pub current: &'a str,
    /// Still accepted (rotation).
    pub previous: Vec<&'a str>,
    pub lifetime_seconds: u64,
}

/// What a proof's nonce is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NonceCheck {
    /// Of the current bucket, under the current key.
    Current,
    /// Accepted, but the client should move on to this one (`DPoP-Nonce`
    /// on the response): the bucket turned, or the key rotated.
    Renew(String),
    /// Missing, forged, or too old: 401 `use_dpop_nonce` with this one.
    Refused(String),
}

impl NonceKeys<'_> {
    fn bucket(&self, now: u64) -> u64 {
        now / self.lifetime_seconds.max(1)
    }

    fn mint_with(key: &str, bucket: u64) -> String {
        let b = bucket.to_be_bytes();
        let mac = hmac_sha256(key.as_bytes(), &[LABEL, &b]);
        let mut raw = Vec::with_capacity(8 + MAC_BYTES);
        raw.extend_from_slice(&b);
        raw.extend_from_slice(mac.get(..MAC_BYTES).unwrap_or(&[]));
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce to hand out now.
    pub fn mint(&self, now: u64) -> String {
        Self::mint_with(self.current, self.bucket(now))
    }

    /// Judge the nonce of a proof at `now`.
    pub fn check(&self, nonce: Option<&str>, now: u64) -> NonceCheck {
        let fresh = self.mint(now);
        let Some(nonce) = nonce else {
            return NonceCheck::Refused(fresh);
        };
        if nonce == fresh {
            return NonceCheck::Current;
        }
        let bucket = URL_SAFE_NO_PAD
            .decode(nonce)
            .ok()
            .and_then(|raw| raw.get(..8).map(|b| b.try_into().unwrap_or([0; 8])))
            .map(u64::from_be_bytes);
        let now_bucket = self.bucket(now);
        let valid = bucket.is_some_and(|b| {
            (b == now_bucket || b.saturating_add(1) == now_bucket)
                && std::iter::once(self.current)
                    .chain(self.previous.iter().copied())
                    .any(|key| Self::mint_with(key, b) == nonce)
        });
        if valid {
            NonceCheck::Renew(fresh)
        } else {
            NonceCheck::Refused(fresh)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc4231_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn nonce_buckets_and_rotation() {
        let old = vec!["an-older-key-of-at-least-32-bytes!!"];
        let keys = NonceKeys {
            current: "the-current-key-of-at-least-32-bytes",
            previous: old.clone(),
            lifetime_seconds: 300,
        };
        let t: u64 = 6_000_000 * 300; // a bucket start
        let n = keys.mint(t);
        assert_eq!(keys.check(Some(&n), t + 299), NonceCheck::Current);
        // The bucket turned: accepted, with the next nonce to use.
        assert_eq!(
            keys.check(Some(&n), t + 300),
            NonceCheck::Renew(keys.mint(t + 300))
        );
        // Two buckets later: refused, with the current one.
        assert_eq!(
            keys.check(Some(&n), t + 600),
            NonceCheck::Refused(keys.mint(t + 600))
        );
        assert_eq!(keys.check(None, t), NonceCheck::Refused(n.clone()));
        // Minted under the previous key: still accepted, renewed.
        let rotated = NonceKeys::mint_with(old[0], t / 300);
        assert_eq!(keys.check(Some(&rotated), t), NonceCheck::Renew(n.clone()));
        // A forged MAC, an unknown key, garbage.
        let forged = NonceKeys::mint_with("someone-elses-key-of-32-bytes-or-more", t / 300);
        assert!(matches!(
            keys.check(Some(&forged), t),
            NonceCheck::Refused(_)
        ));
        assert!(matches!(keys.check(Some("x"), t), NonceCheck::Refused(_)));
        // A future bucket is not accepted.
        assert!(matches!(
            keys.check(Some(&keys.mint(t + 300)), t),
            NonceCheck::Refused(_)
        ));
    }
}
