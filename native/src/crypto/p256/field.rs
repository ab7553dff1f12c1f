//! Arithmetic mod p = 2²⁵⁶ − 2²²⁴ + 2¹⁹² + 2⁹⁶ − 1, P-256's field, in
//! Montgomery form (R = 2²⁵⁶) over four `u64` limbs with `u128` products.
//! The reduction uses p's special form: p ≡ −1 mod 2⁶⁴ (so the Montgomery
//! factor of each round is the low limb itself) and p's third limb is 0.
//!
//! Variable time, on purpose: only signature verification uses it, and a
//! verification handles public data (key, message, signature).

use super::limbs::{self, adc, mac, Limbs};

const P: Limbs = [
    0xffff_ffff_ffff_ffff,
    0x0000_0000_ffff_ffff,
    0x0000_0000_0000_0000,
    0xffff_ffff_0000_0001,
];
/// R² mod p, to enter the Montgomery form.
const R2: Limbs = [
    0x0000_0000_0000_0003,
    0xffff_fffb_ffff_ffff,
    0xffff_ffff_ffff_fffe,
    0x0000_0004_ffff_fffd,
];
/// p − 2: Fermat's exponent of the inverse.
const P_MINUS_2: Limbs = [
    0xffff_ffff_ffff_fffd,
    0x0000_0000_ffff_ffff,
    0x0000_0000_0000_0000,
    0xffff_ffff_0000_0001,
];

/// A field element in Montgomery form, always fully reduced (< p), so
/// equality of elements is equality of limbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fe(Limbs);

impl Fe {
    pub const ZERO: Fe = Fe([0; 4]);
    /// 1 in Montgomery form: R mod p = 2²⁵⁶ − p.
    pub const ONE: Fe = Fe([
        0x0000_0000_0000_0001,
        0xffff_ffff_0000_0000,
        0xffff_ffff_ffff_ffff,
        0x0000_0000_ffff_fffe,
    ]);

    /// A big-endian integer below p (`None` otherwise).
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Option<Fe> {
        Fe::from_integer(&limbs::from_be_bytes(bytes))
    }

    /// An integer below p (`None` otherwise) into the field.
    pub fn from_integer(value: &Limbs) -> Option<Fe> {
        limbs::less_than(value, &P).then(|| Fe(*value).mul(&Fe(R2)))
    }

    /// The integer this element stands for (out of Montgomery form).
    #[cfg(test)]
    pub fn to_integer(self) -> Limbs {
        self.mul(&Fe([1, 0, 0, 0])).0
    }

    pub fn is_zero(&self) -> bool {
        limbs::is_zero(&self.0)
    }

    #[inline]
    pub fn add(&self, other: &Fe) -> Fe {
        let (sum, carry) = limbs::add(&self.0, &other.0);
        Fe(limbs::subtract_if_not_below(&sum, carry, &P))
    }

    #[inline]
    pub fn sub(&self, other: &Fe) -> Fe {
        let (difference, borrow) = limbs::sub(&self.0, &other.0);
        if borrow == 1 {
            Fe(limbs::add(&difference, &P).0)
        } else {
            Fe(difference)
        }
    }

    #[inline]
    pub fn double(&self) -> Fe {
        self.add(self)
    }

    pub fn neg(&self) -> Fe {
        Fe::ZERO.sub(self)
    }

    #[inline]
    pub fn mul(&self, other: &Fe) -> Fe {
        let [a0, a1, a2, a3] = self.0;
        let [b0, b1, b2, b3] = other.0;
        let (w0, c) = mac(0, a0, b0, 0);
        let (w1, c) = mac(0, a0, b1, c);
        let (w2, c) = mac(0, a0, b2, c);
        let (w3, w4) = mac(0, a0, b3, c);
        let (w1, c) = mac(w1, a1, b0, 0);
        let (w2, c) = mac(w2, a1, b1, c);
        let (w3, c) = mac(w3, a1, b2, c);
        let (w4, w5) = mac(w4, a1, b3, c);
        let (w2, c) = mac(w2, a2, b0, 0);
        let (w3, c) = mac(w3, a2, b1, c);
        let (w4, c) = mac(w4, a2, b2, c);
        let (w5, w6) = mac(w5, a2, b3, c);
        let (w3, c) = mac(w3, a3, b0, 0);
        let (w4, c) = mac(w4, a3, b1, c);
        let (w5, c) = mac(w5, a3, b2, c);
        let (w6, w7) = mac(w6, a3, b3, c);
        Fe(reduce([w0, w1, w2, w3, w4, w5, w6, w7]))
    }

    /// The square: the six cross products computed once and doubled.
    #[inline]
    pub fn square(&self) -> Fe {
        let [a0, a1, a2, a3] = self.0;
        let (w1, c) = mac(0, a0, a1, 0);
        let (w2, c) = mac(0, a0, a2, c);
        let (w3, w4) = mac(0, a0, a3, c);
        let (w3, c) = mac(w3, a1, a2, 0);
        let (w4, w5) = mac(w4, a1, a3, c);
        let (w5, w6) = mac(w5, a2, a3, 0);
        let w7 = w6 >> 63;
        let w6 = (w6 << 1) | (w5 >> 63);
        let w5 = (w5 << 1) | (w4 >> 63);
        let w4 = (w4 << 1) | (w3 >> 63);
        let w3 = (w3 << 1) | (w2 >> 63);
        let w2 = (w2 << 1) | (w1 >> 63);
        let w1 = w1 << 1;
        let (w0, c) = mac(0, a0, a0, 0);
        let (w1, c) = adc(w1, 0, c);
        let (w2, c) = mac(w2, a1, a1, c);
        let (w3, c) = adc(w3, 0, c);
        let (w4, c) = mac(w4, a2, a2, c);
        let (w5, c) = adc(w5, 0, c);
        let (w6, c) = mac(w6, a3, a3, c);
        let (w7, _) = adc(w7, 0, c);
        Fe(reduce([w0, w1, w2, w3, w4, w5, w6, w7]))
    }

