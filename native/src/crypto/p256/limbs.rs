//! 256-bit integers as four little-endian `u64` limbs: the carries, borrows
//! and conversions both moduli (the field's p, the group's n) share.

pub type Limbs = [u64; 4];

/// a + b + carry → (sum, carry out), carry ∈ {0, 1}.
#[inline(always)]
pub fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = u128::from(a) + u128::from(b) + u128::from(carry);
    (t as u64, (t >> 64) as u64)
}

/// a − b − borrow → (difference, borrow out), borrow ∈ {0, 1}.
#[inline(always)]
pub fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = u128::from(a).wrapping_sub(u128::from(b) + u128::from(borrow));
    (t as u64, (t >> 127) as u64)
}

/// a + b·c + carry → (low, high): never overflows 128 bits.
#[inline(always)]
pub fn mac(a: u64, b: u64, c: u64, carry: u64) -> (u64, u64) {
    let t = u128::from(a) + u128::from(b) * u128::from(c) + u128::from(carry);
    (t as u64, (t >> 64) as u64)
}

/// a + b → (sum, carry out).
#[inline(always)]
pub fn add(a: &Limbs, b: &Limbs) -> (Limbs, u64) {
    let (d0, c) = adc(a[0], b[0], 0);
    let (d1, c) = adc(a[1], b[1], c);
    let (d2, c) = adc(a[2], b[2], c);
    let (d3, c) = adc(a[3], b[3], c);
    ([d0, d1, d2, d3], c)
}

/// a − b → (difference, borrow out).
#[inline(always)]
pub fn sub(a: &Limbs, b: &Limbs) -> (Limbs, u64) {
    let (d0, w) = sbb(a[0], b[0], 0);
    let (d1, w) = sbb(a[1], b[1], w);
    let (d2, w) = sbb(a[2], b[2], w);
    let (d3, w) = sbb(a[3], b[3], w);
    ([d0, d1, d2, d3], w)
}

/// (a + 2²⁵⁶·high) − m when that is not negative, else a: the last step of
/// a Montgomery product or a modular sum (the value is below 2m).
#[inline(always)]
pub fn subtract_if_not_below(a: &Limbs, high: u64, m: &Limbs) -> Limbs {
    let (d, borrow) = sub(a, m);
    let (_, borrow) = sbb(high, 0, borrow);
    if borrow == 1 {
        *a
    } else {
        d
    }
}

/// a < b.
#[inline(always)]
pub fn less_than(a: &Limbs, b: &Limbs) -> bool {
    sub(a, b).1 == 1
}

pub fn is_zero(a: &Limbs) -> bool {
    a.iter().all(|&l| l == 0)
}

pub fn from_be_bytes(bytes: &[u8; 32]) -> Limbs {
    let mut limbs = [0u64; 4];
    for (limb, chunk) in limbs.iter_mut().rev().zip(bytes.chunks_exact(8)) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        *limb = u64::from_be_bytes(word);
    }
    limbs
}

#[cfg(test)]
pub fn to_be_bytes(limbs: &Limbs) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (chunk, limb) in bytes.chunks_exact_mut(8).zip(limbs.iter().rev()) {
        chunk.copy_from_slice(&limb.to_be_bytes());
    }
    bytes
}
