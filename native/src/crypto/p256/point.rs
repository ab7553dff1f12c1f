//! Points of P-256 (y² = x³ − 3x + b): affine, and Jacobian (X/Z², Y/Z³)
//! for sums without inversions. Variable time (public data only); every
//! special case of the formulas (infinity, equal or opposite points) is
//! handled by a branch.

use super::field::Fe;

const B: [u8; 32] = [
    0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd, 0x55, 0x76, 0x98, 0x86, 0xbc,
    0x65, 0x1d, 0x06, 0xb0, 0xcc, 0x53, 0xb0, 0xf6, 0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b,
];
/// The base point G, uncompressed (SEC 1).
pub const G: [u8; 65] = [
    0x04, 0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40,
    0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2,
    0x96, 0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e,
    0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51,
    0xf5,
];

/// A point other than infinity (which has no affine form).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine {
    pub x: Fe,
    pub y: Fe,
}

impl Affine {
    /// An uncompressed SEC 1 point (0x04 ‖ x ‖ y, 65 bytes) with both
    /// coordinates below p and on the curve; `None` otherwise, as `ring`.
    pub fn from_uncompressed(bytes: &[u8]) -> Option<Affine> {
        let (&0x04, coordinates) = bytes.split_first()? else {
            return None;
        };
        let (x, y) = coordinates.split_at_checked(32)?;
        let x = Fe::from_be_bytes(x.try_into().ok()?)?;
        let y = Fe::from_be_bytes(y.try_into().ok()?)?;
        let b = Fe::from_be_bytes(&B)?;
        let three_x = x.double().add(&x);
        let right = x.square().mul(&x).sub(&three_x).add(&b);
        (y.square() == right).then_some(Affine { x, y })
    }