    /// self^exponent, square and multiply.
    pub(super) fn pow(&self, exponent: &Limbs) -> Fe {
        let mut result = Fe::ONE;
        for limb in exponent.iter().rev() {
            for bit in (0..64).rev() {
                result = result.square();
                if (limb >> bit) & 1 == 1 {
                    result = result.mul(self);
                }
            }
        }
        result
    }

    /// The inverse (Fermat); 0 for 0. Used once per table, not per check.
    pub fn invert(&self) -> Fe {
        self.pow(&P_MINUS_2)
    }
}

/// Montgomery reduction of a 512-bit product: w·2⁻²⁵⁶ mod p. Each round adds
/// q·p with q the low limb (p ≡ −1 mod 2⁶⁴): q + q·(2⁶⁴ − 1) = q·2⁶⁴, so
/// the low limb vanishes with carry q; p's limb 2 is 0.
#[inline(always)]
fn reduce(w: [u64; 8]) -> Limbs {
    let [w0, w1, w2, w3, w4, w5, w6, w7] = w;
    let (w1, c) = mac(w1, w0, P[1], w0);
    let (w2, c) = adc(w2, 0, c);
    let (w3, c) = mac(w3, w0, P[3], c);
    let (w4, high) = adc(w4, 0, c);

    let (w2, c) = mac(w2, w1, P[1], w1);
    let (w3, c) = adc(w3, 0, c);
    let (w4, c) = mac(w4, w1, P[3], c);
    let (w5, high) = adc(w5, high, c);

    let (w3, c) = mac(w3, w2, P[1], w2);
    let (w4, c) = adc(w4, 0, c);
    let (w5, c) = mac(w5, w2, P[3], c);
    let (w6, high) = adc(w6, high, c);

    let (w4, c) = mac(w4, w3, P[1], w3);
    let (w5, c) = adc(w5, 0, c);
    let (w6, c) = mac(w6, w3, P[3], c);
    let (w7, high) = adc(w7, high, c);

    limbs::subtract_if_not_below(&[w4, w5, w6, w7], high, &P)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// a·b mod p by schoolbook product and bit-by-bit long division: slow,
    /// shares nothing with the Montgomery code.
    fn mul_mod_p(a: &Limbs, b: &Limbs) -> Limbs {
        let mut product = [0u64; 8];
        for (i, &x) in a.iter().enumerate() {
            let mut carry = 0u64;
            for (j, &y) in b.iter().enumerate() {
                let (low, high) = mac(product[i + j], x, y, carry);
                product[i + j] = low;
                carry = high;
            }
            product[i + 4] = carry;
        }
        let mut r: Limbs = [0; 4];
        for bit in (0..512).rev() {
            let top = r[3] >> 63;
            r = [
                r[0] << 1 | (product[bit / 64] >> (bit % 64)) & 1,
                r[1] << 1 | r[0] >> 63,
                r[2] << 1 | r[1] >> 63,
                r[3] << 1 | r[2] >> 63,
            ];
            r = limbs::subtract_if_not_below(&r, top, &P);
        }
        r
    }

    fn below_p(limbs: Limbs) -> Limbs {
        if limbs::less_than(&limbs, &P) {
            limbs
        } else {
            limbs::sub(&limbs, &P).0
        }
    }

    /// Values at the edges of the reduction's carries: 0, 1, p − 1, p − 2,
    /// limbs all ones where p allows, 2²⁵⁵.
    const EDGES: [Limbs; 7] = [
        [0, 0, 0, 0],
        [1, 0, 0, 0],
        [P[0] - 1, P[1], P[2], P[3]],
        [P[0] - 2, P[1], P[2], P[3]],
        [u64::MAX, u64::MAX, u64::MAX, 0xffff_ffff_0000_0000],
        [0, 0, 0, 1 << 63],
        [u64::MAX, 0, u64::MAX, 0],
    ];

    #[test]
    fn products_at_the_edges_match_long_division() {
        for a in EDGES {
            for b in EDGES {
                let (x, y) = (Fe::from_integer(&a).unwrap(), Fe::from_integer(&b).unwrap());
                assert_eq!(x.mul(&y).to_integer(), mul_mod_p(&a, &b), "{a:x?} · {b:x?}");
                assert_eq!(x.square().to_integer(), mul_mod_p(&a, &a), "{a:x?}²");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn products_match_long_division(a in any::<[u64; 4]>(), b in any::<[u64; 4]>()) {
            let (a, b) = (below_p(a), below_p(b));
            let (x, y) = (Fe::from_integer(&a).unwrap(), Fe::from_integer(&b).unwrap());
            prop_assert_eq!(x.mul(&y).to_integer(), mul_mod_p(&a, &b));
            prop_assert_eq!(x.square().to_integer(), mul_mod_p(&a, &a));
        }
    }

    #[test]
    fn constants_hold() {
        // R² is right iff 1 survives the round trip through the form.
        assert_eq!(Fe::from_integer(&[1, 0, 0, 0]), Some(Fe::ONE));
        assert_eq!(Fe::ONE.to_integer(), [1, 0, 0, 0]);
        let two = Fe::ONE.double();
        assert_eq!(two.mul(&two.invert()), Fe::ONE);
        assert_eq!(Fe::ONE.neg().add(&Fe::ONE), Fe::ZERO);
    }
}
