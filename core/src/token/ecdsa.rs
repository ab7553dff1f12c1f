//! ECDSA signature verification (SEC 1 v2 §4.1.4) on the NIST prime curves
//! with `a = -3`, over one Montgomery arithmetic (`crypto-bigint`'s runtime
//! modulus on 384-bit integers) shared by every curve it is given.
//!
//! Why not the `p384` crate: its fiat-crypto field code is unrolled per
//! curve (~120 KB of the shipped .wasm for a fallback Envoy's
//! `verify_signature` normally takes over). Verification handles public data
//! only (key, message, signature), so variable-time code is fine here.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::U384;
use sha2::{Digest, Sha256, Sha384};

const LIMBS: usize = U384::LIMBS;
/// Bytes of the widest supported curve (P-384).
const WIDTH: usize = 48;

type Residue = DynResidue<LIMBS>;
type Params = DynResidueParams<LIMBS>;

/// A short Weierstrass curve `y² = x³ - 3x + b` of prime order.
pub struct Curve {
    /// Bytes of a coordinate, a scalar and each half of a JWS signature.
    size: usize,
    field: Params,
    order: Params,
    b: U384,
    gx: U384,
    gy: U384,
}

/// P-256 (NIST SP 800-186 §3.2.1.3), with SHA-256 for ES256 (RFC 7518 §3.4),
/// in the same 384-bit integers (its Montgomery radix is 2^384 then).
pub static P256: Curve = Curve {
    size: 32,
    field: Params::new(&U384::from_be_hex(
        "00000000000000000000000000000000ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    )),
    order: Params::new(&U384::from_be_hex(
        "00000000000000000000000000000000ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    )),
    b: U384::from_be_hex(
        "000000000000000000000000000000005ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    ),
    gx: U384::from_be_hex(
        "000000000000000000000000000000006b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    ),
    gy: U384::from_be_hex(
        "000000000000000000000000000000004fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    ),
};

/// P-384 (NIST SP 800-186 §3.2.1.4), with SHA-384 for ES384 (RFC 7518 §3.4).
pub static P384: Curve = Curve {
    size: 48,
    field: Params::new(&U384::from_be_hex(
        "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    )),
    order: Params::new(&U384::from_be_hex(
        "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    )),
    b: U384::from_be_hex(
        "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    ),
    gx: U384::from_be_hex(
        "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    ),
    gy: U384::from_be_hex(
        "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    ),
};

/// A public key: a point of the curve other than infinity, checked when
/// made (coordinates below the field modulus, on the curve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    x: U384,
    y: U384,
    /// The SEC 1 uncompressed encoding `04 ‖ x ‖ y` (for SubjectPublicKeyInfo).
    sec1: Vec<u8>,
}

impl VerifyingKey {
    /// The key of affine coordinates `x` and `y` (big-endian, `curve.size`
    /// bytes each); `None` when that is not a point of the curve.
    pub fn from_coordinates(curve: &Curve, x: &[u8], y: &[u8]) -> Option<VerifyingKey> {
        let (xi, yi) = (curve.integer(x)?, curve.integer(y)?);
        if xi >= *curve.field.modulus() || yi >= *curve.field.modulus() {
            return None;
        }
        let (fx, fy) = (curve.fe(&xi), curve.fe(&yi));
        let b = curve.fe(&curve.b);
        let three_x = fx.add(&fx).add(&fx);
        let rhs = fx.square().mul(&fx).sub(&three_x).add(&b);
        if fy.square() != rhs {
            return None;
        }
        let mut sec1 = Vec::with_capacity(1 + 2 * curve.size);
        sec1.push(4);
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        Some(VerifyingKey { x: xi, y: yi, sec1 })
    }

    /// `04 ‖ x ‖ y`.
    pub fn sec1_uncompressed(&self) -> &[u8] {
        &self.sec1
    }
}

/// A point in Jacobian coordinates (`x = X/Z²`, `y = Y/Z³`); `Z = 0` is the
/// point at infinity.
#[derive(Clone, Copy)]
struct Point {
    x: Residue,
    y: Residue,
    z: Residue,
}

impl Curve {
    /// Bytes of a coordinate (and of each half of a JWS signature).
    pub fn size(&self) -> usize {
        self.size
    }

    /// A big-endian integer of exactly `self.size` bytes.
    fn integer(&self, bytes: &[u8]) -> Option<U384> {
        if bytes.len() != self.size {
            return None;
        }
        let mut wide = [0u8; WIDTH];
        wide.get_mut(WIDTH - self.size..)?.copy_from_slice(bytes);
        Some(U384::from_be_slice(&wide))
    }

    fn fe(&self, value: &U384) -> Residue {
        Residue::new(value, self.field)
    }

    fn affine(&self, x: &U384, y: &U384) -> Point {
        Point {
            x: self.fe(x),
            y: self.fe(y),
            z: Residue::one(self.field),
        }
    }

    fn infinity(&self) -> Point {
        Point {
            x: Residue::one(self.field),
            y: Residue::one(self.field),
            z: Residue::zero(self.field),
        }
    }

    /// `2P` ("dbl-2001-b", for `a = -3`).
    fn double(&self, p: &Point) -> Point {
        let delta = p.z.square();
        let gamma = p.y.square();
        let beta = p.x.mul(&gamma);
        let t = p.x.sub(&delta).mul(&p.x.add(&delta));
        let alpha = t.add(&t).add(&t);
        let beta4 = beta.add(&beta).add(&beta.add(&beta));
        let x = alpha.square().sub(&beta4.add(&beta4));
        let z = p.y.add(&p.z).square().sub(&gamma).sub(&delta);
        let gamma2 = gamma.square();
        let gamma8 = gamma2.add(&gamma2);
        let gamma8 = gamma8.add(&gamma8);
        let gamma8 = gamma8.add(&gamma8);
        let y = alpha.mul(&beta4.sub(&x)).sub(&gamma8);
        Point { x, y, z }
    }

    /// `P + Q` ("add-2007-bl"), with the cases that formula cannot take:
    /// infinity on either side, `P = Q` and `P = -Q`.
    fn add(&self, p: &Point, q: &Point) -> Point {
        let zero = Residue::zero(self.field);
        if p.z == zero {
            return *q;
        }
        if q.z == zero {
            return *p;
        }
        let z1z1 = p.z.square();
        let z2z2 = q.z.square();
        let u1 = p.x.mul(&z2z2);
        let u2 = q.x.mul(&z1z1);
        let s1 = p.y.mul(&q.z).mul(&z2z2);
        let s2 = q.y.mul(&p.z).mul(&z1z1);
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h == zero {
            return if r == zero {
                self.double(p)
            } else {
                self.infinity()
            };
        }
        let r = r.add(&r);
        let i = h.add(&h).square();
        let j = h.mul(&i);
        let v = u1.mul(&i);
        let x = r.square().sub(&j).sub(&v.add(&v));
        let s1j = s1.mul(&j);
        let y = r.mul(&v.sub(&x)).sub(&s1j.add(&s1j));
        let z = p.z.add(&q.z).square().sub(&z1z1).sub(&z2z2).mul(&h);
        Point { x, y, z }
    }

    /// Whether `signature` (`r ‖ s`, `size` bytes each, as JWS writes it) is
    /// valid for the message whose hash is `digest` (no longer than the
    /// order, as for the curves' JWS hashes).
    fn verify_digest(&self, key: &VerifyingKey, digest: &[u8], signature: &[u8]) -> bool {
        if signature.len() != 2 * self.size || digest.len() > self.size {
            return false;
        }
        let (r_bytes, s_bytes) = signature.split_at(self.size);
        let (Some(r), Some(s)) = (self.integer(r_bytes), self.integer(s_bytes)) else {
            return false;
        };
        let n = *self.order.modulus();
        if r == U384::ZERO || s == U384::ZERO || r >= n || s >= n {
            return false;
        }
        let mut wide = [0u8; WIDTH];
        let Some(tail) = wide.get_mut(WIDTH - digest.len()..) else {
            return false;
        };
        tail.copy_from_slice(digest);
        let mut e = U384::from_be_slice(&wide);
        if e >= n {
            e = e.wrapping_sub(&n);
        }
        let (w, invertible) = Residue::new(&s, self.order).invert();
        if !bool::from(invertible) {
            return false;
        }
        let u1 = Residue::new(&e, self.order).mul(&w).retrieve();
        let u2 = Residue::new(&r, self.order).mul(&w).retrieve();

        // u1·G + u2·Q, both scalars at once (Shamir's trick).
        let g = self.affine(&self.gx, &self.gy);
        let q = self.affine(&key.x, &key.y);
        let gq = self.add(&g, &q);
        let mut acc = self.infinity();
        let zero = Residue::zero(self.field);
        for bit in (0..8 * self.size).rev() {
            if acc.z != zero {
                acc = self.double(&acc);
            }
            acc = match (u1.bit_vartime(bit), u2.bit_vartime(bit)) {
                (true, true) => self.add(&acc, &gq),
                (true, false) => self.add(&acc, &g),
                (false, true) => self.add(&acc, &q),
                (false, false) => continue,
            };
        }
        if acc.z == zero {
            return false;
        }
        let (z_inv, invertible) = acc.z.invert();
        if !bool::from(invertible) {
            return false;
        }
        let x = acc.x.mul(&z_inv.square()).retrieve();
        // x mod n: the field modulus is below 2n.
        let x = if x >= n { x.wrapping_sub(&n) } else { x };
        x == r
    }
}

/// ES256: ECDSA on P-256 with SHA-256 (RFC 7518 §3.4).
pub fn verify_es256(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    P256.verify_digest(key, &Sha256::digest(message), signature)
}

/// ES384: ECDSA on P-384 with SHA-384 (RFC 7518 §3.4).
pub fn verify_es384(key: &VerifyingKey, message: &[u8], signature: &[u8]) -> bool {
    P384.verify_digest(key, &Sha384::digest(message), signature)
}

#[cfg(test)]
mod tests;
