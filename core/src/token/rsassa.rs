//! RSASSA-PKCS1-v1_5 and RSASSA-PSS signature verification (RFC 8017 §8,
//! as RFC 7518 §3.3 and §3.5 use them) over the Montgomery arithmetic of
//! `modular.rs`, the one `ecdsa.rs` uses.
//!
//! Why not the `rsa` crate: it brings its own big integers (`num-bigint-dig`)
//! and DER machinery, ~60 KB of the shipped .wasm for a fallback Envoy's
//! `verify_signature` normally takes over. The checks below are the `rsa`
//! crate's (0.9), kept answer for answer: the same keys refused with the
//! same words, the same signatures accepted.

use super::modular::{self, Modulus};
use sha2::{Digest, Sha256, Sha384, Sha512};

/// The modulus sizes accepted (RFC 7518 §3.3 asks for at least 2048 bits;
/// the `rsa` crate's limit is 4096).
pub const MIN_BITS: usize = 2048;
pub const MAX_BITS: usize = 4096;
const MIN_EXPONENT: u64 = 2;
const MAX_EXPONENT: u64 = (1 << 33) - 1;

/// The hash of an RSA JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for part in parts {
                d.update(part);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    /// The DER `DigestInfo` up to the digest (RFC 8017 §9.2, note 1).
    fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// The padding of an RSA JWS algorithm (`RS*` or `PS*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Pkcs1v15,
    /// PSS with MGF1 of the same hash and a salt as long as the hash
    /// (RFC 7518 §3.5).
    Pss,
}

/// An RSA public key of 2048 to 4096 bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaPublicKey {
    /// The modulus, big-endian, without leading zeros.
    n: Vec<u8>,
    e: u64,
    bits: usize,
    modulus: Modulus,
}

/// Big-endian bytes without their leading zeros.
fn minimal(bytes: &[u8]) -> &[u8] {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.get(zeros..).unwrap_or_default()
}

/// The length in bits of a big-endian integer.
pub fn bit_length(bytes: &[u8]) -> usize {
    let minimal = minimal(bytes);
    match minimal.first() {
        Some(first) => 8 * minimal.len() - first.leading_zeros() as usize,
        None => 0,
    }
}

impl RsaPublicKey {
    /// The key of modulus `n` and exponent `e` (big-endian). `Err` says why
    /// it is refused, in the `rsa` crate's words.
    pub fn new(n: &[u8], e: &[u8]) -> Result<RsaPublicKey, &'static str> {
        let (n, e_bytes) = (minimal(n), minimal(e));
        let bits = bit_length(n);
        if bits > MAX_BITS {
            return Err("modulus too large");
        }
        if e_bytes.len() > 8 {
            return Err("public exponent too large");
        }
        let e = e_bytes.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b));
        let n_is_even = n.last().map_or(true, |last| last & 1 == 0);
        let e_below_n = bits > 64 || n.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)) > e;
        if !e_below_n || n_is_even {
            return Err("invalid modulus");
        }
        if e & 1 == 0 {
            return Err("invalid exponent");
        }
        if e < MIN_EXPONENT {
            return Err("public exponent too small");
        }
        if e > MAX_EXPONENT {
            return Err("public exponent too large");
        }
        let modulus = Modulus::new(n).ok_or("invalid modulus")?;
        Ok(RsaPublicKey {
            n: n.to_vec(),
            e,
            bits,
            modulus,
        })
    }

    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The modulus length in bytes: the length of every signature.
    pub fn size(&self) -> usize {
        self.bits.div_ceil(8)
    }

    /// DER `SubjectPublicKeyInfo` (RFC 8017 A.1.1 in RFC 5280's wrapper),
    /// byte for byte what the `rsa` crate writes.
    pub fn spki_der(&self) -> Vec<u8> {
        let e = self.e.to_be_bytes();
        let mut key = der_integer(&self.n);
        key.extend(der_integer(minimal(&e)));
        let key = der(0x30, &key);
        let mut bits = vec![0u8];
        bits.extend(key);
        let mut info = der(
            0x30,
            &[
                0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
            ],
        );
        info.extend(der(0x03, &bits));
        der(0x30, &info)
    }

    /// Whether `signature` (exactly [`RsaPublicKey::size`] bytes) signs
    /// `message` with this hash and padding.
    pub fn verify(&self, hash: Hash, padding: Padding, message: &[u8], signature: &[u8]) -> bool {
        let k = self.size();
        if signature.len() != k {
            return false;
        }
        // The representative must be below the modulus (RFC 8017 §5.2.2,
        // RSAVP1 step 1, for both paddings): one signature, one token text.
        // Both are `k` bytes, so bytes compare as numbers. (The `rsa` crate
        // reduces a PSS representative modulo n instead; this is stricter.)
        if signature >= self.n.as_slice() {
            return false;
        }
        let digest = hash.digest(&[message]);
        match padding {
            Padding::Pkcs1v15 => {
                let em = self.encrypt(signature, k);
                pkcs1v15_encoded(&em, hash, &digest)
            }
            Padding::Pss => {
                let mut em = self.encrypt(signature, k);
                pss_encoded(&mut em, hash, &digest, self.bits)
            }
        }
    }

    /// `s^e mod n` as `k` bytes (`s` reduced first).
    fn encrypt(&self, signature: &[u8], k: usize) -> Vec<u8> {
        let len = self.modulus.len();
        let (Some(s), Some(e)) = (
            modular::limbs(signature, len),
            modular::limbs(&self.e.to_be_bytes(), modular::limbs_for(8)),
        ) else {
            return Vec::new();
        };
        let power = self.modulus.pow(&self.modulus.to_montgomery(&s), &e);
        modular::be_bytes(&self.modulus.to_plain(&power), k)
    }
}

