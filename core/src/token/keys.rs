//! JWKS parsing and the per-issuer key store state machine (pure: the shell
//! fetches bytes, this decides when and keeps the last good set).

use super::alg::{JwsAlgorithm, PublicKey};
use super::jose;
use super::{ecdsa, rsassa};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Most usable keys kept from one JWKS (bounds work per token without `kid`).
pub const MAX_KEYS: usize = 64;
/// A fetch in flight longer than this is considered lost (seconds).
pub const IN_FLIGHT_TIMEOUT_SECONDS: u64 = 60;

/// One usable verification key from a JWKS.
#[derive(Debug, Clone, PartialEq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The JWK's `alg`, if it pins one.
    pub alg: Option<JwsAlgorithm>,
    pub key: PublicKey,
    /// DER SubjectPublicKeyInfo of RSA, P-256 and P-384 keys, precomputed
    /// for the host `verify_signature` path.
    pub spki_der: Option<Vec<u8>>,
}

impl Jwk {
    /// Can this key verify `alg`? (key type matches, and the JWK's own `alg`,
    /// if any, is exactly `alg`).
    pub fn accepts(&self, alg: JwsAlgorithm) -> bool {
        self.key.kind() == alg.key_kind() && self.alg.map_or(true, |a| a == alg)
    }

    /// Parse one JWK object. `Err` says why the key cannot be used.
    pub fn from_value(v: &Value) -> Result<Jwk, String> {
        Jwk::from_map(v.as_object().ok_or("not a JSON object")?)
    }

    /// Parse the members of one JWK object (see [`Jwk::from_value`]).
    pub fn from_map(members: &Map<String, Value>) -> Result<Jwk, String> {
        let jwk = JwkFields(members);
        let kid = jwk.string("kid")?.map(str::to_string);
        jwk.check_public_signing_key()?;
        let alg =
            match jwk.string("alg")? {
                None => None,
                Some(name) => Some(JwsAlgorithm::from_name(name).ok_or_else(|| {
                    format!("`alg` {name:?} is not a supported signature algorithm")
                })?),
            };
        let key = match jwk.string("kty")?.ok_or("`kty` is missing")? {
            "RSA" => jwk.rsa_key()?,
            "EC" => jwk.ec_key()?,
            "OKP" => jwk.okp_key()?,
            "oct" => return Err("symmetric (`oct`) keys are never used".into()),
            other => return Err(format!("key type {other:?} is not supported")),
        };
        if let Some(a) = alg {
            if a.key_kind() != key.kind() {
                return Err(format!("`alg` {} does not match the key type", a.name()));
            }
        }
        let spki_der = key.spki_der();
        Ok(Jwk {
            kid,
            alg,
            key,
            spki_der,
        })
    }
}

/// The members of one JWK object.
struct JwkFields<'a>(&'a Map<String, Value>);

