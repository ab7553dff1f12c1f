//! ES256 verification with a precomputed table per public key: for a key
//! used again and again (a DPoP client signs every proof with one key),
//! u₂·Q costs what u₁·G costs with the base point's fixed table, about a
//! quarter of a variable-base multiplication. Variable time throughout: a
//! verification handles only public data (key, message, signature).
//!
//! It answers exactly as `ring` does (the tests hold it to `ring` and to the
//! `p256` crate): r and s in [1, n), the key an uncompressed point on the
//! curve, R = u₁·G + u₂·Q not infinity, x(R) mod n = r. A signature whose
//! DER it does not read as minimal DER is left to the caller (`None`).

mod field;
mod limbs;
mod point;
mod scalar;
mod table;
#[cfg(test)]
pub(crate) mod tests;

use std::sync::OnceLock;

use field::Fe;
use point::{Affine, Jacobian, G};
use scalar::{Scalar, N};
use table::Table;

/// A P-256 public key with its table.
pub struct KeyTable {
    table: Table,
}

impl KeyTable {
    /// The memory one key's table holds.
    pub const BYTES: usize = Table::BYTES;

    /// From an uncompressed point (65 bytes, on the curve); `None`
    /// otherwise.
    pub fn new(uncompressed_point: &[u8]) -> Option<KeyTable> {
        let point = Affine::from_uncompressed(uncompressed_point)?;
        Some(KeyTable {
            table: Table::new(&point)?,
        })
    }

    /// The ECDSA P-256 SHA-256 check of an ASN.1 DER signature over
    /// `message`; `None` when the signature is not minimal DER of two
    /// INTEGERs (the caller asks `ring`, whose answer stands).
    pub fn verify(&self, message: &[u8], signature_der: &[u8]) -> Option<bool> {
        let (r, s) = split_signature(signature_der)?;
        let (Some(r), Some(s)) = (
            Scalar::from_signature_part(&r),
            Scalar::from_signature_part(&s),
        ) else {
            return Some(false);
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, message);
        let e = Scalar::from_hash(digest.as_ref().try_into().ok()?);
        let s_inverse = s.invert();
        let u1 = e.mul(&s_inverse);
        let u2 = r.mul(&s_inverse);
        let sum = base_table()?.add_multiple(Jacobian::INFINITY, &u1)?;
        let sum = self.table.add_multiple(sum, &u2)?;
        Some(x_is_r_mod_n(&sum, &r))
    }
}

/// G's table, built on first use.
fn base_table() -> Option<&'static Table> {
    static BASE: OnceLock<Option<Table>> = OnceLock::new();
    BASE.get_or_init(|| Table::new(&Affine::from_uncompressed(&G)?))
        .as_ref()
}

/// x(R) mod n = r without inverting Z: x(R) = X/Z² < p, and x < p < 2n, so
/// x ≡ r means x = r or x = r + n (the latter only if r + n < p).
fn x_is_r_mod_n(sum: &Jacobian, r: &Scalar) -> bool {
    if sum.is_infinity() {
        return false;
    }
    let z2 = sum.z.square();
    let matches = |x: &limbs::Limbs| Fe::from_integer(x).is_some_and(|x| x.mul(&z2) == sum.x);
    let (r_plus_n, carry) = limbs::add(r.limbs(), &N);
    matches(r.limbs()) || (carry == 0 && matches(&r_plus_n))
}

/// SEQUENCE { INTEGER r, INTEGER s } in minimal DER (what ECDSA signers
/// write) → r and s as 32 big-endian bytes; `None` for anything else,
/// including a negative or over-long INTEGER.
fn split_signature(der: &[u8]) -> Option<([u8; 32], [u8; 32])> {
    let (&0x30, rest) = der.split_first()? else {
        return None;
    };
    let (&length, body) = rest.split_first()?;
    if length >= 0x80 || body.len() != usize::from(length) {
        return None;
    }
    let (r, rest) = integer(body)?;
    let (s, rest) = integer(rest)?;
    rest.is_empty().then_some((r, s))
}

fn integer(der: &[u8]) -> Option<([u8; 32], &[u8])> {
    let (&0x02, rest) = der.split_first()? else {
        return None;
    };
    let (&length, rest) = rest.split_first()?;
    let (contents, rest) = rest.split_at_checked(usize::from(length))?;
    let magnitude = match contents {
        [first, ..] if first & 0x80 != 0 => return None,
        [0, second, ..] if second & 0x80 == 0 => return None,
        [0, magnitude @ ..] if !magnitude.is_empty() => magnitude,
        [] => return None,
        _ => contents,
    };
    let padding = 32usize.checked_sub(magnitude.len())?;
    let mut value = [0u8; 32];
    value.get_mut(padding..)?.copy_from_slice(magnitude);
    Some((value, rest))
}