/// EM = 0x00 ‖ 0x01 ‖ PS (0xff…, at least 8) ‖ 0x00 ‖ DigestInfo ‖ digest.
fn pkcs1v15_encoded(em: &[u8], hash: Hash, digest: &[u8]) -> bool {
    let prefix = hash.digest_info_prefix();
    let t_len = prefix.len() + digest.len();
    let Some(ps_len) = em.len().checked_sub(t_len + 3).filter(|l| *l >= 8) else {
        return false;
    };
    let mut expected = vec![0x00, 0x01];
    expected.resize(2 + ps_len, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(prefix);
    expected.extend_from_slice(digest);
    em == expected.as_slice()
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with a salt as long as the hash, over
/// the `key_len`-byte encoding of the representative.
fn pss_encoded(em: &mut [u8], hash: Hash, digest: &[u8], key_bits: usize) -> bool {
    let h_len = digest.len();
    let s_len = h_len;
    let em_bits = key_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let unused = 8 * em_len - em_bits;
    // I2OSP(m, emLen) (RFC 8017 §8.1.2 step 2c): the bytes above emLen
    // must be zero, else "integer too large": invalid.
    let above = em.len().saturating_sub(em_len);
    if em
        .get(..above)
        .is_some_and(|high| high.iter().any(|b| *b != 0))
    {
        return false;
    }
    let Some(em) = em.get_mut(above..) else {
        return false;
    };
    if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    let (db, rest) = em.split_at_mut(em_len - h_len - 1);
    let Some(h) = rest.get(..h_len) else {
        return false;
    };
    let top_bits = 0xffu8.checked_shl(8 - unused as u32).unwrap_or(0);
    if db.first().is_some_and(|b| b & top_bits != 0) {
        return false;
    }
    // DB = maskedDB ⊕ MGF1(H).
    for (counter, chunk) in db.chunks_mut(h_len).enumerate() {
        let mask = hash.digest(&[h, &(counter as u32).to_be_bytes()]);
        for (b, m) in chunk.iter_mut().zip(mask) {
            *b ^= m;
        }
    }
    if let Some(first) = db.first_mut() {
        *first &= 0xff >> unused;
    }
    let zeros = em_len - h_len - s_len - 2;
    let padded = db.iter().take(zeros).all(|b| *b == 0) && db.get(zeros) == Some(&0x01);
    let salt = db.get(db.len() - s_len..).unwrap_or_default();
    padded && hash.digest(&[&[0u8; 8], digest, salt]) == h
}

/// One DER element of definite length.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let size = minimal(&bytes);
        out.push(0x80 | size.len() as u8);
        out.extend_from_slice(size);
    }
    out.extend_from_slice(contents);
    out
}

/// A DER INTEGER of a positive big-endian value without leading zeros.
fn der_integer(value: &[u8]) -> Vec<u8> {
    match value.first() {
        Some(first) if first & 0x80 == 0 => der(0x02, value),
        Some(_) => der(0x02, &[&[0u8][..], value].concat()),
        None => der(0x02, &[0]),
    }
}

#[cfg(test)]
mod tests;