impl JwkFields<'_> {
    fn string(&self, name: &str) -> Result<Option<&str>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(format!("`{name}` is not a string")),
        }
    }

    fn base64url(&self, name: &str) -> Result<Vec<u8>, String> {
        let value = self
            .string(name)?
            .ok_or_else(|| format!("`{name}` is missing"))?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| format!("`{name}` is not unpadded base64url"))
    }

    /// `use` is `sig`, `key_ops` includes `verify`, no private or
    /// symmetric key material.
    fn check_public_signing_key(&self) -> Result<(), String> {
        if let Some(u) = self.string("use")? {
            if u != "sig" {
                return Err(format!("`use` is {u:?}, not \"sig\""));
            }
        }
        if let Some(ops) = self.0.get("key_ops") {
            let ok = ops
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o.as_str() == Some("verify")));
            if !ok {
                return Err("`key_ops` does not include \"verify\"".into());
            }
        }
        if self.0.contains_key("d") || self.0.contains_key("p") || self.0.contains_key("k") {
            return Err("contains private or symmetric key material (`d`/`p`/`k`); only public signing keys are used".into());
        }
        Ok(())
    }

    fn rsa_key(&self) -> Result<PublicKey, String> {
        let n = self.base64url("n")?;
        let e = self.base64url("e")?;
        let bits = rsassa::bit_length(&n);
        if bits < rsassa::MIN_BITS {
            return Err(format!(
                "RSA modulus is {bits} bits; at least 2048 are required"
            ));
        }
        let k = rsassa::RsaPublicKey::new(&n, &e)
            .map_err(|e| format!("RSA key rejected: {e} (at most 4096 bits)"))?;
        Ok(PublicKey::Rsa(Box::new(k)))
    }

    fn ec_key(&self) -> Result<PublicKey, String> {
        let crv = self.string("crv")?.ok_or("`crv` is missing")?;
        let (x, y) = (self.base64url("x")?, self.base64url("y")?);
        let (curve, kind): (_, fn(ecdsa::VerifyingKey) -> PublicKey) = match crv {
            "P-256" => (&ecdsa::P256, PublicKey::P256),
            "P-384" => (&ecdsa::P384, PublicKey::P384),
            other => {
                return Err(format!(
                    "EC curve {other:?} is not supported (P-256, P-384)"
                ))
            }
        };
        let size = curve.size();
        if x.len() != size || y.len() != size {
            return Err(format!("EC coordinates must be {size} bytes for {crv}"));
        }
        ecdsa::VerifyingKey::from_coordinates(curve, &x, &y)
            .map(kind)
            .ok_or_else(|| format!("EC point is not on {crv}"))
    }

    fn okp_key(&self) -> Result<PublicKey, String> {
        let crv = self.string("crv")?.ok_or("`crv` is missing")?;
        if crv != "Ed25519" {
            return Err(format!("OKP curve {crv:?} is not supported (Ed25519)"));
        }
        let x = self.base64url("x")?;
        Ok(PublicKey::Ed25519(
            ed25519_compact::PublicKey::from_slice(&x)
                .map_err(|_| "Ed25519 key must be 32 bytes".to_string())?,
        ))
    }
}

/// A JWK that was skipped, and why (for logs and the CLI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKey {
    /// Position in the `keys` array.
    pub index: usize,
    pub kid: Option<String>,
    pub reason: String,
}

/// The usable keys of one JWKS document.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySet {
    keys: Vec<Jwk>,
    skipped: Vec<SkippedKey>,
    fingerprint: [u8; 32],
}

impl KeySet {
    /// Parse JWKS bytes (`{"keys": [...]}`; duplicate JSON members refused).
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let map = jose::parse_strict_object(bytes, "JWKS document").map_err(|e| e.description)?;
        KeySet::from_value(&Value::Object(map))
    }

    /// From an already parsed JWKS value. Unusable keys are skipped and
    /// reported; `Err` only when the document itself is malformed.
    pub fn from_value(v: &Value) -> Result<KeySet, String> {
        let items = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWKS must be an object with a `keys` array")?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        let mut hasher = Sha256::new();
        for (index, item) in items.iter().enumerate() {
            let kid = item.get("kid").and_then(Value::as_str).map(str::to_string);
            if keys.len() >= MAX_KEYS {
                skipped.push(SkippedKey {
                    index,
                    kid,
                    reason: format!("more than {MAX_KEYS} usable keys"),
                });
                continue;
            }
            match Jwk::from_value(item) {
                Ok(k) => {
                    // Canonical (sorted-member) serialization of the JWK.
                    hasher.update(serde_json::to_vec(item).unwrap_or_default());
                    hasher.update([0u8]);
                    keys.push(k);
                }
                Err(reason) => skipped.push(SkippedKey { index, kid, reason }),
            }
        }
        Ok(KeySet {
            keys,
            skipped,
            fingerprint: hasher.finalize().into(),
        })
    }

    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
    }

    /// SHA-256 over the usable keys: equal sets have equal fingerprints.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }

    /// "keys[1] (kid \"x\"): reason; ..." or "no keys".
    pub fn skipped_summary(&self) -> String {
        if self.skipped.is_empty() {
            return "the `keys` array is empty".into();
        }
        self.skipped
            .iter()
            .map(|s| match &s.kid {
                Some(kid) => format!("keys[{}] (kid {kid:?}): {}", s.index, s.reason),
                None => format!("keys[{}]: {}", s.index, s.reason),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Keys that may verify a token with this `kid` and `alg`: the key with
    /// that `kid`, or (no `kid` in the token) every key accepting `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: JwsAlgorithm,
    ) -> impl Iterator<Item = &'a Jwk> + 'a {
        self.keys.iter().filter(move |k| match kid {
            Some(kid) => k.kid.as_deref() == Some(kid),
            None => true,
        } && k.accepts(alg))
    }

    /// Is there any key with this `kid` (whatever its type)?
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// Encode fetched JWKS bytes with their fetch time for proxy-wasm shared
/// data (8-byte big-endian stamp, then the document), so other worker VMs
/// can load them with [`KeyStore::on_shared_jwks`]. The filter stamps in
/// Unix milliseconds, and writes its fetch lease (`until`, then one state
/// byte) in the same layout.
pub fn encode_shared_jwks(fetched_at: u64, jwks: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + jwks.len());
    out.extend_from_slice(&fetched_at.to_be_bytes());
    out.extend_from_slice(jwks);
    out
}

/// Inverse of [`encode_shared_jwks`]: `(fetched_at, jwks bytes)`.
pub fn decode_shared_jwks(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (time, jwks) = bytes.split_first_chunk::<8>()?;
    Some((u64::from_be_bytes(*time), jwks))
}

/// Why a JWKS fetch is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchReason {
    /// Never fetched yet.
    Startup,
    /// The refresh period expired.
    Periodic,
    /// A token named a `kid` we do not know.
    UnknownKid,
    /// The last fetch failed; retry (rate-limited).
    Retry,
}

