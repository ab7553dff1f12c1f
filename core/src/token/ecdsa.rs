//! ECDSA signature verification (SEC 1 v2 §4.1.4) on the NIST prime curves
//! with `a = -3` (P-256, P-384), over the Montgomery arithmetic of
//! `modular.rs` that RSA uses too: one copy of the code for every curve.
//!
//! Why not the `p256`/`p384` crates: their fiat-crypto field code is
//! unrolled per curve (~150 KB of the shipped .wasm for a fallback Envoy's
//! `verify_signature` normally takes over). Verification handles public data
//! only (key, message, signature), so variable-time code is fine here.

use super::modular::{self, Limb, Modulus};
use sha2::{Digest, Sha256, Sha384};
use std::sync::OnceLock;

/// Limbs of the widest supported curve (P-384).
const MAX_LIMBS: usize = 48 / std::mem::size_of::<Limb>();

/// A residue in Montgomery form; the limbs past the modulus' are zero.
type Fe = [Limb; MAX_LIMBS];

/// A short Weierstrass curve `y² = x³ - 3x + b` of prime order, its
/// constants as big-endian hex (`p` the field, `n` the order, `G` the
/// generator).
pub struct Curve {
    /// Bytes of a coordinate, a scalar and each half of a JWS signature.
    size: usize,
    p: &'static str,
    n: &'static str,
    b: &'static str,
    gx: &'static str,
    gy: &'static str,
    arithmetic: OnceLock<Option<Arithmetic>>,
}

/// P-256 (NIST SP 800-186 §3.2.1.3), with SHA-256 for ES256 (RFC 7518 §3.4).
pub static P256: Curve = Curve {
    size: 32,
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    arithmetic: OnceLock::new(),
};

/// P-384 (NIST SP 800-186 §3.2.1.4), with SHA-384 for ES384 (RFC 7518 §3.4).
pub static P384: Curve = Curve {
    size: 48,
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875ac656398d8a2ed19d2a85c8edd3ec2aef",
    gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7",
    gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5f",
    arithmetic: OnceLock::new(),
};

/// Bytes of big-endian hex (the constants above).
fn hex(text: &str) -> Vec<u8> {
    text.as_bytes()
        .chunks(2)
        .map(|pair| {
            pair.iter().fold(0u8, |acc, c| {
                acc << 4 | (*c as char).to_digit(16).unwrap_or(0) as u8
            })
        })
        .collect()
}

/// A curve's moduli and constants, ready for computing.
struct Arithmetic {
    field: Modulus,
    order: Modulus,
    b: Fe,
    g: Point,
}

/// A public key: a point of the curve other than infinity, checked when
/// made (coordinates below the field modulus, on the curve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The SEC 1 uncompressed encoding `04 ‖ x ‖ y`.
    sec1: Vec<u8>,
}

impl VerifyingKey {
    /// The key of affine coordinates `x` and `y` (big-endian, `curve.size`
    /// bytes each); `None` when that is not a point of the curve.
    pub fn from_coordinates(curve: &Curve, x: &[u8], y: &[u8]) -> Option<VerifyingKey> {
        let a = curve.arithmetic()?;
        a.point(curve.size, x, y)?;
        let mut sec1 = Vec::with_capacity(1 + 2 * curve.size);
        sec1.push(4);
        sec1.extend_from_slice(x);
        sec1.extend_from_slice(y);
        Some(VerifyingKey { sec1 })
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
    x: Fe,
    y: Fe,
    z: Fe,
}

const ZERO: Fe = [0; MAX_LIMBS];

/// Arithmetic modulo one of the curve's moduli on fixed-size limbs (no
/// allocation per operation).
struct Ring<'a>(&'a Modulus);