    pub fn neg(&self) -> Affine {
        Affine {
            x: self.x,
            y: self.y.neg(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Jacobian {
    pub x: Fe,
    pub y: Fe,
    pub z: Fe,
}

impl Jacobian {
    pub const INFINITY: Jacobian = Jacobian {
        x: Fe::ONE,
        y: Fe::ONE,
        z: Fe::ZERO,
    };

    pub fn from_affine(point: &Affine) -> Jacobian {
        Jacobian {
            x: point.x,
            y: point.y,
            z: Fe::ONE,
        }
    }

    pub fn is_infinity(&self) -> bool {
        self.z.is_zero()
    }

    /// 2·self ("dbl-2001-b", a = −3: 3M + 5S).
    pub fn double(&self) -> Jacobian {
        if self.is_infinity() || self.y.is_zero() {
            return Jacobian::INFINITY;
        }
        let delta = self.z.square();
        let gamma = self.y.square();
        let beta = self.x.mul(&gamma);
        let alpha = self.x.sub(&delta).mul(&self.x.add(&delta));
        let alpha = alpha.double().add(&alpha);
        let beta4 = beta.double().double();
        let x = alpha.square().sub(&beta4.double());
        let z = self.y.add(&self.z).square().sub(&gamma).sub(&delta);
        let gamma_squared8 = gamma.square().double().double().double();
        let y = alpha.mul(&beta4.sub(&x)).sub(&gamma_squared8);
        Jacobian { x, y, z }
    }

    /// self + other, other affine (8M + 3S).
    pub fn add_affine(&self, other: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian::from_affine(other);
        }
        let z1z1 = self.z.square();
        let u2 = other.x.mul(&z1z1);
        let s2 = other.y.mul(&self.z).mul(&z1z1);
        self.sum(self.x, self.y, u2, s2, self.z)
    }

    /// self + other, both Jacobian (12M + 4S): building tables only.
    pub fn add(&self, other: &Jacobian) -> Jacobian {
        if self.is_infinity() {
            return *other;
        }
        if other.is_infinity() {
            return *self;
        }
        let z1z1 = self.z.square();
        let z2z2 = other.z.square();
        let u1 = self.x.mul(&z2z2);
        let u2 = other.x.mul(&z1z1);
        let s1 = self.y.mul(&other.z).mul(&z2z2);
        let s2 = other.y.mul(&self.z).mul(&z1z1);
        self.sum(u1, s1, u2, s2, self.z.mul(&other.z))
    }

    /// The common end of both additions: the points as U₁ = X₁·Z₂², S₁ =
    /// Y₁·Z₂³ and U₂, S₂ alike, and Z₁·Z₂; equal points are doubled, opposite
    /// ones give infinity.
    #[inline(always)]
    fn sum(&self, u1: Fe, s1: Fe, u2: Fe, s2: Fe, z1z2: Fe) -> Jacobian {
        let h = u2.sub(&u1);
        let r = s2.sub(&s1);
        if h.is_zero() {
            return if r.is_zero() {
                self.double()
            } else {
                Jacobian::INFINITY
            };
        }
        let hh = h.square();
        let hhh = h.mul(&hh);
        let v = u1.mul(&hh);
        let x = r.square().sub(&hhh).sub(&v.double());
        let y = r.mul(&v.sub(&x)).sub(&s1.mul(&hhh));
        let z = z1z2.mul(&h);
        Jacobian { x, y, z }
    }

    /// The affine form; `None` at infinity.
    #[cfg(test)]
    pub fn to_affine(self) -> Option<Affine> {
        if self.is_infinity() {
            return None;
        }
        let z_inverse = self.z.invert();
        let z_inverse2 = z_inverse.square();
        Some(Affine {
            x: self.x.mul(&z_inverse2),
            y: self.y.mul(&z_inverse2).mul(&z_inverse),
        })
    }
}

/// Many Jacobian points to affine with one inversion (Montgomery's trick);
/// `None` if any is infinity.
pub fn batch_to_affine(points: &[Jacobian]) -> Option<Vec<Affine>> {
    if points.iter().any(Jacobian::is_infinity) {
        return None;
    }
    // products_before[i] = z₀·…·zᵢ₋₁
    let mut products_before = Vec::with_capacity(points.len());
    let mut product = Fe::ONE;
    for point in points {
        products_before.push(product);
        product = product.mul(&point.z);
    }
    // Walking back, `inverse` is (z₀·…·zᵢ)⁻¹.
    let mut inverse = product.invert();
    let mut affine = vec![
        Affine {
            x: Fe::ZERO,
            y: Fe::ZERO
        };
        points.len()
    ];
    for ((point, before), out) in points
        .iter()
        .zip(products_before)
        .zip(affine.iter_mut())
        .rev()
    {
        let z_inverse = inverse.mul(&before);
        inverse = inverse.mul(&point.z);
        let z_inverse2 = z_inverse.square();
        *out = Affine {
            x: point.x.mul(&z_inverse2),
            y: point.y.mul(&z_inverse2).mul(&z_inverse),
        };
    }
    Some(affine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_point_is_on_the_curve_and_sums_agree() {
        let g = Affine::from_uncompressed(&G).unwrap();
        let g1 = Jacobian::from_affine(&g);
        let g2 = g1.double();
        assert_eq!(g1.add(&g1).to_affine(), g2.to_affine());
        assert_eq!(g1.add_affine(&g).to_affine(), g2.to_affine());
        let g3 = g2.add_affine(&g);
        assert_eq!(g2.add(&g1).to_affine(), g3.to_affine());
        assert_eq!(g1.add(&g2).to_affine(), g3.to_affine());
        assert!(g1.add_affine(&g.neg()).is_infinity());
        // Every point computed is on the curve.
        let [g3] = batch_to_affine(&[g3]).unwrap()[..] else {
            unreachable!()
        };
        assert_eq!(Some(g3), g2.add(&g1).to_affine());
        let mut bytes = [0x04u8; 65];
        bytes[1..33].copy_from_slice(&super::super::limbs::to_be_bytes(&g3.x.to_integer()));
        bytes[33..].copy_from_slice(&super::super::limbs::to_be_bytes(&g3.y.to_integer()));
        assert_eq!(Affine::from_uncompressed(&bytes), Some(g3));
    }
}
