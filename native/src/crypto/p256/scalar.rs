//! Integers mod n, P-256's group order: what ECDSA verification needs of
//! them (the hash reduced, s⁻¹, u₁ = e·s⁻¹ and u₂ = r·s⁻¹). Plain
//! representation; products by Montgomery multiplication (CIOS, `u128`).
//! Variable time: verification handles public data only.

use super::limbs::{self, adc, mac, Limbs};

pub const N: Limbs = [
    0xf3b9_cac2_fc63_2551,
    0xbce6_faad_a717_9e84,
    0xffff_ffff_ffff_ffff,
    0xffff_ffff_0000_0000,
];
/// −n⁻¹ mod 2⁶⁴.
const N_PRIME: u64 = 0xccd1_c8aa_ee00_bc4f;
/// R² mod n (R = 2²⁵⁶).
const R2: Limbs = [
    0x8324_4c95_be79_eea2,
    0x4699_799c_49bd_6fa6,
    0x2845_b239_2b6b_ec59,
    0x66e1_2d94_f3d9_5620,
];

/// An integer below n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scalar(pub(super) Limbs);

impl Scalar {
    /// A signature's r or s: big-endian, in [1, n) (`None` otherwise, as
    /// ECDSA refuses).
    pub fn from_signature_part(bytes: &[u8; 32]) -> Option<Scalar> {
        let value = limbs::from_be_bytes(bytes);
        (!limbs::is_zero(&value) && limbs::less_than(&value, &N)).then_some(Scalar(value))
    }

    /// A 256-bit hash as an integer mod n (it is below 2n: one subtraction).
    pub fn from_hash(bytes: &[u8; 32]) -> Scalar {
        Scalar(limbs::subtract_if_not_below(
            &limbs::from_be_bytes(bytes),
            0,
            &N,
        ))
    }

    pub fn limbs(&self) -> &Limbs {
        &self.0
    }

    /// self·other mod n.
    pub fn mul(&self, other: &Scalar) -> Scalar {
        Scalar(montgomery_mul(&montgomery_mul(&self.0, &other.0), &R2))
    }

    /// self⁻¹ mod n (n is prime; self ≠ 0): the binary extended Euclidean
    /// algorithm, variable time. Measured against Fermat (s^(n−2) by
    /// Montgomery products) in the tests' agreement check and the bench.
    pub fn invert(&self) -> Scalar {
        let mut u = self.0;
        let mut v = N;
        let mut x1: Limbs = [1, 0, 0, 0];
        let mut x2: Limbs = [0; 4];
        let one: Limbs = [1, 0, 0, 0];
        if limbs::is_zero(&u) {
            return Scalar([0; 4]);
        }
        while u != one && v != one {
            while u[0] & 1 == 0 {
                u = shift_right(&u, 0);
                x1 = halve(&x1);
            }
            while v[0] & 1 == 0 {
                v = shift_right(&v, 0);
                x2 = halve(&x2);
            }
            if limbs::less_than(&u, &v) {
                v = limbs::sub(&v, &u).0;
                x2 = sub_mod_n(&x2, &x1);
            } else {
                u = limbs::sub(&u, &v).0;
                x1 = sub_mod_n(&x1, &x2);
            }
        }
        Scalar(if u == one { x1 } else { x2 })
    }

    /// self⁻¹ mod n by Fermat: the reference the tests hold `invert` to.
    #[cfg(test)]
    pub fn invert_fermat(&self) -> Scalar {
        let exponent = limbs::sub(&N, &[2, 0, 0, 0]).0;
        let base = montgomery_mul(&self.0, &R2);
        let mut result = montgomery_mul(&[1, 0, 0, 0], &R2);
        for limb in exponent.iter().rev() {
            for bit in (0..64).rev() {
                result = montgomery_mul(&result, &result);
                if (limb >> bit) & 1 == 1 {
                    result = montgomery_mul(&result, &base);
                }
            }
        }
        Scalar(montgomery_mul(&result, &[1, 0, 0, 0]))
    }
}

/// value / 2 with `top` shifted in as bit 255.
#[inline(always)]
fn shift_right(value: &Limbs, top: u64) -> Limbs {
    let [a0, a1, a2, a3] = *value;
    [
        (a0 >> 1) | (a1 << 63),
        (a1 >> 1) | (a2 << 63),
        (a2 >> 1) | (a3 << 63),
        (a3 >> 1) | (top << 63),
    ]
}

/// x / 2 mod n for x < n: x is even, or x + n is.
#[inline(always)]
fn halve(x: &Limbs) -> Limbs {
    if x[0] & 1 == 0 {
        shift_right(x, 0)
    } else {
        let (sum, carry) = limbs::add(x, &N);
        shift_right(&sum, carry)
    }
}

/// a − b mod n for a, b < n.
#[inline(always)]
fn sub_mod_n(a: &Limbs, b: &Limbs) -> Limbs {
    let (difference, borrow) = limbs::sub(a, b);
    if borrow == 1 {
        limbs::add(&difference, &N).0
    } else {
        difference
    }
}

/// One CIOS round: (t + a·b + q·n) / 2⁶⁴, q making the low limb vanish; t
/// stays below 2n (five limbs).
#[inline(always)]
fn round(t: [u64; 5], a: &Limbs, b: u64) -> [u64; 5] {
    let [t0, t1, t2, t3, t4] = t;
    let [a0, a1, a2, a3] = *a;
    let [n0, n1, n2, n3] = N;
    let (u0, c) = mac(t0, a0, b, 0);
    let (u1, c) = mac(t1, a1, b, c);
    let (u2, c) = mac(t2, a2, b, c);
    let (u3, c) = mac(t3, a3, b, c);
    let (u4, u5) = adc(t4, c, 0);
    let q = u0.wrapping_mul(N_PRIME);
    let (_, c) = mac(u0, q, n0, 0);
    let (v1, c) = mac(u1, q, n1, c);
    let (v2, c) = mac(u2, q, n2, c);
    let (v3, c) = mac(u3, q, n3, c);
    let (v4, c) = adc(u4, c, 0);
    [v1, v2, v3, v4, u5 + c]
}

/// a·b·2⁻²⁵⁶ mod n for a, b < n.
fn montgomery_mul(a: &Limbs, b: &Limbs) -> Limbs {
    let [b0, b1, b2, b3] = *b;
    let t = round([0; 5], a, b0);
    let t = round(t, a, b1);
    let t = round(t, a, b2);
    let [t0, t1, t2, t3, t4] = round(t, a, b3);
    limbs::subtract_if_not_below(&[t0, t1, t2, t3], t4, &N)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_hold() {
        assert_eq!(N[0].wrapping_mul(N_PRIME), u64::MAX);
        // R² is right iff 1·R²·R⁻¹·R⁻¹ = 1.
        assert_eq!(
            montgomery_mul(&montgomery_mul(&[1, 0, 0, 0], &R2), &[1, 0, 0, 0]),
            [1, 0, 0, 0]
        );
    }

    #[test]
    fn inverses_agree_and_invert() {
        let mut x = Scalar([0x1234_5678_9abc_def0, 7, 0, 1]);
        for _ in 0..200 {
            let inverse = x.invert();
            assert_eq!(inverse, x.invert_fermat());
            assert_eq!(x.mul(&inverse), Scalar([1, 0, 0, 0]));
            x = x.mul(&Scalar([0xdead_beef_f00d_cafe, 3, 5, 0x7fff_ffff]));
        }
        let n_minus_1 = Scalar(limbs::sub(&N, &[1, 0, 0, 0]).0);
        assert_eq!(n_minus_1.invert(), n_minus_1);
    }
}