impl Ring<'_> {
    /// `op` on the modulus' limbs of `a` and `b`.
    fn apply(&self, a: &Fe, b: &Fe, op: impl Fn(&Modulus, &mut [Limb], &[Limb], &[Limb])) -> Fe {
        let len = self.0.len();
        let mut out = ZERO;
        if let (Some(o), Some(a), Some(b)) = (out.get_mut(..len), a.get(..len), b.get(..len)) {
            op(self.0, o, a, b);
        }
        out
    }

    fn mul(&self, a: &Fe, b: &Fe) -> Fe {
        self.apply(a, b, Modulus::mul_into)
    }

    fn square(&self, a: &Fe) -> Fe {
        self.mul(a, a)
    }

    fn add(&self, a: &Fe, b: &Fe) -> Fe {
        self.apply(a, b, Modulus::add_into)
    }

    fn sub(&self, a: &Fe, b: &Fe) -> Fe {
        self.apply(a, b, Modulus::sub_into)
    }

    /// A big-endian integer of at most `MAX_LIMBS` limbs, as is.
    fn integer(&self, bytes: &[u8]) -> Option<Fe> {
        let limbs = modular::limbs(bytes, self.0.len())?;
        let mut out = ZERO;
        for (o, l) in out.iter_mut().zip(limbs) {
            *o = l;
        }
        Some(out)
    }

    fn below_modulus(&self, a: &Fe) -> bool {
        a.get(..self.0.len())
            .is_some_and(|a| modular::less(a, self.0.limbs()))
    }

    fn to_montgomery(&self, a: &Fe) -> Fe {
        self.fe(&self
            .0
            .to_montgomery(a.get(..self.0.len()).unwrap_or_default()))
    }

    fn to_plain(&self, a: &Fe) -> Fe {
        self.fe(&self.0.to_plain(a.get(..self.0.len()).unwrap_or_default()))
    }

    fn invert(&self, a: &Fe) -> Fe {
        self.fe(&self
            .0
            .invert_prime(a.get(..self.0.len()).unwrap_or_default()))
    }

    fn fe(&self, limbs: &[Limb]) -> Fe {
        let mut out = ZERO;
        for (o, l) in out.iter_mut().zip(limbs) {
            *o = *l;
        }
        out
    }
}

impl Curve {
    /// Bytes of a coordinate (and of each half of a JWS signature).
    pub fn size(&self) -> usize {
        self.size
    }

    fn arithmetic(&self) -> Option<&Arithmetic> {
        self.arithmetic
            .get_or_init(|| {
                let field = Modulus::new(&hex(self.p))?;
                let order = Modulus::new(&hex(self.n))?;
                let f = Ring(&field);
                let b = f.to_montgomery(&f.integer(&hex(self.b))?);
                let g = Point {
                    x: f.to_montgomery(&f.integer(&hex(self.gx))?),
                    y: f.to_montgomery(&f.integer(&hex(self.gy))?),
                    z: f.to_montgomery(&f.integer(&[1])?),
                };
                Some(Arithmetic { field, order, b, g })
            })
            .as_ref()
    }
}

impl Arithmetic {
    /// The point of affine coordinates `x`, `y` (`size` bytes each, below
    /// the field modulus, on the curve).
    fn point(&self, size: usize, x: &[u8], y: &[u8]) -> Option<Point> {
        let f = Ring(&self.field);
        if x.len() != size || y.len() != size {
            return None;
        }
        let (x, y) = (f.integer(x)?, f.integer(y)?);
        if !f.below_modulus(&x) || !f.below_modulus(&y) {
            return None;
        }
        let (x, y) = (f.to_montgomery(&x), f.to_montgomery(&y));
        let three_x = f.add(&f.add(&x, &x), &x);
        let rhs = f.add(&f.sub(&f.mul(&f.square(&x), &x), &three_x), &self.b);
        (f.square(&y) == rhs).then_some(Point { x, y, z: self.g.z })
    }

    fn infinity(&self) -> Point {
        Point {
            x: self.g.z,
            y: self.g.z,
            z: ZERO,
        }
    }