/// What a successful fetch changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUpdate {
    /// The key set differs from the previous one (generation bumped).
    pub changed: bool,
    pub generation: u64,
    pub usable_keys: usize,
    pub skipped: Vec<SkippedKey>,
}

/// Keys of one issuer and when to (re)fetch them.
#[derive(Debug, Clone)]
pub struct KeyStore {
    remote: bool,
    keys: Option<KeySet>,
    generation: u64,
    refresh_seconds: u64,
    min_refetch_seconds: u64,
    last_attempt: Option<u64>,
    last_success: Option<u64>,
    in_flight_since: Option<u64>,
    unknown_kid_pending: bool,
    last_error: Option<String>,
}

impl KeyStore {
    /// Fixed inline keys (never fetched). Generation 1.
    pub fn inline(keys: KeySet) -> KeyStore {
        KeyStore {
            remote: false,
            keys: Some(keys),
            generation: 1,
            refresh_seconds: 0,
            min_refetch_seconds: 0,
            last_attempt: None,
            last_success: None,
            in_flight_since: None,
            unknown_kid_pending: false,
            last_error: None,
        }
    }

    /// Keys fetched from a JWKS URI. No keys (generation 0) until the first
    /// successful fetch.
    pub fn remote(refresh_seconds: u64, min_refetch_seconds: u64) -> KeyStore {
        KeyStore {
            remote: true,
            keys: None,
            generation: 0,
            refresh_seconds: refresh_seconds.max(1),
            min_refetch_seconds: min_refetch_seconds.max(1),
            last_attempt: None,
            last_success: None,
            in_flight_since: None,
            unknown_kid_pending: false,
            last_error: None,
        }
    }

    /// A store with no keys and nothing to fetch (introspection issuers).
    pub fn empty() -> KeyStore {
        KeyStore {
            remote: false,
            keys: None,
            ..KeyStore::inline(KeySet {
                keys: Vec::new(),
                skipped: Vec::new(),
                fingerprint: [0; 32],
            })
        }
    }

    pub fn is_remote(&self) -> bool {
        self.remote
    }

    pub fn keys(&self) -> Option<&KeySet> {
        self.keys.as_ref()
    }

    /// Changes whenever the key set changes (0 = no keys yet).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The key set's identity for the token cache: derived from its usable
    /// keys (the same set has the same id in every worker and after a
    /// rotation back, unlike [`Self::generation`], which counts changes per
    /// worker); 0 when there are no keys.
    pub fn key_set_id(&self) -> u64 {
        self.keys.as_ref().map_or(0, |k| {
            let mut head = [0u8; 8];
            head.copy_from_slice(k.fingerprint.get(..8).unwrap_or(&[0; 8]));
            u64::from_le_bytes(head).max(1)
        })
    }