    /// `2P` ("dbl-2001-b", for `a = -3`).
    fn double(&self, p: &Point) -> Point {
        let f = Ring(&self.field);
        let delta = f.square(&p.z);
        let gamma = f.square(&p.y);
        let beta = f.mul(&p.x, &gamma);
        let t = f.mul(&f.sub(&p.x, &delta), &f.add(&p.x, &delta));
        let alpha = f.add(&f.add(&t, &t), &t);
        let beta2 = f.add(&beta, &beta);
        let beta4 = f.add(&beta2, &beta2);
        let x = f.sub(&f.square(&alpha), &f.add(&beta4, &beta4));
        let z = f.sub(&f.sub(&f.square(&f.add(&p.y, &p.z)), &gamma), &delta);
        let gamma2 = f.square(&gamma);
        let gamma4 = f.add(&gamma2, &gamma2);
        let gamma8 = f.add(&gamma4, &gamma4);
        let y = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x)), &f.add(&gamma8, &gamma8));
        Point { x, y, z }
    }

    /// `P + Q` ("add-2007-bl"), with the cases that formula cannot take:
    /// infinity on either side, `P = Q` and `P = -Q`.
    fn add(&self, p: &Point, q: &Point) -> Point {
        let f = Ring(&self.field);
        if p.z == ZERO {
            return *q;
        }
        if q.z == ZERO {
            return *p;
        }
        let z1z1 = f.square(&p.z);
        let z2z2 = f.square(&q.z);
        let u1 = f.mul(&p.x, &z2z2);
        let u2 = f.mul(&q.x, &z1z1);
        let s1 = f.mul(&f.mul(&p.y, &q.z), &z2z2);
        let s2 = f.mul(&f.mul(&q.y, &p.z), &z1z1);
        let h = f.sub(&u2, &u1);
        let r = f.sub(&s2, &s1);
        if h == ZERO {
            return if r == ZERO {
                self.double(p)
            } else {
                self.infinity()
            };
        }
        let r = f.add(&r, &r);
        let i = f.square(&f.add(&h, &h));
        let j = f.mul(&h, &i);
        let v = f.mul(&u1, &i);
        let x = f.sub(&f.sub(&f.square(&r), &j), &f.add(&v, &v));
        let s1j = f.mul(&s1, &j);
        let y = f.sub(&f.mul(&r, &f.sub(&v, &x)), &f.add(&s1j, &s1j));
        let z = f.mul(
            &f.sub(&f.sub(&f.square(&f.add(&p.z, &q.z)), &z1z1), &z2z2),
            &h,
        );
        Point { x, y, z }
    }
}

impl Curve {
    /// Whether `signature` (`r ‖ s`, `size` bytes each, as JWS writes it) is
    /// valid for the message whose hash is `digest` (no longer than the
    /// order, as for the curves' JWS hashes).
    fn verify_digest(&self, key: &VerifyingKey, digest: &[u8], signature: &[u8]) -> bool {
        let Some(a) = self.arithmetic() else {
            return false;
        };
        if signature.len() != 2 * self.size || digest.len() > self.size {
            return false;
        }
        let (r_bytes, s_bytes) = signature.split_at(self.size);
        let n = Ring(&a.order);
        let (Some(r), Some(s), Some(mut e)) =
            (n.integer(r_bytes), n.integer(s_bytes), n.integer(digest))
        else {
            return false;
        };
        if r == ZERO || s == ZERO || !n.below_modulus(&r) || !n.below_modulus(&s) {
            return false;
        }
        // The digest is below 2^(8·size) < 2n.
        a.order
            .reduce_once(e.get_mut(..a.order.len()).unwrap_or_default());
        let w = n.invert(&n.to_montgomery(&s));
        let u1 = n.to_plain(&n.mul(&n.to_montgomery(&e), &w));
        let u2 = n.to_plain(&n.mul(&n.to_montgomery(&r), &w));
        let Some(q) = key
            .sec1
            .get(1..)
            .map(|xy| xy.split_at(self.size))
            .and_then(|(x, y)| a.point(self.size, x, y))
        else {
            return false;
        };

        // u1·G + u2·Q, both scalars at once (Shamir's trick).
        let gq = a.add(&a.g, &q);
        let mut acc = a.infinity();
        for bit in (0..8 * self.size).rev() {
            if acc.z != ZERO {
                acc = a.double(&acc);
            }
            acc = match (modular::bit(&u1, bit), modular::bit(&u2, bit)) {
                (true, true) => a.add(&acc, &gq),
                (true, false) => a.add(&acc, &a.g),
                (false, true) => a.add(&acc, &q),
                (false, false) => continue,
            };
        }
        if acc.z == ZERO {
            return false;
        }
        let f = Ring(&a.field);
        let z_inv = f.invert(&acc.z);
        let mut x = f.to_plain(&f.mul(&acc.x, &f.square(&z_inv)));
        // x mod n: the field modulus is below 2n.
        a.order
            .reduce_once(x.get_mut(..a.order.len()).unwrap_or_default());
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