    /// The last fetch error, if the last fetch failed.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    fn in_flight(&self, now: u64) -> bool {
        self.in_flight_since
            .is_some_and(|t| now < t.saturating_add(IN_FLIGHT_TIMEOUT_SECONDS))
    }

    fn rate_limit_passed(&self, now: u64) -> bool {
        self.last_attempt
            .map_or(true, |t| now >= t.saturating_add(self.min_refetch_seconds))
    }

    /// Should the shell fetch now, and why? `None` while a fetch is in flight.
    pub fn fetch_due(&self, now: u64) -> Option<FetchReason> {
        if !self.remote || self.in_flight(now) {
            return None;
        }
        if self.last_attempt.is_none() {
            return Some(FetchReason::Startup);
        }
        if self.unknown_kid_pending {
            return Some(FetchReason::UnknownKid);
        }
        if !self.rate_limit_passed(now) {
            return None;
        }
        match self.last_success {
            None => Some(FetchReason::Retry),
            Some(t) if now >= t.saturating_add(self.refresh_seconds) => {
                if self.last_error.is_some() {
                    Some(FetchReason::Retry)
                } else {
                    Some(FetchReason::Periodic)
                }
            }
            Some(_) => None,
        }
    }

    /// The shell dispatched a fetch.
    pub fn begin_fetch(&mut self, now: u64) {
        self.in_flight_since = Some(now);
        self.last_attempt = Some(now);
        self.unknown_kid_pending = false;
    }

    /// A fetch returned these bytes (HTTP 200). On a malformed document or one
    /// without usable keys the previous set is kept and `Err` says why.
    pub fn on_fetch_success(&mut self, bytes: &[u8], now: u64) -> Result<JwksUpdate, String> {
        self.in_flight_since = None;
        if self.last_attempt.is_none() {
            self.last_attempt = Some(now);
        }
        let set = match KeySet::parse(bytes) {
            Ok(set) if !set.keys().is_empty() => set,
            Ok(set) => {
                let msg = format!("JWKS has no usable signing key: {}", set.skipped_summary());
                self.last_error = Some(msg.clone());
                return Err(msg);
            }
            Err(e) => {
                self.last_error = Some(e.clone());
                return Err(e);
            }
        };
        self.last_error = None;
        self.last_success = Some(now);
        let changed = self
            .keys
            .as_ref()
            .map_or(true, |old| old.fingerprint() != set.fingerprint());
        if changed {
            self.generation = self.generation.wrapping_add(1).max(1);
        }
        let update = JwksUpdate {
            changed,
            generation: self.generation,
            usable_keys: set.keys().len(),
            skipped: set.skipped().to_vec(),
        };
        self.keys = Some(set);
        Ok(update)
    }

    /// Key bytes another worker fetched at `fetched_at` (proxy-wasm shared
    /// data). Same as a successful fetch of our own at that time.
    pub fn on_shared_jwks(
        &mut self,
        bytes: &[u8],
        fetched_at: u64,
        now: u64,
    ) -> Result<JwksUpdate, String> {
        let in_flight = self.in_flight_since;
        let r = self.on_fetch_success(bytes, fetched_at.min(now));
        if in_flight.is_some_and(|t| t > fetched_at) {
            self.in_flight_since = in_flight;
        }
        if self.last_attempt.map_or(true, |t| t < fetched_at) {
            self.last_attempt = Some(fetched_at.min(now));
        }
        r
    }

    /// A fetch failed (status, timeout, reset). The last good set is kept.
    pub fn on_fetch_failure(&mut self, error: &str, now: u64) {
        self.in_flight_since = None;
        if self.last_attempt.is_none() {
            self.last_attempt = Some(now);
        }
        self.last_error = Some(error.to_string());
    }

    /// A token named an unknown `kid`. Returns true when a fetch is in flight
    /// or allowed now (rate limit: one per `jwks_min_refetch_seconds`), in
    /// which case [`KeyStore::fetch_due`] reports `UnknownKid`.
    pub fn request_unknown_kid_refetch(&mut self, now: u64) -> bool {
        if !self.remote {
            return false;
        }
        if self.in_flight(now) || self.unknown_kid_pending {
            return true;
        }
        if self.rate_limit_passed(now) {
            self.unknown_kid_pending = true;
            return true;
        }
        false
    }

    /// No keys yet: will a fetch happen soon (in flight or due)?
    pub fn fetch_pending(&self, now: u64) -> bool {
        self.remote && (self.in_flight(now) || self.fetch_due(now).is_some())
    }
}
